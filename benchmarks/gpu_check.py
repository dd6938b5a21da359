"""One prepared check of the Fisher features on a CUDA GPU (not a test), under ~4 minutes.

    .venv/bin/python benchmarks/gpu_check.py                          # on the GPU machine
    .venv/bin/python benchmarks/gpu_check.py --budget 150 --repeats 1  # a shorter GPU run
    .venv/bin/python benchmarks/gpu_check.py --allow-cpu --batch 4     # dry run of every part

Without CUDA (``torch.cuda.is_available()`` False) it says so and exits 0, unless given
``--allow-cpu``: then every part runs on the CPU at tiny sizes (batch 4, one repetition, two
functions, four worker functions unless given), to check the code paths; those figures are
not GPU figures.

1. Seconds per function of :func:`aquasurf_core.features.fim.fim_features` (one forward and
   backward pass, K-FAC factors, eigenvalues, histograms; the model is built beforehand) for
   the paper's three models (:func:`aquasurf_core.models.build_model`), batch 128 of N(0, 1)
   inputs with random labels (:func:`~aquasurf_core.features.fim.random_batch`), a few
   functions, with the default ``factor_dtype="auto"`` (float64) and with
   ``factor_dtype=torch.float32``; one warm-up call per model and dtype, then the best of
   ``--repeats``, ``torch.cuda.synchronize()`` around every timed call. The table sets the mean
   over the functions against the paper's A10G figures and this project's targets.
2. float32 against float64 spectra of the same function and model (from part 1's features):
   the Eq. 2 distance (:func:`~aquasurf_core.features.fim.fim_distance`) between the two
   feature vectors, beside the float64 distance between two different functions for scale;
   the largest relative difference of the Kronecker eigenvalues above 1e-3 of their layer's
   largest (float64); and how many eigenvalues are zero in one and not in the other.
3. Functions per second of a search's feature worker
   (:func:`aquasurf_core.search.engine.features_job`, which calls
   :func:`~aquasurf_core.search.tasks.task_features` once per function: the model is built
   and moved to the device for each; there is no batched path on the worker) with a search's
   stage options on the GPU (``SearchConfig(device="cuda").stage_options``) for built-in tasks,
   over functions spread evenly through the 3-node space's enumeration; the same on the CPU
   with one thread (as a worker runs) for comparison.
4. CPU against GPU features of the worker task's network for a few functions: the Eq. 2
   distance with cuDNN's default ``torch.backends.cudnn.allow_tf32`` (True: float32
   convolutions in TF32) and with it off, i.e. whether a search may mix CPU and GPU workers.

Each part has a time budget (``--budget`` in all, shared out below) and stops early, saying
so, when the next call would not fit; a part that fails prints its error and the next part
runs. The exit status is 1 when a part failed, else 0.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import traceback

import numpy as np
import torch

from aquasurf_core import models
from aquasurf_core.features import fim_distance, fim_features, kronecker_eigenvalues, random_batch

FULL = ["all-cnn-c", "resnet-56", "mobilevitv2-0.5"]
FNS = ["relu(x)", "elu(x)", "swish(x)"]
TASKS = ["digits-cnn", "mnist1d-resnet"]
#: The paper's figures: seconds per function on one NVIDIA A10G.
PAPER_A10G = {"all-cnn-c": 26.0, "resnet-56": 84.0, "mobilevitv2-0.5": 37.0}
#: This project's targets: seconds per function on one H100-class GPU, batch 128.
TARGET = {"all-cnn-c": 0.5, "resnet-56": 1.5, "mobilevitv2-0.5": 1.0}
#: (label, keyword arguments of fim_features): the default and explicit float32 factors.
DTYPES = (("float64", {}), ("float32", {"factor_dtype": torch.float32}))
#: Share of the whole budget per part (the rest is slack for start-up and overruns).
SHARES = {"times": 0.58, "spectra": 0.10, "worker": 0.17, "cpu-gpu": 0.08}
REL_FLOOR = 1e-3  # eigenvalues compared: above this fraction of their layer's largest
WORKER_CHUNK = 10  # functions per features_job call (a search sends feature_batch = 32)


def say(*parts) -> None:
    print(*parts, flush=True)


def process_seconds() -> float | None:
    """Seconds since this process started (imports included; Linux ``/proc``), else None."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            started = int(stat.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
            return float(uptime.read().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return None


class Budget:
    """Seconds left of a part, never more than what is left of the whole run."""

    def __init__(self, seconds: float, whole: Budget | None = None):
        self.deadline = time.perf_counter() + seconds
        if whole is not None:
            self.deadline = min(self.deadline, whole.deadline)

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def fits(self, estimate: float) -> bool:
        return self.left() > estimate

    def __str__(self) -> str:
        return f"{max(0.0, self.left()):.0f} s"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn, *args, **kwargs):
    """``(fn(*args, **kwargs), seconds)`` with the device synchronised before and after."""
    sync(device)
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    sync(device)
    return result, time.perf_counter() - start


def free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None or not np.isfinite(value) else format(value, spec)


# --------------------------------------------------------------------------- part 1


def part_times(args, device: torch.device, whole: Budget, store: dict, cost: dict) -> None:
    budget = Budget(SHARES["times"] * args.budget, whole)
    say(f"batch {args.batch} of N(0,1) inputs, random labels, seed {args.seed}; functions "
        f"{', '.join(args.fns)}; best of {args.repeats} after one warm-up call per model and "
        f"dtype; budget {budget}, shared by the models")
    say(f"{'model':<16} {'fn':<10} {'dtype':<8} {'s':>8} {'valid':>5} {'layers':>6} "
        f"{'dim':>6}")
    best: dict[tuple[str, str, str], float] = {}
    for i, arch in enumerate(args.archs):
        arch_budget = Budget(budget.left() / (len(args.archs) - i), budget)
        try:
            measure_arch(args, device, arch, arch_budget, store, best, cost)
        except Exception as err:  # this model failed: say so, go on with the next
            say(f"{arch}: FAILED {type(err).__name__}: {err}")
            traceback.print_exc(limit=3, file=sys.stdout)
        finally:
            if device.type == "cuda":
                say(f"{arch}: peak GPU memory "
                    f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
                torch.cuda.reset_peak_memory_stats(device)
            free(device)
    table(args, best)


def measure_arch(args, device, arch: str, budget: Budget, store: dict, best: dict,
                 cost: dict) -> None:
    spec = models.get_spec(arch)
    x, y = random_batch(spec.input_shape, spec.num_classes, args.batch, args.seed, device)
    built: dict[str, torch.nn.Module] = {}

    def model(fn: str) -> torch.nn.Module:
        if fn not in built:
            built[fn] = models.build_model(arch, fn, seed=args.seed).to(device)
        return built[fn]

    seen = cost.setdefault(arch, {})  # dtype -> fastest call so far (the next call's estimate)
    for label, kwargs in DTYPES:  # warm-up: first kernels, cuBLAS/cuSOLVER handles, caches
        if not budget.fits(min(seen.values(), default=0.0)):
            say(f"{arch}: {budget} of its budget left, too little for the {label} warm-up; "
                "stopped early")
            return
        feats, took = timed(device, fim_features, model(args.fns[0]), x, y, seed=args.seed,
                            keep_eigenvalues=True, **kwargs)
        seen[label] = took
        store[(arch, args.fns[0], label)] = feats
        say(f"{arch:<16} {args.fns[0]:<10} {label:<8} {took:>8.3f} {feats.valid!s:>5} "
            f"{len(feats.layers):>6} {feats.layout.dim:>6}  (warm-up, not counted)")
    for rep in range(args.repeats):
        for fn in args.fns:
            for label, kwargs in DTYPES:
                if not budget.fits(seen[label]):
                    say(f"{arch}: {budget} of its budget left, less than one {label} call "
                        f"({seen[label]:.2f} s); stopped early at repetition "
                        f"{rep + 1}, {fn} {label}")
                    return
                feats, took = timed(device, fim_features, model(fn), x, y, seed=args.seed,
                                    keep_eigenvalues=True, **kwargs)
                seen[label] = min(seen[label], took)
                key = (arch, fn, label)
                best[key] = min(best.get(key, took), took)
                store[key] = feats
                say(f"{arch:<16} {fn:<10} {label:<8} {took:>8.3f} {feats.valid!s:>5} "
                    f"{len(feats.layers):>6} {feats.layout.dim:>6}")


def table(args, best: dict) -> None:
    say("\nseconds per function: mean over the functions measured (count in 'fns') of the "
        "best call; paper A10G s = the paper's figures, target s = this project's targets "
        "(one H100-class GPU, batch 128); 'meets target' judges the default (float64), "
        "'f32 meets' the float32 factors")
    say(f"{'model':<16} {'fns':>3} {'ours float64 s':>14} {'ours float32 s':>14} "
        f"{'paper A10G s':>12} {'target s':>8} {'meets target':>12} {'f32 meets':>9}")
    for arch in args.archs:
        means, count = {}, 0
        for label, _ in DTYPES:
            got = [best[(arch, fn, label)] for fn in args.fns if (arch, fn, label) in best]
            means[label] = statistics.fmean(got) if got else None
            count = max(count, len(got))
        target = TARGET.get(arch)

        def meets(value, target=target):
            if value is None or target is None:
                return "-"
            return "yes" if value <= target else "no"

        say(f"{arch:<16} {count:>3} {fmt(means['float64']):>14} {fmt(means['float32']):>14} "
            f"{fmt(PAPER_A10G.get(arch), '.0f'):>12} {fmt(target, '.1f'):>8} "
            f"{meets(means['float64']):>12} {meets(means['float32']):>9}")
    if args.device.type != "cuda" or args.batch != 128:
        say(f"(device {args.device.type}, batch {args.batch}: the comparison with the GPU "
            "figures and targets is not meaningful here)")


# --------------------------------------------------------------------------- part 2


def spectra_difference(a, b) -> tuple[float, int, int, int]:
    """Largest relative difference of the Kronecker eigenvalues of ``b`` against ``a`` (those
    of ``a`` above ``REL_FLOOR`` of its layer's largest, matched by rank), how many are zero
    in ``a`` only and in ``b`` only, and how many there are."""
    worst, only_a, only_b, total = 0.0, 0, 0, 0
    for (ao, ag), (bo, bg) in zip(a.factor_eigenvalues, b.factor_eigenvalues, strict=True):
        ka = torch.sort(kronecker_eigenvalues(ao.double(), ag.double(), log_scale=False)).values
        kb = torch.sort(kronecker_eigenvalues(bo.double(), bg.double(), log_scale=False)).values
        total += ka.numel()
        only_a += int(((ka == 0) & (kb != 0)).sum())
        only_b += int(((kb == 0) & (ka != 0)).sum())
        big = ka > REL_FLOOR * ka.max()
        if bool(big.any()):
            worst = max(worst, float(((kb[big] - ka[big]).abs() / ka[big]).max()))
    return worst, only_a, only_b, total


def part_spectra(args, device: torch.device, whole: Budget, store: dict, cost: dict) -> None:
    budget = Budget(SHARES["spectra"] * args.budget, whole)
    say(f"float32 against float64 (default) features of the same model and function: Eq. 2 = "
        f"fim_distance of the two CDF vectors; max rel diff = largest |f32 - f64| / f64 over "
        f"the Kronecker eigenvalues > {REL_FLOOR:g} x their layer's largest (float64), matched "
        f"by rank; zero f64 only / zero f32 only = eigenvalues exactly 0 in one and not the "
        f"other; budget {budget} for what part 1 did not compute")
    say(f"{'model':<16} {'fn':<10} {'valid 64/32':>11} {'Eq. 2':>9} {'max rel diff':>12} "
        f"{'zero f64 only':>13} {'zero f32 only':>13} {'eigenvalues':>11}")
    for arch in args.archs:
        try:
            spectra_arch(args, device, arch, budget, store, cost.get(arch, {}))
        except Exception as err:
            say(f"{arch}: FAILED {type(err).__name__}: {err}")
            traceback.print_exc(limit=3, file=sys.stdout)
        finally:
            free(device)


def spectra_arch(args, device, arch: str, budget: Budget, store: dict, cost: dict) -> None:
    spec = models.get_spec(arch)
    batch = None
    for fn in args.fns:
        pair = []
        for label, kwargs in DTYPES:
            if (arch, fn, label) not in store:
                if not budget.fits(cost.get(label, 0.0)):
                    say(f"{arch} {fn}: no {label} features from part 1 and too little budget "
                        f"left ({budget}) to compute them; skipped")
                    break
                if batch is None:
                    batch = random_batch(spec.input_shape, spec.num_classes, args.batch,
                                         args.seed, device)
                net = models.build_model(arch, fn, seed=args.seed).to(device)
                feats, took = timed(device, fim_features, net, *batch, seed=args.seed,
                                    keep_eigenvalues=True, **kwargs)
                cost[label] = min(cost.get(label, took), took)
                store[(arch, fn, label)] = feats
            pair.append(store[(arch, fn, label)])
        if len(pair) < 2:
            continue
        f64, f32 = pair
        valid = f"{f64.valid!s:.1}/{f32.valid!s:.1}"
        if f64.valid and f32.valid:
            distance = fim_distance(f64.cdf, f32.cdf, f64.layout)
            worst, only64, only32, total = spectra_difference(f64, f32)
            say(f"{arch:<16} {fn:<10} {valid:>11} {distance:>9.2e} {worst:>12.2e} "
                f"{only64:>13} {only32:>13} {total:>11}")
        else:
            say(f"{arch:<16} {fn:<10} {valid:>11}  (not compared: {f64.reason} / "
                f"{f32.reason})")
    scale = [store.get((arch, fn, "float64")) for fn in args.fns[:2]]
    if len(scale) == 2 and all(f is not None and f.valid for f in scale):
        say(f"{arch:<16} for scale, float64 Eq. 2 between {args.fns[0]} and {args.fns[1]}: "
            f"{fim_distance(scale[0].cdf, scale[1].cdf, scale[0].layout):.2e}")


# --------------------------------------------------------------------------- part 3


def space_names(count: int) -> list[str]:
    """``count`` names spread evenly through the 3-node space's enumeration."""
    from aquasurf_core.space import THREE_NODE_SCHEMA, iter_names

    names = list(iter_names(THREE_NODE_SCHEMA))
    return [names[i * len(names) // count] for i in range(count)]


def worker_rate(task: str, names: list[str], options, device: torch.device, budget: Budget):
    """Run the feature worker over ``names`` in chunks while the budget lasts; returns the
    functions done, their wall time, the per-function seconds and the worker's results."""
    from aquasurf_core.search.engine import features_job

    done, wall, per_fn, results = 0, 0.0, [], []
    if not budget.fits(0.0):
        say(f"  {task} on {device.type}: budget spent before the warm-up; skipped")
        return done, wall, per_fn, results
    threads = torch.get_num_threads()
    try:
        features_job(task, list(enumerate(names[:2])), 0, options)  # warm-up: data, kernels
        estimate = 0.0
        for start in range(0, len(names), WORKER_CHUNK):
            items = list(enumerate(names[start:start + WORKER_CHUNK], start))
            if not budget.fits(estimate * len(items)):
                say(f"  {task} on {device.type}: budget left {budget}; stopped "
                    f"early after {done} of {len(names)} functions")
                break
            result, took = timed(device, features_job, task, items, 0, options)
            done += len(items)
            wall += took
            estimate = wall / done
            per_fn += [s for *_, s in result["features"]] + [s for *_, s in result["errors"]]
            results.append(result)
    finally:
        torch.set_num_threads(threads)  # features_job sets one thread, as on a worker
    return done, wall, per_fn, results


def part_worker(args, device: torch.device, whole: Budget) -> None:
    from aquasurf_core.search.engine import SearchConfig
    from aquasurf_core.search.tasks import registered_tasks

    budget = Budget(SHARES["worker"] * args.budget, whole)
    names = space_names(args.worker_functions)
    say(f"search feature worker: aquasurf_core.search.engine.features_job (task_features per "
        f"function: build, move to the device, fim_features), chunks of {WORKER_CHUNK}, one "
        f"warm-up job of 2 functions first; {len(names)} functions spread evenly through the "
        f"3-node space's enumeration (first {names[0]}, last {names[-1]}); seed 0; budget "
        f"{budget}")
    say(f"{'task':<16} {'device':<12} {'fn/s':>8} {'ms/fn':>8} {'median ms':>9} {'valid':>5} "
        f"{'invalid':>7} {'errors':>6} {'dim':>5}")
    runs = [(device.type, f"{device.type} worker")]
    if device.type == "cuda":
        runs.append(("cpu", "cpu 1 thread"))
    for i, task in enumerate(args.tasks):
        if task not in registered_tasks():
            say(f"{task}: not a registered task ({', '.join(registered_tasks())})")
            continue
        for j, (where, label) in enumerate(runs):
            share = Budget(budget.left() / ((len(args.tasks) - i) * len(runs) - j), budget)
            options = SearchConfig(device=where, space="3-node").stage_options
            try:
                done, wall, per_fn, results = worker_rate(task, names, options,
                                                          torch.device(where), share)
            except Exception as err:
                say(f"{task} on {where}: FAILED {type(err).__name__}: {err}")
                traceback.print_exc(limit=3, file=sys.stdout)
                continue
            finally:
                free(device)
            if not done:
                say(f"{task:<16} {label:<12} (nothing measured)")
                continue
            feats = [f for r in results for f in r["features"]]
            errors = [e for r in results for e in r["errors"]]
            valid = sum(invalid is None for _, invalid, _, _ in feats)
            layout = next((r["layout"] for r in results if r["layout"]), None)
            dim = sum(layout["bin_counts"]) if layout else 0
            say(f"{task:<16} {label:<12} {done / wall:>8.1f} {1000 * wall / done:>8.1f} "
                f"{1000 * statistics.median(per_fn):>9.1f} {valid:>5} "
                f"{len(feats) - valid:>7} {len(errors):>6} {dim:>5}")
            for class_id, message, _ in errors[:3]:
                say(f"  error, {names[class_id]}: {message[:200]}")


# --------------------------------------------------------------------------- part 4


def part_cpu_gpu(args, device: torch.device, whole: Budget) -> None:
    from aquasurf_core.search.engine import SearchConfig
    from aquasurf_core.search.tasks import get_task, task_features

    budget = Budget(SHARES["cpu-gpu"] * args.budget, whole)
    task = get_task(args.tasks[0])
    fns = args.fns[:3]
    say(f"task {task.name}: Eq. 2 distance between the features computed on the CPU and on "
        f"{device.type} (same network, batch and seed; one CPU thread, as a worker), with cuDNN "
        f"TF32 convolutions on (torch's default) and off; budget {budget}")
    if device.type != "cuda":
        say("(CPU dry run: both sides are the CPU, so every distance should be 0)")
    say(f"{'fn':<10} {'valid cpu/dev':>13} {'Eq. 2 tf32 on':>13} {'Eq. 2 tf32 off':>14}")
    cpu = SearchConfig(device="cpu", space="3-node").stage_options
    dev = SearchConfig(device=device.type, space="3-node").stage_options
    tf32, threads = torch.backends.cudnn.allow_tf32, torch.get_num_threads()
    torch.set_num_threads(1)  # as a CPU worker runs (and fast for these small networks)
    try:
        for fn in fns:
            if not budget.fits(0.0):
                say(f"budget spent; stopped early before {fn}")
                break
            ref = task_features(task, fn, 0, cpu)
            row = []
            for setting in (True, False):
                torch.backends.cudnn.allow_tf32 = setting
                other = task_features(task, fn, 0, dev)
                row.append(fim_distance(ref.cdf, other.cdf, ref.layout)
                           if ref.valid and other.valid else None)
            valid = f"{ref.valid!s:.1}/{other.valid!s:.1}"
            say(f"{fn:<10} {valid:>13} {fmt(row[0], '.2e'):>13} {fmt(row[1], '.2e'):>14}")
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--allow-cpu", action="store_true",
                        help="without CUDA, dry-run every part on the CPU at tiny sizes")
    parser.add_argument("--archs", nargs="*", default=FULL)
    parser.add_argument("--fns", nargs="+", default=None,
                        help=f"default {' '.join(FNS)} (the first two in a CPU dry run)")
    parser.add_argument("--batch", type=int, default=None, help="default 128 (4 on the CPU)")
    parser.add_argument("--repeats", type=int, default=None, help="default 2 (1 on the CPU)")
    parser.add_argument("--tasks", nargs="+", default=TASKS, help="worker tasks (part 3)")
    parser.add_argument("--worker-functions", type=int, default=None,
                        help="functions per worker task, default 20 (4 on the CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=210.0,
                        help="seconds for all parts together (default 210)")
    parser.add_argument("--skip", nargs="*", default=[], choices=list(SHARES),
                        help="parts to leave out")
    args = parser.parse_args()
    start = time.perf_counter()
    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        say("gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing "
            "measured (--allow-cpu dry-runs it on the CPU)")
        return 0
    args.device = torch.device("cuda" if cuda else "cpu")
    tiny = not cuda
    args.fns = args.fns or (FNS[:2] if tiny else FNS)
    args.batch = args.batch or (4 if tiny else 128)
    args.repeats = args.repeats or (1 if tiny else 2)
    args.worker_functions = args.worker_functions or (4 if tiny else 20)
    whole = Budget(args.budget)

    if cuda:
        props = torch.cuda.get_device_properties(0)
        say(f"gpu_check: device {torch.cuda.get_device_name(0)}, {props.total_memory / 2**30:.0f}"
            f" GiB, compute capability {props.major}.{props.minor}; torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
        torch.zeros(1, device=args.device)  # the CUDA context, outside the timings
    else:
        say(f"gpu_check: CPU DRY RUN (--allow-cpu; no CUDA device here), torch "
            f"{torch.__version__}: tiny sizes, the figures are not GPU figures")
    say(f"host {platform.node()}, {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}, python {platform.python_version()}; cudnn.allow_tf32 "
        f"{torch.backends.cudnn.allow_tf32}, cuda.matmul.allow_tf32 "
        f"{torch.backends.cuda.matmul.allow_tf32}; budget {args.budget:.0f} s")

    store: dict = {}  # (model, fn, dtype) -> features, from part 1 for part 2
    cost: dict = {}  # model -> dtype -> fastest call, part 2's estimates
    parts = [("times", "1. Fisher-feature seconds per function", part_times, (store, cost)),
             ("spectra", "2. float32 against float64 spectra", part_spectra, (store, cost)),
             ("worker", "3. search feature worker, functions per second", part_worker, ()),
             ("cpu-gpu", "4. CPU against GPU features", part_cpu_gpu, ())]
    failed = []
    for key, title, run, extra in parts:
        if key in args.skip:
            continue
        say(f"\n== {title}")
        part_start = time.perf_counter()
        try:
            run(args, args.device, whole, *extra)
        except Exception as err:  # one part's failure must not cost the others
            failed.append(key)
            say(f"part {key} FAILED: {type(err).__name__}: {err}")
            traceback.print_exc(limit=5, file=sys.stdout)
        finally:
            free(args.device)
        say(f"(part {key}: {time.perf_counter() - part_start:.1f} s)")
    since = process_seconds()
    say(f"\ngpu_check: total wall time {time.perf_counter() - start:.1f} s in main() (budget "
        f"{args.budget:.0f} s), {fmt(since, '.1f')} s since the process started; "
        + (f"FAILED parts: {', '.join(failed)}" if failed else "every part ran"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
