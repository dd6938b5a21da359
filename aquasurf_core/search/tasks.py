"""Search tasks: what the search needs to know about *your* problem.

A :class:`Task` is three functions and a name:

* ``build(fn_name, seed) -> nn.Module``: the network with the activation function ``fn_name``
  at its activation sites -- each an :class:`aquasurf_core.space.ActivationFunction` (the
  search reads the Fisher spectrum of this network at initialisation);
* ``train(fn_name, seed) -> dict``: train that network with ``seed`` and return its metrics;
  ``val_acc`` (validation accuracy in [0, 1], the search's objective) is required, ``test_acc``
  and anything else JSON-able are recorded too; a run that failed returns
  ``{"val_acc": chance, "status": "failed"}`` or ``"diverged"``, not an exception;
* ``fisher_batch(seed) -> (inputs, targets)``: the batch the Fisher features are computed on;

and, optionally, ``fit(fn_name, seed) -> (nn.Module, dict)``: ``train`` that also returns the
trained network, for studying how it uses its activation function (Figure 9,
:mod:`aquasurf_core.search.usage`). :func:`arch_task` provides it.

Tasks are registered by name (:func:`register_task`: a factory, called once per process) or
passed directly; on dask the task travels to the workers by name (registered tasks, rebuilt in
each worker from the registry) or pickled with cloudpickle (unregistered ones: keep the data
inside the functions, loaded lazily, rather than in the closure).

:func:`check_task` finds what would break a search before any work starts: a model without an
activation site, a layer K-FAC cannot handle (named), a ``train`` that returns no validation
accuracy. Its training run is ReLU with seed 0, returned so that the search can keep it as
ReLU's baseline result.

Built-in tasks are registered the same way (:func:`builtin_tasks`): ``digits-cnn``
(scikit-learn's 8x8 digits, :mod:`aquasurf_core.training.digits`, with the 2-D
All-CNN-C-style ``digits-cnn`` network), the MNIST-1D benchmark tasks ``mnist1d-cnn``,
``mnist1d-resnet``, ``mnist1d-vit``, and the harder MNIST-1D of the Section 6 experiments
(:data:`aquasurf_core.training.data.HARD_MNIST1D`: 10,000 samples, stronger noise and shear;
1,000 validation examples) with the ResNet- and ViT-style networks, ``mnist1d-hard-resnet`` and
``mnist1d-hard-vit``, and with the CoAtNet-style hybrid of Table 3, ``mnist1d-hard-coatnet``. The full-size tasks of the paper are registered the same way and read
their data from disk when first trained (:func:`loader_task`): ``cifar100-all-cnn-c``,
``cifar100-resnet-56`` (CIFAR-100 under ``$AQUASURF_DATA/cifar-100-python``), ``imagenet-mobilevitv2-0.5``
and ``imagenet-resnet-50`` (an ImageNet-style folder under ``$AQUASURF_DATA/imagenet``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache

__all__ = ["Task", "TaskError", "arch_task", "check_task", "get_task", "loader_task",
           "register_task", "registered_tasks"]


class TaskError(ValueError):
    """A task that cannot be searched (the message says what is wrong and how to fix it)."""


@dataclass(frozen=True)
class Task:
    """A search task (module docstring)."""

    name: str
    build: Callable
    train: Callable
    fisher_batch: Callable
    description: str = ""
    info: dict = field(default_factory=dict)  # recorded in the ledger (recipe, data...)
    fit: Callable | None = None  # (fn_name, seed) -> (trained network, metrics)


_REGISTRY: dict[str, Callable[[], Task]] = {}


def register_task(name: str, factory: Callable[[], Task], *, replace: bool = False) -> None:
    """Register ``factory`` (no arguments, returns a :class:`Task`) under ``name``."""
    if not name or not isinstance(name, str):
        raise TaskError(f"a task name must be a non-empty string, got {name!r}")
    if name in _REGISTRY and not replace:
        raise TaskError(f"a task named {name!r} is already registered (replace=True "
                        "overrides it)")
    _REGISTRY[name] = factory
    _instance.cache_clear()


def registered_tasks() -> list[str]:
    builtin_tasks()
    return sorted(_REGISTRY)


@cache
def _instance(name: str) -> Task:
    task = _REGISTRY[name]()
    if not isinstance(task, Task):
        raise TaskError(f"the factory of task {name!r} returned a {type(task).__name__}, not a "
                        "Task")
    return task


def get_task(task: str | Task) -> Task:
    """The :class:`Task` itself, or the registered one named ``task`` (built once per
    process). Raises :class:`TaskError` naming the registered tasks for an unknown name."""
    if isinstance(task, Task):
        return task
    builtin_tasks()
    if task not in _REGISTRY:
        raise TaskError(f"unknown task {task!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _instance(task)


def check_task(task: Task, *, train: bool = True) -> dict | None:
    """Raise :class:`TaskError` for a task a search could not run (module docstring); returns
    the metrics of the check's training run (ReLU, seed 0), or None with ``train=False``."""
    import torch

    from aquasurf_core.features.fisher import UnsupportedLayerError, kfac_factors
    from aquasurf_core.space.activation import ActivationFunction

    try:
        model = task.build("relu(x)", 0)
    except Exception as err:
        raise TaskError(f"task {task.name!r}: build('relu(x)', 0) failed: "
                        f"{type(err).__name__}: {err}") from err
    if not isinstance(model, torch.nn.Module):
        raise TaskError(f"task {task.name!r}: build() must return a torch.nn.Module, got "
                        f"{type(model).__name__}")
    if not any(isinstance(m, ActivationFunction) for m in model.modules()):
        raise TaskError(f"task {task.name!r}: the model has no activation site; build() must "
                        "place aquasurf_core.space.ActivationFunction(fn_name) modules where "
                        "the activation functions go")
    x, y = task.fisher_batch(0)
    try:
        kfac_factors(model, x, y)
    except UnsupportedLayerError as err:
        raise TaskError(f"task {task.name!r}: K-FAC cannot compute the Fisher features of "
                        f"this model: {err}") from err
    if not train:
        return None
    metrics = task.train("relu(x)", 0)
    if not isinstance(metrics, dict) or "val_acc" not in metrics:
        raise TaskError(f"task {task.name!r}: train() must return a dict with 'val_acc' "
                        f"(validation accuracy in [0, 1]); it returned {metrics!r:.200}")
    val = metrics["val_acc"]
    if isinstance(val, bool) or not isinstance(val, (int, float)) or not (
            math.isfinite(val) and 0 <= val <= 1):
        raise TaskError(f"task {task.name!r}: train() returned val_acc={val!r}; it must be a "
                        "number in [0, 1]")
    return metrics


# ----------------------------------------------------------------------------- built in
def arch_task(name: str, arch: str, data: Callable, *, recipe=None, fisher_examples: int = 128,
              description: str = "") -> Task:
    """A task on one of :data:`aquasurf_core.models.ARCHITECTURES` trained with
    :func:`aquasurf_core.training.reference.train_one` on the splits ``data()`` returns (loaded
    once per process), with the architecture's recipe (or ``recipe``); the Fisher batch is the
    first ``fisher_examples`` training examples."""
    loaded: dict = {}

    def splits():
        if "data" not in loaded:
            loaded["data"] = data()
        return loaded["data"]

    def build(fn_name: str, seed: int):
        from aquasurf_core.models import build_model

        return build_model(arch, fn_name, seed=seed)

    def fit(fn_name: str, seed: int):
        from aquasurf_core.training.reference import train_model

        model, r = train_model(arch, fn_name, seed, splits(), recipe)
        return model, {"val_acc": r.val_accuracy, "test_acc": r.test_accuracy,
                       "train_acc": r.train_accuracy, "val_loss": r.val_loss,
                       "test_loss": r.test_loss, "train_loss": r.train_loss, "status": r.status,
                       "epochs": r.epochs_completed}

    def train(fn_name: str, seed: int) -> dict:
        return fit(fn_name, seed)[1]

    def fisher_batch(seed: int):
        train_split = splits().train
        return train_split.x[:fisher_examples], train_split.y[:fisher_examples]

    from aquasurf_core.training.recipes import get_recipe

    used = recipe or get_recipe(arch)
    return Task(name, build, train, fisher_batch, description,
                {"arch": arch, "recipe": {k: getattr(used, k) for k in
                                          ("epochs", "batch_size", "optimizer", "lr")}}, fit)


def loader_task(name: str, arch: str, load: Callable, *, num_classes: int, recipe=None,
                mixing=None, fisher_examples: int = 128, num_workers: int = 0,
                description: str = "") -> Task:
    """A task on a full-size architecture trained from disk by
    :func:`aquasurf_core.training.loader_training.train_with_loaders` on the splits ``load()``
    returns (an object with ``train``, ``validation``, ``test`` datasets; loaded once per
    process, on first use, so a task is registered without its data), on the first CUDA device
    when there is one (a dask worker sees only its own), else on CPU. The Fisher batch is the
    first ``fisher_examples`` validation images (unaugmented, fixed)."""
    loaded: dict = {}

    def splits():
        if "data" not in loaded:
            loaded["data"] = load()
        return loaded["data"]

    def device():
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def build(fn_name: str, seed: int):
        from aquasurf_core.models import build_model

        return build_model(arch, fn_name, seed=seed, num_classes=num_classes)

    def train(fn_name: str, seed: int) -> dict:
        from aquasurf_core.training.loader_training import Mixing, train_with_loaders

        data = splits()
        r = train_with_loaders(build(fn_name, seed), data.train, data.validation, data.test,
                               used, seed=seed, num_classes=num_classes, device=device(),
                               mixing=mixing or Mixing(), num_workers=num_workers, arch=arch,
                               fn_name=fn_name)
        return {"val_acc": r.val_accuracy, "test_acc": r.test_accuracy,
                "train_acc": r.train_accuracy, "val_loss": r.val_loss, "test_loss": r.test_loss,
                "train_loss": r.train_loss, "status": r.status, "epochs": r.epochs_completed,
                "device": device()}

    def fisher_batch(seed: int):
        import torch

        held = splits().validation
        items = [held[i] for i in range(min(fisher_examples, len(held)))]
        return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])

    from aquasurf_core.training.recipes import get_recipe

    used = recipe or get_recipe(arch)
    return Task(name, build, train, fisher_batch, description,
                {"arch": arch, "num_classes": num_classes,
                 "recipe": {k: getattr(used, k) for k in ("epochs", "batch_size", "optimizer",
                                                         "lr")},
                 "mixing": None if mixing is None else vars(mixing)})


#: Table 4's batch mixing for the ImageNet-scale recipes.
IMAGENET_MIXING = {"mixup_alpha": 0.1, "cutmix_alpha": 1.0}


def _full_size_tasks() -> dict[str, Callable[[], Task]]:
    from aquasurf_core.training.cifar import load_cifar
    from aquasurf_core.training.image_folder import load_image_folder
    from aquasurf_core.training.loader_training import Mixing

    def imagenet():
        return load_image_folder(name="imagenet", validation_per_class=10)

    tasks: dict[str, Callable[[], Task]] = {}
    for arch, title in (("all-cnn-c", "All-CNN-C"), ("resnet-56", "ResNet-56")):
        tasks[f"cifar100-{arch}"] = (lambda a=arch, t=title: loader_task(
            f"cifar100-{a}", a, lambda: load_cifar("cifar100", a), num_classes=100,
            description=f"{t} on CIFAR-100 (paper Section 6), Table 4 recipe, 25 epochs; "
                        "CIFAR-100 under $AQUASURF_DATA/cifar-100-python (not downloaded)"))
    for arch, title in (("mobilevitv2-0.5", "MobileViTv2-0.5 (paper Section 6)"),
                        ("resnet-50", "ResNet-50 (Table 2's transfer)")):
        tasks[f"imagenet-{arch}"] = (lambda a=arch, t=title: loader_task(
            f"imagenet-{a}", a, imagenet, num_classes=1000, mixing=Mixing(**IMAGENET_MIXING),
            num_workers=4,
            description=f"{t} on an ImageNet folder ($AQUASURF_DATA/imagenet/"
                        "{train,val}/<class>/), 160x160, Table 4 recipe"))
    return tasks


def _load_hard_mnist1d():
    from aquasurf_core.paths import cache_dir
    from aquasurf_core.training.data import HARD_MNIST1D, load_mnist1d

    return load_mnist1d(generator=HARD_MNIST1D, validation_per_class=100, cache_dir=cache_dir())


#: How much longer the final evaluation (Table 1) trains than the search: the paper trains 50
#: epochs instead of 25.
FINAL_EPOCHS_FACTOR = 2


@lru_cache(maxsize=1)
def builtin_tasks() -> tuple[str, ...]:
    """Register the built-in tasks (once); returns their names. Every MNIST-1D and digits task
    ``NAME`` has a twin ``NAME-final``: the same network and data trained
    :data:`FINAL_EPOCHS_FACTOR` times longer, for the final comparison (paper Table 1)."""
    from aquasurf_core.training.data import load_mnist1d
    from aquasurf_core.training.digits import load_digits
    from aquasurf_core.training.recipes import get_recipe

    specs = [("digits-cnn", "digits-cnn", load_digits,
              "scikit-learn's 8x8 digits (1,197 train / 300 validation / 300 test), 2-D "
              "All-CNN-C-style network, 5 epochs")]
    specs += [(f"mnist1d-{a}", a, load_mnist1d,
               f"MNIST-1D with the Act-Bench-Mini {a} network and recipe")
              for a in ("cnn", "resnet", "vit")]
    specs += [(f"mnist1d-hard-{a}", a, _load_hard_mnist1d,
               f"harder MNIST-1D (10,000 samples, stronger noise and shear: HARD_MNIST1D) with "
               f"the Act-Bench-Mini {a} network and recipe") for a in ("resnet", "vit")]
    specs += [("mnist1d-hard-coatnet", "coatnet", _load_hard_mnist1d,
               "harder MNIST-1D (HARD_MNIST1D) with the CoAtNet-style hybrid of Table 3 "
               "(search it with the extended operators: --operators coatnet)")]
    builtins: dict[str, Callable[[], Task]] = {}
    for name, arch, data, description in specs:
        builtins[name] = (lambda n=name, a=arch, d=data, t=description: arch_task(
            n, a, d, description=t))
        builtins[f"{name}-final"] = (lambda n=name, a=arch, d=data, t=description: arch_task(
            f"{n}-final", a, d, recipe=get_recipe(a, epochs=FINAL_EPOCHS_FACTOR
                                                  * get_recipe(a).epochs),
            description=f"{t}; trained {FINAL_EPOCHS_FACTOR}x longer for the final "
                        "comparison (Table 1)"))
    builtins.update(_full_size_tasks())
    for name, factory in builtins.items():
        if name not in _REGISTRY:
            _REGISTRY[name] = factory
    return tuple(builtins)
