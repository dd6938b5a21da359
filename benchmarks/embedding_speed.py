"""How long the embeddings of the shipped benchmarks take: each of the three (FIM, outputs, both)
fitted from scratch after numba's first compile, and the cached reload.

    python benchmarks/embedding_speed.py [--benchmarks cnn resnet vit] [--seed 0]

Targets (issue: "the surrogate's space"): each embedding <= 30 s on our 2 cores, a cached
reload <= 1 s. The FIM and "both" embeddings hold the functions with a valid spectrum
(1,362-2,104 of 2,902); the outputs embedding of all 2,902 functions is timed as well. Fits run
in a temporary cache, so nothing is read from an earlier run; the reload reads what this run
wrote (all three embeddings of one benchmark, through ``embed_all``).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", nargs="+", default=["cnn", "resnet", "vit"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from aquasurf_core import paths
    from aquasurf_core.bench import load
    from aquasurf_core.embedding import OUTPUT_SETTINGS, UmapSettings, embed, embed_all
    from aquasurf_core.embedding.umap_models import fit
    from aquasurf_core.features.outputs import clean_outputs

    paths.set_cache_dir(tempfile.mkdtemp(prefix="aquasurf-embedding-speed-"))
    start = time.perf_counter()
    fit(np.random.default_rng(0).normal(size=(200, 20)), OUTPUT_SETTINGS)  # numba compiles here
    print(f"numba warm-up (first fit in this process): {time.perf_counter() - start:.1f} s")
    quiet = {"log": lambda *_: None, "seed": args.seed}
    print(f"{'benchmark':<9} {'embedding':<22} {'functions':>9} {'seconds':>8}")
    for name in args.benchmarks:
        bench = load(name)
        for kind in ("fim", "outputs"):
            t = time.perf_counter()
            emb = embed(bench, kind, **quiet)
            print(f"{name:<9} {kind:<22} {len(emb.rows):>9} {time.perf_counter() - t:>8.1f}")
        t = time.perf_counter()
        emb = embed(bench, "both", **quiet)  # the two models from the cache, then the union
        print(f"{name:<9} {'both (union only)':<22} {len(emb.rows):>9} "
              f"{time.perf_counter() - t:>8.1f}")
        t = time.perf_counter()
        fit(clean_outputs(bench.outputs), UmapSettings("euclidean", OUTPUT_SETTINGS.n_neighbors,
                                                       OUTPUT_SETTINGS.min_dist, 2, args.seed))
        print(f"{name:<9} {'outputs, all functions':<22} {len(bench):>9} "
              f"{time.perf_counter() - t:>8.1f}")
        t = time.perf_counter()
        found = embed_all(bench, **quiet)
        assert all(e.from_cache for e in found.values())
        print(f"{name:<9} {'cached reload (all 3)':<22} {len(emb.rows):>9} "
              f"{time.perf_counter() - t:>8.2f}")


if __name__ == "__main__":
    main()
