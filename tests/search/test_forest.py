"""The fast random forest of the ``"rfr"`` surrogate against scikit-learn's
``RandomForestRegressor``: bit-identical predictions for many seeds and data shapes, by both
tree builders, and the surrogate's scores unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor

from aquasurf_core.search.forest import LOW_LEVEL, forest_predict
from aquasurf_core.search.surrogates import score_candidates

# (evaluated points, candidates, dimensions, coordinates on a grid: ties between split points)
SHAPES = [(100, 400, 2, False), (9, 50, 2, False), (1, 20, 2, False), (37, 80, 3, True),
          (60, 60, 1, True)]


def data(n, m, d, grid, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * 10
    c = rng.normal(size=(m, d)) * 10
    if grid:
        x, c = np.round(x / 4), np.round(c / 4)
    y = rng.uniform(0.1, 0.9, n)
    if grid:
        y = np.round(y, 2)  # repeated accuracies, as in a benchmark's table
    return x, y, c


@pytest.mark.parametrize("low_level", [True, False] if LOW_LEVEL else [False])
@pytest.mark.parametrize("shape", SHAPES)
def test_the_forest_is_scikit_learns_bit_for_bit(shape, low_level):
    # 30 seeds for the builder in use, 5 for the other (the reference forest is the slow part)
    for seed in range(30 if low_level == LOW_LEVEL else 5):
        x, y, c = data(*shape, seed)
        expected = RandomForestRegressor(random_state=seed).fit(x, y).predict(c)
        got = forest_predict(x, y, c, seed, low_level=low_level)
        assert got.dtype == np.float64
        assert np.array_equal(got, expected), (shape, seed)


def test_large_seeds_and_other_tree_counts():
    x, y, c = data(50, 100, 2, False, 7)
    for seed in (2**31 - 2, 123456789):
        for trees in (1, 10):
            expected = RandomForestRegressor(n_estimators=trees, random_state=seed).fit(
                x, y).predict(c)
            assert np.array_equal(forest_predict(x, y, c, seed, n_trees=trees), expected)


def test_the_rfr_surrogate_scores_are_the_sklearn_forests():
    x, y, c = data(100, 300, 2, False, 3)
    seed = int(np.random.default_rng(11).integers(2**31 - 1))
    scores = score_candidates("rfr", x, y, c, np.random.default_rng(11))
    expected = RandomForestRegressor(random_state=seed).fit(x, y).predict(c)
    assert np.array_equal(scores, expected)


def test_bad_inputs_are_refused():
    x, y, c = data(10, 5, 2, False, 0)
    with pytest.raises(ValueError, match="finite"):
        forest_predict(np.where(np.eye(10, 2, dtype=bool), np.nan, x), y, c, 0)
    with pytest.raises(ValueError, match="candidates"):
        forest_predict(x, y, c[:, :1], 0)
    with pytest.raises(ValueError, match="at least one"):
        forest_predict(x[:0], y[:0], c, 0)
