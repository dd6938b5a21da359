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
  (:func:`aquasurf_core.search.engine.median_over_seeds`), and a verdict: does the best
  discovery beat every baseline? With the search's recipe, or (``final=True``, Table 1) with
  the longer final training (the rows of phase "final").
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from aquasurf_core.search.engine import choose_for_comparison, median_over_seeds

__all__ = ["discoveries_table", "fig7_searches", "search_curve"]


def search_curve(results: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The search's runs (``seed``) in the order they finished, numbered from 1, with the
    best validation accuracy so far (failed runs, NaN, count as not improving)."""
    runs = results[results["seed"] == seed].sort_values("order", kind="stable")
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
