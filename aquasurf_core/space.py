"""Activation functions named by strings, parsed into trees and built as ``torch.nn.Module``.

Grammar (whitespace between tokens is ignored; the canonical name has none)::

    expr := "x" | OPERATOR "(" expr ("," expr)* ")"

``OPERATOR`` is a name from :mod:`aquasurf_core.operators`. Unary operators take one argument,
binary operators two, n-ary operators (``sum_n``, ``prod_n``, ``max_n``, ``min_n``) two or more.
Parsing is a small recursive-descent parser over the string; nothing is ever passed to
Python's ``eval``. Every error is an :class:`InvalidFunctionName` that says what is wrong and
at which character.

Normalisation (``normalize=True``) rescales ``f`` to ``g(x) = (f(x) - μ) / sqrt(E[(f - μ)^2])``
with ``μ = E[f(X)]``, ``X ~ N(0, 1)``, so ``g`` has zero mean and unit second moment under a
standard normal input. Both moments are computed once, in float64, by the trapezoid rule on
``[-12, 12]`` with 24,001 points (the normal mass outside is below 1e-32; kinks such as ReLU's
cost an error of order 1e-7). When a moment is not finite or the variance is zero (below 1e-20 relative), the
function cannot be normalised: :attr:`ActivationFunction.normalizable` is ``False`` and the
module returns NaN everywhere, which the Fisher features then flag as invalid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from aquasurf_core.operators import BINARY, NARY, OPERATORS, UNARY

#: Names longer than this are rejected before parsing (the 4-node space's longest is ~60).
MAX_NAME_LENGTH = 4096
#: Deepest allowed nesting of operators.
MAX_DEPTH = 64

INPUT = "x"


class InvalidFunctionName(ValueError):
    """A function name that does not parse; the message names the problem and position."""

    def __init__(self, message: str, name: object = None, position: int | None = None):
        self.name = name
        self.position = position
        detail = message
        if isinstance(name, str) and position is not None:
            shown = name if len(name) <= 120 else name[:117] + "..."
            caret = " " * min(position, len(shown)) + "^"
            detail = f"{message} at position {position}\n  {shown}\n  {caret}"
        super().__init__(detail)


@dataclass(frozen=True)
class Node:
    """A node of an activation-function tree: the input ``x`` or an operator applied to
    children. ``str(node)`` is the canonical name."""

    op: str
    children: tuple[Node, ...] = ()

    def __str__(self) -> str:
        if self.op == INPUT:
            return INPUT
        return f"{self.op}({','.join(str(c) for c in self.children)})"

    @property
    def depth(self) -> int:
        return 0 if not self.children else 1 + max(c.depth for c in self.children)

    def operators(self) -> list[str]:
        """Operator names in prefix order."""
        if self.op == INPUT:
            return []
        out = [self.op]
        for child in self.children:
            out.extend(child.operators())
        return out


class _Parser:
    def __init__(self, text: str, vocabulary: dict[str, str]):
        self.text = text
        self.vocabulary = vocabulary  # word -> operator kind
        self.pos = 0

    def error(self, message: str, position: int | None = None) -> InvalidFunctionName:
        return InvalidFunctionName(message, self.text, self.pos if position is None else position)

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def identifier(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and (
            self.text[self.pos].isalnum() or self.text[self.pos] in "_-"
        ):
            self.pos += 1
        return self.text[start : self.pos]

    def expect(self, char: str, context: str) -> None:
        self.skip_space()
        if self.pos >= len(self.text):
            raise self.error(f"unexpected end of name: expected '{char}' {context}")
        if self.text[self.pos] != char:
            raise self.error(f"expected '{char}' {context}, found '{self.text[self.pos]}'")
        self.pos += 1

    def expr(self, depth: int) -> Node:
        self.skip_space()
        if depth > MAX_DEPTH:
            raise self.error(f"nesting deeper than {MAX_DEPTH} operators")
        start = self.pos
        if self.pos >= len(self.text):
            raise self.error("unexpected end of name: expected 'x' or an operator")
        word = self.identifier()
        if not word:
            raise self.error(f"expected 'x' or an operator, found '{self.text[self.pos]}'")
        self.skip_space()
        has_args = self.pos < len(self.text) and self.text[self.pos] == "("
        if word == INPUT:
            if has_args:
                raise self.error("'x' is the input, not an operator; it takes no arguments")
            return Node(INPUT)
        if word not in self.vocabulary:
            raise self.error(f"unknown operator '{word}'", start)
        if not has_args:
            raise self.error(f"operator '{word}' must be followed by '('")
        self.pos += 1
        children = [self.expr(depth + 1)]
        while True:
            self.skip_space()
            if self.pos >= len(self.text):
                raise self.error(f"unbalanced parentheses: '{word}(' at {start} is never closed")
            char = self.text[self.pos]
            if char == ",":
                self.pos += 1
                children.append(self.expr(depth + 1))
            elif char == ")":
                self.pos += 1
                break
            else:
                raise self.error(f"expected ',' or ')' in the arguments of '{word}', found '{char}'")
        kind = self.vocabulary[word]
        n = len(children)
        if kind == UNARY and n != 1:
            raise self.error(f"wrong arity: unary operator '{word}' takes 1 argument, got {n}", start)
        if kind == BINARY and n != 2:
            raise self.error(f"wrong arity: binary operator '{word}' takes 2 arguments, got {n}", start)
        if kind == NARY and n < 2:
            raise self.error(f"wrong arity: n-ary operator '{word}' takes 2 or more arguments, got {n}", start)
        return Node(word, tuple(children))


#: Words of function names: every operator, by kind.
OPERATOR_VOCABULARY: dict[str, str] = {name: op.kind for name, op in OPERATORS.items()}
#: Words of schemas: the placeholders ``unary``, ``binary`` and ``n-ary``.
SCHEMA_VOCABULARY: dict[str, str] = {UNARY: UNARY, BINARY: BINARY, NARY: NARY}


def parse(name: str) -> Node:
    """Parse a function name such as ``max(relu(x),cosh(elu(x)))`` into a :class:`Node` tree.

    Raises :class:`InvalidFunctionName` for non-strings, empty or over-long names, unknown
    operators, wrong arity, unbalanced parentheses, trailing text and excessive nesting.
    """
    return parse_with_vocabulary(name, OPERATOR_VOCABULARY)


def parse_schema(schema: str) -> Node:
    """Parse a schema such as ``n-ary(unary(x),unary(x),unary(x))``: the same grammar with
    the placeholders ``unary``, ``binary`` and ``n-ary`` as its only operators."""
    return parse_with_vocabulary(schema, SCHEMA_VOCABULARY)


def parse_with_vocabulary(name: str, vocabulary: dict[str, str]) -> Node:
    """Parse ``name`` with the given word -> operator-kind vocabulary."""
    if not isinstance(name, str):
        raise InvalidFunctionName(
            f"a function name must be a string, got {type(name).__name__}", name
        )
    if not name.strip():
        raise InvalidFunctionName("empty function name", name)
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidFunctionName(
            f"function name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}", name
        )
    parser = _Parser(name, vocabulary)
    tree = parser.expr(0)
    parser.skip_space()
    if parser.pos != len(name):
        extra = name[parser.pos]
        if extra == ")":
            raise parser.error("unbalanced parentheses: unmatched ')'")
        raise parser.error("trailing text after a complete function")
    return tree


def canonical_name(name: str) -> str:
    """The canonical (whitespace-free) spelling of a valid name."""
    return str(parse(name))


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
    """

    def __init__(self, name: str, normalize: bool = False):
        super().__init__()
        self.tree = parse(name)
        self.name = str(self.tree)
        self.normalize = bool(normalize)
        self.normalizable = True
        shift, scale = 0.0, 1.0
        if self.normalize:
            mean, variance = gaussian_moments(self.tree)
            if math.isfinite(mean) and math.isfinite(variance) and variance > _MIN_VARIANCE * max(1.0, mean**2):
                shift, scale = mean, 1.0 / math.sqrt(variance)
            else:
                self.normalizable = False
                shift, scale = math.nan, math.nan
        self.shift = shift
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = evaluate(self.tree, x)
        if self.normalize:
            y = (y - self.shift) * self.scale
        return y

    def extra_repr(self) -> str:
        return f"{self.name!r}" + (", normalize=True" if self.normalize else "")
