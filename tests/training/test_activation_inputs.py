"""Inputs of the activation sites (Figure 9): against the values computed by hand on a tiny
network, BatchNorm's two modes, and the flat share against the functions' known slopes."""

import numpy as np
import pytest
import torch
from torch import nn

from aquasurf_core.space.activation import ActivationFunction
from aquasurf_core.training.activation_inputs import activation_inputs, flat_share


def tiny_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), ActivationFunction("tanh(x)"), nn.BatchNorm1d(4),
                         ActivationFunction("relu(x)"), nn.Linear(4, 2))


def test_inputs_are_what_reaches_each_site():
    net, x = tiny_net(), torch.randn(8, 3)
    with torch.no_grad():
        net[2].running_mean.fill_(0.5)
        net[2].running_var.fill_(4.0)
    got = activation_inputs(net, x)
    assert list(got) == ["1", "3"]
    first = net[0](x).detach()
    np.testing.assert_allclose(got["1"], first.reshape(-1).numpy(), rtol=1e-6)
    # eval mode: the running statistics normalise
    expected = (torch.tanh(first) - 0.5) / np.sqrt(4.0 + net[2].eps)
    np.testing.assert_allclose(got["3"], expected.reshape(-1).numpy(), rtol=1e-5, atol=1e-6)
    assert net.training  # its mode is back
    # training mode: batch statistics, on a copy (the running statistics stay as they were)
    got = activation_inputs(net, x, train_mode=True)
    t = torch.tanh(first)
    expected = (t - t.mean(0)) / torch.sqrt(t.var(0, unbiased=False) + net[2].eps)
    np.testing.assert_allclose(got["3"], expected.reshape(-1).numpy(), rtol=1e-4, atol=1e-5)
    assert net[2].running_mean.tolist() == [0.5] * 4


def test_no_site_is_a_clear_error():
    with pytest.raises(ValueError, match="Sequential has no activation site"):
        activation_inputs(nn.Sequential(nn.Linear(2, 2)), torch.zeros(1, 2))


def test_flat_share_follows_the_slope():
    x = np.linspace(-5, 5, 10001, dtype=np.float32)  # the grid avoids 0 exactly
    assert flat_share("relu(x)", x) == pytest.approx(0.5, abs=1e-3)
    # tanh'(x) = 1 - tanh(x)^2 < 0.05 where |x| > artanh(sqrt(0.95)) = 2.1783
    assert flat_share("tanh(x)", x) == pytest.approx(2 * (5 - np.arctanh(np.sqrt(0.95))) / 10,
                                                     abs=1e-3)
    assert flat_share("x", x) == 0.0
    assert np.isnan(flat_share("tanh(x)", np.array([np.nan], dtype=np.float32)))
