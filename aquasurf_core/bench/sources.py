"""Where a notebook's benchmarks come from: the shipped Act-Bench-Mini tables, tiny ones built on
the spot (the smoke profile), or the published Act-Bench JSON files."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from aquasurf_core.bench.actbench import load_actbench
from aquasurf_core.bench.build import BuildConfig, build_benchmark
from aquasurf_core.bench.table import Benchmark, load
from aquasurf_core.paths import cache_dir
from aquasurf_core.training.recipes import get_recipe

__all__ = ["SOURCES", "get_benchmarks"]

SOURCES = ("shipped", "build", "actbench")


def get_benchmarks(source: str, archs: Sequence[str], *,
                   actbench_dir: str | os.PathLike | None = None, smoke_functions: int = 16,
                   smoke_epochs: int = 1, smoke_train_subset: int | None = 300, seed: int = 0,
                   log=print) -> dict[str, Benchmark]:
    """The benchmarks of ``archs`` from ``source``:

    * ``"shipped"``: :func:`aquasurf_core.bench.table.load` (``aquasurf_core/data/benchmarks/``);
    * ``"build"``: build tiny ones now with :func:`aquasurf_core.bench.build.build_benchmark`
      -- the first ``smoke_functions`` functions of the space, seed ``seed``, the
      architecture's recipe with ``epochs=smoke_epochs`` and ``train_subset``, groups of 8,
      one worker -- into ``<cache>/bench-smoke/<arch>/`` (:func:`aquasurf_core.paths.cache_dir`) (an old ledger there is deleted
      first: a ledger refuses a changed configuration);
    * ``"actbench"``: the published ``act-bench-<arch>.json`` files in ``actbench_dir``.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    if isinstance(archs, str) or not archs:
        raise ValueError(f"archs must be a non-empty list of names, got {archs!r}")
    out: dict[str, Benchmark] = {}
    for arch in archs:
        if source == "shipped":
            out[arch] = load(arch)
        elif source == "actbench":
            if actbench_dir is None:
                raise ValueError("source='actbench' needs actbench_dir, the folder holding "
                                 "act-bench-cnn.json, act-bench-resnet.json, act-bench-vit.json")
            out[arch] = load_actbench(Path(actbench_dir) / f"act-bench-{arch}.json",
                                            name=arch)
        else:
            root = cache_dir("bench-smoke", arch)
            for stale in root.glob("ledger.sqlite*"):  # the database and its -wal/-shm files
                stale.unlink()
            shutil.rmtree(root / "benchmark", ignore_errors=True)
            recipe = get_recipe(arch, epochs=int(smoke_epochs), train_subset=smoke_train_subset)
            config = BuildConfig(arch, seeds=(int(seed),), recipe=recipe, group_size=8,
                                 limit=int(smoke_functions))
            out[arch] = build_benchmark(config, ledger_path=root / "ledger.sqlite",
                                        out_dir=root / "benchmark", workers=1, progress=False,
                                        log=log)
    return out
