"""The build ledger of a benchmark: an SQLite database (WAL mode) of finished work.

Tables: ``meta`` (the build configuration, the Fisher layout, the ledger format), ``runs`` (one
row per function and seed: status, losses, accuracies, epochs, seconds, the unit that produced
it and when), ``features`` (one row per function: validity as a structured
:class:`~aquasurf_core.features.fim.Invalidity` -- kind, layer, value, detail, all NULL when
valid -- the CDF as float32 bytes, seconds) and ``sessions`` (one row per build session: start,
host, workers, wall seconds, units finished).

Every finished unit is written in one transaction, so a process killed at any moment (even
with ``SIGKILL``) leaves the ledger holding exactly the units that finished. A ledger refuses a
configuration other than the one it was built with (:class:`LedgerMismatch` names the keys that
differ), except ``seeds``, which may grow. NaN is stored as NULL and read back as NaN.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from aquasurf_core.features.fim import Invalidity
from aquasurf_core.paths import cache_dir
from aquasurf_core.training.results import RunResult

__all__ = ["LEDGER_FORMAT", "Ledger", "LedgerMismatch", "default_ledger_path", "read_summary",
           "utc_now"]

#: 2: validity reasons stored as structured fields (kind, layer, value, detail).
LEDGER_FORMAT = 2
RUN_FIELDS = ("status", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
              "test_accuracy", "epochs_completed", "runtime_s")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    fn_name TEXT NOT NULL, seed INTEGER NOT NULL, status TEXT NOT NULL,
    train_loss REAL, train_accuracy REAL, val_loss REAL, val_accuracy REAL,
    test_loss REAL, test_accuracy REAL, epochs_completed INTEGER, runtime_s REAL,
    unit INTEGER NOT NULL, finished_at TEXT NOT NULL, PRIMARY KEY (fn_name, seed));
CREATE TABLE IF NOT EXISTS features (
    fn_name TEXT PRIMARY KEY, valid INTEGER NOT NULL, invalid_kind TEXT, invalid_layer TEXT,
    invalid_value REAL, invalid_detail TEXT, cdf BLOB NOT NULL, seconds REAL,
    unit INTEGER NOT NULL, finished_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, host TEXT NOT NULL,
    workers INTEGER NOT NULL, seconds REAL NOT NULL DEFAULT 0, units INTEGER NOT NULL DEFAULT 0);
"""


class LedgerMismatch(ValueError):
    """A ledger was written with another build configuration, or by an older version."""


def utc_now() -> str:
    """The current UTC time as an ISO-8601 string with seconds (the ledgers' timestamps)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _real(value: float | None) -> float | None:
    """SQLite has no NaN: store it as NULL (read back as NaN)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _check_kind(path: Path, tables: set[str], readonly: bool = False) -> None:
    """Refuse, before anything is written, a database that is not a build ledger (a search
    ledger, say): one with tables, but not those of a build ledger."""
    if (tables or readonly) and not {"meta", "runs", "features", "sessions"} <= tables:
        raise LedgerMismatch(f"{path} is not a benchmark build ledger (tables: "
                             f"{', '.join(sorted(tables)) or 'none'})")


def default_ledger_path(arch: str) -> Path:
    """``<cache>/bench/<arch>/ledger.sqlite`` (:func:`aquasurf_core.paths.cache_dir`)."""
    return cache_dir("bench", arch, "ledger.sqlite")


class Ledger:
    """The SQLite (WAL) record of a build: finished runs, features and build sessions.

    ``config`` is a JSON-able dict of everything that determines the numbers (module
    docstring: every key must match an existing ledger's, except ``seeds``)."""

    def __init__(self, path: str | os.PathLike, config: dict):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._check_format()
            self.db.executescript(_SCHEMA)
            self._check_config(config)
        except sqlite3.DatabaseError as err:
            self.db.close()
            raise ValueError(f"{self.path}: not a usable build ledger ({err})") from err
        except LedgerMismatch:
            self.db.close()
            raise
        self.config = config

    def _check_format(self) -> None:
        tables = {n for (n,) in self.db.execute("SELECT name FROM sqlite_master WHERE "
                                                "type='table'")}
        _check_kind(self.path, tables)
        if "features" in tables:
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(features)")}
            if "invalid_kind" not in columns:
                raise LedgerMismatch(f"{self.path} was written by an older version (ledger "
                                     f"format 1, free-text validity reasons); this version "
                                     f"writes format {LEDGER_FORMAT}. Use a new ledger path.")
        with self.db:
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, "
                            "value TEXT NOT NULL)")
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('ledger_format', ?)",
                            (json.dumps(LEDGER_FORMAT),))

    def _check_config(self, wanted: dict) -> None:
        """Store ``wanted`` in a new ledger; in an existing one every key must match except
        ``seeds`` (runs are keyed by function and seed, so seeds can be added later: the
        finished ones are kept and the ledger's config records the latest seed list)."""
        stored = self.meta("config")
        if stored is not None:
            differ = sorted(k for k in set(stored) | set(wanted)
                            if k != "seeds" and stored.get(k) != wanted.get(k))
            if differ:
                detail = "; ".join(f"{k}: ledger {stored.get(k)!r}, requested {wanted.get(k)!r}"
                                   for k in differ)
                raise LedgerMismatch(f"{self.path} was built with another configuration "
                                     f"({detail}). Use a new ledger path, or the ledger's "
                                     "configuration.")
        self.set_meta("config", wanted)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing: one transaction per finished unit
    def record_runs(self, unit: int, results: Sequence[RunResult]) -> None:
        stamp = utc_now()
        rows = [(r.fn_name, r.seed, r.status, *(_real(float(getattr(r, f)))
                                                for f in RUN_FIELDS[1:7]),
                 r.epochs_completed, _real(r.runtime_s), unit, stamp) for r in results]
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)

    def record_features(self, unit: int,
                        features: Sequence[tuple[str, Invalidity | None, np.ndarray, float]]
                        ) -> None:
        """``features``: ``(fn_name, invalidity or None, cdf, seconds)`` per function."""
        stamp = utc_now()
        rows = []
        for name, invalid, cdf, seconds in features:
            fields = (None, None, None, None) if invalid is None else (
                invalid.kind.value, invalid.layer, _real(invalid.value), invalid.detail)
            rows.append((name, int(invalid is None), *fields,
                         np.asarray(cdf, dtype=np.float32).tobytes(), _real(seconds), unit,
                         stamp))
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO features VALUES (?,?,?,?,?,?,?,?,?,?)",
                                rows)

    def set_meta(self, key: str, value: object) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def meta(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def start_session(self, workers: int) -> int:
        with self.db:
            cur = self.db.execute("INSERT INTO sessions (started_at, host, workers) VALUES "
                                  "(?, ?, ?)", (utc_now(), platform.node(), workers))
        return int(cur.lastrowid)

    def update_session(self, session: int, seconds: float, units: int) -> None:
        with self.db:
            self.db.execute("UPDATE sessions SET seconds=?, units=? WHERE id=?",
                            (seconds, units, session))

    # -- reading
    def done_runs(self) -> set[tuple[str, int]]:
        return {(n, int(s)) for n, s in self.db.execute("SELECT fn_name, seed FROM runs")}

    def done_features(self) -> set[str]:
        return {n for (n,) in self.db.execute("SELECT fn_name FROM features")}

    def runs(self) -> pd.DataFrame:
        frame = pd.read_sql_query("SELECT * FROM runs ORDER BY fn_name, seed", self.db)
        for column in RUN_FIELDS[1:7] + ("runtime_s",):
            frame[column] = frame[column].astype("float64")  # NULL -> NaN
        return frame

    def features(self) -> dict[str, tuple[Invalidity | None, np.ndarray]]:
        """``{fn_name: (invalidity or None, cdf)}`` of every function with features."""
        out = {}
        query = ("SELECT fn_name, valid, invalid_kind, invalid_layer, invalid_value, "
                 "invalid_detail, cdf FROM features")
        for name, valid, kind, layer, value, detail, blob in self.db.execute(query):
            invalid = None if valid else Invalidity(kind, layer, value, detail or "")
            out[name] = (invalid, np.frombuffer(blob, dtype=np.float32).copy())
        return out

    def feature_times(self) -> list[str]:
        return [t for (t,) in self.db.execute("SELECT finished_at FROM features")]

    def sessions(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM sessions ORDER BY id", self.db)

    def summary(self) -> dict:
        """What the ledger holds (:func:`read_summary`)."""
        return _summary(self.db, self.path)


def _summary(db: sqlite3.Connection, path: Path) -> dict:
    runs = dict(db.execute("SELECT seed, COUNT(*) FROM runs GROUP BY seed").fetchall())
    feats = db.execute("SELECT COUNT(*), SUM(valid) FROM features").fetchone()
    seconds = db.execute("SELECT COALESCE(SUM(seconds), 0) FROM sessions").fetchone()[0]
    config = db.execute("SELECT value FROM meta WHERE key='config'").fetchone()
    return {"ledger": str(path), "config": None if config is None else json.loads(config[0]),
            "runs_per_seed": runs, "features": feats[0], "valid_features": feats[1] or 0,
            "build_seconds": round(seconds, 1)}


def read_summary(path: str | os.PathLike) -> dict:
    """What the ledger at ``path`` holds -- configuration, runs per seed, features (and how
    many are valid), summed seconds of its build sessions -- read without writing anything
    (``aquasurf bench status``). Raises ``FileNotFoundError`` when there is no ledger."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no ledger at {path}")
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        try:
            _check_kind(path, {n for (n,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}, readonly=True)
        except sqlite3.DatabaseError as err:
            raise ValueError(f"{path}: not a usable build ledger ({err})") from err
        return _summary(db, path)
    finally:
        db.close()
