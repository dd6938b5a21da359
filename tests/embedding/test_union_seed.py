"""The union embedding's seed: seed 0 is umap's ``+`` exactly, other seeds are other layouts of
the same union graph (umap's ``+`` alone embeds from 42 whatever the models' seeds)."""

from __future__ import annotations

import numpy as np
import pytest

from aquasurf_core import paths
from aquasurf_core.embedding.embeddings import embed_all
from aquasurf_core.embedding.umap_models import UmapSettings, fit, union


@pytest.fixture
def cache(tmp_path):
    paths.set_cache_dir(tmp_path)
    yield tmp_path
    paths.set_cache_dir(None)


def test_union_seed_42_is_umaps_plus_and_other_seeds_relayout_the_same_graph():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(60, 5)), rng.normal(size=(60, 8))
    ma = fit(a, UmapSettings("euclidean", 5, seed=0))
    mb = fit(b, UmapSettings("euclidean", 5, seed=0))
    plain = ma + mb
    same = union(ma, mb)
    np.testing.assert_array_equal(same.embedding_, plain.embedding_)
    other = union(ma, mb, seed=43)
    assert (other.graph_ != plain.graph_).nnz == 0  # the same union graph
    assert not np.allclose(other.embedding_, plain.embedding_)  # laid out differently
    np.testing.assert_array_equal(union(ma, mb, seed=43).embedding_, other.embedding_)


def test_union_layouts_differ_by_seed_and_seed_0_keeps_the_plus_layout(cache):
    from tests.embedding.test_embeddings import synthetic_benchmark

    bench = synthetic_benchmark()
    zero = embed_all(bench, seed=0, log=lambda *_: None)
    one = embed_all(bench, seed=1, log=lambda *_: None)
    assert zero["both"].settings["union_seed"] == 42 and one["both"].settings["union_seed"] == 43
    assert not np.allclose(zero["both"].coords, one["both"].coords)
    fim_settings, out_settings = (UmapSettings("manhattan", 3), UmapSettings("euclidean", 15))
    from aquasurf_core.embedding.distances import fim_embedding_features
    from aquasurf_core.features.outputs import clean_outputs

    rows = zero["both"].rows
    plus = (fit(fim_embedding_features(bench.fim_cdf[rows], bench.fim_layout), fim_settings)
            + fit(clean_outputs(bench.outputs[rows]), out_settings))
    np.testing.assert_allclose(zero["both"].coords, plus.embedding_, rtol=0, atol=1e-5)
