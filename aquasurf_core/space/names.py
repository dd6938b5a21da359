"""Function names of the search space: the grammar, its parser and the expression tree.

Grammar (whitespace between tokens is ignored; the canonical name has none)::

    expr := "x" | OPERATOR "(" expr ("," expr)* ")"

``OPERATOR`` is a name from :mod:`aquasurf_core.space.operators`. Unary operators take one argument,
binary operators two, n-ary operators (``sum_n``, ``prod_n``, ``max_n``, ``min_n``) two or more.
Parsing is a small recursive-descent parser over the string; nothing is ever passed to
Python's ``eval``. Every error is an :class:`InvalidFunctionName` that says what is wrong and
at which character.

"""

from __future__ import annotations

from dataclasses import dataclass

from aquasurf_core.space.operators import BINARY, NARY, OPERATORS, UNARY

#: Names longer than this are rejected before parsing (the 4-node space's longest is ~60).
MAX_NAME_LENGTH = 4096
#: Deepest allowed nesting of operators.
MAX_DEPTH = 64

INPUT = "x"


class InvalidFunctionName(ValueError):
    """A function name that does not parse; the message names the problem and position.

    ``message`` says what is wrong; ``name`` (kept as :attr:`name`) is the text that was
    parsed and ``position`` (:attr:`position`) the 0-based index of the offending character,
    shown under the name with a caret when both are given.
    """

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
        """Operator nesting depth: 0 for ``x``, else 1 + the deepest child's depth."""
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
                raise self.error(f"expected ',' or ')' in the arguments of '{word}', "
                                 f"found '{char}'")
        kind = self.vocabulary[word]
        n = len(children)
        if kind == UNARY and n != 1:
            raise self.error(f"wrong arity: unary operator '{word}' takes 1 argument, got {n}",
                             start)
        if kind == BINARY and n != 2:
            raise self.error(f"wrong arity: binary operator '{word}' takes 2 arguments, "
                             f"got {n}", start)
        if kind == NARY and n < 2:
            raise self.error(f"wrong arity: n-ary operator '{word}' takes 2 or more arguments, "
                             f"got {n}", start)
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
