"""Shipped searches: a ledger exported to a checksummed directory and read back; damage is
named, and nothing already shipped is lost by a refused write."""

from __future__ import annotations

import json

import pytest

from aquasurf_core.paths import shipped_data_dir
from aquasurf_core.search.engine import SearchConfig, space_store
from aquasurf_core.search.ledger import SearchLedger
from aquasurf_core.search.shipped import ShippedSearchError, load_search, ship_search


@pytest.fixture(scope="module")
def ledger_path(tmp_path_factory):
    """A finished-looking 3-node search: the eight baselines and three searched functions at
    seed 0, two of them again at seed 1 (a comparison)."""
    store = space_store("3-node")
    names = [str(n) for n in store.unique["representative"]]
    config = SearchConfig(space="3-node", evaluations=3, features=40)
    baselines = [int(c) for c in store.class_of(list(config.baselines))]
    path = tmp_path_factory.mktemp("ledger") / "l.sqlite"
    with SearchLedger(path) as ledger:
        ledger.add_functions(names, 0, first=baselines)
        ledger.set_meta("config", {**config.to_dict(), "task": "toy", "task_info": {},
                                   "functions": len(names)})
        ledger.set_meta("sessions", [{"session": "s", "started": 0.0, "host": "h"}])
        searched = [c for c in range(len(names)) if c not in baselines][:3]
        for i, c in enumerate(baselines + searched):
            ledger.record_result(c, 0, {"val_acc": 0.1 + 0.05 * i, "test_acc": 0.5},
                                 seconds=1.0, worker="0", versions={"torch": "x"})
        for c in (baselines[0], searched[-1]):
            ledger.record_result(c, 1, {"val_acc": 0.3, "test_acc": 0.4}, seconds=1.0)
    return path


def test_round_trip_keeps_every_run_with_its_baseline_name_and_phase(ledger_path, tmp_path):
    target = ship_search(ledger_path, tmp_path / "toy", command="aquasurf search run ...")
    shipped = load_search(target)
    table = shipped.results
    with SearchLedger(ledger_path) as ledger:
        runs = ledger.results(None)
    assert len(table) == len(runs) == 13
    assert (table["phase"] == "search").sum() == 11 and (table["phase"] == "compare").sum() == 2
    baselines = table[table["baseline"] != ""]
    assert sorted(set(baselines["baseline"])) == sorted(SearchConfig().baselines)
    assert shipped.search_runs()["val_acc"].tolist() == pytest.approx(
        [0.1 + 0.05 * i for i in range(11)])
    m = shipped.manifest
    assert m["task"] == shipped.task == "toy" and m["command"] == "aquasurf search run ..."
    assert m["runs"] == {"search": 11, "compare": 2, "final": 0} and m["final"] is None
    assert m["transfer"] == {}
    assert m["status"]["evaluated"] == 11
    assert {"torch": "x"} in m["versions"] and m["machine"]["cpus"] >= 1
    # shipping again replaces the directory atomically
    ship_search(ledger_path, target, command="again")
    assert load_search(target).manifest["command"] == "again"


def test_final_runs_come_from_the_ledgers_final_twin(ledger_path, tmp_path):
    import shutil

    from aquasurf_core.search.comparisons import final_ledger_path, transfer_ledger_path

    search = tmp_path / "s.sqlite"
    shutil.copy(ledger_path, search)
    with SearchLedger(search) as ledger:
        names = [ledger.name_of(c) for c in range(ledger.count())]
        chosen = [r["class_id"] for r in ledger.results(0)][:2]
    with SearchLedger(final_ledger_path(search)) as final:
        final.add_functions(names, 0)
        final.set_meta("config", {"task": "toy-final", "task_info": {"recipe": {"epochs": 2}}})
        for c in chosen:  # the same (function, seed) as a search run: kept apart by phase
            final.record_result(c, 0, {"val_acc": 0.9, "test_acc": 0.8}, seconds=2.0)
    with SearchLedger(transfer_ledger_path(search, "toy-other")) as moved:
        moved.add_functions(names, 0)
        moved.set_meta("config", {"task": "toy-other", "task_info": {"data": "other"}})
        moved.record_result(chosen[0], 1, {"val_acc": 0.5, "test_acc": 0.4}, seconds=1.0)
    shipped = load_search(ship_search(search, tmp_path / "toy"))
    moved_rows = shipped.results[shipped.results["phase"] == "transfer:toy-other"]
    assert moved_rows["class_id"].tolist() == [chosen[0]] and moved_rows["seed"].tolist() == [1]
    assert shipped.manifest["transfer"] == {"toy-other": {"data": "other"}}
    assert shipped.manifest["runs"]["transfer:toy-other"] == 1
    final_rows = shipped.results[shipped.results["phase"] == "final"]
    assert sorted(final_rows["class_id"]) == sorted(chosen)
    assert (final_rows["test_acc"] == 0.8).all() and final_rows["baseline"].tolist()[0] != ""
    assert shipped.manifest["runs"]["final"] == 2
    assert shipped.manifest["final"]["task"] == "toy-final"
    assert len(shipped.search_runs()) == 11  # the search itself is unchanged


def test_damage_is_named(ledger_path, tmp_path):
    target = ship_search(ledger_path, tmp_path / "toy")
    data = bytearray((target / "results.parquet").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (target / "results.parquet").write_bytes(bytes(data))
    with pytest.raises(ShippedSearchError, match="results.parquet: corrupt \\(checksum"):
        load_search(target)
    (target / "results.parquet").write_bytes(bytes(data[:100]))
    with pytest.raises(ShippedSearchError, match="results.parquet: corrupt \\(size 100"):
        load_search(target)
    manifest = json.loads((target / "manifest.json").read_text())
    (target / "manifest.json").write_text(json.dumps({**manifest, "format": 99}))
    with pytest.raises(ShippedSearchError, match="format 99"):
        load_search(target)
    (target / "manifest.json").write_text("{not json")
    with pytest.raises(ShippedSearchError, match="manifest.json does not parse"):
        load_search(target)
    with pytest.raises(FileNotFoundError, match="no shipped search"):
        load_search(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no search ledger"):
        ship_search(tmp_path / "none.sqlite", tmp_path / "x")
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not a shipped search"):
        ship_search(ledger_path, precious)
    assert (precious / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize("directory", sorted(p.name for p in shipped_data_dir("searches").iterdir()
                                              if p.is_dir()))
def test_every_shipped_search_is_whole(directory):
    """What the paper profile of notebook 05 reads: every shipped search passes its checksums,
    belongs to the task it is named after, and holds a finished search: every baseline and the
    configured evaluations beyond them at the search's seed, each function once."""
    shipped = load_search(shipped_data_dir("searches", directory))
    config = shipped.manifest["config"]
    assert shipped.manifest["task"] == config["task"] == directory
    runs = shipped.results[(shipped.results["phase"] == "search")
                           & (shipped.results["seed"] == config["seed"])]
    assert runs["class_id"].is_unique
    assert set(runs.loc[runs["baseline"] != "", "baseline"]) == set(config["baselines"])
    assert (runs["baseline"] == "").sum() == config["evaluations"]
    assert runs["val_acc"].between(0, 1).all()


def test_a_confirmation_directory_names_task_and_seed(tmp_path):
    import shutil

    from aquasurf_core.paths import shipped_data_dir
    from aquasurf_core.search.shipped import load_confirmation

    source = shipped_data_dir("confirmation", "lgp-ucb", "mnist1d-hard-vit-seed1")
    shutil.copytree(source, tmp_path / "lgp-ucb" / "mnist1d-hard-vit-seed1")
    found = load_confirmation(tmp_path)
    assert list(found) == [("lgp-ucb", "mnist1d-hard-vit", 1)]
    shutil.copytree(source, tmp_path / "lgp-ucb" / "mnist1d-hard-vit-seed2")  # seed 1 inside
    with pytest.raises(ShippedSearchError, match="with seed 1"):
        load_confirmation(tmp_path)
    shutil.rmtree(tmp_path / "lgp-ucb" / "mnist1d-hard-vit-seed2")
    (tmp_path / "lgp-ucb" / "stray").mkdir()
    with pytest.raises(ShippedSearchError, match="<task>-seed<k>"):
        load_confirmation(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_confirmation(tmp_path / "none")
