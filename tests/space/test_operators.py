"""The operator table: counts, definitions against reference formulas, layout stability."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aquasurf_core.space.operators import (
    BINARY,
    BINARY_OPERATORS,
    NARY,
    NARY_OPERATORS,
    OPERATOR_SETS,
    OPERATORS,
    UNARY,
    UNARY_OPERATORS,
)

#: Every unary operator the parser knows (the paper's and the extensions): the definition
#: tests below run over each, so a new operator fails them until it has a reference here.
ALL_UNARY = tuple(op for op in OPERATORS.values() if op.kind == UNARY)


def test_table_sizes_match_the_paper():
    assert len(UNARY_OPERATORS) == 27
    assert len(BINARY_OPERATORS) == 7
    assert len(NARY_OPERATORS) == 4
    assert len(OPERATOR_SETS["coatnet"]["unary"]) == 31
    assert len(set(OPERATORS)) == 27 + 4 + 7 + 4


def test_every_operator_of_every_set_is_in_the_parsers_table():
    """A set's operators are the parser's (OPERATORS, by name): its functions' names parse,
    and the definition tests below run over them."""
    for set_name, table in OPERATOR_SETS.items():
        for kind, ops in table.items():
            for op in ops:
                assert op.kind == kind and OPERATORS[op.name] is op, (set_name, op.name)


def _x64():
    return torch.linspace(-6, 6, 2001, dtype=torch.float64)


# Reference definitions written independently of operators.py (textbook formulas, float64).
REFERENCES = {
    "zero": lambda x: 0 * x,
    "one": lambda x: 0 * x + 1,
    "identity": lambda x: x,
    "negative": lambda x: -x,
    "abs": lambda x: x.abs(),
    "reciprocal": lambda x: 1 / x,
    "square": lambda x: x * x,
    "exp": torch.exp,
    "sigmoid": lambda x: 1 / (1 + torch.exp(-x)),
    "erf": torch.special.erf,
    "erfc": lambda x: 1 - torch.special.erf(x),
    "sinh": lambda x: (torch.exp(x) - torch.exp(-x)) / 2,
    "cosh": lambda x: (torch.exp(x) + torch.exp(-x)) / 2,
    "tanh": lambda x: (torch.exp(2 * x) - 1) / (torch.exp(2 * x) + 1),
    "arcsinh": lambda x: torch.log(x + torch.sqrt(x * x + 1)),
    "arctan": torch.atan,
    "expm1": lambda x: torch.exp(x) - 1,
    "log_sigmoid": lambda x: torch.log(1 / (1 + torch.exp(-x))),
    "relu": lambda x: torch.where(x > 0, x, 0 * x),
    "elu": lambda x: torch.where(x > 0, x, torch.exp(x) - 1),
    "selu": lambda x: 1.0507009873554805 * torch.where(x > 0, x,
                                                      1.6732632423543772 * (torch.exp(x) - 1)),
    "swish": lambda x: x / (1 + torch.exp(-x)),
    "softplus": lambda x: torch.log(1 + torch.exp(x)),
    "softsign": lambda x: x / (1 + x.abs()),
    # Keras 2 / TensorFlow 2 hard_sigmoid, the definition the paper's code used.
    "hard_sigmoid": lambda x: torch.clamp(0.2 * x + 0.5, 0, 1),
    "bessel_i0e": lambda x: torch.exp(-x.abs()) * torch.special.i0(x),
    "bessel_i1e": lambda x: torch.exp(-x.abs()) * torch.special.i1(x),
    "elish": lambda x: torch.where(x >= 0, x, torch.exp(x) - 1) / (1 + torch.exp(-x)),
    "gelu": lambda x: x * 0.5 * (1 + torch.special.erf(x / np.sqrt(2))),
    "leaky_relu": lambda x: torch.where(x > 0, x, 0.01 * x),
    "mish": lambda x: x * torch.tanh(torch.log(1 + torch.exp(x))),
}


@pytest.mark.parametrize("op", ALL_UNARY, ids=lambda op: op.name)
def test_unary_definitions(op):
    x = _x64()
    torch.testing.assert_close(op.fn(x), REFERENCES[op.name](x), rtol=1e-9, atol=1e-12)


def test_binary_and_nary_definitions():
    a = torch.tensor([-2.0, -0.5, 0.0, 1.5, 3.0], dtype=torch.float64)
    b = torch.tensor([0.5, 2.0, 0.0, -1.0, 3.0], dtype=torch.float64)
    c = torch.tensor([1.0, 1.0, -1.0, 2.0, 0.5], dtype=torch.float64)
    expected = {
        "add": a + b, "sub": a - b, "mul": a * b, "div": a / b,
        "pow": torch.tensor([float("nan"), 0.25, 1.0, 1 / 1.5, 27.0], dtype=torch.float64),
        "max": torch.tensor([0.5, 2.0, 0.0, 1.5, 3.0], dtype=torch.float64),
        "min": torch.tensor([-2.0, -0.5, 0.0, -1.0, 3.0], dtype=torch.float64),
    }
    for op in (op for op in OPERATORS.values() if op.kind == BINARY):
        torch.testing.assert_close(op.fn(a, b), expected[op.name], equal_nan=True)
    nary = {op.name: op for op in OPERATORS.values() if op.kind == NARY}
    assert sorted(nary) == ["max_n", "min_n", "prod_n", "sum_n"]  # a new one: check it below
    torch.testing.assert_close(nary["sum_n"].fn([a, b, c]), (a + b) + c)
    torch.testing.assert_close(nary["prod_n"].fn([a, b, c]), (a * b) * c)
    torch.testing.assert_close(nary["max_n"].fn([a, b, c]), torch.stack([a, b, c]).amax(0))
    torch.testing.assert_close(nary["min_n"].fn([a, b, c]), torch.stack([a, b, c]).amin(0))


@pytest.mark.parametrize("op", ALL_UNARY, ids=lambda op: op.name)
def test_float32_results_do_not_depend_on_position_in_the_tensor(op):
    """Same input -> same bits whether it sits in a SIMD body or a scalar tail of a buffer.

    The vectorised space evaluation and the per-function module must agree bit for bit, and
    deduplication must not depend on batching. PyTorch's fused sigmoid/SiLU/ELU/SELU/softplus
    kernels fail this on CPU, which is why operators.py rebuilds them from stable primitives.
    """
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.normal(0, 3, 999), dtype=torch.float32)
    alone = op.fn(x)
    buffer = torch.cat([torch.randn(5), x.repeat(40), torch.randn(3)])
    batched = op.fn(buffer)
    for k in range(40):
        part = batched[5 + k * 999 : 5 + (k + 1) * 999]
        same = (part == alone) | (part.isnan() & alone.isnan())
        assert bool(same.all()), f"{op.name}: copy {k} differs"
    for offset in range(1, 17):
        shifted = op.fn(x[offset:])
        same = (shifted == alone[offset:]) | (shifted.isnan() & alone[offset:].isnan())
        assert bool(same.all()), f"{op.name}: offset {offset} differs"


@pytest.mark.parametrize("op", ALL_UNARY, ids=lambda op: op.name)
def test_gradients_match_autograd_of_torch_reference(op):
    torch_ref = {
        "sigmoid": torch.sigmoid, "softplus": F.softplus, "swish": F.silu, "elu": F.elu,
        "selu": F.selu, "mish": F.mish, "gelu": F.gelu, "log_sigmoid": F.logsigmoid,
    }
    if op.name in ("zero", "one"):  # constants: no graph back to x (zeros_like/ones_like)
        assert not op.fn(torch.ones(2, requires_grad=True)).requires_grad
        return
    ref = torch_ref.get(op.name, REFERENCES[op.name])
    x = torch.linspace(-4, 4, 161, dtype=torch.float64)  # contains 0 exactly
    a = x.clone().requires_grad_()
    b = x.clone().requires_grad_()
    op.fn(a).sum().backward()
    ref(b).sum().backward()
    if op.name in ("reciprocal",):
        mask = x != 0
    elif op.name in ("abs", "relu", "leaky_relu", "hard_sigmoid", "elish"):
        mask = (x != 0) & (x.abs() != 2.5)  # kinks: subgradient conventions differ
    else:
        mask = torch.ones_like(x, dtype=torch.bool)
    torch.testing.assert_close(a.grad[mask], b.grad[mask], rtol=1e-6, atol=1e-9)


def test_no_nan_gradients_from_unused_branches():
    x = torch.tensor([-200.0, -1.0, 0.0, 1.0, 200.0], requires_grad=True)
    for name in ["sigmoid", "softplus", "swish", "elu", "selu", "elish", "mish"]:
        x.grad = None
        OPERATORS[name].fn(x).sum().backward()
        assert torch.isfinite(x.grad).all(), name
    x.grad = None
    OPERATORS["elu"].fn(x).sum().backward()
    assert x.grad[2].item() == 1.0  # ELU'(0) = 1 (alpha = 1): continuous derivative
