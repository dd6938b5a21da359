"""The search ledger: statuses, claims, results recorded once, stale claims released, and many
concurrent processes claiming from one ledger without ever getting the same function."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aquasurf_core.features.fim import Invalidity, InvalidKind
from aquasurf_core.search.ledger import SearchLedger

ROOT = Path(__file__).resolve().parents[2]
NAMES = [f"f{i}(x)" for i in range(50)]


def test_claims_follow_the_seeded_order_and_statuses(tmp_path):
    with SearchLedger(tmp_path / "l.sqlite") as ledger:
        ledger.add_functions(NAMES, seed=3)
        ledger.add_functions(NAMES, seed=3)  # idempotent
        assert ledger.count() == 50 and ledger.counts()["new"] == 50
        order = np.argsort(np.random.default_rng(3).permutation(50))
        first = ledger.claim_features(5, "a")
        assert [c for c, _ in first] == order[:5].tolist()
        assert ledger.counts()["featuring"] == 5
        ledger.record_features([(first[0][0], None, np.arange(4), 0.1),
                                (first[1][0], Invalidity(InvalidKind.NONFINITE_LOSS), np.full(4,
                                 np.nan), 0.2)], worker="w1")
        assert ledger.status_of(first[0][0]) == "features"
        ids, valid, cdf = ledger.featured()
        assert sorted(ids.tolist()) == sorted([first[0][0], first[1][0]])
        assert valid[ids.tolist().index(first[0][0])] and cdf.shape == (2, 4)
        # evaluation: only free functions are claimed
        got = ledger.claim_evaluation([first[0][0], first[2][0], 49], "a")
        assert got == [first[0][0], 49]  # first[2] is being featured
        ledger.start(first[0][0], "a")
        assert ledger.status_of(first[0][0]) == "running"
        assert ledger.record_result(first[0][0], 0, {"val_acc": 0.9, "test_acc": 0.8},
                                    seconds=1.0, worker="w1")
        assert not ledger.record_result(first[0][0], 0, {"val_acc": 0.1}, seconds=1.0)
        assert ledger.record_result(49, 0, {"val_acc": math.nan, "status": "failed"}, seconds=1)
        assert ledger.status_of(49) == "failed"
        (done, failed) = ledger.results()
        assert (done["name"], done["val_acc"], done["metrics"]["test_acc"]) == (
            NAMES[first[0][0]], 0.9, 0.8)
        assert math.isnan(failed["val_acc"])
        with pytest.raises(ValueError, match="another space"):
            ledger.add_functions(NAMES[:10], seed=3)


def test_a_new_driver_releases_what_a_dead_one_left_claimed(tmp_path):
    with SearchLedger(tmp_path / "l.sqlite") as ledger:
        ledger.add_functions(NAMES, seed=0)
        featuring = ledger.claim_features(3, "dead")
        ledger.record_features([(featuring[0][0], None, np.zeros(2), 0.1)])
        queued = ledger.claim_evaluation([featuring[0][0], 40], "dead")
        ledger.start(40, "dead")
        mine = ledger.claim_features(2, "alive")
        assert ledger.release(keep_owner="alive") == 0  # their leases are fresh: kept
        assert ledger.release(keep_owner="alive", stale_after=0) == 2 + 2
        assert ledger.status_of(featuring[1][0]) == "new"
        assert ledger.status_of(queued[0]) == "features" and ledger.status_of(40) == "new"
        assert all(ledger.status_of(c) == "featuring" for c, _ in mine)


CLAIMANT = """
import json, os, sys, time
from aquasurf_core.search.ledger import SearchLedger
ledger = SearchLedger(sys.argv[1])
print("ready", flush=True)
while not os.path.exists(sys.argv[3]):
    time.sleep(0.001)
got = []
while True:
    batch = ledger.claim_features(1, sys.argv[2])
    if not batch:
        break
    got += [c for c, _ in batch]
    time.sleep(0.002)  # the work a real claimant does between claims
print(json.dumps(got), flush=True)
"""


@pytest.mark.parametrize("claimants", [2, 8])
def test_concurrent_claimants_never_share_a_function(tmp_path, claimants):
    path = tmp_path / "l.sqlite"
    # Each claimant pauses between claims, as real ones do (they compute features): without
    # it, one process can take every claim while the other sleeps in SQLite's busy-wait
    # back-off (seen once in 4,000 claims with 2 claimants). All start before anyone claims.
    n = 1000
    with SearchLedger(path) as ledger:
        ledger.add_functions([f"g{i}(x)" for i in range(n)], seed=1)
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMANT, str(path), f"p{k}", str(go)],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
             for k in range(claimants)]
    for p in procs:  # all started and connected before anyone claims
        assert p.stdout.readline().strip() == "ready"
    go.touch()
    claimed = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    everything = [c for got in claimed for c in got]
    assert len(everything) == len(set(everything)) == n  # each function exactly once
    assert sum(bool(got) for got in claimed) >= 2  # they really competed


def test_a_damaged_file_is_named(tmp_path):
    path = tmp_path / "l.sqlite"
    path.write_bytes(b"not a database" * 200)
    with pytest.raises(ValueError, match="not a usable search ledger"):
        SearchLedger(path)


def test_leases_a_live_claim_is_never_taken_an_expired_one_is(tmp_path):
    with SearchLedger(tmp_path / "l.sqlite") as ledger:
        ledger.add_functions(NAMES, seed=0)
        live = ledger.claim_features(2, "live")
        dead = ledger.claim_features(2, "dead")
        ledger.db.execute("UPDATE functions SET claimed_at=claimed_at-100 WHERE owner IS NOT NULL")
        assert ledger.heartbeat("live") == 2  # the live driver renews its claims
        assert ledger.release(keep_owner="new", stale_after=30) == 2  # only the dead one's
        assert all(ledger.status_of(c) == "featuring" for c, _ in live)
        assert all(ledger.status_of(c) == "new" for c, _ in dead)
        assert ledger.release_own("live") == 2 and ledger.count("featuring") == 0


def test_the_budget_is_counted_in_the_claim_s_transaction(tmp_path):
    with SearchLedger(tmp_path / "l.sqlite") as ledger:
        ledger.add_functions(NAMES, seed=0)
        assert ledger.claim_evaluation([0, 1], "a", budget=3, exclude=[0, 1]) == [0, 1]
        assert ledger.claim_evaluation([2, 3], "a", budget=3, exclude=[0, 1]) == [2, 3]
        assert ledger.claim_evaluation([4, 5], "b", budget=3, exclude=[0, 1]) == [4]
        assert ledger.claim_evaluation([6], "b", budget=3, exclude=[0, 1]) == []
        assert ledger.spent([0, 1]) == 3


def test_reading_never_writes_and_another_kind_of_database_is_refused(tmp_path):
    import sqlite3

    other = tmp_path / "bench.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE runs (x INTEGER)")
    db.commit()
    db.close()
    before = other.read_bytes()
    for readonly in (True, False):
        with pytest.raises(ValueError, match="not a search ledger"):
            SearchLedger(other, readonly=readonly)
    assert other.read_bytes() == before  # no table added
    with pytest.raises(FileNotFoundError):
        SearchLedger(tmp_path / "none.sqlite", readonly=True)
    assert not (tmp_path / "none.sqlite").exists()
    path = tmp_path / "l.sqlite"
    with SearchLedger(path) as ledger:
        ledger.add_functions(NAMES, seed=0)
    stamp = path.stat().st_mtime_ns, path.read_bytes()
    with SearchLedger(path, readonly=True) as ledger:
        assert ledger.count() == len(NAMES)
        with pytest.raises(Exception, match="readonly"):
            ledger.set_meta("x", 1)
    assert (path.stat().st_mtime_ns, path.read_bytes()) == stamp


def test_a_feature_error_is_recorded_for_its_function_and_never_claimed_again(tmp_path):
    with SearchLedger(tmp_path / "l.sqlite") as ledger:
        ledger.add_functions(NAMES, seed=0)
        (a, _), (b, _), (c, _) = ledger.claim_features(3, "s")
        ledger.record_features([(a, None, np.arange(4), 0.1)], worker="w",
                               errors=[(b, "RuntimeError: CUDA out of memory", 0.5)])
        assert ledger.status_of(b) == "features" and ledger.status_of(c) == "featuring"
        assert ledger.feature_errors() == [{"class_id": b, "name": NAMES[b],
                                            "error": "RuntimeError: CUDA out of memory"}]
        ids, valid, _ = ledger.featured()
        assert ids.tolist() == [a] and valid.tolist() == [True]  # no CDF: not featured
        assert ledger.feature_counts() == (1, 1)
        # an errored function claimed for evaluation (a baseline) and released by a dead
        # driver goes back to "features", not "new": its features are not computed again
        assert ledger.claim_evaluation([b], "dead") == [b]
        assert ledger.release(stale_after=0) == 2  # every claim: b (queued) and c (featuring)
        assert ledger.status_of(b) == "features" and ledger.status_of(c) == "new"
        claimed = {x for x, _ in ledger.claim_features(len(NAMES), "t")}
        assert b not in claimed and a not in claimed and c in claimed


#: The schema of format 1 (before feature_error and proposer), as such ledgers were written.
FORMAT_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE functions (
    class_id INTEGER PRIMARY KEY, name TEXT NOT NULL, rank INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'new', owner TEXT, claimed_at REAL,
    valid INTEGER, invalid TEXT, cdf BLOB, feature_seconds REAL, feature_worker TEXT,
    featured_at REAL);
CREATE TABLE results (
    class_id INTEGER NOT NULL, seed INTEGER NOT NULL, name TEXT NOT NULL, val_acc REAL,
    metrics TEXT NOT NULL, seconds REAL, worker TEXT, versions TEXT, finished_at REAL NOT NULL,
    session TEXT, PRIMARY KEY (class_id, seed));
INSERT INTO meta VALUES ('format', '1');
INSERT INTO functions (class_id, name, rank, status) VALUES (0, 'f0(x)', 0, 'done'),
    (1, 'f1(x)', 1, 'new');
INSERT INTO results VALUES (0, 0, 'f0(x)', 0.75, '{"val_acc": 0.75}', 1.0, 'w', '{}', 5.0, 's');
"""


def test_a_format_1_ledger_is_read_as_is_and_migrated_when_written(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(FORMAT_1)
    db.close()
    before = path.read_bytes()
    with SearchLedger(path, readonly=True) as ledger:  # read as is: the new columns as NULL
        (old,) = ledger.results()
        assert (old["val_acc"], old["proposer"], old["proposer_reason"]) == (0.75, None, None)
        assert ledger.feature_errors() == []
    assert path.read_bytes() == before
    with SearchLedger(path) as ledger:  # written: migrated to format 2, old rows kept
        assert ledger.meta("format") == 2
        (old,) = ledger.results()
        assert old["val_acc"] == 0.75 and old["proposer"] is None and old["finished_at"] == 5.0
        assert ledger.record_result(1, 0, {"val_acc": 0.5}, seconds=1.0, proposer="random",
                                    proposer_reason="why")
        assert [(r["proposer"], r["proposer_reason"]) for r in ledger.results()] == [
            (None, None), ("random", "why")]
    with SearchLedger(path) as ledger:  # opened again: nothing to migrate
        assert ledger.meta("format") == 2 and len(ledger.results()) == 2
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value='3' WHERE key='format'")
    db.commit()
    db.close()
    with pytest.raises(ValueError, match="found format 3, expected formats 1 to 2"):
        SearchLedger(path)
