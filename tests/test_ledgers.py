"""The ledger base (:mod:`aquasurf_core.ledgers`) and one shared case run over the three
ledgers built on it -- the benchmark build's, the large-scale search's and the benchmark
search's trials -- as Optuna's storage tests run over its storages: opening and creating,
reopening after close, WAL, the format check, another kind of database, a damaged file,
NaN and infinity, read-only opening, files written before the base, concurrent openings."""

from __future__ import annotations

import json
import math
import os
import pickle
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aquasurf_core.bench.ledger import Ledger
from aquasurf_core.ledgers import LedgerError, LedgerMismatch, SQLiteLedger, load_real, store_real
from aquasurf_core.search.benchmark_search import RESULT_COLUMNS, TrialLedger
from aquasurf_core.search.ledger import SearchLedger
from aquasurf_core.training.results import RunResult

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {"arch": "cnn", "seeds": [0], "group_size": 3}
NAMES = [f"f{i}(x)" for i in range(8)]


# ------------------------------------------------------------------ the three kinds
def _bench_open(path: Path, readonly: bool = False) -> Ledger:
    return Ledger(path, CONFIG, readonly=readonly)


def _bench_write(ledger: Ledger, values: list[float]) -> None:
    ledger.record_runs(0, [RunResult("cnn", NAMES[i], 0, "ok", v, 0.5, v, 0.5, v, 0.5, 1, 1.0)
                           for i, v in enumerate(values)])


def _bench_read(ledger: Ledger) -> list[float]:
    return ledger.runs().sort_values("fn_name")["val_loss"].tolist()


def _search_open(path: Path, readonly: bool = False) -> SearchLedger:
    return SearchLedger(path, readonly=readonly)


def _search_write(ledger: SearchLedger, values: list[float]) -> None:
    ledger.add_functions(NAMES, seed=0)
    for i, v in enumerate(values):
        assert ledger.record_result(i, 0, {"val_acc": v}, seconds=1.0)


def _search_read(ledger: SearchLedger) -> list[float]:
    return [r["val_acc"] for r in sorted(ledger.results(), key=lambda r: r["class_id"])]


def _trial_open(path: Path, readonly: bool = False) -> TrialLedger:
    return TrialLedger(path, readonly=readonly)


def _trial_rows(trial: int, value: float) -> pd.DataFrame:
    row = {"benchmark": "b", "feature": "f", "method": "m", "trial": trial, "step": 0,
           "function": "relu(x)", "val_acc": value, "test_acc": 0.5, "best_val_so_far": value,
           "test_acc_of_best": 0.5}
    return pd.DataFrame([row], columns=list(RESULT_COLUMNS))


def _trial_write(ledger: TrialLedger, values: list[float]) -> None:
    for i, v in enumerate(values):
        ledger.record(("b", "f", "m", i), 10, 3, _trial_rows(i, v), seconds=1.0)


def _trial_read(ledger: TrialLedger) -> list[float]:
    return ledger.results(10, 3).sort_values("trial")["val_acc"].tolist()


#: Files as the code before the ledger base wrote them (at ce58b79): the bench ledger kept its
#: format under ``meta.ledger_format``, the trial ledger had no ``meta`` and no format; the
#: search ledger is the oldest it reads, format 1 with no format stored (adopted as format 1,
#: gains format 2's columns when written; a format 2 one is stored as this code stores it).
LEGACY = {
    "bench": """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    fn_name TEXT NOT NULL, seed INTEGER NOT NULL, status TEXT NOT NULL,
    train_loss REAL, train_accuracy REAL, val_loss REAL, val_accuracy REAL,
    test_loss REAL, test_accuracy REAL, epochs_completed INTEGER, runtime_s REAL,
    unit INTEGER NOT NULL, finished_at TEXT NOT NULL, PRIMARY KEY (fn_name, seed));
CREATE TABLE features (
    fn_name TEXT PRIMARY KEY, valid INTEGER NOT NULL, invalid_kind TEXT, invalid_layer TEXT,
    invalid_value REAL, invalid_detail TEXT, cdf BLOB NOT NULL, seconds REAL,
    unit INTEGER NOT NULL, finished_at TEXT NOT NULL);
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, host TEXT NOT NULL,
    workers INTEGER NOT NULL, seconds REAL NOT NULL DEFAULT 0, units INTEGER NOT NULL DEFAULT 0);
INSERT INTO meta VALUES ('ledger_format', '2');
INSERT INTO meta VALUES ('config', '{"arch": "cnn", "seeds": [0], "group_size": 3}');
INSERT INTO runs VALUES ('f0(x)', 0, 'ok', 0.25, 0.5, 0.25, 0.5, 0.25, 0.5, 1, 1.0, 0, 't');
INSERT INTO runs VALUES ('f1(x)', 0, 'ok', NULL, 0.5, NULL, 0.5, NULL, 0.5, 1, 1.0, 0, 't');
""",
    "search": """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE functions (
    class_id INTEGER PRIMARY KEY, name TEXT NOT NULL, rank INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'new', owner TEXT, claimed_at REAL,
    valid INTEGER, invalid TEXT, cdf BLOB, feature_seconds REAL, feature_worker TEXT,
    featured_at REAL);
CREATE INDEX functions_status_rank ON functions (status, rank);
CREATE TABLE results (
    class_id INTEGER NOT NULL, seed INTEGER NOT NULL, name TEXT NOT NULL, val_acc REAL,
    metrics TEXT NOT NULL, seconds REAL, worker TEXT, versions TEXT, finished_at REAL NOT NULL,
    session TEXT, PRIMARY KEY (class_id, seed));
INSERT INTO functions (class_id, name, rank, status) VALUES (0, 'f0(x)', 0, 'done'),
    (1, 'f1(x)', 1, 'done');
INSERT INTO results VALUES (0, 0, 'f0(x)', 0.25, '{"val_acc": 0.25}', 1.0, 'w', '{}', 5.0, 's');
INSERT INTO results VALUES (1, 0, 'f1(x)', NULL, '{"val_acc": NaN}', 1.0, 'w', '{}', 6.0, 's');
""",
    "trial": """
CREATE TABLE trials (benchmark TEXT, feature TEXT, method TEXT, trial INTEGER, budget INTEGER,
    k INTEGER, rows TEXT NOT NULL, seconds REAL,
    PRIMARY KEY (benchmark, feature, method, trial, budget, k));
CREATE TABLE problems (benchmark TEXT, feature TEXT, fingerprint TEXT NOT NULL,
    PRIMARY KEY (benchmark, feature));
""" + "".join(f"INSERT INTO trials VALUES ('b', 'f', 'm', {i}, 10, 3, '{rows}', 1.0);\n"
              for i, rows in enumerate(_trial_rows(i, v).to_json(orient="split", index=False)
                                       for i, v in enumerate([0.25, math.nan]))),
}


@dataclass(frozen=True)
class Kind:
    name: str
    cls: type[SQLiteLedger]
    open: Callable[..., SQLiteLedger]
    write: Callable[[SQLiteLedger, list[float]], None]
    read: Callable[[SQLiteLedger], list[float]]
    stores_inf: bool  # the trial ledger keeps rows as JSON, which has no infinity


KINDS = {
    "bench": Kind("bench", Ledger, _bench_open, _bench_write, _bench_read, True),
    "search": Kind("search", SearchLedger, _search_open, _search_write, _search_read, True),
    "trial": Kind("trial", TrialLedger, _trial_open, _trial_write, _trial_read, False),
}


@pytest.fixture(params=sorted(KINDS))
def kind(request) -> Kind:
    return KINDS[request.param]


def _files(folder: Path) -> dict[str, bytes]:
    """Every file's bytes, but SQLite's own sidecar files of a reading (``-wal``, ``-shm``)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


def _same(a: list[float], b: list[float]) -> bool:
    """Equal lists of floats, NaN equal to NaN (exact: a stored double comes back as it was)."""
    return len(a) == len(b) and all(x == y or (math.isnan(x) and math.isnan(y))
                                    for x, y in zip(a, b, strict=False))


def _written(kind: Kind, path: Path, values=(0.25, 0.75)) -> Path:
    with kind.open(path) as ledger:
        kind.write(ledger, list(values))
    return path


# ------------------------------------------------------------------ the shared case
def test_creates_closes_and_reopens_with_the_data(kind, tmp_path):
    path = tmp_path / "sub" / "l.sqlite"
    with kind.open(path) as ledger:
        assert path.is_file() and ledger.path == path and not ledger.readonly
        assert ledger.format == kind.cls.FORMAT and ledger.meta("format") == kind.cls.FORMAT
        kind.write(ledger, [0.25, 0.75])
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        kind.read(ledger)
    with kind.open(path) as again:
        assert kind.read(again) == [0.25, 0.75]
        assert again.meta("format") == kind.cls.FORMAT


def test_the_journal_is_wal(kind, tmp_path):
    with kind.open(tmp_path / "l.sqlite") as ledger:
        assert ledger.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert ledger.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


@pytest.mark.parametrize("stored", ["{newer}", '"two"', "2.5"])
def test_another_format_is_refused_naming_file_found_expected_and_remedy(kind, tmp_path,
                                                                        stored):
    path = _written(kind, tmp_path / "l.sqlite")
    stored = stored.format(newer=kind.cls.FORMAT + 1)
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE meta SET value=? WHERE key='format'", (stored,))
    db.close()
    before = _files(tmp_path)
    for readonly in (False, True):
        with pytest.raises(LedgerMismatch) as caught:
            kind.open(path, readonly=readonly)
        err = caught.value
        assert err.path == path and str(err).startswith(f"{path}: ")
        assert err.found == (f"format {stored}" if stored == str(kind.cls.FORMAT + 1)
                             else f"format {stored!r}")  # not an integer: shown as stored
        assert str(kind.cls.FORMAT) in err.expected and err.remedy in str(err)
        assert "aquasurf-core" in err.remedy or "new ledger path" in err.remedy
        assert isinstance(err, ValueError)  # the command line's one-line errors
    assert _files(tmp_path) == before  # nothing written


def test_another_kind_of_ledger_is_refused_and_left_as_it_is(kind, tmp_path):
    for other in sorted(set(KINDS) - {kind.name}):
        path = _written(KINDS[other], tmp_path / f"{other}.sqlite")
        before = _files(tmp_path)
        for readonly in (False, True):
            with pytest.raises(LedgerMismatch, match=f"not a {kind.cls.KIND}: found tables"):
                kind.open(path, readonly=readonly)
        assert _files(tmp_path) == before


@pytest.mark.parametrize("content", ["random", "header"])
def test_a_damaged_file_is_named_and_left_as_it_is(kind, tmp_path, content):
    path = tmp_path / "l.sqlite"
    path.write_bytes(np.random.default_rng(7).bytes(4096) if content == "random"
                     else b"SQLite format 3\x00" + b"\x00" * 50)
    before = _files(tmp_path)
    for readonly in (False, True):
        with pytest.raises(LedgerError, match=f"not a usable {kind.cls.KIND}") as caught:
            kind.open(path, readonly=readonly)
        assert caught.value.path == path and str(caught.value).startswith(str(path))
    assert _files(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "l.sqlite"]


def test_a_directory_is_refused(kind, tmp_path):
    with pytest.raises(LedgerError, match=f"is a directory, not a {kind.cls.KIND}"):
        kind.open(tmp_path)


def test_nan_and_infinity_come_back_as_they_went_in(kind, tmp_path):
    values = [0.25, math.nan, math.inf, -math.inf] if kind.stores_inf else [0.25, math.nan]
    with kind.open(tmp_path / "l.sqlite") as ledger:
        kind.write(ledger, values)
    with kind.open(tmp_path / "l.sqlite", readonly=True) as ledger:
        assert _same(kind.read(ledger), values)
    if not kind.stores_inf:  # refused with a clear error, nothing recorded
        with kind.open(tmp_path / "inf.sqlite") as ledger:
            with pytest.raises(ValueError, match="infinite value"):
                kind.write(ledger, [math.inf])
            assert kind.read(ledger) == []


def test_read_only_opening_reads_and_refuses_every_write(kind, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"no {kind.cls.KIND} at"):
        kind.open(tmp_path / "none.sqlite", readonly=True)
    assert not (tmp_path / "none.sqlite").exists()
    path = _written(kind, tmp_path / "l.sqlite")
    before = _files(tmp_path)
    with kind.open(path, readonly=True) as ledger:
        assert ledger.readonly and kind.read(ledger) == [0.25, 0.75]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            ledger.set_meta("x", 1)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            kind.write(ledger, [0.5])
        assert kind.read(ledger) == [0.25, 0.75] and ledger.meta("x") is None
    assert _files(tmp_path) == before


def test_a_write_transaction_is_all_or_nothing(kind, tmp_path):
    with kind.open(tmp_path / "l.sqlite") as ledger:
        with pytest.raises(RuntimeError, match="interrupted"):
            with ledger.write():
                ledger.db.execute("INSERT INTO meta VALUES ('half', '1')")
                raise RuntimeError("interrupted")
        assert ledger.meta("half") is None and not ledger.db.in_transaction
        ledger.set_meta("whole", [1, 2])  # the connection is usable after the rollback
        assert ledger.meta("whole") == [1, 2]


def _columns(path: Path, tables) -> dict[str, list]:
    db = sqlite3.connect(path)
    try:
        return {t: db.execute(f"PRAGMA table_info({t})").fetchall() for t in sorted(tables)}
    finally:
        db.close()


def _legacy(kind: Kind, path: Path) -> Path:
    db = sqlite3.connect(path)
    db.executescript(LEGACY[kind.name])
    db.close()
    return path


def test_a_file_written_before_the_base_opens_and_is_brought_up_to_date(kind, tmp_path):
    """Read-only as it is (the trial ledger, with no format at all, adopted as format 1);
    opened for writing, it gets the tables of a new ledger and its format where the base
    keeps it, and keeps its rows."""
    path = _legacy(kind, tmp_path / "old.sqlite")
    before = _files(tmp_path)
    with kind.open(path, readonly=True) as ledger:
        assert ledger.format == (1 if kind.name != "bench" else 2)
        assert _same(kind.read(ledger), [0.25, math.nan])
    assert _files(tmp_path) == before
    with kind.open(path) as ledger:
        assert ledger.format == ledger.meta("format") == kind.cls.FORMAT
        assert _same(kind.read(ledger), [0.25, math.nan])
        assert ledger.meta("ledger_format") is None  # the bench ledger's old key is gone
    fresh = kind.open(tmp_path / "new.sqlite")
    fresh.close()
    tables = kind.cls.TABLES | {"meta"}
    assert _columns(path, tables) == _columns(tmp_path / "new.sqlite", tables)
    with kind.open(path, readonly=True) as ledger:
        assert ledger.meta("format") == kind.cls.FORMAT


OPENER = """
import importlib, json, os, sys, time
module, name, config, path, go = sys.argv[1:6]
cls = getattr(importlib.import_module(module), name)
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
with cls(path, *json.loads(config)) as ledger:
    print(ledger.meta("format"), flush=True)
"""


def test_processes_opening_one_old_file_at_once_bring_it_up_to_date_once(kind, tmp_path):
    """The format is checked and the file migrated under one write lock: three processes
    opening an old file together all succeed (no column added twice, no half-made table)."""
    path, go = _legacy(kind, tmp_path / "old.sqlite"), tmp_path / "go"
    args = [kind.cls.__module__, kind.cls.__name__,
            json.dumps([CONFIG] if kind.name == "bench" else []), str(path), str(go)]
    procs = [subprocess.Popen([sys.executable, "-c", OPENER, *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
             for _ in range(3)]
    for p in procs:  # all imported and waiting before any opens
        assert p.stdout.readline().strip() == "ready"
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [(p.returncode, out.strip()) for p, (out, _) in zip(procs, outs, strict=True)] == [
        (0, str(kind.cls.FORMAT))] * 3, [err[-800:] for _, err in outs]
    with kind.open(path) as ledger:
        assert _same(kind.read(ledger), [0.25, math.nan])


# ------------------------------------------------------------------ the base's parts
def test_store_real_and_load_real_against_the_obvious_rules():
    cases = [(None, None), (math.nan, None), (np.float32("nan"), None), (np.float64(1.5), 1.5),
             (2, 2.0), (True, 1.0), (math.inf, math.inf), (np.float32(-np.inf), -math.inf)]
    for value, expected in cases:
        got = store_real(value)
        assert got == expected and (got is None or type(got) is float), (value, got)
    for bad in ("0.5", b"1", [1.0], object()):
        with pytest.raises(TypeError, match="is not a real number"):
            store_real(bad)
    assert math.isnan(load_real(None)) and load_real(0.5) == 0.5 and load_real(3) == 3.0
    assert type(load_real(3)) is float


def test_errors_name_the_file_and_survive_pickling():
    mismatch = LedgerMismatch("/x/l.sqlite", "a search ledger of another format", "format 9",
                              "formats 1 to 2", "Use a new ledger path")
    assert str(mismatch) == ("/x/l.sqlite: a search ledger of another format: found format 9, "
                             "expected formats 1 to 2. Use a new ledger path")
    damaged = LedgerError("/x/l.sqlite", "not a usable search ledger (bad)", "Restore it")
    for err in (mismatch, damaged):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err)
        assert vars(back) == vars(err)
