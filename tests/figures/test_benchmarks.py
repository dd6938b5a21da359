"""Figure 1/2 counts and tables of :mod:`aquasurf_core.figures.benchmarks` on tiny hand-made
benchmarks, checked against slow obvious computations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from aquasurf_core.bench.table import Benchmark, make_table
from aquasurf_core.figures.benchmarks import (
    baseline_table,
    failed_mask,
    failure_counts,
    fig1_histograms,
    fig2_pairwise,
    fim_reason_table,
    pairwise_correlations,
    recipe_table,
    top_table,
)
from aquasurf_core.space.baselines import BASELINES
from aquasurf_core.space.evaluation import evaluate_functions
from aquasurf_core.space.inputs import normal_inputs

UNARY = ["tanh", "sigmoid", "erf", "arctan", "softsign", "exp", "square", "abs", "negative",
         "sinh", "cosh", "arcsinh", "expm1", "erfc"]


def make_bench(names, val, *, status=None, valid=None, equivalents=None, test=None,
               manifest=None, name="tiny") -> Benchmark:
    """A benchmark whose rows are ``names`` with the given validation accuracies."""
    n = len(names)
    status = ["ok"] * n if status is None else list(status)
    valid = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    test = [v - 0.01 if math.isfinite(v) else v for v in val] if test is None else test
    rows = []
    for i, fn in enumerate(names):
        members = [fn] + list((equivalents or {}).get(fn, []))
        loss = math.nan if status[i] != "ok" else 0.5
        rows.append({"fn_name": fn, "equivalent_names": members, "train_acc": val[i],
                     "val_acc": val[i], "test_acc": test[i], "train_loss": loss,
                     "val_loss": loss, "test_loss": loss, "runtime_s": 1.0, "seeds": [0],
                     "status": status[i]})
    outputs = evaluate_functions(list(names), normal_inputs()).numpy()
    cdf = np.where(valid[:, None], np.linspace(0.1, 1.0, 4)[None, :], np.nan)
    return Benchmark(name, make_table(rows), outputs, cdf.astype(np.float32), valid, None,
                     manifest)


def random_bench(seed: int, n: int = 120, names=None) -> Benchmark:
    rng = np.random.default_rng(seed)
    names = names or [f"add({UNARY[i % 14]}(x),{UNARY[(i // 14) % 14]}(x))" for i in range(n)]
    val = rng.choice([0.1, 0.12, 0.15, 0.1500001, 0.5, 0.9], size=len(names)) \
        + np.where(rng.random(len(names)) < 0.3, rng.random(len(names)) * 0.8, 0.0)
    val = np.minimum(val, 1.0).tolist()
    status = rng.choice(["ok", "ok", "ok", "diverged", "failed"], size=len(names)).tolist()
    for i, s in enumerate(status):
        if s == "diverged":
            val[i] = 0.1
        elif s == "failed" and i % 2:
            val[i] = math.nan
    valid = rng.random(len(names)) < 0.6
    return make_bench(names, val, status=status, valid=valid, name=f"r{seed}")


def test_failure_counts_match_a_loop():
    benches = {"a": random_bench(0), "b": random_bench(1)}
    for margin in (0.0, 0.05, 0.2):
        counts = failure_counts(benches, margin).set_index("benchmark")
        for name, bench in benches.items():
            failed = invalid = both = above_invalid = not_ok = 0
            for i, row in bench.table.iterrows():
                is_failed = (row["status"] != "ok" or math.isnan(row["val_acc"])
                             or row["val_acc"] <= 0.1 + margin)
                is_invalid = not bench.fim_valid[i]
                failed += is_failed
                invalid += is_invalid
                both += is_failed and is_invalid
                above_invalid += is_invalid and not is_failed
                not_ok += row["status"] != "ok"
            c = counts.loc[name]
            assert (c["functions"], c["failed"], c["failed, invalid FIM"], c["invalid FIM"],
                    c["invalid FIM above chance"], c["not ok"]) == (
                len(bench), failed, both, invalid, above_invalid, not_ok)
            assert c["share of failures with invalid FIM"] == pytest.approx(both / failed)
            assert 0 < failed < len(bench) and 0 < both < failed  # the case is not trivial


def test_failed_mask_threshold_and_bad_margin():
    bench = make_bench(["tanh(x)", "erf(x)", "exp(x)", "abs(x)"], [0.15, 0.16, math.nan, 0.1],
                       status=["ok", "ok", "failed", "ok"])
    assert failed_mask(bench, 0.05).tolist() == [True, False, True, True]
    assert failed_mask(bench, 0.0).tolist() == [False, False, True, True]
    for bad in (-0.1, math.nan, 0.95, True, "0.05"):
        with pytest.raises(ValueError, match="chance_margin"):
            failure_counts({"t": bench}, bad)
    counts = failure_counts({"t": make_bench(["tanh(x)"], [0.9])}, 0.05)
    assert math.isnan(counts["share of failures with invalid FIM"].iloc[0])  # no failures


def test_baseline_table_found_and_absent():
    bench = make_bench(["max(identity(x),zero(x))", "tanh(x)", "erf(x)"], [0.9, 0.8, 0.7],
                       status=["ok", "ok", "ok"], valid=[True, False, True])
    table = baseline_table({"b": bench}).set_index("baseline")
    assert list(table.index) == list(BASELINES)
    relu = table.loc["ReLU"]
    assert (relu["row"], relu["found by"], relu["representative"], relu["val_acc"],
            relu["fim_valid"]) == (0, "outputs", "max(identity(x),zero(x))", 0.9, True)
    assert (table.loc["tanh", "row"], table.loc["tanh", "found by"]) == (1, "name")
    assert table.loc["tanh", "fim_valid"] == False  # noqa: E712 (object column)
    swish = table.loc["Swish"]
    assert (swish["row"], swish["found by"], swish["representative"]) == (
        -1, "absent", "not in benchmark")
    assert math.isnan(swish["val_acc"]) and math.isnan(swish["test_acc"])
    # a benchmark with none of the baselines renders
    none = baseline_table({"x": make_bench(["add(tanh(x),erf(x))"], [0.5])})
    assert (none["row"] == -1).all() and len(none) == len(BASELINES)


def test_fig1_bars_count_every_placed_function():
    benches = {"a": random_bench(2), "b": random_bench(3, n=50)}
    fig = fig1_histograms(benches, 0.05, bins=20)
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 4 and len(fig.to_json()) < 60_000
    for k, bench in enumerate(benches.values()):
        val = bench.table["val_acc"].to_numpy()
        for bar, mask in zip(bars[2 * k: 2 * k + 2], (bench.fim_valid, ~bench.fim_valid),
                             strict=True):
            assert sum(bar.y) == int((np.isfinite(val) & mask).sum())
            # the third of 20 equal bins on [0, 1] holds 0.1 (diverged runs)
            lo, hi = np.linspace(0, 1, 21)[2:4]
            in_bin = [v for v, m in zip(val, mask, strict=True)
                      if m and np.isfinite(v) and lo <= v < hi]
            assert lo == 0.1 and len(in_bin) > 5
            assert bar.y[2] == len(in_bin)


def test_pairwise_correlations_match_scipy_on_the_join():
    names = [f"mul({UNARY[i % 14]}(x),{UNARY[(i // 14) % 14]}(x))" for i in range(60)]
    a = random_bench(4, names=names)
    b = random_bench(5, names=names[::-1][:45])  # other order, fewer rows
    c = random_bench(6, names=names[10:])
    table = pairwise_correlations({"a": a, "b": b, "c": c})
    assert list(zip(table["x"], table["y"], strict=True)) == [("a", "b"), ("a", "c"),
                                                               ("b", "c")]
    for row in table.itertuples():
        left = dict(zip({"a": a, "b": b, "c": c}[row.x].table["fn_name"],
                        {"a": a, "b": b, "c": c}[row.x].table["val_acc"], strict=True))
        right = dict(zip({"a": a, "b": b, "c": c}[row.y].table["fn_name"],
                         {"a": a, "b": b, "c": c}[row.y].table["val_acc"], strict=True))
        common = [n for n in left if n in right and np.isfinite(left[n])
                  and np.isfinite(right[n])]
        x, y = [left[n] for n in common], [right[n] for n in common]
        assert row.functions == len(common)
        assert row.spearman == pytest.approx(stats.spearmanr(x, y).statistic)
        assert row.pearson == pytest.approx(stats.pearsonr(x, y).statistic)
    fig = fig2_pairwise({"a": a, "b": b, "c": c})
    assert "ρ=" in fig.layout.annotations[0].text
    assert len(fig2_pairwise({"a": a}).data) == 0  # one benchmark: a note, no crash


def test_top_table_ranks_by_validation_accuracy():
    bench = make_bench(["tanh(x)", "erf(x)", "exp(x)", "abs(x)", "sinh(x)"],
                       [0.5, 0.9, math.nan, 0.9, 0.7], test=[0.4, 0.8, math.nan, 0.85, 0.6],
                       status=["ok", "ok", "failed", "ok", "ok"])
    table = top_table({"t": bench}, k=3)
    assert table["fn_name"].tolist() == ["abs(x)", "erf(x)", "sinh(x)"]
    assert table["rank"].tolist() == [1, 2, 3]
    assert len(top_table({"t": bench}, k=10)) == 4  # NaN never ranks
    with pytest.raises(ValueError, match="k must be"):
        top_table({"t": bench}, k=0)


def test_recipe_and_reason_tables_read_the_manifest():
    manifest = {"source": "test", "config": {"seeds": [0, 1], "group_size": 8,
                                             "recipe": {"epochs": 3, "batch_size": 64,
                                                        "optimizer": "sgd", "lr": 0.05,
                                                        "train_subset": None}},
                "architecture": {"parameters": 1234}, "build": {"seconds": 12.5},
                "fim": {"reasons": {"log-eigenvalue > 100 (exploding)": 5, "ok": 2}}}
    bench = make_bench(["tanh(x)", "erf(x)"], [0.5, 0.6], manifest=manifest)
    plain = make_bench(["tanh(x)"], [0.5])
    recipes = recipe_table({"m": bench, "p": plain}).set_index("benchmark")
    assert (recipes.loc["m", "epochs"], recipes.loc["m", "seeds"], recipes.loc["m", "lr"],
            recipes.loc["m", "parameters"], recipes.loc["m", "train subset"]) == (
        3, "0 1", 0.05, 1234, "all")
    assert pd.isna(recipes.loc["p", "epochs"]) and recipes.loc["p", "functions"] == 1
    reasons = fim_reason_table({"m": bench, "p": plain})
    assert reasons.values.tolist() == [["m", "log-eigenvalue > 100 (exploding)", 5],
                                       ["m", "ok", 2]]
