"""Why a benchmark search stalls: measurements of what a surrogate picks, step by step, and of
how alike the trials' pick sequences are (notebook 04, "The stall").

:func:`replay` re-runs the surrogate of one finished trial at every step after its start, on
the functions the trial had evaluated by then, and records for the function it picked:

* ``score`` and ``max_score`` -- its score and the highest score of any candidate (equal,
  unless the trial was run differently); ``ties`` -- how many candidates share ``max_score``;
* ``best_so_far`` -- the best accuracy evaluated before the pick; ``gap`` --
  ``best_so_far - max_score``: KNR predicts a convex combination of evaluated accuracies, so
  ``gap >= 0`` and a growing gap means the search has left the best functions' neighbourhoods
  for regions it already believes worse (pure exploitation of what is left);
* ``nearest`` -- its distance to the nearest evaluated function, ``to_best`` -- to the best
  evaluated so far (both in the problem's coordinates); ``twin`` -- ``nearest == 0``: with
  inverse-distance weights such a candidate is predicted to be exactly its twin's accuracy;
* ``same_cluster`` -- whether it lies in the cluster (:func:`clusters`) of the best so far.

:func:`sequence_agreement` measures how alike the trials are: for each step, the share of trial
pairs that evaluated the same function at that step, and the largest share of trials whose
picks from that step to the end are one identical sequence.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.sparse.csgraph import connected_components
from scipy.spatial.distance import cdist

from aquasurf_core.search.surrogates import score_candidates

__all__ = ["clusters", "replay", "sequence_agreement", "spacing", "stall_summary"]


def spacing(coords: np.ndarray) -> float:
    """The median distance from each point of ``coords`` (``[n, d]``, finite rows) to its
    nearest other point: the embedding's typical spacing, a unit for the distances of
    :func:`replay`."""
    from sklearn.neighbors import NearestNeighbors

    coords = np.asarray(coords, dtype=np.float64)
    if len(coords) < 2:
        raise ValueError(f"spacing needs at least 2 points, got {len(coords)}")
    d, _ = NearestNeighbors(n_neighbors=2).fit(coords).kneighbors(coords)
    return float(np.median(d[:, 1]))


def clusters(coords: np.ndarray, radius: float) -> np.ndarray:
    """Cluster labels of ``coords`` (``[n, d]``): the connected components of the graph that
    links two points closer than ``radius`` (single linkage cut at ``radius``). Raises
    ``ValueError`` for a radius that is not positive."""
    from sklearn.neighbors import radius_neighbors_graph

    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius!r}")
    graph = radius_neighbors_graph(np.asarray(coords, dtype=np.float64), radius)
    return connected_components(graph, directed=False)[1]


def replay(coords: np.ndarray, valid: np.ndarray, names: Sequence[str], picks: Sequence[str],
           accuracies: Sequence[float], *, surrogate: str = "knr", k: int = 3, start: int = 8,
           radius: float | None = None, options: dict | None = None) -> pd.DataFrame:
    """One row per pick after the ``start`` functions of a trial that evaluated ``picks``
    with ``accuracies`` in order, searched by ``surrogate`` on ``coords`` (``[N, d]``; rows of
    functions that are not ``valid`` are not read): the module docstring's columns (``step``
    counts from 1). ``radius`` cuts the clusters (default: 3 x :func:`spacing`). The
    surrogate is a deterministic one (not ``"rfr"`` or random search). Raises ``ValueError``
    for picks and accuracies of different lengths or an unknown name."""
    if len(picks) != len(accuracies):
        raise ValueError(f"{len(picks)} picks but {len(accuracies)} accuracies")
    if surrogate in ("rfr", "random", "random-filter"):
        raise ValueError(f"replay needs a deterministic surrogate, not {surrogate!r}")
    index = {n: i for i, n in enumerate(names)}
    missing = [p for p in picks if p not in index]
    if missing:
        raise ValueError(f"unknown function {missing[0]!r}: not one of the names")
    coords = np.asarray(coords, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    rows = np.array([index[p] for p in picks], dtype=np.int64)
    y = np.asarray(accuracies, dtype=np.float64)
    embedded = np.flatnonzero(valid)
    if radius is None:
        radius = 3 * spacing(coords[embedded])
    label = np.full(len(names), -1)
    label[embedded] = clusters(coords[embedded], radius)
    rng = np.random.default_rng(0)  # unused by the deterministic surrogates
    out = []
    for s in range(start, len(rows)):
        seen = rows[:s]
        known = valid[seen]
        x_rows, x_y = seen[known], y[:s][known]
        if not len(x_rows):
            continue
        candidates = np.setdiff1d(embedded, seen)
        scores = score_candidates(surrogate, coords[x_rows], x_y, coords[candidates], rng, k,
                                  **(options or {}))
        pick = rows[s]
        where = np.searchsorted(candidates, pick)
        if where >= len(candidates) or candidates[where] != pick:
            continue  # the pick had no coordinates or was evaluated before: not a surrogate pick
        best_row = x_rows[int(np.argmax(x_y))]
        d = cdist(coords[[pick]], coords[x_rows])[0]
        top = scores.max()
        out.append({"step": s + 1, "function": names[pick], "val_acc": float(y[s]),
                    "best_so_far": float(x_y.max()), "score": float(scores[where]),
                    "max_score": float(top), "ties": int((scores == top).sum()),
                    "gap": float(x_y.max() - top), "nearest": float(d.min()),
                    "to_best": float(np.linalg.norm(coords[pick] - coords[best_row])),
                    "twin": bool(d.min() == 0.0),
                    "same_cluster": bool(label[pick] == label[best_row])})
    return pd.DataFrame(out)


def sequence_agreement(results: pd.DataFrame) -> pd.DataFrame:
    """Per ``(benchmark, feature, method, step)`` of tidy search results (one row per
    evaluation, as :func:`~aquasurf_core.search.benchmark_search.run_experiment` returns):
    ``same_pick`` -- the share of trial pairs that evaluated the same function at that step;
    ``identical_tail`` -- the largest share of trials whose picks from that step to the end of
    the search form one identical sequence (1: every trial does the same from there on)."""
    rows = []
    for key, group in results.groupby(["benchmark", "feature", "method"], sort=False):
        table = group.pivot(index="trial", columns="step", values="function")
        n = len(table)
        pairs = n * (n - 1) / 2
        for step in table.columns:
            counts = Counter(table[step].dropna())
            same = sum(c * (c - 1) / 2 for c in counts.values()) / pairs if pairs else 1.0
            tails = Counter(tuple(r) for r in table.loc[:, step:].itertuples(index=False))
            rows.append({"benchmark": key[0], "feature": key[1], "method": key[2],
                         "step": int(step), "same_pick": float(same),
                         "identical_tail": max(tails.values()) / n})
    return pd.DataFrame(rows)


def stall_summary(replays: pd.DataFrame, after: int = 30) -> pd.DataFrame:
    """Per variant (the columns of ``replays`` other than :func:`replay`'s, e.g. benchmark and
    weights), over the picks after step ``after``: the mean ``gap``, the shares of picks that
    are twins, have tied scores, lie in the best's cluster, or improve on the best so far, and
    the median ``nearest`` and ``to_best`` distances."""
    own = {"step", "function", "val_acc", "best_so_far", "score", "max_score", "ties", "gap",
           "nearest", "to_best", "twin", "same_cluster"}
    keys = [c for c in replays.columns if c not in own]
    late = replays[replays["step"] > after].assign(
        improves=lambda f: f["val_acc"] > f["best_so_far"], tied=lambda f: f["ties"] > 1)
    table = late.groupby(keys, sort=False).agg(
        picks=("step", "size"), mean_gap=("gap", "mean"), twins=("twin", "mean"),
        tied=("tied", "mean"), in_best_cluster=("same_cluster", "mean"),
        improves=("improves", "mean"), median_nearest=("nearest", "median"),
        median_to_best=("to_best", "median")).reset_index()
    return table.round({"mean_gap": 4, "twins": 3, "tied": 3, "in_best_cluster": 3,
                        "improves": 3, "median_nearest": 3, "median_to_best": 3})
