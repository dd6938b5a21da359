"""Build an MNIST-1D activation-function benchmark (Act-Bench-Mini), resumably.

``aquasurf bench build --arch cnn|resnet|vit`` trains every unique function of the 3-node
space (``binary(unary(x),unary(x))``; one representative per class of
:mod:`aquasurf_core.space.store`) with the architecture's recipe
(:data:`aquasurf_core.training.recipes.RECIPES`) for each seed, computes the K-FAC features at
initialisation (:func:`aquasurf_core.features.fim.fim_features_batch`), and writes the
benchmark directory of :mod:`aquasurf_core.bench.table`.

Work and the ledger
-------------------
The functions, in the space's class order, are cut into fixed chunks of ``group_size``; a
*unit* is one chunk trained with one seed by
:func:`aquasurf_core.training.grouped.train_grouped` (the chunk's functions fused into one
model), or one chunk's Fisher features. Units run in ``workers`` processes (one thread each:
the ops of these small models are too small for intra-op threads to pay off). Every finished
unit is written to the *ledger* (:mod:`aquasurf_core.bench.ledger`, SQLite in WAL mode) in
one transaction, before the next result is taken. Killed at any moment (even ``SIGKILL``) and
started again with the same configuration, the builder keeps every finished unit and redoes only
unfinished ones; since chunks are fixed, a resumed build trains the same groups as an uninterrupted
one. A ledger refuses a different configuration (arch, recipe, group size, Fisher settings, limit):
the message names the keys that differ. Seeds may be added to a finished build (``--seeds 0 1 2``
after ``--seeds 0``): only the new seeds' runs are trained.

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
import os
import platform
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from aquasurf_core.bench.ledger import Ledger, default_ledger_path, utc_now
from aquasurf_core.bench.table import Benchmark, make_table, save_benchmark, shipped_dir
from aquasurf_core.features.fim import DEFAULT_BATCH_SIZE, FimLayout, Invalidity, invalidity_counts
from aquasurf_core.features.outputs import output_features
from aquasurf_core.machine import describe_machine
from aquasurf_core.space.schemas import THREE_NODE_SCHEMA
from aquasurf_core.training.recipes import Recipe, get_recipe
from aquasurf_core.training.results import RunResult

__all__ = [
    "BENCH_SCHEMA",
    "BuildConfig",
    "Unit",
    "assemble",
    "build_benchmark",
    "build_summary",
    "median_run",
    "plan_units",
    "space_functions",
]

#: The search space of the benchmarks (paper Section 2: the 3-node space).
BENCH_SCHEMA = THREE_NODE_SCHEMA


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
        """The configuration as a JSON-able dict (seeds a list, the recipe a dict of its fields,
        tuples as lists): what the ledger stores and compares on resume, and the manifest."""
        data = asdict(self)
        data["seeds"] = list(self.seeds)
        data["recipe"] = {k: list(v) if isinstance(v, tuple) else v
                          for k, v in asdict(self.recipe).items()}
        return data


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
    from aquasurf_core.space.store import build_space

    store = build_space(BENCH_SCHEMA, progress=False)
    unique = store.unique
    n = len(unique) if limit is None else min(limit, len(unique))
    names = [str(v) for v in unique["representative"][:n]]
    return SpaceFunctions(
        names=names,
        equivalent_names=[[str(m) for m in v] for v in unique["equivalent_names"][:n]],
        # the representative's own outputs (the store keeps one member's row per class,
        # which may differ from the representative's in the sign of a zero)
        outputs=output_features(names),
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
        from aquasurf_core.training.data import load_mnist1d

        _WORKER["data"] = load_mnist1d()
    return _WORKER["data"]


def _train_unit(arch: str, names: list[str], seed: int, recipe: Recipe) -> list[RunResult]:
    from aquasurf_core.training.grouped import train_grouped

    return train_grouped(arch, names, seed, _data(), recipe)


def _fim_unit(arch: str, names: list[str], seed: int, batch_size: int) -> tuple[list, dict]:
    from aquasurf_core.features.fim import fim_features_batch

    feats = fim_features_batch(arch, names, seed=seed, batch_size=batch_size, progress=False)
    out = [(n, f.invalid, f.cdf, f.seconds) for n, f in zip(names, feats, strict=True)]
    return out, feats[0].layout.to_dict()


# ----------------------------------------------------------------------------- building
@dataclass(frozen=True)
class Unit:
    """One piece of work: a chunk's Fisher features (``kind="fim"``) or a chunk trained with
    one seed (``kind="train"``). ``id`` is fixed by the chunk and seed, so a resumed build
    numbers its units as an uninterrupted one."""

    id: int
    kind: str
    names: tuple[str, ...]
    seed: int


def plan_units(config: BuildConfig, names: Sequence[str], done_runs: set[tuple[str, int]],
               done_features: set[str]) -> tuple[list[Unit], int]:
    """The units still to do (features first, then seed by seed) and the total number of
    units of the build. Functions are cut into fixed chunks of ``config.group_size``."""
    chunks = [tuple(names[i:i + config.group_size])
              for i in range(0, len(names), config.group_size)]
    units = [Unit(c, "fim", chunk, config.fim_seed) for c, chunk in enumerate(chunks)
             if any(n not in done_features for n in chunk)]
    for s, seed in enumerate(config.seeds):
        units += [Unit((s + 1) * len(chunks) + c, "train", chunk, seed)
                  for c, chunk in enumerate(chunks)
                  if any((n, seed) not in done_runs for n in chunk)]
    return units, len(chunks) * (1 + len(config.seeds))


def _submit(pool: ProcessPoolExecutor, unit: Unit, config: BuildConfig) -> Future:
    if unit.kind == "fim":
        return pool.submit(_fim_unit, config.arch, list(unit.names), unit.seed,
                           config.fim_batch_size)
    return pool.submit(_train_unit, config.arch, list(unit.names), unit.seed, config.recipe)


def _record(ledger: Ledger, unit: Unit, result) -> None:
    if unit.kind == "fim":
        features, layout = result
        ledger.set_meta("fim_layout", layout)
        ledger.record_features(unit.id, features)
    else:
        ledger.record_runs(unit.id, result)


def _run_units(units: list[Unit], config: BuildConfig, ledger: Ledger, workers: int,
               progress: bool) -> int:
    """Run ``units`` in ``workers`` single-thread processes (at most two queued per worker),
    recording each in the ledger as it finishes; returns how many finished."""
    from tqdm.auto import tqdm

    session = ledger.start_session(workers)
    start = time.perf_counter()
    finished = 0
    queue, pending = deque(units), {}
    with tqdm(total=len(units), desc=f"bench {config.arch}", unit="unit",
              disable=not progress) as bar, ProcessPoolExecutor(
            max_workers=workers, mp_context=get_context("spawn"), initializer=_init_worker,
            initargs=(1,)) as pool:
        while queue or pending:
            while queue and len(pending) < 2 * workers:
                unit = queue.popleft()
                pending[_submit(pool, unit, config)] = unit
            ready, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in ready:
                _record(ledger, pending.pop(future), future.result())
                finished += 1
                ledger.update_session(session, time.perf_counter() - start, finished)
                bar.update(1)
    ledger.update_session(session, time.perf_counter() - start, finished)
    return finished


def build_benchmark(config: BuildConfig, *, ledger_path: str | os.PathLike | None = None,
                    out_dir: str | os.PathLike | None = None, workers: int = 2,
                    progress: bool = True, log=print) -> Benchmark:
    """Build (or finish building) the benchmark of ``config`` and save it to ``out_dir``
    (default: the shipped directory for a full build, ``<ledger dir>/benchmark`` for a
    limited one), without ``outputs.npy`` (recomputed from the names on load; see
    :mod:`aquasurf_core.bench.table`). See the module docstring for units, the ledger and
    assembly."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    ledger_path = Path(ledger_path) if ledger_path else default_ledger_path(config.arch)
    functions = space_functions(config.limit)
    with Ledger(ledger_path, config.to_dict()) as ledger:
        units, total = plan_units(config, functions.names, ledger.done_runs(),
                                  ledger.done_features())
        log(f"benchmark {config.arch}: {len(functions.names)} functions, seeds "
            f"{list(config.seeds)}, {total} units of up to {config.group_size} functions; "
            f"{total - len(units)} already in the ledger {ledger_path}")
        if units:
            _run_units(units, config, ledger, workers, progress)
        else:
            ledger.update_session(ledger.start_session(workers), 0.0, 0)
        benchmark = assemble(ledger, functions, config)
    if out_dir is None:
        out_dir = (shipped_dir(config.arch) if config.limit is None
                   else ledger_path.parent / "benchmark")
    path = save_benchmark(benchmark, out_dir, store_outputs=False)
    log(f"benchmark {config.arch}: {len(benchmark)} rows written to {path}")
    return benchmark


def median_run(runs: pd.DataFrame) -> pd.Series:
    """The run (a row of ``runs``, columns ``seed`` and ``val_accuracy`` at least) with the
    median validation accuracy: the middle one for an odd count, the lower middle for an even
    count; ties broken by seed, NaN last."""
    ordered = runs.sort_values(["val_accuracy", "seed"], kind="stable")
    return ordered.iloc[(len(ordered) - 1) // 2]


def _machine() -> dict:
    import torch

    return {**describe_machine(), "platform": platform.platform(),
            "torch": torch.__version__, "numpy": np.__version__, "pandas": pd.__version__,
            "device": "cpu"}


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


def _rows(config: BuildConfig, functions: SpaceFunctions, by_name: dict) -> list[dict]:
    rows = []
    for name, equivalents in zip(functions.names, functions.equivalent_names, strict=True):
        group = by_name[name]
        group = group[group["seed"].isin(config.seeds)]
        run = median_run(group)
        rows.append({
            "fn_name": name, "equivalent_names": equivalents,
            "train_acc": run["train_accuracy"], "val_acc": run["val_accuracy"],
            "test_acc": run["test_accuracy"], "train_loss": run["train_loss"],
            "val_loss": run["val_loss"], "test_loss": run["test_loss"],
            "runtime_s": float(group["runtime_s"].mean()),
            "seeds": sorted(int(s) for s in group["seed"]),
            "status": "ok" if run["status"] == "ok" else "diverged",
        })
    return rows


def assemble(ledger: Ledger, functions: SpaceFunctions, config: BuildConfig) -> Benchmark:
    """The :class:`~aquasurf_core.bench.table.Benchmark` of a complete ledger. Raises
    ``ValueError`` naming what is missing if any function lacks a run or features."""
    from aquasurf_core import __version__
    from aquasurf_core.models import build_model

    runs = ledger.runs()
    feats: dict[str, tuple[Invalidity | None, np.ndarray]] = ledger.features()
    by_name = {name: group for name, group in runs.groupby("fn_name", sort=False)}
    missing_runs = [n for n in functions.names
                    if n not in by_name or set(by_name[n]["seed"]) < set(config.seeds)]
    missing_feats = [n for n in functions.names if n not in feats]
    if missing_runs or missing_feats:
        raise ValueError(f"ledger {ledger.path} is incomplete: {len(missing_runs)} functions "
                         f"lack runs (e.g. {missing_runs[:3]}), {len(missing_feats)} lack "
                         f"features (e.g. {missing_feats[:3]}); run the build again to finish")
    table = make_table(_rows(config, functions, by_name))
    layout = FimLayout.from_dict(ledger.meta("fim_layout"))
    cdf = np.stack([feats[n][1] for n in functions.names]).astype(np.float32)
    valid = np.array([feats[n][0] is None for n in functions.names], dtype=bool)
    model = build_model(config.arch, "relu(x)")
    manifest = {
        "source": "aquasurf bench build (Act-Bench-Mini on MNIST-1D)",
        "aquasurf_core": __version__,
        "built_at": utc_now(),
        "config": config.to_dict(),
        "architecture": {"name": config.arch,
                         "parameters": int(sum(p.numel() for p in model.parameters()))},
        "dataset": "MNIST-1D (mnist1d package, generated locally): 3500 train / 500 "
                   "validation (class-balanced, from the training set) / 1000 test",
        "space": functions.space_manifest,
        "reported_run": "per function, the seed whose validation accuracy is the median",
        "fim": {"seed": config.fim_seed, "batch_size": config.fim_batch_size,
                "fisher": "empirical K-FAC at initialisation (aquasurf_core.features.fim)",
                "reasons": invalidity_counts([feats[n][0] for n in functions.names])},
        "build": build_summary(ledger.sessions(), runs, ledger.feature_times(), config.seeds),
        "machine": _machine(),
    }
    return Benchmark(config.arch, table, functions.outputs, cdf, valid, layout,
                     json.loads(json.dumps(manifest, default=float)))
