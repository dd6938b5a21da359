"""Finished searches as data: a ledger exported to a checksummed directory that the paper
profile reads instead of searching again (notebook 05).

A shipped search is a directory (written atomically,
:func:`aquasurf_core.storage.atomic_directory`)::

    results.parquet   every training run of the ledger: order, class_id, name, baseline (the
                      baseline's own name, or ""), seed, phase ("search" for the search's runs
                      with its seed, "compare" for the other seeds, "final" for the longer
                      training of the final comparison, from the ledger's ``-final`` twin
                      when there is one, "transfer:<task>" for the discoveries trained on
                      another task, from its ``-transfer-<task>`` twins), val_acc, test_acc,
                      status, seconds, worker, metrics (the rest, JSON)
    manifest.json     format, task, the search's config and task info, the status
                      (:func:`aquasurf_core.search.engine.search_status`), the library versions
                      the runs recorded, the machine, the command that made it, the wall-clock
                      seconds of the search (first session start to its last result), and the
                      size and SHA-256 of results.parquet

:func:`ship_search` writes one from a ledger, :func:`load_search` reads it back and checks it:
a missing directory is ``FileNotFoundError``; a manifest that does not parse, has another
format, or lists a file that is missing, of the wrong size or checksum is
:class:`ShippedSearchError` naming the directory and the problem. Stored data is parsed (JSON,
Parquet), never executed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from aquasurf_core.machine import describe_machine
from aquasurf_core.search.comparisons import final_ledger_path, transfer_ledger_path
from aquasurf_core.search.engine import export_results, search_status, space_store
from aquasurf_core.search.ledger import SearchLedger
from aquasurf_core.space.operators import DEFAULT_OPERATOR_SET
from aquasurf_core.space.schemas import DEFAULT_SPACE
from aquasurf_core.storage import atomic_directory, file_entry, first_file_problem

__all__ = ["SHIPPED_FORMAT", "ShippedSearch", "ShippedSearchError", "load_confirmation",
           "load_search", "ship_search"]

SHIPPED_FORMAT = 1
_FILES = ("results.parquet",)


class ShippedSearchError(ValueError):
    """A shipped search that cannot be read (the message names the directory and problem)."""


@dataclass(frozen=True)
class ShippedSearch:
    """A loaded shipped search: its ``results`` table and ``manifest``."""

    results: object  # pandas.DataFrame
    manifest: dict
    path: Path

    @property
    def task(self) -> str:
        """Name of the task the search ran on (from the manifest)."""
        return self.manifest["task"]

    def search_runs(self):
        """The search's own evaluations (phase "search"), in the order they finished."""
        runs = self.results[self.results["phase"] == "search"]
        return runs.sort_values("order").reset_index(drop=True)


def ship_search(ledger_path: str | os.PathLike, target: str | os.PathLike, *,
                command: str = "") -> Path:
    """Export the search ledger at ``ledger_path`` to the shipped-search directory ``target``
    (replaced atomically; an existing directory that is not a shipped search is refused).
    ``command`` records how the search was run. Returns ``target``."""
    ledger_path, target = Path(ledger_path), Path(target)
    if not ledger_path.is_file():
        raise FileNotFoundError(f"no search ledger at {ledger_path}")
    with SearchLedger(ledger_path) as ledger:
        config = ledger.meta("config") or {}
        if not config:
            raise ShippedSearchError(f"{ledger_path} holds no search (no config recorded)")
        table = export_results(ledger)
        status = search_status(ledger)
        sessions = ledger.meta("sessions", [])
        versions = [json.loads(v) for (v,) in ledger.db.execute(
            "SELECT DISTINCT versions FROM results ORDER BY versions")]
        seed = int(config.get("seed", 0))
        finished = [r["finished_at"] for r in ledger.results(seed)]
    table.insert(5, "phase", ["search" if s == seed else "compare" for s in table["seed"]])
    twins = {"final": final_ledger_path(ledger_path)}
    prefix = transfer_ledger_path(ledger_path, "")
    for path in sorted(ledger_path.parent.glob(f"{prefix.stem}*{ledger_path.suffix}")):
        twins[f"transfer:{path.stem.removeprefix(prefix.stem)}"] = path
    twin_configs: dict[str, dict] = {}
    import pandas as pd

    for phase, path in twins.items():
        if not path.is_file():
            continue
        with SearchLedger(path) as twin:
            twin_configs[phase] = twin.meta("config") or {}
            twin_table = export_results(twin)
        twin_table.insert(5, "phase", phase)
        twin_table["order"] += len(table)
        table = pd.concat([table, twin_table], ignore_index=True)
    final_config = twin_configs.get("final")
    baselines = dict(zip(_baseline_classes(config), config.get("baselines", []), strict=False))
    table.insert(3, "baseline", [baselines.get(int(c), "") for c in table["class_id"]])
    started = min((s["started"] for s in sessions), default=None)
    manifest = {
        "format": SHIPPED_FORMAT, "task": config.get("task"), "config": config,
        "status": {k: v for k, v in status.items() if k != "ledger"},
        "versions": [v for v in versions if v],  # the check run of ReLU records none
        "machine": describe_machine(),
        "command": command, "sessions": len(sessions),
        "seconds": {"search": (round(max(finished) - started, 1)
                               if finished and started is not None else None)},
        "runs": {phase: int((table["phase"] == phase).sum())
                 for phase in ("search", "compare", *twins)},
        "final": None if final_config is None else {"task": final_config.get("task"),
                                                    "task_info": final_config.get("task_info")},
        "transfer": {phase.removeprefix("transfer:"): c.get("task_info")
                     for phase, c in twin_configs.items() if phase.startswith("transfer:")},
    }
    with atomic_directory(target, marker="manifest.json", kind="shipped search") as tmp:
        table.to_parquet(tmp / "results.parquet", index=False)
        manifest["files"] = {name: file_entry(tmp / name) for name in _FILES}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return target


def _baseline_classes(config: dict) -> list[int]:
    store = space_store(config.get("space", DEFAULT_SPACE),
                        config.get("operators", DEFAULT_OPERATOR_SET))
    return [int(c) for c in store.class_of(list(config.get("baselines", [])))]


def load_search(directory: str | os.PathLike, *, verify: bool = True) -> ShippedSearch:
    """Read the shipped search at ``directory`` (module docstring for the checks)."""
    import pandas as pd

    directory = Path(directory)
    if not (directory / "manifest.json").is_file():
        raise FileNotFoundError(f"no shipped search at {directory} (no manifest.json)")
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ShippedSearchError(f"{directory}/manifest.json does not parse: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != SHIPPED_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise ShippedSearchError(f"{directory} is shipped-search format {found!r}; this "
                                 f"version reads format {SHIPPED_FORMAT}")
    for key, kind in (("task", str), ("files", dict)):
        if not isinstance(manifest.get(key), kind):
            raise ShippedSearchError(f"{directory}/manifest.json: {key!r} must be a "
                                     f"{kind.__name__}, got {manifest.get(key)!r:.80}")
    problem = first_file_problem(directory, _FILES, manifest["files"], verify)
    if problem:
        raise ShippedSearchError(f"{directory}/{problem[0]}: {problem[1]}")
    try:
        results = pd.read_parquet(directory / "results.parquet")
    except (OSError, ValueError) as err:
        raise ShippedSearchError(f"{directory}/results.parquet does not read: {err}") from err
    return ShippedSearch(results, manifest, directory)


def load_confirmation(root: str | os.PathLike, *,
                      verify: bool = True) -> dict[tuple[str, str, int], ShippedSearch]:
    """The shipped searches of a repeated-seed comparison: ``root/<surrogate>/<task>-seed<k>/``
    (each a shipped search, :func:`load_search`), keyed ``(surrogate, task, seed)``. Raises
    ``FileNotFoundError`` for a missing ``root``, :class:`ShippedSearchError` for a directory
    that is not named ``<task>-seed<k>``, whose search ran with another seed or task, or that
    does not load."""
    import re

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no shipped searches at {root}")
    found = {}
    for surrogate_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for directory in sorted(p for p in surrogate_dir.iterdir() if p.is_dir()):
            match = re.fullmatch(r"(.+)-seed(\d+)", directory.name)
            if not match:
                raise ShippedSearchError(f"{directory}: expected a directory named "
                                         "<task>-seed<k>")
            search = load_search(directory, verify=verify)
            task, seed = match.group(1), int(match.group(2))
            config = search.manifest.get("config", {})
            if search.task != task or int(config.get("seed", 0)) != seed:
                raise ShippedSearchError(f"{directory} holds the search of task "
                                         f"{search.task!r} with seed {config.get('seed')!r}")
            found[(surrogate_dir.name, task, seed)] = search
    return found
