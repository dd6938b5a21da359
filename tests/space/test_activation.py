"""ActivationFunction modules: definitions on any dtype, autograd, normalisation."""

import math

import numpy as np
import torch

from aquasurf_core.space.activation import ActivationFunction


def test_module_matches_definitions_on_any_dtype_and_supports_autograd():
    x = torch.linspace(-3, 3, 61, dtype=torch.float64, requires_grad=True)
    f = ActivationFunction("max(relu(x),cosh(elu(x)))")
    y = f(x)
    elu = torch.where(x > 0, x, torch.expm1(x))
    expected = torch.maximum(torch.relu(x), torch.cosh(elu))
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, expected)
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    half = ActivationFunction("swish(x)")(torch.ones(4, dtype=torch.float16))
    assert half.dtype == torch.float16
    sum_n = ActivationFunction("sum_n(abs(x),swish(x),sigmoid(x))")
    z = torch.tensor([-1.0, 0.0, 2.0])
    torch.testing.assert_close(sum_n(z), z.abs() + z * torch.sigmoid(z) + torch.sigmoid(z))
    assert isinstance(f, torch.nn.Module)

def test_normalize_gives_zero_mean_unit_second_moment():
    rng = np.random.default_rng(0)
    z = torch.tensor(rng.standard_normal(2_000_000))
    for name in ["relu(x)", "swish(x)", "max(relu(x),cosh(elu(x)))", "hard_sigmoid(x)"]:
        g = ActivationFunction(name, normalize=True)
        assert g.normalizable
        y = g(z)
        assert abs(y.mean().item()) < 5e-3, name
        assert abs((y**2).mean().item() - 1) < 5e-3, name

def test_normalize_impossible_is_flagged_not_raised():
    for name in ["one(x)", "exp(exp(exp(x)))"]:
        g = ActivationFunction(name, normalize=True)
        assert not g.normalizable
        assert torch.isnan(g(torch.zeros(3))).all()
    assert math.isclose(ActivationFunction("x", normalize=True).scale, 1.0, rel_tol=1e-6)
