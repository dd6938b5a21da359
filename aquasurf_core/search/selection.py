"""Choosing a search method honestly: tune on some benchmarks, report on one held out
(notebook 04, "A stronger default").

A *candidate* is a ``(feature, method)`` pair of tidy search results (``feature`` names the
problem, e.g. ``"both"`` for the union embedding or ``"both (raw)"`` for the raw Eq. 2/3
distances; ``method`` a surrogate with options, e.g. ``"lgp-ucb(kappa=1)"``). Its score on a
benchmark is the mean over trials of the area under the best-so-far curve (AUC, as
:func:`aquasurf_core.figures.search.auc_table`). :func:`held_out_choice` does, for every
benchmark ``b`` in turn, what a user without ``b`` would do: rank the candidates by their mean
score over the *other* benchmarks (each benchmark weighing the same) and choose the top one; the
choice is then judged on ``b`` only, on trials that were not used to choose it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

__all__ = ["held_out_choice", "mean_aucs"]


def mean_aucs(results: pd.DataFrame) -> pd.DataFrame:
    """Mean AUC (mean over evaluations of the best-so-far, then over trials) and trials per
    ``(benchmark, feature, method)`` of tidy results."""
    per_trial = results.groupby(["benchmark", "feature", "method", "trial"])[
        "best_val_so_far"].mean().rename("auc").reset_index()
    return per_trial.groupby(["benchmark", "feature", "method"]).agg(
        auc=("auc", "mean"), trials=("auc", "size")).reset_index()


def held_out_choice(tuning: pd.DataFrame, benchmarks: Sequence[str] | None = None
                    ) -> pd.DataFrame:
    """For each held-out benchmark: the candidate with the highest mean (over the other
    benchmarks) of its mean AUC in ``tuning`` (tidy results), and that tuning score; ties go
    to the first candidate in sorted order. Only candidates present on every other benchmark
    are ranked. Raises ``ValueError`` with fewer than two benchmarks."""
    table = mean_aucs(tuning)
    benches = list(benchmarks or sorted(set(table["benchmark"])))
    if len(benches) < 2:
        raise ValueError(f"held-out choice needs at least two benchmarks, got {benches}")
    rows = []
    for held in benches:
        others = table[table["benchmark"].isin([b for b in benches if b != held])]
        score = others.groupby(["feature", "method"]).agg(
            tuning_auc=("auc", "mean"), benchmarks=("benchmark", "nunique")).reset_index()
        score = score[score["benchmarks"] == len(benches) - 1]
        score = score.sort_values(["tuning_auc", "feature", "method"],
                                  ascending=[False, True, True], kind="stable")
        top = score.iloc[0]
        rows.append({"held out": held, "feature": top["feature"], "method": top["method"],
                     "tuning AUC (other benchmarks)": round(float(top["tuning_auc"]), 4)})
    return pd.DataFrame(rows)
