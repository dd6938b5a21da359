"""The surrogates that rank unevaluated functions (paper Section 5; Appendix E, "Gaussian
Process Regression" and "Adjusting k in KNR").

Each surrogate turns the evaluated functions' coordinates and accuracies into a *score* for every
candidate; the search evaluates the highest-scoring candidates next.

* ``"knr"`` -- k-nearest-neighbour regression, ``k = 3``, inverse-distance weights
  (``KNeighborsRegressor(n_neighbors=3, weights="distance")``; with fewer evaluated functions than
  ``k``, all of them): the prediction ``sum_j w_j y_j / sum_j w_j`` over the ``k`` nearest
  evaluated functions, ``w_j = 1 / d_j`` (a candidate at distance 0 from evaluated functions gets
  the mean of their accuracies exactly); ``"knr-uniform"`` -- the same with ``w_j = 1`` (the
  other reading of the paper's "KNR", which states no weights);
* ``"knr-ucb"`` -- KNR (inverse-distance weights) plus an exploration term:
  ``mu + kappa * s``, ``s`` the weighted standard deviation of the ``k`` neighbours' accuracies
  (``s^2 = sum_j w_j (y_j - mu)^2 / sum_j w_j``; ``kappa`` 1 by default);
* ``"lgp-ucb"`` -- Gaussian process regression with the Laplace kernel on distances,
  ``K(a, b) = exp(-d(a, b) / ell)``, which is positive definite for the Euclidean distances of
  coordinates and of the outputs (Eq. 3), for the Manhattan distance of Eq. 2 and for their sum
  (a product of such kernels), so it runs on the raw distances with no embedding. The length
  scale is relative: ``ell = length * median`` of the distances between the evaluated functions
  (``length`` 0.3 by default). Targets are standardised, noise ``alpha = 0.01``; the score is the
  upper confidence bound ``mu + kappa * sigma`` (``kappa`` 1 by default), ``mu = k_*^T (K +
  alpha I)^-1 y``, ``sigma^2 = 1 - k_*^T (K + alpha I)^-1 k_*`` in standardised units (for
  distances that are not a metric, where ``K`` may be indefinite, ``alpha`` grows 10x and
  100x before a ``ValueError``);
* ``"rfr"`` -- ``RandomForestRegressor()`` with scikit-learn's defaults (100 trees), seeded,
  computed by :func:`aquasurf_core.search.forest.forest_predict` (the same trees and
  predictions, bit for bit, without scikit-learn's per-tree overhead);
* ``"svr"`` -- ``SVR()`` with scikit-learn's defaults (RBF kernel, ``C = 1``, ``epsilon = 0.1``);
  the three are the paper's "out of the box" regressors, scored by their predicted accuracy;
* ``"gpr-ei"`` / ``"gpr-ucb"`` -- Gaussian process regression, scored by expected improvement
  over the best accuracy so far, ``EI = (mu - best) Phi(z) + sigma phi(z)``,
  ``z = (mu - best) / sigma``, or by the upper confidence bound ``mu + 1.96 sigma``. The paper
  tried these and found them inconsistent, and states no kernel. Ours is scikit-learn's default
  kernel (a unit-variance RBF of length scale 1) kept fixed (``optimizer=None``: the 2-D UMAP
  coordinates span tens of units, so length 1 is a local smoother) on standardised targets (``normalize_y=True``) with a
  noise term ``alpha = 0.01`` (accuracies are noisy, and rounding twins sit at the same
  coordinates). Learning the kernel (a Matern + white-noise kernel, one optimiser start) cost
  ~145 ms per step here against ~10 ms, which the 100-trial experiment cannot afford;
* ``"random"`` -- uniform random scores: random search over every candidate, as the paper's RS
  (no filter); ``"random-filter"`` -- the same over the functions with valid Fisher spectra
  only, so that the filter's share of the regression methods' gain can be measured.

The surrogates of :data:`DISTANCE_SURROGATES` (the KNR family and ``"lgp-ucb"``) read only
distances, so they also search precomputed distances (``precomputed=True``; e.g. the raw Eq. 2/3
distances) instead of coordinates. Their settings (``kappa``, ``length``) are keyword
``options`` of :func:`score_candidates` (:data:`OPTIONS` lists which surrogate takes which).

Which candidates a surrogate may pick is :data:`USES_FILTER`: the regression methods and
``"random-filter"`` skip functions whose spectrum is invalid (they have no FIM coordinates).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import norm

from aquasurf_core.search.forest import forest_predict

__all__ = ["DISTANCE_SURROGATES", "OPTIONS", "SURROGATES", "USES_FILTER", "USES_COORDINATES",
           "knr_neighbours", "score_candidates"]

SURROGATES = ("knr", "knr-uniform", "knr-ucb", "lgp-ucb", "rfr", "svr", "gpr-ei", "gpr-ucb",
              "random", "random-filter")
#: Surrogates that need coordinates (or, for :data:`DISTANCE_SURROGATES`, distances).
USES_COORDINATES = frozenset({"knr", "knr-uniform", "knr-ucb", "lgp-ucb", "rfr", "svr",
                              "gpr-ei", "gpr-ucb"})
#: Surrogates that skip functions with invalid spectra.
USES_FILTER = USES_COORDINATES | {"random-filter"}
#: Surrogates that read only distances (and so can search precomputed ones).
DISTANCE_SURROGATES = frozenset({"knr", "knr-uniform", "knr-ucb", "lgp-ucb"})
#: The keyword options each surrogate takes, with their defaults.
OPTIONS = {"knr-ucb": {"kappa": 1.0}, "lgp-ucb": {"kappa": 1.0, "length": 0.3}}
UCB_KAPPA = 1.96
GPR_ALPHA = 0.01


def knr_neighbours(distances: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(index, distance)`` of the ``min(k, n)`` nearest evaluated functions of each candidate,
    from ``distances`` (``[m, n]``, candidate to evaluated), nearest first; ties go to the lower
    index (as scikit-learn's brute-force search)."""
    k = min(k, distances.shape[1])
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(distances, order, axis=1)


def _knr_from_distances(d: np.ndarray, y: np.ndarray, k: int, weights: str):
    """``(mean, weighted std)`` of KNR from candidate-to-evaluated distances ``d``: the rule of
    ``KNeighborsRegressor`` (a candidate with neighbours at distance 0 gets their mean)."""
    index, dist = knr_neighbours(d, k)
    values = y[index]
    if weights == "uniform":
        w = np.ones_like(dist)
    else:
        with np.errstate(divide="ignore"):
            w = 1.0 / dist
        zero = dist == 0
        rows = zero.any(axis=1)
        w[rows] = zero[rows].astype(float)
    w = w / w.sum(axis=1, keepdims=True)
    mean = (w * values).sum(axis=1)
    spread = np.sqrt(np.maximum((w * (values - mean[:, None]) ** 2).sum(axis=1), 0.0))
    return mean, spread


def _distances(x, candidates, precomputed):
    """``(evaluated-to-evaluated, candidate-to-evaluated)`` distances."""
    if precomputed:
        return np.asarray(x, np.float64), np.asarray(candidates, np.float64)
    from scipy.spatial.distance import cdist

    return cdist(x, x), cdist(candidates, x)


def _knr(x, y, candidates, rng, k, metric="minkowski", weights="distance"):
    from sklearn.neighbors import KNeighborsRegressor

    model = KNeighborsRegressor(n_neighbors=min(k, len(y)), weights=weights, metric=metric)
    return model.fit(x, y).predict(candidates)


def _knr_uniform(x, y, candidates, rng, k, metric="minkowski"):
    return _knr(x, y, candidates, rng, k, metric, weights="uniform")


def _knr_ucb(x, y, candidates, rng, k, precomputed=False, kappa=1.0):
    _, d = _distances(x, candidates, precomputed)
    mean, spread = _knr_from_distances(d, y, k, "distance")
    return mean + kappa * spread


def _lgp_ucb(x, y, candidates, rng, k, precomputed=False, kappa=1.0, length=0.3):
    from scipy.linalg import cho_factor, cho_solve

    dxx, dcx = _distances(x, candidates, precomputed)
    off = dxx[~np.eye(len(y), dtype=bool)]
    scale = np.median(off) if off.size and np.median(off) > 0 else 1.0
    ell = length * scale
    sd = y.std()
    z = (y - y.mean()) / sd if sd > 0 else y - y.mean()
    factor = None
    for jitter in (1.0, 10.0, 100.0):  # a distance that is not a metric may break definiteness
        try:
            factor = cho_factor(np.exp(-dxx / ell) + jitter * GPR_ALPHA * np.eye(len(y)))
            break
        except np.linalg.LinAlgError:
            continue
    if factor is None:
        raise ValueError("lgp-ucb: the Laplace kernel of these distances is not positive "
                         "definite even with 100x the noise term; are they a metric?")
    kc = np.exp(-dcx / ell)
    mean = kc @ cho_solve(factor, z)
    var = 1.0 - np.einsum("ij,ji->i", kc, cho_solve(factor, kc.T))
    return mean + kappa * np.sqrt(np.maximum(var, 0.0))


def _rfr(x, y, candidates, rng, k):
    # RandomForestRegressor(random_state=seed).fit(x, y).predict(candidates), bit for bit
    return forest_predict(x, y, candidates, int(rng.integers(2**31 - 1)))


def _svr(x, y, candidates, rng, k):
    from sklearn.svm import SVR

    return SVR().fit(x, y).predict(candidates)


def _gpr(x, y, candidates, rng):
    from sklearn.gaussian_process import GaussianProcessRegressor

    model = GaussianProcessRegressor(alpha=GPR_ALPHA, normalize_y=True, optimizer=None)
    model.fit(x, y)
    mean, std = model.predict(candidates, return_std=True)
    return mean, np.maximum(std, 1e-12)


def _gpr_ei(x, y, candidates, rng, k):
    mean, std = _gpr(x, y, candidates, rng)
    z = (mean - y.max()) / std
    return (mean - y.max()) * norm.cdf(z) + std * norm.pdf(z)


def _gpr_ucb(x, y, candidates, rng, k):
    mean, std = _gpr(x, y, candidates, rng)
    return mean + UCB_KAPPA * std


def _random(x, y, candidates, rng, k):
    return rng.random(len(candidates))


_SCORERS: dict[str, Callable] = {"knr": _knr, "knr-uniform": _knr_uniform,
                                 "knr-ucb": _knr_ucb, "lgp-ucb": _lgp_ucb, "rfr": _rfr, "svr": _svr, "gpr-ei": _gpr_ei,
                                 "gpr-ucb": _gpr_ucb, "random": _random,
                                 "random-filter": _random}


def score_candidates(surrogate: str, x: np.ndarray, y: np.ndarray, candidates: np.ndarray,
                     rng: np.random.Generator, k: int = 3, *,
                     precomputed: bool = False, **options: float) -> np.ndarray:
    """Scores (higher: evaluate sooner) of ``candidates`` (``[m, d]`` coordinates; for the
    random surrogates only their number matters) from the evaluated ``x`` (``[n, d]``) and
    their accuracies ``y``. With ``precomputed`` (:data:`DISTANCE_SURROGATES` only) ``x`` holds
    the distances between the evaluated functions (``[n, n]``) and ``candidates`` those from
    each candidate to them (``[m, n]``). ``options`` are the surrogate's settings
    (:data:`OPTIONS`). Raises ``ValueError`` for an unknown surrogate or option, or a
    surrogate that cannot read precomputed distances."""
    if surrogate not in _SCORERS:
        raise ValueError(f"unknown surrogate {surrogate!r}; choose one of "
                         f"{', '.join(SURROGATES)}")
    unknown = set(options) - set(OPTIONS.get(surrogate, {}))
    if unknown:
        raise ValueError(f"surrogate {surrogate!r} takes no option(s) {sorted(unknown)}; it "
                         f"takes {sorted(OPTIONS.get(surrogate, {})) or 'none'}")
    if precomputed and surrogate not in DISTANCE_SURROGATES:
        raise ValueError(f"only {', '.join(sorted(DISTANCE_SURROGATES))} search with "
                         f"precomputed distances, not {surrogate!r}")
    if surrogate in USES_COORDINATES and len(y) == 0:
        raise ValueError(f"surrogate {surrogate!r} needs at least one evaluated function with "
                         "coordinates")
    y = np.asarray(y, dtype=np.float64)
    if surrogate in ("knr", "knr-uniform"):
        scores = _SCORERS[surrogate](x, y, candidates, rng, k,
                                     metric="precomputed" if precomputed else "minkowski")
    elif surrogate in DISTANCE_SURROGATES:
        scores = _SCORERS[surrogate](x, y, candidates, rng, k, precomputed=precomputed,
                                     **options)
    else:
        scores = _SCORERS[surrogate](x, y, candidates, rng, k)
    return np.asarray(scores, dtype=np.float64)
