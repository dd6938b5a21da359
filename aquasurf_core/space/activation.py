"""Activation functions as ``torch.nn.Module``: a parsed name evaluated elementwise on tensors.

Normalisation (``normalize=True``) rescales ``f`` to ``g(x) = (f(x) - μ) / sqrt(E[(f - μ)^2])``
with ``μ = E[f(X)]``, ``X ~ N(0, 1)``, so ``g`` has zero mean and unit second moment under a
standard normal input. Both moments are computed once, in float64, by the trapezoid rule on
``[-12, 12]`` with 24,001 points (the normal mass outside is below 1e-32; kinks such as ReLU's
cost an error of order 1e-7). When a moment is not finite or the variance is zero (below 1e-20
relative), the function cannot be normalised: :attr:`ActivationFunction.normalizable` is ``False``
and the module returns NaN everywhere, which the Fisher features then flag as invalid.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from aquasurf_core.space.names import INPUT, Node, parse
from aquasurf_core.space.operators import NARY, OPERATORS


def evaluate(tree: Node, x: torch.Tensor) -> torch.Tensor:
    """Evaluate a parsed tree elementwise on ``x`` (any shape, dtype and device)."""
    if tree.op == INPUT:
        return x
    op = OPERATORS[tree.op]
    args = [evaluate(child, x) for child in tree.children]
    if op.kind == NARY:
        return op.fn(args)
    return op.fn(*args)


#: Relative variance below which a function counts as constant (rounding noise of the
#: quadrature is ~1e-32 for constants).
_MIN_VARIANCE = 1e-20
_GRID_HALF_WIDTH = 12.0
_GRID_POINTS = 24_001


def gaussian_moments(tree: Node) -> tuple[float, float]:
    """``(E[f(X)], E[(f(X) - E f)^2])`` for ``X ~ N(0, 1)`` by the trapezoid rule in float64."""
    grid = torch.linspace(-_GRID_HALF_WIDTH, _GRID_HALF_WIDTH, _GRID_POINTS, dtype=torch.float64)
    density = torch.exp(-0.5 * grid**2) / math.sqrt(2 * math.pi)
    with torch.no_grad():
        values = evaluate(tree, grid)
        mean = torch.trapezoid(values * density, grid).item()
        variance = torch.trapezoid((values - mean) ** 2 * density, grid).item()
    return mean, variance


class ActivationFunction(nn.Module):
    """An activation function from the search space as a ``torch.nn.Module``.

    >>> f = ActivationFunction("max(relu(x),cosh(elu(x)))")
    >>> f(torch.zeros(3))
    tensor([1., 1., 1.])

    Works on any device and floating dtype and supports autograd. With ``normalize=True`` the
    output is shifted and scaled to zero mean and unit second moment under N(0, 1) inputs
    (see the module docstring for how, and what happens when that is impossible).

    ``inplace`` is accepted and ignored (the output is always a new tensor), so the class can
    stand where torchvision and timm construct ``nn.ReLU(inplace=True)``.
    :meth:`set_function` swaps the function of an existing module.
    """

    def __init__(self, name: str, normalize: bool = False, *, inplace: bool = False):
        super().__init__()
        self.set_function(name, normalize)

    def set_function(self, name: str, normalize: bool | None = None) -> None:
        """Make this module compute ``name`` (``normalize=None`` keeps the current setting).

        Raises :class:`aquasurf_core.space.InvalidFunctionName` for a bad name (the module is
        then unchanged).
        """
        tree = parse(name)
        if normalize is None:
            normalize = getattr(self, "normalize", False)
        self.tree = tree
        self.name = str(self.tree)
        self.normalize = bool(normalize)
        self.normalizable = True
        shift, scale = 0.0, 1.0
        if self.normalize:
            mean, variance = gaussian_moments(self.tree)
            if math.isfinite(mean) and math.isfinite(variance) \
                    and variance > _MIN_VARIANCE * max(1.0, mean**2):
                shift, scale = mean, 1.0 / math.sqrt(variance)
            else:
                self.normalizable = False
                shift, scale = math.nan, math.nan
        self.shift = shift
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The function applied elementwise to ``x`` (same shape, device and dtype); with
        ``normalize``, ``(f(x) - shift) * scale`` (all NaN when not :attr:`normalizable`)."""
        y = evaluate(self.tree, x)
        if self.normalize:
            y = (y - self.shift) * self.scale
        return y

    def extra_repr(self) -> str:
        """The canonical name (and ``normalize=True`` when set), shown in the module's repr."""
        return f"{self.name!r}" + (", normalize=True" if self.normalize else "")
