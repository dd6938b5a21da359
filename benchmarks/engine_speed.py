"""How fast the large-scale search engine runs on a task.

    python benchmarks/engine_speed.py [--task digits-cnn] [--functions 128] [--evaluations 8]

1. Fisher features per second and evaluations per minute of the task, on a dask LocalCluster of
   1 and 2 single-threaded workers, side by side in this process (the same functions each time).
2. Engine overhead: during a short search (3-node space, 2 workers), the time between a worker
   finishing a task and starting its next one (dask's task stream), median and 90th percentile.
3. The ledger's claim throughput: claims per second with 2 and 8 concurrent claimant processes
   taking one function at a time from one ledger.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLAIMANT = """
import json, os, sys, time
from aquasurf_core.search.ledger import SearchLedger
ledger = SearchLedger(sys.argv[1])
print("ready", flush=True)
while not os.path.exists(sys.argv[3]):
    time.sleep(0.005)
n = 0
while ledger.claim_features(1, sys.argv[2]):
    n += 1
print(json.dumps(n), flush=True)
"""


def throughput(task: str, names: list[str], evaluations: int) -> None:
    from dask.distributed import Client, LocalCluster

    from aquasurf_core.search.engine import evaluate_job, features_job

    items = list(enumerate(names))
    batches = [items[i:i + 16] for i in range(0, len(items), 16)]
    print(f"{'workers':>7} {'features/s':>11} {'evaluations/min':>16}")
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.gather(client.submit(features_job, task, items[:2], 0, pure=False))  # warm
            start = time.perf_counter()
            client.gather([client.submit(features_job, task, b, 0, pure=False)
                           for b in batches])
            features = len(items) / (time.perf_counter() - start)
            start = time.perf_counter()
            client.gather([client.submit(evaluate_job, task, i, name, 0, pure=False)
                           for i, name in items[:evaluations]])
            per_minute = 60 * evaluations / (time.perf_counter() - start)
        print(f"{workers:>7} {features:>11.1f} {per_minute:>16.1f}")


def overhead(task: str) -> None:
    from dask.distributed import Client, LocalCluster, get_task_stream

    from aquasurf_core.search.engine import SearchConfig, run_search

    with tempfile.TemporaryDirectory() as out, LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client, get_task_stream(client) as stream:
        run_search(task, Path(out) / "ledger.sqlite",
                   SearchConfig(evaluations=12, features=96, space="3-node", feature_batch=16),
                   client=client, progress=False, log=lambda *_: None)
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for record in stream.data:
        spans = [s for s in record["startstops"] if s["action"] == "compute"]
        for span in spans:
            by_worker.setdefault(record["worker"], []).append((span["start"], span["stop"]))
    gaps = []
    for spans in by_worker.values():
        spans.sort()
        gaps += [b[0] - a[1] for a, b in zip(spans, spans[1:], strict=False)]
    gaps = np.array(gaps)
    print(f"engine overhead over {len(gaps)} task hand-overs: median {1000 * np.median(gaps):.0f}"
          f" ms, 90th percentile {1000 * np.percentile(gaps, 90):.0f} ms (includes the driver's "
          "refits of the union embedding)")


def claims(claimants: int, n: int = 3000) -> float:
    from aquasurf_core.search.ledger import SearchLedger

    with tempfile.TemporaryDirectory() as out:
        path, go = Path(out) / "l.sqlite", Path(out) / "go"
        with SearchLedger(path) as ledger:
            ledger.add_functions([f"f{i}(x)" for i in range(n)], seed=0)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        procs = [subprocess.Popen([sys.executable, "-c", CLAIMANT, str(path), f"p{k}", str(go)],
                                  stdout=subprocess.PIPE, text=True, env=env)
                 for k in range(claimants)]
        for p in procs:
            p.stdout.readline()
        start = time.perf_counter()
        go.touch()
        total = sum(json.loads(p.communicate()[0]) for p in procs)
        seconds = time.perf_counter() - start
    assert total == n
    return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="digits-cnn")
    parser.add_argument("--functions", type=int, default=128)
    parser.add_argument("--evaluations", type=int, default=8)
    args = parser.parse_args()
    from aquasurf_core.space import THREE_NODE_SCHEMA, build_space

    store = build_space(THREE_NODE_SCHEMA, progress=False)
    names = [str(n) for n in store.unique["representative"][: args.functions]]
    print(f"task {args.task}: {len(names)} functions for features, {args.evaluations} trained")
    throughput(args.task, names, args.evaluations)
    overhead(args.task)
    for claimants in (2, 8):
        print(f"ledger claims with {claimants} concurrent claimants: "
              f"{claims(claimants):.0f} claims/s")


if __name__ == "__main__":
    main()
