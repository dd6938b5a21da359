"""Enumerating schemas into function names (paper Appendix B)."""

import itertools
import math

import pytest

from aquasurf_core.space.names import parse
from aquasurf_core.space.operators import OPERATOR_SETS
from aquasurf_core.space.schemas import (
    FOUR_NODE_SCHEMAS,
    THREE_NODE_SCHEMA,
    InvalidSchema,
    count_functions,
    count_schema,
    enumerate_space,
    iter_names,
    iter_trees,
    parse_schemas,
    schema_names,
    schema_of,
)

PAPER = OPERATOR_SETS["paper"]
U, B, N = (len(PAPER[k]) for k in ("unary", "binary", "n-ary"))


def test_paper_counts():
    assert (U, B, N) == (27, 7, 4)
    assert count_schema(THREE_NODE_SCHEMA) == B * U * U == 5_103
    assert count_functions(FOUR_NODE_SCHEMAS) == 1_023_516
    assert [count_schema(s) for s in FOUR_NODE_SCHEMAS] == [
        B * U**3, B * U**3, N * U**3, U * B * U**2, U**4]
    assert count_schema(THREE_NODE_SCHEMA, "coatnet") == 7 * 31 * 31


def test_three_node_names_follow_product_order():
    names = schema_names(THREE_NODE_SCHEMA)
    expected = [f"{b.name}({u1.name}(x),{u2.name}(x))"
                for b, u1, u2 in itertools.product(PAPER["binary"], PAPER["unary"], PAPER["unary"])]
    assert names == expected
    assert names[0] == "add(zero(x),zero(x))"
    assert len(set(names)) == 5_103
    trees = list(iter_trees(THREE_NODE_SCHEMA))
    assert [str(t) for t in trees] == names
    assert trees[1] == parse(names[1])


def test_four_node_union_counts_and_schemas_are_disjoint():
    total = 0
    for schema in FOUR_NODE_SCHEMAS:
        names = iter_names(schema)
        first = next(names)
        assert schema_of(first) == schema
        total += 1 + sum(1 for _ in names)
    assert total == count_functions(FOUR_NODE_SCHEMAS) == 1_023_516
    # A name determines its schema, so distinct schemas never share names.
    sample = [next(iter_names(s)) for s in FOUR_NODE_SCHEMAS]
    assert len({schema_of(n) for n in sample}) == 5


def test_union_is_deduplicated_by_name():
    schemas = ["unary(x)", " unary( x ) ", "binary(x,unary(x))", "unary(x)"]
    pairs = list(enumerate_space(schemas))
    brute = {name for s in schemas for name in iter_names(s)}
    assert len(pairs) == len(brute) == count_functions(schemas) == U + B * U
    assert [s.text for s in parse_schemas(schemas)] == ["unary(x)", "binary(x,unary(x))"]
    assert [i for i, _ in pairs] == [0] * U + [1] * (B * U)


def test_nary_placeholder_keeps_its_arity():
    names = schema_names("n-ary(x,unary(x),x)")
    assert len(names) == N * U
    assert names[0] == "sum_n(x,zero(x),x)"
    assert all(len(parse(n).children) == 3 for n in names)


def test_named_spaces():
    assert [s.text for s in parse_schemas("4-node")] == list(FOUR_NODE_SCHEMAS)
    assert count_functions("3-node") == 5_103


@pytest.mark.parametrize("schema, fragment", [
    ("binary(unary(x))", "wrong arity"),
    ("ternary(x,x,x)", "unknown operator 'ternary'"),
    ("relu(x)", "unknown operator 'relu'"),
    ("unary(x", "unbalanced"),
    ("", "empty"),
])
def test_bad_schema_is_a_clear_error(schema, fragment):
    with pytest.raises(InvalidSchema) as info:
        count_functions([schema])
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unknown_operator_set():
    with pytest.raises(InvalidSchema, match="unknown operator set 'bogus'"):
        count_schema(THREE_NODE_SCHEMA, "bogus")


def test_count_is_the_product_for_a_custom_table():
    table = {"unary": PAPER["unary"][:3], "binary": PAPER["binary"][:2], "n-ary": ()}
    assert count_schema(THREE_NODE_SCHEMA, table) == 2 * 3 * 3
    assert len(schema_names(THREE_NODE_SCHEMA, table)) == math.prod([2, 3, 3])
    with pytest.raises(InvalidSchema, match="no n-ary operators"):
        count_schema("n-ary(x,x)", table)
