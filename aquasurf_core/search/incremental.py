"""KNR and GP regression updated one result at a time (the searcher's fast path).

A search tells one result per step and re-ranks every candidate. Refitting from scratch costs
``O(m n)`` distances (and, for a GP, an ``O(n^3)`` factorisation and an ``O(m n^2)`` solve) per
step for ``m`` candidates and ``n`` results; most of it was computed at the step before. The
two models here keep what does not change between steps, for a fixed table of ``N`` rows (all
the candidates of a search, by coordinates or by precomputed distances), and compute exactly the
quantities of the stateless scorers of :mod:`aquasurf_core.search.surrogates`:

* :class:`IncrementalKNR` keeps, for every row, its ``k`` nearest results so far (distance and
  accuracy), nearest first, ties to the earlier result -- the order a stable sort of the
  candidate-to-result distances gives, so the predictions are those of
  ``surrogates.knr_neighbours`` plus ``KNeighborsRegressor``'s rule (:func:`knr_prediction`). One
  result costs the ``N`` distances to it and an ``O(N k)`` merge.
* :class:`IncrementalGP` is scikit-learn's ``GaussianProcessRegressor(alpha=0.01,
  normalize_y=True, optimizer=None)`` with the fixed RBF kernel of length 1 (the ``"gpr-*"``
  surrogates): the Cholesky factor ``L`` of ``K + alpha I`` grows by one row per result, and so
  does ``V = L^-1 K(X, rows)`` for all ``N`` rows, with the running column sums of ``V**2``. The
  posterior is then ``mean = K_* (K + alpha I)^-1 y = V^T (L^-1 y)`` and ``var = 1 - sum(V**2)``
  (in standardised units; ``y`` standardised with the current mean and standard deviation, as
  ``normalize_y`` does). One result costs ``O(n N)``.

Both agree with a refit from scratch to floating-point round-off (the tests state the
tolerance); the searcher uses them only where that refit would see the same data (no running
functions counted by the believer).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular
from scipy.spatial.distance import cdist

__all__ = ["IncrementalGP", "IncrementalKNR", "knr_prediction"]


class _Rows:
    """Distances from every row of a fixed table to one row: by coordinates (Euclidean, as
    ``cdist``) or from a precomputed ``[N, N]`` matrix (its column)."""

    def __init__(self, coords: np.ndarray | None = None, distances: np.ndarray | None = None):
        if (coords is None) == (distances is None):
            raise ValueError("give coords or distances, not both")
        self.coords = None if coords is None else np.asarray(coords, dtype=np.float64)
        self.distances = distances
        self.n = len(self.coords if coords is not None else distances)

    def to(self, row: int) -> np.ndarray:
        if self.coords is not None:
            return cdist(self.coords, self.coords[row:row + 1])[:, 0]
        return np.asarray(self.distances[:, row], dtype=np.float64)


class IncrementalKNR:
    """k-nearest-neighbour regression over a fixed table, one result at a time (module
    docstring). The table is given by exactly one of ``coords`` (``[N, d]``, Euclidean
    distances) or ``distances`` (``[N, N]``); ``k`` neighbours are kept per row, averaged
    with ``weights`` ``"distance"`` or ``"uniform"``. Raises ``ValueError`` for another
    ``weights`` or for both or neither of ``coords`` and ``distances``."""

    def __init__(self, k: int, *, coords: np.ndarray | None = None,
                 distances: np.ndarray | None = None, weights: str = "distance"):
        if weights not in ("distance", "uniform"):
            raise ValueError(f"weights must be 'distance' or 'uniform', got {weights!r}")
        self.rows = _Rows(coords, distances)
        self.k, self.weights = int(k), weights
        self.dist = np.full((self.rows.n, 0), np.inf)
        self.value = np.zeros((self.rows.n, 0))
        self.count = 0

    def add(self, row: int, accuracy: float) -> None:
        """One more result: ``accuracy`` at table row ``row``."""
        d = self.rows.to(row)
        dist = np.concatenate([self.dist, d[:, None]], axis=1)
        value = np.concatenate([self.value, np.full((self.rows.n, 1), float(accuracy))],
                               axis=1)
        keep = min(self.k, dist.shape[1])
        order = np.argsort(dist, axis=1, kind="stable")[:, :keep]  # ties: the earlier result
        self.dist = np.take_along_axis(dist, order, axis=1)
        self.value = np.take_along_axis(value, order, axis=1)
        self.count += 1

    def predict(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, weighted standard deviation)`` at table ``rows``
        (:func:`knr_prediction` of their nearest results)."""
        if not self.count:
            raise ValueError("no results yet")
        return knr_prediction(self.dist[rows], self.value[rows], self.weights)


def knr_prediction(dist: np.ndarray, values: np.ndarray,
                   weights: str = "distance") -> tuple[np.ndarray, np.ndarray]:
    """KNR's rule (``KNeighborsRegressor``'s) from each candidate's nearest results, nearest
    first: ``dist`` and their accuracies ``values`` (``[m, k]``). With ``"distance"`` weights
    ``w_j = 1 / d_j`` -- a candidate with results at distance 0 gets their mean --, with
    ``"uniform"`` ``w_j = 1``. Returns ``(mean, spread)``: ``mean = sum_j w_j y_j / sum_j
    w_j`` (the same operations as scikit-learn, so equal accuracies give exactly equal
    predictions) and the weighted standard deviation ``sqrt(sum_j w_j (y_j - mean)^2 /
    sum_j w_j)``."""
    if weights == "uniform":
        w = np.ones_like(dist)
    else:
        with np.errstate(divide="ignore"):
            w = 1.0 / dist
        zero = dist == 0
        hit = zero.any(axis=1)
        w[hit] = zero[hit].astype(float)
    total = w.sum(axis=1)
    mean = (w * values).sum(axis=1) / total
    spread = np.sqrt(np.maximum((w * (values - mean[:, None]) ** 2).sum(axis=1) / total, 0.0))
    return mean, spread


class IncrementalGP:
    """GP regression with a fixed RBF kernel over a fixed table of coordinates, one result at
    a time (module docstring): scikit-learn's ``GaussianProcessRegressor(alpha=alpha,
    normalize_y=True, optimizer=None)`` with ``RBF(length)``."""

    def __init__(self, coords: np.ndarray, *, alpha: float = 0.01, length: float = 1.0):
        self.coords = np.asarray(coords, dtype=np.float64)
        self.alpha, self.length = float(alpha), float(length)
        n_rows = len(self.coords)
        self.L = np.zeros((0, 0))
        self.V = np.zeros((0, n_rows))
        self.v2 = np.zeros(n_rows)  # column sums of V**2
        self.seen: list[int] = []
        self.y: list[float] = []

    def _kernel(self, rows: np.ndarray, row: int) -> np.ndarray:
        scaled = self.coords / self.length
        return np.exp(-0.5 * cdist(scaled[rows], scaled[row:row + 1], "sqeuclidean")[:, 0])

    def add(self, row: int, accuracy: float) -> None:
        """One more result: ``accuracy`` at table row ``row``."""
        k_all = self._kernel(np.arange(len(self.coords)), row)  # k(every row, new)
        n = len(self.seen)
        if n:
            k_seen = k_all[self.seen]
            ell = solve_triangular(self.L, k_seen, lower=True)
            diag = np.sqrt(max(1.0 + self.alpha - ell @ ell, 1e-300))
        else:
            ell, diag = np.zeros(0), np.sqrt(1.0 + self.alpha)
        grown = np.zeros((n + 1, n + 1))
        grown[:n, :n], grown[n, :n], grown[n, n] = self.L, ell, diag
        self.L = grown
        v_new = (k_all - ell @ self.V) / diag
        self.V = np.vstack([self.V, v_new])
        self.v2 += v_new ** 2
        self.seen.append(int(row))
        self.y.append(float(accuracy))

    @property
    def count(self) -> int:
        """Results added so far."""
        return len(self.seen)

    def predict(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, standard deviation)`` of the posterior at table ``rows``, in accuracy
        units (standard deviation at least 1e-12, as the ``"gpr-*"`` surrogates clip it)."""
        if not self.seen:
            raise ValueError("no results yet")
        y = np.asarray(self.y)
        centre, scale = y.mean(), y.std()
        scale = scale if scale > 0 else 1.0
        w = solve_triangular(self.L, (y - centre) / scale, lower=True)
        mean = self.V[:, rows].T @ w * scale + centre
        var = np.maximum(1.0 - self.v2[rows], 0.0) * scale ** 2
        return mean, np.maximum(np.sqrt(var), 1e-12)
