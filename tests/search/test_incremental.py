"""KNR and the GP updated one result at a time, against the refit from scratch: scikit-learn's
``KNeighborsRegressor`` and ``GaussianProcessRegressor`` (the slow obvious way), and the
stateless scorers of the surrogate registry, step by step."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.neighbors import KNeighborsRegressor

from aquasurf_core.search.incremental import IncrementalGP, IncrementalKNR
from aquasurf_core.search.searcher import Searcher
from aquasurf_core.search.surrogates import score_candidates

N = 70


@pytest.fixture
def table():
    rng = np.random.default_rng(1)
    coords = rng.normal(size=(N, 2)) * 2
    accuracy = rng.uniform(0.1, 0.9, N)
    order = rng.permutation(N)
    return coords, accuracy, order


@pytest.mark.parametrize("weights", ["distance", "uniform"])
def test_incremental_knr_is_scikit_learns_knr_at_every_step(table, weights):
    coords, accuracy, order = table
    model = IncrementalKNR(3, coords=coords, weights=weights)
    for step, row in enumerate(order[:30], start=1):
        model.add(int(row), float(accuracy[row]))
        seen = order[:step]
        reference = KNeighborsRegressor(min(3, step), weights=weights, algorithm="brute")
        reference.fit(coords[seen], accuracy[seen])
        np.testing.assert_allclose(model.predict(np.arange(N))[0], reference.predict(coords),
                                   rtol=1e-12, atol=1e-15)


def test_incremental_knr_equals_the_stateless_scorer_exactly_with_ties(table):
    """Twins (equal coordinates, other accuracies) make equal distances: both go to the
    earlier result, so the two computations agree bit for bit, on coordinates and on
    precomputed distances."""
    coords, accuracy, order = table
    coords = coords.copy()
    coords[order[5]] = coords[order[2]]  # a twin of an earlier result
    coords[order[40]] = coords[order[2]]  # ... and a candidate on top of them
    from scipy.spatial.distance import cdist

    distances = cdist(coords, coords).astype(np.float32)
    for kwargs in ({"coords": coords}, {"distances": distances}):
        model = IncrementalKNR(3, **kwargs)
        for step, row in enumerate(order[:25], start=1):
            model.add(int(row), float(accuracy[row]))
            seen, rest = order[:step], order[25:]
            if "coords" in kwargs:
                x, c, pre = coords[seen], coords[rest], False
            else:
                x, c, pre = distances[np.ix_(seen, seen)], distances[np.ix_(rest, seen)], True
            expected = score_candidates("knr", x, accuracy[seen], c, np.random.default_rng(0),
                                        precomputed=pre)
            assert np.array_equal(model.predict(rest)[0], expected)


def test_incremental_gp_is_scikit_learns_gp_at_every_step(table):
    coords, accuracy, order = table
    model = IncrementalGP(coords, alpha=0.01)
    for step, row in enumerate(order[:40], start=1):
        model.add(int(row), float(accuracy[row]))
        if step % 7 and step != 40:
            continue
        seen = order[:step]
        reference = GaussianProcessRegressor(alpha=0.01, normalize_y=True, optimizer=None)
        mean, std = reference.fit(coords[seen], accuracy[seen]).predict(coords, return_std=True)
        got_mean, got_std = model.predict(np.arange(N))
        np.testing.assert_allclose(got_mean, mean, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(got_std, np.maximum(std, 1e-12), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("surrogate", ["knr", "knr-uniform", "knr-ucb", "gpr-ei", "gpr-ucb"])
def test_the_searchers_fast_path_asks_what_the_refit_asks(table, surrogate):
    """The searcher's incremental model (kept from step to step) against a searcher that
    refits from scratch at every step: the same 40 picks; and resumed from its state, the
    searcher rebuilds the model and goes on the same way."""
    coords, accuracy, _ = table
    names = [f"f{i}" for i in range(N)]

    def picks(searcher, steps):
        out = []
        for _ in range(steps):
            (name,) = searcher.ask()
            searcher.tell(name, float(accuracy[searcher.index[name]]))
            out.append(name)
        return out

    fast = Searcher(names, coords, surrogate=surrogate, seed=3)
    slow = Searcher(names, coords, surrogate=surrogate, seed=3)
    slow._fitted = lambda *args: None  # noqa: SLF001 -- the refit from scratch, every step
    first = picks(fast, 25)
    assert first == picks(slow, 25)
    resumed = Searcher.from_state(fast.state_dict(), names, coords)
    assert picks(fast, 15) == picks(slow, 15) == picks(resumed, 15)
