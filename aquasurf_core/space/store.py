"""Persisted search spaces: every function, its equal-output class, and the classes' outputs.

A store is a directory::

    names.parquet          name, class_id, schema         one row per function, enumeration order
    unique.parquet         class_id, representative,      one row per class, class-id order
                           equivalent_names, count
    outputs.npy            float32 [U, 1000]  canonical output row of each class on the normal
                                              inputs (aquasurf_core.space.inputs)
    outputs_linspace.npy   float32 [U, 80]    each representative evaluated on linspace(-5, 5, 80)
    manifest.json          schemas, operator set, counts, de-duplication rule, inputs, library
                           versions, timings, and the size and SHA-256 of every other file
                           (for outputs.npy, of the data after its fixed 128-byte header; the
                           header itself is checked through the array's shape and dtype)

Classes, their ids and canonical rows are defined in :mod:`aquasurf_core.space.evaluation`;
the enumeration order in :mod:`aquasurf_core.space.schemas`. ``equivalent_names`` lists a class's
members in enumeration order. The *representative* of a class is its member with the fewest
operators other than ``zero``, ``one`` and ``identity`` (so ReLU's class is represented by
``max(identity(x),zero(x))``, not by ``add(relu(x),zero(x))``), then the shortest name, then
the lexicographically smallest name.

Writes are atomic (:func:`aquasurf_core.storage.atomic_directory`): a crash leaves either the
old store or the new one, never a half-written one. :func:`load_space` checks the manifest, every
file's size and checksum and the array shapes, and raises :class:`SpaceStoreError` naming the
offending file.

Without ``out_dir`` a store lives in the cache, ``<cache>/spaces/<key>``
(:func:`aquasurf_core.paths.cache_dir`), where ``<key>`` hashes the schemas, operator set,
de-duplication rule, inputs and store format; building the same space again loads it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import time
import warnings
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from aquasurf_core.paths import cache_dir
from aquasurf_core.space.evaluation import (
    DEFAULT_SIGNED_ZERO_DISTINCT,
    DIGEST_SIZE,
    SpaceEvaluation,
    evaluate_combos,
    evaluate_space,
    find_rows_by_outputs,
    index_to_digits,
)
from aquasurf_core.space.inputs import inputs_spec, linspace_inputs, normal_inputs
from aquasurf_core.space.names import canonical_name
from aquasurf_core.space.schemas import (
    InvalidSchema,
    count_schema,
    iter_names,
    parse_schemas,
    resolve_operator_set,
)
from aquasurf_core.storage import (
    atomic_directory,
    atomic_write_text,
    file_entry,
    first_file_problem,
)

STORE_FORMAT = 2  # 2: representatives ignore zero/one/identity
NAMES_FILE = "names.parquet"
UNIQUE_FILE = "unique.parquet"
OUTPUTS_FILE = "outputs.npy"
LINSPACE_FILE = "outputs_linspace.npy"
MANIFEST_FILE = "manifest.json"
#: sizes and modification times of a store's files when their checksums last matched: a cached
#: store whose files still have them is opened without hashing again; any other is verified
VERIFIED_FILE = "verified.json"
DATA_FILES = (NAMES_FILE, UNIQUE_FILE, OUTPUTS_FILE, LINSPACE_FILE)
#: Operators that make a name longer but not more complex: constants and the identity.
TRIVIAL_OPERATORS = ("zero", "one", "identity")
REPRESENTATIVE_RULE = (
    "fewest operators other than zero/one/identity, then shortest name, "
    "then lexicographically smallest"
)
_NPY_HEADER_BYTES = 128  # npy v1.0 header of a 2-D float array with fewer than 10^40 rows


class SpaceStoreError(RuntimeError):
    """A store that is missing, incomplete or corrupt; the message names the file."""


# ----------------------------------------------------------------------------- locations
def default_store_dir() -> Path:
    """Where stores live without ``out_dir``: ``<cache>/spaces``
    (:func:`aquasurf_core.paths.cache_dir`)."""
    return cache_dir("spaces")


def _canonical_request(schemas, operators: str, signed_zero_distinct: bool) -> dict:
    resolve_operator_set(operators)
    return {
        "format": STORE_FORMAT,
        "schemas": [s.text for s in parse_schemas(schemas)],
        "operators": operators,
        "signed_zero_distinct": bool(signed_zero_distinct),
        "inputs": inputs_spec(),
    }


def space_key(schemas: str | Iterable[str], operators: str = "paper",
              signed_zero_distinct: bool = DEFAULT_SIGNED_ZERO_DISTINCT) -> str:
    """Cache key: 16 hex digits of SHA-256 over schemas, operator set, rule, inputs, format."""
    request = _canonical_request(schemas, operators, signed_zero_distinct)
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- the store
@dataclass
class SpaceStore:
    """A loaded store. ``names`` and ``unique`` are read on first access; ``outputs`` arrays
    are memory-mapped (read-only) unless loaded with ``mmap=False``."""

    path: Path
    manifest: dict
    outputs: np.ndarray
    outputs_linspace: np.ndarray
    _names: pd.DataFrame | None = field(default=None, repr=False)
    _unique: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def names(self) -> pd.DataFrame:
        """Columns ``name``, ``class_id``, ``schema``; one row per function."""
        if self._names is None:
            self._names = _read_parquet(self.path, NAMES_FILE)
        return self._names

    @property
    def unique(self) -> pd.DataFrame:
        """Columns ``class_id``, ``representative``, ``equivalent_names``, ``count``."""
        if self._unique is None:
            self._unique = _read_parquet(self.path, UNIQUE_FILE)
        return self._unique

    @property
    def n_functions(self) -> int:
        """Number of functions of the space, equivalent ones counted apart (manifest)."""
        return int(self.manifest["counts"]["functions"])

    @property
    def n_unique(self) -> int:
        """Number of unique functions (equivalence classes) of the space (manifest)."""
        return int(self.manifest["counts"]["unique"])

    def __len__(self) -> int:
        return self.n_unique

    def class_of(self, names: Iterable[str]) -> np.ndarray:
        """Class id of each function name, ``-1`` where no function of the space equals it.

        A name of the space is looked up directly. Any other valid name (``"relu(x)"`` is not
        a name of the 3-node space, but ``max(x,zero(x))`` is) is evaluated on the normal
        inputs and matched bit for bit, under the store's own equivalence rule, against the
        classes' output rows (:func:`aquasurf_core.space.evaluation.find_rows_by_outputs`).
        Raises ``InvalidFunctionName`` for names that do not parse.
        """
        wanted = [canonical_name(n) for n in names]
        rows = pd.Index(self.names["name"]).get_indexer(wanted)
        class_ids = self.names["class_id"].to_numpy()
        ids = np.where(rows >= 0, class_ids[np.maximum(rows, 0)], -1).astype(np.int64)
        missing = np.flatnonzero(ids < 0)
        if len(missing):
            ids[missing] = find_rows_by_outputs(
                [wanted[i] for i in missing], self.outputs,
                signed_zero_distinct=bool(self.manifest["dedup"]["signed_zero_distinct"]))
        return ids


def _read_parquet(path: Path, name: str) -> pd.DataFrame:
    try:
        return pq.read_table(path / name).to_pandas()
    except Exception as err:  # pyarrow raises several types for damaged files
        raise SpaceStoreError(f"space store {path}: cannot read {name}: {err}") from err


def load_space(path: str | os.PathLike, *, verify: bool = True, mmap: bool = True) -> SpaceStore:
    """Open a store written by :func:`build_space`.

    Checks that every file exists and has the size recorded in the manifest, with
    ``verify`` also its SHA-256, and that row counts and array shapes match the manifest.
    Raises :class:`SpaceStoreError` naming the first bad file.
    """
    path = Path(path)
    if not path.is_dir():
        raise SpaceStoreError(f"no space store at {path}")
    manifest_path = path / MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
        counts = manifest["counts"]
        n_functions, n_unique = int(counts["functions"]), int(counts["unique"])
        n_normal = int(manifest["inputs"]["normal"]["n"])
        n_linspace = int(manifest["inputs"]["linspace"]["n"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SpaceStoreError(f"space store {path}: {MANIFEST_FILE} is missing or corrupt "
                              f"({err})") from err
    if manifest.get("format") != STORE_FORMAT:
        raise SpaceStoreError(f"space store {path}: {MANIFEST_FILE} has format "
                              f"{manifest.get('format')!r}, expected {STORE_FORMAT}")
    found = first_file_problem(path, DATA_FILES, files, verify)
    if found and found[1] == "not listed":
        raise SpaceStoreError(f"space store {path}: {MANIFEST_FILE} does not list {found[0]}")
    if found:
        raise SpaceStoreError(f"space store {path}: {found[0]} is {found[1]}")
    for name, rows in ((NAMES_FILE, n_functions), (UNIQUE_FILE, n_unique)):
        try:
            found = pq.read_metadata(path / name).num_rows
        except Exception as err:
            raise SpaceStoreError(f"space store {path}: {name} is corrupt ({err})") from err
        if found != rows:
            raise SpaceStoreError(f"space store {path}: {name} has {found} rows, expected {rows}")
    arrays = []
    for name, width in ((OUTPUTS_FILE, n_normal), (LINSPACE_FILE, n_linspace)):
        try:
            array = np.load(path / name, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise SpaceStoreError(f"space store {path}: {name} is corrupt ({err})") from err
        if array.shape != (n_unique, width) or array.dtype != np.float32:
            raise SpaceStoreError(f"space store {path}: {name} has shape {array.shape} "
                                  f"{array.dtype}, expected ({n_unique}, {width}) float32")
        arrays.append(array)
    return SpaceStore(path, manifest, arrays[0], arrays[1])


# ----------------------------------------------------------------------------- writing
class _NpyRowWriter:
    """Streams rows into a ``.npy`` file whose row count is known only at the end: a fixed
    128-byte header is reserved and written last. Writing and the SHA-256 of the data
    (everything after the header) run on a background thread, overlapping the evaluation."""

    _MAX_PENDING = 8

    def __init__(self, path: Path, width: int, dtype=np.float32):
        self.path, self.width, self.dtype, self.rows = path, width, np.dtype(dtype), 0
        self.file = open(path, "wb")
        self.file.write(b"\0" * _NPY_HEADER_BYTES)
        self.data_digest = hashlib.sha256()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="npy-writer")
        self.pending: list[Future] = []

    def _write(self, data: bytes) -> None:
        self.file.write(data)
        self.data_digest.update(data)

    def write(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise ValueError(f"expected rows of width {self.width}, got {rows.shape}")
        self.rows += rows.shape[0]
        self.pending = [f for f in self.pending if not f.done() or f.result()]
        if len(self.pending) >= self._MAX_PENDING:
            self.pending.pop(0).result()
        self.pending.append(self.pool.submit(self._write, rows.tobytes()))

    def close(self) -> str:
        """Finish the file; returns the SHA-256 of its data part."""
        for future in self.pending:
            future.result()
        self.pool.shutdown()
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                     "shape": (self.rows, self.width)})
        if len(header.getvalue()) != _NPY_HEADER_BYTES:
            raise RuntimeError("unexpected npy header size")
        self.file.seek(0)
        self.file.write(header.getvalue())
        self.file.close()
        return self.data_digest.hexdigest()

    def abort(self) -> None:
        self.pool.shutdown(cancel_futures=True)
        self.file.close()


def _representatives(names: pa.Array, class_ids: np.ndarray, n_ops: np.ndarray,
                     n_unique: int) -> np.ndarray:
    """Enumeration index of each class's representative (module docstring rule)."""
    for trivial in TRIVIAL_OPERATORS:
        n_ops = n_ops - pc.count_substring(names, f"{trivial}(").to_numpy(zero_copy_only=False)
    table = pa.table({"class_id": class_ids, "n_ops": n_ops,
                      "length": pc.utf8_length(names), "name": names})
    order = pc.sort_indices(table, sort_keys=[("class_id", "ascending"), ("n_ops", "ascending"),
                                              ("length", "ascending"), ("name", "ascending")])
    order = order.to_numpy()
    sorted_class = class_ids[order]
    first = np.flatnonzero(np.r_[True, sorted_class[1:] != sorted_class[:-1]])
    assert first.shape[0] == n_unique
    return order[first]


def _linspace_outputs(parsed, operators: str, rep_index: np.ndarray, offsets: np.ndarray,
                      radices: list[list[int]], n_unique: int) -> np.ndarray:
    """Each representative evaluated on the linspace inputs, rows in class-id order."""
    x = linspace_inputs()
    out = np.empty((n_unique, x.shape[0]), dtype=np.float32)
    schema_of_rep = np.searchsorted(offsets, rep_index, side="right") - 1
    for s, schema in enumerate(parsed):
        classes = np.flatnonzero(schema_of_rep == s)
        if classes.size == 0:
            continue
        digits = index_to_digits(rep_index[classes] - offsets[s], radices[s])
        values = evaluate_combos(schema, operators, digits, x)
        out[classes] = values.numpy()
    return out


def _write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd")


def _evaluate_to_npy(path: Path, parsed, operators: str, signed_zero_distinct: bool,
                     progress: bool) -> tuple[SpaceEvaluation, str]:
    """Evaluate and de-duplicate the space, streaming each new class's row into ``path``;
    returns the evaluation and the SHA-256 of the ``.npy`` data."""
    writer = _NpyRowWriter(path, normal_inputs().shape[0])
    try:
        result = evaluate_space([s.text for s in parsed], operators, normal_inputs(),
                                signed_zero_distinct=signed_zero_distinct,
                                collect_outputs=False, on_new_outputs=writer.write,
                                progress=progress)
        return result, writer.close()
    except BaseException:
        writer.abort()
        raise


def _write_names(path: Path, parsed, operators: str, result: SpaceEvaluation) -> pa.Array:
    """``names.parquet``: every function with its class id and schema; returns the names."""
    sizes = np.array([len(c) for c in result.class_ids], dtype=np.int64)
    names = pa.array([name for s in parsed for name in iter_names(s, operators)], pa.string())
    schema_column = pa.DictionaryArray.from_arrays(
        pa.array(np.repeat(np.arange(len(parsed), dtype=np.int32), sizes)),
        pa.array([s.text for s in parsed], pa.string()))
    _write_parquet(pa.table({"name": names, "class_id": np.concatenate(result.class_ids),
                             "schema": schema_column}), path)
    return names


def _write_unique(path: Path, parsed, names: pa.Array, result: SpaceEvaluation) -> np.ndarray:
    """``unique.parquet``: one row per class with its representative and members; returns
    the enumeration index of each representative."""
    sizes = np.array([len(c) for c in result.class_ids], dtype=np.int64)
    class_ids = np.concatenate(result.class_ids)
    n_ops = np.repeat(np.array([s.n_operators for s in parsed], dtype=np.int32), sizes)
    n_unique = result.n_unique
    rep_index = _representatives(names, class_ids, n_ops, n_unique)
    members = np.argsort(class_ids, kind="stable")
    counts = np.bincount(class_ids, minlength=n_unique)
    list_offsets = np.r_[0, np.cumsum(counts)].astype(np.int32)
    equivalent = pa.ListArray.from_arrays(pa.array(list_offsets), names.take(pa.array(members)))
    _write_parquet(pa.table({
        "class_id": np.arange(n_unique, dtype=np.int64),
        "representative": names.take(pa.array(rep_index)),
        "equivalent_names": equivalent,
        "count": counts.astype(np.int64),
    }), path)
    return rep_index


def _store_manifest(parsed, operators: str, signed_zero_distinct: bool, request: dict,
                    key: str, result: SpaceEvaluation, files: dict,
                    timings: dict[str, float]) -> dict:
    table = resolve_operator_set(operators)
    per_schema = {
        s.text: {"functions": int(len(ids)), "classes": int(np.unique(ids).shape[0])}
        for s, ids in zip(parsed, result.class_ids, strict=True)
    }
    return {
        "format": STORE_FORMAT,
        "key": key,
        "schemas": request["schemas"],
        "operators": operators,
        "operator_names": {kind: [op.name for op in ops] for kind, ops in table.items()},
        "counts": {"functions": int(result.n_functions), "unique": int(result.n_unique),
                   "per_schema": per_schema},
        "dedup": {
            "signed_zero_distinct": bool(signed_zero_distinct),
            "nan": "all NaNs equal (canonicalised to 0x7FC00000)",
            "inf": "ordinary values",
            "digest": f"sha256 truncated to {DIGEST_SIZE} bytes, of the canonical float32 row",
            "representative": REPRESENTATIVE_RULE,
            "class_ids": "order of first member in enumeration order",
        },
        "inputs": request["inputs"],
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "numpy": np.__version__, "pandas": pd.__version__,
                     "pyarrow": pa.__version__},
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": files,
    }


def _write_store(tmp: Path, parsed, operators: str, signed_zero_distinct: bool,
                 progress: bool, request: dict, key: str) -> dict:
    """Write every file of a store into ``tmp`` (module docstring), manifest last."""
    timings: dict[str, float] = {}
    started = t = time.perf_counter()
    result, outputs_data_sha256 = _evaluate_to_npy(tmp / OUTPUTS_FILE, parsed, operators,
                                                   signed_zero_distinct, progress)
    timings["evaluate_and_deduplicate"], t = time.perf_counter() - t, time.perf_counter()
    names = _write_names(tmp / NAMES_FILE, parsed, operators, result)
    timings["names"], t = time.perf_counter() - t, time.perf_counter()
    rep_index = _write_unique(tmp / UNIQUE_FILE, parsed, names, result)
    timings["unique"], t = time.perf_counter() - t, time.perf_counter()
    radices = [[len(resolve_operator_set(operators)[kind]) for kind in s.slots] for s in parsed]
    offsets = np.r_[0, np.cumsum([len(c) for c in result.class_ids])[:-1]].astype(np.int64)
    np.save(tmp / LINSPACE_FILE, _linspace_outputs(parsed, operators, rep_index, offsets,
                                                   radices, result.n_unique))
    timings["linspace"], t = time.perf_counter() - t, time.perf_counter()
    files = {name: file_entry(tmp / name) for name in DATA_FILES if name != OUTPUTS_FILE}
    files[OUTPUTS_FILE] = {"bytes": (tmp / OUTPUTS_FILE).stat().st_size,
                           "data_offset": _NPY_HEADER_BYTES, "data_sha256": outputs_data_sha256}
    timings["checksums"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started
    manifest = _store_manifest(parsed, operators, signed_zero_distinct, request, key, result,
                               files, timings)
    (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def build_space(
    schemas: str | Iterable[str],
    operators: str = "paper",
    *,
    out_dir: str | os.PathLike | None = None,
    signed_zero_distinct: bool = DEFAULT_SIGNED_ZERO_DISTINCT,
    progress: bool = True,
    rebuild: bool = False,
) -> SpaceStore:
    """Enumerate, evaluate, de-duplicate and persist a space; return the loaded store.

    ``out_dir`` defaults to the cache (:func:`default_store_dir` / key). An existing valid
    store for the same request is loaded instead of rebuilt unless ``rebuild``. A directory
    at ``out_dir`` that is not a space store is never overwritten.
    """
    if not isinstance(operators, str):
        raise InvalidSchema("build_space needs a named operator set ('paper' or 'coatnet')")
    request = _canonical_request(schemas, operators, signed_zero_distinct)
    key = space_key(schemas, operators, signed_zero_distinct)
    target = Path(out_dir) if out_dir is not None else default_store_dir() / key
    if target.exists() and (target / MANIFEST_FILE).exists():
        if not rebuild:
            try:
                store = _load_verified(target)
                if store.manifest.get("key") == key:
                    return store
                warnings.warn(f"space store {target} holds another space; rebuilding it",
                              stacklevel=2)
            except SpaceStoreError as err:  # damaged: say so, rebuild below
                warnings.warn(f"{err}; rebuilding it", stacklevel=2)
    parsed = parse_schemas(schemas)
    with atomic_directory(target, marker=MANIFEST_FILE, kind="space store",
                          error=SpaceStoreError) as tmp:
        _write_store(tmp, parsed, operators, signed_zero_distinct, progress, request, key)
    return _load_verified(target)


def _file_stats(directory: Path) -> dict[str, list[int]]:
    stats = {name: (directory / name).stat() for name in (MANIFEST_FILE, *DATA_FILES)}
    return {name: [st.st_size, st.st_mtime_ns] for name, st in stats.items()}


def _load_verified(target: Path) -> SpaceStore:
    """:func:`load_space` with checksums unless the files are as they were when they last
    matched (:data:`VERIFIED_FILE`); records a successful verification. A file changed in place
    gets a new modification time and is hashed again; damage that keeps the size and the time
    (a disk's bit rot) is found only by ``load_space(path, verify=True)``."""
    stamp = target / VERIFIED_FILE
    try:
        known = json.loads(stamp.read_text()) == _file_stats(target)
    except (OSError, ValueError):
        known = False
    store = load_space(target, verify=not known)
    if not known:
        try:
            atomic_write_text(stamp, json.dumps(_file_stats(target)))
        except OSError:  # a read-only store: it is verified again next time
            pass
    return store


def count_space(schemas: str | Iterable[str], operators: str = "paper", *,
                signed_zero_distinct: bool = DEFAULT_SIGNED_ZERO_DISTINCT,
                progress: bool = False) -> dict:
    """``{"functions": N, "unique": U, "seconds": S}`` without persisting anything."""
    started = time.perf_counter()
    parsed = parse_schemas(schemas)
    n_functions = sum(count_schema(s, operators) for s in parsed)
    result = evaluate_space([s.text for s in parsed], operators,
                            signed_zero_distinct=signed_zero_distinct,
                            collect_outputs=False, progress=progress)
    assert result.n_functions == n_functions
    return {"functions": n_functions, "unique": result.n_unique,
            "seconds": round(time.perf_counter() - started, 3)}
