"""How a trained network uses a discovered activation function (paper Section 7, Figure 9).

:func:`activation_usage` builds a task's network with the function, records the inputs of
every activation site on the task's Fisher batch at initialisation (training-mode batch
statistics, as the first step sees them), trains it with the task's ``fit`` and records them
again (eval mode, as the trained network is used):
:func:`aquasurf_core.training.activation_inputs.activation_inputs`. :func:`usage_table`
summarises them per site and over all sites: quantiles, and the share of inputs where the
function is flat (:func:`~aquasurf_core.training.activation_inputs.flat_share`), i.e. how much
the network uses its saturation regimes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from aquasurf_core.search.tasks import Task, TaskError, get_task
from aquasurf_core.training.activation_inputs import FLAT_SLOPE, activation_inputs, flat_share

__all__ = ["ActivationUsage", "activation_usage", "usage_table"]

#: The quantiles :func:`usage_table` reports.
QUANTILES = (0.01, 0.5, 0.99)


@dataclass
class ActivationUsage:
    """The inputs of every activation site, at initialisation and after training."""

    task: str
    fn_name: str
    seed: int
    init: dict[str, np.ndarray]
    trained: dict[str, np.ndarray]
    metrics: dict

    def pooled(self, stage: str) -> np.ndarray:
        """Every site's inputs at ``stage`` ("init" or "trained"), concatenated."""
        if stage not in ("init", "trained"):
            raise ValueError(f"stage must be 'init' or 'trained', got {stage!r}")
        return np.concatenate(list(getattr(self, stage).values()))


def activation_usage(task: str | Task, fn_name: str, seed: int = 0) -> ActivationUsage:
    """Train ``task``'s network with ``fn_name`` (seed ``seed``) and record its activation
    inputs before and after (module docstring). Raises
    :class:`~aquasurf_core.search.tasks.TaskError` for a task without ``fit``."""
    task = get_task(task)
    if task.fit is None:
        raise TaskError(f"task {task.name!r} has no fit(fn_name, seed) returning the trained "
                        "network; give the Task one (arch_task does)")
    x, _ = task.fisher_batch(seed)
    init = activation_inputs(task.build(fn_name, seed), x, train_mode=True)
    model, metrics = task.fit(fn_name, seed)
    trained = activation_inputs(model, x)
    return ActivationUsage(task.name, fn_name, seed, init, trained, metrics)


def usage_table(usage: ActivationUsage, slope: float = FLAT_SLOPE) -> pd.DataFrame:
    """One row per site and one for all sites ("all"): the number of inputs, their
    :data:`QUANTILES` and the share where the function is flat (``|f'| < slope``), at
    initialisation and after training."""
    rows = []
    sites = [*usage.init, "all"]
    for site in sites:
        row = {"site": site}
        for stage in ("init", "trained"):
            values = usage.pooled(stage) if site == "all" else getattr(usage, stage)[site]
            finite = values[np.isfinite(values)]
            row[f"{stage} inputs"] = len(values)
            for q, v in zip(QUANTILES, np.quantile(finite, QUANTILES) if len(finite)
                            else [np.nan] * len(QUANTILES), strict=True):
                row[f"{stage} q{round(q * 100):02d}"] = float(v)
            row[f"{stage} flat share"] = flat_share(usage.fn_name, values, slope)
        rows.append(row)
    return pd.DataFrame(rows)
