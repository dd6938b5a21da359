"""Persisted spaces: round trip, cache, atomic writes, corruption, CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aquasurf_core import cli
from aquasurf_core.space import store as space_store
from aquasurf_core.space.activation import ActivationFunction
from aquasurf_core.space.evaluation import canonical_bits, evaluate_space, single_thread
from aquasurf_core.space.inputs import linspace_inputs, normal_inputs
from aquasurf_core.space.schemas import THREE_NODE_SCHEMA, schema_names
from aquasurf_core.space.store import (
    SpaceStoreError,
    build_space,
    count_space,
    load_space,
    space_key,
)

SMALL = ["binary(unary(x),x)", "binary(x,unary(x))"]  # 378 functions, cross-schema duplicates


def module_output(name, x):
    with torch.no_grad(), single_thread():
        return ActivationFunction(name)(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def three_node_store(tmp_path_factory):
    return build_space(THREE_NODE_SCHEMA, out_dir=tmp_path_factory.mktemp("s") / "three",
                       progress=False)


def test_round_trip_three_node(three_node_store):
    store = load_space(three_node_store.path)  # verifies checksums
    names = schema_names(THREE_NODE_SCHEMA)
    result = evaluate_space(THREE_NODE_SCHEMA)
    assert store.n_functions == len(store.names) == 5_103
    assert store.n_unique == len(store.unique) == result.n_unique == len(store)
    assert store.names["name"].tolist() == names
    assert np.array_equal(store.names["class_id"].to_numpy(), result.class_ids[0])
    assert set(store.names["schema"].astype(str)) == {THREE_NODE_SCHEMA}
    assert store.outputs.shape == (store.n_unique, 1000) and store.outputs.dtype == np.float32
    assert store.outputs_linspace.shape == (store.n_unique, 80)
    assert np.array_equal(canonical_bits(store.outputs), canonical_bits(result.unique_outputs))
    m = store.manifest
    assert m["schemas"] == [THREE_NODE_SCHEMA] and m["operators"] == "paper"
    assert m["counts"]["functions"] == 5_103 and m["counts"]["unique"] == store.n_unique
    assert m["inputs"]["normal"]["seed"] == 0 and m["dedup"]["signed_zero_distinct"] is False
    assert set(m["files"]) == {"names.parquet", "unique.parquet", "outputs.npy",
                               "outputs_linspace.npy"}
    assert {"torch", "numpy"} <= set(m["versions"]) and m["seconds"]["total"] > 0


def test_classes_representatives_and_outputs(three_node_store):
    store = three_node_store
    names = store.names
    unique = store.unique
    members = names.groupby("class_id")["name"].apply(list)
    assert unique["count"].sum() == store.n_functions
    x, grid = normal_inputs(), linspace_inputs()
    rng = np.random.default_rng(0)
    for cid in rng.choice(store.n_unique, size=150, replace=False):
        row = unique.iloc[cid]
        assert row["class_id"] == cid
        assert list(row["equivalent_names"]) == members[cid]  # enumeration order
        assert row["count"] == len(members[cid])
        def complexity(n):  # operators other than zero/one/identity, then length, then name
            trivial = n.count("zero(") + n.count("one(") + n.count("identity(")
            return (n.count("(") - trivial, len(n), n)

        best = min(members[cid], key=complexity)
        assert row["representative"] == best
        rep = row["representative"]
        assert np.array_equal(canonical_bits(module_output(rep, x)),
                              canonical_bits(store.outputs[cid]))
        assert np.array_equal(canonical_bits(module_output(rep, grid), True),
                              canonical_bits(store.outputs_linspace[cid], True))
    # class ids follow the first appearance of a class in enumeration order
    first = names.drop_duplicates("class_id")["class_id"].to_numpy()
    assert np.array_equal(first, np.arange(store.n_unique))


def test_union_store_merges_across_schemas(tmp_path):
    store = build_space(SMALL, out_dir=tmp_path / "small", progress=False)
    names = store.names.set_index("name")
    assert names.loc["add(relu(x),x)", "class_id"] == names.loc["add(x,relu(x))", "class_id"]
    assert list(store.names["schema"].astype(str).unique()) == SMALL
    assert store.n_unique == count_space(SMALL)["unique"]


def test_cache_is_reused_and_rebuild_forces(tmp_path, monkeypatch):
    monkeypatch.setenv("AQUASURF_CACHE", str(tmp_path / "cache"))
    first = build_space(SMALL, progress=False)
    assert first.path == tmp_path / "cache" / "spaces" / space_key(SMALL)
    stamp = os.stat(first.path / "outputs.npy").st_mtime_ns
    created = first.manifest["created"]
    second = build_space(list(reversed(SMALL))[::-1], progress=False)
    assert second.path == first.path and second.manifest["created"] == created
    assert os.stat(first.path / "outputs.npy").st_mtime_ns == stamp
    assert space_key(SMALL, signed_zero_distinct=True) != space_key(SMALL)
    assert space_key(SMALL, "coatnet") != space_key(SMALL)
    os.utime(first.path / "outputs.npy", ns=(0, 0))
    third = build_space(SMALL, progress=False, rebuild=True)
    assert os.stat(third.path / "outputs.npy").st_mtime_ns != 0


def test_failed_write_keeps_previous_store(tmp_path, monkeypatch):
    target = tmp_path / "store"
    old = build_space(SMALL, out_dir=target, progress=False)
    before = old.manifest["created"], old.manifest["files"]
    real = space_store.pq.write_table

    def crash_on_unique(table, path, **kwargs):
        if Path(path).name == "unique.parquet":
            raise OSError("disk full (simulated)")
        real(table, path, **kwargs)

    monkeypatch.setattr(space_store.pq, "write_table", crash_on_unique)
    with pytest.raises(OSError, match="simulated"):
        build_space(SMALL, out_dir=target, progress=False, rebuild=True)
    survivor = load_space(target)  # full checksum verification
    assert (survivor.manifest["created"], survivor.manifest["files"]) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]  # no temp dirs left


@pytest.mark.parametrize("victim, damage", [
    ("outputs.npy", "flip"), ("names.parquet", "truncate"), ("unique.parquet", "flip"),
    ("outputs_linspace.npy", "delete"), ("manifest.json", "garbage"),
])
def test_corrupt_files_are_named(tmp_path, victim, damage):
    store = build_space(SMALL, out_dir=tmp_path / "s", progress=False)
    path = store.path / victim
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "delete":
        path.unlink()
    else:
        path.write_text("{not json")
    with pytest.raises(SpaceStoreError, match=victim.replace(".", r"\.")):
        load_space(store.path)


def test_shape_mismatch_is_reported(tmp_path):
    store = build_space(SMALL, out_dir=tmp_path / "s", progress=False)
    manifest = json.loads((store.path / "manifest.json").read_text())
    np.save(store.path / "outputs.npy", np.zeros((3, 1000), np.float32))
    manifest["files"]["outputs.npy"]["bytes"] = (store.path / "outputs.npy").stat().st_size
    (store.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SpaceStoreError, match="outputs.npy has shape"):
        load_space(store.path, verify=False)


def test_refuses_to_overwrite_a_foreign_directory(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(SpaceStoreError, match="not a space store"):
        build_space(SMALL, out_dir=tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_cli_count_json_is_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "aquasurf_core.cli", "space", "count", THREE_NODE_SCHEMA, "--json"],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert set(result) == {"functions", "unique", "seconds"}
    assert result["functions"] == 5_103
    assert result["unique"] == count_space(THREE_NODE_SCHEMA)["unique"]


def test_cli_bad_schema_is_an_error_without_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "aquasurf_core.cli", "space", "count", "binary(unary(x))"],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0
    assert "wrong arity" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_build_and_human_count(tmp_path, capsys):
    assert cli.main(["space", "build", *SMALL, "--out", str(tmp_path / "b")]) == 0
    assert str(tmp_path / "b") in capsys.readouterr().out
    assert load_space(tmp_path / "b").n_functions == 2 * 7 * 27
    assert cli.main(["space", "count", "binary(x,unary(x))"]) == 0
    assert "189 functions" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        cli.main(["space", "count", THREE_NODE_SCHEMA, "--operators", "bogus"])
    assert info.value.code == 2
    assert cli.main(["space", "build", "unary(y)", "--out", str(tmp_path / "c")]) != 0
    assert "unknown operator" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("AQUASURF_SLOW"), reason="slow: set AQUASURF_SLOW=1")
def test_full_four_node_build(tmp_path):
    from aquasurf_core.space.schemas import FOUR_NODE_SCHEMAS, count_functions

    store = build_space(FOUR_NODE_SCHEMAS, out_dir=tmp_path / "four", progress=False)
    assert store.n_functions == count_functions(FOUR_NODE_SCHEMAS) == 1_023_516
    assert store.n_unique == count_space(FOUR_NODE_SCHEMAS)["unique"]
    loaded = load_space(store.path)
    assert loaded.outputs.shape == (store.n_unique, 1000)
    assert loaded.unique["count"].sum() == 1_023_516


def test_class_of_finds_names_in_and_outside_the_space(tmp_path):
    store = space_store.build_space(THREE_NODE_SCHEMA, out_dir=tmp_path / "three", progress=False)
    ids = store.class_of(
        ["max(identity(x),zero(x))", "relu(x)", "add(relu(x),zero(x))", "exp(exp(exp(x)))"]
    )
    assert ids[0] == ids[1] == ids[2] >= 0  # relu(x) is matched through its outputs
    assert ids[3] == -1  # not a function of the 3-node space
    members = list(store.unique.loc[ids[0], "equivalent_names"])
    assert "max(identity(x),zero(x))" in members and "relu(x)" not in members
