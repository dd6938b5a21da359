"""An ask/tell search over a set of candidate activation functions (paper Section 5; the same loop
drives the large-scale search, where telling means training a network).

    searcher = Searcher(names, coords, valid=valid, surrogate="knr", first=["relu(x)"], seed=3)
    while searcher.evaluated < 100:
        (name,) = searcher.ask()
        searcher.tell(name, accuracy_of(name))

The start (Section 5): the functions of ``first`` (ReLU, whose accuracy is usually known), then
``n_random`` (7) functions drawn uniformly from the other candidates with
``numpy.random.default_rng(seed)`` -- drawn first, before any other use of the generator, so
every surrogate given the same seed starts from the same functions (common random numbers across
methods). Then :meth:`Searcher.ask` returns the unevaluated, not-running candidates with the
highest scores of the surrogate (:mod:`aquasurf_core.search.surrogates`), fitted on the
evaluated functions that have coordinates; the regression surrogates and ``"random-filter"``
consider only the functions with valid spectra (``valid``). Ties go to the lower candidate index.

:meth:`Searcher.tell` records a result; a failed run is a result too (tell its chance accuracy).
It refuses, with a message naming the problem, an unknown function, a function that was never
asked (or was already told), and an accuracy that is not a finite number in [0, 1].

The whole state -- start queue, running functions, history, the generator's state -- is a
JSON-able dict (:meth:`Searcher.state_dict`); :meth:`Searcher.from_state` resumes it over the
same candidates (checked by a fingerprint of names, coordinates and validity) and continues
exactly as the uninterrupted search would.

Batches (several workers). Functions that are *running* (asked and not told, or
:meth:`Searcher.reserve`-d because another worker evaluates them) are never asked again. With
``batch="believer"`` (the default) the surrogate also learns from them as if each had already
returned the accuracy the surrogate predicts there (the kriging believer,
:func:`~aquasurf_core.search.surrogates.predict_candidates`); ``ask(n)`` picks its ``n``
functions one at a time that way. For a UCB surrogate this is GP-BUCB: the prediction does not
move, the uncertainty around the running functions shrinks, so parallel workers do not all get
functions from the same cluster. With ``batch="independent"`` running functions are only
excluded and ``ask(n)`` returns the ``n`` best scores of one fit. A search with nothing running
asks exactly the same functions either way.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np

from aquasurf_core.search.surrogates import (
    get_surrogate,
    predict_candidates,
    score_candidates,
    surrogate_names,
)

__all__ = ["BATCH_POLICIES", "STATE_VERSION", "SearchError", "Searcher"]

STATE_VERSION = 1
#: How running functions shape the next picks (module docstring, "Batches").
BATCH_POLICIES = ("believer", "independent")


class SearchError(ValueError):
    """A request the search cannot honour (the message says why)."""


def _fingerprint(names: Sequence[str], coords: np.ndarray | None, valid: np.ndarray,
                 distances: np.ndarray | None = None) -> str:
    digest = hashlib.sha256()
    digest.update("\n".join(names).encode())
    for array in (coords, distances):
        if array is not None:
            digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    digest.update(np.asarray(valid, dtype=bool).tobytes())
    return digest.hexdigest()[:32]


class Searcher:
    """Ask/tell search over ``names`` (module docstring).

    Arguments: ``coords`` (``[N, d]`` coordinates, e.g. an embedding; required by the regression
    surrogates) or, for the distance surrogates (KNR and ``"lgp-ucb"``:
    :data:`~aquasurf_core.search.surrogates.DISTANCE_SURROGATES`), ``distances`` (``[N, N]``,
    e.g. the raw Eq. 2/3 distances; rows of invalid functions are never read), ``valid`` (bool
    ``[N]``, default all: the functions the filtered surrogates may pick), ``surrogate`` (one of
    :data:`~aquasurf_core.search.surrogates.SURROGATES`), ``k`` (the KNR's neighbours), ``first``
    (candidate names evaluated first), ``n_random`` (random functions after them), ``seed``,
    ``options`` (the surrogate's settings, :data:`~aquasurf_core.search.surrogates.OPTIONS`; kept in
    the state), ``batch`` (one of :data:`BATCH_POLICIES`: how running functions shape the next
    picks; module docstring).
    """

    def __init__(self, names: Sequence[str], coords: np.ndarray | None = None, *,
                 valid: np.ndarray | None = None, surrogate: str = "knr", k: int = 3,
                 first: Sequence[str] = (), n_random: int = 7, seed: int = 0,
                 distances: np.ndarray | None = None, options: dict | None = None,
                 batch: str = "believer"):
        self.names = [str(n) for n in names]
        self.index = {n: i for i, n in enumerate(self.names)}
        if len(self.index) != len(self.names):
            raise SearchError("candidate names must be distinct")
        try:
            entry = get_surrogate(surrogate)
        except ValueError as err:
            raise SearchError(str(err)) from None
        if batch not in BATCH_POLICIES:
            raise SearchError(f"batch must be one of {', '.join(BATCH_POLICIES)}, got "
                              f"{batch!r}")
        self.batch = batch
        distance_surrogates = ", ".join(s for s in surrogate_names()
                                        if get_surrogate(s).needs == "distances")
        n = len(self.names)
        self.coords = None if coords is None else np.asarray(coords, dtype=np.float64)
        if self.coords is not None and (self.coords.ndim != 2 or len(self.coords) != n):
            raise SearchError(f"coords must have shape ({n}, d), got {self.coords.shape}")
        self.distances = None if distances is None else np.asarray(distances)
        if self.distances is not None:
            if entry.needs != "distances":
                raise SearchError(f"only {distance_surrogates} search with precomputed "
                                  f"distances, not {surrogate!r}")
            if self.distances.shape != (n, n):
                raise SearchError(f"distances must have shape ({n}, {n}), got "
                                  f"{self.distances.shape}")
        elif entry.needs != "nothing" and self.coords is None:
            raise SearchError(f"surrogate {surrogate!r} needs coordinates (or, for "
                              f"{distance_surrogates}, distances)")
        self.valid = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        if self.valid.shape != (n,):
            raise SearchError(f"valid must be a bool array of {n}, got shape {self.valid.shape}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise SearchError(f"k must be a positive integer, got {k!r}")
        self.options = {str(key): float(value) for key, value in (options or {}).items()}
        unknown = set(self.options) - set(entry.options)
        if unknown:
            raise SearchError(f"surrogate {surrogate!r} takes no option(s) {sorted(unknown)}")
        self.surrogate, self.k, self.seed = surrogate, k, int(seed)
        self.rng = np.random.default_rng(self.seed)
        first_rows = [self._row(name) for name in first]
        others = np.setdiff1d(np.arange(n), first_rows)
        drawn = self.rng.choice(others, size=min(n_random, len(others)), replace=False)
        self.queue: list[int] = list(dict.fromkeys([*first_rows, *map(int, drawn)]))
        self.running: list[int] = []
        self.history: list[tuple[int, float]] = []
        self.told: set[int] = set()
        self._fingerprint: str | None = None  # computed when first asked for (fingerprint)
        self._symmetric: bool | None = None  # likewise (symmetric)
        self._model = None  # the surrogate updated one result at a time (a cache: _fitted)
        self._model_key = None

    @property
    def fingerprint(self) -> str:
        """A digest of the names, coordinates (or distances) and validity: a saved state is
        resumed only over the same candidates. Computed once, when first asked for (hashing
        an ``N x N`` distance matrix is most of a short search's time otherwise)."""
        if self._fingerprint is None:
            self._fingerprint = _fingerprint(self.names, self.coords, self.valid,
                                             self.distances)
        return self._fingerprint

    @property
    def symmetric(self) -> bool:
        """Whether the distances are symmetric (then they are read by rows only: the same
        values, gathered faster); computed once, when first needed."""
        if self._symmetric is None:
            self._symmetric = self.distances is not None and bool(
                np.array_equal(self.distances, self.distances.T))
        return self._symmetric

    # ---------------------------------------------------------------- asking and telling
    def _row(self, name: str) -> int:
        if name not in self.index:
            from aquasurf_core.space.names import canonical_name

            spelled = canonical_name(name)  # raises InvalidFunctionName for a malformed name
            if spelled not in self.index:
                raise SearchError(f"unknown function {name!r}: not a candidate of this search")
            return self.index[spelled]
        return self.index[name]

    @property
    def evaluated(self) -> int:
        """Number of results recorded so far (:meth:`tell` and :meth:`observe`)."""
        return len(self.history)

    def _allowed(self) -> np.ndarray:
        mask = self.valid.copy() if get_surrogate(self.surrogate).filtered else \
            np.ones(len(self.names), dtype=bool)
        mask[list(self.told)] = False
        mask[self.running] = False
        return np.flatnonzero(mask)

    def _data(self, rows: list[int],
              targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """What the surrogate is fitted on for the evaluated ``rows`` and scores
        ``targets`` against: ``(x, candidates, precomputed)``."""
        if self.distances is not None:
            if self.symmetric:
                block = self.distances[rows]
                return block[:, rows], block[:, targets].T, True
            return (self.distances[np.ix_(rows, rows)],
                    self.distances[np.ix_(targets, rows)], True)
        x = self.coords[rows] if rows else np.zeros((0, 1))
        candidates = self.coords[targets] if self.coords is not None else targets[:, None]
        return x, candidates, False

    def _scores(self, surrogate: str, options: dict, rows: list[int], y: np.ndarray,
                targets: np.ndarray, predict: bool = False) -> np.ndarray:
        x, candidates, precomputed = self._data(rows, targets)
        if predict:
            return predict_candidates(surrogate, x, y, candidates, self.rng, self.k,
                                      precomputed=precomputed, **options)
        return score_candidates(surrogate, x, y, candidates, self.rng, self.k,
                                precomputed=precomputed, **options)

    def _fitted(self, surrogate: str, options: dict, rows: list[int], y: np.ndarray):
        """The surrogate's incremental model (:mod:`~aquasurf_core.search.incremental`) fitted
        on exactly the results ``rows``, ``y`` -- a cache kept from step to step, rebuilt from
        the history when the surrogate or its options change (or after :meth:`from_state`);
        None for a surrogate without one."""
        entry = get_surrogate(surrogate)
        if entry.incremental is None:
            return None
        key = (surrogate, tuple(sorted(options.items())))
        if self._model_key != key or self._model.count > len(rows) or \
                self._model_rows != rows[:self._model.count]:
            self._model = entry.incremental(self.k, self.coords if self.distances is None
                                            else None, self.distances, **options)
            self._model_key, self._model_rows = key, []
        for row, accuracy in zip(rows[self._model.count:], y[self._model.count:],
                                 strict=True):
            self._model.add(row, float(accuracy))
            self._model_rows.append(row)
        return self._model

    def _ranked(self, n: int) -> list[int]:
        allowed = self._allowed()
        if not len(allowed):
            return []
        learns = self.coords is not None or self.distances is not None
        known = [(r, acc) for r, acc in self.history if learns and self.valid[r]]
        surrogate = self.surrogate
        options = self.options
        if get_surrogate(surrogate).needs != "nothing" and not known:  # nothing learned yet
            surrogate, options = "random", {}
        rows = [r for r, _ in known]
        y = np.array([acc for _, acc in known], dtype=np.float64)
        believe = self.batch == "believer" and get_surrogate(surrogate).mean is not None
        pending = np.array([r for r in self.running if self.valid[r]], dtype=np.int64)
        # the fast path: the incremental model, where the fit is on the results alone
        model = self._fitted(surrogate, options, rows, y) if learns and known and not (
            believe and len(pending)) else None
        if not believe:
            scores = model.scores(allowed) if model is not None else \
                self._scores(surrogate, options, rows, y, allowed)
            order = np.argsort(-scores, kind="stable")[:n]
            return [int(allowed[i]) for i in order]
        # the kriging believer: running functions count as if they had returned the
        # surrogate's prediction; a batch is picked one function at a time the same way
        if len(pending):
            fantasy = self._scores(surrogate, options, rows, y, pending, predict=True)
            rows, y = rows + pending.tolist(), np.r_[y, fantasy]
        chosen: list[int] = []
        open_ = allowed
        while len(chosen) < n and len(open_):
            if model is not None and not chosen:  # fitted on the results alone
                scores = model.scores(open_)
            else:
                scores = self._scores(surrogate, options, rows, y, open_)
            best = int(np.argsort(-scores, kind="stable")[0])
            row = int(open_[best])
            chosen.append(row)
            open_ = np.delete(open_, best)
            if len(chosen) < n and len(open_):
                fantasy = self._scores(surrogate, options, rows, y, np.array([row]),
                                       predict=True)
                rows, y = rows + [row], np.r_[y, fantasy]
        return chosen

    def ask(self, n: int = 1) -> list[str]:
        """The next ``n`` functions to evaluate (fewer when the candidates run out); they are
        *running* until told (or released)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise SearchError(f"ask(n) needs a positive integer, got {n!r}")
        chosen: list[int] = []
        while self.queue and len(chosen) < n:
            row = self.queue.pop(0)
            if row not in self.running and row not in self.told:
                chosen.append(row)
        self.running.extend(chosen)
        if len(chosen) < n:
            more = self._ranked(n - len(chosen))
            self.running.extend(more)
            chosen += more
        return [self.names[r] for r in chosen]

    def tell(self, name: str, accuracy: float) -> None:
        """Record the validation ``accuracy`` (finite, in [0, 1]) of an asked function."""
        row = self._row(name)
        if row not in self.running:
            raise SearchError(f"{self.names[row]!r} was "
                              f"{'already told' if row in self.told else 'never asked'}; tell "
                              "only the results of functions returned by ask()")
        if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float, np.floating)) or \
                not math.isfinite(accuracy) or not 0.0 <= accuracy <= 1.0:
            raise SearchError(f"accuracy of {self.names[row]!r} must be a finite number in [0, 1], "
                              f"got {accuracy!r} (tell a failed run's chance accuracy)")
        self.running.remove(row)
        self.history.append((row, float(accuracy)))
        self.told.add(row)

    def observe(self, name: str, accuracy: float) -> None:
        """Record a result obtained outside this searcher (e.g. a baseline evaluated before
        it existed); the function must not be running or told already."""
        row = self._row(name)
        if row in self.running or row in self.told:
            state = "running" if row in self.running else "already told"
            raise SearchError(f"{self.names[row]!r} is {state}; use tell()")
        if row in self.queue:
            self.queue.remove(row)
        self.running.append(row)
        self.tell(name, accuracy)

    def reserve(self, name: str) -> None:
        """Mark a function as running (being evaluated elsewhere) without asking for it."""
        row = self._row(name)
        if row in self.told:
            raise SearchError(f"{self.names[row]!r} was already told")
        if row in self.queue:
            self.queue.remove(row)
        if row not in self.running:
            self.running.append(row)

    def release(self, name: str) -> None:
        """Give back an asked function that will not be evaluated (it may be asked again)."""
        row = self._row(name)
        if row not in self.running:
            raise SearchError(f"{self.names[row]!r} is not running")
        self.running.remove(row)

    # ---------------------------------------------------------------- results
    def best(self) -> tuple[str, float] | None:
        """The evaluated function with the highest accuracy so far (first one on ties)."""
        if not self.history:
            return None
        row, acc = max(self.history, key=lambda item: item[1])
        return self.names[row], acc

    def results(self) -> list[tuple[str, float]]:
        """``(name, accuracy)`` in the order told."""
        return [(self.names[r], acc) for r, acc in self.history]

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """A JSON-able dict of the whole state (module docstring)."""
        return {"version": STATE_VERSION, "fingerprint": self.fingerprint,
                "surrogate": self.surrogate, "k": self.k, "seed": self.seed,
                "options": dict(self.options), "batch": self.batch,
                "queue": list(self.queue), "running": list(self.running),
                "history": [[r, acc] for r, acc in self.history],
                "rng": self.rng.bit_generator.state}

    @classmethod
    def from_state(cls, state: dict, names: Sequence[str], coords: np.ndarray | None = None,
                   *, valid: np.ndarray | None = None,
                   distances: np.ndarray | None = None) -> Searcher:
        """Resume a search from :meth:`state_dict` over the same candidates; raises
        :class:`SearchError` when they differ or the state is not one of ours."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise SearchError(f"not a search state of version {STATE_VERSION}")
        searcher = cls(names, coords, valid=valid, surrogate=state["surrogate"], k=state["k"],
                       n_random=0, seed=state["seed"], distances=distances,
                       options=state.get("options"), batch=state.get("batch", "believer"))
        if searcher.fingerprint != state["fingerprint"]:
            raise SearchError("the state belongs to a search over other candidates (names, "
                              "coordinates or validity differ)")
        searcher.queue = [int(r) for r in state["queue"]]
        searcher.running = [int(r) for r in state["running"]]
        searcher.history = [(int(r), float(acc)) for r, acc in state["history"]]
        searcher.told = {r for r, _ in searcher.history}
        searcher.rng.bit_generator.state = state["rng"]
        return searcher
