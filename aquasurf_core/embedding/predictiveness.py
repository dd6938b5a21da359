"""How well a function's neighbours predict its accuracy, per feature (paper Section 4's claim
that the union of both features is a better space to search than outputs, and outputs better
than FIM eigenvalues -- measured instead of read off Figure 4).

For a representation of the functions (2-D UMAP coordinates, or the raw features with the
paper's distances), :func:`neighbour_predictions` predicts each function's validation accuracy
from its ``k = 3`` nearest neighbours, weighted by inverse distance (scikit-learn's
``KNeighborsRegressor(n_neighbors=3, weights="distance")``, the surrogate the paper's search
uses), under ``folds``-fold cross-validation (shuffled, seeded): every function is predicted by
a model that never saw it. :func:`prediction_scores` reports Spearman's rank correlation and
R^2 of the predictions against the truth, with percentile bootstrap intervals over functions
(``resamples`` draws of the functions with replacement, seeded); :func:`paired_differences`
compares two representations on the *same* bootstrap draws, so their difference gets its own
interval.

Raw controls: FIM features with the Eq. 2 distance (Manhattan on the weighted CDFs), outputs
with the Eq. 3 distance (Euclidean on the cleaned outputs), and both with
``d = d_2 / median(d_2) + d_3 / median(d_3)`` -- each distance scaled by its median over all
pairs so that neither dominates (our choice; the paper combines the two only through UMAP).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.stats import spearmanr

__all__ = ["neighbour_predictions", "paired_differences", "prediction_scores"]


def neighbour_predictions(target: np.ndarray, features: np.ndarray | None = None, *,
                          distances: np.ndarray | None = None, metric: str = "euclidean",
                          k: int = 3, folds: int = 10, seed: int = 0) -> np.ndarray:
    """Cross-validated k-NN predictions of ``target`` (float ``[n]``) from ``features``
    (``[n, d]``, with ``metric``) or from a precomputed ``distances`` matrix (``[n, n]``).
    Raises ``ValueError`` for mismatched shapes or too few functions for the folds."""
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.neighbors import KNeighborsRegressor

    target = np.asarray(target, dtype=np.float64)
    if (features is None) == (distances is None):
        raise ValueError("give either features or distances")
    data = np.asarray(features if distances is None else distances, dtype=np.float64)
    if data.shape[0] != len(target) or (distances is not None and data.shape != (len(target),) * 2):
        raise ValueError(f"{data.shape} does not fit {len(target)} targets")
    if not np.isfinite(target).all():
        raise ValueError("the target has non-finite values")
    if len(target) < folds * 2 or len(target) * (folds - 1) // folds <= k:
        raise ValueError(f"{len(target)} functions are too few for {folds}-fold "
                         f"cross-validation with k={k}")
    model = KNeighborsRegressor(n_neighbors=k, weights="distance",
                                metric="precomputed" if distances is not None else metric)
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, data, target, cv=splitter)


def _scores(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    rho = spearmanr(truth, pred).statistic
    residual = np.sum((truth - pred) ** 2)
    total = np.sum((truth - truth.mean()) ** 2)
    return float(rho), float(1.0 - residual / total) if total > 0 else float("nan")


def _draws(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def prediction_scores(truth: np.ndarray, pred: np.ndarray, *, resamples: int = 1000,
                      seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """``{"n", "spearman", "spearman_lo", "spearman_hi", "r2", "r2_lo", "r2_hi"}``: the scores
    of ``pred`` and their percentile bootstrap intervals at ``level``."""
    truth, pred = np.asarray(truth, float), np.asarray(pred, float)
    rho, r2 = _scores(truth, pred)
    boot = np.array([_scores(truth[i], pred[i]) for i in _draws(len(truth), resamples, seed)])
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    return {"n": len(truth), "spearman": rho,
            "spearman_lo": float(np.nanpercentile(boot[:, 0], lo)),
            "spearman_hi": float(np.nanpercentile(boot[:, 0], hi)),
            "r2": r2, "r2_lo": float(np.nanpercentile(boot[:, 1], lo)),
            "r2_hi": float(np.nanpercentile(boot[:, 1], hi))}


def paired_differences(truth: np.ndarray, preds: Mapping[str, np.ndarray],
                       pairs: list[tuple[str, str]], *, resamples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> list[dict]:
    """For each ``(a, b)`` of ``pairs``: Spearman and R^2 of ``preds[a]`` minus those of
    ``preds[b]``, with intervals from the same bootstrap draws (a difference whose interval
    excludes 0 is not bootstrap noise)."""
    truth = np.asarray(truth, float)
    draws = _draws(len(truth), resamples, seed)
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    out = []
    for a, b in pairs:
        pa, pb = np.asarray(preds[a], float), np.asarray(preds[b], float)
        point = np.subtract(_scores(truth, pa), _scores(truth, pb))
        boot = np.array([np.subtract(_scores(truth[i], pa[i]), _scores(truth[i], pb[i]))
                         for i in draws])
        out.append({"a": a, "b": b, "Δ spearman": float(point[0]),
                    "Δ spearman lo": float(np.nanpercentile(boot[:, 0], lo)),
                    "Δ spearman hi": float(np.nanpercentile(boot[:, 0], hi)),
                    "Δ r2": float(point[1]),
                    "Δ r2 lo": float(np.nanpercentile(boot[:, 1], lo)),
                    "Δ r2 hi": float(np.nanpercentile(boot[:, 1], hi))})
    return out
