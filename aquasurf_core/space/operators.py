"""The PANGAEA operator table (paper Appendix B, operator table: "Table 3" in the appendix
extraction, "Table 4" in the main-text extraction).

Every operator is a plain elementwise torch function, so the same table drives both the
per-function :class:`aquasurf_core.space.ActivationFunction` module and the vectorised
evaluation of whole search spaces; definitions therefore cannot drift between the two.

Names follow the official AQuaSurF implementation, so function names read from the published
Act-Bench files parse unchanged, e.g. ``max(relu(x),cosh(elu(x)))`` or
``sum_n(abs(x),swish(x),sigmoid(x))``.

Definitions worth stating (all others are the textbook ones):

* ``hard_sigmoid(x) = clip(0.2 x + 0.5, 0, 1)``: the Keras 2 / TensorFlow 2 definition that
  the paper's TensorFlow code used (not PyTorch's ``relu6(x + 3) / 6``).
* ``swish(x) = x sigmoid(x)`` (SiLU); ``elu`` uses alpha = 1; ``selu`` the standard
  alpha ~ 1.6733, scale ~ 1.0507 of Klambauer et al.
* ``softplus(x) = max(x, 0) + log(1 + e^{-|x|})`` (= log(1 + e^x), without overflow).
* ``reciprocal(0) = inf``, ``div`` is IEEE true division, ``pow`` is IEEE ``pow``
  (a negative base with a non-integer exponent gives NaN, ``0^0 = 1``).
* ``bessel_i0e``/``bessel_i1e`` are exponentially scaled modified Bessel functions
  ``e^{-|x|} I_0(x)``, ``e^{-|x|} I_1(x)``.
* n-ary operators fold left to right: ``sum_n(a, b, c) = (a + b) + c``.

Extension for the CoAtNet experiment (paper Section 6): ``elish``, ``gelu`` (exact, erf form),
``leaky_relu`` (negative slope 0.01, Maas et al. 2013) and ``mish``; ``hard_sigmoid`` is
already in the base set.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

UNARY = "unary"
BINARY = "binary"
NARY = "n-ary"
KINDS = (UNARY, BINARY, NARY)


@dataclass(frozen=True)
class Operator:
    """One operator of the search space.

    ``fn`` takes ``arity`` tensors (n-ary: a list of at least two) and returns a tensor of the
    broadcast shape, dtype and device of its inputs.
    """

    name: str
    kind: str
    fn: Callable[..., Tensor]
    formula: str  # human-readable definition, used in tables and figures

    @property
    def arity(self) -> int | None:
        """Number of arguments; ``None`` for n-ary operators (two or more)."""
        return {UNARY: 1, BINARY: 2, NARY: None}[self.kind]


# Layout-stable definitions. On CPU, PyTorch's fused sigmoid/SiLU/ELU/SELU/softplus/Mish
# kernels compute the SIMD body and the scalar tail of a buffer with different code, so one
# input can round differently depending on where it sits in a tensor. That would make the
# deduplication of a search space depend on how it was batched, and the per-function module
# disagree with the vectorised evaluation in the last bit. These operators are therefore built
# from primitives that round identically in every position (exp, expm1, log1p, tanh, where,
# reciprocal: checked in tests/test_operators.py), with analytic backward passes where
# differentiating the composite would be wrong (softplus at 0) or produce NaN (0 * inf).
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


class _Sigmoid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        s = torch.reciprocal(torch.exp(torch.neg(x)) + 1.0)
        ctx.save_for_backward(s)
        return s

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (s,) = ctx.saved_tensors
        return grad * s * (1.0 - s)


class _Softplus(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return torch.clamp(x, min=0.0) + torch.log1p(torch.exp(torch.neg(torch.abs(x))))

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad * _Sigmoid.apply(x)


def _sigmoid(x: Tensor) -> Tensor:
    return _Sigmoid.apply(x)


def _softplus(x: Tensor) -> Tensor:
    return _Softplus.apply(x)


def _swish(x: Tensor) -> Tensor:
    return x * _sigmoid(x)


def _non_positive_part(x: Tensor) -> Tensor:
    # min(x, 0) with gradient 1 at x = 0, so the unused branch of ELU/SELU never sees exp(+big)
    # (whose gradient times the zero mask would be NaN).
    return torch.where(x > 0, torch.zeros_like(x), x)


def _elu(x: Tensor) -> Tensor:
    return torch.where(x > 0, x, torch.expm1(_non_positive_part(x)))


def _selu(x: Tensor) -> Tensor:
    negative = torch.expm1(_non_positive_part(x)) * _SELU_ALPHA
    return torch.where(x > 0, x, negative) * _SELU_SCALE


def _hard_sigmoid(x: Tensor) -> Tensor:
    return torch.clamp(x * 0.2 + 0.5, 0.0, 1.0)


def _elish(x: Tensor) -> Tensor:
    return _elu(x) * _sigmoid(x)


def _mish(x: Tensor) -> Tensor:
    return x * torch.tanh(_softplus(x))


def _fold(op: Callable[[Tensor, Tensor], Tensor]) -> Callable[[list[Tensor]], Tensor]:
    def folded(args: list[Tensor]) -> Tensor:
        return functools.reduce(op, args)

    return folded


_UNARY_DEFS: list[tuple[str, Callable[[Tensor], Tensor], str]] = [
    ("zero", torch.zeros_like, "0"),
    ("one", torch.ones_like, "1"),
    ("identity", lambda x: x, "x"),
    ("negative", torch.neg, "-x"),
    ("abs", torch.abs, "|x|"),
    ("reciprocal", torch.reciprocal, "1/x"),
    ("square", torch.square, "x^2"),
    ("exp", torch.exp, "e^x"),
    ("sigmoid", _sigmoid, "σ(x)"),
    ("erf", torch.erf, "erf(x)"),
    ("erfc", torch.erfc, "erfc(x)"),
    ("sinh", torch.sinh, "sinh(x)"),
    ("cosh", torch.cosh, "cosh(x)"),
    ("tanh", torch.tanh, "tanh(x)"),
    ("arcsinh", torch.asinh, "arcsinh(x)"),
    ("arctan", torch.atan, "arctan(x)"),
    ("expm1", torch.expm1, "e^x - 1"),
    ("log_sigmoid", F.logsigmoid, "log σ(x)"),
    ("relu", torch.relu, "max(x, 0)"),
    ("elu", _elu, "x if x > 0 else e^x - 1"),
    ("selu", _selu, "λ (x if x > 0 else α(e^x - 1))"),
    ("swish", _swish, "x σ(x)"),
    ("softplus", _softplus, "log(1 + e^x)"),
    ("softsign", F.softsign, "x / (1 + |x|)"),
    ("hard_sigmoid", _hard_sigmoid, "clip(0.2x + 0.5, 0, 1)"),
    ("bessel_i0e", torch.special.i0e, "e^{-|x|} I_0(x)"),
    ("bessel_i1e", torch.special.i1e, "e^{-|x|} I_1(x)"),
]

_EXTENSION_DEFS: list[tuple[str, Callable[[Tensor], Tensor], str]] = [
    ("elish", _elish, "x σ(x) if x ≥ 0 else (e^x - 1) σ(x)"),
    ("gelu", F.gelu, "x Φ(x)"),
    ("leaky_relu", F.leaky_relu, "x if x > 0 else 0.01 x"),
    ("mish", _mish, "x tanh(softplus(x))"),
]

_BINARY_DEFS: list[tuple[str, Callable[[Tensor, Tensor], Tensor], str]] = [
    ("add", torch.add, "x1 + x2"),
    ("sub", torch.sub, "x1 - x2"),
    ("mul", torch.mul, "x1 · x2"),
    ("div", torch.div, "x1 / x2"),
    ("pow", torch.pow, "x1 ^ x2"),
    ("max", torch.maximum, "max{x1, x2}"),
    ("min", torch.minimum, "min{x1, x2}"),
]

_NARY_DEFS: list[tuple[str, Callable[[list[Tensor]], Tensor], str]] = [
    ("sum_n", _fold(torch.add), "x1 + x2 + ... (left fold)"),
    ("prod_n", _fold(torch.mul), "x1 · x2 · ... (left fold)"),
    ("max_n", _fold(torch.maximum), "max{x1, x2, ...}"),
    ("min_n", _fold(torch.minimum), "min{x1, x2, ...}"),
]

UNARY_OPERATORS: tuple[Operator, ...] = tuple(Operator(n, UNARY, f, s) for n, f, s in _UNARY_DEFS)
EXTENSION_UNARY_OPERATORS: tuple[Operator, ...] = tuple(
    Operator(n, UNARY, f, s) for n, f, s in _EXTENSION_DEFS
)
BINARY_OPERATORS: tuple[Operator, ...] = tuple(
    Operator(n, BINARY, f, s) for n, f, s in _BINARY_DEFS
)
NARY_OPERATORS: tuple[Operator, ...] = tuple(Operator(n, NARY, f, s) for n, f, s in _NARY_DEFS)

#: Every operator the parser understands, by name.
OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in UNARY_OPERATORS + EXTENSION_UNARY_OPERATORS + BINARY_OPERATORS + NARY_OPERATORS
}

#: Named operator sets for schema enumeration. ``"paper"``: the 27/7/4 operators of the
#: benchmark and 4-node spaces; ``"coatnet"``: the unary set extended for the CoAtNet search.
#: The registry of operator sets: every other place that offers a set by name reads it (a
#: search's :class:`~aquasurf_core.search.engine.SearchConfig`, the ``--operators`` option of
#: ``aquasurf space count|build`` and ``aquasurf search run``).
OPERATOR_SETS: dict[str, dict[str, tuple[Operator, ...]]] = {
    "paper": {UNARY: UNARY_OPERATORS, BINARY: BINARY_OPERATORS, NARY: NARY_OPERATORS},
    "coatnet": {
        UNARY: UNARY_OPERATORS + EXTENSION_UNARY_OPERATORS,
        BINARY: BINARY_OPERATORS,
        NARY: NARY_OPERATORS,
    },
}

#: The operator set used unless another is named (a key of :data:`OPERATOR_SETS`).
DEFAULT_OPERATOR_SET = "paper"

assert len(UNARY_OPERATORS) == 27 and len(BINARY_OPERATORS) == 7 and len(NARY_OPERATORS) == 4
