"""Notebook 04's Figure 6, tables and scorecard on hand-made search results, checked against
direct computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from aquasurf_core.figures import search as fs


def fake_results(trials: int = 12, budget: int = 30, seed: int = 0) -> pd.DataFrame:
    """Searches whose accuracy ramps faster for better methods: knr > svr > random, and the
    both feature > outputs."""
    rng = np.random.default_rng(seed)
    speed = {("knr", "both"): 0.5, ("knr", "outputs"): 0.3, ("svr", "both"): 0.25,
             ("svr", "outputs"): 0.2, ("random", "both"): 0.08}
    rows = []
    for bench in ("a", "b"):
        for (method, feature), rate in speed.items():
            for trial in range(trials):
                best = -1.0
                for step in range(1, budget + 1):
                    val = 0.9 * (1 - np.exp(-rate * step)) + 0.02 * rng.random()
                    best = max(best, val)
                    rows.append((bench, feature, method, trial, step, f"f{step}", val, val,
                                 best, best))
    return pd.DataFrame(rows, columns=["benchmark", "feature", "method", "trial", "step",
                                       "function", "val_acc", "test_acc", "best_val_so_far",
                                       "test_acc_of_best"])


REFERENCE = {"a": {"relu": 0.5, "best": 0.92}, "b": {"relu": 0.5, "best": 0.92}}


def test_holm_matches_the_step_down_procedure_written_out():
    p = [0.01, 0.04, 0.03, 0.2]
    # sorted: 0.01*4, 0.03*3, 0.04*2, 0.2*1 -> 0.04, 0.09, 0.09 (monotone), 0.2
    np.testing.assert_allclose(fs.holm(p), [0.04, 0.09, 0.09, 0.2])
    assert fs.holm([0.9, 0.8])[0] == 1.0


def test_auc_and_results_table_against_direct_computation():
    results = fake_results()
    aucs = fs.auc_table(results)
    one = results[(results["benchmark"] == "a") & (results["method"] == "knr")
                  & (results["feature"] == "both") & (results["trial"] == 3)]
    row = aucs[(aucs["benchmark"] == "a") & (aucs["method"] == "knr")
               & (aucs["feature"] == "both") & (aucs["trial"] == 3)].iloc[0]
    assert row["auc"] == pytest.approx(one["best_val_so_far"].mean())
    assert row["final"] == one["best_val_so_far"].iloc[-1]
    table = fs.results_table(results, REFERENCE, checkpoints=(10, 30))
    knr = table[(table["benchmark"] == "a") & (table["method"] == "KNR (both)")].iloc[0]
    at10 = results[(results["benchmark"] == "a") & (results["method"] == "knr")
                   & (results["feature"] == "both") & (results["step"] == 10)]["best_val_so_far"]
    assert knr["best after 10"] == round(at10.mean(), 3)
    first = [results[(results["benchmark"] == "a") & (results["method"] == "knr")
                     & (results["feature"] == "both") & (results["trial"] == t)
                     & (results["best_val_so_far"] > 0.5)]["step"].min() for t in range(12)]
    assert knr["evaluations to beat ReLU (median)"] == f"{np.median(first):g}"
    assert knr["95% CI to beat ReLU"].startswith("[")
    assert table[table["method"] == "RS"]["trials to within 0.005 of best"].iloc[0] == "0%"
    # random search ignores the feature: a copy of its runs under another feature is one row
    twice = pd.concat([results, results[results["method"] == "random"].assign(feature="fim")])
    again = fs.results_table(twice, REFERENCE, checkpoints=(10, 30))
    assert (again["method"] == "RS").sum() == 2 and len(again) == len(table)
    card = fs.scorecard(twice, REFERENCE, regressors=("knr", "svr"))
    assert card.iloc[0]["comparisons"] == 2 * 5 and card.iloc[0]["evidence"].count("a RS:") == 1
    # interval ends are on the grid of medians of whole numbers (halves), not 14.5125
    for text in again["95% CI to beat ReLU"]:
        for end in text.strip("[]").split(", "):
            assert end.startswith(">") or (float(end) * 2).is_integer()


def test_scorecard_verdicts_follow_the_results():
    card = fs.scorecard(fake_results(), REFERENCE, regressors=("knr", "svr"))
    verdict = dict(zip(card["claim"].str[:2], card["verdict"], strict=True))
    assert verdict["1."] == "holds"  # every method passes ReLU (0.5) in every trial
    assert verdict["2."] == "holds"  # both regressors beat RS everywhere
    assert verdict["3."] == "holds"  # both > outputs for knr and svr (no FIM runs: skipped)
    assert verdict["4."] == "holds"  # knr > svr
    assert "median" in card.iloc[4]["evidence"]
    # the paired test is the one written out
    aucs = fs.auc_table(fake_results())

    def pick(m, f):
        sel = aucs[(aucs["benchmark"] == "a") & (aucs["method"] == m) & (aucs["feature"] == f)]
        return sel.sort_values("trial")["auc"].to_numpy()

    diff = pick("knr", "both") - pick("svr", "both")
    assert stats.wilcoxon(diff, alternative="greater").pvalue < 0.01
    assert f"a: KNR (both) vs SVR (both) ΔAUC {diff.mean():+.4f}" in card.iloc[3]["evidence"]


def test_figure6_grid_one_row_per_feature_shared_y_per_benchmark():
    results = fake_results(trials=10, budget=10)
    fig = fs.fig6_search(results, REFERENCE)
    titles = [a.text for a in fig.layout.annotations
              if not a.text.startswith("highest") and a.text not in ("ReLU", "best")]
    assert titles == ["Act-Bench-Mini a", "Act-Bench-Mini b", "outputs", "both"]
    lines = [t for t in fig.data if t.mode == "lines"]
    # 2 x 2 panels, each: KNR and SVR on the row's feature, and random search (run with the
    # "both" feature only, drawn in every row for reference)
    assert len(lines) == 4 * 3
    assert sorted(t.name for t in lines if t.showlegend) == ["KNR", "RS", "SVR"]
    # a curve is the mean best-so-far over the trials, computed directly
    (knr,) = [t for t in lines if t.name == "KNR" and t.xaxis == "x" and t.yaxis == "y"]
    sel = results[(results["benchmark"] == "a") & (results["method"] == "knr")
                  & (results["feature"] == "outputs")]
    np.testing.assert_allclose(knr.y, sel.groupby("step")["best_val_so_far"].mean(),
                               rtol=1e-12)
    rs = [t for t in lines if t.name == "RS" and t.xaxis in ("x", "x3")]  # column a
    assert len(rs) == 2 and np.array_equal(rs[0].y, rs[1].y)
    # bands for KNR and RS only here (KNR, the fastest, is also the highest AUC)
    bands = [t for t in fig.data if t.fill == "toself"]
    assert len(bands) == 4 * 2 and {t.legendgroup for t in bands} == {"KNR", "RS"}
    best = [a.text for a in fig.layout.annotations if a.text.startswith("highest")]
    assert len(best) == 4 and all("KNR" in text for text in best)
    assert f"({knr.y.mean():.3f})" in best[0]
    # the y axis is shared down each column (benchmark), not across columns
    assert fig.layout.yaxis3.matches == "y" and fig.layout.yaxis4.matches == "y2"
    assert fig.layout.yaxis2.matches is None


def test_figure6_bands_the_best_method_when_it_is_not_knr():
    results = fake_results(trials=6, budget=10)
    slow = results["method"] == "knr"
    results.loc[slow, "best_val_so_far"] -= 0.5  # KNR now the worst
    fig = fs.fig6_search(results, REFERENCE)
    bands = [t for t in fig.data if t.fill == "toself"]
    assert len(bands) == 4 * 3 and {t.legendgroup for t in bands} == {"KNR", "RS", "SVR"}


def test_ablation_table():
    results = fake_results(trials=10, budget=10)
    arms = results[results["method"] == "knr"].copy()
    arms["feature"] = arms["feature"].map({"both": "base", "outputs": "variant"})
    table = fs.ablation_table(arms, baseline="base")
    variant = table[(table["benchmark"] == "a") & (table["variant"] == "variant")].iloc[0]
    assert variant["ΔAUC vs baseline"] < 0 and variant["p (Holm)"] < 0.05
    assert np.isnan(table[table["variant"] == "base"]["p (Holm)"]).all()
    tested = table["p (Holm)"].dropna()
    assert len(tested) and all(p == float(f"{p:.2g}") for p in tested)  # two digits


def test_stall_figure_plots_the_measured_means():
    replays = pd.DataFrame({"benchmark": ["a"] * 4, "method": ["knr"] * 4,
                            "step": [9, 9, 10, 10], "gap": [0.1, 0.3, 0.2, 0.2],
                            "val_acc": [0.9, 0.1, 0.1, 0.1], "best_so_far": [0.5] * 4})
    agreement = pd.DataFrame({"benchmark": ["a", "a"], "method": ["knr", "knr"],
                              "step": [9, 10], "same_pick": [0.25, 0.5]})
    fig = fs.stall_figure(replays, agreement)
    gap, improves, same = fig.data
    assert gap.name == "a: KNR" and list(gap.y) == pytest.approx([0.2, 0.2], abs=1e-12)
    # step 9: one of two picks improves; step 10: none -> 5-step running mean 0.5, 0.25
    assert list(improves.y) == pytest.approx([0.5, 0.25], abs=1e-12)
    assert list(same.y) == [0.25, 0.5]
    # a method with options is labelled with them
    results = fake_results(trials=2, budget=5)
    results["method"] = results["method"].replace("svr", "lgp-ucb(kappa=1)")
    assert "LGP-UCB(kappa=1) (both)" in set(fs.results_table(results, REFERENCE)["method"])


def test_heldout_table_against_direct_computation():
    from aquasurf_core.search.selection import held_out_choice

    results = fake_results(trials=8, budget=30)
    choice = held_out_choice(results)  # knr on both ramps fastest on every benchmark
    assert set(choice["method"]) == {"knr"} and set(choice["feature"]) == {"both"}
    table = fs.heldout_table(choice, results, REFERENCE, baseline=("outputs", "knr"),
                             target=30).set_index("held out")
    aucs = fs.auc_table(results)
    for bench in ("a", "b"):
        sel = aucs[(aucs["benchmark"] == bench) & (aucs["method"] == "knr")]
        a = sel[sel["feature"] == "both"].set_index("trial")["auc"]
        b = sel[sel["feature"] == "outputs"].set_index("trial")["auc"]
        assert table.loc[bench, "AUC chosen"] == pytest.approx(a.mean(), abs=1e-4)
        assert table.loc[bench, "ΔAUC vs KNR (outputs)"] == pytest.approx((a - b).mean(),
                                                                           abs=1e-4)
        p = stats.wilcoxon(a - b, alternative="greater").pvalue
        assert table.loc[bench, "p (Holm)"] == pytest.approx(min(1, 2 * p), rel=0.05)
        # first evaluation whose best-so-far reaches 0.92 - 0.005, 31 when none does
        knr = results[(results["benchmark"] == bench) & (results["method"] == "knr")
                      & (results["feature"] == "both")]
        firsts = [g.loc[g["best_val_so_far"] >= 0.915, "step"].min() if
                  (g["best_val_so_far"] >= 0.915).any() else 31 for _, g in knr.groupby("trial")]
        median = float(np.median(firsts))
        expected = ">30" if median > 30 else f"{round(median * 2) / 2:g}"
        assert table.loc[bench, "evaluations to within 0.005 of best, chosen (median)"] == \
            expected
        assert table.loc[bench, "median <= 30"] == (median <= 30)
