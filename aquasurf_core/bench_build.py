"""Build an MNIST-1D activation-function benchmark (Act-Bench-Mini), resumably.

``aquasurf bench build --arch cnn|resnet|vit`` trains every unique function of the 3-node
space (``binary(unary(x),unary(x))``; one representative per class of
:mod:`aquasurf_core.space_store`) with the architecture's recipe
(:data:`aquasurf_core.training.RECIPES`) for each seed, computes the K-FAC features at
initialisation (:func:`aquasurf_core.fim_features.fim_features_batch`), and writes the
benchmark directory of :mod:`aquasurf_core.bench`.

Work and the ledger
-------------------
The functions, in the space's class order, are cut into fixed chunks of ``group_size``; a
*unit* is one chunk trained with one seed by
:func:`aquasurf_core.grouped_training.train_grouped` (the chunk's functions fused into one
model), or one chunk's Fisher features. Units run in ``workers`` processes (one thread each:
the ops of these small models are too small for intra-op threads to pay off). Every finished
unit is written to the *ledger*, an SQLite database in WAL mode, in one transaction, before
the next result is taken. Killed at any moment (even ``SIGKILL``) and started again with the
same configuration, the builder keeps every finished unit and redoes only unfinished ones;
since chunks are fixed, a resumed build trains the same groups as an uninterrupted one. A
ledger refuses a different configuration (arch, recipe, group size, Fisher settings, limit):
the message names the keys that differ. Seeds may be added to a finished build (``--seeds 0 1
2`` after ``--seeds 0``): only the new seeds' runs are trained.

Assembly
--------
Per function, the reported run is the one whose validation accuracy is the median over its
seeds (for three seeds, the middle run; for an even count, the lower middle), as the paper's
"median of three" -- all metrics come from that one run, so a row is one real training run.
Diverged runs are kept at chance accuracy with NaN losses (``status="diverged"``).
``runtime_s`` is the mean wall time per run (the grouped trainer's group time divided by the
group size). The manifest records versions, seeds, recipe, architecture, Fisher settings,
build time (the sum of the wall time of every build session on the ledger) and the machine.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import sqlite3
import time
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from aquasurf_core.bench import (
    Benchmark,
    make_table,
    recompute_outputs,
    save_benchmark,
    shipped_dir,
)
from aquasurf_core.fim_features import DEFAULT_BATCH_SIZE, FimLayout
from aquasurf_core.training import Recipe, RunResult, get_recipe

__all__ = [
    "BENCH_SCHEMA",
    "BuildConfig",
    "Ledger",
    "LedgerMismatch",
    "assemble",
    "build_benchmark",
    "default_ledger_path",
    "space_functions",
]

#: The search space of the benchmarks (paper Section 2: the 3-node space).
BENCH_SCHEMA = "binary(unary(x),unary(x))"
RUN_FIELDS = ("status", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
              "test_accuracy", "epochs_completed", "runtime_s")


class LedgerMismatch(ValueError):
    """A ledger was written with another build configuration."""


@dataclass(frozen=True)
class BuildConfig:
    """Everything that determines a benchmark's numbers (and so must not change on resume)."""

    arch: str
    seeds: tuple[int, ...] = (0,)
    recipe: Recipe | None = None  # default: get_recipe(arch)
    group_size: int = 32
    fim_seed: int = 0
    fim_batch_size: int = DEFAULT_BATCH_SIZE
    limit: int | None = None  # only the first ``limit`` functions (tests, smoke runs)

    def __post_init__(self) -> None:
        if self.recipe is None:
            object.__setattr__(self, "recipe", get_recipe(self.arch))
        seeds = tuple(int(s) for s in self.seeds)
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds}")
        object.__setattr__(self, "seeds", seeds)
        for name in ("group_size", "fim_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise ValueError(f"limit must be None or a positive integer, got {self.limit!r}")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["seeds"] = list(self.seeds)
        data["recipe"] = {k: list(v) if isinstance(v, tuple) else v
                          for k, v in asdict(self.recipe).items()}
        return data


# ----------------------------------------------------------------------------- the ledger
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    fn_name TEXT NOT NULL, seed INTEGER NOT NULL, status TEXT NOT NULL,
    train_loss REAL, train_accuracy REAL, val_loss REAL, val_accuracy REAL,
    test_loss REAL, test_accuracy REAL, epochs_completed INTEGER, runtime_s REAL,
    unit INTEGER NOT NULL, finished_at TEXT NOT NULL, PRIMARY KEY (fn_name, seed));
CREATE TABLE IF NOT EXISTS features (
    fn_name TEXT PRIMARY KEY, valid INTEGER NOT NULL, reason TEXT NOT NULL, cdf BLOB NOT NULL,
    seconds REAL, unit INTEGER NOT NULL, finished_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, host TEXT NOT NULL,
    workers INTEGER NOT NULL, seconds REAL NOT NULL DEFAULT 0, units INTEGER NOT NULL DEFAULT 0);
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _real(value: float) -> float | None:
    """SQLite has no NaN: store it as NULL (read back as NaN)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


class Ledger:
    """The SQLite (WAL) record of a build: finished runs, features and build sessions."""

    def __init__(self, path: str | os.PathLike, config: BuildConfig):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            self._check_config(config)
        except sqlite3.DatabaseError as err:
            self.db.close()
            raise ValueError(f"{self.path}: not a usable build ledger ({err})") from err
        self.config = config

    def _check_config(self, config: BuildConfig) -> None:
        """Store ``config`` in a new ledger; in an existing one every key must match except
        ``seeds`` (runs are keyed by function and seed, so seeds can be added later: the
        finished ones are kept and the ledger's config records the latest seed list)."""
        wanted = config.to_dict()
        row = self.db.execute("SELECT value FROM meta WHERE key='config'").fetchone()
        if row is not None:
            stored = json.loads(row[0])
            differ = sorted(k for k in set(stored) | set(wanted)
                            if k != "seeds" and stored.get(k) != wanted.get(k))
            if differ:
                detail = "; ".join(f"{k}: ledger {stored.get(k)!r}, requested {wanted.get(k)!r}"
                                   for k in differ)
                raise LedgerMismatch(f"{self.path} was built with another configuration "
                                     f"({detail}). Use a new ledger path, or the ledger's "
                                     "configuration.")
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('config', ?)",
                            (json.dumps(wanted),))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing: one transaction per finished unit
    def record_runs(self, unit: int, results: Sequence[RunResult]) -> None:
        stamp = _now()
        rows = [(r.fn_name, r.seed, r.status, *(_real(float(getattr(r, f)))
                                                for f in RUN_FIELDS[1:7]),
                 r.epochs_completed, _real(r.runtime_s), unit, stamp) for r in results]
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)

    def record_features(self, unit: int, features: Sequence[tuple[str, dict]]) -> None:
        stamp = _now()
        rows = [(name, int(f["valid"]), f["reason"],
                 np.asarray(f["cdf"], dtype=np.float32).tobytes(), _real(f["seconds"]), unit,
                 stamp) for name, f in features]
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO features VALUES (?,?,?,?,?,?,?)", rows)

    def set_meta(self, key: str, value: object) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def meta(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def start_session(self, workers: int) -> int:
        with self.db:
            cur = self.db.execute("INSERT INTO sessions (started_at, host, workers) VALUES "
                                  "(?, ?, ?)", (_now(), platform.node(), workers))
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

    def features(self) -> dict[str, tuple[bool, str, np.ndarray]]:
        return {name: (bool(valid), reason, np.frombuffer(blob, dtype=np.float32).copy())
                for name, valid, reason, blob in
                self.db.execute("SELECT fn_name, valid, reason, cdf FROM features")}

    def feature_times(self) -> list[str]:
        return [t for (t,) in self.db.execute("SELECT finished_at FROM features")]

    def sessions(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM sessions ORDER BY id", self.db)


def default_ledger_path(arch: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """``<cache>/bench/<arch>/ledger.sqlite``; the cache is ``cache_dir``, else
    ``$AQUASURF_CACHE``, else ``.aquasurf_cache`` at the repository root."""
    from aquasurf_core.space_store import repo_root

    if cache_dir is None:
        cache_dir = os.environ.get("AQUASURF_CACHE") or repo_root() / ".aquasurf_cache"
    return Path(cache_dir) / "bench" / arch / "ledger.sqlite"


# ----------------------------------------------------------------------------- the functions
@dataclass
class SpaceFunctions:
    """The benchmark's functions: representatives, their classes' names, their outputs."""

    names: list[str]
    equivalent_names: list[list[str]]
    outputs: np.ndarray  # float32 [N, 1000]
    space_manifest: dict = field(default_factory=dict)


def space_functions(limit: int | None = None) -> SpaceFunctions:
    """The unique functions of :data:`BENCH_SCHEMA` (built or loaded from the space cache),
    the first ``limit`` of them when given."""
    from aquasurf_core.space_store import build_space

    store = build_space(BENCH_SCHEMA, progress=False)
    unique = store.unique
    n = len(unique) if limit is None else min(limit, len(unique))
    names = [str(v) for v in unique["representative"][:n]]
    return SpaceFunctions(
        names=names,
        equivalent_names=[[str(m) for m in v] for v in unique["equivalent_names"][:n]],
        # the representative's own outputs (the store keeps one member's row per class,
        # which may differ from the representative's in the sign of a zero)
        outputs=recompute_outputs(names),
        space_manifest={"schema": BENCH_SCHEMA, "unique": store.n_unique,
                        "functions": store.n_functions, "key": store.path.name},
    )


# ----------------------------------------------------------------------------- workers
_WORKER: dict = {}


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _data():
    if "data" not in _WORKER:
        from aquasurf_core.datasets import load_mnist1d

        _WORKER["data"] = load_mnist1d()
    return _WORKER["data"]


def _train_unit(arch: str, names: list[str], seed: int, recipe: Recipe) -> list[RunResult]:
    from aquasurf_core.grouped_training import train_grouped

    return train_grouped(arch, names, seed, _data(), recipe)


def _fim_unit(arch: str, names: list[str], seed: int, batch_size: int) -> tuple[list, dict]:
    from aquasurf_core.fim_features import fim_features_batch

    feats = fim_features_batch(arch, names, seed=seed, batch_size=batch_size, progress=False)
    out = [(n, {"valid": f.valid, "reason": f.reason, "cdf": f.cdf, "seconds": f.seconds})
           for n, f in zip(names, feats, strict=True)]
    return out, feats[0].layout.to_dict()


# ----------------------------------------------------------------------------- building
def _chunks(names: Sequence[str], size: int) -> list[list[str]]:
    return [list(names[i:i + size]) for i in range(0, len(names), size)]


def build_benchmark(config: BuildConfig, *, ledger_path: str | os.PathLike | None = None,
                    out_dir: str | os.PathLike | None = None, workers: int = 2,
                    progress: bool = True, log=print) -> Benchmark:
    """Build (or finish building) the benchmark of ``config`` and save it to ``out_dir``
    (default: the shipped directory for a full build, ``<ledger dir>/benchmark`` for a
    limited one), without ``outputs.npy`` (recomputed from the names on load; see
    :func:`aquasurf_core.bench.save_benchmark`). See the module docstring for units, the
    ledger and assembly."""
    from tqdm.auto import tqdm

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    ledger_path = Path(ledger_path) if ledger_path else default_ledger_path(config.arch)
    functions = space_functions(config.limit)
    chunks = _chunks(functions.names, config.group_size)
    with Ledger(ledger_path, config) as ledger:
        done_runs, done_feats = ledger.done_runs(), ledger.done_features()
        units = []  # (unit id, kind, names, seed)
        for c, names in enumerate(chunks):
            if any(n not in done_feats for n in names):
                units.append((c, "fim", names, config.fim_seed))
        for s, seed in enumerate(config.seeds):
            for c, names in enumerate(chunks):
                if any((n, seed) not in done_runs for n in names):
                    units.append(((s + 1) * len(chunks) + c, "train", names, seed))
        total = len(chunks) * (1 + len(config.seeds))
        log(f"benchmark {config.arch}: {len(functions.names)} functions, seeds "
            f"{list(config.seeds)}, {total} units of up to {config.group_size} functions; "
            f"{total - len(units)} already in the ledger {ledger_path}")
        session = ledger.start_session(workers)
        start = time.perf_counter()
        finished = 0
        if units:
            bar = tqdm(total=len(units), desc=f"bench {config.arch}", unit="unit",
                       disable=not progress)
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                     initializer=_init_worker, initargs=(1,)) as pool:
                pending = {}
                queue = list(units)

                def submit() -> None:
                    while queue and len(pending) < 2 * workers:
                        unit, kind, names, seed = queue.pop(0)
                        if kind == "fim":
                            fut = pool.submit(_fim_unit, config.arch, names, seed,
                                              config.fim_batch_size)
                        else:
                            fut = pool.submit(_train_unit, config.arch, names, seed,
                                              config.recipe)
                        pending[fut] = (unit, kind)

                submit()
                while pending:
                    ready, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                    for fut in ready:
                        unit, kind = pending.pop(fut)
                        if kind == "fim":
                            feats, layout = fut.result()
                            ledger.set_meta("fim_layout", layout)
                            ledger.record_features(unit, feats)
                        else:
                            ledger.record_runs(unit, fut.result())
                        finished += 1
                        ledger.update_session(session, time.perf_counter() - start, finished)
                        bar.update(1)
                    submit()
            bar.close()
        ledger.update_session(session, time.perf_counter() - start, finished)
        benchmark = assemble(ledger, functions)
    if out_dir is None:
        out_dir = (shipped_dir(config.arch) if config.limit is None
                   else ledger_path.parent / "benchmark")
    path = save_benchmark(benchmark, out_dir, store_outputs=False)
    log(f"benchmark {config.arch}: {len(benchmark)} rows written to {path}")
    return benchmark


def _median_run(runs: pd.DataFrame) -> pd.Series:
    """The run with the median validation accuracy (lower middle for an even count; ties
    broken by seed)."""
    ordered = runs.sort_values(["val_accuracy", "seed"], kind="stable")
    return ordered.iloc[(len(ordered) - 1) // 2]


def _machine() -> dict:
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or
            platform.machine(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__, "pandas": pd.__version__,
            "device": "cpu"}


def reason_kind(reason: str) -> str:
    """A validity reason without its layer and measured value, to group them:
    ``"layer 'features.2': log-eigenvalue 131.5 > 100 (exploding)"`` -> ``"log-eigenvalue
    > 100 (exploding)"``; ``"non-finite loss (nan)"`` -> ``"non-finite loss"``."""
    text = re.sub(r"^layer '[^']*': ", "", reason.strip())
    if text.startswith("eigenvalue solver failed"):
        return "eigenvalue solver failed"
    text = re.sub(r"\s*\((nan|[+-]?inf)\)", "", text)
    text = re.sub(r"log-eigenvalue \S+ ", "log-eigenvalue ", text)  # the value, not the bound
    return re.sub(r"\s+", " ", text).strip()


def reason_counts(reasons: Iterable[str]) -> dict[str, int]:
    """How many features have each :func:`reason_kind`, most frequent first."""
    counts = pd.Series([reason_kind(r) for r in reasons]).value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def build_summary(sessions: pd.DataFrame, runs: pd.DataFrame, feature_times: Sequence[str],
                  seeds: Sequence[int]) -> dict:
    """Build time of a benchmark: the wall time of the build sessions that finished any of
    its work (features, or runs of the reported ``seeds``). A session is credited with every
    row finished between its start and the next session's start, so sessions that only
    trained other seeds (added to the ledger and not reported) do not count."""
    starts = list(sessions["started_at"])  # ISO timestamps, ascending with the session id
    reported = runs[runs["seed"].isin(list(seeds))]
    used = {max(0, bisect_right(starts, stamp) - 1)
            for stamp in list(reported["finished_at"]) + list(feature_times)}
    detail = [{"started_at": str(row.started_at), "seconds": round(float(row.seconds), 1),
               "units": int(row.units), "workers": int(row.workers), "counted": i in used}
              for i, row in enumerate(sessions.itertuples())]
    return {"seconds": float(sum(d["seconds"] for d in detail if d["counted"])),
            "sessions": detail,
            "runs": int(len(reported)),
            "diverged_runs": int((reported["status"] != "ok").sum()),
            "runs_in_ledger": int(len(runs))}


def assemble(ledger: Ledger, functions: SpaceFunctions) -> Benchmark:
    """The :class:`~aquasurf_core.bench.Benchmark` of a complete ledger. Raises
    ``ValueError`` naming what is missing if any function lacks a run or features."""
    from aquasurf_core import __version__
    from aquasurf_core.models import build_model

    config = ledger.config
    runs = ledger.runs()
    feats = ledger.features()
    by_name = {name: group for name, group in runs.groupby("fn_name", sort=False)}
    missing_runs = [n for n in functions.names
                    if n not in by_name or set(by_name[n]["seed"]) < set(config.seeds)]
    missing_feats = [n for n in functions.names if n not in feats]
    if missing_runs or missing_feats:
        raise ValueError(f"ledger {ledger.path} is incomplete: {len(missing_runs)} functions "
                         f"lack runs (e.g. {missing_runs[:3]}), {len(missing_feats)} lack "
                         f"features (e.g. {missing_feats[:3]}); run the build again to finish")
    rows = []
    for name, equivalents in zip(functions.names, functions.equivalent_names, strict=True):
        group = by_name[name]
        group = group[group["seed"].isin(config.seeds)]
        run = _median_run(group)
        rows.append({
            "fn_name": name, "equivalent_names": equivalents,
            "train_acc": run["train_accuracy"], "val_acc": run["val_accuracy"],
            "test_acc": run["test_accuracy"], "train_loss": run["train_loss"],
            "val_loss": run["val_loss"], "test_loss": run["test_loss"],
            "runtime_s": float(group["runtime_s"].mean()),
            "seeds": sorted(int(s) for s in group["seed"]),
            "status": "ok" if run["status"] == "ok" else "diverged",
        })
    table = make_table(rows)
    layout = FimLayout.from_dict(ledger.meta("fim_layout"))
    cdf = np.stack([feats[n][2] for n in functions.names]).astype(np.float32)
    valid = np.array([feats[n][0] for n in functions.names], dtype=bool)
    sessions = ledger.sessions()
    model = build_model(config.arch, "relu(x)")
    manifest = {
        "source": "aquasurf bench build (Act-Bench-Mini on MNIST-1D)",
        "aquasurf_core": __version__,
        "built_at": _now(),
        "config": config.to_dict(),
        "architecture": {"name": config.arch,
                         "parameters": int(sum(p.numel() for p in model.parameters()))},
        "dataset": "MNIST-1D (mnist1d package, generated locally): 3500 train / 500 "
                   "validation (class-balanced, from the training set) / 1000 test",
        "space": functions.space_manifest,
        "reported_run": "per function, the seed whose validation accuracy is the median",
        "fim": {"seed": config.fim_seed, "batch_size": config.fim_batch_size,
                "fisher": "empirical K-FAC at initialisation (aquasurf_core.fim_features)",
                "reasons": reason_counts([feats[n][1] for n in functions.names])},
        "build": build_summary(sessions, runs, ledger.feature_times(), config.seeds),
        "machine": _machine(),
    }
    return Benchmark(config.arch, table, functions.outputs, cdf, valid, layout,
                     json.loads(json.dumps(manifest, default=float)))


# ----------------------------------------------------------------------------- CLI
def config_from_args(args) -> BuildConfig:
    overrides = {k: v for k, v in (("epochs", args.epochs), ("train_subset", args.train_subset))
                 if v is not None}
    return BuildConfig(arch=args.arch, seeds=tuple(args.seeds),
                       recipe=get_recipe(args.arch, **overrides), group_size=args.group_size,
                       limit=args.limit)


def cli_build(args) -> int:
    """``aquasurf bench build``."""
    import sys

    try:
        config = config_from_args(args)
        build_benchmark(config, ledger_path=args.ledger, out_dir=args.out, workers=args.workers,
                        progress=not args.quiet)
    except (ValueError, FileNotFoundError) as err:
        print(f"aquasurf bench build: error: {err}", file=sys.stderr)
        return 2
    return 0


def cli_status(args) -> int:
    """``aquasurf bench status``: what the ledger holds."""
    import sys

    path = Path(args.ledger) if args.ledger else default_ledger_path(args.arch)
    if not path.exists():
        print(f"no ledger at {path}", file=sys.stderr)
        return 2
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        runs = dict(db.execute("SELECT seed, COUNT(*) FROM runs GROUP BY seed").fetchall())
        feats = db.execute("SELECT COUNT(*), SUM(valid) FROM features").fetchone()
        seconds = db.execute("SELECT COALESCE(SUM(seconds), 0) FROM sessions").fetchone()[0]
        config = json.loads(db.execute("SELECT value FROM meta WHERE key='config'").fetchone()[0])
    finally:
        db.close()
    print(json.dumps({"ledger": str(path), "config": config, "runs_per_seed": runs,
                      "features": feats[0], "valid_features": feats[1] or 0,
                      "build_seconds": round(seconds, 1)}, indent=2))
    return 0


def add_parser(commands) -> None:
    """The ``aquasurf bench`` subcommands (called by :mod:`aquasurf_core.cli`)."""
    from aquasurf_core.cli import _handler

    bench = commands.add_parser("bench", help="build Act-Bench-Mini benchmarks")
    sub = bench.add_subparsers(dest="bench_command", required=True)
    build = sub.add_parser("build", help="train every 3-node function (resumable)")
    build.add_argument("--arch", required=True, choices=["cnn", "resnet", "vit"])
    build.add_argument("--seeds", type=int, nargs="+", default=[0])
    build.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    build.add_argument("--group-size", type=int, default=32,
                       help="functions trained together in one fused model")
    build.add_argument("--limit", type=int, default=None, help="only the first N functions")
    build.add_argument("--epochs", type=int, default=None, help="override the recipe")
    build.add_argument("--train-subset", type=int, default=None, help="override the recipe")
    build.add_argument("--ledger", default=None, help="ledger path (default: cache)")
    build.add_argument("--out", default=None, help="benchmark directory (default: shipped "
                       "package data for a full build)")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(func=_handler("aquasurf_core.bench_build:cli_build"))
    status = sub.add_parser("status", help="what a build ledger holds")
    status.add_argument("--arch", required=True, choices=["cnn", "resnet", "vit"])
    status.add_argument("--ledger", default=None)
    status.set_defaults(func=_handler("aquasurf_core.bench_build:cli_status"))
