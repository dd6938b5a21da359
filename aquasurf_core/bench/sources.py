"""Where a notebook's benchmarks come from: the shipped Act-Bench-Mini tables, tiny ones built on
the spot (the smoke profile), whole ones rebuilt with the shipped tables' own settings (the full
profile), or the published Act-Bench JSON files."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from aquasurf_core.bench.actbench import load_actbench
from aquasurf_core.bench.build import BuildConfig, build_benchmark
from aquasurf_core.bench.ledger import default_ledger_path
from aquasurf_core.bench.table import Benchmark, load
from aquasurf_core.paths import cache_dir
from aquasurf_core.training.recipes import Recipe, get_recipe

__all__ = ["SOURCES", "get_benchmarks", "shipped_build_config"]

SOURCES = ("shipped", "build", "rebuild", "actbench")


def shipped_build_config(arch: str) -> BuildConfig:
    """The :class:`BuildConfig` the shipped benchmark ``arch`` records in its manifest (seeds,
    recipe, group size, Fisher seed and batch): rebuilding with it recomputes the same table
    on this machine. Raises ``ValueError`` when the manifest records no build config."""
    recorded = (load(arch, verify=False).manifest or {}).get("config")
    if not isinstance(recorded, dict) or "recipe" not in recorded:
        raise ValueError(f"the shipped benchmark {arch!r} records no build config")
    recipe = {k: tuple(v) if isinstance(v, list) else v for k, v in recorded["recipe"].items()}
    fields = {k: v for k, v in recorded.items() if k in BuildConfig.__dataclass_fields__}
    return BuildConfig(**{**fields, "seeds": tuple(recorded["seeds"]),
                          "recipe": Recipe(**recipe)})


def get_benchmarks(source: str, archs: Sequence[str], *,
                   actbench_dir: str | os.PathLike | None = None, smoke_functions: int = 16,
                   smoke_epochs: int = 1, smoke_train_subset: int | None = 300, seed: int = 0,
                   workers: int = 2, rebuild_limit: int | None = None,
                   log=print) -> dict[str, Benchmark]:
    """The benchmarks of ``archs`` from ``source``:

    * ``"shipped"``: :func:`aquasurf_core.bench.table.load` (``aquasurf_core/data/benchmarks/``);
    * ``"build"``: build tiny ones now with :func:`aquasurf_core.bench.build.build_benchmark`
      -- the first ``smoke_functions`` functions of the space, seed ``seed``, the
      architecture's recipe with ``epochs=smoke_epochs`` and ``train_subset``, groups of 8,
      one worker -- into ``<cache>/bench-smoke/<arch>/`` (:func:`aquasurf_core.paths.cache_dir`) (an
      old ledger there is deleted first: a ledger refuses a changed configuration);
    * ``"rebuild"``: the whole benchmark rebuilt with :func:`shipped_build_config` on
      ``workers`` processes, resumably, in the ledger ``aquasurf bench build`` uses
      (``<cache>/bench/<arch>/ledger.sqlite``: a build started from the command line is
      continued, a finished one only assembled) into ``<cache>/bench/<arch>/benchmark``
      (hours for 2,902 functions x 3 seeds on 2 cores; ``rebuild_limit`` keeps the first
      functions only, for tests);
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
        elif source == "rebuild":
            config = shipped_build_config(arch)
            if rebuild_limit is not None:
                config = replace(config, limit=int(rebuild_limit))
            out[arch] = build_benchmark(config, ledger_path=default_ledger_path(arch),
                                        out_dir=cache_dir("bench", arch, "benchmark"),
                                        workers=workers, progress=True, log=log)
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
