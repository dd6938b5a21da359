"""The search engine with real processes: bad tasks refused before any work, a whole search on
a tiny task, a driver killed with SIGKILL and restarted, a dask worker killed mid-training.

The tiny task is MNIST-1D's small CNN trained one epoch on 256 examples, on the 3-node space.
Drivers run as separate Python processes (the task is defined in their ``__main__``, so
cloudpickle sends it to the dask workers by value)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from aquasurf_core.search.comparisons import (
    compare_with_baselines,
    final_ledger_path,
    transfer_ledger_path,
)
from aquasurf_core.search.engine import SearchConfig, export_results, run_search
from aquasurf_core.search.ledger import SearchLedger
from aquasurf_core.search.tasks import (
    Task,
    TaskError,
    check_task,
    get_task,
    register_task,
    registered_tasks,
)
from aquasurf_core.space.activation import ActivationFunction
from aquasurf_core.space.schemas import THREE_NODE_SCHEMA

ROOT = Path(__file__).resolve().parents[2]

TASK = """
from aquasurf_core.search.tasks import arch_task
from aquasurf_core.training.data import load_mnist1d
from aquasurf_core.training.recipes import get_recipe

def tiny_task(slow=0.0, pid_file=None):
    task = arch_task("tiny-cnn", "cnn", load_mnist1d,
                     recipe=get_recipe("cnn", epochs=1, train_subset=256))
    if not slow:
        return task
    import os, time
    from dataclasses import replace
    train = task.train

    def slow_train(fn_name, seed):
        if pid_file:
            with open(pid_file, "a") as f:
                f.write(f"{os.getpid()} {fn_name}\\n")
        time.sleep(slow)
        return train(fn_name, seed)

    return replace(task, train=slow_train)
"""

DRIVER = TASK + """
import sys
from aquasurf_core.search.engine import SearchConfig, run_search

if __name__ == "__main__":
    slow = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    pid_file = sys.argv[4] if len(sys.argv) > 4 else None
    run_search(tiny_task(slow, pid_file), sys.argv[1],
               SearchConfig(evaluations=int(sys.argv[2]), features=40, space="3-node",
                            feature_batch=8), workers=2, progress=False)
"""


def tiny_task():
    from aquasurf_core.search.tasks import arch_task
    from aquasurf_core.training.data import load_mnist1d
    from aquasurf_core.training.recipes import get_recipe

    return arch_task("tiny-cnn", "cnn", load_mnist1d,
                     recipe=get_recipe("cnn", epochs=1, train_subset=256))


def _dense(act: bool, layer: nn.Module | None = None) -> Task:
    def build(fn_name, seed):
        torch.manual_seed(seed)
        parts = [nn.Flatten(), nn.Linear(40, 16)]
        if act:
            parts.append(ActivationFunction(fn_name))
        if layer is not None:
            parts.append(layer)
        parts.append(nn.Linear(16, 10))
        return nn.Sequential(*parts)

    def fisher_batch(seed):
        return torch.randn(16, 1, 40), torch.randint(0, 10, (16,))

    return Task("bad", build, lambda fn, seed: {"accuracy": 0.5}, fisher_batch)


def test_bad_tasks_are_refused_with_a_clear_error_before_any_work(tmp_path):
    with pytest.raises(TaskError, match="no activation site"):
        check_task(_dense(act=False))
    # a model K-FAC covers too little of (the GRU, left out, holds most parameters)
    with pytest.raises(TaskError, match="K-FAC cannot compute .*skipped: recurrent .*gru.*"
                                        "below min_coverage=0.5"):
        check_task(_dense(act=True, layer=_GRULike()))
    with pytest.raises(TaskError, match="must return a dict with 'val_acc'"):
        check_task(_dense(act=True))
    ledger = tmp_path / "l.sqlite"
    with pytest.raises(TaskError, match="must return a dict with 'val_acc'"):
        run_search(_dense(act=True), ledger, SearchConfig(space="3-node", evaluations=2,
                                                          features=40), progress=False)
    with SearchLedger(ledger) as opened:
        assert opened.results(None) == []  # nothing was evaluated
    with pytest.raises(TaskError, match="unknown task 'nope'.*digits-cnn"):
        get_task("nope")
    assert {"digits-cnn", "mnist1d-cnn"} <= set(registered_tasks())


class _GRULike(nn.Module):
    """A layer K-FAC does not support (a GRU), between the activation and the classifier."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(16, 16, batch_first=True)

    def forward(self, x):
        return self.gru(x.unsqueeze(1))[0].squeeze(1)


@pytest.fixture
def client():
    """One local dask cluster for a test's searches and comparisons (as notebook 05 does)."""
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


def test_a_whole_search_on_a_tiny_task(tmp_path, capsys, client):
    ledger_path = tmp_path / "ledger.sqlite"
    config = SearchConfig(evaluations=4, features=40, space="3-node", feature_batch=8)
    status = run_search(tiny_task(), ledger_path, config, client=client, progress=False,
                        log=lambda *_: None)
    assert status["evaluated"] == 8 + 4  # the baselines, then the searched functions
    assert status["with_features"] >= 40 and status["statuses"]["running"] == 0
    assert status["statuses"]["queued"] == status["statuses"]["featuring"] == 0
    # the end report: the baselines are featured first, so the surrogate learns from them
    # from the first pick on (the ledger records who proposed each evaluation)
    assert status["evaluations"] == {"requested": 4, "ran": 4, "failed": 0, "baselines": 8,
                                     "baselines_failed": 0}
    assert status["proposals"] == {"surrogate": 4, "random": 0, "unknown": 0}, status
    assert status["feature_failures"] == 0 and status["random_because"] == {}
    with SearchLedger(ledger_path) as ledger:
        table = export_results(ledger)
        featured, _, _ = ledger.featured()
        assert set(ledger.meta("config")["baseline_ids"]) <= set(featured.tolist())
    assert sorted(table["proposer"]) == ["baseline"] * 8 + ["surrogate"] * 4
    assert table["class_id"].is_unique and set(table["seed"]) == {0}
    assert (table["val_acc"].between(0, 1)).all()
    # resuming a finished search adds nothing
    again = run_search(tiny_task(), ledger_path, config, client=client, progress=False,
                       log=lambda *_: None)
    assert again["evaluated"] == 12
    # resuming with another space or operator set is refused, naming the difference
    with pytest.raises(ValueError, match="operators 'paper', not 'coatnet'"):
        run_search(tiny_task(), ledger_path, replace(config, operators="coatnet"),
                   client=client, progress=False, log=lambda *_: None)
    with pytest.raises(ValueError, match="space '3-node', not '4-node'"):
        run_search(tiny_task(), ledger_path, replace(config, space="4-node"), client=client,
                   progress=False, log=lambda *_: None)
    # the best discovered function against the baselines, over two seeds
    table = compare_with_baselines(tiny_task(), ledger_path, top=1, seeds=(0, 1),
                                   client=client)
    assert sorted(table["kind"]) == ["baseline"] * 8 + ["discovered"]
    with SearchLedger(ledger_path) as ledger:
        runs = ledger.results(None)
    assert len(runs) == 12 + 9  # seed 1 of the nine compared functions, each once
    # the command line reads the same ledger
    from aquasurf_core import cli

    assert cli.main(["search", "status", "--ledger", str(ledger_path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["evaluated"] == 12 and shown["runs"] == 21 and shown["task"] == "tiny-cnn"
    assert cli.main(["search", "export", "--ledger", str(ledger_path), "--out",
                     str(tmp_path / "r.csv")]) == 0
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 1 + 21
    assert cli.main(["search", "status", "--ledger", str(tmp_path / "none.sqlite")]) == 2
    capsys.readouterr()
    register_task("tiny-cnn", tiny_task, replace=True)  # the CLI takes registered names
    assert cli.main(["search", "compare", "--task", "tiny-cnn", "--ledger", str(ledger_path),
                     "--top", "1", "--seeds", "0", "1"]) == 0  # every run recorded: no training
    assert capsys.readouterr().out.count("baseline") == 8
    discovered = table[table["kind"] == "discovered"].iloc[0]
    tests = [r["metrics"]["test_acc"] for r in runs if r["class_id"] == discovered["class_id"]]
    assert discovered["median test acc"] == pytest.approx(float(np.median(tests)))
    # the final comparison (Table 1): the same choice, trained longer, in the -final ledger
    longer = replace(tiny_task(), name="tiny-cnn-final")
    final = compare_with_baselines(tiny_task(), ledger_path, top=1, seeds=(0,), client=client,
                                   final_task=longer)
    assert sorted(final["class_id"]) == sorted(table["class_id"])
    with SearchLedger(final_ledger_path(ledger_path)) as opened:
        assert len(opened.results(None)) == 9 and opened.meta("config")["task"] == "tiny-cnn-final"
    # the transfer (Table 2): the same choice, trained on another task, in its own ledger
    other = replace(tiny_task(), name="tiny-other")
    with pytest.raises(ValueError, match="not both"):
        compare_with_baselines(tiny_task(), ledger_path, final_task=longer, transfer_task=other)
    moved = compare_with_baselines(tiny_task(), ledger_path, top=1, seeds=(0,), client=client,
                                   transfer_task=other)
    assert sorted(moved["class_id"]) == sorted(table["class_id"])
    with SearchLedger(transfer_ledger_path(ledger_path, "tiny-other")) as opened:
        assert len(opened.results(None)) == 9
        assert opened.meta("config")["transfer_of"] == "tiny-cnn"
    assert len(_results(ledger_path)) == 21  # the search's ledger is untouched


def test_a_search_with_the_extended_operators_and_13_baselines(tmp_path, client):
    """Table 3's setting: the CoAtNet operator set (31 unary operators) and its 13 baselines,
    on the 3-node space (6,727 functions)."""
    from aquasurf_core.search.engine import EXTENDED_BASELINES
    from aquasurf_core.space import COATNET_BASELINES
    from aquasurf_core.space.store import build_space

    with pytest.raises(ValueError,
                       match="operators must be one of 'paper', 'coatnet', got 'extended'"):
        SearchConfig(operators="extended")
    baselines = EXTENDED_BASELINES
    assert baselines[0] == "relu(x)" and set(baselines) == set(COATNET_BASELINES.values())
    config = SearchConfig(evaluations=1, features=40, space="3-node", feature_batch=8,
                          operators="coatnet", baselines=baselines)
    status = run_search(tiny_task(), tmp_path / "coat.sqlite", config, client=client,
                        progress=False, log=lambda *_: None)
    store = build_space(THREE_NODE_SCHEMA, "coatnet", progress=False)
    assert status["functions"] == store.n_unique > 2_902
    assert status["evaluated"] == 13 + 1
    with SearchLedger(tmp_path / "coat.sqlite") as ledger:
        table = export_results(ledger)
    ids = store.class_of(baselines)
    assert (ids >= 0).all() and set(ids) <= set(table["class_id"])  # all 13 evaluated
    reps = store.unique.set_index("class_id")["representative"]
    named = dict(zip(baselines, ids, strict=True))
    for op in ("gelu", "mish", "elish", "leaky_relu"):  # in the space, as their own classes
        assert op in reps[named[f"{op}(x)"]]


def _results(path: Path) -> list[dict]:
    with SearchLedger(path) as ledger:
        return ledger.results(None)


def test_a_driver_killed_with_sigkill_resumes_without_losing_or_repeating(tmp_path):
    ledger_path = tmp_path / "ledger.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(ledger_path), "12", "0.3"],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ledger_path.exists() and len(_results(ledger_path)) >= 10:
            break
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver, its scheduler and its workers
    proc.wait(timeout=60)
    before = {(r["class_id"], r["seed"]): r["finished_at"] for r in _results(ledger_path)}
    assert len(before) >= 10
    with SearchLedger(ledger_path) as ledger:
        claimed = sum(ledger.counts()[s] for s in ("featuring", "queued", "running"))
    assert claimed > 0  # the dead driver left claims behind
    done = subprocess.run([sys.executable, "-c", DRIVER, str(ledger_path), "12"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    after = _results(ledger_path)
    keys = [(r["class_id"], r["seed"]) for r in after]
    assert len(keys) == len(set(keys)) == 8 + 12  # nothing twice, nothing missing
    for r in after:  # every result of the killed run is still there, untouched
        if (r["class_id"], r["seed"]) in before:
            assert r["finished_at"] == before[r["class_id"], r["seed"]]
    with SearchLedger(ledger_path) as ledger:
        counts = ledger.counts()
    assert counts["featuring"] == counts["queued"] == counts["running"] == 0


def test_a_worker_killed_mid_training_has_its_task_run_elsewhere(tmp_path):
    ledger_path, pid_file = tmp_path / "ledger.sqlite", tmp_path / "pids"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(ledger_path), "3", "1.5",
                             str(pid_file)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    victim = None
    deadline = time.time() + 300
    while time.time() < deadline and victim is None:
        if pid_file.exists():
            lines = pid_file.read_text().split("\n")
            # the check trains ReLU in the driver; kill a dask worker's training
            workers = [ln.split() for ln in lines if ln and int(ln.split()[0]) != proc.pid]
            if workers:
                victim = workers[0]
        time.sleep(0.1)
    assert victim is not None
    os.kill(int(victim[0]), signal.SIGKILL)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    results = _results(ledger_path)
    keys = [r["class_id"] for r in results]
    assert len(keys) == len(set(keys)) == 8 + 3
    assert victim[1] in {r["name"] for r in results} | {"relu(x)"}  # its evaluation finished
    retried = [ln.split()[1] for ln in pid_file.read_text().split("\n") if ln]
    assert retried.count(victim[1]) >= 2  # started twice: once killed, once finished
    assert json.loads(json.dumps(results[0]["metrics"]))  # metrics are plain JSON


@pytest.mark.parametrize("surrogate, says", [
    ("lgp-ucb", "GP-UCB (kappa=2, length=0.3) on the raw Eq. 2 + Eq. 3 distances"),
    ("knr-union", "KNR (k=3) on the union embedding")])
def test_either_surrogate_proposes_and_is_recorded(tmp_path, client, surrogate, says):
    """The default (GP-UCB on the raw distances, no UMAP) and the paper's KNR on the union
    embedding both propose every searched function once enough have valid spectra; the
    ledger records which surrogate proposed each."""
    config = SearchConfig(evaluations=2, features=48, space="3-node", feature_batch=8,
                          surrogate=surrogate)
    logged = []
    status = run_search(tiny_task(), tmp_path / "ledger.sqlite", config, client=client,
                        progress=False, log=logged.append)
    assert status["proposals"] == {"surrogate": 2, "random": 0, "unknown": 0}, status
    with SearchLedger(tmp_path / "ledger.sqlite", readonly=True) as ledger:
        reasons = [r["proposer_reason"] for r in ledger.results(0) if r["proposer"] == "surrogate"]
    assert reasons == [says, says]
    assert any(("distances between" if surrogate == "lgp-ucb" else "embedded") in line
               for line in logged)


def test_surrogate_settings_are_checked():
    for bad, says in [({"surrogate": "knr"}, "surrogate must be one of lgp-ucb, knr-union"),
                      ({"kappa": -1.0}, "kappa must be a non-negative number"),
                      ({"extra_features": -0.5}, "extra_features must be a non-negative"),
                      ({"batch": "greedy"}, "batch must be one of believer, independent"),
                      ({"length": 0.0}, "length must be a positive number")]:
        with pytest.raises(ValueError, match=says):
            SearchConfig(**bad)


def test_extra_features_bound_the_features_computed_beyond_the_request(tmp_path, client):
    """At most ``features x (1 + extra_features)`` functions get features; then every
    worker evaluates."""
    config = SearchConfig(evaluations=4, features=40, space="3-node", feature_batch=8,
                          extra_features=0.2)
    status = run_search(tiny_task(), tmp_path / "ledger.sqlite", config, client=client,
                        progress=False, log=lambda *_: None)
    assert config.feature_cap == 48
    assert 40 <= status["with_features"] + status["feature_failures"] <= 48, status
    assert status["evaluations"]["ran"] == 4


def test_the_driver_hands_out_evaluations_while_a_refit_runs(tmp_path):
    """A refit in flight (a future not done) does not hold up a free worker: the driver
    proposes from the space it has and leaves the refit running."""
    from concurrent.futures import Future

    from aquasurf_core.search import engine
    from aquasurf_core.search.surrogate_space import Refitter

    names = [f"add(x,{u}(x))" for u in ("tanh", "sigmoid", "erf", "arctan", "softsign")] + \
        [f"f{i}(x)" for i in range(35)]
    ledger = SearchLedger(tmp_path / "ledger.sqlite")
    ledger.add_functions(names, 0)
    claimed = ledger.claim_features(30, "s")
    rng = np.random.default_rng(0)
    ledger.record_features([(c, None, rng.random(8).astype(np.float32), 0.1)
                            for c, _ in claimed])
    ids = np.array(sorted(c for c, _ in claimed))[:25]  # the space in use: 25 of the 30
    for c in ids[:5]:  # five results to learn from
        assert ledger.claim_evaluation([int(c)], "s", budget=10)
        ledger.start(int(c), "s")
        ledger.record_result(int(c), 0, {"val_acc": 0.5 + 0.01 * int(c)}, seconds=1.0)
    config = SearchConfig(evaluations=10, features=20, space="3-node", extra_features=0.0)
    refit = Future()  # the refit of all 30: still running
    refitter = Refitter()
    refitter.future = refit
    run = engine._Run(config, ledger, "task", "s", {}, lambda *_: None, refitter,
                      embedded_at=25, requested_at=30, coord_ids=ids,
                      distances=np.abs(ids[:, None] - ids[None, :]).astype(float))

    class Client:
        submitted = []

        def submit(self, fn, *args, **kwargs):
            self.submitted.append((fn.__name__, args))
            return object()

    client = Client()
    _, done = engine._evaluated(ledger, {}, 0)
    engine._fill(run, client, 1, done, set(), store=None)
    assert [fn for fn, _ in client.submitted] == ["evaluate_job"]
    assert client.submitted[0][1][1] in set(ids[5:].tolist())  # from the space in use
    assert refitter.future is refit and not refit.done()  # the refit goes on
    ledger.close()
