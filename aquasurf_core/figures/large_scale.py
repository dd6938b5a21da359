"""Figures and tables of notebook 05: the large-scale searches on new tasks (paper Section 6,
Figure 7 and Table 1).

The functions take the results table of a search -- a shipped search's ``results``
(:func:`aquasurf_core.search.shipped.load_search`) or
:func:`aquasurf_core.search.engine.export_results` of a ledger with a ``baseline`` column -- one row
per training run: ``order`` (when it finished), ``class_id``, ``name``, ``baseline`` (the baseline's
name or ""), ``seed``, ``val_acc``, ``test_acc``.

* Figure 7 (:func:`fig7_searches`): per task, the validation accuracy of every evaluation of
  the search (its own seed) in the order they finished, the best so far as a step line, the
  baselines marked and named.
* The discoveries table (:func:`discoveries_table`): the top discovered functions against the
  baselines, median test accuracy over the seeds every one of them was trained with
  (:func:`aquasurf_core.search.comparisons.median_over_seeds`), and a verdict: does the best
  discovery beat every baseline? With the search's recipe, or (``final=True``, Table 1) with
  the longer final training (the rows of phase "final").
* The map (:func:`fig_space_map`, the paper's appendix figure): the whole space embedded by
  outputs (:mod:`aquasurf_core.embedding.space_map`) drawn as a density (log count per cell:
  428k points are too many for a figure file) with every search's evaluated functions on top,
  WebGL markers coloured by their validation accuracy's rank within their task, one colour
  bar per task naming its accuracies at the quartiles (:func:`rank_colours`);
  :func:`map_summary` says how many of the searched functions it places, and why none when the
  search ran over another space.
* Table 2 (:func:`transfer_table`): the discoveries trained on another task.
* The engine's default against the paper's search (:func:`default_confirmation`): the best
  validation accuracy each search found within the same budget, per seed, and whether the
  median over the default's seeds reaches the best of the paper's KNR search.
* The claims (:func:`claims_table`, printed by :func:`claims_text`): the paper's Section 6-7
  claims judged on these searches -- the best discovery beats every baseline (Table 1 when
  the final runs exist, else the search's recipe; Table 3 with 13 baselines), a function
  better than ReLU within tens of evaluations (Figure 7), the discoveries transfer (Table 2:
  against ReLU, and against every baseline), and the network feeds the best discovery more
  inputs where it is flat after training (Figure 9). A function whose runs diverged is
  reported as diverged (its accuracy is chance by convention, not a result), and the Figure 9
  claim is not checked on a diverged training run (its "trained" inputs are where training
  blew up). :func:`usage_text` says the same of Figure 9's summary line.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from aquasurf_core.search.comparisons import choose_for_comparison, median_over_seeds

__all__ = ["MAP_TICKS", "VERDICTS", "claims_table", "claims_text", "default_confirmation",
           "discoveries_table",
           "fig7_searches", "fig_space_map", "map_overlay", "map_summary", "rank_colours",
           "search_curve", "transfer_table", "usage_text"]

#: The verdicts :func:`claims_table` gives.
VERDICTS = ("held", "not held", "not checked")
#: What :func:`claims_text` says first when the searches are toy-sized (the smoke profile).
TOY_NOTE = ("toy-sized searches (the smoke profile): these verdicts only show that the code runs "
            "end to end; they say nothing about the paper's claims (run the paper profile)")


def search_curve(results: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The search's runs (``seed``; of phase "search" when the table has phases: the later
    comparison, final and transfer runs are not evaluations of the search) in the order they
    finished, numbered from 1, with the best validation accuracy so far (failed runs, NaN,
    count as not improving)."""
    keep = results["seed"] == seed
    if "phase" in results:
        keep &= results["phase"] == "search"
    runs = results[keep].sort_values("order", kind="stable")
    runs = runs.reset_index(drop=True).copy()
    runs.insert(0, "evaluation", np.arange(1, len(runs) + 1))
    runs["best_so_far"] = np.fmax.accumulate(runs["val_acc"].to_numpy(dtype=float))
    return runs


def fig7_searches(searches: Mapping[str, pd.DataFrame], *, seed: int = 0):
    """Figure 7: one panel per task (``{task: results}``)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(searches)
    fig = make_subplots(rows=1, cols=max(1, len(names)), subplot_titles=names,
                        horizontal_spacing=0.06)
    for i, task in enumerate(names, start=1):
        curve = search_curve(searches[task], seed)
        base = curve["baseline"] != ""
        first = i == 1
        fig.add_trace(go.Scatter(
            x=curve.loc[~base, "evaluation"], y=curve.loc[~base, "val_acc"], mode="markers",
            marker={"size": 6, "color": "#1f77b4", "opacity": 0.7}, name="searched function",
            text=curve.loc[~base, "name"], hovertemplate="%{text}<br>val acc %{y:.3f}",
            legendgroup="searched", showlegend=first), row=1, col=i)
        fig.add_trace(go.Scatter(
            x=curve.loc[base, "evaluation"], y=curve.loc[base, "val_acc"],
            mode="markers", marker={"size": 10, "symbol": "star", "color": "#d62728"},
            text=curve.loc[base, "baseline"].str.replace("(x)", "", regex=False),
            name="baseline (hover for its name)",
            hovertemplate="%{text}<br>val acc %{y:.3f}", legendgroup="baseline",
            showlegend=first), row=1, col=i)
        fig.add_trace(go.Scatter(
            x=curve["evaluation"], y=curve["best_so_far"], mode="lines",
            line={"shape": "hv", "color": "black", "width": 1.5}, name="best so far",
            legendgroup="best", showlegend=first), row=1, col=i)
        fig.update_xaxes(title_text="evaluation", row=1, col=i)
    fig.update_yaxes(title_text="validation accuracy", row=1, col=1)
    fig.update_layout(title="Figure 7: searches on new tasks (every evaluation, in order)",
                      width=max(560, 460 * len(names)), height=460, template="plotly_white",
                      legend={"orientation": "h", "y": -0.22})
    return fig


def discoveries_table(searches: Mapping[str, pd.DataFrame], *, top: int = 3, seed: int = 0,
                      final: bool = False,
                      phase: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(table, verdicts)``: per task, the baselines and the ``top`` discoveries (chosen by
    the search's validation accuracy) with their median test accuracy over the seeds all of
    them were trained with; and per task whether the best discovery's median beats every
    baseline's (with the margin), whether that holds clear of the seed-to-seed noise (every
    seed of the best discovery above every seed of the best baseline), and whether it beats
    ReLU. ``final`` takes the accuracies from the final, longer training (phase "final", the
    paper's Table 1) instead of the search's recipe; ``phase`` from any phase, e.g.
    ``"transfer:<task>"`` (Table 2: trained on another task). A results table without a
    ``phase`` column is all search. Raises ``ValueError`` for a task with no seed of the
    wanted phase that every chosen function was trained with."""
    wanted = phase if phase is not None else ("final" if final else None)
    tables, verdicts = [], []
    for task, results in searches.items():
        phases = results["phase"] if "phase" in results else pd.Series("search", results.index)
        searched = results[phases.isin(["search", "compare"])]
        runs = results[phases == wanted] if wanted else searched
        baselines = {int(c): str(b) for c, b in zip(searched["class_id"], searched["baseline"],
                                                      strict=True) if b}
        chosen = choose_for_comparison(searched, baselines, top, seed=seed)
        seeds = sorted(set.intersection(*[set(runs.loc[runs["class_id"] == c, "seed"])
                                          for c, _, _ in chosen]))
        if not seeds:
            raise ValueError(f"{task}: no seed has a {wanted or 'search'} run of every chosen "
                             "function")
        table = median_over_seeds(runs, chosen, seeds)
        table.insert(0, "task", task)
        table.insert(3, "seeds", len(seeds))
        tables.append(table)
        found = table[table["kind"] == "discovered"]
        base = table[table["kind"] == "baseline"]
        best, strongest = found.iloc[0], base.iloc[0]
        margin = best["median test acc"] - strongest["median test acc"]
        relu = base.loc[base["function"] == "relu(x)", "median test acc"]
        verdicts.append({"task": task, "best discovered": best["function"],
                         "discovered median test acc": best["median test acc"],
                         "best baseline": strongest["function"],
                         "baseline median test acc": strongest["median test acc"],
                         "margin": margin, "seeds": len(seeds),
                         "beats every baseline": "yes" if margin > 0 else "no",
                         # every seed of the best discovery above every seed of the baseline
                         "clear of seed noise": "yes" if best["min test acc"]
                         > strongest["max test acc"] else "no",
                         "beats ReLU": ("yes" if best["median test acc"] > relu.iloc[0]
                                        else "no") if len(relu) else "no ReLU run"})
    return pd.concat(tables, ignore_index=True), pd.DataFrame(verdicts)


def map_overlay(space_map, searches: Mapping[str, pd.DataFrame], *,
                seed: int = 0) -> pd.DataFrame:
    """Every function each search evaluated (its own seed, search runs) with its place on
    ``space_map`` (:func:`aquasurf_core.embedding.space_map.locate`): columns ``task``, ``name``,
    ``baseline``, ``val_acc``, ``class_id``, ``x``, ``y``; ``x``/``y`` NaN where the map does not
    hold the function (e.g. a search of another space)."""
    from aquasurf_core.embedding.space_map import locate

    parts = []
    for task, results in searches.items():
        runs = search_curve(results, seed)
        placed = locate(space_map, runs["name"])
        parts.append(pd.DataFrame({"task": task, "name": runs["name"].to_numpy(),
                                   "baseline": runs["baseline"].to_numpy(),
                                   "val_acc": runs["val_acc"].to_numpy(dtype=float),
                                   "class_id": placed["class_id"].to_numpy(),
                                   "x": placed["x"].to_numpy(), "y": placed["y"].to_numpy()}))
    columns = ["task", "name", "baseline", "val_acc", "class_id", "x", "y"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def rank_colours(values: np.ndarray) -> np.ndarray:
    """Each finite value's place among the finite ``values``, from 0 (the lowest) to 1 (the
    highest): ``(rank - 1) / (n - 1)`` with ties sharing their mean rank, 0.5 for a single
    value, NaN where the value is not finite. This is the scale on which a quantile of the
    values sits at its own level, so a colour bar can name the quantiles (:func:`fig_space_map`)."""
    values = np.asarray(values, dtype=float)
    out = np.full(len(values), np.nan)
    finite = np.isfinite(values)
    n = int(finite.sum())
    if n == 1:
        out[finite] = 0.5
    elif n > 1:
        ranks = pd.Series(values[finite]).rank(method="average").to_numpy()
        out[finite] = (ranks - 1) / (n - 1)
    return out


#: The quantiles named on each task's colour bar in :func:`fig_space_map`.
MAP_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)


def fig_space_map(space_map, overlay: pd.DataFrame, *, bins: int = 400):
    """The map figure: the log10 count of functions per cell of a ``bins`` x ``bins`` grid over
    the map (grey), and the ``overlay`` rows (:func:`map_overlay`) that have coordinates, one
    marker symbol per task; baselines with a red outline (in the legend), runs without an
    accuracy as grey crosses. Tasks differ in accuracy (digits near 1, the hard MNIST-1D tasks
    near 0.5), so each task has its own colour axis and colour bar: a function's colour is its
    validation accuracy's rank within its task (:func:`rank_colours`), the bar naming the
    task's accuracies at the quantiles :data:`MAP_TICKS`."""
    import plotly.graph_objects as go

    xy = space_map.coords[["x", "y"]].to_numpy(dtype=float)
    counts, xe, ye = np.histogram2d(xy[:, 0], xy[:, 1], bins=bins)
    with np.errstate(divide="ignore"):
        density = np.where(counts > 0, np.log10(counts), np.nan)
    fig = go.Figure(go.Heatmap(
        x=(xe[:-1] + xe[1:]) / 2, y=(ye[:-1] + ye[1:]) / 2, z=density.T,
        colorscale=[[0, "#eeeeee"], [1, "#444444"]], showscale=False,
        hovertemplate="log10 functions %{z:.1f}<extra></extra>", name="all functions"))
    shown = overlay.dropna(subset=["x", "y"])
    symbols = ["circle", "diamond", "square", "triangle-up", "cross", "x"]
    tasks = list(dict.fromkeys(shown["task"]))
    bar_len = 0.9 / max(1, len(tasks))
    layout_axes = {}
    for i, task in enumerate(tasks):
        rows = shown[shown["task"] == task]
        symbol = symbols[i % len(symbols)]
        axis = "coloraxis" if i == 0 else f"coloraxis{i + 1}"
        val = rows["val_acc"].to_numpy(dtype=float)
        rank = rank_colours(val)
        scored = np.isfinite(rank)
        base = (rows["baseline"] != "").to_numpy()
        # a legend entry per task in a neutral colour: the markers' colours are ranks
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=task,
                                 legendgroup=task, marker={"symbol": symbol, "size": 9,
                                                           "color": "#888"}))
        fig.add_trace(go.Scattergl(
            x=rows["x"][scored], y=rows["y"][scored], mode="markers", name=task,
            legendgroup=task, showlegend=False,
            text=np.where(base, rows["baseline"], rows["name"])[scored],
            customdata=val[scored],
            hovertemplate="%{text}<br>val acc %{customdata:.3f}<extra>" + task + "</extra>",
            marker={"symbol": symbol, "size": np.where(base[scored], 11, 7),
                    "color": rank[scored], "coloraxis": axis,
                    "line": {"width": np.where(base[scored], 2, 0.3), "color": "#d62728"}}))
        if (~scored).any():
            fig.add_trace(go.Scatter(
                x=rows["x"][~scored], y=rows["y"][~scored], mode="markers",
                name=f"{task}: no accuracy", legendgroup=task, showlegend=False,
                text=rows["name"][~scored], hovertemplate="%{text}<br>no accuracy",
                marker={"symbol": "x-thin", "size": 7, "line": {"width": 1.5,
                                                                 "color": "#777"}}))
        finite = val[np.isfinite(val)]
        ticks = np.quantile(finite, MAP_TICKS) if len(finite) else [np.nan] * len(MAP_TICKS)
        layout_axes[axis] = {
            "colorscale": "Viridis", "cmin": 0, "cmax": 1,
            "colorbar": {"title": {"text": f"{task}<br>val acc<br>(rank scale)",
                                   "font": {"size": 11}},
                         "tickvals": list(MAP_TICKS),
                         "ticktext": [f"{t:.3f}" for t in ticks], "tickfont": {"size": 10},
                         "len": bar_len * 0.8, "y": 1 - bar_len * (i + 0.5),
                         "yanchor": "middle", "x": 1.02, "thickness": 14}}
    if (shown["baseline"] != "").any():
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="baseline",
                                 marker={"symbol": "circle", "size": 11, "color": "white",
                                         "line": {"width": 2, "color": "#d62728"}}))
    n = len(space_map)
    fig.update_layout(
        title=f"The {n:,} unique functions embedded by outputs (grey: density), with the "
              "searched functions",
        width=900, height=760, template="plotly_white",
        xaxis={"title": "UMAP 1", "showgrid": False}, yaxis={"title": "UMAP 2",
                                                              "showgrid": False},
        legend={"orientation": "h", "y": -0.08}, **layout_axes)
    return fig


def _phases(results: pd.DataFrame) -> pd.Series:
    return results["phase"] if "phase" in results else pd.Series("search", results.index)


def _failed_runs(results: pd.DataFrame, class_id: int, phases) -> tuple[int, int, str]:
    """``(runs not "ok", runs, their statuses)`` of ``class_id`` in ``phases``; a table
    without a ``status`` column has only "ok" runs."""
    rows = results[(results["class_id"] == class_id) & _phases(results).isin(list(phases))]
    if "status" not in rows:
        return 0, len(rows), ""
    bad = rows.loc[rows["status"] != "ok", "status"]
    return len(bad), len(rows), "/".join(sorted(set(bad)))


def transfer_table(searches: Mapping[str, pd.DataFrame], transfer: Mapping[str, str], *,
                   top: int = 3, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 2: ``(table, verdicts)`` of :func:`discoveries_table` on the runs of phase
    ``"transfer:<other>"`` of each task of ``searches`` that ``transfer`` maps to another task
    (``{task: other}``), with a column ``trained on``; empty frames when there is none. Raises
    ``ValueError`` (from :func:`discoveries_table`) for a task without those runs."""
    tables, verdicts = [], []
    for task, other in transfer.items():
        if task not in searches:
            continue
        table, verdict = discoveries_table({task: searches[task]}, top=top, seed=seed,
                                           phase=f"transfer:{other}")
        tables.append(table.assign(**{"trained on": other}))
        verdicts.append(verdict.assign(**{"trained on": other}))
    if not tables:
        return pd.DataFrame(), pd.DataFrame()
    return pd.concat(tables, ignore_index=True), pd.concat(verdicts, ignore_index=True)


def _against_baselines(claim: str, task: str, results: pd.DataFrame, table: pd.DataFrame,
                       verdict: Mapping, phases, *, versus_relu: bool = False) -> dict:
    """A claim row: does the best discovery of ``table`` beat every baseline (or, with
    ``versus_relu``, ReLU)? Runs not "ok" are said to be what they are."""
    found = table[table["kind"] == "discovered"].iloc[0]
    bad, runs, statuses = _failed_runs(results, int(found["class_id"]), phases)
    fn, acc = verdict["best discovered"], verdict["discovered median test acc"]
    base, base_acc = verdict["best baseline"], verdict["baseline median test acc"]
    seeds = f"median of {verdict['seeds']} seed{'s' if verdict['seeds'] != 1 else ''}"
    if runs and bad == runs:
        return {"claim": claim, "task": task, "verdict": "not held",
                "evidence": f"best discovery {fn}: all {runs} of its runs {statuses} (recorded "
                            f"at chance accuracy, {acc:.3f}: not a result); best baseline "
                            f"{base} {base_acc:.3f}"}
    failed = f"; {bad} of its {runs} runs {statuses}" if bad else ""
    if versus_relu:
        relu = table.loc[(table["kind"] == "baseline") & (table["function"] == "relu(x)"),
                         "median test acc"]
        if not len(relu):
            return {"claim": claim, "task": task, "verdict": "not checked",
                    "evidence": f"no ReLU run to compare {fn} with"}
        every = "held" if verdict["beats every baseline"] == "yes" else "not held"
        return {"claim": claim, "task": task,
                "verdict": "held" if verdict["beats ReLU"] == "yes" else "not held",
                "evidence": f"best discovery {fn} {acc:.3f} vs ReLU {relu.iloc[0]:.3f}; against "
                            f"every baseline {every}: best baseline {base} {base_acc:.3f} (margin "
                            f"{verdict['margin']:+.3f}, {seeds}){failed}"}
    held = verdict["beats every baseline"] == "yes"
    spread = ("" if not held else ", clear of the seed noise"
              if verdict["clear of seed noise"] == "yes" else ", within the seed-to-seed spread")
    return {"claim": claim, "task": task, "verdict": "held" if held else "not held",
            "evidence": f"best discovery {fn} {acc:.3f} vs best baseline {base} {base_acc:.3f} "
                        f"(margin {verdict['margin']:+.3f}, {seeds}{spread}){failed}"}


def _beats_relu_early(claim: str, task: str, results: pd.DataFrame, seed: int) -> dict:
    curve = search_curve(results, seed)
    relu = curve[curve["baseline"] == "relu(x)"]
    row = {"claim": claim, "task": task}
    if not len(relu) or not np.isfinite(relu["val_acc"].iloc[0]) or (
            "status" in relu and relu["status"].iloc[0] != "ok"):
        why = "no ReLU run" if not len(relu) else f"ReLU's run {relu['status'].iloc[0]}" \
            if "status" in relu else "ReLU's run has no accuracy"
        return {**row, "verdict": "not checked", "evidence": f"{why} in the search"}
    base = float(relu["val_acc"].iloc[0])
    searched = curve[curve["baseline"] == ""].reset_index(drop=True)
    above = searched.index[searched["val_acc"] > base]
    if len(above):
        return {**row, "verdict": "held",
                "evidence": f"a function better than ReLU ({base:.3f}) after {above[0] + 1} "
                            f"searched functions, best {searched['val_acc'].max():.3f} in "
                            f"{len(searched)}"}
    return {**row, "verdict": "not held",
            "evidence": f"no searched function beat ReLU ({base:.3f}) in {len(searched)}"}


def _usage_claim(claim: str, usage) -> dict:
    from aquasurf_core.search.usage import usage_table

    status = usage.metrics.get("status", "ok")
    row = {"claim": claim, "task": usage.task}
    if status != "ok":
        return {**row, "verdict": "not checked",
                "evidence": f"the training run of {usage.fn_name} {status}: its inputs 'after "
                            "training' are where training stopped, not a trained network's"}
    every = usage_table(usage).set_index("site").loc["all"]
    before, after = every["init flat share"], every["trained flat share"]
    return {**row, "verdict": "held" if after > before else "not held",
            "evidence": f"after training the network feeds {usage.fn_name} "
                        f"{'more' if after > before else 'no more'} inputs where it is flat: "
                        f"{before:.1%} -> {after:.1%} of all sites' inputs"}


def claims_table(searches: Mapping[str, pd.DataFrame], *, top: int = 3, seed: int = 0,
                 transfer: Mapping[str, str] | None = None,
                 coatnet: Mapping[str, pd.DataFrame] | None = None, usage=None,
                 toy: bool = False) -> pd.DataFrame:
    """The paper's Section 6-7 claims judged on notebook 05's searches (module docstring).

    Arguments:
        searches: ``{task: results}`` of the 4-node searches.
        top: discoveries compared per task (:func:`discoveries_table`).
        seed: the searches' seed.
        transfer: ``{task: other task}`` of Table 2 (a task of ``searches`` without runs on
            its other task is "not checked").
        coatnet: ``{task: results}`` of Table 3's searches (every baseline they ran).
        usage: Figure 9's :class:`~aquasurf_core.search.usage.ActivationUsage`, or ``None``.
        toy: the searches are toy-sized (the smoke profile): every evidence says so first.

    Returns one row per claim and task: ``claim``, ``task``, ``verdict`` (one of
    :data:`VERDICTS`) and ``evidence`` (a sentence with the numbers). The first claim is
    judged on the final, longer training (Table 1) for a task that has it, else on the
    search's recipe.
    """
    rows = []
    for task, results in searches.items():
        final = bool((_phases(results) == "final").any())
        table, verdicts = discoveries_table({task: results}, top=top, seed=seed, final=final)
        label = "Table 1, trained longer" if final else "the search's recipe"
        rows.append(_against_baselines(
            f"the best discovery beats every baseline (Section 6; {label})", task, results,
            table, verdicts.iloc[0], ["final"] if final else ["search", "compare"]))
    for task, results in searches.items():
        rows.append(_beats_relu_early(
            "tens of evaluations find a function better than ReLU (Section 6; Figure 7)",
            task, results, seed))
    claim = "the discoveries transfer to another task (Section 6; Table 2)"
    for task, other in (transfer or {}).items():
        if task not in searches:
            continue
        phase = f"transfer:{other}"
        if not (_phases(searches[task]) == phase).any():
            rows.append({"claim": claim, "task": f"{task} -> {other}", "verdict": "not checked",
                         "evidence": f"no runs of {task}'s discoveries on {other}"})
            continue
        table, verdicts = discoveries_table({task: searches[task]}, top=top, seed=seed,
                                            phase=phase)
        rows.append(_against_baselines(claim, f"{task} -> {other}", searches[task], table,
                                       verdicts.iloc[0], [phase], versus_relu=True))
    for task, results in (coatnet or {}).items():
        table, verdicts = discoveries_table({task: results}, top=top, seed=seed)
        bases = int((table["kind"] == "baseline").sum())
        rows.append(_against_baselines(
            f"a new architecture and new operators: the best discovery beats all {bases} "
            "baselines (Section 6; Table 3)", task, results, table, verdicts.iloc[0],
            ["search", "compare"]))
    if usage is not None:
        rows.append(_usage_claim("the trained network uses the best discovery's flat regions "
                                 "more than at initialisation (Section 7; Figure 9)", usage))
    claims = pd.DataFrame(rows, columns=["claim", "task", "verdict", "evidence"])
    if toy:
        claims["evidence"] = "toy-sized run, says nothing about the claim: " + claims["evidence"]
    return claims


def claims_text(claims: pd.DataFrame, *, toy: bool = False) -> str:
    """:func:`claims_table` as lines: per claim its name, then ``task: VERDICT: evidence``;
    with ``toy``, :data:`TOY_NOTE` first."""
    lines = [f"NOTE: {TOY_NOTE}", ""] if toy else []
    for claim, rows in claims.groupby("claim", sort=False):
        lines.append(claim)
        lines += [f"  {r.task}: {r.verdict.upper()}: {r.evidence}" for r in rows.itertuples()]
    return "\n".join(lines)


def usage_text(usage) -> str:
    """Figure 9's summary line: the share of inputs where the function is flat and the 1%-99%
    range of the inputs, at initialisation and after training. For a training run that did
    not end "ok" (diverged), says so and gives the initialisation only: the 'after training'
    inputs are where it blew up (ranges like -2e19 mean nothing)."""
    from aquasurf_core.search.usage import usage_table

    every = usage_table(usage).set_index("site").loc["all"]
    status = usage.metrics.get("status", "ok")
    init = (f"{every['init flat share']:.1%} of the inputs in its flat regions, 1%-99% range "
            f"[{every['init q01']:.2f}, {every['init q99']:.2f}]")
    if status != "ok":
        return (f"{usage.fn_name} on {usage.task}: the training run {status} (its accuracy, "
                f"{usage.metrics.get('val_acc', float('nan')):.3f}, is chance by convention), so "
                f"only the initialisation means something: {init}")
    return (f"{usage.fn_name} on {usage.task} (val acc {usage.metrics['val_acc']:.3f}): inputs "
            f"in its flat regions {every['init flat share']:.1%} at initialisation, "
            f"{every['trained flat share']:.1%} after training; 1%-99% range "
            f"[{every['init q01']:.2f}, {every['init q99']:.2f}] -> "
            f"[{every['trained q01']:.2f}, {every['trained q99']:.2f}]")


def map_summary(space_map, overlay: pd.DataFrame, spaces: Mapping[str, str] | None = None, *,
                map_space: str = "4-node") -> str:
    """One line on the map (:func:`fig_space_map`): its size and settings, and how many of the
    ``overlay``'s functions it places. ``spaces`` (``{task: space searched}``) names the
    searches of another space than ``map_space``, whose functions the map cannot hold."""
    placed = overlay.dropna(subset=["x", "y"])
    text = (f"map: {len(space_map):,} functions of the {map_space} space "
            f"({space_map.manifest['settings']['pca_components']}-component PCA keeping "
            f"{space_map.manifest['explained_variance']:.5f} of the variance, then UMAP); "
            f"{len(placed)} of {len(overlay)} evaluated functions placed")
    other = {task: space for task, space in (spaces or {}).items() if space != map_space}
    if other and len(placed) < len(overlay):
        text += (" (not drawn: " + ", ".join(f"{task}, a search of the {space} space"
                                             for task, space in other.items())
                 + ", whose functions the map does not hold)")
    return text


def default_confirmation(searches: Mapping[tuple[str, str, int], pd.DataFrame], *,
                         default: str = "lgp-ucb", reference: str = "knr-union",
                         budget: int = 50) -> pd.DataFrame:
    """The engine's ``default`` surrogate against the paper's search (``reference``) on each
    task: ``searches`` maps ``(surrogate, task, seed)`` to a search's results (as
    :func:`search_curve` reads them). One row per task: each surrogate's best validation
    accuracy within its first ``budget`` evaluations beyond the baselines, per seed and
    (``median``) over seeds, how many searched functions it took to beat the best baseline
    (median over seeds; NaN if never), and ``held``: the default's median reaches the
    reference's median best. Raises ``ValueError`` when a task lacks either surrogate."""
    rows: dict[str, dict] = {}
    for (surrogate, task, seed), results in sorted(searches.items()):
        if surrogate not in (default, reference):
            continue
        curve = search_curve(results, seed)
        baseline = curve["baseline"].astype(str) != "" if "baseline" in curve else \
            pd.Series(False, index=curve.index)
        best_baseline = curve.loc[baseline, "val_acc"].max()
        searched = curve.loc[~baseline].head(budget).reset_index(drop=True)
        acc = searched["val_acc"].to_numpy(dtype=float)
        best = float(np.nanmax(acc)) if np.isfinite(acc).any() else float("nan")
        beat = np.flatnonzero(np.nan_to_num(acc, nan=-1.0) > best_baseline)
        row = rows.setdefault(task, {"task": task})
        row.setdefault(f"{surrogate}: best per seed", []).append(round(best, 4))
        row.setdefault(f"{surrogate}: to beat the best baseline", []).append(
            float(beat[0] + 1) if len(beat) else float("nan"))
    table = []
    for task, row in rows.items():
        missing = [s for s in (default, reference) if f"{s}: best per seed" not in row]
        if missing:
            raise ValueError(f"task {task!r} has no search by {', '.join(missing)}")
        out = {"task": task}
        for s in (default, reference):
            bests = row[f"{s}: best per seed"]
            out[f"{s} seeds"] = len(bests)
            out[f"{s} best per seed"] = ", ".join(f"{b:.3f}" for b in bests)
            out[f"{s} median best"] = float(np.median(bests))
            out[f"{s} evaluations to beat the best baseline"] = float(
                np.nanmedian(row[f"{s}: to beat the best baseline"])) if np.isfinite(
                row[f"{s}: to beat the best baseline"]).any() else float("nan")
        out["held"] = out[f"{default} median best"] >= out[f"{reference} median best"]
        table.append(out)
    return pd.DataFrame(table)
