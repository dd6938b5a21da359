"""What breaks a search on a user's own model, with real dask worker processes: a function
whose features raise fails alone (recorded, never computed again on resume), a training run
that raises is a failed evaluation (spent, reported, never trained again), and the end report
says what ran, what failed and who proposed the picks.

The task is a tiny MLP on a fixed random batch (features in milliseconds); its ``train`` is
not a capability under test (a fixed accuracy, or an error), and every call of ``build`` and
``train`` is appended to a file, so replays are counted across processes and sessions.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import cloudpickle
import pytest
import torch
from torch import nn

from aquasurf_core.search import engine
from aquasurf_core.search.engine import SearchConfig, export_results, run_search
from aquasurf_core.search.ledger import SearchLedger
from aquasurf_core.search.tasks import Task
from aquasurf_core.space.activation import ActivationFunction

# the task's functions travel to the workers by value (this module is not importable there)
cloudpickle.register_pickle_by_value(sys.modules[__name__])

BASELINES = ("relu(x)", "tanh(x)")


def _representatives() -> set[str]:
    """The names the ledger gives the baselines' classes (e.g. div(tanh(x),one(x)))."""
    store = engine.space_store("3-node")
    return {str(store.unique["representative"][int(c)]) for c in store.class_of(BASELINES)}


def _logged(log: Path, what: str, fn_name: str) -> None:
    with open(log, "a") as f:
        f.write(f"{what} {os.getpid()} {fn_name}\n")


def failing_task(log: Path, *, fail_training: bool, fails: str = "tanh") -> Task:
    """Building any function whose name holds ``fails`` raises CUDA's out-of-memory error
    (``fails=""``: every function but the literal "relu(x)" of the check, which no worker
    builds: the ledger names ReLU's class max(identity(x),zero(x))); with ``fail_training``,
    training every function but the baselines raises."""
    keep = _representatives() | set(BASELINES)

    def build(fn_name, seed):
        _logged(log, "build", fn_name)
        if fails in fn_name and fn_name != "relu(x)":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(8, 8), ActivationFunction(fn_name), nn.Linear(8, 4))

    def train(fn_name, seed):
        _logged(log, "train", fn_name)
        if fail_training and fn_name not in keep:
            raise FloatingPointError("loss is NaN at step 3")
        return {"val_acc": 0.5, "test_acc": 0.5}

    def fisher_batch(seed):
        g = torch.Generator().manual_seed(seed)
        return torch.randn(16, 8, generator=g), torch.arange(16) % 4

    return Task("failing-mlp", build, train, fisher_batch)


def _calls(log: Path, what: str) -> list[str]:
    """Names given to ``what`` (build/train) by dask workers (not the driver's own check)."""
    out = []
    for line in log.read_text().splitlines():
        kind, pid, name = line.split(" ", 2)
        if kind == what and int(pid) != os.getpid():
            out.append(name)
    return out


def _settled(client) -> None:
    """Wait until no worker executes anything: a job cancelled when a search ended may still be
    running (and logging calls) on a shared cluster."""
    import time

    def executing(dask_worker):
        return len(dask_worker.state.executing)

    deadline = time.monotonic() + 120
    while any(client.run(executing).values()):
        assert time.monotonic() < deadline, "the workers never became idle"
        time.sleep(0.1)


def _recorded(ledger_path: Path) -> set[str]:
    """Names of the functions whose features (or feature errors) the ledger holds."""
    with SearchLedger(ledger_path, readonly=True) as ledger:
        ids, _, _ = ledger.featured()
        return {ledger.name_of(c) for c in ids} | {e["name"] for e in ledger.feature_errors()}


@pytest.fixture(scope="module")
def client():
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


@pytest.fixture
def no_embedding(monkeypatch):
    """Keep these searches on random picks (no UMAP fit: seconds, not minutes): the
    surrogate's path is exercised by test_engine's whole search."""
    monkeypatch.setattr(engine, "MIN_EMBEDDED", 10**6)


def test_failing_features_and_training_are_recorded_counted_and_never_replayed(
        tmp_path, client, no_embedding):
    log, ledger_path = tmp_path / "calls.txt", tmp_path / "l.sqlite"
    task = failing_task(log, fail_training=True)
    config = SearchConfig(evaluations=3, features=16, space="3-node", feature_batch=8,
                          baselines=BASELINES)
    lines: list[str] = []
    status = run_search(task, ledger_path, config, client=client, progress=False,
                        log=lines.append)
    _settled(client)
    with SearchLedger(ledger_path, readonly=True) as ledger:
        errors = ledger.feature_errors()
        results = ledger.results()
    recorded = _recorded(ledger_path)
    # every function whose build raised is recorded with the error (a feature job still
    # running when the search ended is cancelled, not recorded: its functions go back to new)
    built = _calls(log, "build")
    failed_names = {e["name"] for e in errors}
    assert failed_names == {n for n in built if "tanh" in n} & recorded != set()
    assert {e["error"] for e in errors} == {
        "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"}
    assert len(built) == len(set(built))  # within one session, no function featured twice
    # the search went on: the budget was spent on failed runs, which are results
    assert status["evaluations"] == {"requested": 3, "ran": 3, "failed": 3, "baselines": 2,
                                     "baselines_failed": 0}
    assert status["feature_failures"] == len(errors)
    assert status["feature_errors"] == {
        "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB": len(errors)}
    failed = [r for r in results if r["metrics"].get("status") == "failed"]
    assert [r["metrics"]["error"] for r in failed] == ["FloatingPointError: loss is NaN at "
                                                       "step 3"] * 3
    # who proposed what: the baselines, then random picks (too few valid spectra), said why
    assert status["proposals"] == {"surrogate": 0, "random": 3, "unknown": 0}
    assert status["random_because"] == {
        f"fewer than MIN_EMBEDDED={10**6} functions with valid spectra": 3}
    assert sorted(r["proposer"] for r in results) == ["baseline"] * 2 + ["random"] * 3
    assert any(line.startswith("WARNING: most picks were random (3 of 3") for line in lines)
    assert any("WARNING: the features of" in line for line in lines)
    assert any(line.startswith("search failing-mlp: 3 of 3 requested evaluations ran (3 "
                               "failed in training), besides 2 baseline runs (0 failed)")
               for line in lines)
    table = export_results(SearchLedger(ledger_path, readonly=True))
    assert sorted(table["proposer"]) == ["baseline"] * 2 + ["random"] * 3
    trained = _calls(log, "train")
    # resumed with a larger budget and more features: the failures are not replayed -- no
    # function is built or trained again; one more evaluation, more features
    with SearchLedger(ledger_path, readonly=True) as ledger:  # (features go on meanwhile)
        bigger = {**config.__dict__, "evaluations": 4,
                  "features": ledger.feature_counts()[0] + 8}
    more = run_search(task, ledger_path, SearchConfig(**bigger), client=client,
                      progress=False, log=lambda *_: None)
    _settled(client)
    rebuilt, retrained = _calls(log, "build"), _calls(log, "train")
    assert not set(rebuilt[len(built):]) & recorded  # neither failed nor featured ones again
    assert len(_recorded(ledger_path)) > len(recorded)  # but more features were computed
    assert retrained[:len(trained)] == trained and len(retrained) == len(trained) + 1
    assert retrained[-1] not in trained
    assert more["evaluations"]["ran"] == 4 and more["evaluations"]["failed"] == 4
    assert more["feature_failures"] == len({n for n in rebuilt if "tanh" in n}
                                           & _recorded(ledger_path))
    # resumed as it is: nothing replayed -- no evaluation, and no function featured (or
    # failed) before is built again (on a loaded machine the second run may stop before its
    # feature target, which the third then completes with new functions only)
    before = _recorded(ledger_path)
    run_search(task, ledger_path, SearchConfig(**bigger), client=client, progress=False,
               log=lambda *_: None)
    _settled(client)
    assert _calls(log, "train") == retrained
    assert not set(_calls(log, "build")[len(rebuilt):]) & before


def test_a_search_with_failing_features_but_healthy_training_reports_it(tmp_path, client,
                                                                        no_embedding):
    log, ledger_path = tmp_path / "calls.txt", tmp_path / "l.sqlite"
    status = run_search(failing_task(log, fail_training=False), ledger_path,
                        SearchConfig(evaluations=2, features=8, space="3-node",
                                     feature_batch=8, baselines=BASELINES),
                        client=client, progress=False, log=lambda *_: None)
    assert status["evaluations"]["ran"] == 2 and status["evaluations"]["failed"] == 0
    assert status["failed"] == 0 and status["best"]["val_acc"] == 0.5
    # the baseline tanh(x) could not be featured, yet it was evaluated like any baseline
    (tanh,) = {n for n in _representatives() if "tanh" in n}
    with SearchLedger(ledger_path, readonly=True) as ledger:
        names = {e["name"] for e in ledger.feature_errors()}
        evaluated = {r["name"] for r in ledger.results()}
    assert tanh in names and tanh in evaluated


def test_search_options_are_checked_and_a_ledger_keeps_its_k_fac_settings(tmp_path, client,
                                                                         no_embedding):
    for bad, says in [({"factor_dtype": "half"}, "factor_dtype must be one of"),
                      ({"on_unsupported": "warn"}, "on_unsupported must be one of"),
                      ({"min_coverage": -0.1}, "min_coverage must be a number in"),
                      ({"device": "tpu:x"}, "is not a device name")]:
        with pytest.raises(ValueError, match=says):
            SearchConfig(**bad)
    log, ledger_path = tmp_path / "calls.txt", tmp_path / "l.sqlite"
    config = SearchConfig(evaluations=1, features=8, space="3-node", feature_batch=8,
                          baselines=BASELINES, factor_dtype="float32", device="cpu")
    run_search(failing_task(log, fail_training=False), ledger_path, config, client=client,
               progress=False, log=lambda *_: None)
    with pytest.raises(ValueError, match="factor_dtype 'float32', not 'float64'"):
        run_search(failing_task(log, fail_training=False), ledger_path,
                   SearchConfig(**{**config.__dict__, "factor_dtype": "float64"}),
                   client=client, progress=False)
    if not torch.cuda.is_available():  # refused by the check, before any work
        from aquasurf_core.search.tasks import TaskError

        with pytest.raises(TaskError, match="CUDA is not available"):
            run_search(failing_task(log, fail_training=False), tmp_path / "cuda.sqlite",
                       SearchConfig(**{**config.__dict__, "device": "cuda"}), client=client,
                       progress=False)


def test_the_command_line_takes_the_stage_options(tmp_path, capsys, client, no_embedding):
    import json

    from aquasurf_core import cli
    from aquasurf_core.search.tasks import register_task

    log, ledger_path = tmp_path / "calls.txt", tmp_path / "l.sqlite"
    register_task("failing-mlp", lambda: failing_task(log, fail_training=False), replace=True)
    assert cli.main(["search", "run", "--task", "failing-mlp", "--space", "3-node",
                     "--evaluations", "1", "--features", "8", "--quiet",
                     "--scheduler-address", client.scheduler.address,
                     "--ledger", str(ledger_path), "--device", "cpu", "--factor-dtype",
                     "float32", "--on-unsupported", "skip", "--min-coverage", "0.9"]) == 0
    out = capsys.readouterr().out.splitlines()
    start = out.index("{")  # the log lines, then the status as JSON
    status = json.loads("\n".join(out[start:]))
    assert status["evaluations"]["ran"] == 1 and status["evaluations"]["baselines"] == 8
    assert any(line.startswith("search failing-mlp: 1 of 1 requested evaluations ran")
               for line in out[:start])
    with SearchLedger(ledger_path, readonly=True) as ledger:
        config = ledger.meta("config")
    assert (config["device"], config["factor_dtype"], config["on_unsupported"],
            config["min_coverage"]) == ("cpu", "float32", "skip", 0.9)


def test_features_failing_for_every_function_stop_the_search(tmp_path, client, no_embedding):
    from aquasurf_core.search.tasks import TaskError

    log, ledger_path = tmp_path / "calls.txt", tmp_path / "l.sqlite"
    with pytest.raises(TaskError, match=r"the features of all \d+ functions computed in "
                                        "this session failed .*CUDA out of memory"):
        run_search(failing_task(log, fail_training=False, fails=""), ledger_path,
                   SearchConfig(evaluations=2, features=400, space="3-node", feature_batch=8,
                                baselines=BASELINES), client=client, progress=False,
                   log=lambda *_: None)
    with SearchLedger(ledger_path, readonly=True) as ledger:
        failed = len(ledger.feature_errors())
        counts = ledger.counts()
    # it stopped after about FEATURE_FAILURES_TO_STOP (the jobs in flight finish), far from the
    # 400 requested, and left nothing claimed
    print(f"stopped after {failed} failed feature computations")
    assert engine.FEATURE_FAILURES_TO_STOP <= failed < engine.FEATURE_FAILURES_TO_STOP + 3 * 8
    assert counts["featuring"] == counts["queued"] == counts["running"] == 0


def test_a_task_that_cannot_travel_to_the_workers_is_refused_before_any_work(tmp_path):
    """A script whose build names torchvision.ops.MLP (cloudpickle, sending __main__'s functions
    by value, then tries to pickle torch.ops) is refused with the cause and the fix, before a
    ledger is written; importing the class instead travels (the README's recipe)."""
    import subprocess

    script = tmp_path / "search.py"
    script.write_text(textwrap.dedent("""
        import sys
        import torch
        import torchvision
        from torch import nn
        from aquasurf_core.models import make_searchable
        from aquasurf_core.search import SearchConfig, Task, TaskError, run_search

        def build(fn_name, seed):
            torch.manual_seed(seed)  # torch and .ops named: cloudpickle looks up torch.ops
            mlp = torchvision.ops.MLP(4, [5, 3], activation_layer=nn.ReLU)
            return make_searchable(mlp, fn_name)[0]

        task = Task("unpicklable", build, lambda fn_name, seed: {"val_acc": 0.5},
                    lambda seed: (torch.randn(8, 4), torch.arange(8) % 3))
        if __name__ == "__main__":
            try:
                run_search(task, sys.argv[1], SearchConfig(evaluations=1), workers=1)
            except TaskError as err:
                print("REFUSED", err)
    """))
    ledger = tmp_path / "ledger.sqlite"
    out = subprocess.run([sys.executable, str(script), str(ledger)], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert "REFUSED task 'unpicklable' cannot be sent to the dask workers" in out.stdout, (
        out.stdout + out.stderr)
    assert "_Ops" in out.stdout and "from torchvision.ops import MLP" in out.stdout
    assert not ledger.exists()
