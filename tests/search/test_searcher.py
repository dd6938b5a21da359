"""The ask/tell searcher: the start, ranking by each surrogate against the obvious computation,
the filter, errors, and a resumed search continuing exactly as an uninterrupted one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsRegressor

from aquasurf_core.search.searcher import Searcher, SearchError
from aquasurf_core.search.surrogates import SURROGATES, score_candidates
from aquasurf_core.space.names import InvalidFunctionName

N = 120


@pytest.fixture
def space():
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(N, 2)) * 3
    accuracy = np.exp(-((coords - [2, 2]) ** 2).sum(1) / 8)
    names = [f"add(x,{u}(x))" for u in ["tanh", "sigmoid", "erf", "arctan", "softsign",
                                          "square", "abs", "negative", "sinh", "arcsinh",
                                          "erfc", "relu"]] + [f"f{i}(x)" for i in range(N - 12)]
    valid = rng.random(N) > 0.25
    valid[0] = True
    return names, coords, valid, accuracy


def run(searcher, accuracy, steps):
    for _ in range(steps):
        (name,) = searcher.ask()
        searcher.tell(name, float(accuracy[searcher.index[name]]))
    return searcher


@pytest.mark.parametrize("surrogate", SURROGATES)
def test_the_start_is_first_then_the_same_random_draw_for_every_surrogate(space, surrogate):
    names, coords, valid, accuracy = space
    searcher = Searcher(names, coords, valid=valid, surrogate=surrogate, first=[names[5]],
                        seed=11)
    first_eight = [name for name, _ in run(searcher, accuracy, 8).results()]
    expected_draw = np.random.default_rng(11).choice(np.setdiff1d(np.arange(N), [5]), 7,
                                                     replace=False)
    assert first_eight == [names[5]] + [names[i] for i in expected_draw]
    run(searcher, accuracy, 30)
    picked = [searcher.index[name] for name, _ in searcher.results()[8:]]
    assert len(set(picked)) == 30  # nothing twice
    if surrogate != "random":
        assert valid[picked].all()  # the filter


def test_knr_asks_the_highest_prediction_computed_directly(space):
    names, coords, valid, accuracy = space
    searcher = run(Searcher(names, coords, valid=valid, first=[names[0]], seed=2), accuracy, 12)
    known = [(searcher.index[n], a) for n, a in searcher.results() if valid[searcher.index[n]]]
    model = KNeighborsRegressor(3, weights="distance").fit(coords[[r for r, _ in known]],
                                                          [a for _, a in known])
    open_rows = [r for r in range(N) if valid[r] and names[r] not in dict(searcher.results())]
    pred = model.predict(coords[open_rows])
    expected = names[open_rows[int(np.argmax(pred))]]
    assert searcher.ask() == [expected]


def test_search_finds_the_optimum_faster_than_random(space):
    names, coords, valid, accuracy = space
    best = {}
    for surrogate in ("knr", "random"):
        bests = [run(Searcher(names, coords, valid=np.ones(N, bool), surrogate=surrogate,
                              first=[names[0]], seed=s), accuracy, 25).best()[1]
                 for s in range(5)]
        best[surrogate] = np.mean(bests)
    assert best["knr"] > best["random"]


def test_ask_several_tell_in_any_order_release_and_errors(space):
    names, coords, valid, accuracy = space
    # independent: every open function has the same prediction (all told 0.5), so the tie
    # goes to the lowest index -- the released first function
    searcher = Searcher(names, coords, valid=valid, first=[names[0]], seed=0,
                        batch="independent")
    asked = searcher.ask(10)
    assert len(asked) == 10 == len(set(asked)) and set(asked) == {names[r]
                                                                  for r in searcher.running}
    for name in reversed(asked[2:]):
        searcher.tell(name, 0.5)
    searcher.release(asked[0])
    assert asked[0] in searcher.ask(1)  # a released start function comes back
    with pytest.raises(SearchError, match="already told"):
        searcher.tell(asked[5], 0.5)
    with pytest.raises(SearchError, match="never asked"):
        searcher.tell(names[-1], 0.5)
    with pytest.raises(SearchError, match=r"unknown function 'relu\(x\)'"):
        searcher.tell("relu(x)", 0.5)
    with pytest.raises(InvalidFunctionName):
        searcher.tell("add(x,", 0.5)
    for bad in (float("nan"), 1.5, -0.1, True, "0.5"):
        with pytest.raises(SearchError, match="finite number in"):
            searcher.tell(asked[1], bad)
    with pytest.raises(SearchError, match="unknown surrogate 'gp'"):
        Searcher(names, coords, surrogate="gp")
    with pytest.raises(SearchError, match="needs coordinates"):
        Searcher(names, None, surrogate="knr")
    with pytest.raises(SearchError, match="positive integer"):
        searcher.ask(0)
    assert Searcher(names, None, surrogate="random").ask(3)  # random needs no coordinates
    with pytest.raises(ValueError, match="unknown surrogate"):
        score_candidates("nope", np.zeros((1, 2)), np.zeros(1), np.zeros((3, 2)),
                         np.random.default_rng(0))


def test_candidates_run_out(space):
    names, coords, valid, accuracy = space
    searcher = Searcher(names, coords, valid=valid, first=[names[0]], seed=0)
    while asked := searcher.ask():
        searcher.tell(asked[0], 0.5)
    start = [searcher.index[n] for n, _ in searcher.results()[:8]]
    # every valid function, plus the start functions whatever their validity
    assert searcher.evaluated == int(valid.sum()) + int((~valid[start]).sum())
    assert searcher.ask(5) == []


@pytest.mark.parametrize("surrogate", ["knr", "rfr", "gpr-ei", "random"])
def test_a_resumed_search_continues_exactly(space, surrogate):
    names, coords, valid, accuracy = space
    whole = run(Searcher(names, coords, valid=valid, surrogate=surrogate, first=[names[0]],
                         seed=5), accuracy, 30)
    part = run(Searcher(names, coords, valid=valid, surrogate=surrogate, first=[names[0]],
                        seed=5), accuracy, 12)
    state = json.loads(json.dumps(part.state_dict()))  # through JSON, as on disk
    resumed = run(Searcher.from_state(state, names, coords, valid=valid), accuracy, 18)
    assert resumed.results() == whole.results()
    with pytest.raises(SearchError, match="other candidates"):
        Searcher.from_state(state, names, coords + 1, valid=valid)
    with pytest.raises(SearchError, match="not a search state"):
        Searcher.from_state({"version": 99}, names, coords)


def test_knr_on_precomputed_distances_is_knr_on_the_coordinates(space):
    from scipy.spatial.distance import cdist

    names, coords, valid, accuracy = space
    by_coords = run(Searcher(names, coords, valid=valid, first=[names[0]], seed=8), accuracy, 40)
    by_distances = run(Searcher(names, None, valid=valid, first=[names[0]], seed=8,
                                distances=cdist(coords, coords)), accuracy, 40)
    assert by_distances.results() == by_coords.results()
    with pytest.raises(SearchError, match="search with precomputed distances, not 'rfr'"):
        Searcher(names, None, surrogate="rfr", distances=cdist(coords, coords))
    with pytest.raises(SearchError, match="distances must have shape"):
        Searcher(names, None, distances=np.zeros((3, 3)))


@pytest.mark.parametrize("surrogate", ["knr-uniform", "knr-ucb", "lgp-ucb"])
def test_distance_surrogates_on_precomputed_distances_match_the_coordinates(space, surrogate):
    from scipy.spatial.distance import cdist

    names, coords, valid, accuracy = space
    kwargs = dict(valid=valid, surrogate=surrogate, first=[names[0]], seed=8)
    by_coords = run(Searcher(names, coords, **kwargs), accuracy, 30)
    by_distances = run(Searcher(names, None, distances=cdist(coords, coords), **kwargs),
                       accuracy, 30)
    assert by_distances.results() == by_coords.results()


def test_knr_uniform_is_sklearn_with_uniform_weights(space):
    names, coords, valid, accuracy = space
    searcher = run(Searcher(names, coords, valid=valid, surrogate="knr-uniform",
                            first=[names[0]], seed=2), accuracy, 12)
    known = [(searcher.index[n], a) for n, a in searcher.results() if valid[searcher.index[n]]]
    model = KNeighborsRegressor(3, weights="uniform").fit(coords[[r for r, _ in known]],
                                                         [a for _, a in known])
    open_rows = [r for r in range(N) if valid[r] and names[r] not in dict(searcher.results())]
    assert searcher.ask() == [names[open_rows[int(np.argmax(model.predict(coords[open_rows])))]]]


def test_knr_ucb_is_the_weighted_mean_plus_kappa_spread_written_out():
    x = np.array([[0.0], [1.0], [3.0], [10.0]])
    y = np.array([0.2, 0.6, 0.4, 0.9])
    candidates = np.array([[0.5], [1.0], [2.0]])
    got = score_candidates("knr-ucb", x, y, candidates, np.random.default_rng(0), 3, kappa=2.0)
    expected = []
    for (c,) in candidates:
        d = np.abs(x[:, 0] - c)
        near = np.argsort(d, kind="stable")[:3]
        if (d[near] == 0).any():
            w = (d[near] == 0).astype(float)
        else:
            w = 1 / d[near]
        mean = (w * y[near]).sum() / w.sum()
        spread = np.sqrt((w * (y[near] - mean) ** 2).sum() / w.sum())
        expected.append(mean + 2.0 * spread)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # the mean part is scikit-learn's distance-weighted KNR, zero-distance rule included
    mean = score_candidates("knr-ucb", x, y, candidates, np.random.default_rng(0), 3, kappa=0.0)
    np.testing.assert_allclose(mean, KNeighborsRegressor(3, weights="distance").fit(x, y)
                               .predict(candidates), rtol=0, atol=1e-12)


def test_lgp_ucb_is_the_laplace_kernel_posterior_written_out():
    rng = np.random.default_rng(1)
    x, candidates = rng.normal(size=(6, 2)), rng.normal(size=(4, 2))
    y = rng.random(6)
    got = score_candidates("lgp-ucb", x, y, candidates, rng, kappa=1.5, length=0.5)
    dxx = np.linalg.norm(x[:, None] - x[None], axis=2)
    dcx = np.linalg.norm(candidates[:, None] - x[None], axis=2)
    ell = 0.5 * np.median(dxx[~np.eye(6, dtype=bool)])
    inv = np.linalg.inv(np.exp(-dxx / ell) + 0.01 * np.eye(6))
    kc = np.exp(-dcx / ell)
    mean = kc @ inv @ ((y - y.mean()) / y.std())
    var = 1 - np.array([kc[i] @ inv @ kc[i] for i in range(4)])
    np.testing.assert_allclose(got, mean + 1.5 * np.sqrt(var), rtol=0, atol=1e-9)


def test_options_are_checked_and_kept_in_the_state(space):
    names, coords, valid, accuracy = space
    with pytest.raises(ValueError, match="takes no option"):
        score_candidates("knr", np.zeros((2, 2)), np.zeros(2), np.zeros((3, 2)),
                         np.random.default_rng(0), kappa=1.0)
    with pytest.raises(SearchError, match="takes no option"):
        Searcher(names, coords, surrogate="lgp-ucb", options={"beta": 1})
    with pytest.raises(ValueError, match="precomputed distances, not 'svr'"):
        score_candidates("svr", np.zeros((2, 2)), np.zeros(2), np.zeros((3, 2)),
                         np.random.default_rng(0), precomputed=True)
    kwargs = dict(valid=valid, surrogate="lgp-ucb", first=[names[0]], seed=4,
                  options={"kappa": 3.0, "length": 0.1})
    whole = run(Searcher(names, coords, **kwargs), accuracy, 25)
    part = run(Searcher(names, coords, **kwargs), accuracy, 10)
    state = json.loads(json.dumps(part.state_dict()))
    assert state["options"] == {"kappa": 3.0, "length": 0.1}
    assert run(Searcher.from_state(state, names, coords, valid=valid), accuracy,
               15).results() == whole.results()
    default = run(Searcher(names, coords, **{**kwargs, "options": None}), accuracy, 25)
    assert default.results() != whole.results()  # the options change the search


def test_asymmetric_distances_are_read_as_given(space):
    names, coords, valid, accuracy = space
    rng = np.random.default_rng(3)
    d = rng.random((N, N))  # not symmetric: candidate-to-evaluated is row candidate
    searcher = run(Searcher(names, None, valid=valid, first=[names[0]], seed=1, distances=d),
                   accuracy, 10)
    assert not searcher.symmetric
    known = [searcher.index[n] for n, _ in searcher.results() if valid[searcher.index[n]]]
    y = np.array([accuracy[r] for r in known])
    open_rows = [r for r in range(N) if valid[r] and r not in known
                 and names[r] not in dict(searcher.results())]
    model = KNeighborsRegressor(3, weights="distance", metric="precomputed").fit(
        d[np.ix_(known, known)], y)
    pred = model.predict(d[np.ix_(open_rows, known)])
    assert searcher.ask() == [names[open_rows[int(np.argmax(pred))]]]


def test_lgp_ucb_on_distances_that_are_not_a_metric_raises_a_clear_error():
    # eight spokes far apart, a hub at distance 0 from each: exp(-d / ell) has the eigenvalue
    # about 1 - sqrt(8) < -1, beyond even 100x the noise term (alpha = 1)
    d = np.full((9, 9), 1e4)
    d[8, :] = d[:, 8] = 0.0
    np.fill_diagonal(d, 0.0)
    with pytest.raises(ValueError, match="not positive definite"):
        score_candidates("lgp-ucb", d, np.linspace(0.1, 0.9, 9), np.ones((2, 9)),
                         np.random.default_rng(0), precomputed=True)
