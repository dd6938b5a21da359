"""Architectures: shapes, parameter counts against the papers, supported layer kinds,
activation sites, seeding and input validation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from aquasurf_core.models import ARCHITECTURES, build_model
from aquasurf_core.space.activation import ActivationFunction
from aquasurf_core.space.names import InvalidFunctionName

SMALL = [name for name, spec in ARCHITECTURES.items() if spec.family == "small"]
FULL = [name for name, spec in ARCHITECTURES.items() if spec.family == "full"]
FUNCTIONS = ["relu(x)", "swish(x)", "max(relu(x),cosh(elu(x)))"]
#: Functions that keep a network finite at init; cosh(elu(x)) grows like e^x and overflows
#: on the heavy tails of deep networks, so for it only shapes are checked.
FINITE = {"relu(x)", "swish(x)"}
NAN_FUNCTION = "log_sigmoid(negative(exp(exp(x))))"  # -inf / NaN for moderate inputs

#: Input size used for the full-size models in forward tests (CPU speed); the architectures
#: accept any size their strides allow (global pooling before the head).
FORWARD_SHAPE = {"all-cnn-c": (3, 32, 32), "resnet-56": (3, 32, 32),
                 "preact-resnet-56": (3, 32, 32),
                 "mobilevitv2-0.5": (3, 64, 64), "resnet-50": (3, 64, 64)}
#: Activation modules per architecture, counted by hand from the published layouts.
SITES = {
    "cnn": 8, "digits-cnn": 8, "all-cnn-c": 8,  # 8 hidden convolutions
    "resnet": 2 * 3 + 1, "preact-resnet-56": 2 * 27 + 1,  # two per basic block + final
    "resnet-56": 1 + (3 * 18 - 1) + 1,       # stem, three per bottleneck (two in the first), final
    "vit": 5,                                 # stem, 2 in MV2, local, MLP
    "coatnet": 3 + 2,                         # stem, 2 in MBConv, 2 transformer MLPs
    "mobilevitv2-0.5": 1 + 2 * 6 + 3 + (2 + 4 + 3),  # stem, 6 MV2, 3 local, 9 FFN
    "resnet-50": 1 + 16,                      # stem + one (3-site) module per bottleneck
}


def _param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def resnet50_relu() -> nn.Module:
    return build_model("resnet-50", "relu(x)", seed=0)  # ~2 s: built once per module


@pytest.mark.parametrize("arch", SMALL)
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_small_models_forward_backward(arch, fn):
    model = build_model(arch, fn, seed=1)
    x = torch.randn(16, *ARCHITECTURES[arch].input_shape,
                    generator=torch.Generator().manual_seed(0))
    logits = model(x)
    assert logits.shape == (16, 10)
    torch.nn.functional.cross_entropy(logits, torch.arange(16) % 10).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert fn not in FINITE or torch.isfinite(p.grad).all(), name
    assert fn not in FINITE or torch.isfinite(logits).all()
    # The 1-D models accept (N, 40) as (N, 1, 40)
    if len(ARCHITECTURES[arch].input_shape) == 2:
        model.eval()
        torch.testing.assert_close(model(x[:, 0]), model(x), rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_nan_producing_function_still_builds(arch):
    if arch == "resnet-50":
        pytest.skip("slow to build; its sites are checked in test_resnet50_layer_kinds_and_sites")
    model = build_model(arch, NAN_FUNCTION)
    assert model.init_report.fallback  # E[f(Z)^2] is infinite
    x = torch.randn(2, *FORWARD_SHAPE.get(arch, ARCHITECTURES[arch].input_shape))
    assert model.eval()(x).shape == (2, ARCHITECTURES[arch].num_classes)


@pytest.mark.parametrize("arch", [a for a in FULL if a != "resnet-50"])
@pytest.mark.parametrize("fn", ["relu(x)", "max(relu(x),cosh(elu(x)))"])
def test_full_models_forward(arch, fn):
    model = build_model(arch, fn).eval()
    with torch.no_grad():
        out = model(torch.randn(2, *FORWARD_SHAPE[arch]))
    assert out.shape == (2, 10)
    assert fn not in FINITE or torch.isfinite(out).all()


def test_resnet50_forward_and_classes(resnet50_relu):
    with torch.no_grad():
        out = resnet50_relu.eval()(torch.randn(2, *FORWARD_SHAPE["resnet-50"]))
    assert out.shape == (2, 1000) and torch.isfinite(out).all()
    assert not any(isinstance(m, nn.ReLU) for m in resnet50_relu.modules())


def test_mobilevit_native_resolution_and_odd_map():
    """160x160 gives a 5x5 map before the last block, which is resized to 6x6 (patch 2)."""
    model = build_model("mobilevitv2-0.5", "swish(x)").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 160, 160)).shape == (1, 10)


def test_num_classes_override():
    assert build_model("all-cnn-c", "relu(x)", num_classes=100)(torch.randn(2, 3, 32, 32)).shape \
        == (2, 100)
    assert build_model("cnn", "relu(x)", num_classes=3)(torch.randn(2, 1, 40)).shape == (2, 3)


def _conv_params(cin: int, cout: int, k: int, bias: bool = True) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def test_all_cnn_c_parameter_count():
    """Springenberg et al. 2015, Table 2 (All-CNN-C): 1.37M parameters for CIFAR-10."""
    expected = (_conv_params(3, 96, 3) + 2 * _conv_params(96, 96, 3) + _conv_params(96, 192, 3)
                + 3 * _conv_params(192, 192, 3) + _conv_params(192, 192, 1)
                + _conv_params(192, 10, 1))
    n = _param_count(build_model("all-cnn-c", "relu(x)"))
    assert n == expected
    assert abs(n - 1.37e6) / 1.37e6 < 0.01


def test_preact_resnet56_parameter_count():
    """He et al. 2016 (CIFAR ResNet-56): 0.85M parameters."""
    convs = _conv_params(3, 16, 3, False)
    bn = 0
    cin = 16
    for width in (16, 32, 64):
        for _ in range(9):
            convs += _conv_params(cin, width, 3, False) + _conv_params(width, width, 3, False)
            convs += _conv_params(cin, width, 1, False) if cin != width else 0
            bn += 2 * (cin + width)
            cin = width
    expected = convs + bn + 2 * 64 + (64 * 10 + 10)
    n = _param_count(build_model("preact-resnet-56", "relu(x)"))
    assert n == expected
    assert abs(n - 0.85e6) / 0.85e6 < 0.02


def _fim_feature_dim(model: nn.Module) -> int:
    """sum_l floor(|theta_l| / 100) over weight layers, weights and biases (paper App. D)."""
    return sum(sum(p.numel() for p in m.parameters(recurse=False)) // 100
               for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)))


def test_mobilevitv2_parameter_count_and_fim_dimension():
    """Mehta & Rastegari 2022: MobileViTv2-0.5 has 1.4M parameters (ImageNet head); the
    AQuaSurF appendix's FIM feature size for it (10 classes) is 11,013."""
    imagenet = _param_count(build_model("mobilevitv2-0.5", "relu(x)", num_classes=1000,
                                        init="default"))
    assert abs(imagenet - 1.4e6) / 1.4e6 < 0.05
    model = build_model("mobilevitv2-0.5", "relu(x)", init="default")
    assert _fim_feature_dim(model) == 11_013
    assert _fim_feature_dim(build_model("all-cnn-c", "relu(x)", init="default")) == 13_692


def test_resnet56_matches_paper_fim_dimension_and_keras_layout():
    """The paper's ResNet-56 (App. D: FIM feature size 16,500) is the Keras example's ResNet v2
    at depth 56: stem conv3 16; per stage 6 bottlenecks conv1(m) conv3(m) conv1(c) with
    (m, c) = (16, 64), (64, 128), (128, 256); a 1x1 projection on each stage's first block;
    biased convolutions; BN before every activation; dense head."""
    model = build_model("resnet-56", "relu(x)", init="default")
    weights = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    # Weight-layer shapes listed the slow way, in module order.
    expected = [(3, 16, 3)]
    cin = 16
    for mid, out in ((16, 64), (64, 128), (128, 256)):
        for j in range(6):
            expected += [(cin, mid, 1), (mid, mid, 3), (mid, out, 1)]
            expected += [(cin, out, 1)] if j == 0 else []
            cin = out
    got = [(m.in_channels, m.out_channels, m.kernel_size[0]) for m in weights[:-1]]
    assert got == expected
    assert all(m.bias is not None for m in weights)
    head = weights[-1]
    assert (head.in_features, head.out_features) == (256, 10)
    assert len(expected) - 3 + 1 == 56  # depth: all but the three projections, plus the head
    sizes = [_conv_params(*shape) for shape in expected] + [256 * 10 + 10]
    assert _fim_feature_dim(model) == sum(n // 100 for n in sizes) == 16_500
    # BatchNorm (2 per channel): stem 16; per block its input (not in block 0) and 2 x m;
    # final 256.
    norms, cin = 16 + 256, 16
    for mid, out in ((16, 64), (64, 128), (128, 256)):
        for _ in range(6):
            norms += (0 if cin == 16 else cin) + 2 * mid
            cin = out
    assert _param_count(model) == sum(sizes) + 2 * norms
    # Stride-2 downsampling in the first 1x1 convolution and the projection of stages 1, 2.
    strided = [name for name, m in model.named_modules()
               if isinstance(m, nn.Conv2d) and m.stride != (1, 1)]
    assert strided == ["blocks.6.conv1", "blocks.6.shortcut", "blocks.12.conv1",
                       "blocks.12.shortcut"]


def test_resnet56_wiring_and_bad_depth():
    """The first block takes the stem's activation directly (no BN + f of its own); every
    projection reads the raw block input, every other block input is pre-activated."""
    from aquasurf_core.models.resnet_v2 import ResNetV2

    fed_by = {layer.name: layer.fed_by
              for layer in build_model("resnet-56", "swish(x)").init_report.layers}
    assert fed_by["blocks.0.conv1"] == fed_by["blocks.0.shortcut"] == "stem.2"
    assert fed_by["blocks.6.shortcut"] is None and fed_by["blocks.12.shortcut"] is None
    for i in range(1, 18):
        assert fed_by[f"blocks.{i}.conv1"] == f"blocks.{i}.act1"
    assert fed_by["fc"] is None  # global average pooling in between (init rule: 1 / fan_in)
    with pytest.raises(ValueError, match="depth must be 9 n \\+ 2"):
        ResNetV2(lambda: nn.Identity(), in_channels=3, num_classes=10, depth=50)


def test_resnet50_parameter_count(resnet50_relu):
    assert _param_count(resnet50_relu) == 25_557_032  # torchvision's documented count


@pytest.mark.parametrize("arch, count", [("cnn", 13_898), ("resnet", 7_378), ("vit", 12_026),
                                         ("coatnet", 21_786)])
def test_small_models_are_small(arch, count):
    # the counts documented in aquasurf_core/models/__init__.py (sized for the benchmark builds)
    assert arch in SMALL
    assert _param_count(build_model(arch, "relu(x)")) == count


def _check_layers_and_sites(model: nn.Module, fn: str, normalize: bool) -> int:
    sites = 0
    for name, module in model.named_modules():
        assert not isinstance(module, nn.MultiheadAttention), name
        # No stock nonlinearity modules anywhere (ReLU, GELU, SiLU, Tanh, ...).
        assert type(module).__module__ != "torch.nn.modules.activation", name
        if isinstance(module, ActivationFunction):
            assert module.name == fn and module.normalize == normalize, name
            sites += 1
            continue
        own = list(module.parameters(recurse=False))
        if not own:
            continue
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            assert module.groups in (1, module.in_channels), name
            if module.groups != 1:
                assert module.in_channels == module.out_channels, name
        else:
            assert isinstance(module, (nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm,
                                       nn.GroupNorm)), f"{name}: {type(module).__name__}"
    return sites


@pytest.mark.parametrize("arch", [a for a in ARCHITECTURES if a != "resnet-50"])
def test_layer_kinds_and_activation_sites(arch):
    fn = "max(relu(x),cosh(elu(x)))"
    model = build_model(arch, fn, normalize=True)
    assert _check_layers_and_sites(model, fn, True) == SITES[arch]
    # Every site is used in a forward pass.
    called = set()
    hooks = [m.register_forward_hook(lambda mod, i, o: called.add(id(mod)))
             for m in model.modules() if isinstance(m, ActivationFunction)]
    with torch.no_grad():
        model.eval()(torch.randn(1, *FORWARD_SHAPE.get(arch, ARCHITECTURES[arch].input_shape)))
    for h in hooks:
        h.remove()
    assert len(called) == SITES[arch]


def test_resnet50_layer_kinds_and_sites(resnet50_relu):
    assert _check_layers_and_sites(resnet50_relu, "relu(x)", False) == SITES["resnet-50"]


@pytest.mark.parametrize("arch", SMALL + ["resnet-56"])
@pytest.mark.parametrize("init", ["variance", "default"])
def test_seeds_are_deterministic(arch, init):
    state = torch.random.get_rng_state()
    a = build_model(arch, "swish(x)", seed=3, init=init).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    b = build_model(arch, "swish(x)", seed=3, init=init).state_dict()
    c = build_model(arch, "swish(x)", seed=4, init=init).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_variance_init_differs_from_default_and_is_he_for_relu():
    default = build_model("cnn", "relu(x)", init="default")
    model = build_model("cnn", "relu(x)")
    conv = model.features[2]  # fed by the first ReLU
    assert not torch.equal(conv.weight, default.features[2].weight)
    fan_in = conv.in_channels * conv.kernel_size[0]
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)
    assert torch.count_nonzero(conv.bias) == 0


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="unknown architecture 'lenet'"):
        build_model("lenet", "relu(x)")
    with pytest.raises(InvalidFunctionName, match="unknown operator"):
        build_model("cnn", "frobnicate(x)")
    with pytest.raises(ValueError, match="unknown init"):
        build_model("cnn", "relu(x)", init="xavier")
    with pytest.raises(ValueError, match="num_classes"):
        build_model("cnn", "relu(x)", num_classes=0)
    with pytest.raises(ValueError, match="seed"):
        build_model("cnn", "relu(x)", seed=1.5)
