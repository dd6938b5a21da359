"""Training recipes of the MNIST-1D benchmark models: optimiser, schedule, epochs.

Recipes mirror the paper's training table (appendix, Table 4) at MNIST-1D scale:

* ``cnn`` and ``resnet`` (All-CNN-C / ResNet-56 rows): SGD with momentum 0.9, weight decay
  ``1e-4`` (added to the gradient, ``g + wd * theta``, as in ``torch.optim.SGD``), learning
  rate warmed up linearly from 0 to the peak, then decayed linearly to 0; no label smoothing.
* ``vit`` (MobileViTv2 row): AdamW (decoupled decay ``theta <- theta (1 - lr * wd)``), linear
  warm-up from ``initial_lr`` to the peak, then cosine decay to ``final_lr``.

The schedule is evaluated per optimiser step. With ``S`` steps in all and ``W`` warm-up steps
(``W = round(warmup_epochs * steps_per_epoch)``) the rate used for step ``s = 0 .. S-1`` is::

    s < W:   lr0 + (peak - lr0) * (s + 1) / W                                 (warm-up)
    s >= W:  t = (s - W) / max(1, S - W)  in [0, 1)
             linear:  final + (peak - final) * (1 - t)
             cosine:  final + (peak - final) * (1 + cos(pi t)) / 2

The paper's data augmentation (crops, flips, Mixup/CutMix, RandAugment) has no MNIST-1D
counterpart and is not used; dropout is whatever the architecture has (none for the small
models).

``train_split`` applies a recipe's ``train_subset``; ``epoch_order`` is the per-epoch data order
shared by every function trained with one seed; ``make_optimizer`` builds the optimiser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from aquasurf_core.training.data import Split, Splits

__all__ = [
    "RECIPES",
    "Recipe",
    "epoch_order",
    "get_recipe",
    "lr_at",
    "make_optimizer",
    "train_split",
]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("linear", "cosine")


@dataclass(frozen=True)
class Recipe:
    """How to train one network; see the module docstring for the schedule formula.

    ``train_subset`` (None = all) keeps only the first that many training examples, for tests
    and quick checks.
    """

    epochs: int
    batch_size: int
    optimizer: str  # "sgd" | "adamw"
    lr: float  # peak learning rate
    schedule: str  # decay after warm-up: "linear" | "cosine"
    warmup_epochs: float
    initial_lr: float = 0.0  # warm-up start
    final_lr: float = 0.0  # end of decay
    momentum: float = 0.9  # SGD
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW
    eps: float = 1e-8  # AdamW
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    train_subset: int | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Recipe.{name} must be a positive integer, got {value!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Recipe.optimizer must be one of {OPTIMIZERS}, "
                             f"got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Recipe.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("lr", "warmup_epochs", "initial_lr", "final_lr", "weight_decay",
                     "label_smoothing", "eps"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"Recipe.{name} must be a finite number >= 0, got {value!r}")
        if self.lr <= 0:
            raise ValueError(f"Recipe.lr must be > 0, got {self.lr!r}")
        if not 0 <= self.momentum < 1 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError("Recipe.momentum and Recipe.betas must lie in [0, 1)")
        if self.label_smoothing >= 1:
            raise ValueError(f"Recipe.label_smoothing must be < 1, got {self.label_smoothing!r}")
        if self.train_subset is not None and (
            isinstance(self.train_subset, bool) or not isinstance(self.train_subset, int)
            or self.train_subset < 1
        ):
            raise ValueError(f"Recipe.train_subset must be None or a positive integer, "
                             f"got {self.train_subset!r}")

    def steps_per_epoch(self, n_train: int) -> int:
        """Optimiser steps in one epoch over ``n_train`` examples:
        ``ceil(n_train / batch_size)`` (a last, partial batch counts as a step)."""
        return -(-n_train // self.batch_size)


#: Default recipe per architecture, keyed by its name in the architecture registry
#: (:data:`aquasurf_core.models.ARCHITECTURES`, whose docstring says what else an architecture
#: needs): every benchmark architecture and every architecture of a built-in search task needs
#: one (``tests/test_registries.py`` checks). The small ones' are chosen for the time budget
#: of the MNIST-1D benchmark (2,902 functions per architecture on a 2-core CPU): 2-3 epochs, a
#: warm-up of one epoch (the paper warms up for 5 of 25-50 epochs). The models and epochs are
#: small enough that a benchmark builds in well under an hour; the price is accuracy: seed 0,
#: grouped trainer, validation accuracy for relu/swish/elu/tanh was cnn 0.63/0.72/0.66/0.40, resnet
#: 0.71/0.70/0.66/0.53 and vit (3 epochs) 0.80/0.81/0.72/0.58, while a third of the functions stay
#: at chance (0.10) -- a clear spread, which is what the surrogate study needs.
#: The ViT weight decay 0.02 is the paper's "0.02 x current learning rate": AdamW applies
#: ``theta <- theta (1 - lr * wd)``.
RECIPES: dict[str, Recipe] = {
    "cnn": Recipe(epochs=3, batch_size=64, optimizer="sgd", lr=0.05, schedule="linear",
                  warmup_epochs=1.0),
    "resnet": Recipe(epochs=3, batch_size=64, optimizer="sgd", lr=0.1, schedule="linear",
                     warmup_epochs=1.0),
    "vit": Recipe(epochs=2, batch_size=64, optimizer="adamw", lr=4e-3, schedule="cosine",
                  warmup_epochs=1.0, initial_lr=1e-4, final_lr=1e-6, weight_decay=0.02),
    # the paper's Table 4 has no CoAtNet row: the hybrid gets the small vit's AdamW recipe
    "coatnet": Recipe(epochs=2, batch_size=64, optimizer="adamw", lr=4e-3, schedule="cosine",
                      warmup_epochs=1.0, initial_lr=1e-4, final_lr=1e-6, weight_decay=0.02),
    # scikit-learn's digits (1,197 training images): the All-CNN-C row of the paper's table
    "digits-cnn": Recipe(epochs=5, batch_size=64, optimizer="sgd", lr=0.05,
                         schedule="linear", warmup_epochs=1.0),
    # The full-size rows of the paper's Table 4, as published (25 epochs is the search's and
    # Act-Bench's; Table 1's final evaluation trains 50: ``get_recipe(arch, epochs=50)``).
    # Their batch mixing (Mixup/CutMix) is a trainer setting:
    # :class:`aquasurf_core.training.loader_training.Mixing`.
    "all-cnn-c": Recipe(epochs=25, batch_size=128, optimizer="sgd", lr=0.1, schedule="linear",
                        warmup_epochs=5.0),
    "resnet-56": Recipe(epochs=25, batch_size=128, optimizer="sgd", lr=0.1, schedule="linear",
                        warmup_epochs=5.0),
    "mobilevitv2-0.5": Recipe(epochs=105, batch_size=256, optimizer="adamw", lr=4e-3,
                              schedule="cosine", warmup_epochs=5.0, initial_lr=1e-4,
                              final_lr=1e-6, weight_decay=0.02),
    "resnet-50": Recipe(epochs=105, batch_size=256, optimizer="adamw", lr=2e-3,
                        schedule="cosine", warmup_epochs=5.0, initial_lr=1e-4, final_lr=1e-6,
                        weight_decay=0.02),
}


def get_recipe(arch: str, **overrides) -> Recipe:
    """The default :class:`Recipe` of ``arch`` with ``overrides`` applied."""
    if arch not in RECIPES:
        raise ValueError(f"no training recipe for architecture {arch!r}; "
                         f"choose from {sorted(RECIPES)}")
    return replace(RECIPES[arch], **overrides)


def lr_at(recipe: Recipe, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Learning rate of optimiser step ``step`` (0-based) of ``total_steps``."""
    warmup = round(recipe.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return recipe.initial_lr + (recipe.lr - recipe.initial_lr) * (step + 1) / warmup
    t = (step - warmup) / max(1, total_steps - warmup)
    if recipe.schedule == "linear":
        return recipe.final_lr + (recipe.lr - recipe.final_lr) * (1.0 - t)
    return recipe.final_lr + (recipe.lr - recipe.final_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


def epoch_order(seed: int, epochs: int, n: int) -> list[torch.Tensor]:
    """The per-epoch permutations of ``n`` training examples for ``seed``."""
    generator = torch.Generator().manual_seed(int(seed))
    return [torch.randperm(n, generator=generator) for _ in range(epochs)]



def train_split(data: Splits, recipe: Recipe) -> Split:
    """The training examples ``recipe`` uses: all of ``data.train``, or its first
    ``recipe.train_subset``."""
    train = data.train
    if recipe.train_subset is not None:
        if recipe.train_subset > len(train):
            raise ValueError(f"train_subset={recipe.train_subset} exceeds the "
                             f"{len(train)} training examples")
        train = Split(train.x[: recipe.train_subset], train.y[: recipe.train_subset])
    return train



def make_optimizer(params, recipe: Recipe) -> torch.optim.Optimizer:
    """``torch.optim.SGD`` or ``AdamW`` for ``recipe`` (lr is set per step by the caller)."""
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                               weight_decay=recipe.weight_decay, foreach=False)
    return torch.optim.AdamW(params, lr=recipe.lr, betas=recipe.betas, eps=recipe.eps,
                             weight_decay=recipe.weight_decay, foreach=False)
