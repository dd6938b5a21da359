"""Figures 8 and 9: the novelty rule against distances computed the slow obvious way, and the
figures' panels."""

import numpy as np
import pandas as pd
import pytest
import torch

from aquasurf_core.figures.discovered_functions import (
    curve_range,
    fig8_functions,
    fig9_usage,
    flat_intervals,
    nearest_baselines,
    novel_functions,
    wrap_name,
)
from aquasurf_core.search.usage import ActivationUsage
from aquasurf_core.space.activation import ActivationFunction
from aquasurf_core.space.inputs import normal_inputs
from aquasurf_core.training.activation_inputs import flat_share


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


def test_wrap_name_cuts_after_commas_and_loses_nothing():
    name = "pow(bessel_i0e(x),arcsinh(arctan(x)))"
    assert wrap_name(name, 20) == ["pow(bessel_i0e(x),", "arcsinh(arctan(x)))"]
    assert wrap_name("relu(x)", 20) == ["relu(x)"]
    long = "sum_n(" + ",".join(["softplus(x)"] * 9) + ")"
    lines = wrap_name(long, 40)
    assert "".join(lines) == long and all(len(line) <= 40 for line in lines)
    assert wrap_name("a" * 25, 10) == ["a" * 10, "a" * 10, "a" * 5]  # no comma: hard cut
    with pytest.raises(ValueError, match="width must be at least 2"):
        wrap_name("relu(x)", 1)


def test_curve_range_covers_every_finite_value():
    assert curve_range(np.array([0.0, 1.0]), np.array([np.nan, -1.0, np.inf])) == \
        pytest.approx([-1.12, 1.12])
    assert curve_range(np.array([2.0, 2.0])) == [1.0, 3.0]
    assert curve_range(np.array([np.nan])) == [-1.0, 1.0]


def test_figure8_panels_titles_and_ranges():
    fig = fig8_functions({"(a) toy": ["arctan(x)", "exp(x)"],
                          "(b) toy": ["max(x,zero(x))", "arctan(x)"]})
    titles = [a.text.split("<br>") for a in fig.layout.annotations if a.text.startswith("(")]
    assert [t[0].split(" · ")[0] for t in titles] == ["(a) toy", "(a) toy", "(b) toy",
                                                       "(b) toy"]
    assert ["".join(t[1:]) for t in titles] == ["arctan(x)", "exp(x)", "max(x,zero(x))",
                                                "arctan(x)"]  # arctan twice: fine
    assert titles[2][0] == "(b) toy · nearest: relu"
    assert len(fig.data) == 2 * 4  # each panel: the function and its nearest baseline
    # no fixed y range: every panel shows all of both curves (exp reaches e^5 = 148)
    for i in range(0, len(fig.data), 2):
        base, found = fig.data[i], fig.data[i + 1]
        axis = fig.layout[found.yaxis.replace("y", "yaxis")]
        for trace in (base, found):
            y = np.asarray(trace.y, dtype=float)
            y = y[np.isfinite(y)]
            assert axis.range[0] < y.min() and y.max() < axis.range[1]
    assert fig.layout.yaxis2.range[1] > np.exp(5)


def test_flat_intervals_against_the_derivative_written_out():
    # tanh'(x) = 1 - tanh(x)^2 < 0.05  <=>  |x| > atanh(sqrt(0.95))
    edge = float(np.arctanh(np.sqrt(0.95)))
    (left, right) = flat_intervals("tanh(x)", -5, 5, 0.05, points=2001)
    step = 10 / 2000
    assert left[0] == -5 and right[1] == 5
    assert left[1] == pytest.approx(-edge, abs=step) and right[0] == pytest.approx(edge, abs=step)
    # ReLU: flat on the negative inputs (autograd's slope at 0 is 0)
    ((a, b),) = flat_intervals("relu(x)", -3, 2, 0.05, points=501)
    assert a == -3 and b == pytest.approx(0, abs=0.01)
    assert flat_intervals("x", -1, 1) == []
    with pytest.raises(ValueError, match="need low < high"):
        flat_intervals("tanh(x)", 1, 1)


def test_figure9_histograms_axes_and_flat_regions():
    rng = np.random.default_rng(0)
    init = {"a": rng.normal(size=500).astype(np.float32)}
    trained = {"a": 3 * rng.normal(size=500).astype(np.float32)}
    usage = ActivationUsage("toy", "tanh(x)", 0, init, trained, {})
    fig = fig9_usage(usage, bins=20)
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 4  # all sites and site a, before and after
    for bar in bars:  # densities integrate to the share inside the x range
        assert 0.9 < float(np.sum(bar.y) * bar.width) <= 1.0 + 1e-9
    # the flat regions shaded in both panels, as flat_intervals finds them on the x range
    lo, hi = fig.layout.xaxis.range
    expected = flat_intervals("tanh(x)", lo, hi)
    assert len(expected) == 2
    shaded = sorted((s.xref, s.x0, s.x1) for s in fig.layout.shapes)
    assert shaded == sorted((ref, a, b) for ref in ("x", "x2") for a, b in expected)
    assert any(t.name == "flat: |f′(x)| < 0.05" for t in fig.data)
    # titles give the measured shares in the flat regions, before -> after
    share = [flat_share("tanh(x)", v) for v in (init["a"], trained["a"])]
    assert fig.layout.annotations[1].text == f"site a: flat {share[0]:.0%} → {share[1]:.0%}"
    assert share[1] > share[0]
    # axis titles; the curve's axis with plain ticks and no grid of its own
    assert fig.layout.xaxis.title.text == "input of the activation"
    assert fig.layout.yaxis.title.text == "density"
    right = [fig.layout[k] for k in fig.layout if k.startswith("yaxis")
             and fig.layout[k].overlaying]
    assert right and all(a.tickmode == "auto" and a.showgrid is False for a in right)
    assert any(a.title.text == "f(x)" for a in right)
