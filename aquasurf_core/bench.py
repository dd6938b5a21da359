"""Activation-function benchmarks: one row per unique function, its training results, and the
surrogate's two feature matrices (paper Section 2, Appendix B "Benchmark Datasets").

A :class:`Benchmark` holds

* ``table``: a DataFrame with one row per unique function (columns :data:`TABLE_COLUMNS`):
  ``fn_name`` (the representative, canonical name), ``equivalent_names`` (every name of the
  class, representative included), ``train_acc``/``val_acc``/``test_acc`` and the three losses
  (float64), ``runtime_s``, ``seeds`` (list of training seeds; empty when unknown, as for the
  published files) and ``status`` (:func:`run_status`);
* ``outputs``: float32 ``[N, 1000]``, each representative evaluated on the 1,000 normal inputs
  of :func:`aquasurf_core.feature_inputs.normal_inputs` with
  :func:`aquasurf_core.space_evaluation.evaluate_functions` (the output features);
* ``fim_cdf``: float32 ``[N, D]`` FIM log-eigenvalue CDF features, or ``None``;
  ``fim_valid``: bool ``[N]``; valid rows are entirely finite; ``fim_layout``: the per-layer
  :class:`~aquasurf_core.fim_features.FimLayout` when known (our own benchmarks), else ``None``;
* ``manifest``: a JSON-able dict describing where the data came from.

Published Act-Bench JSON files (:func:`load_actbench`, :func:`save_actbench_json`)
----------------------------------------------------------------------------------
``act-bench-cnn.json``, ``act-bench-resnet.json`` and ``act-bench-vit.json`` are one JSON
object mapping a function name to a dict with the keys of :data:`ACTBENCH_KEYS` (extra keys,
such as ``"W&B Run Configs"``, are ignored and listed in the manifest). They were written by
Python's ``json``, which emits the non-standard tokens ``NaN``, ``Infinity`` and
``-Infinity``; the standard ``json`` module parses those (nothing is ever ``eval``-ed).

Value rules (anything else is a :class:`BenchmarkFileError` naming file, entry and key):

* metrics are JSON numbers, ``null``, the tokens above or the same spellings as strings
  (``"NaN"``, ``"Infinity"``, ``"-Infinity"``, ``"inf"``, ``"-inf"``, ``"nan"``); ``null``
  reads as NaN ("no result"); booleans and other strings are errors;
* accuracies are NaN (the run failed or was not recorded) or finite in ``[0, 1]`` (a value
  above 1 is reported as a likely percentage); losses are NaN, ``+inf`` (diverged) or finite
  ``>= 0``; runtimes are NaN or finite ``>= 0``;
* ``status`` is derived: ``"failed"`` when any accuracy is NaN, else ``"diverged"`` when any
  loss is not finite, else ``"ok"``;
* every name (keys and equivalent names) must parse with :func:`aquasurf_core.space.parse`;
  names are stored canonically. No canonical name may occur in two entries (duplicate
  function); duplicate JSON keys are detected, not silently merged;
* the CDF is a list of numbers (``null``/``NaN``/``Infinity`` elements allowed), ``null`` or
  ``[]``. The per-layer layout of the published vectors is not documented, so
  ``fim_layout=None``. ``D`` is the modal length of the non-empty CDFs (ties: the longer);
  shorter rows are padded with NaN, longer ones cut to ``D`` (the official code reports
  stray lengths, e.g. 3-entry ResNet-56 vectors, and drops them). ``fim_valid`` = present,
  non-empty, of length ``D`` and finite in float32. Without any non-empty CDF ``fim_cdf`` is
  ``None``.

As a diagnostic (never an error, since the published equivalences were computed with
TensorFlow kernels), the manifest's ``equivalence_check`` counts entries whose equivalent names
give outputs different from the representative's under our kernels, and entries whose
outputs coincide with another entry's (same equality rule as the search space).

:func:`save_actbench_json` writes a benchmark in the same format (keys in
:data:`ACTBENCH_KEYS` order, non-finite values as ``NaN``/``Infinity`` tokens, valid CDF rows
in full, invalid rows in full with their NaNs, no CDF as ``[]``), so our benchmarks can sit
beside the published ones. ``seeds``, ``status``, ``fim_layout`` and the manifest are not
part of that format and are not written.

Shipped benchmark directories (:func:`load`, :func:`save_benchmark`, :func:`load_benchmark`)
-------------------------------------------------------------------------------------------
A benchmark directory (format :data:`BENCHMARK_FORMAT`)::

    table.parquet    TABLE_COLUMNS; equivalent_names list<string>, seeds list<int64>,
                     metrics float64, status string; one row per unique function
    outputs.npy      float32 [N, 1000]  (absent when saved with store_outputs=False: then
                     recomputed from fn_name on load, checked against the manifest's
                     "outputs": {"stored": false, "sha256"}; a mismatch is a warning)
    fim_cdf.npy      float32 [N, D]  (absent when fim_cdf is None)
    fim_valid.npy    bool [N]
    manifest.json    {"format", "kind": "aquasurf-benchmark", "name", "rows",
                      "outputs_width", "fim_dim" (D or null), "fim_layout" (FimLayout.to_dict()
                      or null), "files": {file: {"bytes", "sha256"}}, "manifest": the
                      benchmark's own manifest}

Writes are atomic (a temporary directory beside the target is renamed into place; an old
benchmark is moved aside first and deleted after). :func:`load_benchmark` checks the manifest,
every file's size, SHA-256 (``verify=True``), row counts, columns, shapes and dtypes, and
raises :class:`BenchmarkFileError` naming the file. :func:`load` reads the shipped tables
``aquasurf_core/data/benchmarks/<name>/`` (``name`` in :data:`SHIPPED`); they are built by
``aquasurf bench build --arch <name>`` (:mod:`aquasurf_core.bench_build`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from aquasurf_core.feature_inputs import N_NORMAL, inputs_spec, normal_inputs
from aquasurf_core.fim_features import FimLayout
from aquasurf_core.space import InvalidFunctionName, parse
from aquasurf_core.space_evaluation import (
    DEFAULT_SIGNED_ZERO_DISTINCT,
    canonical_bits,
    evaluate_functions,
)
from aquasurf_core.storage import listed_file_problem, replace_directory, sha256_file

#: Official key -> table column, for the numeric fields of an Act-Bench entry.
METRIC_KEYS = {
    "Train Accuracy": "train_acc",
    "Validation Accuracy": "val_acc",
    "Train Loss": "train_loss",
    "Validation Loss": "val_loss",
    "Test Accuracy": "test_acc",
    "Test Loss": "test_loss",
    "Runtime (s)": "runtime_s",
}
EQUIVALENT_KEY = "Equivalent Activation Functions"
CDF_KEY = "Fisher log eigenvalue CDF"
#: Every key of an entry, in the order of the published files.
ACTBENCH_KEYS = (
    "Train Accuracy", "Validation Accuracy", "Train Loss", "Validation Loss", "Test Accuracy",
    "Test Loss", EQUIVALENT_KEY, CDF_KEY, "Runtime (s)",
)
ACCURACY_COLUMNS = ("train_acc", "val_acc", "test_acc")
LOSS_COLUMNS = ("train_loss", "val_loss", "test_loss")
METRIC_COLUMNS = ("train_acc", "val_acc", "test_acc", "train_loss", "val_loss", "test_loss",
                  "runtime_s")
TABLE_COLUMNS = ("fn_name", "equivalent_names", *METRIC_COLUMNS, "seeds", "status")
STATUSES = ("ok", "diverged", "failed")

BENCHMARK_FORMAT = 1
TABLE_FILE = "table.parquet"
OUTPUTS_FILE = "outputs.npy"
FIM_CDF_FILE = "fim_cdf.npy"
FIM_VALID_FILE = "fim_valid.npy"
MANIFEST_FILE = "manifest.json"
#: Names of the shipped benchmarks (``aquasurf_core/data/benchmarks/<name>/``).
SHIPPED = ("cnn", "resnet", "vit")

_NONFINITE_SPELLINGS = {"nan": math.nan, "infinity": math.inf, "+infinity": math.inf,
                        "-infinity": -math.inf, "inf": math.inf, "+inf": math.inf,
                        "-inf": -math.inf}


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


# ----------------------------------------------------------------------------- JSON parsing
class _Object(dict):
    """A JSON object that remembers the keys it saw more than once."""

    duplicates: list[str]


def _object_hook(pairs: list[tuple[str, object]]) -> _Object:
    obj = _Object()
    obj.duplicates = []
    for key, value in pairs:
        if key in obj:
            obj.duplicates.append(key)
        obj[key] = value
    return obj


class _Entry:
    """Reads and checks the fields of one entry, with errors naming file, entry and key."""

    def __init__(self, path: Path, name: str, data: object):
        self.path, self.name, self.data = path, name, data

    def error(self, message: str, key: str | None = None) -> BenchmarkFileError:
        where = f"entry {self.name!r}" + (f", key {key!r}" if key else "")
        return BenchmarkFileError(f"{self.path}: {where}: {message}")

    def get(self, key: str) -> object:
        if key not in self.data:
            raise self.error(f"missing key (an entry needs {list(ACTBENCH_KEYS)})", key)
        return self.data[key]

    def number(self, key: str, value: object, what: str = "value") -> float:
        """``value`` (of ``key``) as a float: numbers, ``null`` (NaN) and the non-finite
        spellings; anything else is an error."""
        if value is None:
            return math.nan
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.error(f"{what} must be a number, got {type(value).__name__} "
                             f"{_short(value)}", key)
        if isinstance(value, str):
            special = _NONFINITE_SPELLINGS.get(value.strip().lower())
            if special is None:
                raise self.error(f"{what} must be a number, got the string {_short(value)}", key)
            return special
        return float(value)

    def metric(self, key: str) -> float:
        value = self.number(key, self.get(key))
        column = METRIC_KEYS[key]
        if column in ACCURACY_COLUMNS:
            if not math.isnan(value) and not 0.0 <= value <= 1.0:
                hint = " (a percentage? accuracies are fractions)" if 1 < value <= 100 else ""
                raise self.error(f"accuracy {value!r} is outside [0, 1]{hint}", key)
        elif column in LOSS_COLUMNS:
            if value < 0 or value == -math.inf:
                raise self.error(f"loss {value!r} is negative", key)
        elif math.isinf(value) or value < 0:
            raise self.error(f"runtime {value!r} must be finite and >= 0 (or NaN)", key)
        return value

    def function_name(self, text: object, key: str | None = None) -> str:
        if not isinstance(text, str):
            raise self.error(f"function name must be a string, got {type(text).__name__} "
                             f"{_short(text)}", key)
        try:
            return str(parse(text))
        except InvalidFunctionName as err:
            raise self.error(f"{text!r} is not a valid function name: {err}", key) from err

    def equivalents(self, representative: str) -> list[str]:
        value = self.get(EQUIVALENT_KEY)
        if not isinstance(value, list):
            raise self.error(f"must be a list of names, got {type(value).__name__}",
                             EQUIVALENT_KEY)
        names = [representative]
        for text in value:
            name = self.function_name(text, EQUIVALENT_KEY)
            if name not in names:
                names.append(name)
        return names

    def cdf(self) -> np.ndarray:
        value = self.get(CDF_KEY)
        if value is None:
            return np.zeros(0, dtype=np.float64)
        if not isinstance(value, list):
            raise self.error(f"must be a list of numbers or null, got {type(value).__name__}",
                             CDF_KEY)
        if set(map(type, value)) <= {float, int}:  # the common case, fast (bool excluded)
            return np.array(value, dtype=np.float64)
        return np.array([self.number(CDF_KEY, v, f"element {i}")
                         for i, v in enumerate(value)], dtype=np.float64)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _read_json_object(path: Path) -> _Object:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise BenchmarkFileError(f"{path}: not UTF-8 text ({err})") from err
    try:
        data = json.loads(text, object_pairs_hook=_object_hook)
    except json.JSONDecodeError as err:
        tail = text.rstrip()[err.pos:]  # an error in the last few characters: cut short
        hint = "; the file looks truncated" if len(tail) <= 32 and "\n" not in tail else ""
        raise BenchmarkFileError(f"{path}: invalid JSON at line {err.lineno}, column "
                                 f"{err.colno}: {err.msg}{hint}") from err
    except RecursionError as err:
        raise BenchmarkFileError(f"{path}: JSON nested too deeply") from err
    if not isinstance(data, dict):
        raise BenchmarkFileError(f"{path}: expected a JSON object mapping function names to "
                                 f"entries, got a JSON {type(data).__name__}")
    if data.duplicates:
        raise BenchmarkFileError(f"{path}: function {data.duplicates[0]!r} appears twice as a "
                                 "key (duplicate function)")
    return data


def _modal_length(lengths: list[int]) -> int:
    counts = Counter(n for n in lengths if n > 0)
    if not counts:
        return 0
    return max(counts, key=lambda n: (counts[n], n))


def load_actbench(path: str | os.PathLike, name: str | None = None) -> Benchmark:
    """Load a published Act-Bench JSON file (module docstring for the rules); ``name``
    defaults to the file's stem (``act-bench-cnn``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Act-Bench file {path} not found (the published files are "
                                "act-bench-cnn.json, act-bench-resnet.json, act-bench-vit.json)")
    data = _read_json_object(path)
    if not data:
        raise BenchmarkFileError(f"{path}: the file holds no entries")
    rows, cdfs, owner = [], [], {}
    ignored: Counter[str] = Counter()
    for key, value in data.items():
        entry = _Entry(path, key, value)
        if not isinstance(value, dict):
            raise entry.error(f"expected an object of results, got a JSON {type(value).__name__}")
        if value.duplicates:
            raise entry.error("key appears twice in the entry", value.duplicates[0])
        representative = entry.function_name(key)
        members = entry.equivalents(representative)
        for member in members:
            if member in owner:
                raise entry.error(f"function {member!r} also appears in entry {owner[member]!r} "
                                  "(duplicate function)")
            owner[member] = key
        row = {"fn_name": representative, "equivalent_names": members}
        row.update({column: entry.metric(k) for k, column in METRIC_KEYS.items()})
        rows.append(row)
        cdfs.append(entry.cdf())
        ignored.update(k for k in value if k not in ACTBENCH_KEYS)

    lengths = [len(c) for c in cdfs]
    dim = _modal_length(lengths)
    n = len(rows)
    fim_valid = np.zeros(n, dtype=bool)
    fim_cdf = None
    if dim:
        fim_cdf = np.full((n, dim), np.nan, dtype=np.float32)
        for i, values in enumerate(cdfs):
            fim_cdf[i, : min(len(values), dim)] = values[:dim]
            fim_valid[i] = len(values) == dim and bool(np.isfinite(fim_cdf[i]).all())

    table = make_table(rows)
    outputs = evaluate_functions(list(table["fn_name"]), normal_inputs()).numpy()
    manifest = {
        "source": "act-bench-json",
        "file": path.name,
        "sha256": sha256_file(path),
        "entries": n,
        "names": int(sum(len(m) for m in table["equivalent_names"])),
        "status_counts": {s: int((table["status"] == s).sum()) for s in STATUSES},
        "fim": {"dim": dim or None, "valid": int(fim_valid.sum()),
                "lengths": {str(k): v for k, v in sorted(Counter(lengths).items())},
                "layout": "unknown (published per-layer layout not documented)"},
        "ignored_keys": dict(sorted(ignored.items())),
        "outputs": inputs_spec()["normal"],
        "equivalence_check": _equivalence_check(table, outputs),
    }
    return Benchmark(name or path.stem, table, outputs, fim_cdf, fim_valid, None, manifest)


def _equivalence_check(table: pd.DataFrame, outputs: np.ndarray, examples: int = 5) -> dict:
    """Diagnostics: entries whose members' outputs differ from the representative's, and
    entries whose outputs equal another entry's (rule of :mod:`space_evaluation`)."""
    rule = DEFAULT_SIGNED_ZERO_DISTINCT
    rep_bits = canonical_bits(outputs, rule)
    members = [(row, m) for row, names in enumerate(table["equivalent_names"])
               for m in names[1:]]
    differing: list[str] = []
    if members:
        member_bits = canonical_bits(
            evaluate_functions([m for _, m in members], normal_inputs()).numpy(), rule)
        rows = np.array([r for r, _ in members])
        bad = np.flatnonzero((member_bits != rep_bits[rows]).any(axis=1))
        differing = sorted({table["fn_name"].iloc[rows[i]] for i in bad})
    _, first, counts = np.unique(rep_bits, axis=0, return_index=True, return_counts=True)
    shared = int(counts[counts > 1].sum())
    return {
        "rule": {"signed_zero_distinct": bool(rule), "nan": "all NaNs equal"},
        "entries_with_differing_members": len(differing),
        "examples_differing": differing[:examples],
        "entries_sharing_outputs": shared,
        "distinct_outputs": int(len(first)),
    }


def save_actbench_json(benchmark: Benchmark, path: str | os.PathLike) -> Path:
    """Write ``benchmark`` as an Act-Bench JSON file (module docstring), atomically. Raises
    ``ValueError`` for a row marked invalid whose CDF is finite (the format could not tell it
    from a valid one)."""
    path = Path(path)
    cdf = benchmark.fim_cdf
    if cdf is not None:
        finite = np.isfinite(cdf).all(axis=1)
        bad = np.flatnonzero(finite & ~benchmark.fim_valid)
        if len(bad):
            raise ValueError(f"row {bad[0]} ({benchmark.table['fn_name'].iloc[bad[0]]!r}) has a "
                             "finite CDF but is marked invalid; the Act-Bench format derives "
                             "validity from the values, so it cannot be written")
    out: dict[str, dict] = {}
    for i, row in enumerate(benchmark.table.itertuples(index=False)):
        entry = {}
        for key in ACTBENCH_KEYS:
            if key == EQUIVALENT_KEY:
                entry[key] = [str(n) for n in row.equivalent_names]
            elif key == CDF_KEY:
                entry[key] = [] if cdf is None else [float(v) for v in cdf[i]]
            else:
                entry[key] = float(getattr(row, METRIC_KEYS[key]))
        out[str(row.fn_name)] = entry
    text = json.dumps(out, allow_nan=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# ----------------------------------------------------------------------------- directories
def _table_schema() -> pa.Schema:
    fields = [pa.field("fn_name", pa.string()),
              pa.field("equivalent_names", pa.list_(pa.string()))]
    fields += [pa.field(c, pa.float64()) for c in METRIC_COLUMNS]
    fields += [pa.field("seeds", pa.list_(pa.int64())), pa.field("status", pa.string())]
    return pa.schema(fields)


def recompute_outputs(names) -> np.ndarray:
    """Each function evaluated on the normal inputs (float32 ``[len(names), 1000]``), with
    :func:`aquasurf_core.space_evaluation.evaluate_functions` (bit-identical to the module)."""
    return evaluate_functions(list(names), normal_inputs()).numpy()


def save_benchmark(benchmark: Benchmark, directory: str | os.PathLike, *,
                   store_outputs: bool = True) -> Path:
    """Write ``benchmark`` as a benchmark directory (module docstring), atomically. A
    non-empty directory that is not a benchmark is never overwritten.

    With ``store_outputs=False`` (the shipped tables: the outputs are the same 11.6 MB for
    every benchmark of a space and cheap to recompute) ``outputs.npy`` is not written; the
    manifest records the SHA-256 of :func:`recompute_outputs` of the ``fn_name`` column, and
    :func:`load_benchmark` recomputes them. The benchmark's outputs must equal that
    recomputation under the space's equality rule, else ``ValueError`` names the row."""
    target = Path(directory)
    if target.exists() and not (target / MANIFEST_FILE).exists() and any(target.iterdir()):
        raise BenchmarkFileError(f"{target} exists and is not a benchmark directory; refusing "
                                 "to overwrite it")
    try:
        inner = json.dumps(benchmark.manifest, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"benchmark {benchmark.name!r}: manifest is not strict JSON: {err}") \
            from err
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(tmp, 0o755)
    try:
        table = benchmark.table[list(TABLE_COLUMNS)].copy()
        table["equivalent_names"] = [list(map(str, v)) for v in table["equivalent_names"]]
        table["seeds"] = [[int(s) for s in v] for v in table["seeds"]]
        pq.write_table(pa.Table.from_pandas(table, schema=_table_schema(), preserve_index=False),
                       tmp / TABLE_FILE, compression="zstd")
        outputs_entry: dict = {"stored": True}
        if store_outputs:
            np.save(tmp / OUTPUTS_FILE, benchmark.outputs)
        else:
            fresh = recompute_outputs(benchmark.table["fn_name"])
            same = (canonical_bits(fresh, DEFAULT_SIGNED_ZERO_DISTINCT)
                    == canonical_bits(benchmark.outputs, DEFAULT_SIGNED_ZERO_DISTINCT)).all(1)
            if not same.all():
                row = int(np.flatnonzero(~same)[0])
                raise ValueError(f"benchmark {benchmark.name!r}: outputs of row {row} "
                                 f"({benchmark.table['fn_name'].iloc[row]!r}) differ from the "
                                 "function's own outputs; store them instead")
            outputs_entry = {"stored": False, "recomputed_by": "recompute_outputs(fn_name)",
                             "sha256": hashlib.sha256(fresh.tobytes()).hexdigest()}
        np.save(tmp / FIM_VALID_FILE, benchmark.fim_valid)
        if benchmark.fim_cdf is not None:
            np.save(tmp / FIM_CDF_FILE, benchmark.fim_cdf)
        files = {f.name: {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
                 for f in sorted(tmp.iterdir())}
        manifest = {
            "format": BENCHMARK_FORMAT,
            "kind": "aquasurf-benchmark",
            "name": benchmark.name,
            "rows": len(benchmark),
            "outputs_width": int(benchmark.outputs.shape[1]),
            "outputs": outputs_entry,
            "fim_dim": benchmark.fim_dim,
            "fim_layout": None if benchmark.fim_layout is None else benchmark.fim_layout.to_dict(),
            "files": files,
            "manifest": json.loads(inner),
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        replace_directory(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _load_array(directory: Path, name: str, shape: tuple, dtype) -> np.ndarray:
    try:
        array = np.load(directory / name, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise BenchmarkFileError(f"{directory / name}: corrupt ({err})") from err
    if array.shape != shape or array.dtype != np.dtype(dtype):
        raise BenchmarkFileError(f"{directory / name}: has shape {array.shape} {array.dtype}, "
                                 f"expected {shape} {np.dtype(dtype)}")
    return array


def load_benchmark(directory: str | os.PathLike, *, verify: bool = True) -> Benchmark:
    """Load a benchmark directory written by :func:`save_benchmark`; ``verify`` checks every
    file's SHA-256 against the manifest (sizes are always checked)."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise FileNotFoundError(f"no benchmark at {directory}: {MANIFEST_FILE} is missing")
    try:
        meta = json.loads(manifest_path.read_text())
        fmt, rows, width = meta["format"], int(meta["rows"]), int(meta["outputs_width"])
        dim, files = meta["fim_dim"], meta["files"]
        layout = None if meta["fim_layout"] is None else FimLayout.from_dict(meta["fim_layout"])
    except (ValueError, KeyError, TypeError) as err:
        raise BenchmarkFileError(f"{manifest_path}: corrupt manifest ({type(err).__name__}: "
                                 f"{err})") from err
    if meta.get("kind") != "aquasurf-benchmark" or fmt != BENCHMARK_FORMAT:
        raise BenchmarkFileError(f"{manifest_path}: not a benchmark of format "
                                 f"{BENCHMARK_FORMAT} (kind {meta.get('kind')!r}, format {fmt!r})")
    stored = bool((meta.get("outputs") or {"stored": True}).get("stored", True))
    needed = ([TABLE_FILE] + ([OUTPUTS_FILE] if stored else []) + [FIM_VALID_FILE]
              + ([FIM_CDF_FILE] if dim else []))
    for name in needed:
        problem = listed_file_problem(directory, name, files, verify)
        if problem == "not listed":
            raise BenchmarkFileError(f"{manifest_path}: does not list {name}")
        if problem:
            raise BenchmarkFileError(f"{directory / name}: {problem}")
    try:
        table = pq.read_table(directory / TABLE_FILE).to_pandas()
    except Exception as err:  # pyarrow raises several types for damaged files
        raise BenchmarkFileError(f"{directory / TABLE_FILE}: corrupt ({err})") from err
    if list(table.columns) != list(TABLE_COLUMNS) or len(table) != rows:
        raise BenchmarkFileError(f"{directory / TABLE_FILE}: has {len(table)} rows and columns "
                                 f"{list(table.columns)}, expected {rows} and "
                                 f"{list(TABLE_COLUMNS)}")
    table["equivalent_names"] = [list(v) for v in table["equivalent_names"]]
    table["seeds"] = [[int(s) for s in v] for v in table["seeds"]]
    if stored:
        outputs = _load_array(directory, OUTPUTS_FILE, (rows, width), np.float32)
    else:
        try:
            outputs = recompute_outputs(table["fn_name"])
        except InvalidFunctionName as err:
            raise BenchmarkFileError(f"{directory / TABLE_FILE}: bad function name ({err})") \
                from err
        if verify and hashlib.sha256(outputs.tobytes()).hexdigest() != meta["outputs"].get(
                "sha256"):
            warnings.warn(f"{directory}: the outputs recomputed from fn_name differ from those "
                          "recorded when the benchmark was saved (other floating-point "
                          "kernels or torch version?); the recomputed ones are used",
                          stacklevel=2)
    fim_valid = _load_array(directory, FIM_VALID_FILE, (rows,), np.bool_)
    fim_cdf = _load_array(directory, FIM_CDF_FILE, (rows, dim), np.float32) if dim else None
    try:
        return Benchmark(str(meta["name"]), table, outputs, fim_cdf, fim_valid, layout,
                         meta.get("manifest") or {})
    except ValueError as err:
        raise BenchmarkFileError(f"{directory}: inconsistent benchmark ({err})") from err


def shipped_dir(name: str) -> Path:
    """``aquasurf_core/data/benchmarks/<name>`` (package data)."""
    return Path(__file__).resolve().parent / "data" / "benchmarks" / name


def load(name: str, *, verify: bool = True) -> Benchmark:
    """A shipped Act-Bench-Mini benchmark, ``"cnn"``, ``"resnet"`` or ``"vit"``: every unique
    3-node function trained on MNIST-1D with the small architecture of that name
    (:mod:`aquasurf_core.models`), read from package data
    ``aquasurf_core/data/benchmarks/<name>/`` (directory format of the module docstring; how
    it was built: :mod:`aquasurf_core.bench_build` and the table's ``manifest``). Raises
    ``FileNotFoundError`` explaining how to build a missing one. The published Act-Bench
    files load with :func:`load_actbench`."""
    if name not in SHIPPED:
        raise ValueError(f"unknown benchmark {name!r}; shipped benchmarks: {', '.join(SHIPPED)}")
    directory = shipped_dir(name)
    if not (directory / MANIFEST_FILE).is_file():
        raise FileNotFoundError(
            f"the shipped benchmark {name!r} is not built yet: expected {directory}/ with "
            f"{TABLE_FILE}, {OUTPUTS_FILE}, {FIM_VALID_FILE}, [{FIM_CDF_FILE}] and "
            f"{MANIFEST_FILE}. Build it with `aquasurf bench build --arch {name}`, or load the "
            "published Act-Bench JSON with aquasurf_core.bench.load_actbench(path).")
    return load_benchmark(directory, verify=verify)
