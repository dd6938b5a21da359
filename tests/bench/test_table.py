"""Act-Bench JSON loading/writing and the benchmark directory format, on tiny files."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from aquasurf_core.bench import actbench
from aquasurf_core.bench import table as bench
from aquasurf_core.bench.actbench import ACTBENCH_KEYS, load_actbench, save_actbench_json
from aquasurf_core.bench.table import (
    Benchmark,
    BenchmarkFileError,
    load_benchmark,
    make_table,
    save_benchmark,
)
from aquasurf_core.features.fim import FimLayout
from aquasurf_core.space.activation import ActivationFunction
from aquasurf_core.space.inputs import normal_inputs
from aquasurf_core.space.names import InvalidFunctionName
from aquasurf_core.storage import file_entry, sha256_file

NAN, INF = math.nan, math.inf


def entry(train=0.9, val=0.8, test=0.79, train_loss=0.3, val_loss=0.6, test_loss=0.61,
          equivalent=(), cdf=(0.1, 0.5, 0.9, 1.0), runtime=123.0) -> dict:
    return {"Train Accuracy": train, "Validation Accuracy": val, "Train Loss": train_loss,
            "Validation Loss": val_loss, "Test Accuracy": test, "Test Loss": test_loss,
            "Equivalent Activation Functions": list(equivalent),
            "Fisher log eigenvalue CDF": None if cdf is None else list(cdf),
            "Runtime (s)": runtime}


def tiny_entries() -> dict:
    return {
        "max(identity(x),zero(x))": entry(equivalent=["max(zero(x),identity(x))"]),
        "add(tanh(x),zero(x))": entry(val=0.7, cdf=(0.0, 0.25, 0.75, 1.0)),
        # diverged: NaN loss, and a NaN inside the CDF (invalid spectrum)
        "mul(sigmoid(x),identity(x))": entry(val_loss=NAN, cdf=(0.1, NAN, 0.9, 1.0)),
        # failed run (no accuracies), no CDF; its own name with spaces among the equivalents
        "min(square(x),selu(x))": entry(train=NAN, val=None, test=NAN, train_loss=INF,
                                        equivalent=["min(selu(x),square(x))",
                                                    " min( square(x) , selu(x) )"], cdf=None),
        # a stray short CDF (as some official ResNet-56 entries) and an Infinity loss
        "exp(x)": entry(test_loss=INF, cdf=(0.5, 0.7, 1.0), runtime="NaN"),
        # a null element inside the CDF
        "sub(erf(x),one(x))": entry(cdf=(0.2, None, 0.8, 1.0)),
    }


def write(path, obj) -> str:
    text = json.dumps(obj)  # Python's json writes NaN/Infinity tokens, like the official files
    path.write_text(text)
    return text


@pytest.fixture
def tiny_file(tmp_path):
    path = tmp_path / "act-bench-tiny.json"
    write(path, tiny_entries())
    return path


def test_load_tiny_file_against_the_raw_json(tiny_file):
    text = tiny_file.read_text()
    assert "NaN" in text and "Infinity" in text  # the non-standard tokens are exercised
    b = load_actbench(tiny_file)
    raw = json.loads(text)
    assert b.name == "act-bench-tiny" and len(b) == 6
    assert list(b.table.columns) == list(bench.TABLE_COLUMNS)
    assert list(b.table["fn_name"]) == list(raw)  # canonical names, file order
    for i, (name, e) in enumerate(raw.items()):
        row = b.table.iloc[i]
        for key, column in actbench.METRIC_KEYS.items():
            expected = NAN if e[key] in (None, "NaN") else float(e[key])
            assert row[column] == expected or (math.isnan(row[column]) and math.isnan(expected))
        assert row["equivalent_names"][0] == name
        assert row["seeds"] == []
    assert b.table.loc[3, "equivalent_names"] == ["min(square(x),selu(x))",
                                                  "min(selu(x),square(x))"]
    assert list(b.table["status"]) == ["ok", "ok", "diverged", "failed", "diverged", "ok"]
    # CDF: modal length 4; short row padded with NaN; validity as documented
    assert b.fim_cdf.shape == (6, 4) and b.fim_cdf.dtype == np.float32
    assert b.fim_layout is None
    assert b.fim_valid.tolist() == [True, True, False, False, False, False]
    np.testing.assert_array_equal(b.fim_cdf[1], np.float32([0.0, 0.25, 0.75, 1.0]))
    np.testing.assert_array_equal(b.fim_cdf[4], np.float32([0.5, 0.7, 1.0, NAN]))
    assert np.isnan(b.fim_cdf[3]).all() and np.isnan(b.fim_cdf[5, 1])
    # outputs: each representative evaluated the slow obvious way on the normal inputs
    x = torch.tensor(normal_inputs())
    expected = np.stack([ActivationFunction(n)(x).numpy() for n in b.table["fn_name"]])
    assert b.outputs.shape == (6, 1000) and b.outputs.dtype == np.float32
    np.testing.assert_array_equal(b.outputs, expected)
    m = b.manifest
    assert m["entries"] == 6 and m["names"] == 8 and m["fim"]["lengths"] == {"0": 1, "3": 1,
                                                                             "4": 4}
    assert m["status_counts"] == {"ok": 3, "diverged": 2, "failed": 1}
    assert m["equivalence_check"]["entries_with_differing_members"] == 0
    assert m["equivalence_check"]["entries_sharing_outputs"] == 0
    assert b.rows_of(["max(zero(x), identity(x))", "min(selu(x),square(x))", "tanh(x)"]
                     ).tolist() == [0, 3, -1]


def test_modal_length_and_no_cdf(tmp_path):
    entries = {"tanh(x)": entry(cdf=(0.1, 1.0)), "erf(x)": entry(cdf=(0.1, 0.2, 1.0)),
               "exp(x)": entry(cdf=(0.1, 0.2, 0.4, 1.0, 1.0))}
    write(tmp_path / "a.json", entries)
    b = load_actbench(tmp_path / "a.json")  # every length once: the longest wins the tie
    assert b.fim_cdf.shape == (3, 5) and b.fim_valid.tolist() == [False, False, True]
    entries = {"tanh(x)": entry(cdf=None), "erf(x)": entry(cdf=())}
    write(tmp_path / "b.json", entries)
    b = load_actbench(tmp_path / "b.json", name="none")
    assert b.name == "none" and b.fim_cdf is None and not b.fim_valid.any()


def test_equivalence_diagnostics(tmp_path):
    entries = {"tanh(x)": entry(equivalent=["sigmoid(x)"]),  # not equivalent under our kernels
               "add(tanh(x),zero(x))": entry(),  # same outputs as tanh(x)
               "erf(x)": entry()}
    write(tmp_path / "d.json", entries)
    check = load_actbench(tmp_path / "d.json").manifest["equivalence_check"]
    assert check["entries_with_differing_members"] == 1
    assert check["examples_differing"] == ["tanh(x)"]
    assert check["entries_sharing_outputs"] == 2 and check["distinct_outputs"] == 2


def test_extra_keys_are_ignored_and_listed(tmp_path):
    entries = tiny_entries()
    entries["exp(x)"]["W&B Run Configs"] = [{"lr": 0.1}]
    write(tmp_path / "x.json", entries)
    assert load_actbench(tmp_path / "x.json").manifest["ignored_keys"] == {"W&B Run Configs": 1}


def _corrupt(name):
    entries = tiny_entries()
    e = entries["add(tanh(x),zero(x))"]
    if name.startswith("missing:"):
        del e[name.removeprefix("missing:")]
    else:
        key, value = {
            "string accuracy": ("Validation Accuracy", "high"),
            "bool accuracy": ("Test Accuracy", True),
            "percent accuracy": ("Train Accuracy", 85.0),
            "negative accuracy": ("Validation Accuracy", -0.1),
            "infinite accuracy": ("Test Accuracy", INF),
            "negative loss": ("Train Loss", -1.0),
            "infinite runtime": ("Runtime (s)", INF),
            "cdf not a list": ("Fisher log eigenvalue CDF", "abc"),
            "cdf bad element": ("Fisher log eigenvalue CDF", [0.1, 0.2, "x", 1.0]),
            "cdf nested": ("Fisher log eigenvalue CDF", [[0.1], 0.2]),
            "huge accuracy": ("Validation Accuracy", 10 ** 400),
            "cdf huge element": ("Fisher log eigenvalue CDF", [0.1, 10 ** 400]),
            "equivalents not a list": ("Equivalent Activation Functions", "tanh(x)"),
            "bad equivalent": ("Equivalent Activation Functions", ["tanh(x", "erf(x)"]),
            "equivalent not a string": ("Equivalent Activation Functions", [3]),
            "duplicate via equivalent": ("Equivalent Activation Functions", ["exp(x)"]),
        }[name]
        e[key] = value
    return entries


CORRUPTIONS = {
    **{f"missing:{k}": f"key {re.escape(repr(k))}: missing key" for k in ACTBENCH_KEYS},
    "string accuracy": "key 'Validation Accuracy'.*must be a number, got the string 'high'",
    "bool accuracy": "key 'Test Accuracy'.*must be a number, got bool",
    "percent accuracy": "outside \\[0, 1\\] \\(a percentage",
    "negative accuracy": "accuracy -0.1 is outside",
    "infinite accuracy": "accuracy inf is outside",
    "negative loss": "key 'Train Loss'.*negative",
    "infinite runtime": "key 'Runtime \\(s\\)'.*runtime inf",
    "cdf not a list": "key 'Fisher log eigenvalue CDF'.*must be a list",
    "cdf bad element": "element 2 must be a number, got the string 'x'",
    "cdf nested": "element 0 must be a number, got list",
    "huge accuracy": "key 'Validation Accuracy'.*too large for a float",
    "cdf huge element": "element 1 is too large for a float",
    "equivalents not a list": "key 'Equivalent Activation Functions'.*must be a list",
    "bad equivalent": "'tanh\\(x' is not a valid function name",
    "equivalent not a string": "function name must be a string, got int",
    "duplicate via equivalent": "function 'exp\\(x\\)' also appears in entry",
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupt_entries_name_file_entry_and_key(tmp_path, case):
    path = tmp_path / "bad.json"
    write(path, _corrupt(case))
    with pytest.raises(BenchmarkFileError, match=CORRUPTIONS[case]) as info:
        load_actbench(path)
    message = str(info.value)
    assert str(path) in message
    if case != "duplicate via equivalent":  # that one names the later entry, exp(x)'s owner
        assert "entry 'add(tanh(x),zero(x))'" in message


def test_corrupt_files(tmp_path, tiny_file):
    text = tiny_file.read_text()
    indented = json.dumps(tiny_entries(), indent=1)
    lines = indented[:400].count("\n") + 1
    cases = {
        "truncated": (text[: len(text) // 2], "invalid JSON at line 1, column .*truncated"),
        "list": ("[1, 2]", "expected a JSON object .* got a JSON list"),
        "empty": ("{}", "holds no entries"),
        "entry not an object": ('{"tanh(x)": [1, 2]}', "entry 'tanh\\(x\\)': expected an object"),
        "bad key": (json.dumps({"foo(x)": entry()}), "entry 'foo\\(x\\)'.*not a valid function"),
        "duplicate key": (f'{{"tanh(x)": {json.dumps(entry())}, '
                          f'"tanh(x)": {json.dumps(entry(val=0.1))}}}',
                          "function 'tanh\\(x\\)' appears twice"),
        "same function spelled twice": (json.dumps({"tanh(x)": entry(), "tanh( x )": entry()}),
                                        "entry 'tanh\\( x \\)'.*also appears in entry 'tanh"),
        "key twice in entry": ('{"tanh(x)": {"Train Accuracy": 0.5, "Train Accuracy": 0.6}}',
                               "entry 'tanh\\(x\\)', key 'Train Accuracy': key appears twice"),
        "multi-line truncation": (indented[:400], f"invalid JSON at line {lines}, column "
                                                  "\\d+: .*truncated"),
        "bad token": (text.replace("NaN", "nan", 1), "invalid JSON at line 1, column \\d+: "
                                                     "Expecting value$"),
    }
    for label, (content, pattern) in cases.items():
        path = tmp_path / f"{label}.json"
        path.write_text(content)
        with pytest.raises(BenchmarkFileError, match=pattern) as info:
            load_actbench(path)
        assert str(path) in str(info.value), label
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"tanh(x)\xff": 1}')
    with pytest.raises(BenchmarkFileError, match="not UTF-8"):
        load_actbench(path)
    with pytest.raises(FileNotFoundError, match="act-bench-cnn.json"):
        load_actbench(tmp_path / "nowhere.json")


def test_actbench_json_round_trip(tmp_path, tiny_file):
    b = load_actbench(tiny_file)
    out = save_actbench_json(b, tmp_path / "ours" / "act-bench-ours.json")
    raw = json.loads(out.read_text())
    assert all(list(e) == list(ACTBENCH_KEYS) for e in raw.values())
    assert raw["exp(x)"]["Fisher log eigenvalue CDF"][:3] == pytest.approx([0.5, 0.7, 1.0])
    assert not list(out.parent.glob(".*tmp*"))
    again = load_actbench(out)
    cols = [c for c in bench.TABLE_COLUMNS if c != "seeds"]
    pd.testing.assert_frame_equal(again.table[cols], b.table[cols])
    np.testing.assert_array_equal(again.fim_cdf, b.fim_cdf)
    np.testing.assert_array_equal(again.fim_valid, b.fim_valid)
    np.testing.assert_array_equal(again.outputs, b.outputs)
    # the file written a second time is identical (a fixed point)
    assert save_actbench_json(again, tmp_path / "second.json").read_text() == out.read_text()


def test_actbench_json_refuses_unrepresentable_invalid_row(tmp_path):
    b = tiny_benchmark()
    b.fim_valid[0] = False  # finite features marked invalid
    with pytest.raises(ValueError, match="finite CDF but is marked invalid"):
        save_actbench_json(b, tmp_path / "x.json")


# ----------------------------------------------------------------------------- directories
def tiny_benchmark() -> Benchmark:
    names = ["max(identity(x),zero(x))", "tanh(x)", "exp(x)"]
    table = make_table([
        {"fn_name": names[0], "equivalent_names": [names[0], "max(zero(x),identity(x))"],
         "train_acc": 0.9, "val_acc": 0.8, "test_acc": 0.7, "train_loss": 0.1,
         "val_loss": 0.5, "test_loss": 0.6, "runtime_s": 10.0, "seeds": [0, 1, 2]},
        {"fn_name": names[1], "equivalent_names": [names[1]], "train_acc": 0.5,
         "val_acc": 0.4, "test_acc": 0.3, "train_loss": NAN, "val_loss": 1.0,
         "test_loss": 1.0, "runtime_s": 11.0, "seeds": [0]},
        {"fn_name": names[2], "equivalent_names": [names[2]], "train_acc": NAN,
         "val_acc": NAN, "test_acc": NAN, "train_loss": NAN, "val_loss": NAN,
         "test_loss": NAN, "runtime_s": NAN, "seeds": []},
    ])
    layout = FimLayout.for_layers(["conv", "dense"], [100, 1500])  # 10 + 15 bins
    rng = np.random.default_rng(0)
    cdf = rng.random((3, layout.dim)).astype(np.float32)
    cdf[2] = np.nan
    outputs = np.stack([ActivationFunction(n)(torch.tensor(normal_inputs())).numpy()
                        for n in names])
    return Benchmark("tiny", table, outputs, cdf, np.array([True, True, False]), layout,
                     {"arch": "cnn", "epochs": 1, "note": "test"})


def test_make_table_status_and_dtypes():
    t = tiny_benchmark().table
    assert t["status"].tolist() == ["ok", "diverged", "failed"]
    assert all(t[c].dtype == np.float64 for c in bench.METRIC_COLUMNS)


def test_benchmark_directory_round_trip(tmp_path):
    b = tiny_benchmark()
    target = save_benchmark(b, tmp_path / "bench" / "tiny")
    assert sorted(p.name for p in target.iterdir()) == sorted(
        ["table.parquet", "outputs.npy", "fim_cdf.npy", "fim_valid.npy", "manifest.json"])
    meta = json.loads((target / "manifest.json").read_text())
    assert meta["rows"] == 3 and meta["fim_dim"] == 25 and meta["format"] == 2
    again = load_benchmark(target)
    pd.testing.assert_frame_equal(again.table, b.table)
    assert again.table.loc[0, "seeds"] == [0, 1, 2]
    np.testing.assert_array_equal(again.outputs, b.outputs)
    np.testing.assert_array_equal(again.fim_cdf, b.fim_cdf)
    np.testing.assert_array_equal(again.fim_valid, b.fim_valid)
    assert again.fim_layout == b.fim_layout and again.manifest == b.manifest
    assert again.name == "tiny"
    # overwrite in place: atomic replacement leaves nothing beside the target
    b.manifest["note"] = "second"
    save_benchmark(b, target)
    assert load_benchmark(target).manifest["note"] == "second"
    assert [p.name for p in target.parent.iterdir()] == ["tiny"]
    # without FIM features
    bare = Benchmark("bare", b.table, b.outputs, None, np.zeros(3, bool))
    again = load_benchmark(save_benchmark(bare, tmp_path / "bare"))
    assert again.fim_cdf is None and again.fim_layout is None and again.manifest == {}


def test_benchmark_directory_corruption(tmp_path):
    b = tiny_benchmark()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    with pytest.raises(BenchmarkFileError, match="not a benchmark directory"):
        save_benchmark(b, tmp_path / "other")
    with pytest.raises(FileNotFoundError, match="manifest.json is missing"):
        load_benchmark(tmp_path / "other")

    def fresh(label):
        return save_benchmark(b, tmp_path / label)

    d = fresh("flip")
    data = bytearray((d / "outputs.npy").read_bytes())
    data[-1] ^= 0xFF
    (d / "outputs.npy").write_bytes(bytes(data))
    with pytest.raises(BenchmarkFileError, match="outputs.npy: corrupt \\(checksum"):
        load_benchmark(d)
    d = fresh("cut")
    (d / "table.parquet").write_bytes((d / "table.parquet").read_bytes()[:50])
    with pytest.raises(BenchmarkFileError, match="table.parquet: corrupt \\(size 50"):
        load_benchmark(d)
    d = fresh("gone")
    (d / "fim_cdf.npy").unlink()
    with pytest.raises(BenchmarkFileError, match="fim_cdf.npy: missing"):
        load_benchmark(d)
    d = fresh("manifest")
    (d / "manifest.json").write_text('{"format": 1, "rows"')
    with pytest.raises(BenchmarkFileError, match="manifest.json: corrupt manifest"):
        load_benchmark(d)
    d = fresh("shape")  # consistent checksums, wrong content
    np.save(d / "outputs.npy", np.zeros((3, 999), np.float32))
    meta = json.loads((d / "manifest.json").read_text())
    meta["files"]["outputs.npy"] = {"bytes": (d / "outputs.npy").stat().st_size,
                                    "sha256": sha256_file(d / "outputs.npy")}
    (d / "manifest.json").write_text(json.dumps(meta))
    with pytest.raises(BenchmarkFileError, match="outputs.npy: has shape \\(3, 999\\)"):
        load_benchmark(d)


def test_benchmark_checks_its_fields():
    b = tiny_benchmark()
    with pytest.raises(ValueError, match="outputs have shape"):
        Benchmark("x", b.table, b.outputs[:, :10], b.fim_cdf, b.fim_valid)
    with pytest.raises(ValueError, match="marked valid but is not finite"):
        Benchmark("x", b.table, b.outputs, b.fim_cdf, np.ones(3, bool))
    with pytest.raises(ValueError, match="fim_layout has 25 entries, fim_cdf has 24"):
        Benchmark("x", b.table, b.outputs, b.fim_cdf[:, :24], b.fim_valid, b.fim_layout)
    with pytest.raises(ValueError, match="occurs twice"):
        table = b.table.copy()
        table.loc[1, "fn_name"] = table.loc[0, "fn_name"]
        Benchmark("x", table, b.outputs, b.fim_cdf, b.fim_valid)
    with pytest.raises(ValueError, match="fim_valid must be bool"):
        Benchmark("x", b.table, b.outputs, b.fim_cdf, np.array([1, 1, 0]))


def test_load_shipped(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "shipped_dir", lambda name: tmp_path / name)
    with pytest.raises(FileNotFoundError, match="not built yet.*aquasurf bench build --arch cnn"):
        bench.load("cnn")
    with pytest.raises(ValueError, match="unknown benchmark 'mlp'"):
        bench.load("mlp")
    save_benchmark(tiny_benchmark(), tmp_path / "resnet")
    assert bench.load("resnet").name == "tiny"


def _tamper_probes(directory, change) -> None:
    """Rewrite the stored fingerprint of a benchmark directory with ``change(digests, probes)
    -> (digests, probes)`` and re-list the table's checksum, as a benchmark built on another
    machine (or with a changed function) would look."""
    path = directory / "table.parquet"
    t = pq.read_table(path)
    digests = t.column("outputs_digest").to_pylist()
    probes = np.stack(t.column("outputs_probe").to_numpy(zero_copy_only=False))
    digests, probes = change(digests, probes.astype(np.float32))
    t = t.set_column(t.schema.get_field_index("outputs_digest"), "outputs_digest",
                     pa.array(digests, pa.binary(16)))
    t = t.set_column(t.schema.get_field_index("outputs_probe"), "outputs_probe",
                     pa.array(list(probes), pa.list_(pa.float32(), probes.shape[1])))
    pq.write_table(t, path, compression="zstd")
    meta = json.loads((directory / "manifest.json").read_text())
    meta["files"]["table.parquet"] = file_entry(path)
    (directory / "manifest.json").write_text(json.dumps(meta))


def test_outputs_recomputed_and_checked_against_their_fingerprint(tmp_path):
    b = tiny_benchmark()
    d = save_benchmark(b, tmp_path / "b", store_outputs=False)
    assert not (d / "outputs.npy").exists()
    again = load_benchmark(d)
    np.testing.assert_array_equal(again.outputs, b.outputs)
    assert again.manifest["outputs_check"]["bit_identical"] == 3

    # last-bit differences (another CPU or torch release): every probe one float32 ulp away
    # and every digest different -- loads, and says so
    def ulp(digests, probes):
        return [bytes(16)] * len(digests), np.nextafter(probes, np.float32(np.inf))

    _tamper_probes(d, ulp)
    check = load_benchmark(d).manifest["outputs_check"]
    assert (check["bit_identical"], check["within_tolerance"]) == (0, 3)

    # a function whose definition changed: one probe off by 1% -- an error naming the row
    def changed(digests, probes):
        probes = probes.copy()
        probes[1, 20] *= 1.01
        return digests, probes

    _tamper_probes(d, changed)
    with pytest.raises(BenchmarkFileError, match=r"row 1 \('tanh\(x\)'\): at x = "):
        load_benchmark(d)
    assert load_benchmark(d, verify=False).outputs.shape == (3, 1000)  # still readable

    # rows that belong to other functions: outputs stored in the wrong order
    wrong = Benchmark("w", b.table, b.outputs[[1, 0, 2]].copy(), b.fim_cdf, b.fim_valid,
                      b.fim_layout)
    w = save_benchmark(wrong, tmp_path / "w", store_outputs=False)
    with pytest.raises(BenchmarkFileError, match=r"row 0 .*max\(identity\(x\),zero\(x\)\).*"
                                                 r"row 1 .*tanh"):
        load_benchmark(w)


def test_locate_by_name_and_by_outputs():
    b = tiny_benchmark()
    rows, how = b.locate(["relu(x)", "max(zero(x),identity(x))", "tanh(x)", "swish(x)",
                          "exp(x)"])
    assert rows.tolist() == [0, 0, 1, -1, 2]
    assert how == ["outputs", "name", "name", "absent", "name"]
    with pytest.raises(InvalidFunctionName):
        b.locate(["notafunction(x)"])


def test_subset_keeps_rows_aligned():
    b = tiny_benchmark()
    s = b.subset([2, 0])
    assert s.table["fn_name"].tolist() == [b.table["fn_name"][2], b.table["fn_name"][0]]
    np.testing.assert_array_equal(s.outputs, b.outputs[[2, 0]])
    np.testing.assert_array_equal(s.fim_valid, b.fim_valid[[2, 0]])
    assert s.manifest["subset_of"] == "tiny" and s.manifest["rows"] == 2
    with pytest.raises(ValueError, match="row numbers below 3"):
        b.subset([5])
