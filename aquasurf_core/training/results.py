"""The record of one training run, as every trainer returns it and the ledgers store it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["RunResult", "diverged_result"]


@dataclass(frozen=True)
class RunResult:
    """One training run. Losses are mean cross-entropy (no label smoothing), accuracies in
    [0, 1]; a diverged run has chance accuracies and NaN losses."""

    arch: str
    fn_name: str
    seed: int
    status: str  # "ok" | "diverged"
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    test_loss: float
    test_accuracy: float
    epochs_completed: int
    runtime_s: float

    def to_dict(self) -> dict:
        """The run as a plain dict of its fields, in declaration order (for JSON or a table)."""
        return asdict(self)



def diverged_result(arch: str, fn_name: str, seed: int, epochs: int, runtime: float,
                    num_classes: int = 10) -> RunResult:
    """A diverged run: chance accuracy, NaN losses."""
    nan, chance = math.nan, 1.0 / num_classes
    return RunResult(arch, fn_name, seed, "diverged", nan, chance, nan, chance, nan, chance,
                     epochs, runtime)
