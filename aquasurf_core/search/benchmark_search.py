"""Searching the benchmarks, many times over (paper Section 5, Figure 6).

On a benchmark every function has already been trained, so evaluating one is a table look-up
and a search can be repeated many times: :func:`run_trial` runs one search of ``budget``
evaluations with one surrogate on one embedding (:class:`SearchProblem`), starting, as the
paper does, from ReLU and seven random functions -- the same seven for every method of a trial
(the trial number seeds the :class:`~aquasurf_core.search.searcher.Searcher`), so methods are
compared on common random numbers.

:func:`run_experiment` runs every (benchmark, feature, method, trial) on dask.distributed -- a
``LocalCluster`` of single-threaded workers by default, or an existing cluster at
``scheduler_address`` (the problems are sent to the workers once, so no shared file system is
needed) -- with a progress bar. Every finished trial is written at once to an SQLite ledger
(WAL) under ``out_dir``, so an interrupted run, restarted, skips the finished trials (as long
as the problem's data is the same: :meth:`SearchProblem.fingerprint`; trials of changed data are
discarded, with a message); the tidy
result table (one row per evaluation: benchmark, feature, method, trial, step, function,
val_acc, test_acc, best_val_so_far, test_acc_of_best) is written to
``out_dir/results.parquet`` at the end.

Embedding realisations: a UMAP layout depends on its seed (and on the machine), so one layout
measures only start-to-start noise. A problem may carry several realisations
(:func:`problem_from` given one embedding per UMAP seed); trial ``t`` then searches realisation
``t mod R`` (:meth:`SearchProblem.coords_for`), so the spread over trials includes the
embedding's. Every method of a trial still sees the same realisation and the same start.

Methods are surrogate names (:data:`~aquasurf_core.search.surrogates.SURROGATES`), optionally
with options in brackets, e.g. ``"lgp-ucb(kappa=2,length=0.1)"`` (:func:`parse_method`), and
optionally searching in batches, as ``q`` parallel workers would: ``"lgp-ucb(kappa=2)+batch=4"``
asks four functions at a time with the believer (running functions count at their predicted
accuracy, :mod:`aquasurf_core.search.searcher`), ``"...+batch=4,independent"`` takes the four
best scores of one fit; each batch is told before the next is asked.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd

from aquasurf_core.bench.table import Benchmark
from aquasurf_core.embedding.embeddings import Embedding
from aquasurf_core.ledgers import SQLiteLedger, store_real
from aquasurf_core.search.cluster import dask_client
from aquasurf_core.search.searcher import Searcher
from aquasurf_core.search.surrogates import get_surrogate
from aquasurf_core.storage import atomic_write_bytes

__all__ = ["RESULT_COLUMNS", "SearchProblem", "TrialLedger", "parse_batch", "parse_method",
           "problem_from", "raw_problem_from", "run_experiment", "run_trial"]

RESULT_COLUMNS = ("benchmark", "feature", "method", "trial", "step", "function", "val_acc",
                  "test_acc", "best_val_so_far", "test_acc_of_best")


@dataclass(frozen=True)
class SearchProblem:
    """What one search needs: the benchmark's functions and accuracies, and one embedding.

    ``coords`` is ``[N, d]`` with NaN rows for functions that are not embedded (invalid
    spectra; ``valid`` is False there); ``first`` is the name ReLU has in this benchmark.
    ``distances`` (``[N, N]``, optional) replaces the coordinates for KNR: the raw features'
    distances (:func:`raw_problem_from`). ``realisations`` (``[R, N, d]``, optional) holds
    several embeddings' coordinates (one per UMAP seed; ``coords`` is the first): trial ``t``
    searches ``realisations[t % R]``."""

    benchmark: str
    feature: str
    names: tuple[str, ...]
    val_acc: np.ndarray
    test_acc: np.ndarray
    coords: np.ndarray
    valid: np.ndarray
    first: str
    distances: np.ndarray | None = None
    realisations: np.ndarray | None = None

    def coords_for(self, trial: int) -> np.ndarray:
        """The coordinates trial ``trial`` searches (module docstring)."""
        if self.realisations is None:
            return self.coords
        return self.realisations[int(trial) % len(self.realisations)]

    def __post_init__(self) -> None:
        n = len(self.names)
        for name in ("val_acc", "test_acc", "valid"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries, expected {n}")
        if self.coords.shape[0] != n:
            raise ValueError(f"coords have {self.coords.shape[0]} rows, expected {n}")
        if self.distances is not None and self.distances.shape != (n, n):
            raise ValueError(f"distances have shape {self.distances.shape}, expected ({n}, {n})")
        if self.realisations is not None and (self.realisations.ndim != 3 or
                                              self.realisations.shape[1:] != self.coords.shape):
            raise ValueError(f"realisations have shape {self.realisations.shape}, expected "
                             f"(R, {n}, {self.coords.shape[1]})")
        if self.first not in self.names:
            raise ValueError(f"the first function {self.first!r} is not a name of the benchmark")

    def fingerprint(self) -> str:
        """SHA-256 of everything a trial's result depends on (names, accuracies, coordinates
        or distances, validity, the first function): the trial ledger keeps finished trials
        only while this stays the same."""
        import hashlib

        digest = hashlib.sha256("\n".join((*self.names, self.first)).encode())
        for array in (self.val_acc, self.test_acc, self.coords, self.valid, self.distances,
                      self.realisations):
            if array is not None:
                a = np.ascontiguousarray(array)
                digest.update(f"{a.dtype}{a.shape}".encode())
                digest.update(a.tobytes())
        return digest.hexdigest()


def _problem(benchmark: Benchmark, feature: str, rows: np.ndarray, coords: np.ndarray,
             first: str, chance: float, distances: np.ndarray | None = None,
             more: Sequence[np.ndarray] = ()) -> SearchProblem:
    located, _ = benchmark.locate([first])
    if located[0] < 0:
        raise ValueError(f"{first!r} is not in benchmark {benchmark.name!r}")
    n = len(benchmark)
    layouts = np.full((1 + len(more), n, coords.shape[1]), np.nan)
    for i, layout in enumerate((coords, *more)):
        layouts[i][rows] = layout
    full = layouts[0]
    valid = np.zeros(n, dtype=bool)
    valid[rows] = True
    table = benchmark.table
    val = np.nan_to_num(table["val_acc"].to_numpy(dtype=float), nan=chance)
    test = np.nan_to_num(table["test_acc"].to_numpy(dtype=float), nan=chance)
    return SearchProblem(benchmark.name, feature, tuple(table["fn_name"]), val, test, full,
                         valid, str(table["fn_name"].iloc[located[0]]), distances,
                         layouts if more else None)


def problem_from(benchmark: Benchmark, embedding: Embedding | Sequence[Embedding],
                 first: str = "relu(x)", chance: float = 0.1) -> SearchProblem:
    """The :class:`SearchProblem` of ``benchmark`` searched on ``embedding``, or on several
    realisations of one embedding (a sequence of the same kind, rows and dimension, e.g. one
    per UMAP seed: trial ``t`` searches the ``t mod R``-th). ``first`` (ReLU) is located by
    name or outputs; a function whose accuracy is NaN (a failed run) counts at ``chance``.
    Raises ``ValueError`` when ``first`` is not in the benchmark or the realisations differ in
    kind, rows or dimension."""
    embeddings = [embedding] if isinstance(embedding, Embedding) else list(embedding)
    if not embeddings:
        raise ValueError("problem_from needs at least one embedding")
    head = embeddings[0]
    for other in embeddings[1:]:
        if other.kind != head.kind or other.dim != head.dim or \
                not np.array_equal(other.rows, head.rows):
            raise ValueError("the realisations of a problem must share kind, rows and "
                             f"dimension; got {head.kind}/{head.dim}-D and "
                             f"{other.kind}/{other.dim}-D")
    return _problem(benchmark, head.kind, head.rows, head.coords, first, chance,
                    more=[e.coords for e in embeddings[1:]])


def raw_problem_from(benchmark: Benchmark, feature: str, first: str = "relu(x)",
                     chance: float = 0.1) -> SearchProblem:
    """A :class:`SearchProblem` on the raw features with the paper's distances instead of an
    embedding (searched by KNR): Eq. 2 (``"fim"``), Eq. 3 (``"outputs"``) or their
    median-scaled sum (``"both"``), between the functions with valid spectra
    (:func:`~aquasurf_core.embedding.distances.raw_distance_matrices`; the other rows are
    never read and hold 0). The feature is labelled ``"<feature> (raw)"``."""
    from aquasurf_core.embedding.distances import raw_distance_matrices

    rows, matrices = raw_distance_matrices(benchmark)
    if feature not in matrices:
        raise ValueError(f"unknown feature {feature!r}; choose fim, outputs or both")
    distances = np.zeros((len(benchmark), len(benchmark)), dtype=np.float32)
    distances[np.ix_(rows, rows)] = matrices[feature]
    return _problem(benchmark, f"{feature} (raw)", rows, np.zeros((len(rows), 1)), first,
                    chance, distances)


def parse_method(method: str) -> tuple[str, dict[str, float]]:
    """``(surrogate, options)`` of a method name: ``"knr"``, or ``"lgp-ucb(kappa=2,length=0.1)"``
    (options of :data:`~aquasurf_core.search.surrogates.OPTIONS`, numbers). Raises
    ``ValueError`` for a malformed name or an option the surrogate does not take."""
    name, _, rest = method.partition("(")
    options: dict[str, float] = {}
    if rest:
        if not rest.endswith(")"):
            raise ValueError(f"malformed method {method!r}: expected name(option=value,...)")
        for part in filter(None, rest[:-1].split(",")):
            key, eq, value = part.partition("=")
            try:
                options[key.strip()] = float(value)
            except ValueError:
                eq = ""
            if not eq:
                raise ValueError(f"malformed option {part!r} in method {method!r}") from None
    entry = get_surrogate(name)  # ValueError naming the known ones
    unknown = set(options) - set(entry.options)
    if unknown:
        raise ValueError(f"method {method!r}: {name!r} takes no option(s) {sorted(unknown)}")
    return name, options


def parse_batch(method: str) -> tuple[str, int, str]:
    """``(method, batch size, policy)`` of a method name with an optional batch suffix
    (module docstring): ``"knr+batch=4"`` is ``("knr", 4, "believer")``,
    ``"knr+batch=4,independent"`` ``("knr", 4, "independent")``, ``"knr"`` ``("knr", 1,
    "believer")``. Raises ``ValueError`` for a malformed suffix."""
    from aquasurf_core.search.searcher import BATCH_POLICIES

    base, sep, suffix = method.partition("+batch=")
    if not sep:
        return method, 1, "believer"
    size, _, policy = suffix.partition(",")
    policy = policy or "believer"
    if not size.isdigit() or int(size) < 1 or policy not in BATCH_POLICIES:
        raise ValueError(f"malformed batch in method {method!r}: expected +batch=<size>[,"
                         f"{'|'.join(BATCH_POLICIES)}]")
    return base, int(size), policy


def run_trial(problem: SearchProblem, method: str, trial: int, budget: int = 100,
              k: int = 3) -> pd.DataFrame:
    """One search of ``budget`` evaluations; the trial number is the seed (and picks the
    embedding realisation, :meth:`SearchProblem.coords_for`). ``method`` is a surrogate name
    with optional options (:func:`parse_method`) and batch (:func:`parse_batch`). Returns the
    rows of :data:`RESULT_COLUMNS` (one per evaluation)."""
    method_name = method
    method, size, policy = parse_batch(method)
    surrogate, options = parse_method(method)
    needs = get_surrogate(surrogate).needs
    raw = problem.distances is not None and needs == "distances"
    if problem.distances is not None and needs == "coordinates":
        from aquasurf_core.search.surrogates import DISTANCE_SURROGATES

        raise ValueError(f"a problem on raw distances is searched by "
                         f"{', '.join(sorted(DISTANCE_SURROGATES))} or random search, "
                         f"not {method!r}")
    coords = problem.coords_for(trial) if needs != "nothing" and not raw else None
    searcher = Searcher(problem.names, coords, valid=problem.valid, surrogate=surrogate, k=k,
                        first=[problem.first], seed=trial,
                        distances=problem.distances if raw else None, options=options,
                        batch=policy)
    index = searcher.index
    rows = []
    best_val, best_test = -np.inf, np.nan
    while len(rows) < budget:
        asked = searcher.ask(min(size, budget - len(rows)))
        if not asked:
            break
        for name in asked:  # a batch comes back whole before the next is asked
            r = index[name]
            val, test = float(problem.val_acc[r]), float(problem.test_acc[r])
            searcher.tell(name, val)
            if val > best_val:
                best_val, best_test = val, test
            rows.append((problem.benchmark, problem.feature, method_name, trial,
                         len(rows) + 1, name, val, test, best_val, best_test))
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


# ----------------------------------------------------------------------------- the ledger
class TrialLedger(SQLiteLedger):
    """The SQLite (WAL) record of finished trials of one experiment directory, a
    :class:`~aquasurf_core.ledgers.SQLiteLedger` (``readonly=True`` reads it as it is).

    Format 1 (the only one): ``trials`` (one row per (benchmark, feature, method, trial,
    budget, k): its tidy rows as JSON, seconds) and ``problems`` (each (benchmark, feature)'s
    fingerprint). Trial ledgers written before the format was stored are adopted as format 1."""

    KIND = "trial ledger"
    TABLES = frozenset({"trials", "problems"})
    SCHEMA = ("CREATE TABLE IF NOT EXISTS trials (benchmark TEXT, feature TEXT, method TEXT, "
              "trial INTEGER, budget INTEGER, k INTEGER, rows TEXT NOT NULL, seconds REAL, "
              "PRIMARY KEY (benchmark, feature, method, trial, budget, k))",
              "CREATE TABLE IF NOT EXISTS problems (benchmark TEXT, feature TEXT, "
              "fingerprint TEXT NOT NULL, PRIMARY KEY (benchmark, feature))")
    FORMAT = 1
    FORMATS = {1: "tidy rows as JSON, problem fingerprints"}

    def check_problem(self, problem: SearchProblem) -> int:
        """Record ``problem``'s fingerprint; when the ledger holds trials of another version of
        the same (benchmark, feature) -- changed accuracies, embedding or functions -- delete
        them (they would be stale) and return how many were deleted (one transaction)."""
        key = (problem.benchmark, problem.feature)
        fingerprint = problem.fingerprint()
        stale = 0
        with self.write():
            row = self.db.execute("SELECT fingerprint FROM problems WHERE benchmark=? AND "
                                  "feature=?", key).fetchone()
            if row is not None and row[0] != fingerprint:
                stale = self.db.execute("DELETE FROM trials WHERE benchmark=? AND feature=?",
                                        key).rowcount
            self.db.execute("INSERT OR REPLACE INTO problems VALUES (?,?,?)", (*key, fingerprint))
        return stale

    def done(self, budget: int, k: int) -> set[tuple[str, str, str, int]]:
        """``(benchmark, feature, method, trial)`` of the finished trials of this budget and k."""
        return {(b, f, m, int(t)) for b, f, m, t in self.db.execute(
            "SELECT benchmark, feature, method, trial FROM trials WHERE budget=? AND k=?",
            (budget, k))}

    def record(self, key: tuple[str, str, str, int], budget: int, k: int, rows: pd.DataFrame,
               seconds: float) -> None:
        """Store one finished trial (one transaction). Its rows go in as JSON, where NaN is
        ``null`` (read back as NaN); an infinite value is refused (``ValueError``), as JSON
        would turn it into NaN."""
        numbers = rows.select_dtypes("number").to_numpy(dtype=float)
        if np.isinf(numbers).any():
            raise ValueError(f"trial {key}: its rows hold an infinite value, which the trial "
                             "ledger cannot store")
        payload = rows.to_json(orient="split", index=False)
        with self.write():
            self.db.execute("INSERT OR REPLACE INTO trials VALUES (?,?,?,?,?,?,?,?)",
                            (*key, budget, k, payload, store_real(seconds)))

    def results(self, budget: int, k: int, keys: Iterable[tuple] | None = None) -> pd.DataFrame:
        """The tidy rows of the finished trials (of ``keys`` only, when given)."""
        wanted = None if keys is None else set(keys)
        frames = []
        query = ("SELECT benchmark, feature, method, trial, rows FROM trials WHERE budget=? "
                 "AND k=? ORDER BY benchmark, feature, method, trial")
        for b, f, m, t, payload in self.db.execute(query, (budget, k)):
            if wanted is None or (b, f, m, int(t)) in wanted:
                frames.append(pd.read_json(StringIO(payload), orient="split"))
        if not frames:
            return pd.DataFrame(columns=list(RESULT_COLUMNS))
        return pd.concat(frames, ignore_index=True)[list(RESULT_COLUMNS)]


def _run_keyed(problem: SearchProblem, method: str, trial: int, budget: int, k: int):
    start = time.perf_counter()
    rows = run_trial(problem, method, trial, budget, k)
    return rows, time.perf_counter() - start


def run_experiment(problems: Sequence[SearchProblem], methods: Sequence[str],
                   trials: Iterable[int], out_dir: str | os.PathLike, *, budget: int = 100,
                   k: int = 3, scheduler_address: str | None = None, workers: int = 2,
                   client=None, progress: bool = True, log=print) -> pd.DataFrame:
    """Every (problem, method, trial) not yet in ``out_dir``'s ledger, on dask (module
    docstring); returns the tidy results of all of them, also written to
    ``out_dir/results.parquet`` with a ``manifest.json`` (settings, seconds, workers). Pass a
    ``dask.distributed.Client`` as ``client`` to reuse one cluster across calls (it is not
    closed); otherwise one is started (``workers`` local single-threaded processes, or the
    cluster at ``scheduler_address``) and closed at the end."""
    from dask.distributed import as_completed
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    trials = [int(t) for t in trials]
    cluster_used = ("the caller's dask client" if client is not None else scheduler_address
                    or f"LocalCluster of {workers} single-threaded workers")
    ledger = TrialLedger(out_dir / "trials.sqlite")
    try:
        for problem in problems:
            stale = ledger.check_problem(problem)
            if stale:
                log(f"benchmark search: the data of ({problem.benchmark}, {problem.feature}) "
                    f"changed; {stale} stale trials in {ledger.path} discarded")
        done = ledger.done(budget, k)
        keys = [(p.benchmark, p.feature, m, t) for p in problems for m in methods for t in trials]
        todo = [key for key in keys if key not in done]
        log(f"benchmark search: {len(keys)} trials, {len(keys) - len(todo)} already in "
            f"{ledger.path}")
        start = time.perf_counter()
        if todo:
            with dask_client(client, scheduler_address, workers) as running:
                # hash=False: a key of its own for each call's copy. Content-hashed, two
                # calls in a row with the same problem on one client (notebook 04's ablation
                # arms) shared one key, and the first call's release of it could remove the
                # data the second had just scattered ("lost dependencies").
                by_key = {(p.benchmark, p.feature): running.scatter(p, broadcast=True,
                                                                     hash=False)
                          for p in problems}
                futures = {running.submit(_run_keyed, by_key[key[:2]], key[2], key[3], budget,
                                          k, pure=False): key for key in todo}
                bar = tqdm(total=len(todo), desc="benchmark search", unit="trial",
                           disable=not progress)
                for future in as_completed(futures):
                    rows, seconds = future.result()
                    ledger.record(futures[future], budget, k, rows, seconds)
                    bar.update(1)
                bar.close()
        results = ledger.results(budget, k, keys)
    finally:
        ledger.close()
    atomic_write_bytes(out_dir / "results.parquet", _parquet_bytes(results))
    manifest = {"methods": list(methods), "trials": [min(trials), max(trials)],
                "budget": budget, "k": k, "problems": [(p.benchmark, p.feature)
                                                       for p in problems],
                "seconds_this_run": round(time.perf_counter() - start, 1),
                "cluster": cluster_used,
                "trials_run_now": len(todo)}
    atomic_write_bytes(out_dir / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    log(f"benchmark search: {len(results)} evaluations written to {out_dir / 'results.parquet'}")
    return results


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()
