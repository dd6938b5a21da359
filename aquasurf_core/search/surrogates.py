"""The surrogates that rank unevaluated functions (paper Section 5; Appendix E, "Gaussian
Process Regression" and "Adjusting k in KNR").

Each surrogate turns the evaluated functions' coordinates and accuracies into a *score* for every
candidate; the search evaluates the highest-scoring candidates next.

* ``"knr"`` -- k-nearest-neighbour regression, ``k = 3``, inverse-distance weights
  (``KNeighborsRegressor(n_neighbors=3, weights="distance")``; with fewer evaluated functions than
  ``k``, all of them): the prediction ``sum_j w_j y_j / sum_j w_j`` over the ``k`` nearest
  evaluated functions, ``w_j = 1 / d_j`` (a candidate at distance 0 from evaluated functions gets
  the mean of their accuracies exactly); ``"knr-uniform"`` -- the same with ``w_j = 1`` (the
  other reading of the paper's "KNR", which states no weights). Computed here with NumPy (the
  same rule; equal distances go to the earlier evaluated function, where scikit-learn's tree
  search breaks such ties in its own order);
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
  coordinates span tens of units, so length 1 is a local smoother) on standardised targets
  (``normalize_y=True``) with a noise term ``alpha = 0.01`` (accuracies are noisy, and rounding
  twins sit at the same coordinates). Learning the kernel (a Matern + white-noise kernel, one
  optimiser start) cost ~145 ms per step here against ~10 ms, which the 100-trial experiment cannot
  afford;
* ``"random"`` -- uniform random scores: random search over every candidate, as the paper's RS
  (no filter); ``"random-filter"`` -- the same over the functions with valid Fisher spectra
  only, so that the filter's share of the regression methods' gain can be measured.

The registry
------------
Each surrogate is one :class:`Surrogate` record, registered once (:func:`register`, as Optuna
registers its samplers): its name, its label and colour in the figures, what it reads
(``needs``: coordinates, distances only, or nothing), whether it skips functions with invalid
spectra (``filtered``), its options with their defaults, whether notebook 04's main experiment
runs it (``experiment``), its scoring function and its *mean* (the accuracy it predicts,
without exploration bonus; None for random search). Everything else reads the registry --
:func:`surrogate_names`, :func:`get_surrogate`, and the derived sets below (computed from the
registry when read, so an entry registered later appears in them too): the searcher, the
benchmark searches, the figures' labels and colours, the pipeline's method lists.

The surrogates of :data:`DISTANCE_SURROGATES` (the KNR family and ``"lgp-ucb"``) read only
distances, so they also search precomputed distances (``precomputed=True``; e.g. the raw Eq. 2/3
distances) instead of coordinates. Their settings (``kappa``, ``length``) are keyword
``options`` of :func:`score_candidates` (:data:`OPTIONS` lists which surrogate takes which).

Which candidates a surrogate may pick is :data:`USES_FILTER`: the regression methods and
``"random-filter"`` skip functions whose spectrum is invalid (they have no FIM coordinates).

Batches (:func:`predict_candidates`): when several functions are being evaluated at once (a
search with several workers), the searcher treats each running function as if its result were
the surrogate's mean prediction there (the *kriging believer*; for the UCB surrogates this is
GP-BUCB, Desautels et al. 2014: the posterior mean does not move, the posterior variance
shrinks around the running functions, so the next pick goes elsewhere rather than next to them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from scipy.stats import norm

from aquasurf_core.search.forest import forest_predict
from aquasurf_core.search.incremental import IncrementalGP, IncrementalKNR, knr_prediction

__all__ = ["NEEDS", "Surrogate", "experiment_methods", "get_surrogate", "knr_neighbours",
           "predict_candidates", "register", "score_candidates", "surrogate_names", "unregister"]
# derived from the registry when read (module __getattr__)
__all__ += ["DISTANCE_SURROGATES", "OPTIONS", "SURROGATES", "USES_COORDINATES", "USES_FILTER"]  # noqa: F822

UCB_KAPPA = 1.96
GPR_ALPHA = 0.01
#: What a surrogate reads: "coordinates" (an embedding), "distances" (only distances between
#: functions: coordinates or precomputed distances), "nothing" (random search).
NEEDS = ("coordinates", "distances", "nothing")

#: A scoring function: ``(x, y, candidates, rng, k, precomputed, **options) -> scores [m]``.
Scorer = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Surrogate:
    """One surrogate (module docstring, "The registry").

    ``name`` is what users pass (``"knr"``); ``label`` and ``colour`` draw it in the figures;
    ``needs`` is one of :data:`NEEDS`; ``filtered``: it skips functions whose spectrum is
    invalid; ``options``: its keyword settings with their defaults; ``experiment``: notebook
    04's main experiment (paper profile) runs it; ``score``: the scoring function
    (:data:`Scorer`), higher is evaluated sooner; ``mean``: the predicted accuracy with the same
    signature (None: it predicts nothing, as random search); ``summary``: one line for
    listings; ``incremental`` (optional): a factory ``(k, coords, distances, **options)`` of a
    model over a fixed table of rows with ``add(row, accuracy)`` and ``scores(rows)`` that
    gives ``score``'s values one result at a time
    (:mod:`~aquasurf_core.search.incremental`; the searcher's fast path)."""

    name: str
    label: str
    score: Scorer
    mean: Scorer | None
    needs: str
    filtered: bool
    options: Mapping[str, float] = field(default_factory=dict)
    colour: str = "#000000"
    experiment: bool = False
    summary: str = ""
    incremental: Callable | None = None

    def __post_init__(self) -> None:
        if not self.name or "(" in self.name or "," in self.name:
            raise ValueError(f"a surrogate name must be non-empty without '(' or ',', got "
                             f"{self.name!r}")
        if self.needs not in NEEDS:
            raise ValueError(f"surrogate {self.name!r}: needs must be one of {NEEDS}, got "
                             f"{self.needs!r}")
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))


_REGISTRY: dict[str, Surrogate] = {}


def register(surrogate: Surrogate, *, replace: bool = False) -> Surrogate:
    """Add ``surrogate`` to the registry (returns it). Raises ``ValueError`` when its name is
    taken (unless ``replace``)."""
    if surrogate.name in _REGISTRY and not replace:
        raise ValueError(f"a surrogate named {surrogate.name!r} is registered already")
    _REGISTRY[surrogate.name] = surrogate
    return surrogate


def unregister(name: str) -> None:
    """Remove a surrogate from the registry (``KeyError`` if there is none of that name)."""
    del _REGISTRY[name]


def surrogate_names() -> tuple[str, ...]:
    """Every registered surrogate's name, in registration order."""
    return tuple(_REGISTRY)


def get_surrogate(name: str) -> Surrogate:
    """The registered surrogate ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown surrogate {name!r}; choose one of "
                         f"{', '.join(_REGISTRY)}") from None


def experiment_methods() -> list[str]:
    """The surrogates notebook 04's main experiment runs (``experiment=True``), in order."""
    return [s.name for s in _REGISTRY.values() if s.experiment]


def _derived() -> dict[str, object]:
    entries = list(_REGISTRY.values())
    coordinates = frozenset(s.name for s in entries if s.needs != "nothing")
    return {"SURROGATES": tuple(s.name for s in entries),
            "USES_COORDINATES": coordinates,
            "USES_FILTER": frozenset(s.name for s in entries if s.filtered),
            "DISTANCE_SURROGATES": frozenset(s.name for s in entries if s.needs == "distances"),
            "OPTIONS": {s.name: dict(s.options) for s in entries if s.options}}


def __getattr__(name: str):
    """The derived sets, computed from the registry when read: ``SURROGATES`` (names, in
    order), ``USES_COORDINATES`` (need coordinates or distances), ``USES_FILTER`` (skip invalid
    spectra), ``DISTANCE_SURROGATES`` (read only distances), ``OPTIONS`` (name -> options with
    defaults)."""
    derived = _derived()
    if name in derived:
        return derived[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------- the maths
def knr_neighbours(distances: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(index, distance)`` of the ``min(k, n)`` nearest evaluated functions of each candidate,
    from ``distances`` (``[m, n]``, candidate to evaluated), nearest first; ties go to the lower
    index (as scikit-learn's brute-force search)."""
    k = min(k, distances.shape[1])
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(distances, order, axis=1)


def _knr_from_distances(d: np.ndarray, y: np.ndarray, k: int, weights: str):
    """``(mean, weighted std)`` of KNR from candidate-to-evaluated distances ``d``: the rule of
    ``KNeighborsRegressor`` (:func:`~aquasurf_core.search.incremental.knr_prediction`)."""
    index, dist = knr_neighbours(d, k)
    return knr_prediction(dist, y[index], weights)


def _distances(x, candidates, precomputed, pairs=True):
    """``(evaluated-to-evaluated, candidate-to-evaluated)`` distances (the first None unless
    ``pairs``)."""
    if precomputed:
        return np.asarray(x, np.float64), np.asarray(candidates, np.float64)
    from scipy.spatial.distance import cdist

    return (cdist(x, x) if pairs else None), cdist(candidates, x)


def _knr(x, y, candidates, rng, k, precomputed=False, weights="distance"):
    # KNeighborsRegressor(n_neighbors=min(k, n), weights=weights).fit(x, y).predict(c), with
    # ties between equal distances going to the earlier evaluated function
    _, d = _distances(x, candidates, precomputed, pairs=False)
    return _knr_from_distances(d, y, k, weights)[0]


def _knr_uniform(x, y, candidates, rng, k, precomputed=False):
    return _knr(x, y, candidates, rng, k, precomputed, weights="uniform")


def _knr_ucb(x, y, candidates, rng, k, precomputed=False, kappa=1.0):
    _, d = _distances(x, candidates, precomputed)
    mean, spread = _knr_from_distances(d, y, k, "distance")
    return mean + kappa * spread


def _knr_ucb_mean(x, y, candidates, rng, k, precomputed=False, kappa=1.0):
    return _knr_ucb(x, y, candidates, rng, k, precomputed, kappa=0.0)


def _lgp(x, y, candidates, precomputed, length):
    """``(mean, sigma)`` of the Laplace-kernel GP in standardised units, with the targets'
    scale and centre (module docstring). With ``L`` the Cholesky factor of ``K + alpha I``
    and ``V = L^-1 k_*^T``: ``mean = V^T L^-1 z`` and ``sigma^2 = 1 - sum(V^2)`` (one
    triangular solve for all candidates)."""
    from scipy.linalg import cholesky, solve_triangular

    dxx, dcx = _distances(x, candidates, precomputed)
    off = dxx[~np.eye(len(y), dtype=bool)]
    scale = np.median(off) if off.size and np.median(off) > 0 else 1.0
    ell = length * scale
    sd = y.std()
    z = (y - y.mean()) / sd if sd > 0 else y - y.mean()
    lower = None
    for jitter in (1.0, 10.0, 100.0):  # a distance that is not a metric may break definiteness
        try:
            lower = cholesky(np.exp(-dxx / ell) + jitter * GPR_ALPHA * np.eye(len(y)),
                             lower=True, check_finite=False)
            break
        except np.linalg.LinAlgError:
            continue
    if lower is None:
        raise ValueError("lgp-ucb: the Laplace kernel of these distances is not positive "
                         "definite even with 100x the noise term; are they a metric?")
    v = solve_triangular(lower, np.exp(-dcx / ell).T, lower=True, check_finite=False)
    mean = v.T @ solve_triangular(lower, z, lower=True, check_finite=False)
    var = 1.0 - np.einsum("ij,ij->j", v, v)
    return mean, np.sqrt(np.maximum(var, 0.0)), (sd if sd > 0 else 1.0), y.mean()


def _lgp_ucb(x, y, candidates, rng, k, precomputed=False, kappa=1.0, length=0.3):
    mean, sigma, _, _ = _lgp(x, y, candidates, precomputed, length)
    return mean + kappa * sigma


def _lgp_mean(x, y, candidates, rng, k, precomputed=False, kappa=1.0, length=0.3):
    mean, _, sd, centre = _lgp(x, y, candidates, precomputed, length)
    return mean * sd + centre  # back in accuracy units


def _rfr(x, y, candidates, rng, k, precomputed=False):
    # RandomForestRegressor(random_state=seed).fit(x, y).predict(candidates), bit for bit
    return forest_predict(x, y, candidates, int(rng.integers(2**31 - 1)))


def _rfr_mean(x, y, candidates, rng, k, precomputed=False):
    # the believer's forest: seeded by a generator of its own, so asking for fantasies never
    # moves the search's generator (the picks of a search without running functions stay
    # exactly those of the sequential search)
    return forest_predict(x, y, candidates, 0)


def _svr(x, y, candidates, rng, k, precomputed=False):
    from sklearn.svm import SVR

    return SVR().fit(x, y).predict(candidates)


def _gpr(x, y, candidates):
    from sklearn.gaussian_process import GaussianProcessRegressor

    model = GaussianProcessRegressor(alpha=GPR_ALPHA, normalize_y=True, optimizer=None)
    model.fit(x, y)
    mean, std = model.predict(candidates, return_std=True)
    return mean, np.maximum(std, 1e-12)


def _gpr_ei(x, y, candidates, rng, k, precomputed=False):
    mean, std = _gpr(x, y, candidates)
    z = (mean - y.max()) / std
    return (mean - y.max()) * norm.cdf(z) + std * norm.pdf(z)


def _gpr_ucb(x, y, candidates, rng, k, precomputed=False):
    mean, std = _gpr(x, y, candidates)
    return mean + UCB_KAPPA * std


def _gpr_mean(x, y, candidates, rng, k, precomputed=False):
    return _gpr(x, y, candidates)[0]


def _random(x, y, candidates, rng, k, precomputed=False):
    return rng.random(len(candidates))


class _KnrModel(IncrementalKNR):
    """KNR (and KNR-UCB) one result at a time: ``scores`` is ``mean + kappa x spread``."""

    def __init__(self, k, coords, distances, weights="distance", kappa=0.0):
        super().__init__(k, coords=coords, distances=distances, weights=weights)
        self.kappa = float(kappa)

    def scores(self, rows):
        mean, spread = self.predict(rows)
        return mean + self.kappa * spread if self.kappa else mean


class _GpModel(IncrementalGP):
    """The ``"gpr-*"`` GP one result at a time: ``scores`` is EI or UCB."""

    def __init__(self, coords, rule):
        if coords is None:
            raise ValueError("the gpr surrogates need coordinates")
        super().__init__(coords, alpha=GPR_ALPHA)
        self.rule = rule

    def scores(self, rows):
        mean, std = self.predict(rows)
        if self.rule == "ucb":
            return mean + UCB_KAPPA * std
        best = max(self.y)
        z = (mean - best) / std
        return (mean - best) * norm.cdf(z) + std * norm.pdf(z)


def _knr_incremental(k, coords, distances):
    return _KnrModel(k, coords, distances)


def _knr_uniform_incremental(k, coords, distances):
    return _KnrModel(k, coords, distances, weights="uniform")


def _knr_ucb_incremental(k, coords, distances, kappa=1.0):
    return _KnrModel(k, coords, distances, kappa=kappa)


def _gpr_ei_incremental(k, coords, distances):
    return _GpModel(coords, "ei")


def _gpr_ucb_incremental(k, coords, distances):
    return _GpModel(coords, "ucb")


# ----------------------------------------------------------------------------- registered
for _entry in (
    Surrogate("knr", "KNR", _knr, _knr, "distances", True, colour="#1f77b4", experiment=True,
              summary="k-nearest-neighbour regression, inverse-distance weights (the paper's)",
              incremental=_knr_incremental),
    Surrogate("knr-uniform", "KNR-uniform", _knr_uniform, _knr_uniform, "distances", True,
              colour="#17becf", summary="KNR with uniform weights",
              incremental=_knr_uniform_incremental),
    Surrogate("knr-ucb", "KNR-UCB", _knr_ucb, _knr_ucb_mean, "distances", True,
              {"kappa": 1.0}, colour="#bcbd22",
              summary="KNR plus kappa x the neighbours' weighted spread",
              incremental=_knr_ucb_incremental),
    Surrogate("lgp-ucb", "LGP-UCB", _lgp_ucb, _lgp_mean, "distances", True,
              {"kappa": 1.0, "length": 0.3}, colour="#e377c2",
              summary="GP-UCB with the Laplace kernel on distances (the engine's default)"),
    Surrogate("rfr", "RFR", _rfr, _rfr_mean, "coordinates", True, colour="#2ca02c",
              experiment=True, summary="random forest regression (scikit-learn's defaults)"),
    Surrogate("svr", "SVR", _svr, _svr, "coordinates", True, colour="#ff7f0e",
              experiment=True, summary="support vector regression (scikit-learn's defaults)"),
    Surrogate("gpr-ei", "GPR-EI", _gpr_ei, _gpr_mean, "coordinates", True, colour="#9467bd",
              experiment=True, summary="GP regression (RBF), expected improvement",
              incremental=_gpr_ei_incremental),
    Surrogate("gpr-ucb", "GPR-UCB", _gpr_ucb, _gpr_mean, "coordinates", True,
              colour="#8c564b", experiment=True,
              summary="GP regression (RBF), upper confidence bound (kappa 1.96)",
              incremental=_gpr_ucb_incremental),
    Surrogate("random", "RS", _random, None, "nothing", False, colour="#d62728",
              experiment=True, summary="random search over every function"),
    Surrogate("random-filter", "RS + filter", _random, None, "nothing", True,
              colour="#7f7f7f", experiment=True,
              summary="random search over the functions with valid spectra"),
):
    register(_entry)
del _entry


# ----------------------------------------------------------------------------- the front
def _checked(surrogate: str, y, precomputed: bool, options: dict) -> Surrogate:
    entry = get_surrogate(surrogate)
    unknown = set(options) - set(entry.options)
    if unknown:
        raise ValueError(f"surrogate {surrogate!r} takes no option(s) {sorted(unknown)}; it "
                         f"takes {sorted(entry.options) or 'none'}")
    if precomputed and entry.needs != "distances":
        distance = sorted(s.name for s in _REGISTRY.values() if s.needs == "distances")
        raise ValueError(f"only {', '.join(distance)} search with precomputed distances, not "
                         f"{surrogate!r}")
    if entry.needs != "nothing" and len(y) == 0:
        raise ValueError(f"surrogate {surrogate!r} needs at least one evaluated function with "
                         "coordinates")
    return entry


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
    y = np.asarray(y, dtype=np.float64)
    entry = _checked(surrogate, y, precomputed, options)
    scores = entry.score(x, y, candidates, rng, k, precomputed, **options)
    return np.asarray(scores, dtype=np.float64)


def predict_candidates(surrogate: str, x: np.ndarray, y: np.ndarray, candidates: np.ndarray,
                       rng: np.random.Generator, k: int = 3, *,
                       precomputed: bool = False, **options: float) -> np.ndarray | None:
    """The accuracy the surrogate predicts at ``candidates`` (its mean, no exploration bonus;
    arguments as :func:`score_candidates`), or None for a surrogate that predicts nothing
    (random search). ``rng`` is not advanced (the believer's fantasies leave the search's
    random numbers alone). Raises as :func:`score_candidates`."""
    y = np.asarray(y, dtype=np.float64)
    entry = _checked(surrogate, y, precomputed, options)
    if entry.mean is None:
        return None
    return np.asarray(entry.mean(x, y, candidates, rng, k, precomputed, **options),
                      dtype=np.float64)
