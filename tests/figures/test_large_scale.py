"""Notebook 05's Figure 7 and discoveries table, on a hand-made search."""

import numpy as np
import pandas as pd
import pytest

from aquasurf_core.figures.large_scale import (
    TOY_NOTE,
    VERDICTS,
    claims_table,
    claims_text,
    discoveries_table,
    fig7_searches,
    map_summary,
    rank_colours,
    search_curve,
    transfer_table,
    usage_text,
)


def _results():
    rows = [  # order, class_id, name, baseline, seed, val_acc, test_acc
        (0, 1, "max(x,0)", "relu(x)", 0, 0.60, 0.62), (1, 2, "tanh(x)", "tanh(x)", 0, 0.70, 0.69),
        (2, 10, "f", "", 0, 0.50, 0.50), (3, 11, "g", "", 0, float("nan"), float("nan")),
        (4, 12, "h", "", 0, 0.80, 0.75), (5, 13, "k", "", 0, 0.65, 0.64),
        (6, 1, "max(x,0)", "relu(x)", 1, 0.61, 0.60), (7, 2, "tanh(x)", "tanh(x)", 1, 0.72, 0.70),
        (8, 12, "h", "", 1, 0.79, 0.71), (9, 13, "k", "", 1, 0.66, 0.66),
    ]
    return pd.DataFrame(rows, columns=["order", "class_id", "name", "baseline", "seed",
                                       "val_acc", "test_acc"])


def test_search_curve_counts_the_search_seed_only_and_keeps_the_best():
    curve = search_curve(_results())
    assert curve["evaluation"].tolist() == [1, 2, 3, 4, 5, 6]
    assert curve["best_so_far"].tolist() == [0.6, 0.7, 0.7, 0.7, 0.8, 0.8]  # NaN never wins


def test_search_curve_leaves_out_later_phases_of_the_same_seed():
    """Final and transfer runs with seed 0 come after the search; they are not evaluations."""
    results = _results().assign(phase="search")
    later = results[results["seed"] == 0].head(3).assign(
        phase=["final", "transfer:x", "compare"], order=[20, 21, 22], val_acc=0.99)
    curve = search_curve(pd.concat([results, later], ignore_index=True))
    assert curve["evaluation"].tolist() == [1, 2, 3, 4, 5, 6]
    assert curve["best_so_far"].max() == 0.8


def test_map_overlay_places_searched_functions_and_draws_them():
    from aquasurf_core.embedding.space_map import SpaceMap
    from aquasurf_core.figures.large_scale import fig_space_map, map_overlay

    valid = {"f": "exp(x)", "g": "erf(x)", "h": "abs(x)", "k": "cosh(x)"}
    results = _results().replace({"name": valid})
    coords = pd.DataFrame({"class_id": [0, 1, 2, 3],
                           "representative": ["exp(x)", "abs(x)", "cosh(x)", "sinh(x)"],
                           "x": [0.0, 1.0, 2.0, 3.0], "y": [0.0, 1.0, 0.5, 2.0]})
    space_map = SpaceMap(coords, {"extra": {"relu(x)": 3}})
    results.loc[0, "name"] = "relu(x)"  # a baseline placed through the map's extra names
    overlay = map_overlay(space_map, {"toy": results})
    assert overlay["name"].tolist() == ["relu(x)", "tanh(x)", *valid.values()]
    assert overlay["class_id"].tolist() == [3, -1, 0, -1, 1, 2]
    assert overlay.loc[4, ["x", "y"]].tolist() == [1.0, 1.0]
    fig = fig_space_map(space_map, overlay, bins=4)
    (density,) = [t for t in fig.data if t.type == "heatmap"]
    assert np.nansum(10 ** np.asarray(density.z, dtype=float)) == pytest.approx(4)
    (marks,) = [t for t in fig.data if t.type == "scattergl"]
    # tanh and erf are not on the map; a baseline is named as a baseline
    assert list(marks.text) == ["relu(x)", "exp(x)", "abs(x)", "cosh(x)"]
    assert list(marks.customdata) == [0.60, 0.50, 0.80, 0.65]


def test_rank_colours_against_ranks_counted_by_hand():
    values = np.array([0.5, 0.1, np.nan, 0.9, 0.5])
    # finite sorted: 0.1 (rank 1), 0.5, 0.5 (ranks 2, 3 -> 2.5), 0.9 (rank 4); (rank-1)/3
    np.testing.assert_allclose(rank_colours(values), [0.5, 0.0, np.nan, 1.0, 0.5])
    assert rank_colours(np.array([0.7])).tolist() == [0.5]
    assert np.isnan(rank_colours(np.array([np.nan]))).all()


def test_map_gives_each_task_its_own_colour_scale_and_a_baseline_legend():
    from aquasurf_core.embedding.space_map import SpaceMap
    from aquasurf_core.figures.large_scale import MAP_TICKS, fig_space_map

    coords = pd.DataFrame({"class_id": [0, 1], "representative": ["exp(x)", "abs(x)"],
                           "x": [0.0, 1.0], "y": [0.0, 1.0]})
    rng = np.random.default_rng(0)
    easy = rng.uniform(0.95, 0.99, 9)
    hard = rng.uniform(0.3, 0.6, 9)
    overlay = pd.DataFrame({
        "task": ["digits"] * 10 + ["hard"] * 9, "name": [f"f{i}" for i in range(19)],
        "baseline": ["relu(x)"] + [""] * 18, "val_acc": [*easy, np.nan, *hard],
        "class_id": 0, "x": rng.normal(size=19), "y": rng.normal(size=19)})
    fig = fig_space_map(SpaceMap(coords, {}), overlay, bins=4)
    marks = [t for t in fig.data if t.type == "scattergl"]
    assert [t.marker.coloraxis for t in marks] == ["coloraxis", "coloraxis2"]
    for trace, values, axis in zip(marks, (easy, hard), ("coloraxis", "coloraxis2"),
                                   strict=True):
        # colour: the rank within the task, so both tasks span the whole scale
        order = np.argsort(np.argsort(values))
        np.testing.assert_allclose(trace.marker.color, order / (len(values) - 1))
        bar = fig.layout[axis].colorbar
        assert list(bar.tickvals) == list(MAP_TICKS)
        assert list(bar.ticktext) == [f"{q:.3f}" for q in np.quantile(values, MAP_TICKS)]
        assert trace.name in bar.title.text and "rank" in bar.title.text
    # the run without an accuracy is drawn apart, not coloured
    (failed,) = [t for t in fig.data if t.name == "digits: no accuracy"]
    assert list(failed.text) == ["f9"]
    # the red outline of the baselines has a legend entry
    (legend,) = [t for t in fig.data if t.name == "baseline"]
    assert legend.showlegend is not False and legend.marker.line.color == "#d62728"
    assert marks[0].marker.line.width[0] > marks[0].marker.line.width[1]


def test_discoveries_against_baselines_with_a_verdict():
    table, verdicts = discoveries_table({"toy": _results()}, top=2)
    assert table["function"].tolist() == ["h", "tanh(x)", "k", "relu(x)"]
    assert table["seeds"].unique().tolist() == [2]  # seeds every chosen function has
    assert table.loc[0, "median test acc"] == pytest.approx(np.median([0.75, 0.71]))
    (v,) = verdicts.to_dict("records")
    assert v["best discovered"] == "h" and v["best baseline"] == "tanh(x)"
    assert v["margin"] == pytest.approx(0.73 - 0.695) and v["beats every baseline"] == "yes"
    assert v["clear of seed noise"] == "yes"  # h: 0.71-0.75 against tanh: 0.69-0.70
    worse = _results()
    worse.loc[worse["name"] == "h", "test_acc"] = 0.5
    assert discoveries_table({"toy": worse}, top=2)[1].loc[0, "beats every baseline"] == "no"


def test_figure7_has_a_panel_per_task_with_baselines_marked():
    fig = fig7_searches({"a": _results(), "b": _results()})
    stars = [t for t in fig.data if t.name.startswith("baseline")]
    assert len(stars) == 2 and list(stars[0].text) == ["relu", "tanh"]
    assert len([t for t in fig.data if t.name == "best so far"]) == 2
    assert [a.text for a in fig.layout.annotations] == ["a", "b"]


def test_table1_uses_the_final_runs_but_chooses_by_the_search():
    results = _results().assign(phase="search")
    results.loc[results["seed"] == 1, "phase"] = "compare"
    final = pd.DataFrame([(10 + i, c, n, b, s, 0.5, acc, "final") for i, (c, n, b, s, acc) in
                          enumerate([(1, "max(x,0)", "relu(x)", 0, 0.90),
                                     (2, "tanh(x)", "tanh(x)", 0, 0.50),
                                     (12, "h", "", 0, 0.70), (13, "k", "", 0, 0.95)])],
                         columns=list(results.columns))
    table, verdicts = discoveries_table({"toy": pd.concat([results, final])}, top=2,
                                        final=True)
    assert table["function"].tolist() == ["k", "relu(x)", "h", "tanh(x)"]
    assert table["seeds"].unique().tolist() == [1]
    assert verdicts.loc[0, "margin"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="no seed has a final run"):
        discoveries_table({"toy": results}, top=2, final=True)


def test_table2_uses_the_transfer_runs_and_never_chooses_by_them():
    results = _results().assign(phase="search")
    results.loc[results["seed"] == 1, "phase"] = "compare"
    # on the other task, f (never chosen: 0.50 in the search) would win; it must not be chosen
    transfer = pd.DataFrame([(20 + i, c, n, b, 0, v, acc, "transfer:other") for i, (c, n, b, v, acc)
                             in enumerate([(1, "max(x,0)", "relu(x)", 0.3, 0.40),
                                           (2, "tanh(x)", "tanh(x)", 0.3, 0.60),
                                           (10, "f", "", 0.99, 0.99),
                                           (12, "h", "", 0.3, 0.55), (13, "k", "", 0.3, 0.45)])],
                            columns=list(results.columns))
    both = pd.concat([results, transfer])
    table, verdicts = discoveries_table({"toy": both}, top=2, phase="transfer:other")
    assert table["function"].tolist() == ["tanh(x)", "h", "k", "relu(x)"]
    (v,) = verdicts.to_dict("records")
    assert v["beats every baseline"] == "no" and v["beats ReLU"] == "yes"
    # the search's own table ignores the transfer runs
    assert discoveries_table({"toy": both}, top=2)[0]["function"].tolist() == \
        discoveries_table({"toy": results}, top=2)[0]["function"].tolist()


# ------------------------------------------------------------------ notebook 05's claims
def _phased():
    """The hand-made search with phases and statuses, final runs (seed 0) and transfer runs
    on "other" (seed 0)."""
    results = _results().assign(phase="search", status="ok")
    results.loc[results["seed"] == 1, "phase"] = "compare"
    rows = [(c, n, b, acc, phase) for phase, accs in
            (("final", {1: 0.60, 2: 0.65, 12: 0.80, 13: 0.70}),
             ("transfer:other", {1: 0.40, 2: 0.60, 12: 0.55, 13: 0.45}))
            for (c, n, b) in [(1, "max(x,0)", "relu(x)"), (2, "tanh(x)", "tanh(x)"),
                              (12, "h", ""), (13, "k", "")]
            for acc in [accs[c]]]
    later = pd.DataFrame([{"order": 30 + i, "class_id": c, "name": n, "baseline": b, "seed": 0,
                           "val_acc": 0.5, "test_acc": acc, "phase": phase, "status": "ok"}
                          for i, (c, n, b, acc, phase) in enumerate(rows)])
    return pd.concat([results, later], ignore_index=True)


def _usage(status="ok"):
    from aquasurf_core.search.usage import ActivationUsage

    # tanh is flat (|tanh'| < 0.05) where |x| > atanh(sqrt(0.95)) = 2.18: none of the inputs
    # at initialisation, half of them after training
    init = {"act1": np.linspace(-1.0, 1.0, 100)}
    trained = {"act1": np.concatenate([np.linspace(-1.0, 1.0, 50), np.full(50, 4.0)])}
    if status != "ok":
        trained = {"act1": np.full(100, -2e19)}
    return ActivationUsage("other", "tanh(x)", 0, init, trained,
                           {"val_acc": 0.9 if status == "ok" else 0.1, "status": status})


def test_claims_on_a_hand_made_search():
    claims = claims_table({"toy": _phased()}, top=2, transfer={"toy": "other"},
                          coatnet={"toy-coat": _phased()}, usage=_usage())
    got = {(c.split(" (")[1].split(";")[1].strip(" )"), t): v
           for c, t, v in zip(claims["claim"], claims["task"], claims["verdict"], strict=True)}
    assert got == {("Table 1, trained longer", "toy"): "held",          # h 0.80 vs 0.65
                   ("Figure 7", "toy"): "held",                          # h beats ReLU's 0.60
                   ("Table 2", "toy -> other"): "held",                  # h 0.55 vs ReLU 0.40
                   ("Table 3", "toy-coat"): "held",
                   ("Figure 9", "other"): "held"}                        # 0% -> 50% flat
    evidence = dict(zip(got, claims["evidence"], strict=True))
    assert evidence["Table 1, trained longer", "toy"] == (
        "best discovery h 0.800 vs best baseline tanh(x) 0.650 (margin +0.150, median of 1 "
        "seed, clear of the seed noise)")
    assert evidence["Figure 7", "toy"] == ("a function better than ReLU (0.600) after 3 "
                                           "searched functions, best 0.800 in 4")
    assert "against every baseline not held: best baseline tanh(x) 0.600" in \
        evidence["Table 2", "toy -> other"]
    assert "0.0% -> 50.0%" in evidence["Figure 9", "other"]
    assert set(claims["verdict"]) <= set(VERDICTS)
    # without final runs the first claim is judged on the search's recipe
    search_only = _phased().query("phase in ['search', 'compare']")
    first = claims_table({"toy": search_only}, top=2).iloc[0]
    assert "the search's recipe" in first["claim"] and first["verdict"] == "held"


def test_a_diverged_discovery_is_reported_as_diverged_not_as_its_chance_accuracy():
    results = _phased()
    final = (results["phase"] == "final") & results["class_id"].isin([12, 13])
    results.loc[final, ["test_acc", "status"]] = [0.1, "diverged"]
    first = claims_table({"toy": results}, top=2).iloc[0]
    assert first["verdict"] == "not held"
    assert first["evidence"].startswith("best discovery ") and \
        "all 1 of its runs diverged (recorded at chance accuracy, 0.100: not a result)" \
        in first["evidence"]
    # one of two runs diverged: judged on the median, and said
    results = _phased()
    results.loc[(results["class_id"] == 12) & (results["phase"] == "compare"), "status"] = \
        "diverged"
    claims = claims_table({"toy": results.query("phase != 'final'")}, top=2)
    assert claims.loc[0, "evidence"].endswith("; 1 of its 2 runs diverged")


def test_claims_not_checked_without_their_runs_and_on_a_diverged_usage_run():
    claims = claims_table({"toy": _phased()}, top=2, transfer={"toy": "elsewhere"},
                          usage=_usage("diverged"))
    rows = claims.set_index("task")
    assert rows.loc["toy -> elsewhere", "verdict"] == "not checked"
    assert rows.loc["other", "verdict"] == "not checked"
    assert "diverged" in rows.loc["other", "evidence"]
    no_relu = _phased().query("baseline != 'relu(x)'")
    tens = claims_table({"toy": no_relu}, top=1).iloc[1]
    assert (tens["verdict"], tens["evidence"]) == ("not checked", "no ReLU run in the search")


def test_toy_claims_say_so_plainly():
    claims = claims_table({"toy": _phased()}, top=2, toy=True)
    assert claims["evidence"].str.startswith("toy-sized run, says nothing about the claim: ").all()
    text = claims_text(claims, toy=True)
    assert text.splitlines()[0] == f"NOTE: {TOY_NOTE}"
    assert "  toy: HELD: toy-sized run" in text
    assert "NOTE" not in claims_text(claims_table({"toy": _phased()}, top=2))


def test_usage_text_gives_no_ranges_of_a_diverged_run():
    assert "0.0% at initialisation, 50.0% after training" in usage_text(_usage())
    text = usage_text(_usage("diverged"))
    assert "the training run diverged" in text and "e+19" not in text and "-2000" not in text
    assert "1%-99% range [-0.98, 0.98]" in text  # np.quantile of the 100 even points


def test_transfer_table_names_the_task_trained_on():
    table, verdicts = transfer_table({"toy": _phased()}, {"toy": "other", "absent": "x"}, top=2)
    assert set(table["trained on"]) == {"other"} and len(verdicts) == 1
    assert verdicts.loc[0, "beats ReLU"] == "yes"
    empty = transfer_table({"toy": _phased()}, {}, top=2)
    assert empty[0].empty and empty[1].empty


def test_map_summary_explains_functions_it_cannot_place():
    from aquasurf_core.embedding.space_map import SpaceMap

    coords = pd.DataFrame({"class_id": [0, 1], "representative": ["exp(x)", "abs(x)"],
                           "x": [0.0, 1.0], "y": [0.0, 1.0]})
    space_map = SpaceMap(coords, {"settings": {"pca_components": 50},
                                  "explained_variance": 0.99972})
    overlay = pd.DataFrame({"x": [0.0, np.nan, np.nan], "y": [0.0, np.nan, np.nan]})
    line = map_summary(space_map, overlay, {"a": "4-node", "b": "3-node"})
    assert line == ("map: 2 functions of the 4-node space (50-component PCA keeping 0.99972 of "
                    "the variance, then UMAP); 1 of 3 evaluated functions placed (not drawn: b, "
                    "a search of the 3-node space, whose functions the map does not hold)")
    assert map_summary(space_map, overlay).endswith("1 of 3 evaluated functions placed")


def _search(accuracies, baselines, seed=0):
    """A search's results table: the baselines first, then the searched functions."""
    rows = [{"order": i, "class_id": i, "name": f"b{i}", "baseline": f"b{i}", "seed": seed,
             "phase": "search", "val_acc": a} for i, a in enumerate(baselines)]
    rows += [{"order": len(baselines) + i, "class_id": 100 + i, "name": f"f{i}", "baseline": "",
              "seed": seed, "phase": "search", "val_acc": a} for i, a in enumerate(accuracies)]
    return pd.DataFrame(rows)


def test_default_confirmation_counts_by_hand():
    from aquasurf_core.figures.large_scale import default_confirmation

    searches = {
        ("lgp-ucb", "t", 0): _search([0.5, 0.7, np.nan, 0.9], [0.6, 0.65]),   # best 0.9, beat at 2
        ("lgp-ucb", "t", 1): _search([0.66, 0.8], [0.6, 0.65], seed=1),      # best 0.8, at 1
        ("lgp-ucb", "t", 2): _search([0.1, 0.2, 0.95], [0.6, 0.7], seed=2),  # best 0.95, at 3
        ("knr-union", "t", 0): _search([0.5, 0.85, 0.99], [0.6, 0.65]),      # within budget 2: 0.85
        ("random", "t", 0): _search([1.0], [0.1]),                           # not compared
    }
    table = default_confirmation(searches, budget=2).set_index("task")
    row = table.loc["t"]
    assert row["lgp-ucb best per seed"] == "0.700, 0.800, 0.200"  # the first 2 searched only
    assert row["lgp-ucb median best"] == pytest.approx(0.7)
    assert row["knr-union median best"] == pytest.approx(0.85)
    assert row["knr-union seeds"] == 1
    assert not row["held"]  # 0.7 against 0.85
    full = default_confirmation(searches, budget=50).set_index("task").loc["t"]
    assert full["lgp-ucb median best"] == pytest.approx(0.9)
    assert not full["held"]  # 0.9 against the reference's 0.99
    assert full["lgp-ucb evaluations to beat the best baseline"] == 2.0  # median of 2, 1, 3
    assert full["knr-union evaluations to beat the best baseline"] == 2.0
    with pytest.raises(ValueError, match="no search by knr-union"):
        default_confirmation({k: v for k, v in searches.items() if k[0] == "lgp-ucb"})


def test_the_shipped_confirmation_reads_back():
    from aquasurf_core.figures.large_scale import default_confirmation
    from aquasurf_core.paths import shipped_data_dir
    from aquasurf_core.search.shipped import load_confirmation

    found = load_confirmation(shipped_data_dir("confirmation"))
    tasks = {"digits-cnn", "mnist1d-hard-resnet", "mnist1d-hard-vit"}
    assert {(s, t, k) for s, t, k in found if s == "lgp-ucb"} == {
        ("lgp-ucb", t, k) for t in tasks for k in (0, 1, 2)}
    table = default_confirmation({k: v.results for k, v in found.items()})
    assert set(table["task"]) == tasks and (table["lgp-ucb seeds"] == 3).all()
