"""The large-scale search engine (paper Section 6; Appendix E, "Search Implementation"), on
dask.distributed, around a ledger that survives faults.

What one search does (:func:`run_search`), the paper's recipe with our safeguards:

1. The space's unique functions (default the 4-node space; :mod:`aquasurf_core.space.store`)
   go into the ledger (:class:`~aquasurf_core.search.ledger.SearchLedger`) in a seeded random
   order. The task is checked (:func:`~aquasurf_core.search.tasks.check_task`) before any
   work; its check trains ReLU, which is kept as ReLU's baseline result.
2. The baselines (ReLU, ELU, SELU, sigmoid, Softplus, Softsign, Swish, tanh) are evaluated
   first, while the other workers compute Fisher features for functions in the random order
   (``feature_batch`` functions per dask task).
3. Once ``features`` functions have features, every free worker but one evaluates the function
   with the highest predicted accuracy -- KNR (k = 3) on the 2-D union UMAP embedding (FIM
   features + outputs, :mod:`aquasurf_core.embedding.umap_models`) of the functions with valid
   spectra, refitted with every result; the embedding itself is refitted when the featured set
   has grown by ``refit_growth`` -- and the last worker keeps computing features (all workers
   evaluate when there is only one).
4. It stops after ``evaluations`` functions beyond the baselines.

Faults. Every result and every feature batch is written to the ledger at once. Claiming a
function claims its whole class in one transaction, so nothing is evaluated twice; a dask
worker that dies has its task run again elsewhere (``retries``); a driver that is killed, even
with ``SIGKILL``, and started again with the same ledger takes back what the dead session had
claimed once its lease expires (``lease_seconds``: a live driver renews its claims every third
of it) and carries on: no finished evaluation lost, no function recorded twice, nothing left
"running" by a process that is gone. Two drivers on one ledger share the work and one budget
(counted in the ledger, in each claim's transaction) and never take each other's claims.
Every evaluation of a search with ``seed`` N is trained and recorded with seed N. The
searcher itself is rebuilt from the ledger whenever it is asked, so it has no state of its own
to lose.

Workers: a ``LocalCluster`` of single-threaded processes by default; ``scheduler_address``
(or a ``client``) runs on an existing cluster -- e.g. SLURM or PBS through ``dask-jobqueue``,
one worker per GPU, each pinned to its device with ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import json
import platform
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from aquasurf_core.search.cluster import dask_client
from aquasurf_core.search.ledger import SearchLedger
from aquasurf_core.search.searcher import Searcher
from aquasurf_core.search.tasks import Task, builtin_tasks, check_task, get_task
from aquasurf_core.space.baselines import COATNET_BASELINES

__all__ = ["EXTENDED_BASELINES", "SearchConfig", "choose_for_comparison",
           "compare_with_baselines", "default_ledger_path", "final_ledger_path",
           "transfer_ledger_path", "write_table", "evaluate_job", "export_results", "features_job",
           "median_over_seeds", "run_search", "search_status", "space_store"]


#: The baselines of a search with the extended operators (Table 3): the 13 of
#: :data:`aquasurf_core.space.COATNET_BASELINES`, ReLU first (the task check's ReLU run is kept
#: as ReLU's baseline result).
EXTENDED_BASELINES: tuple[str, ...] = tuple(sorted(COATNET_BASELINES.values(),
                                                   key=lambda name: name != "relu(x)"))


def _check_count(name: str, value, least: int) -> None:
    """``ValueError`` unless ``value`` is an integer (not a bool) of at least ``least``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")


@dataclass(frozen=True)
class SearchConfig:
    """Everything that shapes a search (module docstring)."""

    evaluations: int = 50
    features: int = 2000
    space: str = "4-node"
    seed: int = 0
    k: int = 3
    feature_batch: int = 32
    refit_growth: float = 0.25
    baselines: tuple[str, ...] = ("relu(x)", "elu(x)", "selu(x)", "sigmoid(x)",
                                  "softplus(x)", "softsign(x)", "swish(x)", "tanh(x)")
    retries: int = 2
    #: the operator set of the space: "paper", or "coatnet" (the paper's Table 3: ELiSH, GELU,
    #: Leaky ReLU and Mish added to the unary operators; give the 13 baselines of
    #: :data:`EXTENDED_BASELINES` with it, as ``aquasurf search run --operators coatnet``
    #: does)
    operators: str = "paper"
    #: seconds a claim lives without the driver's heartbeat (module docstring)
    lease_seconds: float = 30.0

    def __post_init__(self) -> None:
        for name, least in (("evaluations", 0), ("features", 0), ("feature_batch", 1),
                            ("seed", 0), ("k", 1), ("retries", 0)):
            _check_count(name, getattr(self, name), least)
        for name in ("refit_growth", "lease_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not self.baselines or len(set(self.baselines)) != len(self.baselines):
            raise ValueError(f"baselines must be distinct function names, got {self.baselines!r}")
        if self.space not in ("3-node", "4-node"):
            raise ValueError(f"space must be '3-node' or '4-node', got {self.space!r}")
        if self.operators not in ("paper", "coatnet"):
            raise ValueError(f"operators must be 'paper' or 'coatnet', got {self.operators!r}")

    def to_dict(self) -> dict:
        return {**asdict(self), "baselines": list(self.baselines)}


# ----------------------------------------------------------------------------- worker jobs
def _worker_name() -> str:
    try:
        from dask.distributed import get_worker

        return get_worker().name
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{platform.python_implementation()}"


def features_job(task: str | Task, items: Sequence[tuple[int, str]], seed: int) -> dict:
    """Fisher features of ``(class_id, name)`` items with the task's network (a dask task)."""
    import torch

    from aquasurf_core.features.fim import fim_features

    torch.set_num_threads(1)
    task = get_task(task)
    x, y = task.fisher_batch(seed)
    out, layout = [], None
    for class_id, name in items:
        start = time.perf_counter()
        feats = fim_features(task.build(name, seed), x, y, seed=seed)
        layout = feats.layout.to_dict()
        out.append((class_id, None if feats.invalid is None else feats.invalid.to_dict(),
                    feats.cdf, time.perf_counter() - start))
    return {"features": out, "layout": layout, "worker": _worker_name()}


def evaluate_job(task: str | Task, class_id: int, name: str, seed: int) -> dict:
    """Train one function with the task (a dask task); a training error is a failed run."""
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        metrics = dict(get_task(task).train(name, seed))
    except Exception as err:  # the run failed: record it, do not lose the search
        metrics = {"val_acc": float("nan"), "status": "failed",
                   "error": f"{type(err).__name__}: {err}"}
    return {"class_id": class_id, "seed": seed, "metrics": metrics,
            "seconds": time.perf_counter() - start, "worker": _worker_name(),
            "versions": {"torch": torch.__version__, "python": platform.python_version()}}


# ----------------------------------------------------------------------------- the driver
@dataclass
class _Run:
    config: SearchConfig
    ledger: SearchLedger
    task_ref: object
    session: str
    baselines: dict[int, str]
    log: object
    embedded_at: int = -1
    coords: np.ndarray | None = None
    coord_ids: np.ndarray | None = None
    pending: dict = field(default_factory=dict)  # future -> (kind, payload)


def space_store(space: str, operators: str = "paper"):
    """The :class:`aquasurf_core.space.store.SpaceStore` of ``"3-node"`` or ``"4-node"`` with
    the operator set ``operators`` (built once, then read from the cache)."""
    from aquasurf_core.space.schemas import FOUR_NODE_SCHEMAS, THREE_NODE_SCHEMA
    from aquasurf_core.space.store import build_space

    return build_space(THREE_NODE_SCHEMA if space == "3-node" else FOUR_NODE_SCHEMAS,
                       operators, progress=False)


def _space_names(space: str, operators: str = "paper") -> tuple[list[str], object]:
    store = space_store(space, operators)
    return [str(n) for n in store.unique["representative"]], store


def _evaluated(ledger: SearchLedger, baselines: dict[int, str],
               seed: int = 0) -> tuple[int, dict[int, float]]:
    """(evaluations beyond the baselines, {class_id: val_acc} of every result of the search's
    ``seed``)."""
    done = {r["class_id"]: r["val_acc"] for r in ledger.results(seed)}
    return sum(1 for c in done if c not in baselines), done


MIN_EMBEDDED = 20  # below this many valid featured functions, pick at random among them


def _embed(run: _Run, store) -> None:
    """Refit the union embedding of the functions with valid features (module docstring);
    with fewer than :data:`MIN_EMBEDDED` of them there are no coordinates yet."""
    from aquasurf_core.embedding.distances import fim_embedding_features
    from aquasurf_core.embedding.umap_models import FIM_SETTINGS, OUTPUT_SETTINGS, fit, union
    from aquasurf_core.features.fim import FimLayout
    from aquasurf_core.features.outputs import clean_outputs

    ids, valid, cdf = run.ledger.featured()
    ids, cdf = ids[valid], cdf[valid]
    run.embedded_at = len(ids)
    if len(ids) < MIN_EMBEDDED:
        run.coords, run.coord_ids = None, ids
        return
    layout = FimLayout.from_dict(run.ledger.meta("fim_layout"))
    start = time.perf_counter()
    seed = run.config.seed
    fim_model = fit(fim_embedding_features(cdf, layout), replace(FIM_SETTINGS, seed=seed))
    out_model = fit(clean_outputs(np.asarray(store.outputs[ids])),
                    replace(OUTPUT_SETTINGS, seed=seed))
    run.coords, run.coord_ids = union(fim_model, out_model).embedding_, ids
    run.log(f"search: embedded {len(ids)} functions with valid spectra "
            f"({time.perf_counter() - start:.1f} s)")


def _next_candidate(run: _Run, running: set[int]) -> int | None:
    """Claim and return the unevaluated, unclaimed function with valid features that KNR
    predicts best (at random while there are no coordinates or no result to learn from)."""
    _, done = _evaluated(run.ledger, run.baselines, run.config.seed)
    names = [str(i) for i in run.coord_ids]
    if not names:
        return None
    searcher = Searcher(names, run.coords, surrogate="knr" if run.coords is not None else
                        "random", k=run.config.k, n_random=0, seed=run.config.seed + len(done))
    for class_id, acc in done.items():
        if str(class_id) in searcher.index:
            searcher.observe(str(class_id), 0.0 if not np.isfinite(acc) else float(acc))
    for class_id in running:
        if str(class_id) in searcher.index:
            searcher.reserve(str(class_id))
    while asked := searcher.ask():
        if _claim(run, int(asked[0])):
            return int(asked[0])
        if run.ledger.spent(run.baselines) >= run.config.evaluations:
            return None  # the budget is used up (another driver on this ledger spent it)
        searcher.release(asked[0])
        searcher.reserve(asked[0])  # taken meanwhile: skip it
    return None


def _claim(run: _Run, class_id: int) -> bool:
    """Claim one function for evaluation within the search's budget (counted in the ledger)."""
    return bool(run.ledger.claim_evaluation([class_id], run.session,
                                            budget=run.config.evaluations,
                                            exclude=run.baselines))


def default_ledger_path(task_name: str) -> Path:
    """``<cache>/search/<task>/ledger.sqlite`` (:func:`aquasurf_core.paths.cache_dir`);
    ``ValueError`` for a task name that is not one path component."""
    from aquasurf_core.paths import cache_dir, check_path_name

    return cache_dir("search", check_path_name(task_name), "ledger.sqlite")


def _check_workers(workers: int, scheduler_address, client) -> None:
    if client is None and scheduler_address is None:
        _check_count("workers", workers, 1)


def _check_ledger_config(ledger: SearchLedger, task_name: str, config: SearchConfig) -> None:
    """Refuse a ledger of another task, space, operator set or seed (cheap: before any work)."""
    stored = ledger.meta("config")
    if stored is None:
        return
    if stored.get("task") != task_name:
        raise ValueError(f"{ledger.path} belongs to a search of task {stored.get('task')!r}, "
                         f"not {task_name!r}")
    for key, default in (("space", "4-node"), ("operators", "paper"), ("seed", 0)):
        if stored.get(key, default) != getattr(config, key):
            raise ValueError(f"{ledger.path} holds a search of the {key} "
                             f"{stored.get(key, default)!r}, not {getattr(config, key)!r}; "
                             "resume it with its own settings or use another ledger")


def _baseline_ids(store, baselines: Sequence[str]) -> list[int]:
    """The class ids of ``baselines`` in the space; ``ValueError`` naming any not found."""
    ids = [int(c) for c in store.class_of(list(baselines))]
    missing = [n for n, c in zip(baselines, ids, strict=True) if c < 0]
    if missing:
        raise ValueError(f"baseline(s) {', '.join(missing)} are not functions of this space "
                         "(or its cache is damaged); a search needs every baseline")
    return ids


def run_search(task: str | Task, ledger_path: str | Path, config: SearchConfig | None = None,
               *, workers: int = 2, scheduler_address: str | None = None, client=None,
               progress: bool = True, log=print) -> dict:
    """Run (or resume) a search of ``task`` recorded in the ledger at ``ledger_path`` (module
    docstring). Returns :func:`search_status` at the end. Raises
    :class:`~aquasurf_core.search.tasks.TaskError` for a task that cannot be searched, before
    any work starts."""
    from dask.distributed import wait
    from tqdm.auto import tqdm

    config = config or SearchConfig()
    _check_workers(workers, scheduler_address, client)
    task_obj = get_task(task)
    # built-in tasks travel by name (each worker builds its own); others pickled (cloudpickle)
    task_ref = task_obj.name if task_obj.name in builtin_tasks() else task_obj
    session = uuid.uuid4().hex[:12]
    ledger = SearchLedger(ledger_path)
    try:
        _check_ledger_config(ledger, task_obj.name, config)  # before the space is built
        names, store = _space_names(config.space, config.operators)
        baseline_ids = _baseline_ids(store, config.baselines)
        ledger.add_functions(names, config.seed, first=baseline_ids)
        released = ledger.release(keep_owner=session, stale_after=config.lease_seconds)
        ledger.set_meta("config", {**config.to_dict(), "task": task_obj.name,
                                   "task_info": task_obj.info, "functions": len(names)})
        sessions = ledger.meta("sessions", [])
        ledger.set_meta("sessions", [*sessions, {"session": session, "started": time.time(),
                                                 "host": socket.gethostname()}])
        baselines = dict(zip(baseline_ids, config.baselines, strict=True))
        log(f"search {task_obj.name}: {len(names):,} functions in {ledger.path}; "
            f"released {released} stale claims")
        run = _Run(config, ledger, task_ref, session, baselines, log)
        relu = int(baseline_ids[0])
        check_task(task_obj, train=False)  # cheap checks first: the model, K-FAC
        try:
            with dask_client(client, scheduler_address, workers) as running:
                # the cluster is reachable: now the check's training run (ReLU, seed 0), kept
                # as ReLU's baseline when the search's seed is 0
                if not ledger.results(config.seed):
                    metrics = check_task(task_obj)
                    if config.seed == 0 and config.baselines[0] == "relu(x)" and \
                            ledger.claim_evaluation([relu], session):
                        ledger.record_result(relu, 0, metrics, seconds=0.0, worker="check",
                                             session=session)
                slots = max(1, len(running.scheduler_info().get("workers", {})) or workers)
                try:
                    _loop(run, store, running, slots, progress, tqdm, wait, "FIRST_COMPLETED")
                finally:
                    for future in run.pending:
                        future.cancel()
        finally:
            ledger.release_own(session)
        return search_status(ledger)
    finally:
        ledger.close()


def _submit_features(run: _Run, client) -> bool:
    items = run.ledger.claim_features(run.config.feature_batch, run.session)
    if not items:
        return False
    future = client.submit(features_job, run.task_ref, items, run.config.seed, pure=False,
                           retries=run.config.retries)
    run.pending[future] = ("features", [c for c, _ in items])
    return True


def _submit_evaluation(run: _Run, client, class_id: int) -> None:
    run.ledger.start(class_id, run.session)
    future = client.submit(evaluate_job, run.task_ref, class_id, run.ledger.name_of(class_id),
                           run.config.seed, pure=False, retries=run.config.retries)
    run.pending[future] = ("evaluation", class_id)


def _fill(run: _Run, client, slots: int, done: dict, running: set[int], store) -> None:
    """Submit work until every slot is busy (module docstring for the policy)."""
    config, ledger = run.config, run.ledger
    while len(run.pending) < slots:
        evaluated = sum(1 for c in done if c not in run.baselines)
        in_flight = evaluated + sum(1 for c in running if c not in run.baselines)
        todo = [c for c in run.baselines if c not in done and c not in running]
        if todo and _claim(run, todo[0]):
            _submit_evaluation(run, client, todo[0])
            running.add(todo[0])
            continue
        n_featured, _ = ledger.feature_counts()
        left = ledger.count("new") > 0
        feature_jobs = sum(1 for kind, _ in run.pending.values() if kind == "features")
        searching = n_featured >= config.features or not left
        if searching and in_flight < config.evaluations and (
                feature_jobs >= 1 or slots == 1 or not left):
            if run.embedded_at < 0 or ledger.feature_counts()[1] >= \
                    max(run.embedded_at, 1) * (1 + config.refit_growth):
                _embed(run, store)
            class_id = _next_candidate(run, running)
            if class_id is not None:
                _submit_evaluation(run, client, class_id)
                running.add(class_id)
                continue
        if not left or (searching and feature_jobs >= 1) or not _submit_features(run, client):
            return


def _record(run: _Run, kind: str, result: dict) -> int:
    """Write a finished job to the ledger; returns how many searched functions it evaluated."""
    if kind == "features":
        from aquasurf_core.features.fim import Invalidity

        run.ledger.set_meta("fim_layout", result["layout"])
        run.ledger.record_features(
            [(c, None if inv is None else Invalidity.from_dict(inv), cdf, s)
             for c, inv, cdf, s in result["features"]], worker=str(result["worker"]))
        return 0
    run.ledger.record_result(result["class_id"], result["seed"], result["metrics"],
                             seconds=result["seconds"], worker=str(result["worker"]),
                             versions=result["versions"], session=run.session)
    return int(result["class_id"] not in run.baselines)


def _loop(run: _Run, store, client, slots: int, progress: bool, tqdm, wait, first) -> None:
    config, ledger = run.config, run.ledger
    beat = config.lease_seconds / 3
    renewed = -np.inf
    evaluated, _ = _evaluated(ledger, run.baselines, config.seed)
    bar_f = tqdm(total=config.features, desc="features", unit="fn", disable=not progress,
                 initial=min(config.features, ledger.feature_counts()[0]))
    bar_e = tqdm(total=config.evaluations, desc="evaluations", unit="fn",
                 disable=not progress, initial=min(config.evaluations, evaluated))
    while True:
        if time.monotonic() - renewed >= beat:  # at most ~2 beats apart: within the lease
            renewed = time.monotonic()
            ledger.heartbeat(run.session)
            ledger.release(keep_owner=run.session, stale_after=config.lease_seconds)
        evaluated, done = _evaluated(ledger, run.baselines, config.seed)
        running = {p for kind, p in run.pending.values() if kind == "evaluation"}
        if evaluated >= config.evaluations and not (running - set(run.baselines)):
            break
        _fill(run, client, slots, done, running, store)
        if not run.pending:
            if ledger.claims_of_others(run.session) and evaluated < config.evaluations:
                time.sleep(beat)  # another driver's claims: wait for them (or their lease)
                continue
            break
        try:
            finished, _ = wait(list(run.pending), timeout=beat, return_when=first)
        except TimeoutError:  # dask raises the built-in one
            continue  # nothing finished: renew the lease and look again
        for future in finished:
            kind, _ = run.pending.pop(future)
            gained = _record(run, kind, future.result())
            bar_e.update(min(gained, bar_e.total - bar_e.n))
            bar_f.n = min(config.features, ledger.feature_counts()[0])
            bar_f.refresh()
    bar_f.close()
    bar_e.close()


def search_status(ledger: SearchLedger) -> dict:
    """What a search ledger holds: functions by status, with features, evaluated (by the
    search, seed 0), runs (every seed, including comparisons), failed, the best so far, and
    throughput (features per second and evaluations per minute over the
    recorded times)."""
    seed = int((ledger.meta("config") or {}).get("seed", 0))
    results = ledger.results(seed)
    valid = [r for r in results if np.isfinite(r["val_acc"])]
    best = max(valid, key=lambda r: r["val_acc"]) if valid else None
    times = ledger.feature_times()
    finished = sorted(r["finished_at"] for r in results)
    return {
        "ledger": str(ledger.path),
        "task": (ledger.meta("config") or {}).get("task"),
        "functions": ledger.count(),
        "statuses": ledger.counts(),
        "with_features": int(len(times)),
        "evaluated": len(results),
        "runs": ledger.count_results(),
        "failed": sum(1 for r in results if r["metrics"].get("status") == "failed"),
        "best": None if best is None else {"name": best["name"], "val_acc": best["val_acc"],
                                           "test_acc": best["metrics"].get("test_acc")},
        "features_per_second": (round(float((len(times) - 1) / (times[-1] - times[0])), 2)
                                if len(times) > 1 and times[-1] > times[0] else None),
        "evaluations_per_minute": (round(float(60 * (len(finished) - 1)
                                               / (finished[-1] - finished[0])), 2)
                                   if len(finished) > 1 and finished[-1] > finished[0]
                                   else None),
    }


def export_results(ledger: SearchLedger):
    """A tidy table of every result: order, class id, name, seed, validation and test
    accuracy, status, seconds, worker, and the other metrics as JSON."""
    import pandas as pd

    rows = []
    for order, r in enumerate(ledger.results(None)):
        metrics = dict(r["metrics"])
        rows.append({"order": order, "class_id": r["class_id"], "name": r["name"],
                     "seed": r["seed"], "val_acc": r["val_acc"],
                     "test_acc": metrics.pop("test_acc", float("nan")),
                     "status": metrics.pop("status", "ok"), "seconds": r["seconds"],
                     "worker": r["worker"], "metrics": json.dumps(metrics, default=float)})
    return pd.DataFrame(rows)


def write_table(table, path: str | Path) -> Path:
    """Write a results ``table`` (:func:`export_results`) to ``path``, Parquet when its name
    ends in ``.parquet`` and CSV otherwise, replacing any file there atomically
    (:func:`aquasurf_core.storage.atomic_write_bytes`): a full disk or a crash leaves the old
    file, never one cut mid-row. Returns the path."""
    import io

    from aquasurf_core.storage import atomic_write_bytes, atomic_write_text

    if str(path).endswith(".parquet"):
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        return atomic_write_bytes(path, buffer.getvalue())
    return atomic_write_text(path, table.to_csv(index=False))


def final_ledger_path(ledger_path: str | Path) -> Path:
    """Where the final evaluations of a search's discoveries go (Table 1): beside the search's
    ledger, ``<stem>-final.sqlite``."""
    ledger_path = Path(ledger_path)
    return ledger_path.with_name(f"{ledger_path.stem}-final{ledger_path.suffix}")


def transfer_ledger_path(ledger_path: str | Path, task: str) -> Path:
    """Where a search's discoveries trained on another ``task`` go (Table 2): beside the
    search's ledger, ``<stem>-transfer-<task>.sqlite``."""
    from aquasurf_core.paths import check_path_name

    ledger_path = Path(ledger_path)
    if task:  # "" gives the common prefix of every transfer ledger
        check_path_name(task)
    return ledger_path.with_name(f"{ledger_path.stem}-transfer-{task}{ledger_path.suffix}")


def compare_with_baselines(task: str | Task, ledger_path: str | Path, *, top: int = 1,
                           seeds: Sequence[int] = (0, 1, 2), workers: int = 2,
                           scheduler_address: str | None = None, client=None,
                           final_task: str | Task | None = None,
                           transfer_task: str | Task | None = None):
    """The ``top`` discovered functions (highest validation accuracy among the searched,
    non-baseline ones, with the search's seed) against the baselines, each trained with every
    seed of ``seeds`` (missing runs are evaluated now, on dask, and recorded): one row per
    function with the median validation and test accuracy over the seeds and the per-seed
    test accuracies, best median test accuracy first.

    With ``final_task`` (the paper's Table 1: the same network trained longer, e.g. the
    built-in ``<task>-final``), the chosen functions are trained with that task instead and
    recorded in their own ledger, :func:`final_ledger_path`, so that the search's results and
    the final ones never mix. With ``transfer_task`` (Table 2: another task), likewise, in
    :func:`transfer_ledger_path`. Raises ``ValueError`` when both are given."""
    if final_task is not None and transfer_task is not None:
        raise ValueError("give final_task or transfer_task, not both")
    _check_count("top", top, 1)
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers >= 0, got {seeds!r}")
    for seed in seeds:
        _check_count("seeds", seed, 0)
    _check_workers(workers, scheduler_address, client)
    search_task = get_task(task).name
    other = final_task if final_task is not None else transfer_task
    task_obj = get_task(other if other is not None else task)
    task_ref = task_obj.name if task_obj.name in builtin_tasks() else task_obj
    with SearchLedger(ledger_path, readonly=True) as ledger:
        config = ledger.meta("config") or {}
        if config.get("task") != search_task:
            raise ValueError(f"{ledger.path} holds a search of task {config.get('task')!r}, "
                             f"not {search_task!r}; compare it with --task "
                             f"{config.get('task')} or name the ledger of {search_task}")
        names, store = _space_names(config.get("space", "4-node"),
                                    config.get("operators", "paper"))
        baseline_names = list(config.get("baselines", SearchConfig().baselines))
        baselines = dict(zip(_baseline_ids(store, baseline_names), baseline_names, strict=True))
        chosen = choose_for_comparison(export_results(ledger), baselines, top,
                                       seed=int(config.get("seed", 0)))
    if other is None:
        target_path, session = Path(ledger_path), "compare"
    elif final_task is not None:
        target_path, session = final_ledger_path(ledger_path), "final"
    else:
        target_path, session = transfer_ledger_path(ledger_path, task_obj.name), "transfer"
    target = SearchLedger(target_path)
    try:
        stored = target.meta("config")
        if other is not None and stored is not None and stored.get("task") != task_obj.name:
            raise ValueError(f"{target.path} holds runs of task {stored.get('task')!r}, not "
                             f"{task_obj.name!r}")
        if other is not None:
            target.add_functions(names, int(config.get("seed", 0)))
            target.set_meta("config", {**config, "task": task_obj.name,
                                       "task_info": task_obj.info,
                                       f"{session}_of": config.get("task")})
        have = {(r["class_id"], r["seed"]) for r in target.results(None)}
        missing = [(c, s) for c, _, _ in chosen for s in seeds if (c, s) not in have]
        if missing:
            with dask_client(client, scheduler_address, workers) as running:
                futures = [running.submit(evaluate_job, task_ref, c, target.name_of(c), s,
                                          pure=False) for c, s in missing]
                for result in running.gather(futures):
                    target.record_result(result["class_id"], result["seed"], result["metrics"],
                                         seconds=result["seconds"],
                                         worker=str(result["worker"]),
                                         versions=result["versions"], session=session)
        table = export_results(target)
    finally:
        target.close()
    return median_over_seeds(table, chosen, seeds)


def choose_for_comparison(table, baselines: dict[int, str], top: int, *,
                          seed: int = 0) -> list[tuple[int, str, str]]:
    """``(class_id, name, kind)`` of the baselines (``{class_id: name}``, kind "baseline") and
    the ``top`` searched functions with the highest validation accuracy of the search's
    ``seed`` (kind "discovered", finite accuracies only) in a results ``table``."""
    first = table[table["seed"] == seed]
    searched = first[~first["class_id"].isin(list(baselines)) & np.isfinite(first["val_acc"])]
    searched = searched.sort_values("val_acc", ascending=False, kind="stable").head(top)
    return [(c, n, "baseline") for c, n in baselines.items()] + \
        [(int(c), str(n), "discovered") for c, n in zip(searched["class_id"], searched["name"],
                                                          strict=True)]


def median_over_seeds(table, chosen: Sequence[tuple[int, str, str]], seeds: Sequence[int]):
    """One row per chosen ``(class_id, name, kind)``: the median validation and test accuracy
    over ``seeds``, the smallest and largest test accuracy, and the per-seed test accuracies, from a results ``table`` (columns
    class_id, seed, val_acc, test_acc: :func:`export_results` or a shipped search), best
    median test accuracy first. Raises ``KeyError`` naming a missing (function, seed) run."""
    import pandas as pd

    runs = {(int(c), int(s)): (v, t) for c, s, v, t in zip(
        table["class_id"], table["seed"], table["val_acc"], table["test_acc"], strict=True)}
    rows = []
    for class_id, name, kind in chosen:
        missing = [s for s in seeds if (class_id, s) not in runs]
        if missing:
            raise KeyError(f"{name} (class {class_id}) has no run with seed(s) {missing}")
        vals = [runs[class_id, s][0] for s in seeds]
        tests = [runs[class_id, s][1] for s in seeds]
        rows.append({"function": name, "kind": kind, "class_id": class_id,
                     "median val acc": float(np.median(vals)),
                     "median test acc": float(np.median(tests)),
                     "min test acc": float(np.min(tests)), "max test acc": float(np.max(tests)),
                     "test acc per seed": " ".join(f"{t:.3f}" for t in tests)})
    return pd.DataFrame(rows).sort_values("median test acc", ascending=False,
                                          kind="stable").reset_index(drop=True)
