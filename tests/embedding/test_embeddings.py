"""The FIM / outputs / both embeddings of a benchmark: rows, determinism, the on-disk cache
(hits, misses on changed settings, corrupt entries refitted with a warning), restored models
combining exactly as fresh ones, and the published-file case without a layout."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from aquasurf_core import paths
from aquasurf_core.bench.actbench import load_actbench, save_actbench_json
from aquasurf_core.bench.table import Benchmark, make_table
from aquasurf_core.embedding.embeddings import embed, embed_all, embedding_rows
from aquasurf_core.features.fim import FimLayout
from aquasurf_core.features.outputs import output_features

UNARY = ["tanh", "sigmoid", "erf", "arctan", "softsign", "square", "abs", "negative", "sinh",
         "arcsinh", "erfc", "relu", "elu", "swish"]


def synthetic_benchmark(n: int = 70, seed: int = 0) -> Benchmark:
    rng = np.random.default_rng(seed)
    names = [f"add({UNARY[i % 14]}(x),{UNARY[(i // 14) % 14]}(x))" for i in range(n)]
    val = rng.uniform(0.1, 0.9, n)
    rows = [{"fn_name": fn, "equivalent_names": [fn], "train_acc": v, "val_acc": v,
             "test_acc": v, "train_loss": 1.0, "val_loss": 1.0, "test_loss": 1.0,
             "runtime_s": 1.0, "seeds": [0]} for fn, v in zip(names, val, strict=True)]
    layout = FimLayout.for_layers(["a", "b"], [1000, 1200])  # 10 + 12 bins
    cdf = np.sort(rng.random((n, layout.dim)), axis=1).astype(np.float32)
    valid = np.ones(n, dtype=bool)
    valid[::7] = False
    cdf[~valid] = np.nan
    return Benchmark("synthetic", make_table(rows), output_features(names), cdf, valid, layout)


@pytest.fixture
def cache(tmp_path):
    paths.set_cache_dir(tmp_path)
    yield tmp_path
    paths.set_cache_dir(None)


def test_embeddings_cover_the_valid_functions_and_are_seeded(cache):
    bench = synthetic_benchmark()
    rows = embedding_rows(bench)
    assert rows.tolist() == [i for i in range(70) if i % 7]
    found = embed_all(bench, log=lambda *_: None)
    for kind, emb in found.items():
        assert emb.kind == kind and emb.coords.shape == (len(rows), 2)
        assert emb.rows.tolist() == rows.tolist()
        assert emb.names == [bench.table["fn_name"].iloc[r] for r in rows]
        assert np.isfinite(emb.coords).all() and not emb.from_cache
    assert found["fim"].settings["metric"] == "manhattan"
    assert found["fim"].settings["n_neighbors"] == 3
    assert found["outputs"].settings["n_neighbors"] == 15
    again = embed(bench, "outputs", use_cache=False, log=lambda *_: None)
    np.testing.assert_array_equal(again.coords, found["outputs"].coords)
    assert found["both"].position(int(rows[3])) == 3 and found["both"].position(0) == -1
    three = embed(bench, "fim", dim=3, log=lambda *_: None)
    assert three.coords.shape == (len(rows), 3) and three.key != found["fim"].key


def test_cache_hits_misses_and_corrupt_entries(cache):
    bench = synthetic_benchmark()
    first = embed_all(bench, log=lambda *_: None)
    second = embed_all(bench, log=lambda *_: None)
    for kind in first:
        assert second[kind].from_cache and second[kind].key == first[kind].key
        np.testing.assert_array_equal(second[kind].coords, first[kind].coords)
    other = embed(bench, "fim", seed=1, log=lambda *_: None)
    assert not other.from_cache and other.key != first["fim"].key
    # a damaged entry is refitted with a warning naming it, and the result is the same
    (first["outputs"].path / "coords.npy").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="embedding cache entry .* unreadable .* refitting"):
        refit = embed(bench, "outputs", log=lambda *_: None)
    assert not refit.from_cache
    np.testing.assert_array_equal(refit.coords, first["outputs"].coords)
    (first["both"].path / "manifest.json").write_text("{not json")
    with pytest.warns(UserWarning, match="unreadable"):
        assert not embed(bench, "both", log=lambda *_: None).from_cache
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert embed(bench, "both", log=lambda *_: None).from_cache  # repaired


def test_union_from_cached_models_equals_union_from_fresh_models(cache):
    bench = synthetic_benchmark()
    fresh = embed(bench, "both", use_cache=False, log=lambda *_: None)
    embed(bench, "fim", log=lambda *_: None)
    embed(bench, "outputs", log=lambda *_: None)
    restored = embed(bench, "both", log=lambda *_: None)  # components read from the cache
    assert not restored.from_cache
    np.testing.assert_array_equal(restored.coords, fresh.coords)


def test_errors_and_published_files_without_a_layout(cache, tmp_path):
    bench = synthetic_benchmark()
    with pytest.raises(ValueError, match="unknown embedding kind 'pca'"):
        embed(bench, "pca")
    path = save_actbench_json(bench, tmp_path / "act-bench-synthetic.json")
    published = load_actbench(path)
    assert published.fim_layout is None
    found = embed_all(published, log=lambda *_: None)
    assert found["fim"].coords.shape[0] == int(published.fim_valid.sum())
    no_fim = Benchmark("nofim", bench.table, bench.outputs, None,
                       np.zeros(len(bench), dtype=bool))
    assert list(embed_all(no_fim, log=lambda *_: None)) == ["outputs"]
    assert embedding_rows(no_fim).tolist() == list(range(70))
    with pytest.raises(ValueError, match="no FIM features"):
        embed(no_fim, "both")
