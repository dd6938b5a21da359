"""Eq. 2 and Eq. 3 against scipy and a direct computation on small cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from aquasurf_core.embedding.distances import (
    fim_distance,
    fim_distance_matrix,
    fim_embedding_features,
    output_distance,
    output_distance_matrix,
)
from aquasurf_core.features.fim import LOG_RANGE, FimLayout, histogram_cdf


def test_eq3_is_the_rms_difference():
    rng = np.random.default_rng(0)
    f, g = rng.normal(size=(2, 1000))
    slow = (sum((a - b) ** 2 for a, b in zip(f, g, strict=True)) / len(f)) ** 0.5
    assert output_distance(f, g) == pytest.approx(slow, rel=1e-12)
    rows = rng.normal(size=(5, 1000))
    matrix = output_distance_matrix(rows)
    for i in range(5):
        for j in range(5):
            assert matrix[i, j] == pytest.approx(output_distance(rows[i], rows[j]), abs=1e-12)
    assert np.isnan(output_distance([np.nan, 1.0], [0.0, 1.0]))
    with pytest.raises(ValueError, match="finite"):
        output_distance_matrix(np.array([[np.inf, 0.0]]))
    with pytest.raises(ValueError, match="same length"):
        output_distance(np.zeros(3), np.zeros(4))


def _features_of(samples_per_layer, layout):
    import torch

    return np.concatenate([histogram_cdf(torch.tensor(s), bins).numpy()
                           for s, bins in zip(samples_per_layer, layout.bin_counts, strict=True)])


def test_eq2_equals_the_layer_weighted_scipy_wasserstein():
    """W1 between the per-layer histograms (mass at the bin centres) computed by scipy, divided
    by each layer's weight count and summed, is Eq. 2 as the package computes it."""
    layout = FimLayout.for_layers(["a", "b", "c"], [640, 1500, 90])  # 10 + 15 + 10 bins
    rng = np.random.default_rng(1)
    lo, hi = LOG_RANGE
    layers_f = [rng.normal(-20, 15, size) for size in layout.layer_sizes]
    layers_g = [rng.normal(-10, 25, size) for size in layout.layer_sizes]
    a, b = _features_of(layers_f, layout), _features_of(layers_g, layout)
    expected = 0.0
    for layer, bins in enumerate(layout.bin_counts):
        edges = np.linspace(lo, hi, bins + 1)
        centres = 0.5 * (edges[1:] + edges[:-1])
        counts = [np.histogram(np.clip(s, lo, hi), bins=edges)[0] for s in (layers_f[layer],
                                                                           layers_g[layer])]
        w1 = wasserstein_distance(centres, centres, counts[0], counts[1])
        expected += w1 / layout.layer_sizes[layer]
    assert fim_distance(a, b, layout) == pytest.approx(expected, rel=1e-9)
    # Manhattan distance of the weighted features is the same number (what UMAP uses)
    weighted = fim_embedding_features(np.stack([a, b]), layout)
    assert np.abs(weighted[0] - weighted[1]).sum() == pytest.approx(expected, rel=1e-9)
    matrix = fim_distance_matrix(np.stack([a, b, a]), layout)
    assert matrix[0, 1] == pytest.approx(expected, rel=1e-9) and matrix[0, 2] == 0


def test_fim_features_must_be_valid_and_match_the_layout():
    layout = FimLayout.for_layers(["a"], [100])
    with pytest.raises(ValueError, match="invalid spectra"):
        fim_embedding_features(np.full((2, 10), np.nan), layout)
    with pytest.raises(ValueError, match="layout has 10 entries"):
        fim_embedding_features(np.zeros((2, 11)), layout)
    np.testing.assert_array_equal(fim_embedding_features(np.ones((1, 3)), None), np.ones((1, 3)))
