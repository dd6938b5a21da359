"""Activation-function benchmarks (paper Section 2): tables of trained functions with their
features -- Act-Bench-Mini, built here on MNIST-1D and shipped, and the published Act-Bench.

* :mod:`~aquasurf_core.bench.table` -- :class:`Benchmark`, its on-disk format, :func:`load`.
* :mod:`~aquasurf_core.bench.actbench` -- the published Act-Bench JSON files.
* :mod:`~aquasurf_core.bench.ledger` -- the SQLite ledger of a build.
* :mod:`~aquasurf_core.bench.build` -- building a benchmark, resumably, in worker processes.
* :mod:`~aquasurf_core.bench.sources` -- shipped, built-now or published, by name.
"""

from aquasurf_core.bench.actbench import load_actbench, save_actbench_json
from aquasurf_core.bench.build import BuildConfig, build_benchmark
from aquasurf_core.bench.ledger import Ledger, LedgerMismatch
from aquasurf_core.bench.sources import SOURCES, get_benchmarks
from aquasurf_core.bench.table import (
    SHIPPED,
    Benchmark,
    BenchmarkFileError,
    load,
    load_benchmark,
    save_benchmark,
)

__all__ = [
    "SHIPPED",
    "SOURCES",
    "Benchmark",
    "BenchmarkFileError",
    "BuildConfig",
    "Ledger",
    "LedgerMismatch",
    "build_benchmark",
    "get_benchmarks",
    "load",
    "load_actbench",
    "load_benchmark",
    "save_actbench_json",
    "save_benchmark",
]
