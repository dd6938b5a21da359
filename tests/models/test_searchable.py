"""Searching your own model: torchvision networks and hand-written modules made searchable,
functional calls traced, in-place modules switched off, restriction, re-application, and the
factory as torchvision's ``activation_layer=``."""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
import torchvision
from torch import fx, nn
from torchvision.ops.misc import Conv2dNormActivation

import aquasurf_core
from aquasurf_core.models import (
    FunctionalSitesError,
    activation_factory,
    make_searchable,
    set_activation,
)
from aquasurf_core.models.searchable import ACTIVATION_MODULES
from aquasurf_core.space.activation import ActivationFunction
from aquasurf_core.space.names import InvalidFunctionName


def count_modules(model: nn.Module, cls) -> int:
    """Instances of ``cls`` reachable as named submodules, counted one by one."""
    count = 0
    for _, module in model.named_modules():
        if isinstance(module, cls):
            count += 1
    return count


class Functional(nn.Module):
    """Calls F.relu and torch.tanh in forward, no activation modules."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 6)
        self.b = nn.Linear(6, 3)

    def forward(self, x):
        return torch.tanh(self.b(F.relu(self.a(x))))


class Branchy(nn.Module):
    """Data-dependent control flow: does not trace."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.act = nn.ReLU()

    def forward(self, x):
        y = self.act(self.a(x))
        if y.sum() > 0:
            return F.gelu(y)
        return y


class BranchyModulesOnly(Branchy):
    def forward(self, x):
        y = self.act(self.a(x))
        return y if y.sum() > 0 else -y


def test_inplace_is_accepted_and_ignored():
    f = ActivationFunction("relu(x)", inplace=True)
    x = torch.tensor([-1.0, 2.0])
    y = f(x)
    assert torch.equal(y, torch.tensor([0.0, 2.0]))
    assert torch.equal(x, torch.tensor([-1.0, 2.0]))
    assert not hasattr(f, "inplace")


def test_set_function_swaps_in_place_and_validates_first():
    f = ActivationFunction("relu(x)", normalize=True)
    f.set_function("tanh(x)")
    assert f.name == "tanh(x)" and f.normalize and f.normalizable
    with pytest.raises(InvalidFunctionName):
        f.set_function("nope(x)")
    assert f.name == "tanh(x)"


def test_resnet18_every_relu_module_is_replaced():
    model = torchvision.models.resnet18(num_classes=10)
    relus = count_modules(model, nn.ReLU)
    expected_names = [n for n, m in model.named_modules() if isinstance(m, nn.ReLU)]
    out, sites = make_searchable(model, "swish(x)")
    assert out is model  # no functional sites: the same object
    assert relus == 9  # stem + one module per BasicBlock ...
    assert [s.name for s in sites] == expected_names
    assert {(s.kind, s.original) for s in sites} == {("module", "torch.nn.ReLU")}
    assert sum(s.calls for s in sites) == 17  # ... applied at 1 + 2 * 8 places
    assert count_modules(model, nn.ReLU) == 0
    assert count_modules(model, ActivationFunction) == 9
    assert all(m.name == "swish(x)" for m in model.modules() if isinstance(m, ActivationFunction))
    model(torch.randn(2, 3, 32, 32)).sum().backward()


def test_mobilenet_v3_small_inplace_sites_and_backward():
    model = torchvision.models.mobilenet_v3_small(num_classes=10)
    before = {cls: count_modules(model, cls) for cls in (nn.Hardswish, nn.ReLU, nn.Hardsigmoid)}
    assert all(before.values())
    out, sites = make_searchable(model, "max(relu(x),cosh(elu(x)))")
    replaced = [s for s in sites if s.kind == "module"]
    assert len(replaced) == sum(before.values())
    assert {s.original for s in replaced} == {"torch.nn.Hardswish", "torch.nn.ReLU",
                                                "torch.nn.Hardsigmoid"}
    inplace = [s for s in sites if s.kind == "inplace"]
    assert [s.original for s in inplace] == ["torch.nn.Dropout"]
    assert all(not getattr(m, "inplace", False) for m in out.modules())
    out(torch.randn(2, 3, 32, 32)).sum().backward()


def test_inplace_modules_left_out_by_types_are_switched_off():
    model = torchvision.models.mobilenet_v3_small(num_classes=10)
    relus = count_modules(model, nn.ReLU)
    inplace_relus = sum(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))
    assert inplace_relus > 0
    out, sites = make_searchable(model, "exp(x)", types=[nn.Hardswish, nn.Hardsigmoid])
    assert count_modules(out, nn.ReLU) == relus
    switched = [s for s in sites if s.kind == "inplace"]
    assert [s.original for s in switched].count("torch.nn.ReLU") == inplace_relus
    assert {s.original for s in switched} == {"torch.nn.ReLU", "torch.nn.Dropout"}
    out(torch.randn(2, 3, 32, 32)).sum().backward()


def test_functional_calls_are_traced_and_replaced():
    torch.manual_seed(0)
    model = Functional()
    x = torch.randn(5, 4)
    reference = model(x)
    out, sites = make_searchable(_copy_of(model), "swish(x)")
    assert isinstance(out, fx.GraphModule)
    assert [(s.name, s.original, s.kind, s.calls) for s in sites] == [
        ("relu", "torch.nn.functional.relu", "function", 1),
        ("tanh", "torch.tanh", "function", 1)]
    assert count_modules(out, ActivationFunction) == 2
    assert "functional.relu" not in out.code and "torch.tanh" not in out.code
    assert not torch.allclose(out(x), reference)
    out(x).sum().backward()
    # the site's own function where it was: the output is unchanged
    exact, _ = make_searchable(_copy_of(model), "relu(x)", types=[F.relu])
    torch.testing.assert_close(exact(x), reference)
    exact, _ = make_searchable(_copy_of(model), "tanh(x)", types=[torch.tanh])
    torch.testing.assert_close(exact(x), reference)
    # another function at one site changes it
    changed, _ = make_searchable(_copy_of(model), "tanh(x)", types=[F.relu])
    assert not torch.allclose(changed(x), reference)


def _copy_of(model: Functional) -> Functional:
    fresh = Functional()
    fresh.load_state_dict(model.state_dict())
    return fresh


def test_tanh_tanh_relu_relu_equal_the_original():
    torch.manual_seed(1)
    model = Functional()
    x = torch.randn(7, 4)
    reference = model(x)
    out, _ = make_searchable(_copy_of(model), "relu(x)", types=[F.relu])
    out, _ = make_searchable(out, "tanh(x)", types=[torch.tanh])
    torch.testing.assert_close(out(x), reference)
    set_activation(out, "swish(x)")
    assert not torch.allclose(out(x), reference)


def test_restriction_by_names():
    model = torchvision.models.resnet18(num_classes=10)
    _, sites = make_searchable(model, "swish(x)", names=["layer1.*", "relu"])
    replaced = [s.name for s in sites if s.kind == "module"]
    assert replaced == ["relu", "layer1.0.relu", "layer1.1.relu"]
    assert count_modules(model, nn.ReLU) == 9 - 3
    assert isinstance(model.layer2[0].relu, nn.ReLU)
    # the remaining (in-place) ReLUs were switched to out-of-place and reported
    assert [s.name for s in sites if s.kind == "inplace"] == [
        f"layer{i}.{j}.relu" for i in (2, 3, 4) for j in (0, 1)]
    assert not any(getattr(m, "inplace", False) for m in model.modules())


def test_restriction_by_types():
    model = torchvision.models.mobilenet_v3_small(num_classes=10)
    hardswish = count_modules(model, nn.Hardswish)
    _, sites = make_searchable(model, "swish(x)", types=[nn.Hardswish])
    assert [s.original for s in sites if s.kind == "module"] == ["torch.nn.Hardswish"] * hardswish
    assert count_modules(model, nn.Hardswish) == 0 and count_modules(model, nn.ReLU) > 0
    functional = Functional()
    _, sites = make_searchable(functional, "swish(x)", types=[torch.tanh])
    assert [s.original for s in sites] == ["torch.tanh"]


def test_untraceable_model_with_functional_calls_gives_clear_error():
    model = Branchy()
    with pytest.raises(FunctionalSitesError) as info:
        make_searchable(model, "swish(x)")
    message = str(info.value)
    assert "symbolic_trace failed" in message and "Branchy.forward" in message
    assert "F.gelu" in message and "functional=False" in message
    assert isinstance(model.act, nn.ReLU)  # nothing changed
    out, sites = make_searchable(model, "swish(x)", functional=False)
    assert out is model and [s.name for s in sites] == ["act"] and sites[0].calls is None


def test_untraceable_model_without_functional_calls_gets_its_modules_replaced():
    model = BranchyModulesOnly()
    out, sites = make_searchable(model, "swish(x)")
    assert out is model and [s.name for s in sites] == ["act"]
    with pytest.raises(FunctionalSitesError):
        make_searchable(BranchyModulesOnly(), "swish(x)", functional=True)


def test_set_activation_swaps_every_site():
    model = torchvision.models.resnet18(num_classes=10)
    make_searchable(model, "relu(x)")
    assert set_activation(model, "tanh(x)") == 9
    assert {m.name for m in model.modules() if isinstance(m, ActivationFunction)} == {"tanh(x)"}
    with pytest.raises(InvalidFunctionName):
        set_activation(model, "bogus(x)")
    with pytest.raises(ValueError, match="make_searchable"):
        set_activation(nn.Linear(2, 2), "relu(x)")


def test_bad_inputs():
    with pytest.raises(InvalidFunctionName):
        make_searchable(Functional(), "bogus(x)")
    with pytest.raises(TypeError):
        make_searchable(object(), "relu(x)")


def test_factory_as_torchvision_activation_layer():
    block = Conv2dNormActivation(3, 8, activation_layer=activation_factory("swish(x)"))
    acts = [m for m in block.modules() if isinstance(m, ActivationFunction)]
    assert len(acts) == 1 and acts[0].name == "swish(x)"
    block(torch.randn(2, 3, 8, 8)).sum().backward()
    factory = activation_factory("relu(x)")
    assert factory() is not factory(inplace=True)
    se = torchvision.ops.SqueezeExcitation(8, 4, activation=activation_factory("relu(x)"),
                                           scale_activation=activation_factory("sigmoid(x)"))
    assert count_modules(se, ActivationFunction) == 2


def test_every_default_module_class_exists_and_is_replaced():
    model = nn.Sequential(*[cls() for cls in ACTIVATION_MODULES])
    _, sites = make_searchable(model, "relu(x)")
    assert len([s for s in sites if s.kind == "module"]) == len(ACTIVATION_MODULES)


def test_top_level_exports():
    assert aquasurf_core.make_searchable is make_searchable
    assert aquasurf_core.set_activation is set_activation
    assert aquasurf_core.activation_factory is activation_factory


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is not installed")
def test_factory_as_timm_act_layer():
    from timm.layers import ConvNormAct

    block = ConvNormAct(3, 8, 3, act_layer=activation_factory("swish(x)"))
    assert count_modules(block, ActivationFunction) == 1
    block(torch.randn(2, 3, 8, 8)).sum().backward()


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)

    def forward(self, x):
        y = F.leaky_relu(self.a(x), 0.2, inplace=True)
        return F.sigmoid(y) + y.tanh() + F.gelu(y, approximate="tanh")


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Inner()

    def forward(self, x):
        return torch.relu(self.inner(x)).sigmoid()


def test_nested_calls_methods_and_extra_arguments():
    model = Outer()
    x = torch.randn(3, 4, requires_grad=True)
    out, sites = make_searchable(model, "relu(x)")
    assert [(s.name, s.original) for s in sites] == [
        ("inner.leaky_relu", "torch.nn.functional.leaky_relu"),
        ("inner.sigmoid", "Tensor.sigmoid"),  # F.sigmoid calls the method
        ("inner.tanh", "Tensor.tanh"),
        ("inner.gelu", "torch.nn.functional.gelu"),
        ("relu", "torch.relu"),
        ("sigmoid_1", "Tensor.sigmoid")]  # fx node names are unique in the whole graph
    y = out(x)
    a = torch.relu(model.inner.a(x))
    torch.testing.assert_close(y, torch.relu(3 * a))
    y.sum().backward()
    assert set_activation(out, "tanh(x)") == 6
    _, only = make_searchable(Outer(), "relu(x)", names=["inner.*"], types=["tanh", F.gelu])
    assert [s.name for s in only] == ["inner.tanh", "inner.gelu"]
    _, only = make_searchable(Outer(), "relu(x)", types=[F.sigmoid])
    assert [s.name for s in only] == ["inner.sigmoid", "sigmoid_1"]


@pytest.mark.parametrize("activation, original", [("relu", "torch.nn.functional.relu"),
                                                  ("gelu", "torch.nn.functional.gelu")])
def test_transformer_layers_keep_their_activation_as_an_attribute(activation, original):
    """nn.TransformerEncoderLayer stores F.relu / F.gelu as ``self.activation`` and calls it in
    its own forward, which tracing does not enter: the attribute is the site. With the same
    function the outputs are unchanged, and in eval mode without gradients (the layer's fast
    path) the searched function is still what runs."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True,
                                       activation=activation)
    encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    x = torch.randn(3, 5, 8)
    before = encoder(x)
    reference = copy.deepcopy(encoder)  # feed-forward branch switched off by its weights
    with torch.no_grad():
        for m in reference.layers:
            m.linear1.weight.zero_()
            m.linear1.bias.fill_(-1e4)  # relu(-1e4) = gelu(-1e4) = 0
    model, sites = make_searchable(encoder, f"{activation}(x)")
    assert [(s.name, s.kind, s.original) for s in sites] == [
        (f"layers.{i}.activation", "attribute", original) for i in range(2)]
    assert all(isinstance(m.activation, ActivationFunction) for m in model.layers)
    torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-6)
    set_activation(model, "zero(x)")  # the feed-forward branch now adds nothing
    model.eval()
    with torch.no_grad():
        zeroed = model(x)
        expected = reference.eval()(x)
    torch.testing.assert_close(zeroed, expected, rtol=1e-5, atol=1e-6)
    assert make_searchable(encoder, "relu(x)", types=[nn.ReLU])[1] == []  # restricted away
