"""UMAP helpers: preprocessing, interpolation grid, settings, determinism, inverse transform."""

import numpy as np
import pytest

from aquasurf_core.embedding.interpolation import bilinear_grid
from aquasurf_core.embedding.umap_models import fit_output_umap
from aquasurf_core.features.outputs import clean_outputs


def test_clean_outputs_maps_non_finite_and_clips():
    raw = np.array([[np.nan, np.inf, -np.inf, 1e30, -3.0, 0.5]])
    assert clean_outputs(raw, clip=10).tolist() == [[10, 10, -10, 10, -3.0, 0.5]]
    with pytest.raises(ValueError, match="2-D"):
        clean_outputs(np.zeros(3))


def test_bilinear_grid_hits_corners_and_midpoint():
    corners = np.array([[0, 0], [4, 0], [0, 2], [4, 2]])
    points, uv = bilinear_grid(corners, 3)
    assert points.shape == (9, 2) and uv.shape == (9, 2)
    np.testing.assert_allclose(points[[0, 2, 6, 8]], corners)
    np.testing.assert_allclose(points[4], [2, 1])
    with pytest.raises(ValueError):
        bilinear_grid(corners[:3], 3)


def test_output_umap_separates_families_is_seeded_and_inverts():
    x = np.linspace(-5, 5, 40)
    shifts = np.linspace(-0.5, 0.5, 30)
    relus = np.maximum(x[None, :] - shifts[:, None], 0)
    tanhs = np.tanh(x[None, :] * (1 + shifts[:, None]))
    outputs = np.vstack([relus, tanhs])
    a = fit_output_umap(outputs, n_neighbors=10, min_dist=0.5, seed=3)
    b = fit_output_umap(outputs, n_neighbors=10, min_dist=0.5, seed=3)
    np.testing.assert_array_equal(a.embedding_, b.embedding_)
    emb = a.embedding_
    within = max(np.ptp(emb[:30], axis=0).max(), np.ptp(emb[30:], axis=0).max())
    between = np.linalg.norm(emb[:30].mean(0) - emb[30:].mean(0))
    assert between > within  # two families, two clusters
    # The inverse transform of a ReLU-cluster point looks like a ReLU, not a tanh.
    recon = a.inverse_transform(emb[:1])[0]
    assert np.abs(recon - relus[0]).mean() < np.abs(recon - tanhs[0]).mean()


def test_settings_are_checked():
    from aquasurf_core.embedding.umap_models import FIM_SETTINGS, OUTPUT_SETTINGS, UmapSettings

    assert (FIM_SETTINGS.metric, FIM_SETTINGS.n_neighbors, FIM_SETTINGS.min_dist) == \
        ("manhattan", 3, 0.1)
    assert (OUTPUT_SETTINGS.metric, OUTPUT_SETTINGS.n_neighbors) == ("euclidean", 15)
    for bad in [dict(metric="cosine"), dict(n_neighbors=1), dict(dim=0), dict(min_dist=2.0)]:
        with pytest.raises(ValueError):
            UmapSettings(**{"metric": "euclidean", "n_neighbors": 5, **bad})


def test_umap_kernels_are_cached_on_disk_for_the_next_process():
    """load_umap turns numba's on-disk cache on for umap's kernels: a kernel compiled (or
    loaded) here is loaded from the cache, not compiled, by a new process."""
    import subprocess
    import sys

    from aquasurf_core.embedding.umap_models import load_umap

    load_umap()
    from umap.umap_ import smooth_knn_dist

    distances = np.array([[0.0, 1.0, 2.0], [0.0, 0.5, 3.0]], dtype=np.float32)
    smooth_knn_dist(distances, 3.0)
    assert smooth_knn_dist.stats.cache_path is not None
    code = ("import numpy as np\n"
            "from aquasurf_core.embedding.umap_models import load_umap\n"
            "load_umap()\n"
            "from umap.umap_ import smooth_knn_dist\n"
            "smooth_knn_dist(np.zeros((2, 3), dtype=np.float32), 3.0)\n"
            "print(sum(smooth_knn_dist.stats.cache_hits.values()),"
            " sum(smooth_knn_dist.stats.cache_misses.values()))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=True).stdout.split()
    assert out == ["1", "0"]  # one hit, no compilation
