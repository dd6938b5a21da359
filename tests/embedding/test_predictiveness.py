"""k-NN predictiveness against a hand-written nearest-neighbour loop, and its bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.stats import spearmanr
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold

from aquasurf_core.embedding.distances import combined_distances
from aquasurf_core.embedding.predictiveness import (
    neighbour_predictions,
    paired_differences,
    prediction_scores,
)


def slow_knn(target, features, k, folds, seed):
    pred = np.empty(len(target))
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(features):
        for i in test:
            d = np.sqrt(((features[train] - features[i]) ** 2).sum(axis=1))
            nearest = np.argsort(d, kind="stable")[:k]
            w = 1.0 / d[nearest]
            pred[i] = (w * target[train][nearest]).sum() / w.sum()
    return pred


def test_predictions_equal_the_obvious_loop_and_the_precomputed_route():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 2))
    target = features[:, 0] + 0.1 * rng.normal(size=60)
    fast = neighbour_predictions(target, features, k=3, folds=10, seed=4)
    np.testing.assert_allclose(fast, slow_knn(target, features, 3, 10, 4), rtol=1e-12)
    pre = neighbour_predictions(target, distances=cdist(features, features), k=3, folds=10,
                                seed=4)
    np.testing.assert_allclose(pre, fast, rtol=1e-12)
    with pytest.raises(ValueError, match="either features or distances"):
        neighbour_predictions(target)
    with pytest.raises(ValueError, match="too few"):
        neighbour_predictions(target[:12], features[:12])
    with pytest.raises(ValueError, match="non-finite"):
        neighbour_predictions(np.full(60, np.nan), features)


def test_scores_and_their_bootstrap():
    rng = np.random.default_rng(1)
    truth = rng.uniform(size=200)
    pred = truth + 0.2 * rng.normal(size=200)
    s = prediction_scores(truth, pred, resamples=300, seed=2)
    assert s["spearman"] == pytest.approx(spearmanr(truth, pred).statistic)
    assert s["r2"] == pytest.approx(r2_score(truth, pred))
    assert s["spearman_lo"] < s["spearman"] < s["spearman_hi"]
    assert s["r2_lo"] < s["r2"] < s["r2_hi"]
    assert prediction_scores(truth, pred, resamples=300, seed=2) == s
    noisy = truth + rng.normal(size=200)
    (d,) = paired_differences(truth, {"good": pred, "bad": noisy}, [("good", "bad")],
                              resamples=300, seed=2)
    assert d["Δ spearman"] == pytest.approx(s["spearman"] - spearmanr(truth, noisy).statistic)
    assert 0 < d["Δ spearman lo"] < d["Δ spearman"] < d["Δ spearman hi"]
    (same,) = paired_differences(truth, {"a": pred, "b": pred}, [("a", "b")], resamples=50)
    assert same["Δ spearman lo"] == same["Δ spearman hi"] == 0


def test_combined_distances_scale_each_by_its_median():
    a = np.array([[0, 2, 4], [2, 0, 6], [4, 6, 0]], float)
    b = 10 * a
    np.testing.assert_allclose(combined_distances(a, b), 2 * a / 4)
    with pytest.raises(ValueError, match="at least one"):
        combined_distances()
