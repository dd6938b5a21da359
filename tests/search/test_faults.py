"""No silent wrong results (issue 21), with real processes: two drivers on one ledger (one
killed with SIGKILL) share one budget and train nothing twice; a search with seed 1 records
and compares seed 1; a ledger of another task is refused before any work; a damaged space
cache is detected and rebuilt; a baseline missing from the space is an error; and a table of
bad inputs through the real command line, each: exit 2, one line naming the problem, no
traceback, nothing changed on disk."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from aquasurf_core.search.comparisons import compare_with_baselines
from aquasurf_core.search.engine import SearchConfig, run_search
from aquasurf_core.search.ledger import SearchLedger

ROOT = Path(__file__).resolve().parents[2]
BASELINES = ("relu(x)", "tanh(x)")

DRIVER = """
import os, sys, time
from dataclasses import replace
from aquasurf_core.search.engine import SearchConfig, run_search
from aquasurf_core.search.tasks import arch_task
from aquasurf_core.training.data import load_mnist1d
from aquasurf_core.training.recipes import get_recipe

def tiny_task(log):
    task = arch_task("tiny-cnn", "cnn", load_mnist1d,
                     recipe=get_recipe("cnn", epochs=1, train_subset=128))
    train = task.train

    def logged_train(fn_name, seed):
        if os.getpid() != os.getpgid(0):  # a dask worker (not the driver's own task check)
            with open(log, "a") as f:
                f.write(f"{os.getpgid(0)} {fn_name}\\n")
        time.sleep(1.0)
        return train(fn_name, seed)

    return replace(task, train=logged_train)

if __name__ == "__main__":
    run_search(tiny_task(sys.argv[3]), sys.argv[1],
               SearchConfig(evaluations=int(sys.argv[2]), features=24, space="3-node",
                            feature_batch=8, baselines=("relu(x)", "tanh(x)"),
                            lease_seconds=3.0),
               workers=2, progress=False, log=lambda *a: None)
"""


def _results(path: Path) -> list[dict]:
    with SearchLedger(path, readonly=True) as ledger:
        return ledger.results(None)


def test_two_drivers_one_killed_share_one_budget_and_train_nothing_twice(tmp_path):
    ledger_path, log = tmp_path / "ledger.sqlite", tmp_path / "trained.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    budget = 6

    def driver():
        return subprocess.Popen([sys.executable, "-c", DRIVER, str(ledger_path), str(budget),
                                 str(log)], env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    first, second = driver(), driver()  # started together: one transaction adds the space
    deadline = time.time() + 400
    while time.time() < deadline and first.poll() is None:
        if ledger_path.exists() and len(_results(ledger_path)) >= 4:
            break
        time.sleep(0.3)
    os.killpg(first.pid, signal.SIGKILL)  # the first driver, its scheduler and its workers
    first.wait(timeout=60)
    recorded_by_first = {r["class_id"] for r in _results(ledger_path)}
    _, err = second.communicate(timeout=600)
    assert second.returncode == 0, err[-3000:]
    results = _results(ledger_path)
    keys = [(r["class_id"], r["seed"]) for r in results]
    assert len(keys) == len(set(keys)) == len(BASELINES) + budget  # exactly the budget
    starts: dict[str, list[int]] = {}
    for line in log.read_text().splitlines():
        group, name = line.split(" ", 1)
        starts.setdefault(name, []).append(int(group))
    with SearchLedger(ledger_path, readonly=True) as ledger:
        ids = {ledger.name_of(c): c for c, _ in keys}
        counts = ledger.counts()
    twice = {name: groups for name, groups in starts.items() if len(groups) > 1}
    for name, groups in twice.items():  # only what the kill lost is trained again
        assert groups.count(second.pid) <= 1 and first.pid in groups, (name, groups)
        assert ids.get(name) not in recorded_by_first
    assert counts["featuring"] == counts["queued"] == counts["running"] == 0
    print(f"two drivers: {len(results)} results for a budget of {len(BASELINES)} + {budget}; "
          f"{sum(len(g) for g in starts.values())} trainings started, "
          f"{len(twice)} restarted after the kill")


@pytest.fixture(scope="module")
def client():
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


def _tiny_task():
    from aquasurf_core.search.tasks import arch_task
    from aquasurf_core.training.data import load_mnist1d
    from aquasurf_core.training.recipes import get_recipe

    return arch_task("tiny-cnn", "cnn", load_mnist1d,
                     recipe=get_recipe("cnn", epochs=1, train_subset=128))


def test_a_search_with_seed_1_records_and_compares_seed_1(tmp_path, client):
    ledger_path = tmp_path / "ledger.sqlite"
    config = SearchConfig(evaluations=2, features=24, space="3-node", feature_batch=8,
                          seed=1, baselines=BASELINES)
    status = run_search(_tiny_task(), ledger_path, config, client=client, progress=False,
                        log=lambda *_: None)
    assert status["evaluated"] == len(BASELINES) + 2 and status["best"] is not None
    assert {r["seed"] for r in _results(ledger_path)} == {1}  # what was run is what is recorded
    table = compare_with_baselines(_tiny_task(), ledger_path, top=1, seeds=(1,), client=client)
    assert sorted(table["kind"]) == ["baseline"] * len(BASELINES) + ["discovered"]
    # a ledger of another task is refused, before any work and without writing
    other = _tiny_task().__class__(**{**_tiny_task().__dict__, "name": "other-task"})
    before = hashlib.sha256(ledger_path.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match="task 'tiny-cnn', not 'other-task'"):
        compare_with_baselines(other, ledger_path, top=1, seeds=(1,), client=client)
    with pytest.raises(ValueError, match="belongs to a search of task 'tiny-cnn'"):
        run_search(other, ledger_path, config, client=client, progress=False)
    with pytest.raises(ValueError, match="seed 1, not 0"):
        run_search(_tiny_task(), ledger_path, SearchConfig(**{**config.__dict__, "seed": 0}),
                   client=client, progress=False)
    assert hashlib.sha256(ledger_path.read_bytes()).hexdigest() == before
    # a baseline that is not a function of the space is an error, not a silent drop
    with pytest.raises(ValueError, match="tanh\\(tanh\\(tanh\\(x\\)\\)\\) are not functions"):
        run_search(_tiny_task(), tmp_path / "b.sqlite",
                   SearchConfig(**{**config.__dict__,
                                   "baselines": ("relu(x)", "tanh(tanh(tanh(x)))")}),
                   client=client, progress=False)


@pytest.mark.parametrize("field,value", [("feature_batch", 0), ("k", 0), ("retries", -1),
                                         ("refit_growth", 0.0), ("seed", -1),
                                         ("baselines", ("relu(x)", "relu(x)"))])
def test_search_settings_are_checked_by_meaning(field, value):
    with pytest.raises(ValueError, match=field):
        SearchConfig(**{field: value})


def test_a_damaged_space_cache_is_detected_and_rebuilt(tmp_path):
    from aquasurf_core.space.store import build_space

    schema = "binary(unary(x),unary(x))"
    store = build_space(schema, out_dir=tmp_path / "space", progress=False)
    expected = np.array(store.outputs)
    outputs = tmp_path / "space" / "outputs.npy"
    with open(outputs, "r+b") as f:  # flip one bit of the first output row
        f.seek(200)
        byte = f.read(1)
        f.seek(200)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.warns(UserWarning, match="outputs.npy is corrupt"):
        rebuilt = build_space(schema, out_dir=tmp_path / "space", progress=False)
    np.testing.assert_array_equal(np.asarray(rebuilt.outputs), expected)
    again = build_space(schema, out_dir=tmp_path / "space", progress=False)  # verified: quiet
    assert again.n_unique == rebuilt.n_unique


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()
            and not p.name.endswith(("-wal", "-shm"))}  # SQLite's own sidecar files of a read


def _bad_inputs(tmp: Path) -> list[tuple[list[str], str]]:
    import sqlite3

    (tmp / "random.sqlite").write_bytes(os.urandom(4096))
    (tmp / "truncated.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x00" * 50)
    (tmp / "folder.sqlite").mkdir()
    db = sqlite3.connect(tmp / "bench.sqlite")
    db.execute("CREATE TABLE runs (x INTEGER)")
    db.commit()
    db.close()
    with SearchLedger(tmp / "other.sqlite") as ledger:
        ledger.add_functions(["relu(x)", "tanh(x)"], seed=0)
        ledger.set_meta("config", {"task": "tiny-cnn", "space": "3-node"})
    return [  # (arguments, what the message must say)
        (["search", "status", "--ledger", "random.sqlite"], "not a usable search ledger"),
        (["search", "status", "--ledger", "truncated.sqlite"], "not a usable search ledger"),
        (["search", "export", "--ledger", "folder.sqlite"], "folder.sqlite"),
        (["search", "status", "--ledger", "bench.sqlite"], "not a search ledger"),
        (["search", "export", "--ledger", "bench.sqlite", "--out", "x.csv"], "not a search"),
        (["search", "status", "--ledger", "missing.sqlite"], "no search ledger"),
        (["search", "ship", "--task", "../../evil", "--ledger", "other.sqlite"],
         "cannot name a folder"),
        (["search", "run", "--task", "digits-cnn", "--workers", "0", "--ledger", "n.sqlite"],
         "workers must be"),
        (["search", "run", "--task", "digits-cnn", "--ledger", "other.sqlite"],
         "belongs to a search of task 'tiny-cnn'"),
        (["search", "run", "--task", "digits-cnn", "--seed", "-1", "--ledger", "n.sqlite"],
         "seed must be"),
        (["search", "run", "--task", "digits-cnn", "--min-coverage", "2", "--ledger",
          "n.sqlite"], "min_coverage must be a number in [0, 1]"),
        (["search", "run", "--task", "digits-cnn", "--device", "gpu", "--ledger", "n.sqlite"],
         "device 'gpu' is not a device name"),
        (["search", "run", "--task", "digits-cnn", "--factor-dtype", "half", "--ledger",
          "n.sqlite"], "invalid choice: 'half'"),
        (["search", "compare", "--task", "digits-cnn", "--ledger", "other.sqlite"],
         "holds a search of task 'tiny-cnn'"),
        (["search", "compare", "--task", "digits-cnn", "--ledger", "other.sqlite", "--top",
          "-1"], "top must be"),
        (["search", "compare", "--task", "digits-cnn", "--ledger", "other.sqlite", "--seeds",
          "0", "0"], "seeds must be distinct"),
        (["search", "compare", "--task", "digits-cnn", "--ledger", "other.sqlite",
          "--workers", "-1"], "workers must be"),
        (["space", "map", "--limit", "-5", "--out", "map"], "--limit must be"),
        (["bench", "status", "--arch", "cnn", "--ledger", "other.sqlite"],
         "not a benchmark build ledger"),
        (["search", "ship", "--task", "t", "--ledger", "bench.sqlite", "--out", "shipped"],
         "not a search ledger"),
    ]


def test_bad_inputs_through_the_real_command_line(tmp_path):
    cases = _bad_inputs(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AQUASURF_CACHE": str(tmp_path / "cache")}
    before = _tree(tmp_path)

    def run(case):
        args, says = case
        done = subprocess.run([sys.executable, "-m", "aquasurf_core", *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)
        ok = done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr
        return None if ok else (args, done.returncode, done.stderr[-600:])

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:  # each case its own process; a few at a time
        failures = [f for f in pool.map(run, cases) if f is not None]
    assert not failures, failures
    assert _tree(tmp_path) == before  # no existing file changed, nothing new written
    assert not (ROOT.parent / "evil").exists()


def test_an_unreachable_scheduler_is_found_before_any_training(tmp_path):
    import socket

    with socket.socket() as sock:  # a loopback port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AQUASURF_CACHE": str(tmp_path / "cache")}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "aquasurf_core", "search", "run", "--task",
                           "digits-cnn", "--space", "3-node", "--ledger", "l.sqlite",
                           "--scheduler-address", f"tcp://127.0.0.1:{port}"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"no dask scheduler answers at tcp://127.0.0.1:{port}" in done.stderr
    assert not _results(tmp_path / "l.sqlite")  # ReLU was not trained first
    print(f"unreachable scheduler refused after {time.perf_counter() - start:.1f} s")


def test_a_full_disk_keeps_the_previous_export(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs",
                                            str(disk)], capture_output=True).returncode:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        ledger_path = tmp_path / "l.sqlite"
        with SearchLedger(ledger_path) as ledger:
            ledger.add_functions([f"f{i}(x)" for i in range(400)], seed=0)
            for c in range(400):
                ledger.record_result(c, 0, {"val_acc": 0.5, "note": "x" * 200}, seconds=1.0)
        previous = disk / "r.csv"
        previous.write_text("order,class_id\n0,0\n")
        (disk / "filler").write_bytes(b"\0" * (40 << 10))  # the export no longer fits
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-m", "aquasurf_core", "search", "export",
                               "--ledger", str(ledger_path), "--out", str(previous)],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "No space left" in done.stderr, done.stderr[-1500:]
        assert "Traceback" not in done.stderr
        assert previous.read_text() == "order,class_id\n0,0\n"  # untouched
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "r.csv"]  # no temp left
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_command_line_stage_defaults_are_the_search_configs():
    """`aquasurf search run` states its K-FAC defaults without importing the engine; they
    must be SearchConfig's (skip what K-FAC cannot represent, refuse below half coverage)."""
    from aquasurf_core.cli import build_parser
    from aquasurf_core.search.tasks import DEFAULT_MIN_COVERAGE

    args = build_parser().parse_args(["search", "run", "--task", "digits-cnn"])
    config = SearchConfig()
    assert (args.on_unsupported, args.min_coverage, args.factor_dtype, args.surrogate,
            args.extra_features, args.batch, args.features, args.evaluations) == (
        config.on_unsupported, config.min_coverage, config.factor_dtype, config.surrogate,
        config.extra_features, config.batch, config.features, config.evaluations)
    # the space and operator set: both read from their registries' defaults
    assert (args.space, args.operators) == (config.space, config.operators) == ("4-node", "paper")
    assert config.min_coverage == DEFAULT_MIN_COVERAGE == 0.5
