"""The published Act-Bench benchmark files (paper Section 2; the official JSON format).

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
* every name (keys and equivalent names) must parse with :func:`aquasurf_core.space.names.parse`;
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

"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from aquasurf_core.bench.table import (
    ACCURACY_COLUMNS,
    LOSS_COLUMNS,
    STATUSES,
    Benchmark,
    BenchmarkFileError,
    make_table,
)
from aquasurf_core.features.outputs import output_features
from aquasurf_core.space.evaluation import DEFAULT_SIGNED_ZERO_DISTINCT, canonical_bits
from aquasurf_core.space.inputs import inputs_spec
from aquasurf_core.space.names import InvalidFunctionName, parse
from aquasurf_core.storage import atomic_write_text, sha256_file

__all__ = ["ACTBENCH_KEYS", "load_actbench", "save_actbench_json"]

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
_NONFINITE_SPELLINGS = {"nan": math.nan, "infinity": math.inf, "+infinity": math.inf,
                        "-infinity": -math.inf, "inf": math.inf, "+inf": math.inf,
                        "-inf": -math.inf}


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
        try:
            return float(value)
        except OverflowError:  # an integer of hundreds of digits
            raise self.error(f"{what} is too large for a float: {_short(value)}", key) from None

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
            try:
                return np.array(value, dtype=np.float64)
            except OverflowError:  # an integer too large for a float: named below
                pass
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
    outputs = output_features(table["fn_name"])
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
    entries whose outputs equal another entry's (the rule of
    :mod:`aquasurf_core.space.evaluation`)."""
    rule = DEFAULT_SIGNED_ZERO_DISTINCT
    rep_bits = canonical_bits(outputs, rule)
    members = [(row, m) for row, names in enumerate(table["equivalent_names"])
               for m in names[1:]]
    differing: list[str] = []
    if members:
        member_bits = canonical_bits(
            output_features([m for _, m in members]), rule)
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
    return atomic_write_text(path, json.dumps(out, allow_nan=True))
