"""Pieces shared by the architecture families: activation sites and small checks."""

from __future__ import annotations

import copy
from collections.abc import Callable

from torch import nn

from aquasurf_core.space.activation import ActivationFunction

#: Builds one new activation module per call (one module instance per activation site);
#: accepts (and ignores) ``inplace=`` as torchvision's ``activation_layer`` and timm's
#: ``act_layer`` pass it.
ActivationFactory = Callable[..., nn.Module]


def activation_factory(fn_name: str, normalize: bool = False) -> ActivationFactory:
    """A factory of independent :class:`ActivationFunction` modules for ``fn_name``.

    The name is parsed (and, with ``normalize=True``, its Gaussian moments computed) once here,
    so a bad name raises :class:`aquasurf_core.space.InvalidFunctionName` before any layer is
    built; every call then returns a deep copy, i.e. a separate module per site (sharing the
    immutable parsed tree).

    The factory takes an optional ``inplace`` argument and ignores it, so it can be passed as
    torchvision's ``activation_layer=`` (called as ``activation_layer(inplace=True)`` or with
    no arguments) and timm's ``act_layer=``::

        Conv2dNormActivation(3, 8, activation_layer=activation_factory("swish(x)"))
    """
    prototype = ActivationFunction(fn_name, normalize=normalize)

    def make(inplace: bool = False) -> nn.Module:
        return copy.deepcopy(prototype, memo={id(prototype.tree): prototype.tree})

    make.__name__ = make.__qualname__ = f"ActivationFunction[{prototype.name}]"
    return make


def check_positive_int(value: object, what: str) -> int:
    """``value`` as an ``int`` >= 1, or a ``ValueError`` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value
