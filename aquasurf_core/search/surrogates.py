"""The surrogates that rank unevaluated functions (paper Section 5; Appendix E, "Gaussian
Process Regression" and "Adjusting k in KNR").

Each surrogate turns the evaluated functions' coordinates and accuracies into a *score* for every
candidate; the search evaluates the highest-scoring candidates next.

* ``"knr"`` -- k-nearest-neighbour regression, ``k = 3``, inverse-distance weights
  (``KNeighborsRegressor(n_neighbors=3, weights="distance")``; with fewer evaluated functions than
  ``k``, all of them);
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

Which candidates a surrogate may pick is :data:`USES_FILTER`: the regression methods and
``"random-filter"`` skip functions whose spectrum is invalid (they have no FIM coordinates).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import norm

from aquasurf_core.search.forest import forest_predict

__all__ = ["SURROGATES", "USES_FILTER", "USES_COORDINATES", "score_candidates"]

SURROGATES = ("knr", "rfr", "svr", "gpr-ei", "gpr-ucb", "random", "random-filter")
#: Surrogates that skip functions with invalid spectra.
USES_FILTER = frozenset({"knr", "rfr", "svr", "gpr-ei", "gpr-ucb", "random-filter"})
#: Surrogates that need coordinates.
USES_COORDINATES = frozenset({"knr", "rfr", "svr", "gpr-ei", "gpr-ucb"})
UCB_KAPPA = 1.96
GPR_ALPHA = 0.01


def _knr(x, y, candidates, rng, k, metric="minkowski"):
    from sklearn.neighbors import KNeighborsRegressor

    model = KNeighborsRegressor(n_neighbors=min(k, len(y)), weights="distance", metric=metric)
    return model.fit(x, y).predict(candidates)


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


_SCORERS: dict[str, Callable] = {"knr": _knr, "rfr": _rfr, "svr": _svr, "gpr-ei": _gpr_ei,
                                 "gpr-ucb": _gpr_ucb, "random": _random,
                                 "random-filter": _random}


def score_candidates(surrogate: str, x: np.ndarray, y: np.ndarray, candidates: np.ndarray,
                     rng: np.random.Generator, k: int = 3, *,
                     precomputed: bool = False) -> np.ndarray:
    """Scores (higher: evaluate sooner) of ``candidates`` (``[m, d]`` coordinates; for the
    random surrogates only their number matters) from the evaluated ``x`` (``[n, d]``) and
    their accuracies ``y``. With ``precomputed`` (KNR only) ``x`` holds the distances between
    the evaluated functions (``[n, n]``) and ``candidates`` those from each candidate to them
    (``[m, n]``). Raises ``ValueError`` for an unknown surrogate."""
    if precomputed:
        if surrogate != "knr":
            raise ValueError(f"only 'knr' searches with precomputed distances, not {surrogate!r}")
        return np.asarray(_knr(x, y, candidates, rng, k, metric="precomputed"), np.float64)
    if surrogate not in _SCORERS:
        raise ValueError(f"unknown surrogate {surrogate!r}; choose one of "
                         f"{', '.join(SURROGATES)}")
    if surrogate in USES_COORDINATES and len(y) == 0:
        raise ValueError(f"surrogate {surrogate!r} needs at least one evaluated function with "
                         "coordinates")
    return np.asarray(_SCORERS[surrogate](x, y, candidates, rng, k), dtype=np.float64)
