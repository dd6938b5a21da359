"""Training on datasets read from disk (CIFAR, image folders) with DataLoaders, on CPU or GPU:
the trainer of the full-size tasks (paper appendix Table 4).

:func:`train_with_loaders` follows the conventions of the reference trainer
(:mod:`aquasurf_core.training.reference`) so that its records mean the same thing:

* the learning rate is set per optimiser step by :func:`aquasurf_core.training.recipes.lr_at`
  (warm-up, then linear or cosine decay); SGD or AdamW from the recipe;
* a run whose training loss becomes non-finite stops before that step's update, and a run
  whose final validation or test loss is non-finite counts as diverged: ``status="diverged"``,
  accuracies at chance (``1 / num_classes``), NaN losses;
* ``train_*`` are means over the last epoch's batches in training mode (against the mixed
  targets' argmax when batches are mixed), ``val_*`` / ``test_*`` one pass in eval mode.

Batch mixing (:class:`Mixing`): with both alphas set, each batch is mixed by Mixup
(``lambda ~ Beta(a, a)``, images and one-hot targets blended) or CutMix (a box of relative area
``1 - lambda`` pasted from the shuffled batch, targets weighted by area), chosen with
probability 1/2 -- torchvision's ``transforms.v2.MixUp`` / ``CutMix``; the loss is the
cross-entropy against the soft targets.

Determinism: the data order comes from a ``torch.Generator`` seeded with ``seed``; random
transforms and mixing draw from torch's global generator, which is seeded with ``seed`` inside
``torch.random.fork_rng`` (the caller's state is restored), and DataLoader workers derive
their seeds from the seeded generator. For a given seed, device, worker count and library
versions a CPU run is reproducible.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from aquasurf_core.training.recipes import Recipe, lr_at, make_optimizer
from aquasurf_core.training.results import RunResult, diverged_result

__all__ = ["Mixing", "evaluate_loader", "train_with_loaders"]


@dataclass(frozen=True)
class Mixing:
    """Batch mixing of the ImageNet recipes (Table 4: Mixup alpha 0.1, CutMix alpha 1.0);
    0 turns a method off."""

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0

    def __post_init__(self) -> None:
        for name in ("mixup_alpha", "cutmix_alpha"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"Mixing.{name} must be a finite number >= 0, got {value!r}")

    def transform(self, num_classes: int):
        """A torchvision batch transform ``(images, labels) -> (images, soft targets)``, or
        None when both alphas are 0."""
        from torchvision.transforms import v2

        methods = []
        if self.mixup_alpha > 0:
            methods.append(v2.MixUp(alpha=self.mixup_alpha, num_classes=num_classes))
        if self.cutmix_alpha > 0:
            methods.append(v2.CutMix(alpha=self.cutmix_alpha, num_classes=num_classes))
        if not methods:
            return None
        return methods[0] if len(methods) == 1 else v2.RandomChoice(methods)


@torch.no_grad()
def evaluate_loader(model: nn.Module, loader: DataLoader,
                    device: torch.device | str = "cpu") -> tuple[float, float]:
    """``(mean cross-entropy, accuracy)`` of ``model`` in eval mode over ``loader``."""
    model.eval()
    loss, correct, n = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = model(x)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(dim=1) == y).sum().item()
        n += len(y)
    if n == 0:
        raise ValueError("cannot evaluate on an empty split")
    return loss / n, correct / n


def train_with_loaders(model: nn.Module, train: Dataset, validation: Dataset, test: Dataset,
                       recipe: Recipe, *, seed: int, num_classes: int,
                       device: torch.device | str = "cpu", mixing: Mixing = Mixing(),
                       num_workers: int = 0, arch: str = "", fn_name: str = "") -> RunResult:
    """Train ``model`` on ``train`` with ``recipe`` and evaluate it on ``validation`` and
    ``test`` (module docstring). A dataset with ``set_epoch`` (CIFAR's deterministic
    augmentation) is told each epoch. ``arch`` and ``fn_name`` label the record.

    Raises ``ValueError`` for an empty split or a recipe's ``train_subset`` (not supported
    here: subset the dataset instead)."""
    if recipe.train_subset is not None:
        raise ValueError("train_with_loaders does not apply Recipe.train_subset; pass a "
                         "torch.utils.data.Subset of the training set instead")
    if len(train) == 0:
        raise ValueError("the training split is empty")
    start = time.perf_counter()
    device = torch.device(device)
    model = model.to(device)
    generator = torch.Generator().manual_seed(int(seed))
    pin = device.type == "cuda"

    def loader(data: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(data, batch_size=recipe.batch_size, shuffle=shuffle,
                          generator=generator if shuffle else None, num_workers=num_workers,
                          pin_memory=pin)

    train_loader = loader(train, True)
    mix = mixing.transform(num_classes)
    steps_per_epoch = len(train_loader)
    total = steps_per_epoch * recipe.epochs
    optimizer = make_optimizer(model.parameters(), recipe)
    step = 0
    train_loss = train_acc = math.nan
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        for epoch in range(recipe.epochs):
            if hasattr(train, "set_epoch"):
                train.set_epoch(epoch)
            model.train()
            loss_sum, correct, seen = 0.0, 0, 0
            for x, y in train_loader:
                targets = y
                if mix is not None:
                    x, targets = mix(x, y)
                x, targets = x.to(device, non_blocking=True), targets.to(device,
                                                                         non_blocking=True)
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(recipe, step, total, steps_per_epoch)
                logits = model(x)
                loss = F.cross_entropy(logits, targets, label_smoothing=recipe.label_smoothing)
                if not torch.isfinite(loss):
                    return diverged_result(arch, fn_name, seed, epoch,
                                           time.perf_counter() - start, num_classes)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                with torch.no_grad():
                    hard = targets if targets.dim() == 1 else targets.argmax(dim=1)
                    loss_sum += F.cross_entropy(logits, targets, reduction="sum").item()
                    correct += (logits.argmax(dim=1) == hard).sum().item()
                    seen += len(hard)
            train_loss, train_acc = loss_sum / seen, correct / seen
        # inside fork_rng: iterating a DataLoader draws a base seed from the global generator
        val_loss, val_acc = evaluate_loader(model, loader(validation, False), device)
        test_loss, test_acc = evaluate_loader(model, loader(test, False), device)
    runtime = time.perf_counter() - start
    if not (math.isfinite(val_loss) and math.isfinite(test_loss)):
        return diverged_result(arch, fn_name, seed, recipe.epochs, runtime, num_classes)
    return RunResult(arch, fn_name, seed, "ok", train_loss, train_acc, val_loss, val_acc,
                     test_loss, test_acc, recipe.epochs, runtime)
