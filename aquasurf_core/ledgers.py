"""The base of the package's SQLite ledgers: how a ledger file is opened, checked, written and
closed.

A *ledger* is an SQLite database that records finished work so that an interrupted run resumes
where it stopped: the benchmark build's (:mod:`aquasurf_core.bench.ledger`), the large-scale
search's (:mod:`aquasurf_core.search.ledger`) and the benchmark search's trials
(:class:`aquasurf_core.search.benchmark_search.TrialLedger`). Each is a subclass of
:class:`SQLiteLedger`, which gives all of them the same guarantees:

* **Connection.** One connection in autocommit mode with a busy ``timeout`` (seconds), the
  journal in WAL mode with ``synchronous=NORMAL``: readers never block the writer, and a
  process killed at any moment (even with ``SIGKILL``) loses at most the transaction it was
  in. Every change is made in one ``BEGIN IMMEDIATE`` transaction (:meth:`SQLiteLedger.write`),
  which takes the write lock at once, so two processes never interleave one change.
* **Kind.** A ledger kind is known by its tables (``TABLES``); a database holding tables, but
  not those, is another kind of file and is refused before anything is written
  (:class:`LedgerMismatch`).
* **Format.** The format version is stored in the file, in the ``meta`` table every ledger has
  (``key = 'format'``, a JSON integer). It is checked on every opening, before anything is
  written: a format newer than this code's ``FORMAT``, or older than it can read, is refused
  with a :class:`LedgerMismatch` naming the file, the format found, the formats expected and
  what to do. An older format this code can read is brought up to ``FORMAT`` when the file is
  opened for writing (``migrate``, in the same transaction that creates the tables, so two
  processes opening it at once migrate it once). A file written before the format was stored
  there gets its format from the kind's ``unversioned_format`` (e.g. *adopted as version 1*).
* **Damage.** A file SQLite cannot read (garbage bytes, a truncated database) is refused with
  a :class:`LedgerError` naming it; the file is left exactly as it was.
* **NaN and infinity.** SQLite has no NaN: a REAL column stores NaN as NULL, and infinities as
  themselves. :func:`store_real` writes a number to a REAL column (NaN and ``None`` as NULL),
  :func:`load_real` reads one back (NULL as NaN).
* **Read-only opening.** ``readonly=True`` opens the file with SQLite's ``mode=ro``: nothing is
  written, not even the tables or the format, and every write raises
  ``sqlite3.OperationalError`` ("attempt to write a readonly database").
* **Closing.** :meth:`SQLiteLedger.close`, or a ``with`` block.

A subclass sets the class attributes ``KIND``, ``TABLES``, ``SCHEMA``, ``FORMAT``, ``FORMATS``
and, where it reads or migrates older formats, ``READS_FROM`` and ``MIGRATES_FROM``; it
overrides :meth:`SQLiteLedger.unversioned_format` and :meth:`SQLiteLedger.migrate` where its
history needs them.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

__all__ = ["LedgerError", "LedgerMismatch", "SQLiteLedger", "load_real", "store_real"]

#: The table every ledger has: ``key`` -> JSON ``value`` (the format, configurations, ...).
_META_TABLE = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


class LedgerError(ValueError):
    """A file that cannot be used as the ledger asked for. The message names the file
    (``path``), the ``problem`` and the ``remedy`` (what to do)."""

    def __init__(self, path: str | os.PathLike, problem: str, remedy: str):
        self.path, self.problem, self.remedy = Path(path), problem, remedy
        super().__init__(f"{path}: {problem}. {remedy}")

    def __reduce__(self):  # picklable (a worker's error travels to its driver)
        return type(self), (self.path, self.problem, self.remedy)


class LedgerMismatch(LedgerError):
    """A ledger file of another kind, format or configuration than the one asked for: the
    message names the file (``path``), ``what`` is wrong, what was ``found``, what was
    ``expected`` and the ``remedy``."""

    def __init__(self, path: str | os.PathLike, what: str, found: str, expected: str,
                 remedy: str):
        self.what, self.found, self.expected = what, found, expected
        super().__init__(path, f"{what}: found {found}, expected {expected}", remedy)

    def __reduce__(self):
        return type(self), (self.path, self.what, self.found, self.expected, self.remedy)


def store_real(value) -> float | None:
    """A number as a REAL column stores it: ``None`` and NaN as ``None`` (NULL), anything else
    (infinities included) as a ``float``.

    >>> store_real(float("nan")) is None, store_real(2), store_real(float("-inf"))
    (True, 2.0, -inf)

    Raises ``TypeError`` for a value that is not a real number (a string, say)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{value!r} is not a real number")
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{value!r} is not a real number") from err
    return None if math.isnan(number) else number


def load_real(value: float | None) -> float:
    """A REAL column's value as a ``float``: NULL (``None``) as NaN.

    >>> load_real(None), load_real(0.5)
    (nan, 0.5)
    """
    return math.nan if value is None else float(value)


class SQLiteLedger:
    """The ledger at ``path`` (module docstring): created when missing, unless ``readonly``;
    ``timeout`` is how many seconds a statement waits for another process's lock.

    Attributes: ``path``, ``readonly``, ``db`` (the ``sqlite3`` connection), ``format`` (the
    file's format: ``FORMAT`` once opened for writing, the stored one when read-only).

    Raises ``FileNotFoundError`` (``readonly`` and no file), :class:`LedgerMismatch` (another
    kind of database, or a format this code cannot read), :class:`LedgerError` (a directory, a
    file SQLite cannot read)."""

    #: What the ledger is called in messages ("search ledger").
    KIND: ClassVar[str] = "ledger"
    #: The tables by which a file is known to be this kind of ledger (besides ``meta``).
    TABLES: ClassVar[frozenset[str]] = frozenset()
    #: The statements that create the tables and indexes (``IF NOT EXISTS``), run when the file
    #: is opened for writing (the ``meta`` table is the base's).
    SCHEMA: ClassVar[tuple[str, ...]] = ()
    #: The format this code writes, and what each format is (``{version: description}``).
    FORMAT: ClassVar[int] = 1
    FORMATS: ClassVar[dict[int, str]] = {1: "the first format"}
    #: The oldest format read (read-only, as it is), and the oldest brought up to ``FORMAT``
    #: when opened for writing.
    READS_FROM: ClassVar[int] = 1
    MIGRATES_FROM: ClassVar[int] = 1
    #: Whether the connection may be used from other threads than the one that opened it.
    SHARED_BETWEEN_THREADS: ClassVar[bool] = False

    def __init__(self, path: str | os.PathLike, *, readonly: bool = False,
                 timeout: float = 60.0):
        self.path = Path(path)
        self.readonly = readonly
        if self.path.is_dir():
            raise LedgerError(self.path, f"is a directory, not a {self.KIND}",
                              f"Give the path of a {self.KIND} file")
        if readonly:
            if not self.path.is_file():
                raise FileNotFoundError(f"no {self.KIND} at {self.path}")
            self.db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                      timeout=timeout, isolation_level=None,
                                      check_same_thread=not self.SHARED_BETWEEN_THREADS)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None,
                                      check_same_thread=not self.SHARED_BETWEEN_THREADS)
        try:
            self._open()
        except sqlite3.DatabaseError as err:
            self.db.close()
            raise LedgerError(self.path, f"not a usable {self.KIND} ({err})",
                              "The file is damaged or not an SQLite database; it was left as "
                              "it is. Give another path, or restore the file") from err
        except BaseException:
            self.db.close()
            raise

    # ---------------------------------------------------------------- opening
    def _open(self) -> None:
        found, stored = self._check(self._tables())  # refused here before anything is written
        if not self.readonly:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            with self.write():  # checked again under the lock: another process may have
                found, stored = self._check(self._tables())  # created or migrated it
                for statement in (_META_TABLE, *self.SCHEMA):
                    self.db.execute(statement)
                if not stored or found != self.FORMAT:
                    if found is not None:
                        self.migrate(found)
                    self.db.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)",
                                    (json.dumps(self.FORMAT),))
            found = self.FORMAT
        self.format = found
        self._has_meta = not self.readonly or "meta" in self._tables()

    def _tables(self) -> set[str]:
        return {name for (name,) in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}

    def _check(self, tables: set[str]) -> tuple[int | None, bool]:
        """``(format, stored)`` of the file: its format (``None`` for a new, empty file) and
        whether the format is stored in it; raises :class:`LedgerMismatch` for another kind
        of database or a format this code does not read (writing: migrate)."""
        if (tables or self.readonly) and not self.TABLES <= tables:
            raise LedgerMismatch(
                self.path, f"not a {self.KIND}",
                f"tables {', '.join(sorted(tables)) or 'none'}",
                f"tables {', '.join(sorted(self.TABLES))}",
                f"Give the path of a {self.KIND}, or a path where none exists yet to start "
                "a new one")
        if not tables:
            return None, False
        found, stored = None, False
        if "meta" in tables:
            row = self.db.execute("SELECT value FROM meta WHERE key='format'").fetchone()
            if row is not None:
                found, stored = self._parse_format(row[0]), True
        if found is None:
            found = self.unversioned_format(tables)
        oldest = self.READS_FROM if self.readonly else self.MIGRATES_FROM
        if not oldest <= found <= self.FORMAT:
            described = f" ({self.FORMATS[found]})" if found in self.FORMATS else ""
            expected = (f"format {self.FORMAT}" if oldest == self.FORMAT else
                        f"formats {oldest} to {self.FORMAT}")
            remedy = ("It was written by a newer version of aquasurf-core: open it with that "
                      "version, or use a new ledger path" if found > self.FORMAT else
                      "It was written by an older version of aquasurf-core that this one "
                      "cannot convert: use a new ledger path (the old file is kept as it is)")
            raise LedgerMismatch(self.path, f"a {self.KIND} of another format",
                                 f"format {found}{described}",
                                 f"{expected}{' (read-only)' if self.readonly else ''}",
                                 remedy)
        return found, stored

    def _parse_format(self, text: str) -> int:
        try:
            found = json.loads(text)
        except ValueError:
            found = None
        if isinstance(found, bool) or not isinstance(found, int):
            raise LedgerMismatch(self.path, f"a {self.KIND} with an unreadable format",
                                 f"format {text!r}", f"an integer format up to {self.FORMAT}",
                                 "The file was changed by hand or by another program: use a "
                                 "new ledger path")
        return found

    def unversioned_format(self, tables: set[str]) -> int:
        """The format of a file of this kind with no format stored in it (written before the
        format was stored, or by an older convention); the base adopts it as version 1."""
        return 1

    def migrate(self, found: int) -> None:
        """Bring a file of format ``found`` (or an unversioned one, adopted as ``found``) up to
        ``FORMAT``, inside the write transaction that opens it; must be idempotent. The base
        has nothing to do."""

    # ---------------------------------------------------------------- writing and meta
    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the database lock at once (``BEGIN IMMEDIATE``):
        committed when the block ends, rolled back when it raises."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:  # (SQLite may have rolled it back already)
                self.db.execute("ROLLBACK")
            raise

    def set_meta(self, key: str, value: object) -> None:
        """Store the JSON-able ``value`` under ``key`` in the ``meta`` table."""
        with self.write():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def meta(self, key: str, default=None):
        """The value stored under ``key`` in the ``meta`` table, or ``default``."""
        if not self._has_meta:  # an old file, read-only, written before it had one
            return default
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    # ---------------------------------------------------------------- closing
    def close(self) -> None:
        """Close the connection (the file stays as the last committed transaction left it)."""
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
