"""Reference trainer, recipes, and the grouped (K-copies-in-one-model) trainer.

Tolerances (measured on this CPU, 1 thread, with the tiny recipe below: 1 epoch of 4 steps on
256 examples). The fused layers compute the same sums as the separate models in a different
order (grouped vs dense convolution kernels, einsum vs addmm), so values differ by float32
rounding: initial logits by <= 5e-6; after training, parameters by <= 2.4e-7 with SGD
(cnn, resnet) and <= 1.2e-4 with AdamW (vit: Adam divides by sqrt(v), which magnifies
rounding in elements with tiny gradients); losses by <= 1e-6 relative. The tests use 1e-5
(SGD) / 1e-3 (AdamW) for parameters and 1e-5 relative for losses. Exception: the attention
key bias, whose gradient is exactly zero mathematically (softmax is invariant to adding
``q . b`` to every score of a query), so its float noise (~1e-9) is turned by Adam into
steps of size ~lr in arbitrary directions in both trainers; it is skipped. Accuracies change
only if rounding flips an argmax, which did not happen in these cases; they are compared
exactly.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from aquasurf_core.models import BENCHMARK_ARCHS, build_model
from aquasurf_core.training.data import Split, Splits, load_mnist1d
from aquasurf_core.training.grouped import (
    GroupedOptimizer,
    build_grouped_model,
    split_copy,
    train_grouped,
)
from aquasurf_core.training.recipes import RECIPES, Recipe, get_recipe, lr_at, make_optimizer
from aquasurf_core.training.reference import train_one

FNS = ["relu(x)", "swish(x)", "tanh(x)"]
DIVERGING = "exp(exp(exp(x)))"
LATE = "mul(square(x),x)"  # diverges in epoch 2 of tiny("resnet", epochs=2), seed 4


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on the shared 2-core machine, 2 OpenMP threads competing with other
    processes run many times slower (and the results do not depend on it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    full = load_mnist1d()
    # Smaller evaluation splits keep the tests fast; the trainers do not care about sizes.
    return Splits(full.train, Split(full.validation.x[:200], full.validation.y[:200]),
                   Split(full.test.x[:200], full.test.y[:200]), full.fingerprint)


def tiny(arch: str, **kw) -> Recipe:
    return get_recipe(arch, **{"epochs": 1, "train_subset": 256, "batch_size": 64, **kw})


def fields(result) -> tuple:
    d = result.to_dict()
    d.pop("runtime_s")
    return tuple(d.values())


# --- recipes and schedule ---------------------------------------------------------------

def test_recipes_follow_the_paper_table():
    for arch in ("cnn", "resnet"):
        r = RECIPES[arch]
        assert (r.optimizer, r.schedule, r.momentum, r.weight_decay) == ("sgd", "linear", 0.9,
                                                                         1e-4)
    v = RECIPES["vit"]
    assert (v.optimizer, v.schedule) == ("adamw", "cosine")
    assert all(r.label_smoothing == 0 for r in RECIPES.values())


def test_schedule_warmup_then_decay_matches_formula():
    r = Recipe(epochs=4, batch_size=10, optimizer="sgd", lr=0.1, schedule="linear",
               warmup_epochs=1.0)
    lrs = [lr_at(r, s, 40, 10) for s in range(40)]
    assert lrs[:10] == pytest.approx([0.01 * (s + 1) for s in range(10)])
    assert lrs[10:] == pytest.approx([0.1 * (1 - (s - 10) / 30) for s in range(10, 40)])
    c = Recipe(epochs=4, batch_size=10, optimizer="adamw", lr=4e-3, schedule="cosine",
               warmup_epochs=1.0, initial_lr=1e-4, final_lr=1e-6)
    assert lr_at(c, 0, 40, 10) == pytest.approx(1e-4 + (4e-3 - 1e-4) / 10)
    assert lr_at(c, 9, 40, 10) == pytest.approx(4e-3)
    assert lr_at(c, 25, 40, 10) == pytest.approx(1e-6 + (4e-3 - 1e-6) * 0.5 *
                                                  (1 + math.cos(math.pi * 0.5)))


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(batch_size=1.5), dict(optimizer="adam"),
                                 dict(schedule="step"), dict(lr=0.0), dict(lr=math.nan),
                                 dict(momentum=1.0), dict(train_subset=0),
                                 dict(label_smoothing=1.0)])
def test_recipe_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        get_recipe("cnn", **bad)


def test_unknown_arch_or_function_is_a_clear_error(data):
    with pytest.raises(ValueError, match="no training recipe"):
        get_recipe("lenet")
    with pytest.raises(ValueError, match="fuses the benchmark architectures"):
        build_grouped_model("all-cnn-c", FNS)
    with pytest.raises(ValueError, match="unknown operator"):
        train_one("cnn", "foo(x)", 0, data, tiny("cnn"))
    with pytest.raises(ValueError, match="train_subset"):
        train_one("cnn", "relu(x)", 0, data, tiny("cnn", train_subset=10**6))


# --- the reference trainer --------------------------------------------------------------

def test_train_one_is_deterministic_and_records_divergence(data):
    r = tiny("cnn")
    a, b = train_one("cnn", "relu(x)", 1, data, r), train_one("cnn", "relu(x)", 1, data, r)
    assert a.status == "ok" and fields(a) == fields(b)
    c = train_one("cnn", "relu(x)", 2, data, r)
    assert fields(c) != fields(a)
    d = train_one("cnn", DIVERGING, 1, data, r)
    assert d.status == "diverged" and d.val_accuracy == d.test_accuracy == 0.1
    assert math.isnan(d.val_loss) and d.epochs_completed == 0


def test_optimizer_matches_a_hand_written_step():
    torch.manual_seed(0)
    p = nn.Parameter(torch.randn(5))
    g1, g2 = torch.randn(5), torch.randn(5)
    r = get_recipe("cnn")
    opt = make_optimizer([p], r)
    expected = p.detach().clone()
    buf = None
    for g, lr in ((g1, 0.1), (g2, 0.05)):
        d = g + r.weight_decay * expected
        buf = d if buf is None else r.momentum * buf + d
        expected = expected - lr * buf
        opt.param_groups[0]["lr"] = lr
        p.grad = g.clone()
        opt.step()
    torch.testing.assert_close(p.detach(), expected)


# --- the grouped trainer ----------------------------------------------------------------

@pytest.mark.parametrize("arch", list(BENCHMARK_ARCHS))
def test_fused_model_starts_as_the_separate_models(arch):
    x = torch.randn(16, 1, 40, generator=torch.Generator().manual_seed(0))
    grouped = build_grouped_model(arch, FNS, seed=5).eval()
    with torch.no_grad():
        out = grouped(x)
        assert out.shape == (16, 3, 10)
        for k, f in enumerate(FNS):
            reference = build_model(arch, f, seed=5).eval()
            torch.testing.assert_close(out[:, k], reference(x), rtol=1e-5, atol=2e-5)
            copy_k = split_copy(grouped, k)
            for (name, a), (_, b) in zip(copy_k.state_dict().items(),
                                         reference.state_dict().items(), strict=True):
                assert torch.equal(a, b), name


@pytest.mark.parametrize("arch", list(BENCHMARK_ARCHS))
def test_grouped_training_equals_one_at_a_time(arch, data):
    r = tiny(arch)
    results, grouped = train_grouped(arch, FNS, 3, data, r, return_model=True)
    for k, f in enumerate(FNS):
        ref = train_one(arch, f, 3, data, r)
        got = results[k]
        assert (got.fn_name, got.status, got.epochs_completed) == (ref.fn_name, "ok", 1)
        assert (got.train_accuracy, got.val_accuracy, got.test_accuracy) == (
            ref.train_accuracy, ref.val_accuracy, ref.test_accuracy)
        for name in ("train_loss", "val_loss", "test_loss"):
            assert getattr(got, name) == pytest.approx(getattr(ref, name), rel=1e-5), name
    # Parameters: retrain the reference models by hand and compare with the fused copies.
    tol = 1e-5 if r.optimizer == "sgd" else 1e-3
    for k, f in enumerate(FNS):
        reference = _train_reference_model(arch, f, 3, data, r)
        trained = split_copy(grouped, k)
        for (name, a), (_, b) in zip(trained.state_dict().items(),
                                     reference.state_dict().items(), strict=True):
            if a.is_floating_point() and not name.endswith("attn.key.bias"):
                torch.testing.assert_close(a, b, rtol=0, atol=tol, msg=f"{f}: {name}")
    changed = any(not torch.equal(a, b) for a, b in zip(
        trained.state_dict().values(), build_model(arch, FNS[-1], seed=3).state_dict().values(),
        strict=True))
    assert changed  # training moved the parameters


def _train_reference_model(arch, fn, seed, data, recipe):
    """The model train_one would have trained (same loop, kept to compare parameters)."""
    from torch.nn import functional as F

    from aquasurf_core.training.recipes import epoch_order

    model = build_model(arch, fn, seed=seed)
    x_all, y_all = data.train.x[:recipe.train_subset], data.train.y[:recipe.train_subset]
    spe = recipe.steps_per_epoch(len(y_all))
    opt = make_optimizer(model.parameters(), recipe)
    step = 0
    for order in epoch_order(seed, recipe.epochs, len(y_all)):
        model.train()
        for begin in range(0, len(y_all), recipe.batch_size):
            i = order[begin:begin + recipe.batch_size]
            opt.param_groups[0]["lr"] = lr_at(recipe, step, spe * recipe.epochs, spe)
            opt.zero_grad()
            F.cross_entropy(model(x_all[i]), y_all[i]).backward()
            opt.step()
            step += 1
    return model


def test_diverging_copies_do_not_affect_the_others(data):
    # DIVERGING is non-finite at the first step (dropped before training); LATE has a finite
    # first loss and diverges in the second epoch, inside the fused model.
    r = tiny("resnet", epochs=2)
    fns = [FNS[0], DIVERGING, LATE, FNS[2]]
    with_nan = train_grouped("resnet", fns, 4, data, r)
    without = train_grouped("resnet", [FNS[0], FNS[2]], 4, data, r)
    for k in (1, 2):
        assert with_nan[k].status == "diverged" and math.isnan(with_nan[k].val_loss)
        assert with_nan[k].val_accuracy == with_nan[k].test_accuracy == 0.1
        assert fields(with_nan[k]) == fields(train_one("resnet", fns[k], 4, data, r))
    assert (with_nan[1].epochs_completed, with_nan[2].epochs_completed) == (0, 1)
    # Same computation for the surviving copies, only the fused width differs: equal up to
    # kernel reduction order (accuracies exactly).
    for a, b in zip([with_nan[0], with_nan[3]], without, strict=True):
        assert a.status == b.status == "ok"
        assert (a.val_accuracy, a.test_accuracy) == (b.val_accuracy, b.test_accuracy)
        assert a.val_loss == pytest.approx(b.val_loss, rel=1e-5)


def test_nan_parameters_of_one_copy_stay_in_that_copy():
    grouped = build_grouped_model("vit", FNS, seed=0)
    clean = build_grouped_model("vit", FNS, seed=0)
    x = torch.randn(8, 1, 40)
    for bad in range(3):
        poisoned = copy.deepcopy(grouped)
        with torch.no_grad():
            for p in poisoned.parameters():
                p.view(3, -1)[bad] = math.nan
        good = [k for k in range(3) if k != bad]
        out = poisoned(x)
        assert out[:, bad].isnan().all()
        torch.testing.assert_close(out[:, good], clean(x)[:, good])
        out[:, good].sum().backward()
        for p in poisoned.parameters():
            assert torch.isfinite(p.grad.view(3, -1)[good]).all()


def test_grouped_optimizer_freezes_dead_copies():
    p = nn.Parameter(torch.ones(4, 3))
    p.grad = torch.full((4, 3), 2.0)
    p.grad[1] = math.nan
    for recipe in (get_recipe("cnn"), get_recipe("vit")):
        q = nn.Parameter(p.detach().clone())
        q.grad = p.grad.clone()
        opt = GroupedOptimizer([q], 2, recipe)  # copy 0 = rows 0-1, copy 1 = rows 2-3
        opt.step(0.1, torch.tensor([False, True]))
        assert torch.equal(q.detach()[:2], p.detach()[:2])
        assert torch.isfinite(q.detach()).all() and not torch.equal(q.detach()[2:], p[2:])


def test_grouped_training_is_deterministic(data):
    r = tiny("cnn")
    a = train_grouped("cnn", FNS, 7, data, r)
    b = train_grouped("cnn", FNS, 7, data, r)
    assert [fields(x) for x in a] == [fields(x) for x in b]


def test_train_one_on_an_explicit_device_is_the_cpu_run(data):
    """``device="cpu"`` given explicitly (what a search passes) is the default run, bit for
    bit; on a GPU machine, ``cuda`` trains there and lands within float tolerance."""
    r = tiny("cnn")
    a = train_one("cnn", "relu(x)", 1, data, r)
    assert fields(train_one("cnn", "relu(x)", 1, data, r, device="cpu")) == fields(a)
    if torch.cuda.is_available():
        g = train_one("cnn", "relu(x)", 1, data, r, device="cuda")
        assert g.status == "ok" and abs(g.val_accuracy - a.val_accuracy) <= 0.05
