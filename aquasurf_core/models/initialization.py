"""Variance-preserving weight initialisation for a given activation function.

The paper initialises every network with AutoInit (Bingham & Miikkulainen 2021), which
propagates the mean and variance of the signal analytically through the network and scales
each weight layer so that the variance is preserved for the chosen activation. This module
implements the core of that idea with a simple, testable rule:

* Each weight layer (``nn.Linear``, ``nn.Conv1d``/``2d``/``3d``, depthwise included) gets
  weights ``W ~ N(0, sigma^2)`` and zero biases, with ``fan_in = in_features`` or
  ``in_channels / groups * prod(kernel_size)`` and

      sigma^2 = 1 / (fan_in * E[f(Z)^2]),   Z ~ N(0, 1),

  when the layer's input is the output of an activation ``f`` (directly, or through dropout or
  an identity), and ``sigma^2 = 1 / fan_in`` otherwise (the network input, normalisation
  layers, attention outputs, residual sums, pooling).
* Why: for a pre-activation ``h ~ N(0, 1)`` and independent zero-mean weights, the next
  pre-activation ``h' = W f(h)`` has ``E[h'^2] = fan_in * sigma^2 * E[f(h)^2] = 1``. The
  *second moment* (not the variance) of ``f`` enters because the weights have zero mean, so a
  non-zero mean of ``f`` also contributes. For ReLU, ``E[relu(Z)^2] = 1/2`` and this is exactly
  He (Kaiming) normal init; for a normalised activation (``normalize=True``) it is LeCun init.
  ``E[f(Z)^2]`` comes from :func:`aquasurf_core.space.gaussian_moments` (float64 quadrature):
  ``mean^2 + variance``.
* Fallback: when ``E[f(Z)^2]`` is not finite or not above ``1e-12`` (e.g. ``zero(x)``,
  ``exp(exp(x))``, or a non-normalisable function with ``normalize=True``), the layer uses
  ``1 / fan_in`` and the report marks it (``LayerInit.fallback``, ``InitReport.fallback``).
  The Fisher features flag such functions invalid anyway.
* Symmetry: weights are drawn from a zero-mean normal, so the distribution of the network
  (weights ``W`` and ``-W`` equally likely, layer by layer) is invariant under sign flips.
* Seeds: weights are drawn, in ``model.named_modules()`` order, from a ``torch.Generator``
  seeded with ``seed``; the same model and seed always give the same weights.

Differences from AutoInit: means are not tracked separately (only through the second
moment), the input to each layer is assumed to have unit second moment rather than the
value propagated from earlier layers, normalisation layers keep their default affine
parameters (weight 1, bias 0), and residual branches get no special treatment: the last layer
of a branch uses the same rule as any other layer (not zeroed or down-scaled), so in a residual
network the second moment of the residual stream grows roughly linearly with the number of
blocks, as with He init; in the pre-activation ResNets every branch starts with BatchNorm, so
pre-activations stay normalised.

Which layers are fed by which activation is found by tracing one forward pass (eval mode, no
gradients) with hooks that follow tensor identity from each
:class:`~aquasurf_core.space.ActivationFunction` output to the weight layers that consume it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import torch
from torch import nn

from aquasurf_core.space.activation import ActivationFunction, gaussian_moments
from aquasurf_core.space.names import parse

#: Weight layer kinds this module initialises (the kinds K-FAC supports, plus Conv3d).
WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
#: Modules through which an activation's output passes unchanged in eval mode.
PASSTHROUGH = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity)
#: Second moments at or below this count as zero (fallback to 1/fan_in).
MIN_SECOND_MOMENT = 1e-12


@dataclass(frozen=True)
class LayerInit:
    """How one weight layer was initialised."""

    name: str
    fan_in: int
    fed_by: str | None  # name of the activation module feeding the layer, or None
    second_moment: float  # E[f(Z)^2] of that activation (may be 0/inf/NaN), 1.0 if none
    std: float
    fallback: bool  # True when E[f(Z)^2] was unusable and 1/fan_in was used instead


@dataclass
class InitReport:
    """What :func:`variance_preserving_init_` did; stored as ``model.init_report``."""

    seed: int
    layers: list[LayerInit] = field(default_factory=list)

    @property
    def fallback(self) -> bool:
        """Whether any layer fell back to ``1/fan_in`` because ``E[f(Z)^2]`` was unusable."""
        return any(layer.fallback for layer in self.layers)


@lru_cache(maxsize=4096)
def _second_moment_of_name(name: str) -> float:
    mean, variance = gaussian_moments(parse(name))
    return mean * mean + variance


def activation_second_moment(act: ActivationFunction) -> float:
    """``E[f(Z)^2]`` for ``Z ~ N(0, 1)`` of the module's function, normalisation included
    (exactly 1 when normalised; NaN when normalisation was impossible)."""
    if act.normalize:
        return 1.0 if act.normalizable else math.nan
    return _second_moment_of_name(act.name)


def fan_in(layer: nn.Module) -> int:
    """Inputs feeding one output unit of a weight layer."""
    if isinstance(layer, nn.Linear):
        return layer.in_features
    if isinstance(layer, WEIGHT_LAYERS):
        return layer.in_channels // layer.groups * math.prod(layer.kernel_size)
    raise TypeError(f"not a weight layer: {type(layer).__name__}")


def trace_activation_inputs(model: nn.Module, example_input: torch.Tensor) -> dict[str, str | None]:
    """Map each weight layer's name to the name of the activation module whose output it
    consumes (first call in one forward pass), or ``None``. Layers not called are absent."""
    names = {module: name for name, module in model.named_modules()}
    produced: dict[int, str] = {}  # id(tensor) -> activation name
    alive: list[torch.Tensor] = []  # keep traced tensors alive so ids are not reused
    fed_by: dict[str, str | None] = {}

    def on_activation(module, _inputs, output):
        produced[id(output)] = names[module]
        alive.append(output)

    def on_passthrough(_module, inputs, output):
        if inputs and id(inputs[0]) in produced:
            produced[id(output)] = produced[id(inputs[0])]
            alive.append(output)

    def on_weight_layer(module, inputs):
        name = names[module]
        if name not in fed_by:
            fed_by[name] = produced.get(id(inputs[0])) if inputs else None

    handles = []
    for module in names:
        if isinstance(module, ActivationFunction):
            handles.append(module.register_forward_hook(on_activation))
        elif isinstance(module, PASSTHROUGH):
            handles.append(module.register_forward_hook(on_passthrough))
        elif isinstance(module, WEIGHT_LAYERS):
            handles.append(module.register_forward_pre_hook(on_weight_layer))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return fed_by


def variance_preserving_init_(model: nn.Module, example_input: torch.Tensor | None = None, *,
                              seed: int = 0,
                              fed_by: dict[str, str | None] | None = None) -> InitReport:
    """Initialise ``model`` in place by the rule in the module docstring and return (and
    attach as ``model.init_report``) an :class:`InitReport`.

    ``example_input`` is one batch of the right shape (values do not matter) used to trace
    which activation feeds which layer; alternatively pass ``fed_by``, the result of
    :func:`trace_activation_inputs` on a model with the same module names and wiring (the
    trace does not depend on the activation function, so it can be reused across functions).
    """
    if fed_by is None:
        if example_input is None:
            raise ValueError("pass example_input (to trace the model) or a precomputed fed_by")
        fed_by = trace_activation_inputs(model, example_input)
    modules = dict(model.named_modules())
    generator = torch.Generator().manual_seed(int(seed))
    report = InitReport(seed=int(seed))
    for name, layer in model.named_modules():
        if not isinstance(layer, WEIGHT_LAYERS):
            continue
        n = fan_in(layer)
        source = fed_by.get(name)
        moment = 1.0 if source is None else activation_second_moment(modules[source])
        fallback = not (math.isfinite(moment) and moment > MIN_SECOND_MOMENT)
        std = 1.0 / math.sqrt(n * (1.0 if fallback else moment))
        with torch.no_grad():
            weight = torch.empty(layer.weight.shape, dtype=torch.float32)
            weight.normal_(0.0, std, generator=generator)
            layer.weight.copy_(weight)
            if layer.bias is not None:
                layer.bias.zero_()
        report.layers.append(LayerInit(name, n, source, moment, std, fallback))
    model.init_report = report
    return report
