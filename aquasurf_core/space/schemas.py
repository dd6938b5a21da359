"""Search spaces from computation-graph schemas (paper Appendix B).

A *schema* is a function name whose operators are the placeholders ``unary``, ``binary`` and
``n-ary``, e.g. ``binary(unary(x),unary(x))``. Its space is every function obtained by
replacing each placeholder with an operator of that kind from an operator set
(:data:`aquasurf_core.space.operators.OPERATOR_SETS`): ``"paper"`` (27 unary, 7 binary, 4 n-ary
operators) or ``"coatnet"`` (31 unary: the paper set plus elish, gelu, leaky_relu, mish).
An n-ary placeholder keeps the number of arguments it is written with and takes ``sum_n``,
``prod_n``, ``max_n`` or ``min_n``.

Enumeration order (deterministic, relied on by the stores and class ids downstream):

* schemas in the order given, a schema that repeats an earlier one (same canonical spelling)
  dropped;
* within a schema, ``itertools.product`` over the placeholder *slots* in prefix (pre-order)
  order, each slot running over its operators in table order, the last slot fastest. The
  position of a function in its schema is therefore the mixed-radix number whose digits are
  the table indices of its operators in prefix order.

The union of several schemas is de-duplicated by name. Replacing each operator of a name by
its kind gives back the schema it came from, so two *different* schemas can never produce the
same name and the de-duplicated union is exactly the disjoint union over distinct schemas;
counting therefore never needs to materialise names. Sizes: ``7 * 27^2 = 5,103`` for
:data:`THREE_NODE_SCHEMA` and ``2 * 7 * 27^3 + 4 * 27^3 + 27 * 7 * 27^2 + 27^4 = 1,023,516``
for :data:`FOUR_NODE_SCHEMAS`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from aquasurf_core.space.names import INPUT, InvalidFunctionName, Node, parse, parse_schema
from aquasurf_core.space.operators import DEFAULT_OPERATOR_SET, KINDS, OPERATOR_SETS, Operator

#: The benchmark space of Act-Bench (Appendix B): 5,103 functions.
THREE_NODE_SCHEMA = "binary(unary(x),unary(x))"

#: The five four-node schemas of the Section 6 searches (Appendix B): 1,023,516 functions.
FOUR_NODE_SCHEMAS: tuple[str, ...] = (
    "binary(unary(unary(x)),unary(x))",
    "binary(unary(x),unary(unary(x)))",
    "n-ary(unary(x),unary(x),unary(x))",
    "unary(binary(unary(x),unary(x)))",
    "unary(unary(unary(unary(x))))",
)

#: Named spaces accepted wherever a list of schemas is expected: the registry of spaces. Every
#: other place that offers a space by name reads it (a search's
#: :class:`~aquasurf_core.search.engine.SearchConfig`, ``aquasurf search run --space``,
#: ``aquasurf space map --space``), so a space added here is offered there at once.
NAMED_SPACES: dict[str, tuple[str, ...]] = {
    "3-node": (THREE_NODE_SCHEMA,),
    "4-node": FOUR_NODE_SCHEMAS,
}

#: The space a search explores unless told otherwise: the 4-node space of the paper's
#: Section 6 searches (a key of :data:`NAMED_SPACES`).
DEFAULT_SPACE = "4-node"

OperatorSet = Mapping[str, Sequence[Operator]]


class InvalidSchema(ValueError):
    """A schema or operator set that cannot be enumerated; the message says why."""


def resolve_operator_set(operators: str | OperatorSet) -> dict[str, tuple[Operator, ...]]:
    """The operator table for a set name (``"paper"``, ``"coatnet"``) or an explicit
    ``{kind: operators}`` mapping; raises :class:`InvalidSchema` for anything else."""
    if isinstance(operators, str):
        if operators not in OPERATOR_SETS:
            known = ", ".join(sorted(OPERATOR_SETS))
            raise InvalidSchema(f"unknown operator set {operators!r}; known sets: {known}")
        return dict(OPERATOR_SETS[operators])
    if not isinstance(operators, Mapping):
        raise InvalidSchema(f"an operator set must be a name or a mapping, got {operators!r}")
    table = {}
    for kind in KINDS:
        ops = tuple(operators.get(kind, ()))
        if any(op.kind != kind for op in ops):
            raise InvalidSchema(f"operator set lists a non-{kind} operator under {kind!r}")
        table[kind] = ops
    return table


@dataclass(frozen=True)
class Schema:
    """A parsed schema: canonical text, tree, and its placeholder slots in prefix order."""

    text: str
    tree: Node
    slots: tuple[str, ...]  # placeholder kind of each slot, prefix order

    @property
    def n_operators(self) -> int:
        """Operators in every function of this schema (the number of slots)."""
        return len(self.slots)


def _slots(node: Node) -> list[str]:
    if node.op == INPUT:
        return []
    out = [node.op]
    for child in node.children:
        out.extend(_slots(child))
    return out


def parse_schemas(schemas: str | Iterable[str]) -> list[Schema]:
    """Parse schemas (a single string, a list, or a name from :data:`NAMED_SPACES`), dropping
    repeats. Raises :class:`InvalidSchema` with the parser's explanation for a bad schema."""
    if isinstance(schemas, str):
        schemas = NAMED_SPACES.get(schemas, (schemas,))
    texts = list(schemas)
    expanded: list[str] = []
    for text in texts:
        if isinstance(text, str) and text in NAMED_SPACES:
            expanded.extend(NAMED_SPACES[text])
        else:
            expanded.append(text)
    if not expanded:
        raise InvalidSchema("no schema given")
    out: list[Schema] = []
    seen: set[str] = set()
    for text in expanded:
        try:
            tree = parse_schema(text)
        except InvalidFunctionName as err:
            raise InvalidSchema(f"invalid schema {text!r}: {err}") from None
        canonical = str(tree)
        if canonical not in seen:
            seen.add(canonical)
            out.append(Schema(canonical, tree, tuple(_slots(tree))))
    return out


def slot_operators(schema: Schema, operators: str | OperatorSet = DEFAULT_OPERATOR_SET
                   ) -> list[tuple[Operator, ...]]:
    """The operators each slot of ``schema`` runs over, in table order."""
    table = resolve_operator_set(operators)
    out = []
    for kind in schema.slots:
        if not table[kind]:
            raise InvalidSchema(f"operator set has no {kind} operators for schema {schema.text!r}")
        out.append(table[kind])
    return out


def count_schema(schema: str | Schema, operators: str | OperatorSet = DEFAULT_OPERATOR_SET) -> int:
    """Number of functions of one schema: the product of its slots' operator counts."""
    if isinstance(schema, str):
        (schema,) = parse_schemas([schema])
    return math.prod(len(ops) for ops in slot_operators(schema, operators))


def count_functions(schemas: str | Iterable[str],
                    operators: str | OperatorSet = DEFAULT_OPERATOR_SET) -> int:
    """Size of the name-de-duplicated union of the schemas' spaces, without enumerating."""
    return sum(count_schema(s, operators) for s in parse_schemas(schemas))


def name_template(schema: Schema) -> str:
    """The schema as a ``str.format`` template with ``{}`` for each slot, e.g.
    ``{}({}(x),{}(x))``."""

    def walk(node: Node) -> str:
        if node.op == INPUT:
            return INPUT
        return "{}(" + ",".join(walk(c) for c in node.children) + ")"

    return walk(schema.tree)


def iter_names(schema: str | Schema,
               operators: str | OperatorSet = DEFAULT_OPERATOR_SET) -> Iterator[str]:
    """Every function name of one schema, in enumeration order (see the module docstring)."""
    if isinstance(schema, str):
        (schema,) = parse_schemas([schema])
    template = name_template(schema)
    names = [[op.name for op in ops] for ops in slot_operators(schema, operators)]
    for combo in itertools.product(*names):
        yield template.format(*combo)


def schema_names(schema: str | Schema,
                 operators: str | OperatorSet = DEFAULT_OPERATOR_SET) -> list[str]:
    """All names of one schema as a list (enumeration order)."""
    return list(iter_names(schema, operators))


def iter_trees(schema: str | Schema,
               operators: str | OperatorSet = DEFAULT_OPERATOR_SET) -> Iterator[Node]:
    """Every function of one schema as a :class:`~aquasurf_core.space.Node` tree, in
    enumeration order."""
    if isinstance(schema, str):
        (schema,) = parse_schemas([schema])
    slot_ops = slot_operators(schema, operators)

    def build(node: Node, ops: Iterator[str]) -> Node:
        if node.op == INPUT:
            return node
        name = next(ops)
        return Node(name, tuple(build(c, ops) for c in node.children))

    for combo in itertools.product(*[[op.name for op in ops] for ops in slot_ops]):
        yield build(schema.tree, iter(combo))


def enumerate_space(
    schemas: str | Iterable[str], operators: str | OperatorSet = DEFAULT_OPERATOR_SET
) -> Iterator[tuple[int, str]]:
    """``(schema index, name)`` for every function of the union, in enumeration order; the
    schema index refers to :func:`parse_schemas` of the same argument."""
    for index, schema in enumerate(parse_schemas(schemas)):
        for name in iter_names(schema, operators):
            yield index, name


def schema_of(name: str) -> str:
    """The schema a function name belongs to (each operator replaced by its kind)."""
    from aquasurf_core.space.operators import OPERATORS

    def walk(node: Node) -> str:
        if node.op == INPUT:
            return INPUT
        kind = OPERATORS[node.op].kind
        return f"{kind}(" + ",".join(walk(c) for c in node.children) + ")"

    return walk(parse(name))
