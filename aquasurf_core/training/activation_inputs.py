"""What a network feeds its activation functions (paper Section 7, Figure 9).

The paper explains its best CoAtNet function, a sigmoid-shaped ``erfc(Softplus(x))^2``, by
the inputs that reach it: at initialisation they sit tightly around 0 (the network uses the
function like a rectifier), after training they spread into both saturation regimes (it uses it
like a sigmoid). :func:`activation_inputs` records those inputs: it runs one batch through a
network and keeps, for every activation site (each
:class:`~aquasurf_core.space.activation.ActivationFunction` module, by its module path), the
values that arrive there. :func:`flat_share` measures how much of them fall where the function is
flat, ``|f'(x)| < slope``: the share of the inputs in its saturation regimes (for ReLU, the
negative inputs; for tanh with ``slope = 0.05``, ``|x| > 2.18``).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from aquasurf_core.space.activation import ActivationFunction

__all__ = ["FLAT_SLOPE", "activation_inputs", "flat_share"]

#: Below this absolute slope a function counts as flat (saturated) at an input.
FLAT_SLOPE = 0.05


def activation_inputs(model: nn.Module, x: torch.Tensor, *,
                      train_mode: bool = False) -> dict[str, np.ndarray]:
    """The inputs of every activation site of ``model`` on the batch ``x``: ``{module path:
    float32 values, flattened}`` in the order the modules are registered (a module used twice
    gets both calls' inputs). ``train_mode`` runs the pass in training mode (batch statistics
    in BatchNorm, as the first training step sees them) on a copy of ``model``, so that its
    running statistics are not touched; otherwise in eval mode. The model's mode is restored.

    Raises ``ValueError`` when the model has no activation site."""
    target = copy.deepcopy(model) if train_mode else model
    sites = [(name, module) for name, module in target.named_modules()
             if isinstance(module, ActivationFunction)]
    if not sites:
        raise ValueError(f"{type(model).__name__} has no activation site (no "
                         "ActivationFunction module)")
    seen: dict[str, list[np.ndarray]] = {name: [] for name, _ in sites}

    def hook(name):
        def record(module, inputs, output):
            seen[name].append(inputs[0].detach().reshape(-1).float().cpu().numpy())
        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in sites]
    was_training = target.training
    try:
        target.train(train_mode)
        with torch.no_grad():
            target(x)
    finally:
        for handle in handles:
            handle.remove()
        target.train(was_training)
    return {name: np.concatenate(parts) if parts else np.zeros(0, np.float32)
            for name, parts in seen.items()}


def flat_share(fn_name: str, inputs: np.ndarray, slope: float = FLAT_SLOPE) -> float:
    """The share of the finite ``inputs`` at which the activation ``fn_name`` has
    ``|f'(x)| < slope`` (its derivative by autograd, float32; inputs where the derivative is
    not finite are left out). NaN when no input counts."""
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
    x = x[torch.isfinite(x)].clone().requires_grad_(True)
    if not len(x):
        return float("nan")
    ActivationFunction(fn_name)(x).sum().backward()
    grad = x.grad[torch.isfinite(x.grad)]
    return float((grad.abs() < slope).double().mean()) if len(grad) else float("nan")
