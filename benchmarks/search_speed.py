"""How long the benchmark searches of notebook 04 take.

    python benchmarks/search_speed.py [--benchmark cnn] [--trials 8] [--budget 100]
                                      [--evaluated 100] [--no-dask]

1. Per-step cost of each surrogate: one ``ask`` after ``--evaluated`` evaluations on the
   shipped benchmark's 2-D union embedding (fit on the evaluated functions, score every open
   candidate: 2,902 of cnn's after 100), median over repeats, in one process with one thread.
   The distance surrogates (KNR, KNR-uniform, KNR-UCB, LGP-UCB) also on the raw Eq. 2/3
   distances (the union's median-scaled sum), no UMAP. For ``"rfr"`` also the random forest alone on
   that step's data, scikit-learn's ``RandomForestRegressor`` against
   :func:`~aquasurf_core.search.forest.forest_predict` (which the surrogate uses; the two
   predictions are checked to be identical), side by side, with their ratio.
2. The total those costs imply for the paper profile of notebook 04's sections 1-5 (3
   benchmarks x 3 features x 7 methods x 100 trials x 92 surrogate steps, plus the KNR
   ablations), on 1 and 2 workers.
3. Measured trials per second on a dask ``LocalCluster`` with 1 and 2 single-threaded workers
   (KNR and RFR, ``--trials`` each), side by side in this process: the scaling a user with more
   cores or a cluster can expect.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

STEPS = 92  # surrogate steps of a 100-evaluation search (the first 8 are the start)
MAIN = 3 * 3 * 100  # benchmarks x features x trials per method
ABLATION_KNR_TRIALS = 3 * 9 * 100  # benchmarks x ablation arms x trials
#: The methods of notebook 04's main experiment (paper profile).
NOTEBOOK_METHODS = ("knr", "rfr", "svr", "gpr-ei", "gpr-ucb", "random", "random-filter")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="cnn")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--evaluated", type=int, default=100)
    parser.add_argument("--no-dask", action="store_true", help="skip part 3")
    args = parser.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)  # one core: BLAS too
    import numpy as np

    from aquasurf_core import paths
    from aquasurf_core.bench import load
    from aquasurf_core.embedding import embed
    from aquasurf_core.search import SURROGATES, Searcher
    from aquasurf_core.search.benchmark_search import (
        problem_from,
        raw_problem_from,
        run_experiment,
    )
    from aquasurf_core.search.forest import forest_predict, sklearn_forest_predict
    from aquasurf_core.search.surrogates import DISTANCE_SURROGATES

    bench = load(args.benchmark)
    problem = problem_from(bench, embed(bench, "both", log=lambda *_: None))
    print(f"{args.benchmark}: {int(problem.valid.sum())} embedded functions of {len(bench)}")
    per_step = {}
    for method in SURROGATES:
        coords = None if method.startswith("random") else problem.coords
        searcher = Searcher(problem.names, coords, valid=problem.valid, surrogate=method,
                            first=[problem.first], seed=0)
        for _ in range(args.evaluated):
            (name,) = searcher.ask()
            searcher.tell(name, float(problem.val_acc[searcher.index[name]]))
        if method == "rfr":
            forest_times = [forest_comparison(searcher, problem, np, forest_predict,
                                              sklearn_forest_predict, n)
                            for n in (None, len(problem.names))]
        if method == "knr":  # the filtered surrogates score the embedded, unevaluated ones
            open_candidates = int(problem.valid.sum()) - sum(
                bool(problem.valid[searcher.index[n]]) for n, _ in searcher.results())
        per_step[method] = median_ask(searcher)
    print(f"\n{'method':<14} {'ms per step':>11} {'s per trial':>11}   (after "
          f"{args.evaluated} evaluations, {open_candidates} candidates scored)")
    for method, seconds in per_step.items():
        print(f"{method:<14} {1000 * seconds:>11.1f} {seconds * STEPS:>11.2f}")
    raw = raw_problem_from(bench, "both")
    print(f"\non the raw Eq. 2/3 distances (no UMAP; {len(bench)} x {len(bench)} float32):")
    for method in sorted(DISTANCE_SURROGATES):
        seconds = ask_seconds(raw, method, args.evaluated, distances=raw.distances)
        print(f"{method + ' (raw)':<20} {1000 * seconds:>5.1f} ms per ask")
    # timing only: every function a candidate, with the Euclidean distances of random points
    from scipy.spatial.distance import cdist

    points = np.random.default_rng(0).normal(size=(len(bench), 10))
    timed = Searcher(raw.names, None, surrogate="lgp-ucb", first=[raw.first], seed=0,
                     distances=cdist(points, points).astype(np.float32),
                     options={"kappa": 2.0, "length": 0.3})  # the engine's default
    for _ in range(args.evaluated):
        (name,) = timed.ask()
        timed.tell(name, float(raw.val_acc[timed.index[name]]))
    print(f"lgp-ucb (the engine's default, kappa 2), all {len(bench)} functions as candidates "
          f"after {args.evaluated} evaluations (timing only, random points): "
          f"{1000 * median_ask(timed):.1f} ms per ask on one core (target: at most 10 ms)")
    total = (sum(per_step[m] for m in NOTEBOOK_METHODS) * STEPS * MAIN
             + per_step["knr"] * STEPS * ABLATION_KNR_TRIALS)
    print(f"\nimplied paper-profile search time: {total / 60:.1f} min on 1 worker, "
          f"{total / 120:.1f} min on 2 (of which RFR {per_step['rfr'] * STEPS * MAIN / 60:.1f}"
          " min on 1)")
    print(f"\nrfr forest alone, fit on {args.evaluated} evaluated, predicting (identical "
          "predictions checked):")
    for candidates, old, new in forest_times:
        print(f"  {candidates:>5} candidates: RandomForestRegressor {1000 * old:6.1f} ms, "
              f"forest_predict {1000 * new:6.1f} ms, {old / new:.1f}x faster")
    if args.no_dask:
        return

    print(f"\n{'method':<8} {'workers':>7} {'trials':>6} {'seconds':>8} {'trials/s':>9}")
    for method in ("knr", "rfr"):
        for workers in (1, 2):
            with tempfile.TemporaryDirectory() as out:
                paths.set_cache_dir(out)
                start = time.perf_counter()
                run_experiment([problem], [method], range(args.trials), out, budget=args.budget,
                               workers=workers, progress=False, log=lambda *_: None)
                seconds = time.perf_counter() - start
            print(f"{method:<8} {workers:>7} {args.trials:>6} {seconds:>8.1f} "
                  f"{args.trials / seconds:>9.2f}")
    print("(the dask runs include starting the local cluster, ~2-4 s)")


def median_ask(searcher, repeats: int = 7) -> float:
    """Median seconds of one ``ask`` (the asked function is released each time)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        (name,) = searcher.ask()
        times.append(time.perf_counter() - start)
        searcher.release(name)
    return statistics.median(times)


def ask_seconds(problem, method, evaluated, distances=None):
    """Median seconds per ``ask`` of ``method`` after ``evaluated`` evaluations of
    ``problem`` (on its coordinates, or on ``distances``)."""
    from aquasurf_core.search import Searcher

    searcher = Searcher(problem.names, None if distances is not None else problem.coords,
                        valid=problem.valid, surrogate=method, first=[problem.first], seed=0,
                        distances=distances)
    for _ in range(evaluated):
        (name,) = searcher.ask()
        searcher.tell(name, float(problem.val_acc[searcher.index[name]]))
    return median_ask(searcher)


def forest_comparison(searcher, problem, np, fast, reference, n_candidates=None,
                      repeats: int = 7):
    """``(candidates, sklearn seconds, fast seconds)`` of the random forest of the next
    ``"rfr"`` step (the searcher's evaluated functions and open candidates; with
    ``n_candidates``, those repeated cyclically to that many, e.g. the benchmark's size),
    medians over ``repeats`` alternating runs; raises ``AssertionError`` if the predictions
    differ."""
    rows = [r for r, _ in searcher.history if problem.valid[r]]
    y = np.array([acc for r, acc in searcher.history if problem.valid[r]])
    open_rows = np.setdiff1d(np.flatnonzero(problem.valid), rows)
    x, candidates = problem.coords[rows], problem.coords[open_rows]
    if n_candidates is not None:
        candidates = np.resize(candidates, (n_candidates, candidates.shape[1]))
    old, new = [], []
    for seed in range(repeats):
        start = time.perf_counter()
        expected = reference(x, y, candidates, seed)
        old.append(time.perf_counter() - start)
        start = time.perf_counter()
        got = fast(x, y, candidates, seed)
        new.append(time.perf_counter() - start)
        assert np.array_equal(got, expected), "forest_predict differs from sklearn"
    return len(candidates), statistics.median(old), statistics.median(new)


if __name__ == "__main__":
    main()
