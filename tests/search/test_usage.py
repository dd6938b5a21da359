"""How a trained network uses its activation function (Figure 9), on a tiny task whose
training is known: the recorded inputs and the table against the slow obvious computation."""

import numpy as np
import pytest
import torch
from torch import nn

from aquasurf_core.search.tasks import Task, TaskError, get_task
from aquasurf_core.search.usage import activation_usage, usage_table
from aquasurf_core.space.activation import ActivationFunction


def tiny_task(with_fit: bool = True) -> Task:
    x = torch.linspace(-1, 1, 64).reshape(32, 2)
    y = (x[:, 0] > 0).long()

    def build(fn_name, seed):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(2, 3), ActivationFunction(fn_name), nn.Linear(3, 3),
                             ActivationFunction(fn_name), nn.Linear(3, 2))

    def fit(fn_name, seed):
        model = build(fn_name, seed)
        with torch.no_grad():  # "training" that scales the first layer by 10
            model[0].weight.mul_(10)
            model[0].bias.mul_(10)
        return model, {"val_acc": 0.5}

    return Task("tiny-usage", build, lambda fn, seed: fit(fn, seed)[1],
                lambda seed: (x, y), fit=fit if with_fit else None)


def test_inputs_before_and_after_training_and_their_table():
    task = tiny_task()
    usage = activation_usage(task, "tanh(x)", seed=1)
    assert usage.metrics == {"val_acc": 0.5} and list(usage.init) == ["1", "3"]
    x, _ = task.fisher_batch(1)
    first = task.build("tanh(x)", 1)[0](x).detach().reshape(-1).numpy()
    np.testing.assert_allclose(usage.init["1"], first, rtol=1e-6)
    np.testing.assert_allclose(usage.trained["1"], 10 * first, rtol=1e-5, atol=1e-6)
    table = usage_table(usage).set_index("site")
    assert list(table.index) == ["1", "3", "all"]
    pooled = np.concatenate([usage.trained["1"], usage.trained["3"]])
    assert table.loc["all", "trained inputs"] == len(pooled) == 2 * 32 * 3
    assert table.loc["all", "trained q50"] == pytest.approx(np.median(pooled))
    tanh_flat = lambda v: np.mean(1 - np.tanh(v) ** 2 < 0.05)  # noqa: E731
    assert table.loc["1", "init flat share"] == pytest.approx(tanh_flat(first), abs=1e-9)
    assert table.loc["1", "trained flat share"] == pytest.approx(tanh_flat(10 * first), abs=0.02)
    assert table.loc["1", "trained flat share"] > table.loc["1", "init flat share"]


def test_a_task_without_fit_is_refused_and_arch_tasks_have_one():
    with pytest.raises(TaskError, match="tiny-usage.*no fit"):
        activation_usage(tiny_task(with_fit=False), "tanh(x)")
    assert get_task("digits-cnn").fit is not None
    with pytest.raises(ValueError, match="stage must be"):
        activation_usage(tiny_task(), "tanh(x)").pooled("later")
