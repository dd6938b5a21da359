"""Vectorised evaluation and de-duplication of search spaces, against the slow obvious way:
one ActivationFunction module per name and a Python dict over output bytes."""

import os

import numpy as np
import pytest
import torch

from aquasurf_core.space.activation import ActivationFunction
from aquasurf_core.space.evaluation import (
    canonical_bits,
    evaluate_combos,
    evaluate_functions,
    evaluate_space,
    index_to_digits,
    row_digests,
    single_thread,
)
from aquasurf_core.space.inputs import linspace_inputs, normal_inputs
from aquasurf_core.space.operators import OPERATOR_SETS, OPERATORS
from aquasurf_core.space.schemas import FOUR_NODE_SCHEMAS, THREE_NODE_SCHEMA, schema_names

X = normal_inputs()
PAPER = OPERATOR_SETS["paper"]
# The 4-node schema without binary nodes, on every second unary operator (14^4 functions),
# keeps the default test suite fast; the full schema is checked in the slow test below.
HALF_UNARY = {"unary": PAPER["unary"][::2], "binary": PAPER["binary"], "n-ary": PAPER["n-ary"]}


def module_output(name: str, x: np.ndarray = X) -> np.ndarray:
    # One intra-op thread: F.logsigmoid otherwise wakes the thread pool for 1,000 values,
    # which costs milliseconds per call on a busy machine.
    with torch.no_grad(), single_thread():
        return ActivationFunction(name)(torch.from_numpy(x)).numpy()


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-identical with NaN == NaN (any payload) at the same positions."""
    return np.array_equal(canonical_bits(a, True), canonical_bits(b, True))


def float_key(values: np.ndarray, signed_zero_distinct: bool) -> bytes:
    """An independent canonical key by float arithmetic: NaN -> np.nan, and -0.0 + 0.0 = +0.0
    under IEEE rounding to nearest."""
    values = np.where(np.isnan(values), np.float32(np.nan), values).astype(np.float32)
    if not signed_zero_distinct:
        values = values + np.float32(0.0)
    return values.tobytes()


def brute_force_classes(names, signed_zero_distinct, outputs=None) -> list[int]:
    classes: dict[bytes, int] = {}
    outputs = [module_output(n) for n in names] if outputs is None else outputs
    return [classes.setdefault(float_key(y, signed_zero_distinct), len(classes)) for y in outputs]


@pytest.fixture(scope="module")
def three_node_module_outputs():
    return [module_output(n) for n in schema_names(THREE_NODE_SCHEMA)]


def test_inputs_are_the_official_stream():
    np.random.seed(0)
    expected = np.clip(np.random.normal(size=1000), -5, 5).astype(np.float32)
    assert X.dtype == np.float32 and X.shape == (1000,)
    assert np.array_equal(X, expected)
    assert np.array_equal(normal_inputs(), X)  # no hidden state
    grid = linspace_inputs()
    assert grid.dtype == np.float32 and grid.shape == (80,)
    assert grid[0] == -5 and grid[-1] == 5 and np.all(np.diff(grid) > 0)


@pytest.mark.parametrize("schema, operators", [
    (THREE_NODE_SCHEMA, "paper"),
    (THREE_NODE_SCHEMA, "coatnet"),
    (FOUR_NODE_SCHEMAS[0], "paper"),
    (FOUR_NODE_SCHEMAS[1], "paper"),
    (FOUR_NODE_SCHEMAS[2], "paper"),
    (FOUR_NODE_SCHEMAS[3], "paper"),
    (FOUR_NODE_SCHEMAS[4], HALF_UNARY),
])
def test_vectorised_values_are_bit_identical_to_modules(schema, operators):
    result = evaluate_space(schema, operators, X, signed_zero_distinct=True)
    names = schema_names(schema, operators)
    (ids,) = result.class_ids
    assert ids.shape == (len(names),) and result.unique_outputs.shape == (result.n_unique, 1000)
    rng = np.random.default_rng(1234)
    for i in rng.choice(len(names), size=min(300, len(names)), replace=False):
        assert same_bits(result.unique_outputs[ids[i]], module_output(names[i])), names[i]


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("AQUASURF_SLOW"), reason="slow: set AQUASURF_SLOW=1")
def test_full_unary_chain_schema_is_bit_identical_to_modules():
    schema = FOUR_NODE_SCHEMAS[4]
    result = evaluate_space(schema, "paper", X, signed_zero_distinct=True)
    names = schema_names(schema)
    rng = np.random.default_rng(99)
    for i in rng.choice(len(names), size=500, replace=False):
        assert same_bits(result.unique_outputs[result.class_ids[0][i]], module_output(names[i]))


@pytest.mark.parametrize("signed_zero_distinct", [True, False])
def test_dedup_matches_a_python_dict_over_module_outputs(signed_zero_distinct,
                                                         three_node_module_outputs):
    names = schema_names(THREE_NODE_SCHEMA)
    brute = brute_force_classes(names, signed_zero_distinct, three_node_module_outputs)
    result = evaluate_space(THREE_NODE_SCHEMA, "paper", X,
                            signed_zero_distinct=signed_zero_distinct)
    # Both number classes by first appearance in enumeration order: the ids must agree.
    assert result.n_unique == max(brute) + 1
    assert np.array_equal(result.class_ids[0], brute)


@pytest.mark.parametrize("schema, operators", [
    (THREE_NODE_SCHEMA, "paper"),
    (FOUR_NODE_SCHEMAS[2], "paper"),
    (FOUR_NODE_SCHEMAS[0], HALF_UNARY),
])
def test_hash_consing_changes_nothing(schema, operators):
    fast = evaluate_space(schema, operators, X, hashcons=True)
    slow = evaluate_space(schema, operators, X, hashcons=False)
    assert fast.n_unique == slow.n_unique
    assert np.array_equal(fast.class_ids[0], slow.class_ids[0])
    assert np.array_equal(canonical_bits(fast.unique_outputs), canonical_bits(slow.unique_outputs))


def test_chunking_changes_nothing():
    a = evaluate_space(FOUR_NODE_SCHEMAS[3], HALF_UNARY, X)
    b = evaluate_space(FOUR_NODE_SCHEMAS[3], HALF_UNARY, X, chunk_elements=7_000)
    assert np.array_equal(a.class_ids[0], b.class_ids[0])
    assert np.array_equal(canonical_bits(a.unique_outputs), canonical_bits(b.unique_outputs))


def test_nary_is_a_left_fold():
    x = np.array([1e8, -1e8, 1.0, 3.0], dtype=np.float32)
    y = evaluate_functions(["sum_n(x,negative(x),one(x))", "sum_n(one(x),x,negative(x))"], x)
    assert y[0].tolist() == [1.0, 1.0, 1.0, 1.0]  # (x - x) + 1
    assert y[1].tolist() == [0.0, 0.0, 1.0, 1.0]  # (1 + x) - x: 1e8 + 1 rounds to 1e8


def test_union_merges_classes_across_schemas():
    result = evaluate_space(["binary(unary(x),x)", "binary(x,unary(x))"], "paper", X)
    names = schema_names("binary(unary(x),x)") + schema_names("binary(x,unary(x))")
    ids = np.concatenate(result.class_ids)
    i, j = names.index("add(relu(x),x)"), names.index("add(x,relu(x))")
    assert ids[i] == ids[j]
    assert np.array_equal(ids, brute_force_classes(names, False))


# ------------------------------------------------------------------ NaN and signed-zero rules
def test_canonical_bits_rules():
    nan_payload = np.array([0x7FC00001, 0xFFC00000, 0x7F800001], dtype=np.uint32).view(np.float32)
    assert np.isnan(nan_payload).all()
    row = np.concatenate([nan_payload, np.float32([np.inf, -np.inf, 0.0, -0.0, 1.5])])
    for rule in (True, False):
        bits = canonical_bits(row, rule)
        assert len(set(bits[:3].tolist())) == 1  # every NaN is the same NaN
        assert bits[3] != bits[4]  # +inf and -inf are ordinary, different values
        assert bool(bits[5] == bits[6]) is (not rule)  # -0 vs +0 depends on the rule
        assert bits[7] == np.float32(1.5).view(np.int32)
    assert row.view(np.int32)[6] == np.int32(-(2**31))  # the input was not modified


def test_signed_zero_rule_on_a_hand_made_space():
    # mul(zero(x), identity(x)) is -0.0 where x < 0; mul(zero(x), one(x)) is +0.0 everywhere;
    # div(zero(x), zero(x)) is NaN everywhere, div(one(x), zero(x)) is +inf everywhere.
    table = {"unary": (OPERATORS["zero"], OPERATORS["one"], OPERATORS["identity"]),
             "binary": (OPERATORS["mul"], OPERATORS["div"]), "n-ary": ()}
    names = schema_names(THREE_NODE_SCHEMA, table)
    for rule in (True, False):
        result = evaluate_space(THREE_NODE_SCHEMA, table, X, signed_zero_distinct=rule)
        ids = dict(zip(names, result.class_ids[0].tolist(), strict=True))
        assert (ids["mul(zero(x),identity(x))"] == ids["mul(zero(x),one(x))"]) is (not rule)
        assert ids["mul(zero(x),identity(x))"] == ids["div(zero(x),identity(x))"]
        assert ids["mul(zero(x),one(x))"] == ids["mul(one(x),zero(x))"] \
            == ids["div(zero(x),one(x))"]
        assert ids["div(one(x),zero(x))"] != ids["div(identity(x),zero(x))"]
        assert result.class_ids[0].tolist() == brute_force_classes(names, rule)


def test_row_digests_distinguish_rows_and_are_deterministic():
    rng = np.random.default_rng(0)
    rows = rng.integers(-(2**31), 2**31, size=(1000, 64), dtype=np.int64).astype(np.int32)
    rows[500] = rows[3]
    rows[501] = rows[3]
    rows[501, 63] ^= 1  # one bit apart
    d = row_digests(rows)
    assert d == row_digests(rows.copy()) and len(d) == 1000 and len(d[0]) == 16
    assert d[500] == d[3] and d[501] != d[3]
    assert len(set(d)) == 999


# ------------------------------------------------------------------ per-function batches
def test_evaluate_functions_and_combos_match_modules():
    names = ["max(relu(x),cosh(elu(x)))", "sum_n(abs(x),swish(x),sigmoid(x))", "pow(x,erf(x))",
             "tanh(pow(exp(x),selu(x)))", "gelu(mish(x))", "x", "relu(x)",
             "div(one(x),sub(x,x))"]
    for x in (X, linspace_inputs()):
        values = evaluate_functions(names, x).numpy()
        for name, row in zip(names, values, strict=True):
            assert same_bits(row, module_output(name, x)), name
    schema = FOUR_NODE_SCHEMAS[0]
    all_names = schema_names(schema)
    index = np.array([0, 17, 12345, len(all_names) - 1])
    digits = index_to_digits(index, [7, 27, 27, 27])
    values = evaluate_combos(schema, "paper", digits, X).numpy()
    for i, row in zip(index, values, strict=True):
        assert same_bits(row, module_output(all_names[i]))
    with pytest.raises(ValueError, match="outside"):
        evaluate_combos(schema, "paper", np.array([[7, 0, 0, 0]]), X)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="1-D"):
        evaluate_space(THREE_NODE_SCHEMA, "paper", np.zeros((2, 3), np.float32))
