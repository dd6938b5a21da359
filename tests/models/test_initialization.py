"""Variance-preserving initialisation: second moments against quadrature, the He special
case, signal propagation through deep networks, fallback, symmetry and seeding."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import integrate, stats
from torch import nn

from aquasurf_core.models.initialization import (
    activation_second_moment,
    fan_in,
    trace_activation_inputs,
    variance_preserving_init_,
)
from aquasurf_core.space.activation import ActivationFunction, evaluate
from aquasurf_core.space.names import parse


def _quad_second_moment(name: str) -> float:
    """E[f(Z)^2] the slow obvious way: adaptive quadrature against the normal density."""
    tree = parse(name)

    def integrand(z: float) -> float:
        y = evaluate(tree, torch.tensor([z], dtype=torch.float64)).item()
        return y * y * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)

    return integrate.quad(integrand, -12, 12, points=[0.0], limit=200)[0]


@pytest.mark.parametrize("name", ["relu(x)", "tanh(x)", "swish(x)", "selu(x)", "exp(x)",
                                  "max(relu(x),cosh(elu(x)))"])
def test_second_moment_matches_quadrature(name):
    got = activation_second_moment(ActivationFunction(name))
    assert got == pytest.approx(_quad_second_moment(name), rel=1e-5)


def test_second_moment_special_values():
    assert activation_second_moment(ActivationFunction("relu(x)")) == pytest.approx(0.5, abs=1e-6)
    assert activation_second_moment(ActivationFunction("exp(x)")) == pytest.approx(math.e ** 2,
                                                                                    rel=1e-6)
    assert activation_second_moment(ActivationFunction("tanh(x)", normalize=True)) == 1.0
    assert math.isnan(activation_second_moment(ActivationFunction("zero(x)", normalize=True)))


def _mlp(fn: str, depth: int, width: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(width, width)]
    for _ in range(depth - 1):
        layers += [ActivationFunction(fn), nn.Linear(width, width)]
    return nn.Sequential(*layers)


def _preactivation_moments(model: nn.Module, x: torch.Tensor) -> list[float]:
    """E[h^2] at the output of every weight layer, in order."""
    moments: list[float] = []
    hooks = [m.register_forward_hook(lambda mod, i, o: moments.append(o.pow(2).mean().item()))
             for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d))]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return moments


#: Depth per function. Swish's second-moment map q -> E[f(sqrt(q) Z)^2] / E[f(Z)^2] has slope
#: ~1.17 at its fixed point q = 1 (unstable; ReLU 1.0, SELU 0.78, tanh 0.46), so finite-width
#: fluctuations grow ~1.17x per layer under ANY fixed per-layer scale (AutoInit's analytic rule
#: included); at depth 20 a width-512 swish MLP reaches q ~ 3-5. It is tested at depth 10.
DEEP = [("relu(x)", 20), ("tanh(x)", 20), ("selu(x)", 20), ("swish(x)", 10)]


@pytest.mark.parametrize("fn, depth", DEEP)
def test_deep_mlp_preserves_second_moment(fn, depth):
    width, seeds = 512, 3
    x = torch.randn(64, width, generator=torch.Generator().manual_seed(12345))
    per_seed = []
    for seed in range(seeds):
        model = _mlp(fn, depth, width)
        variance_preserving_init_(model, x[:1], seed=seed)
        per_seed.append(_preactivation_moments(model, x))
    mean = [sum(q[i] for q in per_seed) / seeds for i in range(depth)]
    assert all(0.5 <= m <= 2.0 for m in mean), mean
    # Contrast: PyTorch's default init (uniform, variance 1/(3 fan_in)) does not preserve it.
    torch.manual_seed(0)
    default = _preactivation_moments(_mlp(fn, depth, width), x)
    assert not 0.25 <= default[-1] <= 4.0, default


@pytest.mark.parametrize("fn", ["tanh(x)", "selu(x)"])
def test_deep_cnn_preserves_second_moment(fn):
    """20 convolutions with dropout between them (the trace follows the activation through
    it). ReLU is left out here: with 32 channels its neutral (slope 1) map lets per-channel
    offsets random-walk, which no fixed init scale prevents."""
    depth, channels = 20, 32
    layers: list[nn.Module] = [nn.Conv1d(channels, channels, 3, padding=1)]
    for _ in range(depth - 1):
        layers += [ActivationFunction(fn), nn.Dropout(0.1),
                   nn.Conv1d(channels, channels, 3, padding=1)]
    model = nn.Sequential(*layers)
    x = torch.randn(32, channels, 32, generator=torch.Generator().manual_seed(12345))
    report = variance_preserving_init_(model, x[:1], seed=0)
    assert [layer.fed_by is not None for layer in report.layers] == [False] + [True] * (depth - 1)
    moments = _preactivation_moments(model.eval(), x)
    assert all(0.5 <= m <= 2.0 for m in moments), moments


def test_layer_std_rule_and_report():
    model = nn.Sequential(nn.Linear(30, 40), ActivationFunction("relu(x)"), nn.Linear(40, 50),
                          nn.LayerNorm(50), nn.Linear(50, 5))
    report = variance_preserving_init_(model, torch.zeros(1, 30), seed=0)
    assert [layer.fed_by for layer in report.layers] == [None, "1", None]
    expected = [1 / math.sqrt(30), math.sqrt(2 / 40), 1 / math.sqrt(50)]
    for layer, std in zip(report.layers, expected, strict=True):
        assert layer.std == pytest.approx(std, rel=1e-5)
    assert model[2].weight.std().item() == pytest.approx(expected[1], rel=0.05)
    assert all(torch.count_nonzero(m.bias) == 0 for m in (model[0], model[2], model[4]))
    assert not report.fallback and model.init_report is report


def test_fan_in_of_convolutions():
    assert fan_in(nn.Conv2d(8, 16, (3, 5))) == 8 * 15
    assert fan_in(nn.Conv1d(12, 12, 5, groups=12)) == 5
    with pytest.raises(TypeError, match="not a weight layer"):
        fan_in(nn.LayerNorm(4))


@pytest.mark.parametrize("fn, normalize", [("zero(x)", False), ("exp(exp(exp(x)))", False),
                                           ("zero(x)", True)])
def test_fallback_when_second_moment_unusable(fn, normalize):
    model = nn.Sequential(nn.Linear(10, 20), ActivationFunction(fn, normalize=normalize),
                          nn.Linear(20, 3))
    report = variance_preserving_init_(model, torch.zeros(1, 10), seed=0)
    assert report.fallback and report.layers[1].fallback and not report.layers[0].fallback
    assert report.layers[1].std == pytest.approx(1 / math.sqrt(20))


def test_weights_are_symmetric_about_zero():
    """W and -W are equally likely: pooled over seeds, the weights' mean and skewness are
    ~0 and the samples W and -W are indistinguishable (two-sample KS test)."""
    weights = []
    for seed in range(20):
        model = nn.Sequential(nn.Linear(64, 64), ActivationFunction("exp(x)"), nn.Linear(64, 64))
        variance_preserving_init_(model, torch.zeros(1, 64), seed=seed)
        weights.append(model[2].weight.flatten() / model.init_report.layers[1].std)
    w = torch.cat(weights).detach().double().numpy()
    assert abs(w.mean()) < 5 / math.sqrt(w.size)
    assert abs(stats.skew(w)) < 5 * math.sqrt(6 / w.size)
    assert stats.ks_2samp(w, -w).pvalue > 1e-3


def test_seeded_and_reproducible():
    def build(seed):
        model = nn.Sequential(nn.Linear(8, 8), ActivationFunction("tanh(x)"), nn.Linear(8, 2))
        variance_preserving_init_(model, torch.zeros(1, 8), seed=seed)
        return torch.cat([p.flatten() for p in model.parameters()])

    assert torch.equal(build(5), build(5))
    assert not torch.equal(build(5), build(6))


def test_trace_follows_dropout_and_skips_untagged_inputs():
    model = nn.Sequential(nn.Linear(4, 4), ActivationFunction("relu(x)"), nn.Dropout(0.5),
                          nn.Identity(), nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    assert trace_activation_inputs(model, torch.zeros(1, 4)) == {"0": None, "4": "1", "6": None}
    assert model.training  # mode restored after the trace


def test_init_needs_input_or_trace():
    with pytest.raises(ValueError, match="example_input"):
        variance_preserving_init_(nn.Linear(2, 2))
