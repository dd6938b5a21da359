"""The one-at-a-time reference trainer (the slow obvious way; the grouped trainer is checked
against it).

:func:`train_one` trains one network, the slow obvious way (``torch.optim`` and
``LambdaLR``), and is the reference for :mod:`aquasurf_core.training.grouped`:

* Data order: each epoch is a permutation drawn from a ``torch.Generator`` seeded with
  ``seed`` (the same seed as the initialisation), so every function trained with one seed sees
  the same batches -- which is what lets the grouped trainer share batches between copies.
  The last, smaller batch of an epoch is kept.
* Divergence: a run whose training loss becomes non-finite stops at once, before that step's
  update; a run whose final validation or test loss is non-finite counts as diverged too.
  Diverged runs get ``status="diverged"``, accuracies at chance (``1 / classes``) and NaN
  losses: they are recorded, not dropped.
* Reported numbers: ``train_*`` are the mean over the last epoch's batches in training mode
  (as Keras' ``fit`` reports; no extra pass), ``val_*`` / ``test_*`` one pass in eval mode.
* Determinism: with a given seed, thread count and device the result is bit-for-bit
  reproducible on CPU (no randomness other than the seeded generators).
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn
from torch.nn import functional as F

from aquasurf_core.models import build_model
from aquasurf_core.space.names import canonical_name
from aquasurf_core.training.data import Split, Splits
from aquasurf_core.training.recipes import (
    Recipe,
    epoch_order,
    get_recipe,
    lr_at,
    make_optimizer,
    train_split,
)
from aquasurf_core.training.results import RunResult, diverged_result

__all__ = ["EVAL_BATCH", "evaluate_split", "train_model", "train_one"]

#: Rows of evaluation per forward pass (evaluation only; does not change results).
EVAL_BATCH = 1000


@torch.no_grad()
def evaluate_split(model: nn.Module, split: Split) -> tuple[float, float]:
    """``(mean cross-entropy, accuracy)`` of ``model`` in eval mode on ``split``."""
    model.eval()
    device = next(model.parameters()).device
    loss, correct = 0.0, 0
    for start in range(0, len(split), EVAL_BATCH):
        x, y = split.x[start:start + EVAL_BATCH], split.y[start:start + EVAL_BATCH]
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(dim=1) == y).sum().item()
    return loss / len(split), correct / len(split)



def train_one(arch: str, fn_name: str, seed: int, data: Splits,
              recipe: Recipe | None = None, device: str | torch.device = "cpu") -> RunResult:
    """Train ``build_model(arch, fn_name, seed=seed)`` on ``data`` with ``recipe`` (default
    :func:`get_recipe`) on ``device`` (the weights are built on the CPU from the seed, then
    moved; the batches follow them) and evaluate it; see the module docstring for the
    conventions."""
    return train_model(arch, fn_name, seed, data, recipe, device)[1]


def train_model(arch: str, fn_name: str, seed: int, data: Splits,
                recipe: Recipe | None = None,
                device: str | torch.device = "cpu") -> tuple[nn.Module, RunResult]:
    """:func:`train_one`, also returning the network as training left it (for a diverged
    run: as it was when training stopped)."""
    recipe = get_recipe(arch) if recipe is None else recipe
    start = time.perf_counter()
    fn_name = canonical_name(fn_name)
    model = build_model(arch, fn_name, seed=seed).to(device)
    train = train_split(data, recipe)
    steps_per_epoch = recipe.steps_per_epoch(len(train))
    total = steps_per_epoch * recipe.epochs
    optimizer = make_optimizer(model.parameters(), recipe)
    step = 0
    train_loss = train_acc = math.nan
    for epoch, order in enumerate(epoch_order(seed, recipe.epochs, len(train))):
        model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        for begin in range(0, len(train), recipe.batch_size):
            index = order[begin:begin + recipe.batch_size]
            x, y = train.x[index].to(device), train.y[index].to(device)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(recipe, step, total, steps_per_epoch)
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
            if not torch.isfinite(loss):
                return model, diverged_result(arch, fn_name, seed, epoch,
                                              time.perf_counter() - start)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            with torch.no_grad():
                loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
                correct += (logits.argmax(dim=1) == y).sum()
        train_loss = loss_sum.item() / len(train)
        train_acc = correct.item() / len(train)
    val_loss, val_acc = evaluate_split(model, data.validation)
    test_loss, test_acc = evaluate_split(model, data.test)
    runtime = time.perf_counter() - start
    if not (math.isfinite(val_loss) and math.isfinite(test_loss)):
        return model, diverged_result(arch, fn_name, seed, recipe.epochs, runtime)
    return model, RunResult(arch, fn_name, seed, "ok", train_loss, train_acc, val_loss, val_acc,
                            test_loss, test_acc, recipe.epochs, runtime)
