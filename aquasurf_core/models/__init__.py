"""Architectures whose activation sites all use one function from the search space.

Public API::

    ARCHITECTURES: dict[str, ArchSpec]
    BENCHMARK_ARCHS: Sequence[str]  (the names of the benchmark architectures, read at each use)
    build_model(arch, fn_name, *, seed=0, num_classes=None, normalize=False,
                init="variance") -> nn.Module
    activation_factory(fn_name, normalize=False) -> factory(inplace=False) -> nn.Module
    make_searchable(model, fn_name, *, types=None, names=None, functional=None,
                    normalize=False) -> (nn.Module, list[Site])
    set_activation(model, fn_name, *, normalize=None) -> int

Your own model (a torchvision or timm network): :func:`make_searchable` replaces its
activation modules and functional activation calls by the searched function and lists the
sites; :func:`set_activation` swaps the function afterwards; :func:`activation_factory` can be
passed as torchvision's ``activation_layer=`` or timm's ``act_layer=`` (:mod:`.searchable`).

Small MNIST-1D models (input ``1 x 40``; ``(N, 40)`` is accepted too), for the benchmark and
the Fisher features on CPU:

* ``cnn`` -- All-CNN-C layout in 1-D, widths 16/32, stride-2 first layer (:mod:`.allcnn`;
  13,898 parameters).
* ``resnet`` -- pre-activation ResNet, 3 stages x 1 basic block, 8/16/32 channels,
  stride-2 stem (:mod:`.preact_resnet`; 7,378 parameters).
* ``vit`` -- MobileViT-style: conv stem, MV2 block, depthwise local mixing, one transformer
  block with multi-head self-attention from ``nn.Linear`` layers (:mod:`.small_vit`; stem
  16, token width 32, 2 heads, 12,026 parameters).
* ``coatnet`` -- CoAtNet-style hybrid: conv stem, one MBConv block, two transformer blocks
  (:mod:`.small_coatnet`; 21,786 parameters), for the paper's Table 3 search with the
  extended operator set.

The widths are small on purpose: the Act-Bench-Mini benchmarks train each of them with all
2,902 unique 3-node functions on a 2-core CPU (see :mod:`aquasurf_core.training`).

Full-size models (paper Sec. 5 and Table 4):

* ``all-cnn-c`` -- Springenberg et al. 2015 on 3x32x32, dropout 0.5.
* ``resnet-56`` -- the paper's ResNet-56: the Keras CIFAR example's "ResNet v2" at depth 56,
  pre-activation bottleneck blocks, 3 stages x 6 blocks, 16 -> 64/128/256 channels, biased
  convolutions, 1.66M parameters; its Fisher feature size is 16,500 as in the paper's
  Appendix D (:mod:`.resnet_v2`).
* ``preact-resnet-56`` -- He et al. 2016 CIFAR ResNet-56, pre-activation, 3 x 9 basic blocks,
  0.86M parameters (Fisher feature size 8,499; :mod:`.preact_resnet`).
* ``mobilevitv2-0.5`` -- Mehta & Rastegari 2022, width 0.5, 3x160x160 (:mod:`.mobilevitv2`).
* ``resnet-50`` -- torchvision ResNet-50, every ReLU replaced (:mod:`.resnet50`).

The architecture registry. :data:`ARCHITECTURES` is the one list of architectures: the
package's lists of architectures are derived from it, so adding one is adding an
:class:`ArchSpec` here, plus what the higher stages keep for it under the same name (a lower
stage imports no higher one, so they keep their own tables, keyed by the name, rather than this
one knowing them; ``CONTRIBUTING.md`` has the steps):

* its training recipe, :data:`aquasurf_core.training.recipes.RECIPES` ``[name]``, needed by
  every architecture that is trained by name (a benchmark or a built-in task);
* its search tasks, in :mod:`aquasurf_core.search.tasks`: every benchmark architecture gets
  the built-in MNIST-1D task ``mnist1d-<name>`` (and its ``-final`` twin) without an edit
  there; any other architecture is searched through a task of its own (the built-in
  ``digits-cnn``, ``mnist1d-hard-coatnet`` or the full-size ones, or one registered with
  :func:`aquasurf_core.search.tasks.register_task`).

``ArchSpec.benchmark`` marks the Act-Bench-Mini benchmark architectures (MNIST-1D input
``1 x 40``, trained with all 2,902 unique 3-node functions): :data:`BENCHMARK_ARCHS` lists them
in registry order, and the grouped trainer (:mod:`aquasurf_core.training.grouped`), the shipped
benchmarks (:data:`aquasurf_core.bench.table.SHIPPED`), the built-in tasks, the command line
(``aquasurf bench build --arch``, ``aquasurf inspect --bench``) and the pipeline's notebook
parameters read it when they are used, so a benchmark architecture added here is in all of
them. ``tests/test_registries.py`` checks that every benchmark architecture has a recipe
and a task, and that a toy architecture added to the registry reaches every one of those
places.

Every activation site is an :class:`aquasurf_core.space.ActivationFunction` (the module
docstrings list the sites); every weight layer is ``nn.Linear``, ``nn.Conv1d`` or
``nn.Conv2d`` (depthwise included) without a built-in nonlinearity. Initialisation is
:func:`aquasurf_core.models.initialization.variance_preserving_init_` unless ``init="default"``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from aquasurf_core.live_names import LiveNames
from aquasurf_core.models.allcnn import AllCNN
from aquasurf_core.models.factory import ActivationFactory, activation_factory, check_positive_int
from aquasurf_core.models.initialization import trace_activation_inputs, variance_preserving_init_
from aquasurf_core.models.mobilevitv2 import MobileViTv2
from aquasurf_core.models.preact_resnet import PreActResNet
from aquasurf_core.models.resnet50 import resnet50
from aquasurf_core.models.resnet_v2 import ResNetV2
from aquasurf_core.models.searchable import (
    FunctionalSitesError,
    Site,
    make_searchable,
    set_activation,
)
from aquasurf_core.models.small_coatnet import SmallCoAtNet
from aquasurf_core.models.small_vit import SmallMobileViT
from aquasurf_core.space.names import canonical_name

__all__ = ["ARCHITECTURES", "BENCHMARK_ARCHS", "INITS", "ArchSpec", "FunctionalSitesError",
           "Site", "activation_factory", "build_model", "get_spec", "make_searchable",
           "set_activation"]

#: ``builder(act_factory, *, in_channels, num_classes) -> nn.Module``.
Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ArchSpec:
    """An architecture: input shape without the batch dimension, default class count, and
    whether it is an Act-Bench-Mini benchmark architecture (module docstring)."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    builder: Builder
    description: str
    family: str  # "small" (MNIST-1D, CPU) or "full"
    benchmark: bool = False


ARCHITECTURES: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in [
        ArchSpec("cnn", (1, 40), 10, partial(AllCNN, widths=(16, 32), dims=1, dropout=0.0,
                                               first_stride=2),
                 "All-CNN-C-style 1-D all-convolutional net for MNIST-1D", "small",
                 benchmark=True),
        ArchSpec("resnet", (1, 40), 10,
                 partial(PreActResNet, widths=(8, 16, 32), blocks=(1, 1, 1), dims=1,
                         stem_stride=2),
                 "pre-activation 1-D ResNet (3 stages x 1 basic block) for MNIST-1D", "small",
                 benchmark=True),
        ArchSpec("vit", (1, 40), 10, partial(SmallMobileViT, stem=16, dim=32, heads=2),
                 "MobileViT-style 1-D conv + transformer model for MNIST-1D", "small",
                 benchmark=True),
        ArchSpec("coatnet", (1, 40), 10, partial(SmallCoAtNet, stem=16, conv=24, dim=32,
                                                   heads=2, blocks=2),
                 "CoAtNet-style 1-D conv + transformer hybrid for MNIST-1D (Table 3)", "small"),
        ArchSpec("digits-cnn", (1, 8, 8), 10, partial(AllCNN, widths=(16, 32), dims=2,
                                                      dropout=0.0, last_padding=1),
                 "All-CNN-C-style 2-D all-convolutional net for scikit-learn's 8x8 digits",
                 "small"),
        ArchSpec("all-cnn-c", (3, 32, 32), 10, partial(AllCNN, widths=(96, 192), dims=2,
                                                       dropout=0.5),
                 "All-CNN-C (Springenberg et al. 2015) for CIFAR-10/100", "full"),
        ArchSpec("resnet-56", (3, 32, 32), 10, partial(ResNetV2, depth=56),
                 "ResNet-56 as in the paper: Keras-example pre-activation bottleneck ResNet v2 "
                 "(1.66M parameters) for CIFAR-10/100", "full"),
        ArchSpec("preact-resnet-56", (3, 32, 32), 10,
                 partial(PreActResNet, widths=(16, 32, 64), blocks=(9, 9, 9), dims=2),
                 "pre-activation basic-block ResNet-56 (He et al. 2016, 0.86M parameters) for "
                 "CIFAR-10/100", "full"),
        ArchSpec("mobilevitv2-0.5", (3, 160, 160), 10, partial(MobileViTv2, width=0.5),
                 "MobileViTv2-0.5 (Mehta & Rastegari 2022) for Imagenette/ImageNet", "full"),
        ArchSpec("resnet-50", (3, 224, 224), 1000, resnet50,
                 "torchvision ResNet-50 with every ReLU replaced (transfer)", "full"),
    ]
}


#: The benchmark architectures, ``("cnn", "resnet", "vit")`` as shipped: a read-only view of
#: :data:`ARCHITECTURES` (module docstring).
BENCHMARK_ARCHS: Sequence[str] = LiveNames(
    lambda: (name for name, spec in ARCHITECTURES.items() if spec.benchmark))

#: Initialisation choices of :func:`build_model`.
INITS = ("variance", "default")

#: Spatial size used to trace the full-size image models for initialisation (the layer
#: graph does not depend on it; smaller is faster).
_TRACE_SIZE = {"resnet-50": 64, "mobilevitv2-0.5": 64}
#: Per architecture, which activation module feeds each weight layer (the wiring does not
#: depend on the function or class count, so one trace per architecture and process).
_FED_BY: dict[str, dict[str, str | None]] = {}


def get_spec(arch: str) -> ArchSpec:
    """The :class:`ArchSpec` named ``arch``, or a ``ValueError`` listing the valid names."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch]


def build_model(arch: str, fn_name: str, *, seed: int = 0, num_classes: int | None = None,
                normalize: bool = False, init: str = "variance") -> nn.Module:
    """Build ``arch`` with activation ``fn_name`` at every activation site, on CPU, float32.

    ``seed`` fixes every random choice of construction and initialisation (the global torch
    RNG is left untouched). ``num_classes`` defaults to the spec's (10, or 1000 for
    ``resnet-50``). ``normalize`` is passed to each :class:`ActivationFunction`. ``init`` is
    ``"variance"`` (:mod:`aquasurf_core.models.initialization`; the report is ``model.init_report``)
    or ``"default"`` (PyTorch's layer defaults, seeded). Raises ``ValueError`` for an unknown
    architecture or init and :class:`aquasurf_core.space.InvalidFunctionName` for a bad name.
    """
    spec = get_spec(arch)
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose from {list(INITS)}")
    classes = check_positive_int(spec.num_classes if num_classes is None else num_classes,
                                 "num_classes")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    act: ActivationFactory = activation_factory(fn_name, normalize)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.builder(act, in_channels=spec.input_shape[0], num_classes=classes)
    if init == "variance":
        if arch not in _FED_BY:
            shape = spec.input_shape
            if arch in _TRACE_SIZE:
                shape = (shape[0], _TRACE_SIZE[arch], _TRACE_SIZE[arch])
            _FED_BY[arch] = trace_activation_inputs(model, torch.zeros((1, *shape)))
        variance_preserving_init_(model, seed=seed, fed_by=_FED_BY[arch])
    model.arch = spec.name
    model.fn_name = canonical_name(fn_name)
    return model
