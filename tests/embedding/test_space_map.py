"""The map of a whole space (aquasurf_core.embedding.space_map): fitted on the first classes of
the 3-node space, checked against distances computed the slow obvious way, round-tripped
through its files, and refused when damaged."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from aquasurf_core.embedding.space_map import (
    SpaceMapError,
    fit_space_map,
    load_space_map,
    locate,
    project_outputs,
    shipped_map_dir,
    write_space_map,
)
from aquasurf_core.features.outputs import OUTPUT_CLIP, clean_outputs
from aquasurf_core.space import THREE_NODE_SCHEMA, build_space

N = 400


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return build_space(THREE_NODE_SCHEMA, out_dir=tmp_path_factory.mktemp("s") / "three",
                       progress=False)


@pytest.fixture(scope="module")
def space_map(store):
    return fit_space_map(store, pca_components=20, limit=N, seed=0)


def test_projection_keeps_output_distances(store):
    """PCA keeps Eq. 3 distances up to the discarded variance: every pairwise distance after
    projection is at most the one before, and the squared shortfall summed over all pairs is
    n times the discarded variance (exact identity for centred PCA)."""
    raw = clean_outputs(np.asarray(store.outputs[:N]), OUTPUT_CLIP).astype(np.float64)
    projected, kept = project_outputs(store.outputs[:N], 20, seed=0)
    d_raw, d_proj = pdist(raw), pdist(projected.astype(np.float64))
    assert np.all(d_proj <= d_raw * (1 + 1e-4) + 1e-3)
    total = ((raw - raw.mean(0)) ** 2).sum()
    shortfall = (d_raw ** 2 - d_proj ** 2).sum()
    assert shortfall == pytest.approx(N * (1 - kept) * total, rel=1e-2, abs=1e-3 * total)
    full, kept_all = project_outputs(store.outputs[:N], None, seed=0)
    assert kept_all == 1.0 and np.allclose(pdist(full), d_raw, rtol=1e-5, atol=1e-4)


def test_map_places_each_class_and_neighbours_stay_close(store, space_map):
    coords = space_map.coords
    assert list(coords.columns) == ["class_id", "representative", "x", "y"]
    assert len(space_map) == N and coords["class_id"].tolist() == list(range(N))
    assert coords["representative"].tolist() == store.unique["representative"][:N].tolist()
    assert np.isfinite(coords[["x", "y"]].to_numpy()).all()
    assert 0.9 < space_map.manifest["explained_variance"] <= 1.0
    # a function's nearest neighbour by outputs lands nearer on the map than a random function
    raw = clean_outputs(np.asarray(store.outputs[:N]), OUTPUT_CLIP).astype(np.float64)
    d_raw = np.linalg.norm(raw[:, None] - raw[None], axis=-1)
    np.fill_diagonal(d_raw, np.inf)
    nearest = d_raw.argmin(1)
    xy = coords[["x", "y"]].to_numpy()
    d_map = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    to_nearest = d_map[np.arange(N), nearest]
    typical = np.median(d_map[np.triu_indices(N, 1)])
    assert np.median(to_nearest) < 0.2 * typical


def test_baselines_are_placed_and_names_located(space_map):
    assert set(space_map.extra) <= {"relu(x)", "elu(x)", "selu(x)", "sigmoid(x)", "softplus(x)",
                                    "softsign(x)", "swish(x)", "tanh(x)"}
    assert "relu(x)" in space_map.extra
    rep = space_map.coords["representative"].iloc[7]
    found = locate(space_map, [rep, "relu(x)", "  relu( x )", "exp(exp(exp(x)))"])
    relu = space_map.extra["relu(x)"]
    assert found["class_id"].tolist()[:3] == [7, relu, relu]
    assert found.loc[0, "x"] == space_map.coords.loc[7, "x"]
    assert found.loc[3, "class_id"] == -1 and np.isnan(found.loc[3, "x"])


def test_write_load_round_trip_and_damage(tmp_path, space_map):
    path = write_space_map(space_map, tmp_path / "map")
    loaded = load_space_map(path)
    assert loaded.coords.equals(space_map.coords)
    assert loaded.extra == space_map.extra
    coords_file = path / "coords.parquet"
    data = bytearray(coords_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    coords_file.write_bytes(bytes(data))
    with pytest.raises(SpaceMapError, match="coords.parquet"):
        load_space_map(path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format"] = 99
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SpaceMapError, match="format 99"):
        load_space_map(path)
    with pytest.raises(SpaceMapError, match="no space map"):
        load_space_map(tmp_path / "nowhere")
    # a directory that is not a map is never overwritten
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(SpaceMapError, match="not a space map"):
        write_space_map(space_map, other)
    assert (other / "keep.txt").read_text() == "mine"


def test_bad_arguments(store):
    with pytest.raises(ValueError, match="pca_components"):
        fit_space_map(store, pca_components=1000, limit=50)
    with pytest.raises(ValueError, match="pca_components"):
        fit_space_map(store, pca_components=True, limit=50)


def test_shipped_map_covers_the_four_node_space():
    """The map shipped as package data: every unique function of the 4-node space."""
    if not (shipped_map_dir() / "manifest.json").exists():
        pytest.fail("the 4-node map is not shipped (aquasurf space map)")
    shipped = load_space_map()
    assert len(shipped) == shipped.manifest["store"]["unique"] == 427_981
    assert shipped.manifest["store"]["functions"] == 1_023_516
    assert set(shipped.extra) == {"relu(x)", "elu(x)", "selu(x)", "sigmoid(x)", "softplus(x)",
                                  "softsign(x)", "swish(x)", "tanh(x)"}
    assert np.isfinite(shipped.coords[["x", "y"]].to_numpy()).all()


def test_cli_error_names_the_problem(tmp_path):
    run = subprocess.run([sys.executable, "-m", "aquasurf_core", "space", "map", "--space",
                          "3-node"], capture_output=True, text=True)
    assert run.returncode == 2 and "--out is required" in run.stderr
