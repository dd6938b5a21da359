"""The surrogate registry and the believer's batches.

* A toy surrogate registered once appears everywhere a surrogate is listed -- the derived sets,
  the searcher, the method parser, the benchmark trials, the figures' labels and colours, and
  notebook 04's method list -- without another edit.
* The kriging believer: with nothing running it asks exactly what the independent policy asks;
  with functions running, its pick is the best score of the surrogate refitted with each
  running function at its predicted accuracy, computed here the slow obvious way.
"""

from __future__ import annotations

import numpy as np
import pytest

from aquasurf_core.search import surrogates
from aquasurf_core.search.searcher import Searcher, SearchError
from aquasurf_core.search.surrogates import (
    Surrogate,
    get_surrogate,
    predict_candidates,
    register,
    score_candidates,
    unregister,
)


def _nearest_accuracy(x, y, candidates, rng, k, precomputed=False, boost=0.0):
    """A toy surrogate: the accuracy of the nearest evaluated function, plus ``boost``."""
    from scipy.spatial.distance import cdist

    d = candidates if precomputed else cdist(candidates, x)
    return y[np.argmin(d, axis=1)] + boost


@pytest.fixture
def toy():
    entry = register(Surrogate("toy-nn", "Toy NN", _nearest_accuracy, _nearest_accuracy,
                               "distances", True, {"boost": 0.0}, colour="#123456",
                               experiment=True, summary="nearest evaluated accuracy"))
    yield entry
    unregister("toy-nn")


def test_a_registered_surrogate_appears_everywhere(toy):
    from aquasurf_core.figures.search import METHOD_COLOURS, METHOD_LABELS, fig6_search
    from aquasurf_core.pipeline import NOTEBOOKS
    from aquasurf_core.search.benchmark_search import parse_method

    assert "toy-nn" in surrogates.SURROGATES
    assert "toy-nn" in surrogates.DISTANCE_SURROGATES and "toy-nn" in surrogates.USES_FILTER
    assert surrogates.OPTIONS["toy-nn"] == {"boost": 0.0}
    assert parse_method("toy-nn(boost=0.5)") == ("toy-nn", {"boost": 0.5})
    assert METHOD_LABELS["toy-nn"] == "Toy NN" and METHOD_COLOURS["toy-nn"] == "#123456"
    nb04 = next(nb for nb in NOTEBOOKS if nb.number == "04")
    assert "toy-nn" in nb04.parameters("paper")["methods"]
    assert "toy-nn" in nb04.parameters("full")["methods"]

    rng = np.random.default_rng(0)
    coords = rng.normal(size=(30, 2))
    searcher = Searcher([f"f{i}" for i in range(30)], coords, surrogate="toy-nn", seed=1,
                        options={"boost": 0.1})
    for _ in range(12):
        (name,) = searcher.ask()
        searcher.tell(name, float(coords[searcher.index[name], 0] % 1))
    assert len({n for n, _ in searcher.results()}) == 12

    import pandas as pd
    rows = pd.DataFrame({"benchmark": "b", "feature": "both", "method": "toy-nn", "trial": 0,
                         "step": [1, 2], "best_val_so_far": [0.5, 0.6]})
    fig = fig6_search(rows, {"b": {"relu": 0.4, "best": 0.9}})
    drawn = [t for t in fig.data if t.name and t.name.startswith("Toy NN")]
    assert drawn and drawn[0].line.color == "#123456"


def test_the_registry_refuses_clashes_and_malformed_entries(toy):
    with pytest.raises(ValueError, match="registered already"):
        register(toy)
    with pytest.raises(ValueError, match="needs must be one of"):
        Surrogate("bad", "Bad", _nearest_accuracy, None, "pixels", False)
    with pytest.raises(ValueError, match="without"):
        Surrogate("bad(x)", "Bad", _nearest_accuracy, None, "nothing", False)
    with pytest.raises(ValueError, match="unknown surrogate 'nope'.*toy-nn"):
        get_surrogate("nope")
    with pytest.raises(SearchError, match="unknown surrogate"):
        Searcher(["a", "b"], np.zeros((2, 1)), surrogate="nope")


@pytest.fixture
def field():
    rng = np.random.default_rng(3)
    coords = rng.uniform(-3, 3, size=(80, 2))
    accuracy = 0.2 + 0.7 * np.exp(-((coords - [1.5, 1.0]) ** 2).sum(1) / 2)
    return [f"f{i}" for i in range(80)], coords, accuracy


@pytest.mark.parametrize("surrogate", ["knr", "knr-ucb", "lgp-ucb", "rfr", "svr", "gpr-ei",
                                       "gpr-ucb", "random"])
def test_with_nothing_running_the_believer_asks_what_the_independent_policy_asks(field,
                                                                                  surrogate):
    names, coords, accuracy = field
    sequences = []
    for batch in ("believer", "independent"):
        searcher = Searcher(names, coords, surrogate=surrogate, seed=4, batch=batch)
        for _ in range(20):
            (name,) = searcher.ask()
            searcher.tell(name, float(accuracy[searcher.index[name]]))
        sequences.append([n for n, _ in searcher.results()])
    assert sequences[0] == sequences[1]


@pytest.mark.parametrize("surrogate,options", [("lgp-ucb", {"kappa": 2.0}), ("knr", {}),
                                               ("gpr-ucb", {})])
def test_the_believer_refits_with_running_functions_at_their_prediction(field, surrogate,
                                                                        options):
    names, coords, accuracy = field
    searcher = Searcher(names, coords, surrogate=surrogate, seed=5, options=options)
    for _ in range(12):
        (name,) = searcher.ask()
        searcher.tell(name, float(accuracy[searcher.index[name]]))
    rows = [searcher.index[n] for n, _ in searcher.results()]
    y = np.array([a for _, a in searcher.results()])
    running = [r for r in (7, 41, 66) if r not in rows][:2]  # evaluated elsewhere meanwhile
    for r in running:
        searcher.reserve(names[r])
    picks = [searcher.index[n] for n in searcher.ask(3)]

    # the slow obvious way: predict each running function from the results, add it as if it
    # had returned that prediction, score every open function, take the best; repeat
    rng = np.random.default_rng(0)
    fit_rows, fit_y, expected = list(rows), list(y), []
    for r in running:
        fit_rows.append(r)
        fit_y.append(predict_candidates(surrogate, coords[rows], y, coords[[r]], rng,
                                        **options)[0])
    for _ in range(3):
        open_ = [r for r in range(80) if r not in fit_rows]
        scores = score_candidates(surrogate, coords[fit_rows], np.array(fit_y), coords[open_],
                                  rng, **options)
        best = open_[int(np.argmax(scores))]
        expected.append(best)
        fit_y.append(predict_candidates(surrogate, coords[fit_rows], np.array(fit_y),
                                        coords[[best]], rng, **options)[0])
        fit_rows.append(best)
    assert picks == expected


def test_the_believer_spreads_a_ucb_batch_that_independent_picks_bunch():
    """GP-UCB with the believer: the variance shrinks around each pick, so a batch of four
    takes one of six near-twins next to the best function and goes elsewhere for the rest; the
    four best scores of one fit are all twins."""
    rng = np.random.default_rng(0)
    evaluated = rng.uniform(-3, 3, size=(30, 2))
    accuracy = 0.2 + 0.7 * np.exp(-((evaluated - [1.5, 1.0]) ** 2).sum(1) / 2)
    twins = evaluated[np.argmax(accuracy)] + [0.4, 0.0] + rng.normal(scale=1e-3, size=(6, 2))
    coords = np.vstack([evaluated, twins, rng.uniform(-3, 3, size=(40, 2))])
    names = [f"f{i}" for i in range(len(coords))]
    in_cluster = {}
    for batch in ("believer", "independent"):
        searcher = Searcher(names, coords, surrogate="lgp-ucb", batch=batch, n_random=0,
                            options={"kappa": 2.0})
        for i in range(30):
            searcher.observe(names[i], float(accuracy[i]))
        in_cluster[batch] = sum(30 <= searcher.index[n] < 36 for n in searcher.ask(4))
    assert in_cluster == {"believer": 1, "independent": 4}


def test_the_believer_leaves_the_searchs_random_numbers_alone(field):
    names, coords, accuracy = field
    searcher = Searcher(names, coords, surrogate="rfr", seed=2)
    for _ in range(10):
        (name,) = searcher.ask()
        searcher.tell(name, float(accuracy[searcher.index[name]]))
    state = searcher.rng.bit_generator.state
    x = coords[[searcher.index[n] for n, _ in searcher.results()]]
    predict_candidates("rfr", x, [a for _, a in searcher.results()], coords[:5], searcher.rng)
    assert searcher.rng.bit_generator.state == state
    assert predict_candidates("random", x, [0.5] * 10, coords[:5], searcher.rng) is None
    with pytest.raises(SearchError, match="batch must be one of"):
        Searcher(names, coords, batch="greedy")


def test_lgp_ucb_is_the_gp_posterior_computed_with_an_inverse():
    """GP-UCB with the Laplace kernel on distances, the slow obvious way: ``K^-1`` by
    ``numpy.linalg.inv``, the length relative to the median distance, standardised targets;
    on coordinates and on the same distances precomputed."""
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(7)
    x, c = rng.normal(size=(15, 3)), rng.normal(size=(40, 3))
    y = rng.uniform(0.2, 0.9, 15)
    dxx, dcx = cdist(x, x), cdist(c, x)
    ell = 0.3 * np.median(dxx[~np.eye(15, dtype=bool)])
    z = (y - y.mean()) / y.std()
    inverse = np.linalg.inv(np.exp(-dxx / ell) + 0.01 * np.eye(15))
    kc = np.exp(-dcx / ell)
    mean = kc @ inverse @ z
    sigma = np.sqrt(1 - np.sum(kc @ inverse * kc, axis=1))
    for kappa in (0.0, 2.0):
        expected = mean + kappa * sigma
        got = score_candidates("lgp-ucb", x, y, c, rng, kappa=kappa)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
        got = score_candidates("lgp-ucb", dxx, y, dcx, rng, precomputed=True, kappa=kappa)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(predict_candidates("lgp-ucb", x, y, c, rng),
                               mean * y.std() + y.mean(), rtol=1e-9)
