"""Activation-function benchmarks: one row per unique function, its training results, and the
surrogate's two feature matrices (paper Section 2, Appendix B "Benchmark Datasets").

A :class:`Benchmark` holds

* ``table``: a DataFrame with one row per unique function (columns :data:`TABLE_COLUMNS`):
  ``fn_name`` (the representative, canonical name), ``equivalent_names`` (every name of the
  class, representative included), ``train_acc``/``val_acc``/``test_acc`` and the three losses
  (float64), ``runtime_s``, ``seeds`` (list of training seeds; empty when unknown, as for the
  published files) and ``status`` (:func:`run_status`);
* ``outputs``: float32 ``[N, 1000]``, each representative evaluated on the 1,000 normal inputs
  of :func:`aquasurf_core.space.inputs.normal_inputs`
  (:func:`aquasurf_core.features.outputs.output_features`);
* ``fim_cdf``: float32 ``[N, D]`` FIM log-eigenvalue CDF features, or ``None``;
  ``fim_valid``: bool ``[N]``; valid rows are entirely finite; ``fim_layout``: the per-layer
  :class:`~aquasurf_core.features.fim.FimLayout` when known (our own benchmarks), else ``None``;
* ``manifest``: a JSON-able dict describing where the data came from.

Benchmark directories (:func:`load`, :func:`save_benchmark`, :func:`load_benchmark`)
-----------------------------------------------------------------------------------
A benchmark directory (format :data:`BENCHMARK_FORMAT`)::

    table.parquet    TABLE_COLUMNS (equivalent_names list<string>, seeds list<int64>, metrics
                     float64, status string), plus the outputs' fingerprint per row:
                     outputs_digest binary(16), outputs_probe list<float32> (N_PROBES values);
                     one row per unique function
    outputs.npy      float32 [N, 1000]; absent when saved with store_outputs=False (the shipped
                     benchmarks): then recomputed from fn_name on load and checked against the
                     fingerprint (below)
    fim_cdf.npy      float32 [N, D]  (absent when fim_cdf is None)
    fim_valid.npy    bool [N]
    manifest.json    {"format", "kind": "aquasurf-benchmark", "name", "rows", "outputs_width",
                      "outputs": {"stored", "fingerprint": {rule, tolerances, versions and CPU
                      that computed it}}, "fim_dim" (D or null), "fim_layout"
                      (FimLayout.to_dict() or null), "files": {file: {"bytes", "sha256"}},
                      "manifest": the benchmark's own manifest (recipe, seeds, versions it was
                      built with, build time, machine)}

Writes are atomic (:func:`aquasurf_core.storage.atomic_directory`). :func:`load_benchmark`
checks the manifest, every file's size, SHA-256 (``verify=True``), row counts, columns, shapes
and dtypes, and raises :class:`BenchmarkFileError` naming the file.

Outputs are recomputed, not shipped, and checked with a tolerance
-----------------------------------------------------------------
The 11.6 MB output matrix is the same for every benchmark of a space and takes about a second
to compute, so the shipped benchmarks do not store it. On load (``verify=True``) it is
recomputed from ``fn_name`` and each row is compared with the fingerprint recorded when the
benchmark was saved (:mod:`aquasurf_core.features.outputs`): bit-identical rows pass, rows that
differ in their last bits -- another CPU or torch release -- pass when every probe value agrees
within ``RTOL = 1e-4`` relative (plus ``1e-6`` of the row's scale), and any other row is a real
difference (a function whose definition changed, a row that belongs to another function):
:class:`BenchmarkFileError` names the rows. The manifest of a loaded benchmark records what the
check found (``outputs_check``: rows bit-identical, rows within tolerance, torch version).

:func:`load` reads the shipped tables ``aquasurf_core/data/benchmarks/<name>/`` (``name`` in
:data:`SHIPPED`); they are built by ``aquasurf bench build --arch <name>``
(:mod:`aquasurf_core.bench.build`).
"""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from aquasurf_core.features.fim import FimLayout
from aquasurf_core.features.outputs import (
    ATOL,
    N_PROBES,
    RTOL,
    fingerprint,
    fingerprint_problems,
    output_features,
)
from aquasurf_core.models import BENCHMARK_ARCHS
from aquasurf_core.paths import shipped_data_dir
from aquasurf_core.space.evaluation import find_rows_by_outputs
from aquasurf_core.space.inputs import N_NORMAL
from aquasurf_core.space.names import InvalidFunctionName, parse
from aquasurf_core.storage import atomic_directory, file_entry, first_file_problem

__all__ = [
    "BENCHMARK_FORMAT",
    "SHIPPED",
    "TABLE_COLUMNS",
    "Benchmark",
    "BenchmarkFileError",
    "load",
    "load_benchmark",
    "make_table",
    "run_status",
    "save_benchmark",
    "shipped_dir",
]

ACCURACY_COLUMNS = ("train_acc", "val_acc", "test_acc")
LOSS_COLUMNS = ("train_loss", "val_loss", "test_loss")
METRIC_COLUMNS = ("train_acc", "val_acc", "test_acc", "train_loss", "val_loss", "test_loss",
                  "runtime_s")
TABLE_COLUMNS = ("fn_name", "equivalent_names", *METRIC_COLUMNS, "seeds", "status")
FINGERPRINT_COLUMNS = ("outputs_digest", "outputs_probe")
STATUSES = ("ok", "diverged", "failed")

BENCHMARK_FORMAT = 2  # 2: per-row output fingerprints instead of one whole-matrix digest
TABLE_FILE = "table.parquet"
OUTPUTS_FILE = "outputs.npy"
FIM_CDF_FILE = "fim_cdf.npy"
FIM_VALID_FILE = "fim_valid.npy"
MANIFEST_FILE = "manifest.json"
#: Names of the shipped benchmarks (``aquasurf_core/data/benchmarks/<name>/``): one per
#: benchmark architecture, :data:`aquasurf_core.models.BENCHMARK_ARCHS` itself (read from the
#: architecture registry at each use).
SHIPPED = BENCHMARK_ARCHS

class BenchmarkFileError(ValueError):
    """A benchmark file or directory that is corrupt, partial or ill-typed; the message names
    the file and, where it applies, the entry and key."""


# ----------------------------------------------------------------------------- the container
def run_status(accuracies, losses) -> str:
    """``"failed"`` if any accuracy is NaN, else ``"diverged"`` if any loss is not finite,
    else ``"ok"``."""
    if any(math.isnan(a) for a in accuracies):
        return "failed"
    if not all(math.isfinite(v) for v in losses):
        return "diverged"
    return "ok"


@dataclass
class Benchmark:
    """One row per unique function plus feature matrices (module docstring). Checked on
    construction: shapes, dtypes (float arrays are cast to float32), unique ``fn_name``,
    finite valid FIM rows, and a layout matching ``D``."""

    name: str
    table: pd.DataFrame
    outputs: np.ndarray
    fim_cdf: np.ndarray | None
    fim_valid: np.ndarray
    fim_layout: FimLayout | None = None
    manifest: dict | None = None

    def __post_init__(self) -> None:
        missing = [c for c in TABLE_COLUMNS if c not in self.table.columns]
        if missing:
            raise ValueError(f"benchmark {self.name!r}: table lacks columns {missing}")
        n = len(self.table)
        if self.table["fn_name"].duplicated().any():
            dup = self.table["fn_name"][self.table["fn_name"].duplicated()].iloc[0]
            raise ValueError(f"benchmark {self.name!r}: fn_name {dup!r} occurs twice")
        self.outputs = np.asarray(self.outputs, dtype=np.float32)
        if self.outputs.shape != (n, N_NORMAL):
            raise ValueError(f"benchmark {self.name!r}: outputs have shape {self.outputs.shape}, "
                             f"expected ({n}, {N_NORMAL})")
        valid = np.asarray(self.fim_valid)
        if valid.dtype != np.bool_ or valid.shape != (n,):
            raise ValueError(f"benchmark {self.name!r}: fim_valid must be bool ({n},), got "
                             f"{valid.dtype} {valid.shape}")
        self.fim_valid = valid
        if self.fim_cdf is None:
            if valid.any():
                raise ValueError(f"benchmark {self.name!r}: fim_valid is set but fim_cdf is None")
            if self.fim_layout is not None:
                raise ValueError(f"benchmark {self.name!r}: fim_layout without fim_cdf")
        else:
            self.fim_cdf = np.asarray(self.fim_cdf, dtype=np.float32)
            if self.fim_cdf.ndim != 2 or self.fim_cdf.shape[0] != n:
                raise ValueError(f"benchmark {self.name!r}: fim_cdf has shape "
                                 f"{self.fim_cdf.shape}, expected ({n}, D)")
            bad = np.flatnonzero(valid & ~np.isfinite(self.fim_cdf).all(axis=1))
            if len(bad):
                raise ValueError(f"benchmark {self.name!r}: fim_cdf row {bad[0]} "
                                 f"({self.table['fn_name'].iloc[bad[0]]!r}) is marked valid "
                                 "but is not finite")
            if self.fim_layout is not None and self.fim_layout.dim != self.fim_cdf.shape[1]:
                raise ValueError(f"benchmark {self.name!r}: fim_layout has {self.fim_layout.dim} "
                                 f"entries, fim_cdf has {self.fim_cdf.shape[1]}")
        bad_status = set(self.table["status"]) - set(STATUSES)
        if bad_status:
            raise ValueError(f"benchmark {self.name!r}: unknown status {sorted(bad_status)}; "
                             f"expected one of {STATUSES}")
        if self.manifest is None:
            self.manifest = {}

    def __len__(self) -> int:
        return len(self.table)

    @property
    def fim_dim(self) -> int | None:
        """Length ``D`` of a Fisher feature row; ``None`` when the benchmark has no FIM."""
        return None if self.fim_cdf is None else int(self.fim_cdf.shape[1])

    def rows_of(self, names) -> np.ndarray:
        """Row of each function name (matched canonically against every equivalent name),
        ``-1`` where the benchmark has no such name. Raises ``InvalidFunctionName``."""
        index: dict[str, int] = {}
        for row, members in enumerate(self.table["equivalent_names"]):
            for member in members:
                index[member] = row
        for row, name in enumerate(self.table["fn_name"]):
            index[name] = row
        return np.array([index.get(str(parse(n)), -1) for n in names], dtype=np.int64)

    def subset(self, rows) -> Benchmark:
        """A benchmark of the given rows only (in the given order), for quick looks and tests;
        its manifest records ``{"subset_of": name, "rows": n}``."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.ndim != 1 or (len(rows) and (rows.min() < -len(self) or rows.max() >= len(self))):
            raise ValueError(f"rows must be a 1-D array of row numbers below {len(self)}")
        return Benchmark(self.name, self.table.iloc[rows].reset_index(drop=True),
                         self.outputs[rows], None if self.fim_cdf is None else self.fim_cdf[rows],
                         self.fim_valid[rows], self.fim_layout,
                         {**self.manifest, "subset_of": self.name, "rows": int(len(rows))})

    def locate(self, names) -> tuple[np.ndarray, list[str]]:
        """Row of each function (``-1`` where the benchmark has none) and how it was found.

        A name is looked up first among every row's equivalent names (:meth:`rows_of`,
        canonical spelling: ``"name"``). Any other valid name is evaluated on the 1,000 normal
        inputs and matched against :attr:`outputs` under the search space's equivalence rule
        (:func:`aquasurf_core.space.evaluation.find_rows_by_outputs`: ``"outputs"``), so
        ``relu(x)`` finds the row ``max(identity(x),zero(x))``; ``"absent"`` otherwise. Raises
        ``InvalidFunctionName`` for a name that does not parse."""
        names = [str(n) for n in names]
        rows = self.rows_of(names)
        how = ["name" if r >= 0 else "absent" for r in rows]
        missing = np.flatnonzero(rows < 0)
        if len(missing) and len(self):
            found = find_rows_by_outputs([names[i] for i in missing], self.outputs)
            for k, row in zip(missing, found, strict=True):
                if row >= 0:
                    rows[k], how[k] = int(row), "outputs"
        return rows, how


def make_table(rows: list[dict]) -> pd.DataFrame:
    """A table with :data:`TABLE_COLUMNS` (metrics float64) from dicts with those keys;
    ``seeds`` defaults to ``[]`` and ``status`` to :func:`run_status`."""
    records = []
    for row in rows:
        record = {c: row[c] for c in TABLE_COLUMNS if c in row}
        for c in METRIC_COLUMNS:
            record[c] = float(record[c])
        record["equivalent_names"] = [str(n) for n in record["equivalent_names"]]
        record["seeds"] = [int(s) for s in row.get("seeds", [])]
        record.setdefault("status", run_status([record[c] for c in ACCURACY_COLUMNS],
                                               [record[c] for c in LOSS_COLUMNS]))
        records.append(record)
    table = pd.DataFrame.from_records(records, columns=list(TABLE_COLUMNS))
    return table.astype({c: "float64" for c in METRIC_COLUMNS})


# ----------------------------------------------------------------------------- directories
def _table_schema() -> pa.Schema:
    fields = [pa.field("fn_name", pa.string()),
              pa.field("equivalent_names", pa.list_(pa.string()))]
    fields += [pa.field(c, pa.float64()) for c in METRIC_COLUMNS]
    fields += [pa.field("seeds", pa.list_(pa.int64())), pa.field("status", pa.string()),
               pa.field("outputs_digest", pa.binary(16)),
               pa.field("outputs_probe", pa.list_(pa.float32(), N_PROBES))]
    return pa.schema(fields)


def _fingerprint_spec() -> dict:
    import torch

    return {"digest": "sha256[:16] of the canonical float32 bits over the 1,000 normal inputs",
            "probes": N_PROBES, "rtol": RTOL, "atol_of_row_scale": ATOL,
            "computed_with": {"torch": torch.__version__, "machine": platform.machine(),
                              "cpu_capability": torch.backends.cpu.get_cpu_capability()}}


def save_benchmark(benchmark: Benchmark, directory: str | os.PathLike, *,
                   store_outputs: bool = True) -> Path:
    """Write ``benchmark`` as a benchmark directory (module docstring), atomically. A
    non-empty directory that is not a benchmark is never overwritten.

    The table records each row's outputs fingerprint (of ``benchmark.outputs``). With
    ``store_outputs=False`` (the shipped tables) ``outputs.npy`` is not written and
    :func:`load_benchmark` recomputes the outputs from the names and checks them against the
    fingerprint."""
    try:
        inner = json.dumps(benchmark.manifest, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"benchmark {benchmark.name!r}: manifest is not strict JSON: {err}") \
            from err
    digests, probes = fingerprint(benchmark.outputs)
    with atomic_directory(directory, marker=MANIFEST_FILE, kind="benchmark directory",
                          error=BenchmarkFileError) as tmp:
        table = benchmark.table[list(TABLE_COLUMNS)].copy()
        table["equivalent_names"] = [list(map(str, v)) for v in table["equivalent_names"]]
        table["seeds"] = [[int(s) for s in v] for v in table["seeds"]]
        table["outputs_digest"] = digests
        table["outputs_probe"] = list(probes)
        pq.write_table(pa.Table.from_pandas(table, schema=_table_schema(), preserve_index=False),
                       tmp / TABLE_FILE, compression="zstd")
        if store_outputs:
            np.save(tmp / OUTPUTS_FILE, benchmark.outputs)
        np.save(tmp / FIM_VALID_FILE, benchmark.fim_valid)
        if benchmark.fim_cdf is not None:
            np.save(tmp / FIM_CDF_FILE, benchmark.fim_cdf)
        manifest = {
            "format": BENCHMARK_FORMAT,
            "kind": "aquasurf-benchmark",
            "name": benchmark.name,
            "rows": len(benchmark),
            "outputs_width": int(benchmark.outputs.shape[1]),
            "outputs": {"stored": bool(store_outputs), "fingerprint": _fingerprint_spec()},
            "fim_dim": benchmark.fim_dim,
            "fim_layout": None if benchmark.fim_layout is None else benchmark.fim_layout.to_dict(),
            "files": {f.name: file_entry(f) for f in sorted(tmp.iterdir())},
            "manifest": json.loads(inner),
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return Path(directory)


def _load_array(directory: Path, name: str, shape: tuple, dtype) -> np.ndarray:
    try:
        array = np.load(directory / name, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise BenchmarkFileError(f"{directory / name}: corrupt ({err})") from err
    if array.shape != shape or array.dtype != np.dtype(dtype):
        raise BenchmarkFileError(f"{directory / name}: has shape {array.shape} {array.dtype}, "
                                 f"expected {shape} {np.dtype(dtype)}")
    return array


def _read_manifest(directory: Path) -> dict:
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise FileNotFoundError(f"no benchmark at {directory}: {MANIFEST_FILE} is missing")
    required = ("format", "rows", "outputs_width", "fim_dim", "files", "fim_layout")
    try:
        meta = json.loads(manifest_path.read_text())
        missing = [key for key in required if key not in meta]
        if missing:
            raise KeyError(", ".join(missing))
        meta["rows"], meta["outputs_width"] = int(meta["rows"]), int(meta["outputs_width"])
        fmt = meta["format"]
    except (ValueError, KeyError, TypeError) as err:
        raise BenchmarkFileError(f"{manifest_path}: corrupt manifest ({type(err).__name__}: "
                                 f"{err})") from err
    if meta.get("kind") != "aquasurf-benchmark" or fmt != BENCHMARK_FORMAT:
        raise BenchmarkFileError(f"{manifest_path}: not a benchmark of format "
                                 f"{BENCHMARK_FORMAT} (kind {meta.get('kind')!r}, format {fmt!r})")
    return meta


def _read_table(directory: Path, rows: int) -> pd.DataFrame:
    try:
        table = pq.read_table(directory / TABLE_FILE).to_pandas()
    except Exception as err:  # pyarrow raises several types for damaged files
        raise BenchmarkFileError(f"{directory / TABLE_FILE}: corrupt ({err})") from err
    expected = [*TABLE_COLUMNS, *FINGERPRINT_COLUMNS]
    if list(table.columns) != expected or len(table) != rows:
        raise BenchmarkFileError(f"{directory / TABLE_FILE}: has {len(table)} rows and columns "
                                 f"{list(table.columns)}, expected {rows} and {expected}")
    table["equivalent_names"] = [list(v) for v in table["equivalent_names"]]
    table["seeds"] = [[int(s) for s in v] for v in table["seeds"]]
    return table


def _recomputed_outputs(directory: Path, table: pd.DataFrame, verify: bool) -> tuple[np.ndarray,
                                                                                      dict]:
    """Outputs of ``table``'s functions, recomputed, and (``verify``) checked against the
    table's fingerprints (module docstring)."""
    names = list(table["fn_name"])
    try:
        outputs = output_features(names)
    except InvalidFunctionName as err:
        raise BenchmarkFileError(f"{directory / TABLE_FILE}: bad function name ({err})") from err
    if not verify:
        return outputs, {"checked": False}
    probes = np.stack(table["outputs_probe"].to_numpy()) if len(table) else np.zeros(
        (0, N_PROBES), np.float32)
    exact, close, problems = fingerprint_problems(names, outputs, list(table["outputs_digest"]),
                                                  probes)
    if problems:
        raise BenchmarkFileError(
            f"{directory}: the outputs recomputed from fn_name differ from those the benchmark "
            f"was built with beyond floating-point round-off (rtol {RTOL:g}), so its rows do not "
            "describe these functions: " + "; ".join(problems))
    import torch

    return outputs, {"checked": True, "bit_identical": exact, "within_tolerance": close,
                     "torch": torch.__version__}


def load_benchmark(directory: str | os.PathLike, *, verify: bool = True) -> Benchmark:
    """Load a benchmark directory written by :func:`save_benchmark`. ``verify`` checks every
    file's SHA-256 against the manifest (sizes are always checked) and recomputed outputs
    against their fingerprints (module docstring)."""
    directory = Path(directory)
    meta = _read_manifest(directory)
    rows, width, dim, files = meta["rows"], meta["outputs_width"], meta["fim_dim"], meta["files"]
    stored = bool(meta.get("outputs", {}).get("stored", True))
    needed = ([TABLE_FILE] + ([OUTPUTS_FILE] if stored else []) + [FIM_VALID_FILE]
              + ([FIM_CDF_FILE] if dim else []))
    found = first_file_problem(directory, needed, files, verify)
    if found and found[1] == "not listed":
        raise BenchmarkFileError(f"{directory / MANIFEST_FILE}: does not list {found[0]}")
    if found:
        raise BenchmarkFileError(f"{directory / found[0]}: {found[1]}")
    try:
        layout = None if meta["fim_layout"] is None else FimLayout.from_dict(meta["fim_layout"])
    except (KeyError, TypeError, ValueError) as err:
        raise BenchmarkFileError(f"{directory / MANIFEST_FILE}: corrupt fim_layout ({err})") \
            from err
    table = _read_table(directory, rows)
    if stored:
        outputs, check = _load_array(directory, OUTPUTS_FILE, (rows, width), np.float32), {}
    else:
        outputs, check = _recomputed_outputs(directory, table, verify)
    fim_valid = _load_array(directory, FIM_VALID_FILE, (rows,), np.bool_)
    fim_cdf = _load_array(directory, FIM_CDF_FILE, (rows, dim), np.float32) if dim else None
    manifest = dict(meta.get("manifest") or {})
    if check:
        manifest["outputs_check"] = check
    try:
        return Benchmark(str(meta["name"]), table[list(TABLE_COLUMNS)], outputs, fim_cdf,
                         fim_valid, layout, manifest)
    except ValueError as err:
        raise BenchmarkFileError(f"{directory}: inconsistent benchmark ({err})") from err


def shipped_dir(name: str) -> Path:
    """``aquasurf_core/data/benchmarks/<name>`` (package data)."""
    return shipped_data_dir("benchmarks", name)


def load(name: str, *, verify: bool = True) -> Benchmark:
    """A shipped Act-Bench-Mini benchmark, ``"cnn"``, ``"resnet"`` or ``"vit"``: every unique
    3-node function trained on MNIST-1D with the small architecture of that name
    (:mod:`aquasurf_core.models`), read from package data
    ``aquasurf_core/data/benchmarks/<name>/`` (directory format of the module docstring; how
    it was built: :mod:`aquasurf_core.bench.build` and the table's ``manifest``). Raises
    ``FileNotFoundError`` explaining how to build a missing one, :class:`BenchmarkFileError`
    for a damaged one. The published Act-Bench files load with
    :func:`aquasurf_core.bench.actbench.load_actbench`."""
    if name not in SHIPPED:
        raise ValueError(f"unknown benchmark {name!r}; shipped benchmarks: {', '.join(SHIPPED)}")
    directory = shipped_dir(name)
    if not (directory / MANIFEST_FILE).is_file():
        raise FileNotFoundError(
            f"the shipped benchmark {name!r} is not built yet: expected {directory}/ with "
            f"{TABLE_FILE}, {FIM_VALID_FILE}, [{FIM_CDF_FILE}] and {MANIFEST_FILE}. Build it with "
            f"`aquasurf bench build --arch {name}`, or load the published Act-Bench JSON with "
            "aquasurf_core.bench.load_actbench(path).")
    return load_benchmark(directory, verify=verify)
