"""Training speed on MNIST-1D: K functions fused in one model vs one model at a time.

For each architecture, functions are drawn (fixed seed) from the unique 3-node functions
(``binary(unary(x),unary(x))``, built or loaded from the space cache). The first ``--single``
of them are trained one at a time with :func:`aquasurf_core.training.train_one`; then the
first ``K`` of them at once with :func:`aquasurf_core.grouped_training.train_grouped` for
each ``K`` in ``--ks``, in the same process, with the same recipe and seed. Printed per row:
functions trained per second (wall clock, model construction and evaluation included), the
speed-up over one-at-a-time, the agreement of the grouped results with the one-at-a-time
results on the shared functions (status, validation accuracy, validation loss), and the
extrapolated time to build the full benchmark: ``functions x seeds / rate / processes``
(``--seeds-per-function``, 1 as the shipped tables; ``processes`` = ``--processes``
parallel single-thread workers, 2 on the 2-core machine, assumed to scale linearly -- an
assumption, stated in the output). The CPU may be shared: the load average is printed.

Run-to-run noise: the same functions are also trained one at a time with seed ``seed + 1``;
the spread ``|val acc(seed) - val acc(seed + 1)|`` is the noise against which the grouped
trainer's deviation from the reference (same seed) is judged. The grouped and reference
runs differ only by floating-point reduction order inside fused kernels, which training
amplifies, so they agree bit for bit only for short runs.

    .venv/bin/python benchmarks/training_speed.py --archs cnn resnet vit --ks 32
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aquasurf_core.training.data import load_mnist1d
from aquasurf_core.training.grouped import train_grouped
from aquasurf_core.training.recipes import get_recipe
from aquasurf_core.training.reference import train_one

SPACE_SCHEMA = "binary(unary(x),unary(x))"
FALLBACK_FUNCTIONS = ["relu(x)", "swish(x)", "elu(x)", "tanh(x)", "sigmoid(x)", "softplus(x)",
                      "selu(x)", "arctan(x)", "erf(x)", "softsign(x)", "abs(x)", "square(x)"]


def space_functions(count: int, seed: int) -> tuple[list[str], int]:
    """``count`` representatives drawn without replacement, and the space's unique count."""
    try:
        from aquasurf_core.space.store import build_space

        store = build_space(SPACE_SCHEMA, progress=False)
        names = list(store.unique["representative"])
    except Exception as err:  # benchmark only: fall back to a fixed list
        print(f"(space store unavailable: {err}; using {len(FALLBACK_FUNCTIONS)} fixed names)")
        names = FALLBACK_FUNCTIONS
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(names), size=min(count, len(names)), replace=False)
    return [names[i] for i in pick], len(names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["cnn", "resnet", "vit"])
    parser.add_argument("--ks", nargs="+", type=int, default=[32])
    parser.add_argument("--seeds-per-function", type=int, default=1,
                        help="runs per function in the extrapolated full build")
    parser.add_argument("--single", type=int, default=4, help="one-at-a-time runs per arch")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--processes", type=int, default=2,
                        help="parallel workers assumed for the extrapolation")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--function-seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=".aquasurf_cache")
    args = parser.parse_args(argv)
    if min(args.ks) < 1 or args.single < 1 or args.threads < 1 or args.processes < 1:
        parser.error("--ks, --single, --threads and --processes must be positive")

    torch.set_num_threads(args.threads)
    data = load_mnist1d(cache_dir=args.cache_dir)
    fns, n_space = space_functions(max(max(args.ks), args.single), args.function_seed)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"cpus {os.cpu_count()}, loadavg {os.getloadavg()}")
    print(f"space {SPACE_SCHEMA}: {n_space} unique functions; extrapolation assumes "
          f"{args.processes} parallel single-thread processes scale linearly")
    rows = []
    for arch in args.archs:
        overrides = {} if args.epochs is None else {"epochs": args.epochs}
        recipe = get_recipe(arch, **overrides)
        print(f"\n[{arch}] {recipe}")
        single = {}
        began = time.perf_counter()
        for name in tqdm(fns[:args.single], desc=f"{arch} one at a time", leave=False):
            single[name] = train_one(arch, name, args.seed, data, recipe)
        single_rate = args.single / (time.perf_counter() - began)
        other = {name: train_one(arch, name, args.seed + 1, data, recipe)
                 for name in tqdm(fns[:args.single], desc=f"{arch} seed + 1", leave=False)}
        noise = [abs(other[n].val_accuracy - single[n].val_accuracy) for n in single
                 if single[n].status == other[n].status == "ok"]
        rows.append((arch, 1, single_rate, 1.0, "-"))
        runs = n_space * args.seeds_per_function
        if noise:
            print(f"  run-to-run noise (seed {args.seed} vs {args.seed + 1}, one at a time, "
                  f"{len(noise)} trained functions): |d val acc| median "
                  f"{float(np.median(noise)):.4f}, max {max(noise):.4f}")
        _print_row(arch, "1 (one at a time)", single_rate, 1.0, "reference", runs,
                   args.processes)
        for k in args.ks:
            began = time.perf_counter()
            results = train_grouped(arch, fns[:k], args.seed, data, recipe)
            rate = k / (time.perf_counter() - began)
            shared = [r for r in results if r.fn_name in single]
            agree = _agreement(shared, single)
            rows.append((arch, k, rate, rate / single_rate, agree))
            _print_row(arch, str(k), rate, rate / single_rate, agree, runs, args.processes)
        print("  one-at-a-time val accuracy: " + ", ".join(
            f"{r.fn_name}={r.val_accuracy:.3f}{'' if r.status == 'ok' else ' (diverged)'}"
            for r in single.values()))
        print(f"  loadavg {os.getloadavg()}")
    return 0


def _agreement(shared, single) -> str:
    if not shared:
        return "no shared functions"
    status = sum(r.status == single[r.fn_name].status for r in shared)
    diffs = [abs(r.val_accuracy - single[r.fn_name].val_accuracy) for r in shared]
    acc, med = max(diffs), float(np.median(diffs))
    finite = [(r, single[r.fn_name]) for r in shared if r.status == "ok"
              and single[r.fn_name].status == "ok"]
    loss = max((abs(a.val_loss - b.val_loss) / abs(b.val_loss) for a, b in finite), default=0.0)
    return (f"status {status}/{len(shared)} equal, |d val acc| median {med:.4f} max {acc:.4f}, "
            f"max rel d val loss {loss:.1e}")


def _print_row(arch: str, k: str, rate: float, speedup: float, agree: str, runs: int,
               processes: int) -> None:
    hours = runs / (rate * processes) / 3600
    print(f"  K={k:>18}: {rate:6.2f} functions/s  x{speedup:4.1f}  | {agree}\n"
          f"  {'':>20}  full build ({runs} runs, {processes} proc.): {hours:5.2f} h")


if __name__ == "__main__":
    raise SystemExit(main())
