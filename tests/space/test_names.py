"""Parsing function names and building ActivationFunction modules."""


import pytest

from aquasurf_core.space.names import MAX_DEPTH, InvalidFunctionName, Node, parse, parse_schema


def test_parse_roundtrip_and_canonical_spelling():
    for name in [
        "x",
        "relu(x)",
        "max(relu(x),cosh(elu(x)))",
        "sum_n(abs(x),swish(x),sigmoid(x))",
        "tanh(add(erf(x),pow(x,one(x))))",
    ]:
        assert str(parse(name)) == name
    assert str(parse("  add( x , relu (x) ) ")) == "add(x,relu(x))"
    tree = parse("max(relu(x),cosh(elu(x)))")
    x = Node("x")
    assert tree == Node("max", (Node("relu", (x,)), Node("cosh", (Node("elu", (x,)),))))
    assert tree.depth == 3
    assert tree.operators() == ["max", "relu", "cosh", "elu"]


@pytest.mark.parametrize(
    "name, fragment, position",
    [
        ("", "empty", None),
        ("   ", "empty", None),
        ("foo(x)", "unknown operator 'foo'", 0),
        ("add(relu(x),bogus(x))", "unknown operator 'bogus'", 12),
        ("add(x)", "wrong arity", 0),
        ("relu(x,x)", "wrong arity", 0),
        ("sum_n(x)", "wrong arity", 0),
        ("relu(x", "unbalanced parentheses", 6),
        ("relu(x))", "unbalanced parentheses", 7),
        ("relu(x) relu(x)", "trailing text", 8),
        ("x(x)", "takes no arguments", 1),
        ("relu", "must be followed by '('", 4),
        ("relu(,x)", "expected 'x' or an operator", 5),
        ("relu(x;)", "expected ',' or ')'", 6),
    ],
)
def test_bad_names_raise_with_problem_and_position(name, fragment, position):
    with pytest.raises(InvalidFunctionName) as info:
        parse(name)
    assert fragment in str(info.value)
    assert info.value.position == position
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("bad", [None, 3, b"relu(x)", ["relu(x)"]])
def test_non_string_input(bad):
    with pytest.raises(InvalidFunctionName, match="must be a string"):
        parse(bad)


def test_absurd_length_and_nesting():
    with pytest.raises(InvalidFunctionName, match="limit"):
        parse("add(x," * 2000 + "x" + ")" * 2000)
    deep = "relu(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(InvalidFunctionName, match="nesting deeper"):
        parse(deep)
    ok = "relu(" * MAX_DEPTH + "x" + ")" * MAX_DEPTH
    assert parse(ok).depth == MAX_DEPTH


def test_no_eval_of_python_code():
    for hostile in ["__import__('os').system('true')", "relu(x)+1", "lambda: 0", "x.__class__"]:
        with pytest.raises(InvalidFunctionName):
            parse(hostile)


def test_schema_placeholders():
    tree = parse_schema("n-ary(unary(x),unary(x),unary(x))")
    assert tree.op == "n-ary" and len(tree.children) == 3
    with pytest.raises(InvalidFunctionName):
        parse_schema("relu(x)")
    with pytest.raises(InvalidFunctionName):
        parse("unary(x)")






