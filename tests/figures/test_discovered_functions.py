"""Figures 8 and 9: the novelty rule against distances computed the slow obvious way, and the
figures' panels."""

import numpy as np
import pandas as pd
import pytest
import torch

from aquasurf_core.figures.discovered_functions import (
    fig8_functions,
    fig9_usage,
    nearest_baselines,
    novel_functions,
)
from aquasurf_core.search.usage import ActivationUsage
from aquasurf_core.space.activation import ActivationFunction
from aquasurf_core.space.inputs import normal_inputs


def _values(name):
    with torch.no_grad():
        return ActivationFunction(name)(torch.as_tensor(np.asarray(normal_inputs()))).numpy()


def _rms(f, g):
    a = np.clip(np.nan_to_num(_values(f), nan=10.0), -10, 10).astype(float)
    b = np.clip(np.nan_to_num(_values(g), nan=10.0), -10, 10).astype(float)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def test_nearest_baseline_is_the_smallest_eq3_distance():
    near = nearest_baselines(["negative(tanh(x))", "max(x,zero(x))"],
                             baselines=["tanh(x)", "relu(x)", "elu(x)"]).set_index("name")
    assert near.loc["max(x,zero(x))", "nearest baseline"] == "relu(x)"
    assert near.loc["max(x,zero(x))", "distance"] == pytest.approx(0, abs=1e-7)
    slow = {b: _rms("negative(tanh(x))", b) for b in ("tanh(x)", "relu(x)", "elu(x)")}
    assert near.loc["negative(tanh(x))", "nearest baseline"] == min(slow, key=slow.get)
    assert near.loc["negative(tanh(x))", "distance"] == pytest.approx(min(slow.values()),
                                                                       rel=1e-5)


def _results():
    rows = [(0, 1, "relu(x)", "relu(x)", 0, 0.60), (1, 2, "tanh(x)", "tanh(x)", 0, 0.70),
            (2, 10, "negative(tanh(x))", "", 0, 0.65), (3, 11, "arctan(x)", "", 0, 0.90),
            (4, 12, "max(x,zero(x))", "", 0, 0.61), (5, 13, "erf(x)", "", 0, 0.50),
            (6, 11, "arctan(x)", "", 1, 0.10)]
    return pd.DataFrame(rows, columns=["order", "class_id", "name", "baseline", "seed",
                                       "val_acc"])


def test_novel_functions_beat_relu_and_are_ordered_by_distance():
    novel = novel_functions(_results(), k=5)
    assert set(novel["name"]) == {"negative(tanh(x))", "arctan(x)", "max(x,zero(x))"}  # not erf
    assert novel["distance"].is_monotonic_decreasing
    assert novel["name"].iloc[-1] == "max(x,zero(x))"  # ReLU itself: distance 0
    with pytest.raises(ValueError, match="no run of relu"):
        novel_functions(_results().query("seed == 1"), seed=1)


def test_figure8_panels_and_figure9_histograms():
    fig = fig8_functions({"(a) toy": ["arctan(x)", "negative(tanh(x))"],
                          "(b) toy": ["max(x,zero(x))", "arctan(x)"]})
    titles = [a.text for a in fig.layout.annotations if a.text.startswith("(")]
    assert titles == ["(a) toy: arctan(x)", "(a) toy: negative(tanh(x))",
                      "(b) toy: max(x,zero(x))", "(b) toy: arctan(x)"]  # arctan twice: fine
    nearest = [a.text for a in fig.layout.annotations if a.text.startswith("nearest")]
    assert nearest[2] == "nearest: relu"
    assert len(fig.data) == 2 * 4  # each panel: the function and its nearest baseline
    rng = np.random.default_rng(0)
    usage = ActivationUsage("toy", "tanh(x)", 0, {"a": rng.normal(size=500).astype(np.float32)},
                            {"a": 3 * rng.normal(size=500).astype(np.float32)}, {})
    fig = fig9_usage(usage, bins=20)
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 4  # all sites and site a, before and after
    for bar in bars:  # densities integrate to the share inside the x range
        assert 0.9 < float(np.sum(bar.y) * bar.width) <= 1.0 + 1e-9
