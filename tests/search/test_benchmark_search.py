"""Searching a benchmark many times: problems from a benchmark, one trial against the table,
common random numbers across methods, and the dask experiment with its trial ledger, resumed
after the driver is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aquasurf_core.bench.table import Benchmark, make_table
from aquasurf_core.embedding.embeddings import Embedding
from aquasurf_core.features.outputs import output_features
from aquasurf_core.search.benchmark_search import (
    RESULT_COLUMNS,
    SearchProblem,
    TrialLedger,
    problem_from,
    run_experiment,
    run_trial,
)

ROOT = Path(__file__).resolve().parents[2]
UNARY = ["tanh", "sigmoid", "erf", "arctan", "softsign", "elu", "abs", "negative", "sinh",
         "arcsinh", "erfc", "swish", "square", "exp"]


def tiny_problem(n: int = 60, seed: int = 0) -> SearchProblem:
    rng = np.random.default_rng(seed)
    names = ["max(identity(x),zero(x))"] + [
        f"add({UNARY[i % 14]}(x),{UNARY[(i // 14) % 14]}(x))" for i in range(n - 1)]
    val = rng.uniform(0.1, 0.9, n)
    rows = [{"fn_name": f, "equivalent_names": [f], "train_acc": v, "val_acc": v,
             "test_acc": v - 0.01, "train_loss": 1.0, "val_loss": 1.0, "test_loss": 1.0,
             "runtime_s": 1.0} for f, v in zip(names, val, strict=True)]
    valid = rng.random(n) > 0.3
    valid[0] = True
    bench = Benchmark("tiny", make_table(rows), output_features(names), None,
                      np.zeros(n, dtype=bool))
    embedded = np.flatnonzero(valid)
    coords = rng.normal(size=(len(embedded), 2)).astype(np.float32)
    emb = Embedding("tiny", "both", embedded, [names[i] for i in embedded], coords, {}, "k")
    return problem_from(bench, emb)


def test_problem_from_a_benchmark():
    problem = tiny_problem()
    assert problem.first == "max(identity(x),zero(x))"  # relu(x), found by its outputs
    assert np.isnan(problem.coords[~problem.valid]).all()
    assert np.isfinite(problem.coords[problem.valid]).all()


def test_a_trial_reads_the_table_and_tracks_the_best():
    problem = tiny_problem()
    rows = run_trial(problem, "knr", trial=3, budget=20)
    assert list(rows.columns) == list(RESULT_COLUMNS) and len(rows) == 20
    assert rows["function"].iloc[0] == problem.first and rows["step"].tolist() == list(range(1, 21))
    index = {n: i for i, n in enumerate(problem.names)}
    np.testing.assert_allclose(rows["val_acc"],
                               problem.val_acc[[index[f] for f in rows["function"]]])
    np.testing.assert_allclose(rows["best_val_so_far"], np.maximum.accumulate(rows["val_acc"]))
    starts = {m: run_trial(problem, m, trial=3, budget=8)["function"].tolist()
              for m in ("knr", "svr", "random", "random-filter")}
    assert len({tuple(v) for v in starts.values()}) == 1  # common random numbers
    assert problem.valid[[index[f] for f in rows["function"][8:]]].all()


def test_experiment_runs_on_dask_and_skips_finished_trials(tmp_path):
    problems = [tiny_problem(seed=0), tiny_problem(seed=1)]
    problems[1] = SearchProblem("tiny2", *[getattr(problems[1], f) for f in
                                           ("feature", "names", "val_acc", "test_acc",
                                            "coords", "valid", "first")])
    results = run_experiment(problems, ["knr", "random"], range(3), tmp_path, budget=10,
                             workers=1, progress=False, log=lambda *_: None)
    assert len(results) == 2 * 2 * 3 * 10
    again = pd.read_parquet(tmp_path / "results.parquet")
    pd.testing.assert_frame_equal(again, results)
    expected = run_trial(problems[1], "knr", 2, budget=10)
    got = results[(results["benchmark"] == "tiny2") & (results["method"] == "knr")
                  & (results["trial"] == 2)].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    messages = []
    run_experiment(problems, ["knr", "random"], range(3), tmp_path, budget=10, workers=1,
                   progress=False, log=messages.append)
    assert "12 trials, 12 already in" in messages[0]
    # changed data (here one accuracy of tiny2) never reuses its stale trials; tiny's stay
    from dataclasses import replace

    changed_acc = problems[1].val_acc.copy()
    changed_acc[0] += 0.01
    changed = [problems[0], replace(problems[1], val_acc=changed_acc)]
    assert changed[1].fingerprint() != problems[1].fingerprint()
    assert problems[0].fingerprint() == tiny_problem(seed=0).fingerprint()
    messages = []
    run_experiment(changed, ["knr", "random"], range(3), tmp_path, budget=10, workers=1,
                   progress=False, log=messages.append)
    assert "(tiny2, " in messages[0] and "6 stale trials" in messages[0]
    assert "12 trials, 6 already in" in messages[1]


TRIALS = 24  # an RFR trial here takes ~0.15 s: enough that the kill comes before the last
DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from test_benchmark_search import TRIALS, tiny_problem
from aquasurf_core.search.benchmark_search import run_experiment
run_experiment([tiny_problem()], ["rfr"], range(TRIALS), {out!r}, budget=20, workers=1,
               progress=False)
"""


def test_a_driver_killed_with_sigkill_resumes_at_the_trial_level(tmp_path):
    out = tmp_path / "run"
    code = DRIVER.format(tests=str(Path(__file__).parent), out=str(out))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:
        if (out / "trials.sqlite").exists():
            ledger = TrialLedger(out / "trials.sqlite")
            n = len(ledger.done(20, 3))
            ledger.close()
            if n >= 3:
                break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its dask workers
    proc.wait(timeout=60)
    ledger = TrialLedger(out / "trials.sqlite")
    kept = ledger.results(20, 3)
    ledger.close()
    finished = sorted(set(kept["trial"]))
    assert 3 <= len(finished) < TRIALS, finished  # polls are 0.2 s apart
    results = run_experiment([tiny_problem()], ["rfr"], range(TRIALS), out, budget=20,
                             workers=1, progress=False, log=lambda *_: None)
    assert sorted(set(results["trial"])) == list(range(TRIALS))
    for trial in finished[:2]:  # kept rows are those of an uninterrupted trial
        pd.testing.assert_frame_equal(
            results[results["trial"] == trial].reset_index(drop=True),
            run_trial(tiny_problem(), "rfr", trial, budget=20), check_dtype=False)


def test_problem_checks():
    p = tiny_problem()
    with pytest.raises(ValueError, match="first function"):
        SearchProblem("b", "f", p.names, p.val_acc, p.test_acc, p.coords, p.valid, "tanh(x)")
    with pytest.raises(ValueError, match="coords have"):
        SearchProblem("b", "f", p.names, p.val_acc, p.test_acc, p.coords[:3], p.valid, p.first)


def test_back_to_back_experiments_on_one_client_keep_their_scattered_problem(tmp_path):
    # Notebook 04's ablation arms call run_experiment one after another on one client with the
    # same problem. A content-hashed scatter gives both calls the same key, and the first
    # call's release of it could remove the data the second had just scattered ("lost
    # dependencies", 3 of 33 pairs); scattered with hash=False each call has its own key.
    # Worker processes, as in the notebook: with in-process workers the race was rarer
    # (1 call in ~200, against a failure within 12 pairs here before the fix).
    from dask.distributed import Client, LocalCluster

    problem = tiny_problem()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        for rep in range(15):
            for arm in range(2):
                results = run_experiment([problem], ["random"], range(2),
                                         tmp_path / f"{rep}-{arm}", budget=8, client=client,
                                         progress=False, log=lambda *_: None)
                assert len(results) == 2 * 8


def test_trials_cycle_through_the_embedding_realisations():
    from aquasurf_core.search.benchmark_search import parse_method

    base = tiny_problem(seed=3)
    rng = np.random.default_rng(9)
    emb = [Embedding("tiny", "both", np.flatnonzero(base.valid),
                     [base.names[i] for i in np.flatnonzero(base.valid)],
                     rng.normal(size=(int(base.valid.sum()), 2)), {}, f"k{s}") for s in range(2)]
    bench = Benchmark("tiny", make_table([{"fn_name": f, "equivalent_names": [f], "train_acc": v,
                                           "val_acc": v, "test_acc": t, "train_loss": 1.0,
                                           "val_loss": 1.0, "test_loss": 1.0, "runtime_s": 1.0}
                                          for f, v, t in zip(base.names, base.val_acc,
                                                             base.test_acc, strict=True)]),
                      output_features(list(base.names)), None, np.zeros(len(base.names), bool))
    both = problem_from(bench, emb)
    single = [problem_from(bench, e) for e in emb]
    assert both.realisations.shape == (2, len(base.names), 2)
    for trial in range(4):
        np.testing.assert_array_equal(both.coords_for(trial), single[trial % 2].coords)
        got = run_trial(both, "knr", trial, budget=15)
        expected = run_trial(single[trial % 2], "knr", trial, budget=15)
        assert got["function"].tolist() == expected["function"].tolist()
    assert both.fingerprint() != single[0].fingerprint()
    with pytest.raises(ValueError, match="share kind, rows and dimension"):
        problem_from(bench, [emb[0], Embedding("tiny", "fim", emb[0].rows, emb[0].names,
                                               emb[0].coords, {}, "x")])
    # options in the method name reach the surrogate
    assert parse_method("lgp-ucb(kappa=2, length=0.1)") == ("lgp-ucb", {"kappa": 2.0,
                                                                      "length": 0.1})
    assert parse_method("knr") == ("knr", {})
    for bad in ("knr(kappa=1)", "lgp-ucb(kappa=x)", "lgp-ucb(kappa=1", "lgp-ucb(kappa)"):
        with pytest.raises(ValueError, match="malformed|takes no option"):
            parse_method(bad)
    a = run_trial(both, "lgp-ucb(kappa=0)", 1, budget=20)["function"].tolist()
    b = run_trial(both, "lgp-ucb(kappa=5)", 1, budget=20)["function"].tolist()
    assert a[:8] == b[:8] and a != b


def test_a_batched_trial_asks_batches_as_the_searcher_does():
    """``+batch=q``: q functions asked at a time (the believer, or the q best of one fit with
    ``independent``), told together; the start is the sequential trial's."""
    from aquasurf_core.search.benchmark_search import parse_batch
    from aquasurf_core.search.searcher import Searcher

    problem = tiny_problem()
    assert parse_batch("lgp-ucb(kappa=2)+batch=4") == ("lgp-ucb(kappa=2)", 4, "believer")
    assert parse_batch("knr+batch=3,independent") == ("knr", 3, "independent")
    assert parse_batch("knr") == ("knr", 1, "believer")
    for bad in ("knr+batch=0", "knr+batch=x", "knr+batch=2,greedy"):
        with pytest.raises(ValueError, match="malformed batch"):
            parse_batch(bad)
    sequential = run_trial(problem, "lgp-ucb(kappa=2)", trial=2, budget=22)
    for policy in ("believer", "independent"):
        rows = run_trial(problem, f"lgp-ucb(kappa=2)+batch=4,{policy}", trial=2, budget=22)
        assert len(rows) == 22 and rows["function"].is_unique
        assert rows["function"][:8].tolist() == sequential["function"][:8].tolist()
        assert set(rows["method"]) == {f"lgp-ucb(kappa=2)+batch=4,{policy}"}
        searcher = Searcher(problem.names, problem.coords, valid=problem.valid,
                            surrogate="lgp-ucb", first=[problem.first], seed=2,
                            options={"kappa": 2}, batch=policy)
        asked = []
        while len(asked) < 22:
            names = searcher.ask(min(4, 22 - len(asked)))
            for name in names:
                searcher.tell(name, float(problem.val_acc[searcher.index[name]]))
            asked += names
        assert rows["function"].tolist() == asked
