"""After a search: its discoveries against the baselines (paper Section 6, Tables 1-2).

The search itself is :mod:`aquasurf_core.search.engine`; what follows it reads the search's
ledger and trains what is missing, on dask, with the engine's worker job:

* :func:`compare_with_baselines` -- the ``top`` discovered functions (highest validation
  accuracy of the search's seed) and the baselines, each trained with every seed asked for, one
  row per function with the median validation and test accuracy over the seeds
  (:func:`choose_for_comparison` picks them, :func:`median_over_seeds` makes the rows, also
  from a shipped search's table);
* trained longer (Table 1, ``final_task``) or on another task (Table 2, ``transfer_task``),
  the runs go to their own ledgers beside the search's, :func:`final_ledger_path` and
  :func:`transfer_ledger_path`, so that the search's results and these never mix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aquasurf_core.search.cluster import dask_client
from aquasurf_core.search.engine import (
    SearchConfig,
    baseline_classes,
    check_count,
    check_workers,
    evaluate_job,
    export_results,
    space_names,
    task_for_workers,
)
from aquasurf_core.search.ledger import SearchLedger
from aquasurf_core.search.tasks import Task, get_task
from aquasurf_core.space.operators import DEFAULT_OPERATOR_SET
from aquasurf_core.space.schemas import DEFAULT_SPACE

__all__ = ["choose_for_comparison", "compare_with_baselines", "final_ledger_path",
           "median_over_seeds", "transfer_ledger_path"]


def final_ledger_path(ledger_path: str | Path) -> Path:
    """Where the final evaluations of a search's discoveries go (Table 1): beside the search's
    ledger, ``<stem>-final.sqlite``."""
    ledger_path = Path(ledger_path)
    return ledger_path.with_name(f"{ledger_path.stem}-final{ledger_path.suffix}")


def transfer_ledger_path(ledger_path: str | Path, task: str) -> Path:
    """Where a search's discoveries trained on another ``task`` go (Table 2): beside the
    search's ledger, ``<stem>-transfer-<task>.sqlite``."""
    from aquasurf_core.paths import check_path_name

    ledger_path = Path(ledger_path)
    if task:  # "" gives the common prefix of every transfer ledger
        check_path_name(task)
    return ledger_path.with_name(f"{ledger_path.stem}-transfer-{task}{ledger_path.suffix}")


def compare_with_baselines(task: str | Task, ledger_path: str | Path, *, top: int = 1,
                           seeds: Sequence[int] = (0, 1, 2), workers: int = 2,
                           scheduler_address: str | None = None, client=None,
                           final_task: str | Task | None = None,
                           transfer_task: str | Task | None = None):
    """The ``top`` discovered functions (highest validation accuracy among the searched,
    non-baseline ones, with the search's seed) against the baselines, each trained with every
    seed of ``seeds`` (missing runs are evaluated now, on dask, and recorded): one row per
    function with the median validation and test accuracy over the seeds and the per-seed
    test accuracies, best median test accuracy first.

    With ``final_task`` (the paper's Table 1: the same network trained longer, e.g. the
    built-in ``<task>-final``), the chosen functions are trained with that task instead and
    recorded in their own ledger, :func:`final_ledger_path`, so that the search's results and
    the final ones never mix. With ``transfer_task`` (Table 2: another task), likewise, in
    :func:`transfer_ledger_path`. Raises ``ValueError`` when both are given."""
    if final_task is not None and transfer_task is not None:
        raise ValueError("give final_task or transfer_task, not both")
    check_count("top", top, 1)
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers >= 0, got {seeds!r}")
    for seed in seeds:
        check_count("seeds", seed, 0)
    check_workers(workers, scheduler_address, client)
    search_task = get_task(task).name
    other = final_task if final_task is not None else transfer_task
    task_obj = get_task(other if other is not None else task)
    task_ref = task_for_workers(task_obj)
    with SearchLedger(ledger_path, readonly=True) as ledger:
        config = ledger.meta("config") or {}
        if config.get("task") != search_task:
            raise ValueError(f"{ledger.path} holds a search of task {config.get('task')!r}, "
                             f"not {search_task!r}; compare it with --task "
                             f"{config.get('task')} or name the ledger of {search_task}")
        names, store = space_names(config.get("space", DEFAULT_SPACE),
                                   config.get("operators", DEFAULT_OPERATOR_SET))
        baseline_names = list(config.get("baselines", SearchConfig().baselines))
        baselines = dict(zip(baseline_classes(store, baseline_names), baseline_names, strict=True))
        chosen = choose_for_comparison(export_results(ledger), baselines, top,
                                       seed=int(config.get("seed", 0)))
    if other is None:
        target_path, session = Path(ledger_path), "compare"
    elif final_task is not None:
        target_path, session = final_ledger_path(ledger_path), "final"
    else:
        target_path, session = transfer_ledger_path(ledger_path, task_obj.name), "transfer"
    target = SearchLedger(target_path)
    try:
        stored = target.meta("config")
        if other is not None and stored is not None and stored.get("task") != task_obj.name:
            raise ValueError(f"{target.path} holds runs of task {stored.get('task')!r}, not "
                             f"{task_obj.name!r}")
        if other is not None:
            target.add_functions(names, int(config.get("seed", 0)))
            target.set_meta("config", {**config, "task": task_obj.name,
                                       "task_info": task_obj.info,
                                       f"{session}_of": config.get("task")})
        have = {(r["class_id"], r["seed"]) for r in target.results(None)}
        missing = [(c, s) for c, _, _ in chosen for s in seeds if (c, s) not in have]
        if missing:
            with dask_client(client, scheduler_address, workers) as running:
                futures = [running.submit(evaluate_job, task_ref, c, target.name_of(c), s,
                                          pure=False) for c, s in missing]
                for result in running.gather(futures):
                    target.record_result(result["class_id"], result["seed"], result["metrics"],
                                         seconds=result["seconds"],
                                         worker=str(result["worker"]),
                                         versions=result["versions"], session=session)
        table = export_results(target)
    finally:
        target.close()
    return median_over_seeds(table, chosen, seeds)


def choose_for_comparison(table, baselines: dict[int, str], top: int, *,
                          seed: int = 0) -> list[tuple[int, str, str]]:
    """``(class_id, name, kind)`` of the baselines (``{class_id: name}``, kind "baseline") and
    the ``top`` searched functions with the highest validation accuracy of the search's
    ``seed`` (kind "discovered", finite accuracies only) in a results ``table``."""
    first = table[table["seed"] == seed]
    searched = first[~first["class_id"].isin(list(baselines)) & np.isfinite(first["val_acc"])]
    searched = searched.sort_values("val_acc", ascending=False, kind="stable").head(top)
    return [(c, n, "baseline") for c, n in baselines.items()] + \
        [(int(c), str(n), "discovered") for c, n in zip(searched["class_id"], searched["name"],
                                                          strict=True)]


def median_over_seeds(table, chosen: Sequence[tuple[int, str, str]], seeds: Sequence[int]):
    """One row per chosen ``(class_id, name, kind)``: the median validation and test accuracy
    over ``seeds``, the smallest and largest test accuracy, and the per-seed test accuracies, from a
    results ``table`` (columns class_id, seed, val_acc, test_acc: :func:`export_results` or a
    shipped search), best median test accuracy first. Raises ``KeyError`` naming a missing
    (function, seed) run."""
    import pandas as pd

    runs = {(int(c), int(s)): (v, t) for c, s, v, t in zip(
        table["class_id"], table["seed"], table["val_acc"], table["test_acc"], strict=True)}
    rows = []
    for class_id, name, kind in chosen:
        missing = [s for s in seeds if (class_id, s) not in runs]
        if missing:
            raise KeyError(f"{name} (class {class_id}) has no run with seed(s) {missing}")
        vals = [runs[class_id, s][0] for s in seeds]
        tests = [runs[class_id, s][1] for s in seeds]
        rows.append({"function": name, "kind": kind, "class_id": class_id,
                     "median val acc": float(np.median(vals)),
                     "median test acc": float(np.median(tests)),
                     "min test acc": float(np.min(tests)), "max test acc": float(np.max(tests)),
                     "test acc per seed": " ".join(f"{t:.3f}" for t in tests)})
    return pd.DataFrame(rows).sort_values("median test acc", ascending=False,
                                          kind="stable").reset_index(drop=True)
