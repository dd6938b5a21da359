"""K-FAC factors and eigenvalues against ground truth computed the slow obvious way.

Ground truth: per-example gradients from separate forward/backward passes of single examples,
explicit patches read from the padded input one position at a time, explicit Fisher blocks
``vec(DW) vec(DW)^T`` and ``eigvalsh(torch.kron(Omega, Gamma))``. Models are float64 so that
agreement is checked to ~1e-10, not to float32 round-off.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from aquasurf_core.features.fisher import (
    UnsupportedLayerError,
    kfac_eigenvalues,
    kfac_factors,
    layer_eigenvalues,
    sample_labels,
)
from aquasurf_core.space.activation import ActivationFunction


@pytest.fixture(autouse=True)
def _float64_default():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _wbar_vec(grad_w: torch.Tensor, grad_b: torch.Tensor | None) -> torch.Tensor:
    """``vec(DW_bar)`` with the bias column prepended, columns stacked (Eq. 10 order)."""
    w = grad_w.reshape(grad_w.shape[0], -1)
    if grad_b is not None:
        w = torch.cat([grad_b.reshape(-1, 1), w], dim=1)
    return w.T.reshape(-1)


def _example_grad(model, layer, x, y):
    """Gradient of one example's cross-entropy w.r.t. ``layer``'s (weight, bias)."""
    loss = F.cross_entropy(model(x), y, reduction="sum")
    params = [layer.weight] + ([layer.bias] if layer.bias is not None else [])
    grads = torch.autograd.grad(loss, params)
    return _wbar_vec(grads[0], grads[1] if len(grads) > 1 else None)


def _assert_exact_block(model, x, y, layer_index=0):
    """One example at one position: Omega (x) Gamma == vec(DW)vec(DW)^T, and the eigenvalues
    from pairwise log-sums equal those of the explicit block."""
    result = kfac_factors(model, x, y)
    f = result.layers[layer_index]
    layer = dict(model.named_modules())[f.name]
    v = _example_grad(model, layer, x, y)
    block = torch.outer(v, v)
    kron = torch.kron(f.omega, f.gamma)
    assert kron.shape == (f.num_params, f.num_params)
    torch.testing.assert_close(kron, block, rtol=1e-10, atol=1e-12)
    ours = torch.sort(layer_eigenvalues(f, log_scale=False)).values
    truth = torch.linalg.eigvalsh(block)
    scale = truth.abs().max()
    torch.testing.assert_close(ours / scale, truth / scale, rtol=0, atol=1e-10)
    return f


def _one_hidden(first: nn.Module, width: int, classes: int = 4) -> nn.Sequential:
    return nn.Sequential(first, nn.Tanh(), nn.Flatten(), nn.LazyLinear(classes))


def _init(model, x):
    torch.manual_seed(1)
    model(x)  # materialise lazy layers
    for p in model.parameters():
        nn.init.normal_(p, 0.0, 0.7)
    return model


# --------------------------------------------------------------------------- exact blocks


@pytest.mark.parametrize("bias", [True, False])
def test_linear_one_example_is_exact(bias):
    torch.manual_seed(0)
    x = torch.randn(1, 5)
    model = _init(nn.Sequential(nn.Linear(5, 3, bias=bias), nn.Tanh(), nn.Linear(3, 4)), x)
    y = torch.tensor([2])
    f0 = _assert_exact_block(model, x, y, 0)
    assert (f0.omega_dim, f0.gamma_dim, f0.num_params) == (5 + bias, 3, 15 + 3 * bias)
    f1 = _assert_exact_block(model, x, y, 1)
    assert (f1.omega_dim, f1.gamma_dim) == (4, 4)


def test_linear_leading_dims_of_one_is_exact():
    torch.manual_seed(0)
    x = torch.randn(1, 1, 1, 5)
    model = _init(nn.Sequential(nn.Linear(5, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3, 4)), x)
    _assert_exact_block(model, x, torch.tensor([1]), 0)


@pytest.mark.parametrize(
    "conv_kwargs,size",
    [
        (dict(kernel_size=3, stride=2, padding=0), 3),
        (dict(kernel_size=3, stride=1, padding="same"), 1),
        (dict(kernel_size=(2, 3), stride=1, padding="same", bias=False), 1),
        (dict(kernel_size=3, dilation=2, padding=0), 5),
        (dict(kernel_size=3, stride=2, padding=1, bias=False), 2),
        (dict(kernel_size=3, stride=2, padding=1, padding_mode="reflect"), 2),
    ],
)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_conv2d_one_position_is_exact(conv_kwargs, size):
    torch.manual_seed(0)
    x = torch.randn(1, 2, size, size)
    model = _init(_one_hidden(nn.Conv2d(2, 3, **conv_kwargs), 3), x)
    assert model[0](x).shape[-2:] == (1, 1)
    f = _assert_exact_block(model, x, torch.tensor([3]))
    assert f.kind == "conv" and f.rows == 1


@pytest.mark.parametrize(
    "conv_kwargs,size",
    [
        (dict(kernel_size=3, stride=2, padding=0), 3),
        (dict(kernel_size=4, padding="same", bias=False), 1),
        (dict(kernel_size=2, dilation=3, padding=0), 4),
    ],
)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_conv1d_one_position_is_exact(conv_kwargs, size):
    torch.manual_seed(0)
    x = torch.randn(1, 2, size)
    model = _init(_one_hidden(nn.Conv1d(2, 3, **conv_kwargs), 3), x)
    assert model[0](x).shape[-1] == 1
    _assert_exact_block(model, x, torch.tensor([0]))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dims", [1, 2])
def test_depthwise_one_position_same_patch_is_exact(bias, dims):
    """Depthwise: exact when every channel sees the same input patch (module docstring)."""
    torch.manual_seed(0)
    conv = (nn.Conv1d if dims == 1 else nn.Conv2d)(3, 3, 3, groups=3, bias=bias)
    x = torch.randn((1, 1) + (3,) * dims).expand((1, 3) + (3,) * dims).contiguous()
    model = _init(_one_hidden(conv, 3), x)
    f = _assert_exact_block(model, x, torch.tensor([1]))
    delta = 3**dims
    assert f.kind == "depthwise"
    assert (f.omega_dim, f.gamma_dim, f.num_params) == (delta + bias, 3, 3 * (delta + bias))


# --------------------------------------------------------------------------- brute-force factors


def _manual_pad(x, conv):
    """Padding as the convolution applies it, from its public attributes."""
    dims = x.dim() - 2
    pads = []
    for i in reversed(range(dims)):
        k, d = conv.kernel_size[i], conv.dilation[i]
        if conv.padding == "same":
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
        elif conv.padding == "valid":
            pads += [0, 0]
        else:
            pads += [conv.padding[i]] * 2
    mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
    return F.pad(x, pads, mode=mode)


def _patches(x1, conv, out_shape):
    """Expanded input of ONE example, one row per output position, built by indexing."""
    xp = _manual_pad(x1, conv)[0]  # (C, *spatial)
    rows = []
    for pos in itertools.product(*[range(n) for n in out_shape]):
        row = []
        for c in range(xp.shape[0]):
            for off in itertools.product(*[range(k) for k in conv.kernel_size]):
                idx = tuple(p * s + o * d for p, s, o, d in
                            zip(pos, conv.stride, off, conv.dilation, strict=True))
                row.append(xp[(c,) + idx])
        rows.append(torch.stack(row))
    return torch.stack(rows)


def _brute_factors(model, layer, x, y, depthwise=False):
    """Omega = 1/M sum_m sum_t a_bar a_bar^T (per channel for depthwise, channel-averaged),
    Gamma = 1/(M|T|) sum_m sum_t g g^T with g from single-example backward passes."""
    m = x.shape[0]
    omega = gamma = 0.0
    rows = 0
    captured: dict = {}

    def keep(mod, args, out):
        out.retain_grad()
        captured.update(inp=args[0], out=out)

    handle = layer.register_forward_hook(keep)
    for i in range(m):
        loss = F.cross_entropy(model(x[i:i + 1]), y[i:i + 1], reduction="sum")
        loss.backward()
        model.zero_grad()
        g = captured["out"].grad[0]  # (I, *spatial) or (..., I)
        if isinstance(layer, nn.Linear):
            p = captured["inp"][0].reshape(-1, layer.in_features)
            gm = g.reshape(-1, layer.out_features)
        else:
            p = _patches(captured["inp"].detach(), layer, g.shape[1:])
            gm = g.reshape(g.shape[0], -1).T
        if depthwise:  # rows (channel, position), columns the offsets
            c = layer.in_channels
            p = p.reshape(p.shape[0], c, -1).transpose(0, 1).reshape(-1, p.shape[1] // c)
        if layer.bias is not None:
            p = torch.cat([torch.ones(p.shape[0], 1), p], dim=1)
        omega = omega + p.T @ p
        gamma = gamma + gm.T @ gm
        rows += gm.shape[0]
    handle.remove()
    denom = m * (layer.in_channels if depthwise else 1)
    return omega / denom, gamma / rows


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), (2, 5, 6)),
        (lambda: nn.Conv2d(2, 3, (3, 2), padding="same", dilation=(1, 2), bias=False), (2, 4, 5)),
        (lambda: nn.Conv2d(2, 3, 3, padding=2, dilation=2, padding_mode="circular"), (2, 4, 4)),
        (lambda: nn.Conv1d(2, 3, 3, stride=2, padding=1), (2, 7)),
        (lambda: nn.Conv1d(2, 3, 4, padding="same"), (2, 6)),
        (lambda: nn.Conv2d(3, 3, 3, padding=1, groups=3), (3, 4, 4)),
        (lambda: nn.Conv1d(3, 3, 3, stride=2, groups=3, bias=False), (3, 7)),
        # depthwise: strides, dilations, padding modes, a non-square kernel (depthwise_gram)
        (lambda: nn.Conv2d(3, 3, 3, stride=2, padding=1, groups=3), (3, 6, 5)),
        (lambda: nn.Conv2d(2, 2, (3, 2), stride=(1, 2), dilation=(2, 1), padding=(2, 1),
                           padding_mode="reflect", groups=2), (2, 5, 6)),
        (lambda: nn.Conv2d(2, 2, 3, padding="same", padding_mode="circular", groups=2,
                           bias=False), (2, 4, 4)),
        (lambda: nn.Conv1d(2, 2, 3, dilation=2, padding=1, padding_mode="replicate", groups=2),
         (2, 8)),
        (lambda: nn.Conv2d(2, 3, 1, stride=2), (2, 5, 4)),  # pointwise fast path
        (lambda: nn.Conv1d(2, 3, 1, bias=False), (2, 4)),
        # depthwise, stride 1 (the two-axis shift decomposition): zero padding with dilation,
        # an even kernel's asymmetric 'same' padding, 1-D
        (lambda: nn.Conv2d(3, 3, (5, 3), padding=(4, 1), dilation=(2, 1), groups=3), (3, 7, 6)),
        (lambda: nn.Conv2d(2, 2, 4, padding="same", groups=2), (2, 5, 6)),
        (lambda: nn.Conv1d(2, 2, 5, padding=2, groups=2, bias=False), (2, 9)),
        # strided (expanded_input): stride 3 with padding, dilation, disjoint patches
        (lambda: nn.Conv2d(2, 2, 3, stride=3, padding=2, groups=2), (2, 7, 8)),
        (lambda: nn.Conv2d(2, 3, 3, stride=2, padding=2, dilation=2), (2, 7, 6)),
        (lambda: nn.Conv2d(2, 3, 4, stride=4), (2, 8, 9)),  # a ViT's patch embedding
        (lambda: nn.Conv1d(2, 3, 3, stride=3, bias=False), (2, 10)),
        (lambda: nn.Conv2d(2, 2, 2, stride=2, groups=2), (2, 5, 4)),
    ],
)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_conv_factors_match_brute_force(make, shape):
    torch.manual_seed(0)
    x = torch.randn((3,) + shape)
    y = torch.tensor([0, 3, 1])
    model = _init(_one_hidden(make(), 3), x)
    result = kfac_factors(model, x, y)
    f = result.layers[0]
    omega, gamma = _brute_factors(model, model[0], x, y, depthwise=f.kind == "depthwise")
    torch.testing.assert_close(f.omega, omega, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(f.gamma, gamma, rtol=1e-10, atol=1e-14)
    assert f.positions == model[0](x).shape[2:].numel()


def test_linear_leading_dims_match_brute_force():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 2, 5)  # (M, positions..., features)
    y = torch.tensor([1, 0, 2])
    model = _init(nn.Sequential(nn.Linear(5, 3), nn.Tanh(), nn.Flatten(), nn.Linear(24, 4)), x)
    f0, f1 = kfac_factors(model, x, y).layers
    omega, gamma = _brute_factors(model, model[0], x, y)
    torch.testing.assert_close(f0.omega, omega, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(f0.gamma, gamma, rtol=1e-10, atol=1e-14)
    assert (f0.rows, f0.positions) == (24, 8.0)
    omega, gamma = _brute_factors(model, model[3], x, y)
    torch.testing.assert_close(f1.omega, omega, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(f1.gamma, gamma, rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------- eigenvalues


def test_pairwise_eigenvalues_equal_kron_eigenvalues():
    torch.manual_seed(0)
    x = torch.randn(6, 2, 5, 5)
    y = torch.randint(0, 4, (6,))
    model = _init(nn.Sequential(nn.Conv2d(2, 3, 3, stride=2), nn.ELU(), nn.Conv2d(3, 3, 2),
                                nn.Flatten(), nn.Linear(3, 4)), x)
    result = kfac_factors(model, x, y)
    logs = kfac_eigenvalues(model, x, y)
    plain = kfac_eigenvalues(model, x, y, log_scale=False)
    assert [e.numel() for e in logs] == [f.num_params for f in result.layers] == [57, 39, 16]
    for f, lg, pl in zip(result.layers, logs, plain, strict=True):
        truth = torch.linalg.eigvalsh(torch.kron(f.omega, f.gamma))
        scale = truth.max()
        torch.testing.assert_close(torch.sort(pl).values / scale, truth / scale,
                                   rtol=0, atol=1e-12)
        torch.testing.assert_close(torch.exp(lg), pl, rtol=1e-12, atol=0)
        big = truth > 1e-8 * scale  # well above round-off: relative agreement
        torch.testing.assert_close(torch.sort(torch.exp(lg)).values[big], truth[big],
                                   rtol=1e-8, atol=0)
    # the last layer's Gamma is singular (softmax gradients sum to zero): exact zeros, log -inf
    last = logs[-1]
    assert torch.isneginf(last).sum() >= 4
    assert not torch.isnan(last).any()


def test_official_convention_scaling():
    torch.manual_seed(0)
    x = torch.randn(5, 3, 6)
    y = torch.randint(0, 4, (5,))
    model = _init(nn.Sequential(nn.Conv1d(3, 3, 3, padding=1), nn.Tanh(),
                                *_one_hidden(nn.Conv1d(3, 3, 3, groups=3), 3)), x)
    pe = kfac_factors(model, x, y, convention="per_example").layers
    off = kfac_factors(model, x, y, convention="official").layers
    for a, b in zip(pe, off, strict=True):
        j = 3 if a.kind == "depthwise" else 1
        torch.testing.assert_close(b.omega, a.omega * j, rtol=1e-12, atol=0)
        torch.testing.assert_close(b.gamma, a.gamma / 25, rtol=1e-10, atol=1e-16)


def test_mc_fisher_uses_sampled_labels_and_is_seeded():
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    model = _init(nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 4)), x)
    a = kfac_factors(model, x, fisher="mc", seed=3)
    b = kfac_factors(model, x, fisher="mc", seed=3)
    c = kfac_factors(model, x, fisher="mc", seed=4)
    assert torch.equal(a.layers[1].gamma, b.layers[1].gamma)
    assert not torch.equal(a.layers[1].gamma, c.layers[1].gamma)
    labels = sample_labels(model(x), torch.Generator().manual_seed(3))
    emp = kfac_factors(model, x, labels)
    torch.testing.assert_close(emp.layers[1].gamma, a.layers[1].gamma, rtol=1e-12, atol=0)
    torch.testing.assert_close(emp.layers[0].gamma, a.layers[0].gamma, rtol=1e-12, atol=0)


def test_mc_labels_follow_predictive_distribution():
    logits = torch.tensor([[0.0, 2.0, -1.0]]).expand(20000, 3)
    y = sample_labels(logits, torch.Generator().manual_seed(0))
    freq = torch.bincount(y, minlength=3).double() / y.numel()
    torch.testing.assert_close(freq, torch.softmax(logits[0], 0), rtol=0, atol=0.015)


@pytest.mark.parametrize("conv", [False, True])
def test_negated_activation_with_negated_next_weights_has_identical_spectrum(conv):
    """(f, W) and (-f, -W) (W: weights, not biases, of every layer after an activation)
    compute the same function; Omega changes only by the signature similarity diag(1, -1...)
    and Gamma not at all, so every layer's spectrum is identical. Since the symmetric init
    draws W and -W with equal probability, f and -f have the same spectrum distribution
    (paper Fig. 5)."""
    torch.manual_seed(0)
    if conv:
        x = torch.randn(8, 2, 9)
        make = lambda fn: nn.Sequential(  # noqa: E731
            nn.Conv1d(2, 4, 3, padding=1), ActivationFunction(fn), nn.Conv1d(4, 4, 3, groups=4),
            ActivationFunction(fn), nn.Flatten(), nn.Linear(28, 5))
    else:
        x = torch.randn(8, 6)
        make = lambda fn: nn.Sequential(  # noqa: E731
            nn.Linear(6, 7), ActivationFunction(fn), nn.Linear(7, 7), ActivationFunction(fn),
            nn.Linear(7, 5))
    y = torch.randint(0, 5, (8,))
    torch.manual_seed(5)
    pos = make("elu(x)")
    neg = make("negative(elu(x))")
    neg.load_state_dict(pos.state_dict())
    with torch.no_grad():
        linear_like = [m for m in neg if isinstance(m, (nn.Linear, nn.Conv1d))]
        for m in linear_like[1:]:
            m.weight.neg_()
    torch.testing.assert_close(pos(x), neg(x), rtol=1e-12, atol=1e-12)
    for a, b in zip(kfac_eigenvalues(pos, x, y, log_scale=False),
                    kfac_eigenvalues(neg, x, y, log_scale=False), strict=True):
        a, b = torch.sort(a).values, torch.sort(b).values
        torch.testing.assert_close(a / a.max(), b / b.max(), rtol=0, atol=1e-11)
        torch.testing.assert_close(a.max(), b.max(), rtol=1e-10, atol=0)
    # and the plain negation does change the spectrum (the test can fail)
    neg.load_state_dict(pos.state_dict())
    a = kfac_eigenvalues(pos, x, y, log_scale=False)[0]
    b = kfac_eigenvalues(neg, x, y, log_scale=False)[0]
    assert not torch.allclose(torch.sort(a).values, torch.sort(b).values, rtol=1e-3)


# --------------------------------------------------------------------------- behaviour


def test_deterministic_and_leaves_rng_and_grads_alone():
    torch.manual_seed(0)
    x = torch.randn(16, 2, 8).float()
    y = torch.randint(0, 4, (16,))
    model = nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(inplace=True), nn.Dropout(0.5),
                          nn.Flatten(), nn.Linear(24, 4)).float()
    state = torch.get_rng_state()
    a = kfac_eigenvalues(model, x, y, seed=7)
    b = kfac_eigenvalues(model, x, y, seed=7)
    c = kfac_eigenvalues(model, x, y, seed=8)  # other dropout mask
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not torch.equal(a[1], c[1])
    assert all(p.grad is None for p in model.parameters())


def test_inplace_activation_after_layer_and_float32_model():
    """An in-place op on a layer's output must not change its Gamma (float32 model)."""
    torch.manual_seed(0)
    x = torch.randn(4, 3).float()
    y = torch.tensor([0, 1, 2, 0])
    base = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 3)).float()
    inplace = nn.Sequential(nn.Linear(3, 5), nn.ReLU(inplace=True), nn.Linear(5, 3)).float()
    inplace.load_state_dict(base.state_dict())
    a, b = kfac_factors(base, x, y), kfac_factors(inplace, x, y)
    for fa, fb in zip(a.layers, b.layers, strict=True):
        assert fa.omega.dtype == torch.float64
        torch.testing.assert_close(fa.gamma, fb.gamma, rtol=0, atol=0)
    omega, gamma = _brute_factors(base.double(), base[0], x.double(), y)
    torch.testing.assert_close(a.layers[0].gamma, gamma, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize(
    "module,needle",
    [
        (nn.EmbeddingBag(10, 4), "'emb' (EmbeddingBag)"),
        (nn.Embedding(10, 4, max_norm=1.0), "'emb' (Embedding): nn.Embedding with max_norm"),
        (nn.LSTM(4, 4), "'emb' (LSTM): recurrent"),
        (nn.Conv3d(4, 4, 1), "'emb' (Conv3d)"),
    ],
)
def test_unsupported_layer_error_names_the_layer(module, needle):
    model = nn.Sequential()
    model.add_module("emb", module)
    model.add_module("head", nn.Linear(4, 2))
    with pytest.raises(UnsupportedLayerError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        kfac_factors(model, torch.randn(2, 4), torch.tensor([0, 1]))


def test_unsupported_can_be_skipped_and_reported():
    class WithToken(nn.Module):
        def __init__(self):
            super().__init__()
            self.token = nn.Parameter(torch.zeros(3))
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(x + self.token)

    model = nn.Sequential()
    model.add_module("body", WithToken())
    with pytest.raises(UnsupportedLayerError, match="'body' .*token"):
        kfac_factors(model, torch.randn(2, 3), torch.tensor([0, 1]))
    result = kfac_factors(model, torch.randn(2, 3), torch.tensor([0, 1]), on_unsupported="skip")
    assert [f.name for f in result.layers] == ["body.fc"]
    assert [(s.name, s.num_params) for s in result.skipped] == [("body", 3)]


def test_affine_norm_reported_as_skipped_weightless_ignored():
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(),
                          nn.LayerNorm(6, elementwise_affine=False), nn.Dropout(0.1),
                          nn.Linear(6, 3), nn.LayerNorm(3))
    result = kfac_factors(model, torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1]))
    assert [f.name for f in result.layers] == ["0", "5"]
    assert [(s.name, s.module_type, s.num_params) for s in result.skipped] == [
        ("1", "BatchNorm1d", 12), ("6", "LayerNorm", 6)]
    assert all("normalisation" in s.reason for s in result.skipped)


def test_unused_layer_skipped():
    """(A layer called twice accumulates both calls: tests/features/test_fisher_layers.py.)"""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)
            self.unused = nn.Linear(3, 3)

        def forward(self, x):
            return self.fc(x)

    result = kfac_factors(Net(), torch.randn(2, 3), torch.tensor([0, 1]))
    assert [f.name for f in result.layers] == ["fc"]
    assert [(s.name, s.reason, s.kind) for s in result.skipped] == [
        ("unused", "not called in the forward pass", "dense")]
    assert result.coverage.by_kind == {"dense": (12, 24)}


def test_bad_arguments():
    model = nn.Sequential(nn.Linear(3, 2))
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="needs targets"):
        kfac_factors(model, x)
    with pytest.raises(ValueError, match="fisher must be"):
        kfac_factors(model, x, torch.tensor([0, 1]), fisher="true")
    with pytest.raises(ValueError, match="convention must be"):
        kfac_factors(model, x, torch.tensor([0, 1]), convention="tf")


def test_non_finite_signals_give_nan_eigenvalues_not_exceptions():
    torch.manual_seed(0)
    x = 3 * torch.randn(8, 4)
    model = nn.Sequential(nn.Linear(4, 8), ActivationFunction("exp(exp(exp(x)))"),
                          nn.Linear(8, 8), ActivationFunction("exp(exp(exp(x)))"),
                          nn.Linear(8, 3))
    eigs = kfac_eigenvalues(model, x, torch.zeros(8, dtype=torch.long))
    assert [e.numel() for e in eigs] == [40, 72, 27]
    assert any(torch.isnan(e).all() for e in eigs)


# --------------------------------------------------------------------------- fast paths


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda: nn.Conv2d(3, 4, 3, padding=1), (3, 6, 5)),
        (lambda: nn.Conv2d(3, 4, 5, padding="same", bias=False), (3, 7, 6)),
        (lambda: nn.Conv2d(2, 4, (3, 2), padding="same", dilation=(2, 1)), (2, 5, 5)),
        (lambda: nn.Conv2d(2, 3, 3, padding=0), (2, 6, 7)),
        (lambda: nn.Conv2d(2, 3, (3, 3), padding=1, padding_mode="reflect"), (2, 6, 7)),
        (lambda: nn.Conv2d(2, 3, (2, 3), padding=(0, 2), dilation=(1, 2)), (2, 5, 4)),
        (lambda: nn.Conv2d(2, 3, (1, 3), padding=(0, 1)), (2, 4, 5)),  # one row of taps
        (lambda: nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"), (2, 4, 5)),
        (lambda: nn.Conv2d(2, 3, (4, 1), padding=(3, 0), dilation=(3, 1)), (2, 5, 4)),
        (lambda: nn.Conv1d(3, 4, 5, padding=2), (3, 9)),
        (lambda: nn.Conv1d(3, 4, 3, padding="same", dilation=2, padding_mode="replicate"),
         (3, 8)),
    ],
)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_shifted_gram_equals_explicit_patch_gram(make, shape):
    """The shift decomposition of P^T P (stride 1 along the first axis) against the Gram of
    patches written out one position at a time, in float64."""
    from aquasurf_core.features.fisher import (
        shift_decomposable as _toeplitz_ok,
    )
    from aquasurf_core.features.fisher import (
        shifted_gram as _shifted_gram,
    )

    torch.manual_seed(0)
    conv = make()
    assert _toeplitz_ok("conv", conv)
    x = torch.randn((3,) + shape)
    gram, colsum, rows = _shifted_gram(conv, x, torch.float64, torch.float64)
    out_shape = conv(x).shape[2:]
    p = torch.cat([_patches(x[i:i + 1], conv, out_shape) for i in range(3)])
    assert rows == p.shape[0]
    torch.testing.assert_close(gram, p.T @ p, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(colsum, p.sum(0), rtol=1e-12, atol=1e-12)


def test_float32_products_float64_sums_match_float64_factors():
    """Opt-in factor_dtype=None on a float32 model: products in float32, sums in float64,
    factors float64 and equal to the all-float64 accumulation to float32 round-off."""
    torch.manual_seed(0)
    x = torch.randn(32, 3, 8, 8).float()
    y = torch.randint(0, 4, (32,))
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=8),
                          nn.ReLU(), nn.Conv2d(8, 6, 3, stride=2), nn.Flatten(),
                          nn.LazyLinear(4)).float()
    model(x)
    fast = kfac_factors(model, x, y, factor_dtype=None)
    slow = kfac_factors(model, x, y)
    for a, b in zip(fast.layers, slow.layers, strict=True):
        assert a.omega.dtype == a.gamma.dtype == torch.float64
        torch.testing.assert_close(a.omega, b.omega, rtol=1e-5, atol=1e-6 * b.omega.abs().max())
        torch.testing.assert_close(a.gamma, b.gamma, rtol=1e-5, atol=1e-6 * b.gamma.abs().max())
    single = kfac_factors(model, x, y, factor_dtype=torch.float32).layers[0]
    assert single.omega.dtype == torch.float32
    with pytest.raises(ValueError, match="factor_dtype"):
        kfac_factors(model, x, y, factor_dtype=torch.int32)


def test_numpy_blas_follows_torch_threads():
    from threadpoolctl import threadpool_info, threadpool_limits

    from aquasurf_core.features.fisher import numpy_blas_threads

    def blas_threads():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = torch.get_num_threads()
    assert blas_threads(), "NumPy's BLAS pool is not visible to threadpoolctl"
    try:
        with threadpool_limits(3, user_api="blas"):  # a pool wider than torch's
            torch.set_num_threads(1)
            with numpy_blas_threads():
                assert blas_threads() == [1] * len(blas_threads())
            assert blas_threads() == [3] * len(blas_threads())
    finally:
        torch.set_num_threads(before)


def test_fisher_pass_turns_tf32_off_and_restores_it():
    from aquasurf_core.features import fisher

    seen = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x):
            seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
            return self.lin(x)

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        fisher.kfac_factors(Probe(), torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))
        assert seen == [(False, False)]
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (
            True, True)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _low_rank_net():
    # conv on 2x2 images: 3 examples x 4 positions = 12 rows < 4 * 9 + 1 columns; the head has
    # 3 rows < 33 columns; the first conv 3 x 16 = 48 rows > 2 * 9 + 1
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 8, 3, padding=1),
                         nn.Tanh(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.Flatten(),
                         nn.Linear(32, 5))


@pytest.mark.parametrize("convention", ["per_example", "official"])
def test_low_rank_omega_eigenvalues_from_the_dual_match_the_full_matrix(convention):
    from aquasurf_core.features.fisher import factor_eigenvalues, layer_eigenvalues

    torch.manual_seed(0)
    x = torch.randn(3, 2, 4, 4)
    y = torch.tensor([0, 3, 1])
    model = _init(_low_rank_net(), x)
    layers = kfac_factors(model, x, y, convention=convention).layers
    kept = [f.omega_rows is not None for f in layers]
    assert kept == [False, False, True, True]  # 48 > 19 and 48 > 37 rows; 3 x 1 < 73; 3 < 33
    for f in layers:
        if f.omega_rows is None:
            continue
        torch.testing.assert_close(f.omega_rows.T @ f.omega_rows, f.omega, rtol=1e-10,
                                   atol=1e-13)
        dual = factor_eigenvalues(f.omega, f.data_eps, f.omega_rows)
        full = factor_eigenvalues(f.omega, f.data_eps)  # the n x n eigenproblem
        assert dual.shape == full.shape and bool((dual[:-f.omega_rows.shape[0]] == 0).all())
        assert torch.equal(dual > 0, full > 0)
        torch.testing.assert_close(dual, full, rtol=1e-9, atol=1e-12 * float(full.max()))
        assert layer_eigenvalues(f).shape == (f.num_params,)


def test_rows_are_dropped_once_a_layer_has_as_many_rows_as_columns():
    torch.manual_seed(0)
    lin = nn.Linear(4, 3)

    class Twice(nn.Module):  # the layer is called twice: 2 + 2 rows, then 4 + 4 > 5 columns
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, x):
            return self.lin(x) + self.lin(2 * x)

    two = kfac_factors(Twice(), torch.randn(2, 4), torch.tensor([0, 1])).layers[0]
    assert two.omega_rows is not None and two.omega_rows.shape == (4, 5)
    torch.testing.assert_close(two.omega_rows.T @ two.omega_rows, two.omega, rtol=1e-10,
                               atol=1e-13)
    four = kfac_factors(Twice(), torch.randn(4, 4), torch.tensor([0, 1, 2, 0])).layers[0]
    assert four.omega_rows is None
