"""Benchmark: enumerate, evaluate, de-duplicate and persist the PANGAEA spaces.

    .venv/bin/python benchmarks/space_enumeration.py [--sample 10000] [--no-rules]

Prints, in one process:

* the full build (``build_space``: enumerate + evaluate + de-duplicate + persist, into a
  temporary directory) of the 3-node space (5,103 functions) and the 4-node space
  (1,023,516 functions): seconds, counts, and the process's peak resident memory;
* unique counts of both spaces under both ``-0.0`` rules (paper: 2,913 and 425,896);
* the naive path on a random sample of 4-node functions: parse each name and evaluate it on
  its own with ``ActivationFunction`` (one intra-op thread, like the vectorised path),
  against the vectorised ``evaluate_space`` per-function rate, and their ratio.

The machine's load average is printed too: the CPU may be shared.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from aquasurf_core.space.activation import ActivationFunction
from aquasurf_core.space.evaluation import (
    DEFAULT_SIGNED_ZERO_DISTINCT,
    evaluate_space,
    single_thread,
)
from aquasurf_core.space.inputs import normal_inputs
from aquasurf_core.space.schemas import (
    FOUR_NODE_SCHEMAS,
    THREE_NODE_SCHEMA,
    count_functions,
    schema_names,
)
from aquasurf_core.space.store import build_space

PAPER_UNIQUE = {"3-node": 2_913, "4-node": 425_896}
SPACES = {"3-node": [THREE_NODE_SCHEMA], "4-node": list(FOUR_NODE_SCHEMAS)}


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def build(tmp: Path) -> dict[str, float]:
    seconds = {}
    for label, schemas in SPACES.items():
        started = time.perf_counter()
        store = build_space(schemas, out_dir=tmp / label, rebuild=True, progress=False)
        seconds[label] = time.perf_counter() - started
        parts = ", ".join(f"{k} {v:.1f}" for k, v in store.manifest["seconds"].items()
                          if k != "total")
        print(f"build {label}: {store.n_functions:,} functions, {store.n_unique:,} unique "
              f"(-0 {'!=' if DEFAULT_SIGNED_ZERO_DISTINCT else '=='} +0) in "
              f"{seconds[label]:.1f} s [{parts}]; peak RSS so far {peak_gib():.2f} GiB; "
              f"load {load()}")
    return seconds


def rules() -> dict[str, float]:
    rates = {}
    for label, schemas in SPACES.items():
        for rule in (True, False):
            result = evaluate_space(schemas, signed_zero_distinct=rule, collect_outputs=False)
            gap = 100 * (result.n_unique - PAPER_UNIQUE[label]) / PAPER_UNIQUE[label]
            print(f"unique {label} signed_zero_distinct={rule!s:5}: {result.n_unique:,} "
                  f"(paper {PAPER_UNIQUE[label]:,}, {gap:+.2f}%) evaluate+dedup "
                  f"{result.seconds:.1f} s")
            rates[label] = result.n_functions / result.seconds
    return rates


def naive(sample: int, vectorised_rate: float) -> None:
    names = [n for s in FOUR_NODE_SCHEMAS for n in schema_names(s)]
    rng = np.random.default_rng(0)
    chosen = [names[i] for i in rng.choice(len(names), size=sample, replace=False)]
    x = torch.from_numpy(normal_inputs())
    started = time.perf_counter()
    with torch.no_grad(), single_thread():
        for name in chosen:
            ActivationFunction(name)(x).numpy().tobytes()
    seconds = time.perf_counter() - started
    rate = sample / seconds
    print(f"naive (parse + ActivationFunction, one function at a time): {sample:,} random 4-node "
          f"functions in {seconds:.1f} s = {rate:,.0f} functions/s; load {load()}")
    print(f"vectorised evaluate+dedup of the whole 4-node space: {vectorised_rate:,.0f} "
          f"functions/s; ratio {vectorised_rate / rate:.0f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=10_000)
    parser.add_argument("--no-rules", action="store_true", help="skip the -0 rule comparison")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
          f"load {load()}; 4-node functions: {count_functions(FOUR_NODE_SCHEMAS):,}")
    with tempfile.TemporaryDirectory(prefix="aquasurf-bench-") as tmp:
        build(Path(tmp))
    print(f"peak RSS after both builds: {peak_gib():.2f} GiB")
    if args.no_rules:
        result = evaluate_space(FOUR_NODE_SCHEMAS, collect_outputs=False)
        vectorised_rate = result.n_functions / result.seconds
    else:
        vectorised_rate = rules()["4-node"]
    naive(args.sample, vectorised_rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
