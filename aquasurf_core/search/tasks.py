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
activation site, a layer K-FAC cannot handle (named), a Fisher spectrum that no baseline has
valid (:func:`check_spectra`: e.g. a zero-initialised head or residual branch, which zeroes the
gradient reaching every earlier layer for every function), a ``train`` that returns no
validation accuracy. Its training run is ReLU with seed 0 (:func:`check_training`), returned so
that the search can keep it as ReLU's baseline result.

Where and how the stages run (:class:`StageOptions`, which the search takes from its
configuration): the ``device`` of the Fisher features and of the check (the model and the
Fisher batch are moved there; default the task's own :attr:`Task.device`, else the CPU) and of
training where the task's ``train`` takes a ``device`` keyword (:func:`loader_task`'s does;
:func:`arch_task` trains with the CPU reference trainer); the K-FAC factor precision
(``factor_dtype``), what to do with a layer K-FAC cannot represent (``on_unsupported``) and the
fraction of the parameters the spectrum must cover (``min_coverage``), all given to
:func:`aquasurf_core.features.fim.fim_features` by :func:`task_features`.

Built-in tasks are found by name the same way (:func:`builtin_tasks`): ``digits-cnn``
(scikit-learn's 8x8 digits, :mod:`aquasurf_core.training.digits`, with the 2-D
All-CNN-C-style ``digits-cnn`` network), the MNIST-1D benchmark tasks ``mnist1d-<arch>``, one
per benchmark architecture (:data:`aquasurf_core.models.BENCHMARK_ARCHS`: ``mnist1d-cnn``,
``mnist1d-resnet``, ``mnist1d-vit``; each with its architecture's recipe,
:data:`aquasurf_core.training.recipes.RECIPES`), and the harder MNIST-1D of the Section 6
experiments (:data:`aquasurf_core.training.data.HARD_MNIST1D`: 10,000 samples, stronger noise and
shear; 1,000 validation examples) with the ResNet- and ViT-style networks, ``mnist1d-hard-resnet``
and ``mnist1d-hard-vit``, and with the CoAtNet-style hybrid of Table 3, ``mnist1d-hard-coatnet``.
The full-size tasks of the paper are registered the same way and read their data from disk when
first trained (:func:`loader_task`): ``cifar100-all-cnn-c``, ``cifar100-resnet-56`` (CIFAR-100 under
``$AQUASURF_DATA/cifar-100-python``), ``imagenet-mobilevitv2-0.5`` and ``imagenet-resnet-50`` (an
ImageNet-style folder under ``$AQUASURF_DATA/imagenet``).
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache

from aquasurf_core.space.baselines import BASELINE_FUNCTIONS

__all__ = ["FACTOR_DTYPES", "ON_UNSUPPORTED", "StageOptions", "Task", "TaskError", "arch_task",
           "check_spectra", "check_task", "check_training", "get_task", "loader_task",
           "register_task", "registered_tasks", "resolve_device", "task_features", "train_task",
           "zero_parameters"]

#: The K-FAC factor precisions a search may ask for: ``"auto"`` leaves it to
#: :func:`aquasurf_core.features.fim.fim_features` (its default), the others force it.
FACTOR_DTYPES = ("auto", "float32", "float64")
#: What K-FAC does with a layer it cannot represent: refuse the model, or skip the layer.
ON_UNSUPPORTED = ("error", "skip")


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
    #: the device its stages run on (``"cpu"``, ``"cuda"``, ``"cuda:1"``...; ``"auto"``: the
    #: first CUDA device of the process that runs the stage when it has one, else the CPU)
    #: unless the search says otherwise (:class:`StageOptions`); None: the CPU for the Fisher
    #: features, and whatever ``train`` does by itself
    device: str | None = None


#: The share of a model's parameters the K-FAC spectrum must cover for a search by default
#: (more than half: an Embedding + LSTM classifier, 24 % covered, is refused with its report;
#: torchvision's ResNet-18, MobileNetV3-Small and a ViT are covered at 98-99.9 %).
DEFAULT_MIN_COVERAGE = 0.5


@dataclass(frozen=True)
class StageOptions:
    """How a task's stages run (module docstring): ``device`` (None: the task's own, else the
    CPU), ``factor_dtype`` (one of :data:`FACTOR_DTYPES`), ``on_unsupported`` (one of
    :data:`ON_UNSUPPORTED`), ``min_coverage`` (the fraction of the model's parameters, in
    [0, 1], that the K-FAC spectrum must cover; None: no threshold). By default a layer K-FAC
    cannot represent (normalisation, recurrent, a parameter no layer owns) is left out of the
    spectrum and reported, and a model covered below :data:`DEFAULT_MIN_COVERAGE` is refused.
    Raises ``ValueError`` naming a bad value."""

    device: str | None = None
    factor_dtype: str = "auto"
    on_unsupported: str = "skip"
    min_coverage: float | None = DEFAULT_MIN_COVERAGE

    def __post_init__(self) -> None:
        if self.device is not None:
            _parse_device(self.device)
        if self.factor_dtype not in FACTOR_DTYPES:
            raise ValueError(f"factor_dtype must be one of {', '.join(FACTOR_DTYPES)}, got "
                             f"{self.factor_dtype!r}")
        if self.on_unsupported not in ON_UNSUPPORTED:
            raise ValueError(f"on_unsupported must be one of {', '.join(ON_UNSUPPORTED)}, got "
                             f"{self.on_unsupported!r}")
        value = self.min_coverage
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or not 0 <= value <= 1):
            raise ValueError(f"min_coverage must be a number in [0, 1], got {value!r}")

    def fim_kwargs(self) -> dict:
        """The keyword arguments of :func:`aquasurf_core.features.fim.fim_features` these
        options stand for (the one place where the dtype names become torch dtypes); a setting
        left at its default is not passed, so the features keep their own default."""
        import torch

        kwargs: dict = {"on_unsupported": self.on_unsupported}
        if self.factor_dtype != "auto":
            kwargs["factor_dtype"] = {"float32": torch.float32,
                                      "float64": torch.float64}[self.factor_dtype]
        if self.min_coverage is not None:
            kwargs["min_coverage"] = float(self.min_coverage)
        return kwargs


def _parse_device(device: str):
    import torch

    if not isinstance(device, str) or not device:
        raise ValueError(f"device must be a device name such as 'cpu' or 'cuda:0', got "
                         f"{device!r}")
    if device == "auto":  # resolved where the stage runs: a dask worker sees its own GPUs
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"device {device!r} is not a device name such as 'cpu', 'cuda' or "
                         f"'cuda:1' ({err})") from err


def resolve_device(device: str | None):
    """The ``torch.device`` of ``device`` (None: the CPU; ``"auto"``: ``cuda`` when this
    process sees a CUDA device, else the CPU). Raises ``ValueError`` for a name
    that is not a device, and :class:`TaskError` for a CUDA device this machine does not have
    (CUDA not available, or an index beyond its devices)."""
    import torch

    parsed = _parse_device(device or "cpu")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise TaskError(f"device {device!r} requested but CUDA is not available on this "
                            "machine (torch.cuda.is_available() is False); use device 'cpu'")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise TaskError(f"device {device!r} requested but this machine has "
                            f"{torch.cuda.device_count()} CUDA device(s)")
    return parsed


def task_features(task: Task, fn_name: str, seed: int, options: StageOptions | None = None, *,
                  batch=None):
    """The Fisher features (:func:`aquasurf_core.features.fim.fim_features`) of
    ``task.build(fn_name, seed)`` on ``batch`` (default ``task.fisher_batch(seed)``), the model
    and the batch moved to the options' device, with the options' K-FAC settings. Raises what
    building, moving or K-FAC raise (e.g. ``UnsupportedLayerError``); numerical trouble is an
    invalid result, not an exception."""
    from aquasurf_core.features.fim import fim_features

    options = options or StageOptions()
    device = resolve_device(options.device or task.device)
    x, y = task.fisher_batch(seed) if batch is None else batch
    model = task.build(fn_name, seed).to(device)
    return fim_features(model, x.to(device), None if y is None else y.to(device), seed=seed,
                        **options.fim_kwargs())


def train_task(task: Task, fn_name: str, seed: int, device: str | None = None) -> dict:
    """``task.train(fn_name, seed)``, given ``device=`` when one is set and ``train`` takes a
    ``device`` keyword (module docstring)."""
    if device is not None and "device" in inspect.signature(task.train).parameters:
        return task.train(fn_name, seed, device=str(resolve_device(device)))
    return task.train(fn_name, seed)


#: The tasks registered with :func:`register_task` (the built-in ones are read from
#: :func:`builtin_tasks` at each use; a registered task of the same name takes precedence).
_REGISTRY: dict[str, Callable[[], Task]] = {}


def register_task(name: str, factory: Callable[[], Task], *, replace: bool = False) -> None:
    """Register ``factory`` (no arguments, returns a :class:`Task`) under ``name``. Raises
    :class:`TaskError` for an empty name, or a name already taken (a registered or built-in
    task) unless ``replace``."""
    if not name or not isinstance(name, str):
        raise TaskError(f"a task name must be a non-empty string, got {name!r}")
    if not replace and (name in _REGISTRY or name in _builtin_factories()):
        raise TaskError(f"a task named {name!r} is already registered (replace=True "
                        "overrides it)")
    _REGISTRY[name] = factory
    _instance.cache_clear()


def registered_tasks() -> list[str]:
    """Every name :func:`get_task` accepts: the built-in tasks and the registered ones,
    sorted."""
    return sorted({*_builtin_factories(), *_REGISTRY})


@cache
def _instance(name: str) -> Task:
    factory = _REGISTRY[name] if name in _REGISTRY else _builtin_factories()[name]
    task = factory()
    if not isinstance(task, Task):
        raise TaskError(f"the factory of task {name!r} returned a {type(task).__name__}, not a "
                        "Task")
    return task


def get_task(task: str | Task) -> Task:
    """The :class:`Task` itself, or the registered one named ``task`` (built once per
    process). Raises :class:`TaskError` naming the registered tasks for an unknown name."""
    if isinstance(task, Task):
        return task
    known = registered_tasks()
    if task not in known:
        raise TaskError(f"unknown task {task!r}; registered: {', '.join(known)}")
    return _instance(task)


def check_task(task: Task, *, train: bool = True,
               baselines: Sequence[str] = BASELINE_FUNCTIONS,
               options: StageOptions | None = None) -> dict | None:
    """Raise :class:`TaskError` for a task a search could not run (module docstring): the
    model, its activation sites, K-FAC's layers, the Fisher spectra of ReLU and ``baselines``
    (:func:`check_spectra`) with ``options``, and, with ``train``, one training run
    (:func:`check_training`). Returns the metrics of that run (ReLU, seed 0), or None with
    ``train=False``."""
    import torch

    from aquasurf_core.space.activation import ActivationFunction

    options = options or StageOptions()
    resolve_device(options.device or task.device)  # a device this machine lacks: say so first
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
    check_spectra(task, baselines, options)
    if not train:
        return None
    return check_training(task, options)


def check_training(task: Task, options: StageOptions | None = None) -> dict:
    """Train ReLU with seed 0 (:func:`train_task`, on the options' device where the task
    supports it) and return its metrics; :class:`TaskError` unless they hold a ``val_acc`` in
    [0, 1]."""
    options = options or StageOptions()
    metrics = train_task(task, "relu(x)", 0, options.device or task.device)
    if not isinstance(metrics, dict) or "val_acc" not in metrics:
        raise TaskError(f"task {task.name!r}: train() must return a dict with 'val_acc' "
                        f"(validation accuracy in [0, 1]); it returned {metrics!r:.200}")
    val = metrics["val_acc"]
    if isinstance(val, bool) or not isinstance(val, (int, float)) or not (
            math.isfinite(val) and 0 <= val <= 1):
        raise TaskError(f"task {task.name!r}: train() returned val_acc={val!r}; it must be a "
                        "number in [0, 1]")
    return metrics


def _inplace_hint(err: Exception) -> str:
    """What to do when autograd reports a tensor it needs as modified in place: the usual
    cause, once activation sites are searchable, is an in-place tensor operation written in a
    ``forward`` after a site (``x += y``, ``x.mul_(2)``), which ``make_searchable`` leaves as it
    is (it switches off only modules' ``inplace=True``)."""
    if "modified by an inplace operation" not in str(err):
        return ""
    return (". An in-place tensor operation in a forward overwrote a tensor that the backward "
            "pass needs -- typically the output of an activation site (x += y or x.mul_(2) "
            "after it); write it out of place (x = x + y) in that module's forward")


def zero_parameters(model) -> list[str]:
    """Names of the parameters of ``model`` that are exactly zero everywhere, for every module
    whose ``weight`` is all zeros (a zero weight is what stops a signal; a zero bias alone does
    not, so zero biases are named only beside their zero weight)."""
    names = []
    for prefix, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if weight is None or not weight.numel() or bool(weight.detach().count_nonzero()):
            continue
        for name, param in module.named_parameters(recurse=False):
            if param.numel() and not bool(param.detach().count_nonzero()):
                names.append(f"{prefix}.{name}" if prefix else name)
    return names


#: How many names a message lists before "and N more".
_LISTED = 6


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


def _explain(invalid, model) -> str:
    """What an invalid spectrum at initialisation means and how to fix it."""
    from aquasurf_core.features.fim import InvalidKind

    kind, layer = invalid.kind, invalid.layer
    if kind in (InvalidKind.ZERO_GAMMA, InvalidKind.ZERO_OMEGA):
        signal = "gradient reaching" if kind is InvalidKind.ZERO_GAMMA else "input of"
        zeros = zero_parameters(model)
        if zeros:
            cause = (f"parameters {_listing(zeros)} are all zeros (a zero-initialised head or "
                     "residual branch); re-initialise them in build() (e.g. nn.init.normal_(..., "
                     "std=0.02) for a linear layer's, nn.init.ones_ for a normalisation "
                     "layer's weight)")
        else:
            cause = ("no parameter is all zeros, so the signal dies on its way (a detached "
                     "tensor, a stop-gradient, or a layer whose output does not depend on its "
                     "input)")
        return (f"the {signal} layer {layer!r} is zero at initialisation ({kind.value}): "
                f"{cause}")
    if kind in (InvalidKind.EXPLODING, InvalidKind.VANISHING, InvalidKind.NONFINITE_OMEGA,
                InvalidKind.NONFINITE_GAMMA, InvalidKind.NONFINITE_LOSS):
        return (f"{invalid} [{kind.value}] at initialisation: check the initialisation's scale "
                "and the Fisher batch (finite, normalised inputs; labels in range)")
    return f"{invalid} [{kind.value}]"


def check_spectra(task: Task, baselines: Sequence[str] = BASELINE_FUNCTIONS,
                  options: StageOptions | None = None) -> dict:
    """Refuse a task whose Fisher spectra at initialisation are invalid for ReLU *and* every
    function of ``baselines`` (seed 0, :func:`task_features`; no training).

    The rule: ReLU first; when its spectrum is valid the check ends there (one Fisher
    computation). When it is not, the other baselines are computed, and the task passes (with a
    warning) as soon as one is valid -- an invalid spectrum of a single function is a property of
    that function (e.g. ReLU on all-negative inputs leaves ``Omega`` zero) and the search handles
    it: such functions are simply never proposed. When none is valid, the cause is the model, not
    the functions (a zero-initialised head or residual branch zeroes the gradient reaching every
    earlier layer whatever the activation function), the surrogate could never learn anything,
    and the search is refused with :class:`TaskError` naming the layer, the kind of invalidity
    (:class:`aquasurf_core.features.fim.InvalidKind`) and, for a zero signal, the parameters
    that are exactly zero.

    Returns ``{function name: FimFeatures}`` of the functions computed. Raises
    :class:`TaskError` also for a layer K-FAC cannot handle (or a coverage below
    ``min_coverage``), with K-FAC's report, and for a Fisher batch or a build that fails."""
    from aquasurf_core.features.fisher import UnsupportedLayerError

    options = options or StageOptions()
    names = list(dict.fromkeys(["relu(x)", *baselines]))
    try:
        batch = task.fisher_batch(0)
    except Exception as err:
        raise TaskError(f"task {task.name!r}: fisher_batch(0) failed: {type(err).__name__}: "
                        f"{err}") from err
    computed = {}
    for name in names:
        try:
            feats = task_features(task, name, 0, options, batch=batch)
        except UnsupportedLayerError as err:
            hint = ("" if options.on_unsupported == "skip" else
                    " (in a search: SearchConfig(on_unsupported='skip'), or aquasurf search "
                    "run --on-unsupported skip)")
            raise TaskError(f"task {task.name!r}: K-FAC cannot compute the Fisher features of "
                            f"this model: {err}{hint}") from err
        except TaskError:
            raise
        except Exception as err:
            raise TaskError(f"task {task.name!r}: the Fisher features of {name} failed: "
                            f"{type(err).__name__}: {err}{_inplace_hint(err)}") from err
        computed[name] = feats
        if feats.valid:
            if name != "relu(x)":
                warnings.warn(f"task {task.name!r}: ReLU's Fisher spectrum is invalid "
                              f"({computed['relu(x)'].reason}) but {name}'s is valid; the "
                              "search goes on, proposing only functions with valid spectra",
                              stacklevel=2)
            return computed
    by_reason: dict[str, list[str]] = {}
    for name, feats in computed.items():
        by_reason.setdefault(feats.reason, []).append(name)
    each = "; ".join(f"{_listing(n)}: {reason}" for reason, n in by_reason.items())
    raise TaskError(f"task {task.name!r}: "
                    f"{_explain(computed['relu(x)'].invalid, task.build('relu(x)', 0))}. No "
                    f"baseline has a valid Fisher spectrum at initialisation ({each}), so the "
                    "search could learn nothing")


# ----------------------------------------------------------------------------- built in
def arch_task(name: str, arch: str, data: Callable, *, recipe=None, fisher_examples: int = 128,
              description: str = "", device: str | None = None) -> Task:
    """A task on one of :data:`aquasurf_core.models.ARCHITECTURES` trained with
    :func:`aquasurf_core.training.reference.train_one` on the splits ``data()`` returns (loaded
    once per process), with the architecture's recipe (or ``recipe``); the Fisher batch is the
    first ``fisher_examples`` training examples. ``device`` is the task's :attr:`Task.device`:
    its Fisher features, the check's and training run there (training also takes a search's
    ``device=``, :func:`train_task`)."""
    loaded: dict = {}

    def splits():
        if "data" not in loaded:
            loaded["data"] = data()
        return loaded["data"]

    def build(fn_name: str, seed: int):
        from aquasurf_core.models import build_model

        return build_model(arch, fn_name, seed=seed)

    def fit(fn_name: str, seed: int, device: str | None = device):
        from aquasurf_core.training.reference import train_model

        model, r = train_model(arch, fn_name, seed, splits(), recipe,
                               resolve_device(device) if device else "cpu")
        return model, {"val_acc": r.val_accuracy, "test_acc": r.test_accuracy,
                       "train_acc": r.train_accuracy, "val_loss": r.val_loss,
                       "test_loss": r.test_loss, "train_loss": r.train_loss, "status": r.status,
                       "epochs": r.epochs_completed}

    def train(fn_name: str, seed: int, device: str | None = device) -> dict:
        return fit(fn_name, seed, device)[1]

    def fisher_batch(seed: int):
        train_split = splits().train
        return train_split.x[:fisher_examples], train_split.y[:fisher_examples]

    from aquasurf_core.training.recipes import get_recipe

    used = recipe or get_recipe(arch)
    return Task(name, build, train, fisher_batch, description,
                {"arch": arch, "recipe": {k: getattr(used, k) for k in
                                          ("epochs", "batch_size", "optimizer", "lr")}}, fit,
                device)


def loader_task(name: str, arch: str, load: Callable, *, num_classes: int, recipe=None,
                mixing=None, fisher_examples: int = 128, num_workers: int = 0,
                description: str = "", device: str | None = None) -> Task:
    """A task on a full-size architecture trained from disk by
    :func:`aquasurf_core.training.loader_training.train_with_loaders` on the splits ``load()``
    returns (an object with ``train``, ``validation``, ``test`` datasets; loaded once per
    process, on first use, so a task is registered without its data), on ``device`` (the
    task's :attr:`Task.device`, or the ``device`` given to ``train``); without one
    (``"auto"``), on the first CUDA device when there is one (a dask worker sees only its own),
    else on CPU: training and the Fisher features alike. The Fisher batch is the first
    ``fisher_examples`` validation images (unaugmented, fixed)."""
    loaded: dict = {}

    def splits():
        if "data" not in loaded:
            loaded["data"] = load()
        return loaded["data"]

    def build(fn_name: str, seed: int):
        from aquasurf_core.models import build_model

        return build_model(arch, fn_name, seed=seed, num_classes=num_classes)

    def train(fn_name: str, seed: int, device: str | None = None) -> dict:
        from aquasurf_core.training.loader_training import Mixing, train_with_loaders

        data = splits()
        device = str(resolve_device(device or "auto"))
        r = train_with_loaders(build(fn_name, seed), data.train, data.validation, data.test,
                               used, seed=seed, num_classes=num_classes, device=device,
                               mixing=mixing or Mixing(), num_workers=num_workers, arch=arch,
                               fn_name=fn_name)
        return {"val_acc": r.val_accuracy, "test_acc": r.test_accuracy,
                "train_acc": r.train_accuracy, "val_loss": r.val_loss, "test_loss": r.test_loss,
                "train_loss": r.train_loss, "status": r.status, "epochs": r.epochs_completed,
                "device": str(device)}

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
                 "mixing": None if mixing is None else vars(mixing)}, device=device or "auto")


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


def builtin_tasks() -> tuple[str, ...]:
    """The names of the built-in tasks (module docstring), read from the architecture
    registry at each call: every benchmark architecture ``A``
    (:data:`aquasurf_core.models.BENCHMARK_ARCHS`) has the task ``mnist1d-A``. Every MNIST-1D
    and digits task ``NAME`` has a twin ``NAME-final``: the same network and data trained
    :data:`FINAL_EPOCHS_FACTOR` times longer, for the final comparison (paper Table 1)."""
    return tuple(_builtin_factories())


def _builtin_factories() -> dict[str, Callable[[], Task]]:
    """``{name: factory}`` of the built-in tasks (:func:`builtin_tasks`); cheap, nothing is
    built or loaded until a factory is called."""
    from aquasurf_core.models import BENCHMARK_ARCHS
    from aquasurf_core.training.data import load_mnist1d
    from aquasurf_core.training.digits import load_digits
    from aquasurf_core.training.recipes import get_recipe

    specs = [("digits-cnn", "digits-cnn", load_digits,
              "scikit-learn's 8x8 digits (1,197 train / 300 validation / 300 test), 2-D "
              "All-CNN-C-style network, 5 epochs")]
    specs += [(f"mnist1d-{a}", a, load_mnist1d,
               f"MNIST-1D with the Act-Bench-Mini {a} network and recipe")
              for a in BENCHMARK_ARCHS]
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
    return builtins
