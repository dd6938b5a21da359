"""Training recipes for the MNIST-1D benchmark models and the one-at-a-time reference trainer.

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

:func:`train_one` trains one network, the slow obvious way (``torch.optim`` and
``LambdaLR``), and is the reference for :mod:`aquasurf_core.grouped_training`:

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
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from aquasurf_core.datasets import MNIST1D, Split
from aquasurf_core.models import build_model
from aquasurf_core.space import canonical_name

__all__ = [
    "RECIPES",
    "Recipe",
    "RunResult",
    "evaluate_split",
    "get_recipe",
    "lr_at",
    "train_one",
]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("linear", "cosine")
#: Rows of evaluation per forward pass (evaluation only; does not change results).
EVAL_BATCH = 1000


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
            raise ValueError(f"Recipe.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
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
        return -(-n_train // self.batch_size)


#: Default recipe per small architecture, chosen for the time budget of the MNIST-1D benchmark
#: (2,902 functions per architecture on a 2-core CPU): 2-3 epochs, a warm-up of one epoch
#: (the paper warms up for 5 of 25-50 epochs). The models and epochs are small enough that a
#: benchmark builds in well under an hour; the price is accuracy: seed 0, grouped trainer,
#: validation accuracy for relu/swish/elu/tanh was cnn 0.63/0.72/0.66/0.40, resnet
#: 0.71/0.70/0.66/0.53 and vit (3 epochs) 0.80/0.81/0.72/0.58, while a third of the functions
#: stay at chance (0.10) -- a clear spread, which is what the surrogate study needs.
#: The ViT weight decay 0.02 is the paper's "0.02 x current learning rate": AdamW applies
#: ``theta <- theta (1 - lr * wd)``.
RECIPES: dict[str, Recipe] = {
    "cnn": Recipe(epochs=3, batch_size=64, optimizer="sgd", lr=0.05, schedule="linear",
                  warmup_epochs=1.0),
    "resnet": Recipe(epochs=3, batch_size=64, optimizer="sgd", lr=0.1, schedule="linear",
                     warmup_epochs=1.0),
    "vit": Recipe(epochs=2, batch_size=64, optimizer="adamw", lr=4e-3, schedule="cosine",
                  warmup_epochs=1.0, initial_lr=1e-4, final_lr=1e-6, weight_decay=0.02),
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
        return asdict(self)


def _train_split(data: MNIST1D, recipe: Recipe) -> Split:
    train = data.train
    if recipe.train_subset is not None:
        if recipe.train_subset > len(train):
            raise ValueError(f"train_subset={recipe.train_subset} exceeds the "
                             f"{len(train)} training examples")
        train = Split(train.x[: recipe.train_subset], train.y[: recipe.train_subset])
    return train


@torch.no_grad()
def evaluate_split(model: nn.Module, split: Split) -> tuple[float, float]:
    """``(mean cross-entropy, accuracy)`` of ``model`` in eval mode on ``split``."""
    model.eval()
    loss, correct = 0.0, 0
    for start in range(0, len(split), EVAL_BATCH):
        x, y = split.x[start:start + EVAL_BATCH], split.y[start:start + EVAL_BATCH]
        logits = model(x)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(dim=1) == y).sum().item()
    return loss / len(split), correct / len(split)


def diverged_result(arch: str, fn_name: str, seed: int, epochs: int, runtime: float,
                    num_classes: int = 10) -> RunResult:
    """A diverged run: chance accuracy, NaN losses."""
    nan, chance = math.nan, 1.0 / num_classes
    return RunResult(arch, fn_name, seed, "diverged", nan, chance, nan, chance, nan, chance,
                     epochs, runtime)


def make_optimizer(params, recipe: Recipe) -> torch.optim.Optimizer:
    """``torch.optim.SGD`` or ``AdamW`` for ``recipe`` (lr is set per step by the caller)."""
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                               weight_decay=recipe.weight_decay, foreach=False)
    return torch.optim.AdamW(params, lr=recipe.lr, betas=recipe.betas, eps=recipe.eps,
                             weight_decay=recipe.weight_decay, foreach=False)


def train_one(arch: str, fn_name: str, seed: int, data: MNIST1D,
              recipe: Recipe | None = None) -> RunResult:
    """Train ``build_model(arch, fn_name, seed=seed)`` on ``data`` with ``recipe`` (default
    :func:`get_recipe`) and evaluate it; see the module docstring for the conventions."""
    recipe = get_recipe(arch) if recipe is None else recipe
    start = time.perf_counter()
    fn_name = canonical_name(fn_name)
    model = build_model(arch, fn_name, seed=seed)
    train = _train_split(data, recipe)
    steps_per_epoch = recipe.steps_per_epoch(len(train))
    total = steps_per_epoch * recipe.epochs
    optimizer = make_optimizer(model.parameters(), recipe)
    step = 0
    train_loss = train_acc = math.nan
    for epoch, order in enumerate(epoch_order(seed, recipe.epochs, len(train))):
        model.train()
        loss_sum = torch.zeros((), dtype=torch.float64)
        correct = torch.zeros((), dtype=torch.int64)
        for begin in range(0, len(train), recipe.batch_size):
            index = order[begin:begin + recipe.batch_size]
            x, y = train.x[index], train.y[index]
            for group in optimizer.param_groups:
                group["lr"] = lr_at(recipe, step, total, steps_per_epoch)
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
            if not torch.isfinite(loss):
                return diverged_result(arch, fn_name, seed, epoch,
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
        return diverged_result(arch, fn_name, seed, recipe.epochs, runtime)
    return RunResult(arch, fn_name, seed, "ok", train_loss, train_acc, val_loss, val_acc,
                     test_loss, test_acc, recipe.epochs, runtime)
