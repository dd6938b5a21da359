"""The ledger of a large-scale search: every unique function of the space, what has been done
with it, and every result -- one SQLite database in WAL mode, owned by the search's driver.

Tables
------
``functions``: one row per unique function (equivalence class of the space): ``class_id``,
``name`` (the class's representative), ``rank`` (its place in the seeded random order in which
functions get Fisher features), ``status``, the ``owner`` and time of the current claim, and the
FIM features once computed (``valid``, the structured invalidity as JSON, the CDF as float32
bytes, seconds, worker) -- or, when computing them raised, the error (``feature_error``, e.g.
``"RuntimeError: CUDA out of memory"``; no CDF, not valid): that function has its features
stage behind it and is never computed again. Statuses::

    new --claim_features--> featuring --record_features--> features (or a feature error)
    new | features --claim_evaluation--> queued --start--> running --record_result--> done
                                                                   --record_failure--> failed

``results``: one row per (class, seed): the reported metrics (JSON), validation accuracy,
seconds, worker, library versions, time, and who proposed the evaluation (``proposer``:
``"baseline"``, ``"surrogate"`` or ``"random"``, with ``proposer_reason``; NULL for runs of
ledgers older than format 2 and for comparisons); the primary key makes recording a function
twice impossible. ``meta``: the task, the space, the configuration, the sessions, the format.

Formats. Format 2 added ``functions.feature_error`` and ``results.proposer`` /
``proposer_reason``; a format 1 ledger (or one with no format stored, adopted as format 1)
opened for writing gains them (one transaction, existing rows untouched: NULL), and one opened
read-only is read as if they were NULL. Opening, format checks, the write transactions and NaN
handling are those of every ledger (:mod:`aquasurf_core.ledgers`).

Claims
------
Claiming takes rows by status in one ``BEGIN IMMEDIATE`` transaction, so two claimants -- threads
or processes -- never get the same function; a class is one row, so claiming it claims every
name of the class. Each claim records its ``owner`` (a session id) and is a *lease*: the owner
renews it (:meth:`SearchLedger.heartbeat`) while it lives, and another session may take it back
(:meth:`SearchLedger.release`) only once it has not been renewed for ``stale_after`` seconds --
whatever a process that is gone left ``featuring`` goes back to ``new``, and
``queued``/``running`` back to ``features`` (or ``new``), so nothing stays claimed by a dead
process, and a live driver's claims are never taken from it. A session gives back its own claims
with :meth:`SearchLedger.release_own`. The evaluation budget is counted in the ledger, in the
claim's own transaction (``budget`` of :meth:`SearchLedger.claim_evaluation`), so two drivers on
one ledger together never exceed it. Finished results are never touched.

Opening with ``readonly=True`` (``mode=ro``) never writes, not even the schema; a file that is a
SQLite database of another kind (a benchmark ledger, say), or of a newer format, is refused
before anything is written.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from aquasurf_core.ledgers import SQLiteLedger, load_real, store_real

if TYPE_CHECKING:  # the ledger itself stays light to import (no torch)
    from aquasurf_core.features.fim import Invalidity

__all__ = ["LEASE_SECONDS", "STATUSES", "SearchLedger"]

#: How long a claim lives without a heartbeat before another session may release it.
LEASE_SECONDS = 30.0

STATUSES = ("new", "featuring", "features", "queued", "running", "done", "failed")
LEDGER_FORMAT = 2
#: The columns each format added: (table, column, SQL type); older ledgers gain them.
_ADDED = (("functions", "feature_error", "TEXT"), ("results", "proposer", "TEXT"),
          ("results", "proposer_reason", "TEXT"))
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS functions (
    class_id INTEGER PRIMARY KEY, name TEXT NOT NULL, rank INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'new', owner TEXT, claimed_at REAL,
    valid INTEGER, invalid TEXT, cdf BLOB, feature_seconds REAL, feature_worker TEXT,
    featured_at REAL, feature_error TEXT)""",
    "CREATE INDEX IF NOT EXISTS functions_status_rank ON functions (status, rank)",
    """CREATE TABLE IF NOT EXISTS results (
    class_id INTEGER NOT NULL, seed INTEGER NOT NULL, name TEXT NOT NULL, val_acc REAL,
    metrics TEXT NOT NULL, seconds REAL, worker TEXT, versions TEXT, finished_at REAL NOT NULL,
    session TEXT, proposer TEXT, proposer_reason TEXT, PRIMARY KEY (class_id, seed))""",
)


class SearchLedger(SQLiteLedger):
    """The ledger at ``path`` (created when missing; read as it is with ``readonly=True``), a
    :class:`~aquasurf_core.ledgers.SQLiteLedger`. Methods that change it are single
    transactions; see the module docstring for statuses and claims.

    Raises ``FileNotFoundError`` (``readonly`` and no file),
    :class:`~aquasurf_core.ledgers.LedgerMismatch` (another kind of database, a newer format)
    and :class:`~aquasurf_core.ledgers.LedgerError` (a directory, a damaged file): both are
    ``ValueError``."""

    KIND = "search ledger"
    TABLES = frozenset({"functions", "results"})
    SCHEMA = _SCHEMA
    FORMAT = LEDGER_FORMAT
    FORMATS = {1: "no feature errors, no proposers", 2: "feature errors and proposers"}
    READS_FROM = MIGRATES_FROM = 1
    SHARED_BETWEEN_THREADS = True

    def __init__(self, path: str | os.PathLike, *, timeout: float = 60.0,
                 readonly: bool = False):
        super().__init__(path, readonly=readonly, timeout=timeout)
        self.columns = self._columns()

    def _columns(self) -> set[str]:
        """``table.column`` of every column the file has."""
        return {f"{table}.{row[1]}" for table in ("functions", "results")
                for row in self.db.execute(f"PRAGMA table_info({table})")}

    def migrate(self, found: int) -> None:
        """Bring an older ledger to :data:`LEDGER_FORMAT` (module docstring): the columns it
        lacks are added (in the opening's write transaction: two drivers opening it at once
        add each column once)."""
        have = self._columns()
        for table, column, kind in _ADDED:
            if f"{table}.{column}" not in have:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def _column(self, name: str) -> str:
        """``name`` (``table.column``) for a query, or NULL when an old read-only file lacks
        it."""
        return name.split(".")[1] if name in self.columns else "NULL"

    # ---------------------------------------------------------------- functions
    def add_functions(self, names: Sequence[str], seed: int, first: Sequence[int] = ()) -> None:
        """Fill an empty ledger with the space's unique functions (``class_id`` = index in
        ``names``) in a random feature order drawn with ``seed``, the class ids ``first`` (the
        baselines) ahead of all others. Refuses a ledger that already holds another list."""
        rank = np.random.default_rng(seed).permutation(len(names))
        for position, class_id in enumerate(first):
            rank[int(class_id)] = position - len(first)
        with self.write():  # counted and filled in one transaction: two drivers may start
            count = self.count()
            if count:
                if count != len(names) or self.name_of(0) != names[0] or \
                        self.name_of(len(names) - 1) != names[-1]:
                    raise ValueError(f"{self.path} holds another space ({count} functions, "
                                     f"requested {len(names)})")
                return
            self.db.executemany("INSERT INTO functions (class_id, name, rank) VALUES (?,?,?)",
                                ((i, str(n), int(r)) for i, (n, r) in enumerate(zip(
                                    names, rank, strict=True))))

    def count(self, status: str | None = None) -> int:
        """Number of functions (equivalence classes) in the ledger, or of those whose status
        is ``status`` (one of :data:`STATUSES`)."""
        if status is None:
            return int(self.db.execute("SELECT COUNT(*) FROM functions").fetchone()[0])
        return int(self.db.execute("SELECT COUNT(*) FROM functions WHERE status=?",
                                   (status,)).fetchone()[0])

    def counts(self) -> dict[str, int]:
        """``{status: number of functions}`` for every status of :data:`STATUSES` (0 when
        none has it), in that order."""
        found = dict(self.db.execute("SELECT status, COUNT(*) FROM functions GROUP BY status"))
        return {s: int(found.get(s, 0)) for s in STATUSES}

    def name_of(self, class_id: int) -> str:
        """The representative name of class ``class_id``; ``KeyError`` when there is none."""
        row = self.db.execute("SELECT name FROM functions WHERE class_id=?",
                              (int(class_id),)).fetchone()
        if row is None:
            raise KeyError(f"no function with class id {class_id}")
        return row[0]

    def status_of(self, class_id: int) -> str:
        """The current status (:data:`STATUSES`) of class ``class_id``, which must exist."""
        return self.db.execute("SELECT status FROM functions WHERE class_id=?",
                               (int(class_id),)).fetchone()[0]

    # ---------------------------------------------------------------- claims
    def claim_features(self, n: int, owner: str) -> list[tuple[int, str]]:
        """Up to ``n`` ``new`` functions, lowest rank first, now ``featuring`` by ``owner``."""
        with self.write():
            rows = self.db.execute("SELECT class_id, name FROM functions WHERE status='new' "
                                   "ORDER BY rank LIMIT ?", (int(n),)).fetchall()
            self.db.executemany("UPDATE functions SET status='featuring', owner=?, "
                                "claimed_at=? WHERE class_id=?",
                                ((owner, time.time(), c) for c, _ in rows))
        return [(int(c), n) for c, n in rows]

    def claim_evaluation(self, class_ids: Iterable[int], owner: str, *,
                         budget: int | None = None, exclude: Iterable[int] = ()) -> list[int]:
        """The given functions that are free (``new`` or ``features``), now ``queued`` by
        ``owner``; the others (claimed, evaluated) are left alone and not returned.

        With ``budget``, a function not in ``exclude`` (the baselines) is claimed only while
        fewer than ``budget`` functions outside ``exclude`` are queued, running, done or
        failed, counted in the same transaction, so concurrent drivers share one budget."""
        claimed = []
        exclude = {int(c) for c in exclude}
        with self.write():
            spent = None if budget is None else self.spent(exclude)
            for c in class_ids:
                counted = spent is not None and int(c) not in exclude
                if counted and spent >= budget:
                    continue
                cur = self.db.execute("UPDATE functions SET status='queued', owner=?, "
                                      "claimed_at=? WHERE class_id=? AND status IN "
                                      "('new', 'features')", (owner, time.time(), int(c)))
                if cur.rowcount:
                    claimed.append(int(c))
                    spent = spent + 1 if counted else spent
        return claimed

    def spent(self, exclude: Iterable[int] = ()) -> int:
        """How many functions not in ``exclude`` are queued, running, done or failed (what an
        evaluation budget counts)."""
        exclude = sorted({int(c) for c in exclude})
        marks = ",".join("?" * len(exclude))
        return int(self.db.execute(
            "SELECT COUNT(*) FROM functions WHERE status IN ('queued', 'running', 'done', "
            "'failed')" + (f" AND class_id NOT IN ({marks})" if exclude else ""),
            exclude).fetchone()[0])

    def heartbeat(self, owner: str) -> int:
        """Renew every claim of ``owner`` (module docstring); returns how many it holds."""
        with self.write():
            return int(self.db.execute(
                "UPDATE functions SET claimed_at=? WHERE owner=? AND status IN ('featuring', "
                "'queued', 'running')", (time.time(), owner)).rowcount)

    def claims_of_others(self, owner: str) -> int:
        """How many functions other sessions hold claimed (live or not yet expired)."""
        return int(self.db.execute(
            "SELECT COUNT(*) FROM functions WHERE status IN ('featuring', 'queued', 'running') "
            "AND owner IS NOT ?", (owner,)).fetchone()[0])

    def start(self, class_id: int, owner: str) -> None:
        """A queued function's evaluation started."""
        with self.write():
            self.db.execute("UPDATE functions SET status='running' WHERE class_id=? AND "
                            "status='queued' AND owner=?", (int(class_id), owner))

    def release(self, keep_owner: str | None = None, *,
                stale_after: float = LEASE_SECONDS) -> int:
        """Give back every claim not held by ``keep_owner`` whose lease was last renewed more
        than ``stale_after`` seconds ago (module docstring; ``0`` takes every other claim);
        returns how many functions were released."""
        cutoff = time.time() - stale_after
        where = "(owner IS NOT ? OR ? IS NULL) AND (claimed_at IS NULL OR claimed_at <= ?)"
        args = (keep_owner, keep_owner, cutoff)
        return self._release(where, args)

    def release_own(self, owner: str) -> int:
        """Give back every claim of ``owner`` (a driver that stops); returns how many."""
        return self._release("owner = ?", (owner,))

    def _release(self, where: str, args: tuple) -> int:
        with self.write():
            a = self.db.execute("UPDATE functions SET status='new', owner=NULL, claimed_at=NULL "
                                f"WHERE status='featuring' AND {where}", args).rowcount
            b = self.db.execute("UPDATE functions SET status=CASE WHEN featured_at IS NULL "
                                "THEN 'new' ELSE 'features' END, owner=NULL, claimed_at=NULL "
                                "WHERE status "
                                f"IN ('queued', 'running') AND {where}", args).rowcount
        return int(a + b)

    # ---------------------------------------------------------------- recording
    def record_features(self, features: Sequence[tuple[int, Invalidity | None, np.ndarray,
                                                       float]], worker: str = "",
                        errors: Sequence[tuple[int, str, float]] = ()) -> None:
        """Fisher features of claimed functions: ``(class_id, invalidity or None, cdf,
        seconds)``, and, in the same transaction, the functions whose computation raised:
        ``(class_id, error message, seconds)`` (module docstring). A function being evaluated
        keeps its status."""
        with self.write():
            for class_id, error, seconds in errors:
                self.db.execute(
                    "UPDATE functions SET valid=0, invalid=NULL, cdf=NULL, feature_error=?, "
                    "feature_seconds=?, feature_worker=?, featured_at=?, "
                    "status=CASE WHEN status='featuring' THEN 'features' "
                    "ELSE status END, owner=CASE WHEN status='featuring' THEN NULL ELSE owner "
                    "END WHERE class_id=?",
                    (str(error), store_real(seconds), worker, time.time(), int(class_id)))
            for class_id, invalid, cdf, seconds in features:
                self.db.execute(
                    "UPDATE functions SET valid=?, invalid=?, cdf=?, feature_seconds=?, "
                    "feature_worker=?, featured_at=?, "
                    "status=CASE WHEN status='featuring' THEN 'features' "
                    "ELSE status END, owner=CASE WHEN status='featuring' THEN NULL ELSE owner "
                    "END WHERE class_id=?",
                    (int(invalid is None), None if invalid is None else
                     json.dumps(invalid.to_dict()), np.asarray(cdf, np.float32).tobytes(),
                     store_real(seconds), worker, time.time(), int(class_id)))

    def record_result(self, class_id: int, seed: int, metrics: dict, *, seconds: float,
                      worker: str = "", versions: dict | None = None,
                      session: str = "", proposer: str | None = None,
                      proposer_reason: str | None = None) -> bool:
        """The result of one evaluation, with who proposed it (module docstring); ``done`` (or
        ``failed`` when ``metrics["status"]`` is ``"failed"``). Returns False, recording
        nothing, when that (function, seed) already has a result."""
        status = "failed" if metrics.get("status") == "failed" else "done"
        with self.write():
            cur = self.db.execute(
                "INSERT OR IGNORE INTO results (class_id, seed, name, val_acc, metrics, seconds, "
                "worker, versions, finished_at, session, proposer, proposer_reason) VALUES "
                "(?,?,?,?,?,?,?,?,?,?,?,?)",
                (int(class_id), int(seed), self.name_of(class_id),
                 store_real(metrics.get("val_acc")), json.dumps(metrics, default=float),
                 store_real(seconds), worker, json.dumps(versions or {}), time.time(), session,
                 proposer, proposer_reason))
            if cur.rowcount:
                self.db.execute("UPDATE functions SET status=?, owner=NULL WHERE class_id=?",
                                (status, int(class_id)))
        return bool(cur.rowcount)

    # ---------------------------------------------------------------- reading
    def feature_counts(self) -> tuple[int, int]:
        """``(functions with features, of which valid)``."""
        n, valid = self.db.execute("SELECT COUNT(*), COALESCE(SUM(valid), 0) FROM functions "
                                   "WHERE cdf IS NOT NULL").fetchone()
        return int(n), int(valid)

    def feature_times(self) -> np.ndarray:
        """When each function with features got them (seconds since the epoch), sorted."""
        return np.array(sorted(t for (t,) in self.db.execute(
            "SELECT featured_at FROM functions WHERE featured_at IS NOT NULL")), dtype=float)

    def featured(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(class_ids, valid, cdf)`` of every function with features (cdf float32 rows)."""
        rows = self.db.execute("SELECT class_id, valid, cdf FROM functions WHERE cdf IS NOT "
                               "NULL ORDER BY class_id").fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, bool), np.zeros((0, 0), np.float32)
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        valid = np.array([bool(r[1]) for r in rows])
        cdf = np.stack([np.frombuffer(r[2], dtype=np.float32) for r in rows])
        return ids, valid, cdf

    def feature_errors(self) -> list[dict]:
        """``{"class_id", "name", "error"}`` of every function whose features raised, by class
        id."""
        if "functions.feature_error" not in self.columns:
            return []
        return [{"class_id": int(c), "name": n, "error": e} for c, n, e in self.db.execute(
            "SELECT class_id, name, feature_error FROM functions WHERE feature_error IS NOT "
            "NULL ORDER BY class_id")]

    def invalid_kinds(self) -> dict[str, int]:
        """How many featured functions have each kind of invalid spectrum (the
        :class:`~aquasurf_core.features.fim.InvalidKind` label), most frequent first."""
        counts: dict[str, int] = {}
        for (text,) in self.db.execute("SELECT invalid FROM functions WHERE invalid IS NOT "
                                       "NULL"):
            kind = str(json.loads(text).get("kind"))
            counts[kind] = counts.get(kind, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: -item[1]))

    def count_results(self) -> int:
        """How many results the ledger holds, every seed counted."""
        return int(self.db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def results(self, seed: int | None = 0) -> list[dict]:
        """Every result (of ``seed``; all seeds with ``None``), in the order recorded."""
        query = "SELECT class_id, seed, name, val_acc, metrics, seconds, worker, finished_at, " \
                f"{self._column('results.proposer')}, " \
                f"{self._column('results.proposer_reason')} FROM results" + \
                ("" if seed is None else " WHERE seed=?") + " ORDER BY finished_at, class_id"
        args = () if seed is None else (int(seed),)
        out = []
        for c, s, name, val, metrics, seconds, worker, finished, by, why in self.db.execute(
                query, args):
            out.append({"class_id": int(c), "seed": int(s), "name": name,
                        "val_acc": load_real(val),
                        "metrics": json.loads(metrics), "seconds": seconds, "worker": worker,
                        "finished_at": finished, "proposer": by, "proposer_reason": why})
        return out

