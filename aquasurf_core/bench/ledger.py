"""The build ledger of a benchmark: an SQLite database (WAL mode) of finished work, a
:class:`~aquasurf_core.ledgers.SQLiteLedger` (connection, format check, NaN handling).

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

Formats: 1 stored validity reasons as free text (refused: rebuild under a new path); 2 stores
them as structured fields. Ledgers written before the format was kept under ``meta.format``
kept it under ``meta.ledger_format`` (or, format 1, nowhere): they are read as the format found
there, and moved to ``meta.format`` when opened for writing.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from aquasurf_core.features.fim import Invalidity
from aquasurf_core.ledgers import LedgerMismatch, SQLiteLedger, store_real
from aquasurf_core.paths import cache_dir
from aquasurf_core.training.results import RunResult

__all__ = ["LEDGER_FORMAT", "Ledger", "LedgerMismatch", "default_ledger_path", "read_summary",
           "utc_now"]

#: 2: validity reasons stored as structured fields (kind, layer, value, detail).
LEDGER_FORMAT = 2
RUN_FIELDS = ("status", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
              "test_accuracy", "epochs_completed", "runtime_s")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS runs (
    fn_name TEXT NOT NULL, seed INTEGER NOT NULL, status TEXT NOT NULL,
    train_loss REAL, train_accuracy REAL, val_loss REAL, val_accuracy REAL,
    test_loss REAL, test_accuracy REAL, epochs_completed INTEGER, runtime_s REAL,
    unit INTEGER NOT NULL, finished_at TEXT NOT NULL, PRIMARY KEY (fn_name, seed))""",
    """CREATE TABLE IF NOT EXISTS features (
    fn_name TEXT PRIMARY KEY, valid INTEGER NOT NULL, invalid_kind TEXT, invalid_layer TEXT,
    invalid_value REAL, invalid_detail TEXT, cdf BLOB NOT NULL, seconds REAL,
    unit INTEGER NOT NULL, finished_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, host TEXT NOT NULL,
    workers INTEGER NOT NULL, seconds REAL NOT NULL DEFAULT 0, units INTEGER NOT NULL DEFAULT 0)""",
)


def utc_now() -> str:
    """The current UTC time as an ISO-8601 string with seconds (the ledgers' timestamps)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_ledger_path(arch: str) -> Path:
    """``<cache>/bench/<arch>/ledger.sqlite`` (:func:`aquasurf_core.paths.cache_dir`)."""
    return cache_dir("bench", arch, "ledger.sqlite")


class Ledger(SQLiteLedger):
    """The SQLite (WAL) record of a build: finished runs, features and build sessions.

    ``config`` is a JSON-able dict of everything that determines the numbers (module
    docstring: every key must match an existing ledger's, except ``seeds``); it is required
    to write, and optional read-only (``readonly=True``: checked when given, never stored).

    Raises :class:`LedgerMismatch` for a ledger of another configuration, kind or format,
    :class:`~aquasurf_core.ledgers.LedgerError` for a damaged file, ``FileNotFoundError`` when
    ``readonly`` and there is no file, ``TypeError`` when writing without ``config``.
    ``path``, ``readonly`` and ``timeout`` are those of
    :class:`~aquasurf_core.ledgers.SQLiteLedger`."""

    KIND = "benchmark build ledger"
    TABLES = frozenset({"runs", "features", "sessions"})
    SCHEMA = _SCHEMA
    FORMAT = LEDGER_FORMAT
    FORMATS = {1: "free-text validity reasons", 2: "structured validity reasons"}
    READS_FROM = MIGRATES_FROM = 2

    def __init__(self, path: str | os.PathLike, config: dict | None = None, *,
                 readonly: bool = False, timeout: float = 60.0):
        if config is None and not readonly:
            raise TypeError("a benchmark build ledger opened for writing needs its build "
                            "configuration")
        super().__init__(path, readonly=readonly, timeout=timeout)
        try:
            if config is not None:
                self._check_config(config)
        except BaseException:
            self.close()
            raise
        self.config = config if config is not None else self.meta("config")

    def unversioned_format(self, tables: set[str]) -> int:
        """Format 2 ledgers kept the format in ``meta.ledger_format``; format 1 kept it nowhere
        and is known by its free-text validity column."""
        row = self.db.execute("SELECT value FROM meta WHERE key='ledger_format'").fetchone() \
            if "meta" in tables else None
        if row is not None:
            return self._parse_format(row[0])
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(features)")}
        return LEDGER_FORMAT if "invalid_kind" in columns else 1

    def migrate(self, found: int) -> None:
        """The format moves from ``meta.ledger_format`` to ``meta.format`` (the base writes
        it); the tables are those of format 2 already."""
        self.db.execute("DELETE FROM meta WHERE key='ledger_format'")

    def _check_config(self, wanted: dict) -> None:
        """Store ``wanted`` in a new ledger; in an existing one every key must match except
        ``seeds`` (runs are keyed by function and seed, so seeds can be added later: the
        finished ones are kept and the ledger's config records the latest seed list).
        Read-only, only the check."""
        stored = self.meta("config")
        if stored is not None:
            differ = sorted(k for k in set(stored) | set(wanted)
                            if k != "seeds" and stored.get(k) != wanted.get(k))
            if differ:
                raise LedgerMismatch(
                    self.path, f"a {self.KIND} of another configuration",
                    "; ".join(f"{k}: ledger {stored.get(k)!r}" for k in differ),
                    "; ".join(f"{k}: requested {wanted.get(k)!r}" for k in differ),
                    "Use a new ledger path, or the ledger's configuration")
        if not self.readonly:
            self.set_meta("config", wanted)

    # -- writing: one transaction per finished unit
    def record_runs(self, unit: int, results: Sequence[RunResult]) -> None:
        """The runs of one finished unit (one transaction)."""
        stamp = utc_now()
        rows = [(r.fn_name, r.seed, r.status, *(store_real(getattr(r, f))
                                                for f in RUN_FIELDS[1:7]),
                 r.epochs_completed, store_real(r.runtime_s), unit, stamp) for r in results]
        with self.write():
            self.db.executemany(
                "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)

    def record_features(self, unit: int,
                        features: Sequence[tuple[str, Invalidity | None, np.ndarray, float]]
                        ) -> None:
        """``features``: ``(fn_name, invalidity or None, cdf, seconds)`` per function of one
        finished unit (one transaction)."""
        stamp = utc_now()
        rows = []
        for name, invalid, cdf, seconds in features:
            fields = (None, None, None, None) if invalid is None else (
                invalid.kind.value, invalid.layer, store_real(invalid.value), invalid.detail)
            rows.append((name, int(invalid is None), *fields,
                         np.asarray(cdf, dtype=np.float32).tobytes(), store_real(seconds), unit,
                         stamp))
        with self.write():
            self.db.executemany("INSERT OR REPLACE INTO features VALUES (?,?,?,?,?,?,?,?,?,?)",
                                rows)

    def start_session(self, workers: int) -> int:
        """Record a build session starting now on this host with ``workers`` processes; return
        its id (for :meth:`update_session`)."""
        with self.write():
            cur = self.db.execute("INSERT INTO sessions (started_at, host, workers) VALUES "
                                  "(?, ?, ?)", (utc_now(), platform.node(), workers))
        return int(cur.lastrowid)

    def update_session(self, session: int, seconds: float, units: int) -> None:
        """Set the wall ``seconds`` and the number of finished ``units`` of build session
        ``session`` (totals so far, not increments)."""
        with self.write():
            self.db.execute("UPDATE sessions SET seconds=?, units=? WHERE id=?",
                            (seconds, units, session))

    # -- reading
    def done_runs(self) -> set[tuple[str, int]]:
        """``(fn_name, seed)`` of every recorded run (what a resumed build skips)."""
        return {(n, int(s)) for n, s in self.db.execute("SELECT fn_name, seed FROM runs")}

    def done_features(self) -> set[str]:
        """Names of the functions whose Fisher features are recorded (valid or not)."""
        return {n for (n,) in self.db.execute("SELECT fn_name FROM features")}

    def runs(self) -> pd.DataFrame:
        """Every run, one row per function and seed sorted by both, with the ``runs`` table's
        columns; losses, accuracies and ``runtime_s`` are float64 (NULL read back as NaN)."""
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
        """When each function's features were recorded (ISO-8601 UTC, one per function)."""
        return [t for (t,) in self.db.execute("SELECT finished_at FROM features")]

    def sessions(self) -> pd.DataFrame:
        """The build sessions in order: id, start, host, workers, wall seconds, units done."""
        return pd.read_sql_query("SELECT * FROM sessions ORDER BY id", self.db)

    def summary(self) -> dict:
        """What the ledger holds (:func:`read_summary`)."""
        runs = dict(self.db.execute("SELECT seed, COUNT(*) FROM runs GROUP BY seed").fetchall())
        feats = self.db.execute("SELECT COUNT(*), SUM(valid) FROM features").fetchone()
        seconds = self.db.execute("SELECT COALESCE(SUM(seconds), 0) FROM sessions").fetchone()[0]
        return {"ledger": str(self.path), "config": self.meta("config"), "runs_per_seed": runs,
                "features": feats[0], "valid_features": feats[1] or 0,
                "build_seconds": round(seconds, 1)}


def read_summary(path: str | os.PathLike) -> dict:
    """What the ledger at ``path`` holds -- configuration, runs per seed, features (and how
    many are valid), summed seconds of its build sessions -- read without writing anything
    (``aquasurf bench status``). Raises ``FileNotFoundError`` when there is no ledger, and
    what :class:`Ledger` raises for a file that is not one."""
    with Ledger(path, readonly=True) as ledger:
        return ledger.summary()
