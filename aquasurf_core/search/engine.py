"""The large-scale search engine (paper Section 6; Appendix E, "Search Implementation"), on
dask.distributed, around a ledger that survives faults.

What one search does (:func:`run_search`), the paper's recipe with our safeguards:

1. The space's unique functions (default the 4-node space; :mod:`aquasurf_core.space.store`)
   go into the ledger (:class:`~aquasurf_core.search.ledger.SearchLedger`) in a seeded random
   order. The task is checked (:func:`~aquasurf_core.search.tasks.check_task`) before any
   work: the model, K-FAC's layers, and the Fisher spectra of ReLU and the baselines at
   initialisation -- a task where none of them is valid (a zero-initialised head or residual
   branch, say) is refused with the layer, the kind of invalidity and the parameters that are
   all zeros, rather than featuring the whole space for nothing; then the check trains ReLU,
   which is kept as ReLU's baseline result.
2. The baselines (ReLU, ELU, SELU, sigmoid, Softplus, Softsign, Swish, tanh) lead the random
   order, so the first feature tasks compute theirs, and each is evaluated as soon as it has
   features (so its result is what the surrogate first learns from), while the other workers
   compute Fisher features for functions in the random order (``feature_batch`` functions per
   dask task).
3. Once ``features`` functions have features, every free worker but one evaluates the function
   with the highest score -- by default (``surrogate="lgp-ucb"``) the upper confidence bound
   ``mu + kappa sigma`` (kappa = 2) of a Gaussian process with the Laplace kernel
   ``exp(-d / length)`` (length = 0.3) on the raw distances between the functions with valid
   spectra (Eq. 2 + Eq. 3, each divided by its median: no UMAP), chosen over the paper's KNR on
   the union embedding on held-out benchmarks (notebook 04, section 7: higher AUC on all
   three, the ≤ 30-evaluation target met on one); with ``surrogate="knr-union"`` the paper's
   own, KNR (k = 3) on the 2-D union UMAP embedding (FIM features + outputs,
   :mod:`aquasurf_core.embedding.umap_models`). The surrogate is refitted with every result;
   the distances (or the embedding) are recomputed when the featured set has grown by
   ``refit_growth``, and once more when no more features will come -- in a separate process
   (:class:`~aquasurf_core.search.surrogate_space.Refitter`): the search goes on with the
   previous space meanwhile, so no free worker waits for a refit (only the very first space is
   waited for, with the workers computing features). The last worker keeps computing features
   (all workers evaluate when there is only one) until ``features x (1 + extra_features)``
   functions have them; then it evaluates too. With several evaluations in flight, each
   running function counts as if it had returned the surrogate's prediction (``batch=
   "believer"``, GP-BUCB for the UCB surrogate: :mod:`aquasurf_core.search.searcher`), so
   parallel workers are not all sent into one cluster.
4. It stops after ``evaluations`` functions beyond the baselines, and reports
   (:func:`search_status`, :func:`report_lines`, logged): how many of the requested
   evaluations ran and how many failed, how many functions' features failed, and how many
   picks the surrogate proposed and how many were random, and why (fewer than
   :data:`MIN_EMBEDDED` functions with valid spectra; no result to learn from yet) -- with a
   ``WARNING:`` line when most picks were random, or fewer evaluations ran than were asked for.
   Each result records who proposed it (``proposer`` in the ledger: "baseline", "surrogate",
   "random", with the reason).

Where it runs (:class:`SearchConfig`, ``aquasurf search run --device --factor-dtype
--on-unsupported --min-coverage``): the ``device`` of the Fisher features, the check, and
training where the task's ``train`` takes a device; K-FAC's factor precision, its policy for
layers it cannot represent and the coverage it must reach
(:class:`~aquasurf_core.search.tasks.StageOptions`). A ledger is resumed only with the factor
precision it was started with (one precision per ledger); the unsupported-layer policy may
change (where K-FAC covers everything, both policies give the same features).

Faults. Every result and every feature batch is written to the ledger at once. A function
whose features raise (a CUDA out-of-memory error, a ``build`` that fails for that name) fails
alone: the error (type and message) is recorded for it in the ledger, the batch's other
functions and the search go on, and no resume computes it again (when every one of a session's
first :data:`FEATURE_FAILURES_TO_STOP` fails, the cause is the task or the machine, and the
search stops with a :class:`~aquasurf_core.search.tasks.TaskError`; so it does when the task,
its Fisher batch or the device cannot be had on a worker at all); a training run that raises is
a failed result, which spends one evaluation of the budget and is never trained again either
(both are counted in the end report). Claiming a
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

Workers: a local cluster of single-threaded processes by default -- on a machine with several
GPUs one per GPU, each pinned to its device with ``CUDA_VISIBLE_DEVICES``
(:mod:`aquasurf_core.search.cluster`); ``scheduler_address`` (or a ``client``) runs on an
existing cluster -- e.g. SLURM or PBS through ``dask-jobqueue``, one worker per GPU, each
pinned likewise.
"""

from __future__ import annotations

import json
import platform
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from aquasurf_core.search.cluster import dask_client
from aquasurf_core.search.ledger import SearchLedger
from aquasurf_core.search.searcher import BATCH_POLICIES, Searcher
from aquasurf_core.search.surrogate_space import Refitter, SpaceInputs, SurrogateSpace
from aquasurf_core.search.tasks import (
    DEFAULT_MIN_COVERAGE,
    StageOptions,
    Task,
    TaskError,
    builtin_tasks,
    check_task,
    check_training,
    get_task,
    resolve_device,
    task_features,
    train_task,
)
from aquasurf_core.space.baselines import COATNET_BASELINES
from aquasurf_core.space.operators import DEFAULT_OPERATOR_SET, OPERATOR_SETS
from aquasurf_core.space.schemas import DEFAULT_SPACE, NAMED_SPACES

__all__ = ["ENGINE_SURROGATES", "EXTENDED_BASELINES", "SearchConfig", "baseline_classes",
           "check_count", "check_workers", "default_ledger_path", "evaluate_job",
           "export_results", "features_job", "report_lines", "run_search", "search_status",
           "space_names", "space_store", "task_for_workers", "write_table"]


#: The baselines of a search with the extended operators (Table 3): the 13 of
#: :data:`aquasurf_core.space.COATNET_BASELINES`, ReLU first (the task check's ReLU run is kept
#: as ReLU's baseline result).
EXTENDED_BASELINES: tuple[str, ...] = tuple(sorted(COATNET_BASELINES.values(),
                                                   key=lambda name: name != "relu(x)"))


#: The engine's surrogates (:attr:`SearchConfig.surrogate`): GP-UCB on the raw Eq. 2 + Eq. 3
#: distances (the default), and the paper's KNR on the 2-D union UMAP embedding.
ENGINE_SURROGATES = ("lgp-ucb", "knr-union")


def check_count(name: str, value, least: int) -> None:
    """Check a count: ``value`` must be an integer (not a bool) of at least ``least``.

    Raises ``ValueError`` naming ``name``, the bound and the value otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")


@dataclass(frozen=True)
class SearchConfig:
    """Everything that shapes a search (module docstring)."""

    evaluations: int = 50
    features: int = 2000
    #: a named space (:data:`aquasurf_core.space.schemas.NAMED_SPACES`)
    space: str = DEFAULT_SPACE
    seed: int = 0
    k: int = 3
    feature_batch: int = 32
    refit_growth: float = 0.25
    baselines: tuple[str, ...] = ("relu(x)", "elu(x)", "selu(x)", "sigmoid(x)",
                                  "softplus(x)", "softsign(x)", "swish(x)", "tanh(x)")
    retries: int = 2
    #: the operator set of the space (:data:`aquasurf_core.space.operators.OPERATOR_SETS`):
    #: "paper", or "coatnet" (the paper's Table 3: ELiSH, GELU, Leaky ReLU and Mish added to
    #: the unary operators; give the 13 baselines of :data:`EXTENDED_BASELINES` with it, as
    #: ``aquasurf search run --operators coatnet`` does)
    operators: str = DEFAULT_OPERATOR_SET
    #: seconds a claim lives without the driver's heartbeat (module docstring)
    lease_seconds: float = 30.0
    #: what proposes the next function (:data:`ENGINE_SURROGATES`): "lgp-ucb" (default: GP-UCB
    #: with the Laplace kernel exp(-d / length) on the raw Eq. 2 + Eq. 3 distances, bonus
    #: kappa x sigma; chosen on held-out benchmarks, notebook 04 section 7) or "knr-union"
    #: (the paper's: KNR with k neighbours on the 2-D union UMAP embedding)
    surrogate: str = "lgp-ucb"
    kappa: float = 2.0
    length: float = 0.3
    #: features computed after the search has started, as a fraction of ``features``: at most
    #: ``features x (1 + extra_features)`` functions get Fisher features (0: none beyond
    #: ``features``); every worker evaluates once they have
    extra_features: float = 0.5
    #: how functions still being evaluated shape the next pick
    #: (:data:`~aquasurf_core.search.searcher.BATCH_POLICIES`): "believer" (default) or
    #: "independent"
    batch: str = "believer"
    #: where the task's stages run, and K-FAC's settings (:class:`~aquasurf_core.search.tasks.
    #: StageOptions`): the device (None: the task's own, else the CPU), the factor precision
    #: ("auto" | "float32" | "float64"), a layer K-FAC cannot represent ("error" | "skip"), the
    #: fraction of the parameters the spectrum must cover (None: no threshold)
    device: str | None = None
    factor_dtype: str = "auto"
    on_unsupported: str = "skip"
    min_coverage: float | None = DEFAULT_MIN_COVERAGE

    def __post_init__(self) -> None:
        for name, least in (("evaluations", 0), ("features", 0), ("feature_batch", 1),
                            ("seed", 0), ("k", 1), ("retries", 0)):
            check_count(name, getattr(self, name), least)
        for name in ("refit_growth", "lease_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not self.baselines or len(set(self.baselines)) != len(self.baselines):
            raise ValueError(f"baselines must be distinct function names, got {self.baselines!r}")
        for name, registry in (("space", NAMED_SPACES), ("operators", OPERATOR_SETS)):
            if getattr(self, name) not in registry:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, registry))}, got "
                                 f"{getattr(self, name)!r}")
        if self.surrogate not in ENGINE_SURROGATES:
            raise ValueError(f"surrogate must be one of {', '.join(ENGINE_SURROGATES)}, got "
                             f"{self.surrogate!r}")
        for name in ("kappa", "length", "extra_features"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not np.isfinite(value) or value < (1e-9 if name == "length" else 0):
                kind = "positive" if name == "length" else "non-negative"
                raise ValueError(f"{name} must be a {kind} number, got {value!r}")
        if self.batch not in BATCH_POLICIES:
            raise ValueError(f"batch must be one of {', '.join(BATCH_POLICIES)}, got "
                             f"{self.batch!r}")
        self.stage_options  # noqa: B018 -- checks device, factor_dtype, on_unsupported, ...

    @property
    def feature_cap(self) -> int:
        """The most functions that get Fisher features: ``features x (1 + extra_features)``."""
        return int(self.features * (1 + self.extra_features))

    @property
    def stage_options(self) -> StageOptions:
        """The :class:`~aquasurf_core.search.tasks.StageOptions` of this search."""
        return StageOptions(self.device, self.factor_dtype, self.on_unsupported,
                            self.min_coverage)

    def to_dict(self) -> dict:
        """The configuration as a JSON-able dict (``baselines`` a list): what the search
        ledger stores as its ``config``."""
        return {**asdict(self), "baselines": list(self.baselines)}


# ----------------------------------------------------------------------------- worker jobs
def _worker_name() -> str:
    try:
        from dask.distributed import get_worker

        return get_worker().name
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{platform.python_implementation()}"


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:1000]


def features_job(task: str | Task, items: Sequence[tuple[int, str]], seed: int,
                 options: StageOptions | None = None) -> dict:
    """Fisher features of ``(class_id, name)`` items with the task's network and ``options``
    (:func:`~aquasurf_core.search.tasks.task_features`; a dask task). Each function fails
    alone: an exception while building or computing one (a CUDA out-of-memory, a bug in
    ``build``) becomes its entry in ``errors``, ``(class_id, "Type: message", seconds)``, and
    the others go on. What fails for every function -- the task, its Fisher batch or the
    device cannot be had on this worker -- raises: the job is retried, then the search stops
    (nothing recorded for those functions)."""
    import torch

    torch.set_num_threads(1)
    out, errors, layout = [], [], None
    task = get_task(task)
    resolve_device((options or StageOptions()).device or task.device)
    batch = task.fisher_batch(seed)
    for class_id, name in items:
        start = time.perf_counter()
        try:
            feats = task_features(task, name, seed, options, batch=batch)
        except Exception as err:  # this function's features failed: record it, go on
            errors.append((class_id, _describe(err), time.perf_counter() - start))
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # what an out-of-memory error left allocated
            continue
        layout = feats.layout.to_dict()
        out.append((class_id, None if feats.invalid is None else feats.invalid.to_dict(),
                    feats.cdf, time.perf_counter() - start))
    return {"features": out, "errors": errors, "layout": layout, "worker": _worker_name()}


def evaluate_job(task: str | Task, class_id: int, name: str, seed: int,
                 device: str | None = None) -> dict:
    """Train one function with the task (a dask task; on ``device`` where the task's
    ``train`` takes one: :func:`~aquasurf_core.search.tasks.train_task`); a training error is
    a failed run. A :class:`~aquasurf_core.search.tasks.TaskError` (the task, or the device,
    cannot be had on this worker: every run would fail) raises instead: the job is retried,
    then the search stops."""
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        task = get_task(task)
        metrics = dict(train_task(task, name, seed, device or task.device))
    except TaskError:
        raise
    except Exception as err:  # the run failed: record it, do not lose the search
        metrics = {"val_acc": float("nan"), "status": "failed", "error": _describe(err)}
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
    refitter: Refitter
    embedded_at: int = -1  # valid featured functions in the space in use (-1: none yet)
    requested_at: int = -1  # ... in the space last asked for
    coords: np.ndarray | None = None
    coord_ids: np.ndarray | None = None
    distances: np.ndarray | None = None  # raw distances of coord_ids (distance surrogates)
    pending: dict = field(default_factory=dict)  # future -> (kind, payload)
    proposals: dict = field(default_factory=dict)  # class_id -> (proposer, reason)
    feature_outcomes: list = field(default_factory=lambda: [0, 0])  # this session: [ok, failed]
    relu: int = -1  # ReLU's class id
    check_metrics: dict | None = None  # the check's ReLU run, recorded once ReLU has features


def space_store(space: str, operators: str = DEFAULT_OPERATOR_SET):
    """The :class:`aquasurf_core.space.store.SpaceStore` of the named ``space`` (a key of
    :data:`~aquasurf_core.space.schemas.NAMED_SPACES`, e.g. ``"3-node"`` or ``"4-node"``) with
    the operator set ``operators`` (built once, then read from the cache). Raises ``KeyError``
    for a space that is not named there."""
    from aquasurf_core.space.store import build_space

    return build_space(NAMED_SPACES[space], operators, progress=False)


def space_names(space: str, operators: str = DEFAULT_OPERATOR_SET) -> tuple[list[str], object]:
    """``(names, store)``: the representative name of every unique function of the space
    (:func:`space_store`), in class-id order, and the store itself."""
    store = space_store(space, operators)
    return [str(n) for n in store.unique["representative"]], store


def _evaluated(ledger: SearchLedger, baselines: dict[int, str],
               seed: int = 0) -> tuple[int, dict[int, float]]:
    """(evaluations beyond the baselines, {class_id: val_acc} of every result of the search's
    ``seed``)."""
    done = {r["class_id"]: r["val_acc"] for r in ledger.results(seed)}
    return sum(1 for c in done if c not in baselines), done


MIN_EMBEDDED = 20  # below this many valid featured functions, pick at random among them
#: A session whose first this many feature computations (at least two batches) all failed
#: stops: a failure of everything is the task's or the machine's, not one function's.
FEATURE_FAILURES_TO_STOP = 50

#: Why a pick was random rather than the surrogate's (recorded with the result).
TOO_FEW_EMBEDDED = "fewer than MIN_EMBEDDED={} functions with valid spectra"
NOTHING_LEARNED = "no results to learn from yet (no evaluated function has a valid spectrum)"


def _use_space(run: _Run, space: SurrogateSpace) -> None:
    run.coords, run.distances, run.coord_ids = space.coords, space.distances, space.class_ids
    run.embedded_at = space.size
    what = "embedded" if space.coords is not None else "distances between"
    run.log(f"search: {what} {space.size} functions with valid spectra "
            f"({space.seconds:.1f} s, off the workers' path)")


def _refresh(run: _Run, store, final: bool = False) -> None:
    """Keep what the surrogate searches on up to date (module docstring, step 3): take a
    finished refit; ask for a new one (:mod:`~aquasurf_core.search.surrogate_space`) when the
    valid featured set has grown by ``refit_growth`` since the last one asked for, or -- with
    ``final`` (no more features will come) -- by anything. With fewer than
    :data:`MIN_EMBEDDED` of them there is no space (random picks), at once."""
    future = run.refitter.future
    if future is not None and future.done():
        run.refitter.future = None
        _use_space(run, future.result())  # a refit that raised raises here
    if run.refitter.running:
        return
    valid = run.ledger.feature_counts()[1]
    grown = valid >= max(run.requested_at, 1) * (1 + run.config.refit_growth)
    if not (run.requested_at < 0 or grown or (final and valid > run.requested_at)):
        return
    ids, ok, cdf = run.ledger.featured()
    ids, cdf = ids[ok], cdf[ok]
    run.requested_at = len(ids)
    if len(ids) < MIN_EMBEDDED:
        run.coords, run.distances, run.coord_ids = None, None, ids
        run.embedded_at = len(ids)
        return
    inputs = SpaceInputs(ids, cdf, run.ledger.meta("fim_layout"),
                         np.asarray(store.outputs[ids]))
    run.refitter.submit(run.config.surrogate, inputs, run.config.seed)


def _next_candidate(run: _Run, running: set[int]) -> int | None:
    """Claim and return the unevaluated, unclaimed function with valid features that KNR
    predicts best (at random while there are no coordinates or no result to learn from); who
    proposed it, and why a random pick was random, go to ``run.proposals``."""
    _, done = _evaluated(run.ledger, run.baselines, run.config.seed)
    names = [str(i) for i in run.coord_ids]
    if not names:
        return None
    config = run.config
    seed = config.seed + len(done)
    ready = run.coords is not None or run.distances is not None
    if run.distances is not None:
        searcher = Searcher(names, None, distances=run.distances, surrogate=config.surrogate,
                            options={"kappa": float(config.kappa),
                                     "length": float(config.length)},
                            k=config.k, n_random=0, seed=seed, batch=config.batch)
    else:
        searcher = Searcher(names, run.coords, surrogate="knr" if ready else "random",
                            k=config.k, n_random=0, seed=seed, batch=config.batch)
    learned = 0
    for class_id, acc in done.items():
        if str(class_id) in searcher.index:
            searcher.observe(str(class_id), 0.0 if not np.isfinite(acc) else float(acc))
            learned += 1
    for class_id in running:
        if str(class_id) in searcher.index:
            searcher.reserve(str(class_id))
    if not ready:
        proposal = ("random", TOO_FEW_EMBEDDED.format(MIN_EMBEDDED))
    elif not learned:
        proposal = ("random", NOTHING_LEARNED)
    elif config.surrogate == "knr-union":
        proposal = ("surrogate", f"KNR (k={config.k}) on the union embedding")
    else:
        proposal = ("surrogate", f"GP-UCB (kappa={config.kappa:g}, length={config.length:g}) "
                                 "on the raw Eq. 2 + Eq. 3 distances")
    while asked := searcher.ask():
        if _claim(run, int(asked[0])):
            run.proposals[int(asked[0])] = proposal
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


def task_for_workers(task: Task):
    """What travels to the workers: a built-in task's name (each worker builds its own), else
    the task itself, pickled by cloudpickle -- checked here, so that a task that cannot travel
    is a :class:`TaskError` before any work rather than a serialisation error mid-search.
    Returns the name or the task; raises :class:`TaskError` when cloudpickle fails."""
    if task.name in builtin_tasks():
        return task.name
    import cloudpickle

    try:
        cloudpickle.dumps(task)
    except Exception as err:  # noqa: BLE001 -- whatever pickling raises is reported
        raise TaskError(
            f"task {task.name!r} cannot be sent to the dask workers: cloudpickle failed with "
            f"{type(err).__name__}: {err}. Functions defined in a notebook or script travel by "
            "value with every global they name: keep large data and open resources inside the "
            "functions, and import classes (from torchvision.ops import MLP) rather than naming "
            "torch.ops / torchvision.ops attributes, which cannot be pickled") from err
    return task


def default_ledger_path(task_name: str) -> Path:
    """``<cache>/search/<task>/ledger.sqlite`` (:func:`aquasurf_core.paths.cache_dir`);
    ``ValueError`` for a task name that is not one path component."""
    from aquasurf_core.paths import cache_dir, check_path_name

    return cache_dir("search", check_path_name(task_name), "ledger.sqlite")


def check_workers(workers: int, scheduler_address, client) -> None:
    """Check ``workers`` (:func:`check_count`, at least 1) when a local cluster is to be
    started, i.e. when neither a ``client`` nor a ``scheduler_address`` is given."""
    if client is None and scheduler_address is None:
        check_count("workers", workers, 1)


def _check_ledger_config(ledger: SearchLedger, task_name: str, config: SearchConfig) -> None:
    """Refuse a ledger of another task, space, operator set, seed or factor precision (the
    features of one ledger share one layout and precision;
    cheap: before any work)."""
    stored = ledger.meta("config")
    if stored is None:
        return
    if stored.get("task") != task_name:
        raise ValueError(f"{ledger.path} belongs to a search of task {stored.get('task')!r}, "
                         f"not {task_name!r}")
    # on_unsupported is not compared: with "error" a model that K-FAC covers fully gets the
    # same features as with "skip", and one it does not cover got none
    for key, default in (("space", DEFAULT_SPACE), ("operators", DEFAULT_OPERATOR_SET),
                         ("seed", 0), ("factor_dtype", "auto")):
        if stored.get(key, default) != getattr(config, key):
            raise ValueError(f"{ledger.path} holds a search of the {key} "
                             f"{stored.get(key, default)!r}, not {getattr(config, key)!r}; "
                             "resume it with its own settings or use another ledger")


def baseline_classes(store, baselines: Sequence[str]) -> list[int]:
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
    check_workers(workers, scheduler_address, client)
    task_obj = get_task(task)
    resolve_device(config.device or task_obj.device)  # a device this machine lacks: now
    # built-in tasks travel by name (each worker builds its own); others pickled (cloudpickle)
    task_ref = task_for_workers(task_obj)
    session = uuid.uuid4().hex[:12]
    ledger = SearchLedger(ledger_path)
    try:
        _check_ledger_config(ledger, task_obj.name, config)  # before the space is built
        names, store = space_names(config.space, config.operators)
        baseline_ids = baseline_classes(store, config.baselines)
        ledger.add_functions(names, config.seed, first=baseline_ids)
        released = ledger.release(keep_owner=session, stale_after=config.lease_seconds)
        ledger.set_meta("config", {**config.to_dict(), "task": task_obj.name,
                                   "task_info": task_obj.info, "functions": len(names),
                                   "baseline_ids": [int(c) for c in baseline_ids]})
        sessions = ledger.meta("sessions", [])
        ledger.set_meta("sessions", [*sessions, {"session": session, "started": time.time(),
                                                 "host": socket.gethostname()}])
        baselines = dict(zip(baseline_ids, config.baselines, strict=True))
        log(f"search {task_obj.name}: {len(names):,} functions in {ledger.path}; "
            f"released {released} stale claims")
        run = _Run(config, ledger, task_ref, session, baselines, log, Refitter())
        relu = int(baseline_ids[0])
        # cheap checks first: the model, K-FAC, the baselines' spectra (no training)
        check_task(task_obj, train=False, baselines=config.baselines,
                   options=config.stage_options)
        try:
            with dask_client(client, scheduler_address, workers) as running:
                # the cluster is reachable: now the check's training run (ReLU, seed 0), kept
                # as ReLU's baseline when the search's seed is 0
                if not ledger.results(config.seed):
                    metrics = check_training(task_obj, config.stage_options)
                    if config.seed == 0 and config.baselines[0] == "relu(x)":
                        run.relu, run.check_metrics = relu, metrics
                slots = max(1, len(running.scheduler_info().get("workers", {})) or workers)
                try:
                    _loop(run, store, running, slots, progress, tqdm, wait, "FIRST_COMPLETED")
                finally:
                    for future in run.pending:
                        future.cancel()
        finally:
            run.refitter.close()
            ledger.release_own(session)
        status = search_status(ledger)
        for line in report_lines(status):
            log(line)
        return status
    finally:
        ledger.close()


def _submit_features(run: _Run, client, room: int) -> bool:
    """Claim up to ``feature_batch`` functions (at most ``room``) for features and submit
    them; False when there was nothing to claim."""
    items = run.ledger.claim_features(min(run.config.feature_batch, room), run.session)
    if not items:
        return False
    future = client.submit(features_job, run.task_ref, items, run.config.seed,
                           run.config.stage_options, pure=False, retries=run.config.retries)
    run.pending[future] = ("features", [c for c, _ in items])
    return True


def _submit_evaluation(run: _Run, client, class_id: int) -> None:
    run.ledger.start(class_id, run.session)
    future = client.submit(evaluate_job, run.task_ref, class_id, run.ledger.name_of(class_id),
                           run.config.seed, run.config.device, pure=False,
                           retries=run.config.retries)
    run.pending[future] = ("evaluation", class_id)


def _fill(run: _Run, client, slots: int, done: dict, running: set[int], store) -> None:
    """Submit work until every slot is busy (module docstring for the policy)."""
    config, ledger = run.config, run.ledger
    while len(run.pending) < slots:
        evaluated = sum(1 for c in done if c not in run.baselines)
        in_flight = evaluated + sum(1 for c in running if c not in run.baselines)
        # a baseline is evaluated once it has features (or its features failed): claimed for
        # evaluation first, it would never get any, and the surrogate could not learn from it
        ready = [c for c in run.baselines if c not in done and c not in running
                 and ledger.status_of(c) == "features"]
        if ready and _claim(run, ready[0]):
            run.proposals[ready[0]] = ("baseline", "a baseline: evaluated first")
            if ready[0] == run.relu and run.check_metrics is not None:  # trained by the check
                ledger.record_result(run.relu, 0, run.check_metrics, seconds=0.0,
                                     worker="check", session=run.session, proposer="baseline",
                                     proposer_reason="the task check's training run")
                done[run.relu] = float(run.check_metrics["val_acc"])
                run.check_metrics = None
                continue
            _submit_evaluation(run, client, ready[0])
            running.add(ready[0])
            continue
        n_featured, _ = ledger.feature_counts()
        feature_jobs = [p for kind, p in run.pending.values() if kind == "features"]
        in_feature_jobs = sum(len(p) for p in feature_jobs)
        # features beyond the cap are never computed (extra_features)
        room = config.feature_cap - n_featured - in_feature_jobs
        exhausted = ledger.count("new") == 0
        left = not exhausted and room > 0
        searching = n_featured >= config.features or exhausted
        if searching and in_flight < config.evaluations and (
                feature_jobs or slots == 1 or not left):
            _refresh(run, store, final=not left and not feature_jobs)
            if run.coord_ids is not None:  # else the first space is being computed
                class_id = _next_candidate(run, running)
                if class_id is not None:
                    _submit_evaluation(run, client, class_id)
                    running.add(class_id)
                    continue
        if not left or (searching and feature_jobs) or not _submit_features(run, client,
                                                                            room):
            return


def _record(run: _Run, kind: str, result: dict) -> int:
    """Write a finished job to the ledger; returns how many searched functions it evaluated."""
    if kind == "features":
        from aquasurf_core.features.fim import Invalidity

        if result["layout"] is not None:
            run.ledger.set_meta("fim_layout", result["layout"])
        errors = result.get("errors", [])
        run.ledger.record_features(
            [(c, None if inv is None else Invalidity.from_dict(inv), cdf, s)
             for c, inv, cdf, s in result["features"]], worker=str(result["worker"]),
            errors=errors)
        if errors:
            run.log(f"search: the features of {len(errors)} function(s) failed and are "
                    f"recorded as failed, never retried (first: {errors[0][1]})")
        run.feature_outcomes[0] += len(result["features"])
        run.feature_outcomes[1] += len(errors)
        ok, failed = run.feature_outcomes
        if not ok and failed >= max(FEATURE_FAILURES_TO_STOP, 2 * run.config.feature_batch):
            raise TaskError(
                f"the features of all {failed} functions computed in this session failed "
                f"(first: {errors[0][1] if errors else 'see search status'}): that is the task "
                "or the machine, not single functions; the search stops. Those functions are "
                "recorded as failed in the ledger: fix the cause and start a new ledger")
        return 0
    proposer, why = run.proposals.pop(result["class_id"], (None, None))
    run.ledger.record_result(result["class_id"], result["seed"], result["metrics"],
                             seconds=result["seconds"], worker=str(result["worker"]),
                             versions=result["versions"], session=run.session,
                             proposer=proposer, proposer_reason=why)
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
        if evaluated >= config.evaluations and not running and \
                all(c in done for c in run.baselines):  # the baselines are part of the search
            break
        _fill(run, client, slots, done, running, store)
        if not run.pending:
            if run.refitter.running:  # the first space: nothing else to hand out meanwhile
                from concurrent.futures import wait as wait_local

                wait_local([run.refitter.future], timeout=beat)
                continue
            if ledger.claims_of_others(run.session) and evaluated < config.evaluations:
                time.sleep(beat)  # another driver's claims: wait for them (or their lease)
                continue
            break
        try:  # a refit in flight is looked at every second
            finished, _ = wait(list(run.pending), return_when=first,
                               timeout=1.0 if run.refitter.running else beat)
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
    search, with its seed), runs (every seed, including comparisons), failed, the best so far,
    throughput (features per second and evaluations per minute over the recorded times), and
    the end report:

    * ``evaluations``: ``requested`` (the configuration's budget), ``ran`` (searched functions
      evaluated, failures included: a failed run spends the budget), ``failed`` (of those, runs
      whose training failed), ``baselines`` and ``baselines_failed``;
    * ``proposals``: of the searched functions, how many the ``surrogate`` proposed and how many
      were ``random`` picks (``unknown`` for runs of older ledgers), and ``random_because``:
      how many random picks had each reason (:data:`TOO_FEW_EMBEDDED`,
      :data:`NOTHING_LEARNED`);
    * ``feature_failures`` (functions whose features raised) and ``feature_errors`` (the
      most frequent messages with their counts); ``valid_spectra`` and ``invalid_spectra``
      (counts by kind)."""
    config = ledger.meta("config") or {}
    seed = int(config.get("seed", 0))
    results = ledger.results(seed)
    valid = [r for r in results if np.isfinite(r["val_acc"])]
    best = max(valid, key=lambda r: r["val_acc"]) if valid else None
    times = ledger.feature_times()
    finished = sorted(r["finished_at"] for r in results)
    baseline_ids = set(config.get("baseline_ids") or [])
    baseline_names = set(config.get("baselines") or [])

    def is_baseline(r: dict) -> bool:  # older ledgers know their baselines by name only
        return r["class_id"] in baseline_ids if baseline_ids else (
            r["proposer"] == "baseline" or r["name"] in baseline_names)

    searched = [r for r in results if not is_baseline(r)]
    failed = [r for r in results if r["metrics"].get("status") == "failed"]
    proposals = {"surrogate": 0, "random": 0, "unknown": 0}
    because: dict[str, int] = {}
    for r in searched:
        by = r["proposer"] if r["proposer"] in proposals else "unknown"
        proposals[by] += 1
        if by == "random":
            because[r["proposer_reason"]] = because.get(r["proposer_reason"], 0) + 1
    errors = ledger.feature_errors()
    messages: dict[str, int] = {}
    for e in errors:
        messages[e["error"]] = messages.get(e["error"], 0) + 1
    return {
        "ledger": str(ledger.path),
        "task": config.get("task"),
        "functions": ledger.count(),
        "statuses": ledger.counts(),
        "with_features": int(len(times)),
        "evaluated": len(results),
        "runs": ledger.count_results(),
        "failed": len(failed),
        "best": None if best is None else {"name": best["name"], "val_acc": best["val_acc"],
                                           "test_acc": best["metrics"].get("test_acc")},
        "features_per_second": (round(float((len(times) - 1) / (times[-1] - times[0])), 2)
                                if len(times) > 1 and times[-1] > times[0] else None),
        "evaluations_per_minute": (round(float(60 * (len(finished) - 1)
                                               / (finished[-1] - finished[0])), 2)
                                   if len(finished) > 1 and finished[-1] > finished[0]
                                   else None),
        "evaluations": {"requested": config.get("evaluations"), "ran": len(searched),
                        "failed": sum(1 for r in searched
                                      if r["metrics"].get("status") == "failed"),
                        "baselines": len(results) - len(searched),
                        "baselines_failed": sum(1 for r in failed if is_baseline(r))},
        "proposals": proposals,
        "random_because": dict(sorted(because.items(), key=lambda item: -item[1])),
        "feature_failures": len(errors),
        "feature_errors": dict(sorted(messages.items(), key=lambda item: -item[1])[:5]),
        "valid_spectra": ledger.feature_counts()[1],
        "invalid_spectra": ledger.invalid_kinds(),
    }


def report_lines(status: dict) -> list[str]:
    """The end report of a search (:func:`search_status`) as log lines: what ran, what
    failed, who proposed the picks; lines starting ``WARNING:`` when fewer evaluations ran
    than were requested, when most picks were random (the search was then no better than
    random sampling), and when features failed."""
    ev, picks = status["evaluations"], status["proposals"]
    requested, ran = ev["requested"], ev["ran"]
    because = "; ".join(f"{n} because {why}" for why, n in status["random_because"].items())
    lines = [f"search {status['task']}: {ran} of {requested} requested evaluations ran "
             f"({ev['failed']} failed in training), besides {ev['baselines']} baseline runs "
             f"({ev['baselines_failed']} failed); {status['feature_failures']} functions' "
             f"features failed; picks: {picks['surrogate']} by the surrogate, "
             f"{picks['random']} at random" + (f" ({because})" if because else "")
             + (f", {picks['unknown']} unknown (older ledger)" if picks["unknown"] else "")]
    if requested and ran < requested:
        why = "the space ran out of functions with valid spectra to propose"
        if not status["valid_spectra"]:
            kinds = ", ".join(f"{k}: {n}" for k, n in status["invalid_spectra"].items())
            why = f"no function has a valid Fisher spectrum ({kinds or 'none featured'})"
        lines.append(f"WARNING: only {ran} of the {requested} requested evaluations ran: {why}")
    chosen = picks["surrogate"] + picks["random"]
    if chosen and picks["random"] * 2 > chosen:
        lines.append(f"WARNING: most picks were random ({picks['random']} of {chosen}: "
                     f"{because}), not the surrogate's: this search was little better than "
                     "random sampling; give it more featured functions (features) or more "
                     "evaluations, or find out why spectra are invalid (aquasurf search status)")
    if status["feature_failures"]:
        first = ", ".join(f"{n} x {m!r}" for m, n in status["feature_errors"].items())
        lines.append(f"WARNING: the features of {status['feature_failures']} functions failed "
                     f"({first}); those functions were never proposed")
    return lines


def export_results(ledger: SearchLedger):
    """A tidy table of every result: order, class id, name, seed, validation and test
    accuracy, status, who proposed it (``proposer``: "baseline", "surrogate", "random", or
    empty for comparisons and older ledgers), seconds, worker, and the other metrics as
    JSON."""
    import pandas as pd

    rows = []
    for order, r in enumerate(ledger.results(None)):
        metrics = dict(r["metrics"])
        rows.append({"order": order, "class_id": r["class_id"], "name": r["name"],
                     "seed": r["seed"], "val_acc": r["val_acc"],
                     "test_acc": metrics.pop("test_acc", float("nan")),
                     "status": metrics.pop("status", "ok"), "proposer": r["proposer"] or "",
                     "seconds": r["seconds"],
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
