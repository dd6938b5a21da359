"""Figures and tables of notebook 05: the large-scale searches on new tasks (paper Section 6,
Figure 7 and Table 1).

The functions take the results table of a search -- a shipped search's ``results``
(:func:`aquasurf_core.search.shipped.load_search`) or :func:`aquasurf_core.search.engine.export_results`
of a ledger with a ``baseline`` column -- one row per training run: ``order`` (when it
finished), ``class_id``, ``name``, ``baseline`` (the baseline's name or ""), ``seed``,
``val_acc``, ``test_acc``.

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
  bar per task naming its accuracies at the quartiles (:func:`rank_colours`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from aquasurf_core.search.comparisons import choose_for_comparison, median_over_seeds

__all__ = ["MAP_TICKS", "discoveries_table", "fig7_searches", "fig_space_map", "map_overlay",
           "rank_colours", "search_curve"]


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
