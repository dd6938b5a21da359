"""K-FAC for grouped and transposed convolutions, embeddings, multi-head attention, layers
called more than once, the Gaussian likelihood, the coverage report and the factor dtype,
against ground truth computed the slow obvious way.

Ground truth: per-example gradients from separate forward/backward passes of single examples,
explicit Fisher blocks ``vec(DW) vec(DW)^T`` (exact for one example at one position), expanded
inputs written out by loops, and the module's own forward for the decomposed attention. Models
are float64, so agreement is checked to ~1e-10, not to float32 round-off.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from aquasurf_core.features.fim import features_from_factors, fim_features
from aquasurf_core.features.fisher import (
    Coverage,
    CoverageError,
    UnsupportedLayerError,
    attention_forward,
    factor_eigenvalues,
    kfac_factors,
    layer_eigenvalues,
    transposed_patches,
)


@pytest.fixture(autouse=True)
def float64_default():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def wbar_vec(grad_w: torch.Tensor, grad_b: torch.Tensor | None) -> torch.Tensor:
    """``vec(DW_bar)`` (rows: outputs) with the bias column prepended, columns stacked."""
    w = grad_w.reshape(grad_w.shape[0], -1)
    if grad_b is not None:
        w = torch.cat([grad_b.reshape(-1, 1), w], dim=1)
    return w.T.reshape(-1)


def nll(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The loss kfac_factors uses by default: summed cross-entropy, or the unit Gaussian for
    floating-point targets."""
    if y.is_floating_point():
        return 0.5 * (out - y.reshape(out.shape)).pow(2).sum()
    return F.cross_entropy(out, y, reduction="sum")


def init(model: nn.Module, x, scale: float = 0.7) -> nn.Module:
    torch.manual_seed(1)
    model(x)  # materialise lazy layers
    for p in model.parameters():
        nn.init.normal_(p, 0.0, scale)
    return model


def assert_block(omega, gamma, v, rtol=1e-10):
    """``omega (x) gamma == v v^T`` (``omega`` 1-D: diagonal) and equal eigenvalues."""
    omega = torch.diag(omega) if omega.dim() == 1 else omega
    block = torch.outer(v, v)
    kron = torch.kron(omega, gamma)
    scale = block.abs().max()
    torch.testing.assert_close(kron / scale, block / scale, rtol=rtol, atol=1e-12)


def per_example_output_grads(model, layer, x, y):
    """For every example separately: (inputs, output gradients) of every call of ``layer``."""
    out = []
    for i in range(x.shape[0]):
        seen = []

        def keep(mod, args, output, seen=seen):
            output.retain_grad()
            seen.append((args[0].detach(), output))

        handle = layer.register_forward_hook(keep)
        nll(model(x[i:i + 1]), y[i:i + 1]).backward()
        handle.remove()
        model.zero_grad()
        out.append([(a, o.grad) for a, o in seen])
    return out


# --------------------------------------------------------------------------- grouped conv


GROUPED = [
    (lambda: nn.Conv2d(4, 6, 3, groups=2, padding=1), (4, 4, 5)),
    (lambda: nn.Conv2d(3, 6, 3, groups=3, stride=2, bias=False), (3, 5, 5)),  # multiplier 2
    (lambda: nn.Conv1d(6, 4, 3, groups=2, dilation=2, padding="same"), (6, 7)),
    (lambda: nn.Conv2d(6, 6, (2, 3), groups=3, padding=(1, 0), padding_mode="reflect"),
     (6, 4, 4)),
]


def group_patches(x1, conv, g, out_shape):
    """Expanded input of one example for group ``g``, one row per output position, by
    indexing the padded input."""
    cg = conv.in_channels // conv.groups
    pads = []
    for i in reversed(range(x1.dim() - 2)):
        k, d = conv.kernel_size[i], conv.dilation[i]
        if conv.padding == "same":
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
        else:
            pads += [conv.padding[i]] * 2
    mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
    xp = F.pad(x1, pads, mode=mode)[0, g * cg:(g + 1) * cg]
    rows = []
    for pos in itertools.product(*[range(n) for n in out_shape]):
        row = [xp[(c,) + tuple(p * s + o * d for p, s, o, d in zip(
            pos, conv.stride, off, conv.dilation, strict=True))]
            for c in range(cg) for off in itertools.product(*[range(k) for k in
                                                              conv.kernel_size])]
        rows.append(torch.stack(row))
    return torch.stack(rows)


@pytest.mark.parametrize("make,shape", GROUPED)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_grouped_conv_factors_match_brute_force(make, shape):
    torch.manual_seed(0)
    x = torch.randn((3,) + shape)
    y = torch.tensor([0, 3, 1])
    conv = make()
    model = init(nn.Sequential(conv, nn.Tanh(), nn.Flatten(), nn.LazyLinear(4)), x)
    f = kfac_factors(model, x, y).layers[0]
    groups, og = conv.groups, conv.out_channels // conv.groups
    assert f.kind == "grouped" and f.groups == groups
    assert f.groups * f.omega_dim * f.gamma_dim == f.num_params == sum(
        p.numel() for p in conv.parameters())
    grads = per_example_output_grads(model, conv, x, y)
    for g in range(groups):
        omega = gamma = 0.0
        rows = 0
        for (inp, gout), in grads:
            gm = gout[0, g * og:(g + 1) * og].reshape(og, -1).T
            p = group_patches(inp, conv, g, gout.shape[2:])
            if conv.bias is not None:
                p = torch.cat([torch.ones(p.shape[0], 1), p], dim=1)
            omega, gamma, rows = omega + p.T @ p, gamma + gm.T @ gm, rows + gm.shape[0]
        torch.testing.assert_close(f.omega[g], omega / 3, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(f.gamma[g], gamma / rows, rtol=1e-10, atol=1e-14)
    # eigenvalues: the union of the groups' Kronecker eigenvalues
    ours = torch.sort(layer_eigenvalues(f, log_scale=False)).values
    truth = torch.sort(torch.cat([torch.linalg.eigvalsh(torch.kron(f.omega[g], f.gamma[g]))
                                  for g in range(groups)])).values
    torch.testing.assert_close(ours / truth.max(), truth / truth.max(), rtol=0, atol=1e-12)


def test_grouped_conv_one_position_blocks_are_exact():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, groups=2)
    x = torch.randn(1, 4, 3, 3)
    y = torch.tensor([2])
    model = init(nn.Sequential(conv, nn.Tanh(), nn.Flatten(), nn.Linear(6, 4)), x)
    f = kfac_factors(model, x, y).layers[0]
    nll(model(x), y).backward()
    for g in range(2):
        v = wbar_vec(conv.weight.grad[3 * g:3 * g + 3], conv.bias.grad[3 * g:3 * g + 3])
        assert_block(f.omega[g], f.gamma[g], v)


# --------------------------------------------------------------------------- transposed conv


TRANSPOSED = [
    (lambda: nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1), (2, 3, 3)),
    (lambda: nn.ConvTranspose2d(2, 3, (2, 3), stride=(2, 1), padding=(0, 1), dilation=(1, 2),
                                bias=False), (2, 2, 3)),
    (lambda: nn.ConvTranspose1d(2, 3, 4, stride=3, padding=2, output_padding=2), (2, 4)),
    (lambda: nn.ConvTranspose2d(4, 6, 2, stride=2, groups=2), (4, 2, 3)),
    (lambda: nn.ConvTranspose2d(2, 2, 5, stride=1, padding=3), (2, 4, 4)),  # crops
]


def transposed_patches_by_loops(x1, conv, out_shape):
    """Expanded input of one example, one row per output position, in ``W'`` order: entry
    ``(c, flipped offset)`` at output ``q`` is ``x[c, r]`` where ``q = r s - p + (k - 1 -
    offset) d`` (the definition of the transposed convolution), else 0."""
    x1 = x1[0]
    rows = []
    for q in itertools.product(*[range(n) for n in out_shape]):
        row = []
        for c in range(x1.shape[0]):
            for off in itertools.product(*[range(k) for k in conv.kernel_size]):
                val = 0.0
                r = []
                for qi, oi, k, s, p, d, n in zip(q, off, conv.kernel_size, conv.stride,
                                                 conv.padding, conv.dilation, x1.shape[1:],
                                                 strict=True):
                    num = qi + p - (k - 1 - oi) * d
                    r.append(num // s if num % s == 0 and 0 <= num // s < n else None)
                if None not in r:
                    val = x1[(c,) + tuple(r)]
                row.append(torch.as_tensor(val))
        rows.append(torch.stack(row))
    return torch.stack(rows)


def flipped_weight(grad_w: torch.Tensor, groups: int) -> torch.Tensor:
    """A ConvTranspose weight (or gradient) ``(C, O/G, *k)`` as the equivalent convolution
    weight ``W' (O, C/G, *k)``: per group, in/out swapped and the kernel flipped."""
    c = grad_w.shape[0]
    spatial = tuple(range(2, grad_w.dim()))
    parts = [grad_w[g * c // groups:(g + 1) * c // groups].transpose(0, 1).flip(spatial)
             for g in range(groups)]
    return torch.cat(parts, dim=0)


@pytest.mark.parametrize("make,shape", TRANSPOSED)
def test_transposed_conv_patches_and_factors_match_brute_force(make, shape):
    torch.manual_seed(0)
    x = torch.randn((3,) + shape)
    y = torch.tensor([1, 0, 3])
    conv = make()
    model = init(nn.Sequential(conv, nn.Tanh(), nn.Flatten(), nn.LazyLinear(4)), x, 0.5)
    out_shape = conv(x).shape[2:]
    # the patches against the definition, and G^T P against the true weight gradient
    p_all = transposed_patches(conv, x, out_shape)  # (M, C |Delta|, L)
    for i in range(3):
        torch.testing.assert_close(p_all[i].T, transposed_patches_by_loops(x[i:i + 1], conv,
                                                                          out_shape),
                                   rtol=0, atol=0)
    f = kfac_factors(model, x, y).layers[0]
    assert f.kind == "conv_transpose"
    assert f.groups * f.omega_dim * f.gamma_dim == f.num_params == sum(
        p.numel() for p in conv.parameters())
    groups, og = conv.groups, conv.out_channels // conv.groups
    omegas = f.omega if groups > 1 else f.omega[None]
    gammas = f.gamma if groups > 1 else f.gamma[None]
    grads = per_example_output_grads(model, conv, x, y)
    for g in range(groups):
        omega = gamma = 0.0
        rows = 0
        for i, ((_, gout),) in enumerate(grads):
            cols = p_all.shape[1] // groups
            p = p_all[i, g * cols:(g + 1) * cols].T
            gm = gout[0, g * og:(g + 1) * og].reshape(og, -1).T
            if i == 0:  # the pairing: sum over positions of ds a^T is the weight gradient
                model.zero_grad()
                nll(model(x[:1]), y[:1]).backward()
                truth = flipped_weight(conv.weight.grad, groups)[g * og:(g + 1) * og]
                torch.testing.assert_close(gm.T @ p, truth.reshape(og, -1), rtol=1e-10,
                                           atol=1e-12)
                model.zero_grad()
            if conv.bias is not None:
                p = torch.cat([torch.ones(p.shape[0], 1), p], dim=1)
            omega, gamma, rows = omega + p.T @ p, gamma + gm.T @ gm, rows + gm.shape[0]
        torch.testing.assert_close(omegas[g], omega / 3, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(gammas[g], gamma / rows, rtol=1e-10, atol=1e-14)


def test_transposed_conv_one_position_is_exact_and_output_size_is_honoured():
    torch.manual_seed(0)
    conv = nn.ConvTranspose2d(2, 3, 3, stride=1, padding=1)  # 1x1 -> 1x1
    x = torch.randn(1, 2, 1, 1)
    y = torch.tensor([1])
    model = init(nn.Sequential(conv, nn.Tanh(), nn.Flatten(), nn.Linear(3, 4)), x)
    f = kfac_factors(model, x, y).layers[0]
    nll(model(x), y).backward()
    assert_block(f.omega, f.gamma, wbar_vec(flipped_weight(conv.weight.grad, 1),
                                            conv.bias.grad))

    class Sized(nn.Module):  # forward(x, output_size=...) picks the output padding
        def __init__(self):
            super().__init__()
            self.up = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
            self.head = nn.Linear(3 * 6 * 6, 4)

        def forward(self, x):
            return self.head(torch.tanh(self.up(x, output_size=[6, 6])).flatten(1))

    net = Sized()
    x = torch.randn(2, 2, 3, 3)
    f = kfac_factors(net, x, torch.tensor([0, 3])).layers[0]
    assert f.rows == 2 * 36
    p = transposed_patches(net.up, x, (6, 6))
    torch.testing.assert_close(f.omega[1:, 1:], (p.transpose(1, 2).reshape(-1, p.shape[1]).T
                                                 @ p.transpose(1, 2).reshape(-1, p.shape[1]))
                               / 2, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- embedding


def embedding_model(padding_idx=0, vocab=7, dim=3, length=4):
    return nn.Sequential(nn.Embedding(vocab, dim, padding_idx=padding_idx), nn.Tanh(),
                         nn.Flatten(), nn.Linear(length * dim, 4))


def test_embedding_one_token_is_exact_and_omega_is_diagonal():
    torch.manual_seed(0)
    model = embedding_model(padding_idx=None, length=1)
    x = torch.tensor([[5]])
    y = torch.tensor([2])
    f = kfac_factors(model, x, y).layers[0]
    assert f.kind == "embedding" and f.diagonal and f.omega.shape == (7,)
    assert (f.omega_dim, f.gamma_dim, f.num_params) == (7, 3, 21) and not f.has_bias
    nll(model(x), y).backward()
    emb = model[0]
    # a linear layer on one-hot inputs: W = weight^T, vec(DW) = weight.grad row-major
    assert_block(f.omega, f.gamma, emb.weight.grad.reshape(-1))


def test_embedding_factors_match_brute_force_padding_excluded():
    torch.manual_seed(0)
    model = embedding_model(padding_idx=0)
    emb = model[0]
    x = torch.tensor([[1, 0, 3, 3], [6, 2, 0, 0], [5, 5, 5, 1]])
    y = torch.tensor([0, 3, 1])
    f = kfac_factors(model, x, y).layers[0]
    counts = torch.bincount(x[x != 0], minlength=7).double()
    torch.testing.assert_close(f.omega, counts / 3, rtol=0, atol=0)
    assert f.omega[0] == 0  # padding_idx: zero gradient, zero Fisher rows
    gamma, rows = 0.0, 0
    for (inp, gout), in per_example_output_grads(model, emb, x, y):
        keep = inp.reshape(-1) != 0
        gm = gout.reshape(-1, 3)[keep]
        gamma, rows = gamma + gm.T @ gm, rows + gm.shape[0]
    torch.testing.assert_close(f.gamma, gamma / rows, rtol=1e-10, atol=1e-14)
    assert f.rows == rows == 9
    logs = layer_eigenvalues(f)
    # tokens 0 (padding) and 4 (absent) have zero Omega entries: 2 x 3 zero eigenvalues
    assert logs.numel() == 21 and int((factor_eigenvalues(f.omega) == 0).sum()) == 2
    assert int(torch.isneginf(logs).sum()) >= 6
    # an example made only of padding has a zero block: Omega is zero
    only_pad = kfac_factors(model, torch.zeros(1, 4, dtype=torch.long), y[:1]).layers[0]
    assert not bool((only_pad.omega > 0).any())


def test_embedding_large_vocabulary_stays_diagonal():
    model = nn.Sequential(nn.Embedding(50_000, 8), nn.Flatten(), nn.Linear(16, 3))
    x = torch.randint(0, 50_000, (4, 2))
    f = kfac_factors(model, x, torch.tensor([0, 1, 2, 0])).layers[0]
    assert f.omega.shape == (50_000,)
    eig = factor_eigenvalues(f.omega)
    assert eig.shape == (50_000,) and int((eig > 0).sum()) == len(set(x.reshape(-1).tolist()))
    assert layer_eigenvalues(f).numel() == 400_000


def test_embedding_max_norm_is_refused_or_skipped():
    model = nn.Sequential(nn.Embedding(5, 2, max_norm=1.0), nn.Flatten(), nn.Linear(4, 2))
    x = torch.tensor([[1, 2], [3, 4]])
    with pytest.raises(UnsupportedLayerError, match="'0' \\(Embedding\\): .*max_norm"):
        kfac_factors(model, x, torch.tensor([0, 1]))
    result = kfac_factors(model, x, torch.tensor([0, 1]), on_unsupported="skip")
    assert [f.name for f in result.layers] == ["2"]
    assert result.coverage.by_kind["embedding"] == (0, 10)


# --------------------------------------------------------------------------- attention


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("variant", ["self", "cross", "kvdim", "bias_kv", "zero_attn",
                                     "unbatched"])
@pytest.mark.parametrize("masks", ["none", "bool", "float", "causal"])
def test_decomposed_attention_equals_module(batch_first, need_weights, variant, masks):
    torch.manual_seed(0)
    e, heads, length, src, n = 8, 2, 3, 5, 2
    kw = dict(kdim=5, vdim=3) if variant == "kvdim" else {}
    mha = nn.MultiheadAttention(e, heads, batch_first=batch_first, add_bias_kv=variant ==
                                "bias_kv", add_zero_attn=variant == "zero_attn", **kw).eval()
    if variant == "self" or masks == "causal":
        src = length

    def seq(d, t):
        if variant == "unbatched":
            return torch.randn(t, d)
        return torch.randn(n, t, d) if batch_first else torch.randn(t, n, d)

    q = seq(e, length)
    if variant == "self":
        k = v = q  # query is key is value: the fused projection
    else:
        k, v = seq(kw.get("kdim", e), src), seq(kw.get("vdim", e), src)
    args = dict(need_weights=need_weights, average_attn_weights=not batch_first)
    if masks == "bool":
        args["attn_mask"] = torch.rand(length, src) < 0.3
        args["attn_mask"][:, 0] = False
        if variant != "unbatched":
            args["key_padding_mask"] = torch.zeros(n, src, dtype=torch.bool)
            args["key_padding_mask"][1, -1] = True
    elif masks == "float":
        args["attn_mask"] = torch.randn(n * heads if variant != "unbatched" else heads,
                                        length, src)
    elif masks == "causal":
        args["attn_mask"] = nn.Transformer.generate_square_subsequent_mask(length)
        args["is_causal"] = True
    with torch.no_grad():
        expected = mha(q, k, v, **args)
        ours = attention_forward(mha, q, k, v, **args)
    torch.testing.assert_close(ours[0], expected[0], rtol=1e-12, atol=1e-12)
    if need_weights:
        torch.testing.assert_close(ours[1], expected[1], rtol=1e-12, atol=1e-12)
    else:
        assert ours[1] is None and expected[1] is None


class Attn(nn.Module):
    """One attention layer and a classifier; ``mode``: self, cross, or both (two calls)."""

    def __init__(self, e=4, heads=2, length=3, mode="self", **kw):
        super().__init__()
        self.mode = mode
        self.attn = nn.MultiheadAttention(e, heads, batch_first=True, **kw)
        self.head = nn.Linear(length * e, 3)

    def forward(self, x):
        if self.mode == "self":
            h = self.attn(x, x, x, need_weights=False)[0]
        elif self.mode == "cross":
            h = self.attn(x, x.flip(1), torch.tanh(x), need_weights=False)[0]
        else:
            h = self.attn(x, x, x, need_weights=False)[0]
            h = self.attn(torch.tanh(h), x, x, need_weights=False)[0]
        return self.head(torch.tanh(h).flatten(1))


def test_attention_one_token_blocks_are_exact_and_named():
    torch.manual_seed(0)
    x = torch.randn(1, 1, 4)
    y = torch.tensor([2])
    model = init(Attn(length=1), x, 0.5)
    result = kfac_factors(model, x, y)
    names = [f.name for f in result.layers]
    assert names == ["attn.in_proj", "attn.out_proj", "head"]
    nll(model(x), y).backward()
    fin, fout = result.layers[:2]
    assert (fin.omega_dim, fin.gamma_dim, fin.kind) == (5, 12, "attention")
    assert_block(fin.omega, fin.gamma, wbar_vec(model.attn.in_proj_weight.grad,
                                                model.attn.in_proj_bias.grad))
    assert_block(fout.omega, fout.gamma, wbar_vec(model.attn.out_proj.weight.grad,
                                                  model.attn.out_proj.bias.grad))
    assert "forward" not in model.attn.__dict__  # restored


def attention_brute_force(model, x, y, roles, bias=True):
    """Per-example passes through :func:`attention_forward` keeping every projection's input
    and output gradient (its equality with the module is tested above): ``role -> (Omega,
    Gamma)`` as for dense layers on tokens (expand variant)."""
    acc = {r: [0.0, 0.0, 0] for r in roles}
    mha = model.attn
    for i in range(x.shape[0]):
        seen = []

        def project(role, inp, w, b, seen=seen):
            out = F.linear(inp, w, b)
            out.retain_grad()
            seen.append((role, inp.detach(), out))
            return out

        mha.forward = lambda *a, **k: attention_forward(mha, *a, project=project, **k)
        try:
            nll(model(x[i:i + 1]), y[i:i + 1]).backward()
        finally:
            del mha.forward
        model.zero_grad()
        for role, inp, out in seen:
            a = inp.reshape(-1, inp.shape[-1])
            if bias:
                a = torch.cat([torch.ones(a.shape[0], 1), a], dim=1)
            g = out.grad.reshape(-1, out.shape[-1])
            if role == "in_proj" and "in_proj" not in roles:  # folded into q/k/v
                e = g.shape[1] // 3
                for j, r in enumerate(("q_proj", "k_proj", "v_proj")):
                    gj = g[:, j * e:(j + 1) * e]
                    acc[r][0] += a.T @ a
                    acc[r][1] += gj.T @ gj
                    acc[r][2] += gj.shape[0]
                continue
            acc[role][0] += a.T @ a
            acc[role][1] += g.T @ g
            acc[role][2] += g.shape[0]
    return {r: (o / x.shape[0], g / n) for r, (o, g, n) in acc.items()}


@pytest.mark.parametrize("mode,kw,roles", [
    ("self", {}, ["in_proj", "out_proj"]),
    ("self", dict(bias=False), ["in_proj", "out_proj"]),
    ("cross", {}, ["q_proj", "k_proj", "v_proj", "out_proj"]),
    ("cross", dict(kdim=4, vdim=4, add_bias_kv=True), ["q_proj", "k_proj", "v_proj",
                                                       "out_proj"]),
    ("both", {}, ["q_proj", "k_proj", "v_proj", "out_proj"]),  # self + cross: folded
])
def test_attention_factors_match_brute_force(mode, kw, roles):
    torch.manual_seed(0)
    x = torch.randn(3, 3, 4)
    y = torch.tensor([0, 2, 1])
    model = init(Attn(mode=mode, **kw), x, 0.5)
    result = kfac_factors(model, x, y)
    layers = {f.name: f for f in result.layers}
    assert list(layers) == [f"attn.{r}" for r in roles] + ["head"]
    truth = attention_brute_force(model, x, y, roles, kw.get("bias", True))
    for r in roles:
        f = layers[f"attn.{r}"]
        torch.testing.assert_close(f.omega, truth[r][0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(f.gamma, truth[r][1], rtol=1e-10, atol=1e-14)
    cov = result.coverage
    n_attn = sum(p.numel() for p in model.attn.parameters())
    extra = 8 if kw.get("add_bias_kv") else 0  # bias_k, bias_v: reported, not covered
    assert cov.by_kind["attention"] == (n_attn - extra, n_attn)
    with torch.no_grad():  # the pass's loss is the unpatched module's
        assert result.loss == pytest.approx(nll(model(x), y).item(), rel=1e-12)


def test_attention_forward_is_restored_after_an_error():
    model = Attn()
    x = torch.randn(2, 3, 4)
    with pytest.raises(RuntimeError, match="target"):  # raised by the loss, mid-pass
        kfac_factors(model, x, torch.zeros(2, 5, dtype=torch.long))
    assert "forward" not in model.attn.__dict__
    kfac_factors(model, x, torch.tensor([0, 1]))


# --------------------------------------------------------------------------- shared layers


def test_layer_called_twice_accumulates_both_calls():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)
            self.head = nn.Linear(3, 2)

        def forward(self, x):
            return self.head(self.fc(torch.tanh(self.fc(x))))

    torch.manual_seed(0)
    x = torch.randn(4, 3)
    y = torch.tensor([0, 1, 1, 0])
    model = init(Net(), x)
    f = kfac_factors(model, x, y).layers[0]
    omega, gamma, rows = 0.0, 0.0, 0
    for calls in per_example_output_grads(model, model.fc, x, y):
        assert len(calls) == 2
        for inp, gout in calls:
            a = torch.cat([torch.ones(1, 1), inp], dim=1)
            omega, gamma, rows = omega + a.T @ a, gamma + gout.T @ gout, rows + 1
    torch.testing.assert_close(f.omega, omega / 4, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(f.gamma, gamma / rows, rtol=1e-10, atol=1e-14)
    assert (f.rows, f.positions) == (8, 2.0)


# --------------------------------------------------------------------------- coverage


def tiny_vit():
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(image_size=16, patch_size=8, num_layers=1, num_heads=2,
                              hidden_dim=8, mlp_dim=16, num_classes=3)
    nn.init.normal_(model.heads.head.weight, 0.0, 0.3)  # torchvision zero-initialises it
    return model


def test_vit_coverage_report_and_error_message():
    model = tiny_vit()
    x = torch.randn(2, 3, 16, 16)
    y = torch.tensor([0, 2])
    with pytest.raises(UnsupportedLayerError) as info:
        kfac_factors(model, x, y)
    message = str(info.value)
    assert "'<root>' (VisionTransformer)" in message and "class_token" in message
    assert "'encoder' (Encoder)" in message and "pos_embedding" in message
    assert "on_unsupported='skip'" in message
    result = kfac_factors(model, x, y, on_unsupported="skip")
    cov = result.coverage
    total = sum(p.numel() for p in model.parameters())
    norms = sum(p.numel() for m in model.modules() if isinstance(m, nn.LayerNorm)
                for p in m.parameters())
    unowned = model.class_token.numel() + model.encoder.pos_embedding.numel()
    assert cov.total == total
    assert cov.by_kind["unowned"] == (0, unowned)
    assert cov.by_kind["norm"] == (0, norms)
    assert cov.covered == total - unowned - norms == sum(f.num_params for f in result.layers)
    assert cov.fraction == pytest.approx((total - unowned - norms) / total)
    assert {f.name for f in result.layers} >= {
        "encoder.layers.encoder_layer_0.self_attention.in_proj",
        "encoder.layers.encoder_layer_0.self_attention.out_proj"}
    text = str(cov)
    assert text.startswith(f"K-FAC covers {100 * cov.fraction:.1f}% of {total:,} parameters")
    assert "unowned" in text and "(class_token, encoder.pos_embedding)" in text
    table = cov.table()
    assert list(table.columns) == ["kind", "parameters", "covered", "share"]
    assert table["parameters"].sum() == total
    assert table["share"].sum() == pytest.approx(1.0)
    # min_coverage
    feats = fim_features(model, x, y, on_unsupported="skip", min_coverage=0.5)
    assert feats.coverage.covered == cov.covered and feats.valid
    with pytest.raises(CoverageError, match="min_coverage=0.999.*lower min_coverage"):
        fim_features(model, x, y, on_unsupported="skip", min_coverage=0.999)
    with pytest.raises(ValueError, match="min_coverage"):
        fim_features(model, x, y, min_coverage=2)


@pytest.mark.parametrize("make,kind", [
    (lambda: nn.LSTM(4, 4, batch_first=True), "recurrent"),
    (lambda: nn.Conv3d(1, 1, 1), "other"),
    (lambda: nn.PReLU(), "other"),
])
def test_other_parameters_are_listed_then_skipped(make, kind):
    module = make()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            if isinstance(self.inner, nn.LSTM):
                x = self.inner(x)[0][:, -1]
            elif isinstance(self.inner, nn.Conv3d):
                x = self.inner(x[:, None, :, None, None]).reshape(x.shape[0], 4)
            else:
                x = self.inner(x)
            return self.head(x)

    model = Net()
    x = torch.randn(2, 3, 4) if kind == "recurrent" else torch.randn(2, 4)
    y = torch.tensor([0, 1])
    with pytest.raises(UnsupportedLayerError, match=f"'inner' \\({type(module).__name__}\\)"):
        kfac_factors(model, x, y)
    result = kfac_factors(model, x, y, on_unsupported="skip")
    n = sum(p.numel() for p in module.parameters())
    assert result.coverage.by_kind[kind] == (0, n)
    assert result.coverage.total == n + 10
    assert f"{kind} " in str(result.coverage) and "(inner)" in str(result.coverage)


def test_coverage_edge_cases():
    empty = Coverage(0, 0, {})
    assert empty.fraction == 1.0 and str(empty) == "K-FAC covers 100.0% of 0 parameters"
    full = kfac_factors(nn.Sequential(nn.Linear(3, 2)), torch.randn(2, 3),
                        torch.tensor([0, 1])).coverage
    assert (full.covered, full.total, full.fraction) == (8, 8, 1.0)
    assert "skipped" not in str(full)


# --------------------------------------------------------------------------- likelihoods


def test_single_output_regression_gets_the_gaussian_fisher():
    torch.manual_seed(0)
    x = torch.randn(1, 5)
    y = torch.tensor([0.3])
    model = init(nn.Sequential(nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 1)), x)
    result = kfac_factors(model, x, y)
    assert result.likelihood == "gaussian"
    loss = 0.5 * (model(x).reshape(-1) - y).pow(2).sum()
    assert result.loss == pytest.approx(loss.item(), rel=1e-12)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    for f, (gw, gb) in zip(result.layers, [grads[:2], grads[2:]], strict=True):
        assert_block(f.omega, f.gamma, wbar_vec(gw, gb))
    # the last layer's Gamma is the squared residual (unit variance)
    torch.testing.assert_close(result.layers[1].gamma, (model(x) - y).pow(2).detach(),
                               rtol=1e-12, atol=0)
    # integer labels with one output column are regression targets too ("auto")
    assert kfac_factors(model, x, torch.tensor([1])).likelihood == "gaussian"
    # MC: y ~ N(f, 1), so the last Gamma is the mean squared noise, ~1 over many examples
    xs = torch.randn(4000, 5)
    mc = kfac_factors(model, xs, fisher="mc", seed=3)
    assert mc.likelihood == "gaussian"
    assert float(mc.layers[1].gamma) == pytest.approx(1.0, abs=0.07)
    again = kfac_factors(model, xs, fisher="mc", seed=3)
    assert torch.equal(mc.layers[1].gamma, again.layers[1].gamma)


def test_gaussian_multi_output_and_likelihood_errors():
    torch.manual_seed(0)
    x = torch.randn(3, 4)
    model = init(nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)), x)
    y = torch.randn(3, 2)
    result = kfac_factors(model, x, y)
    assert result.likelihood == "gaussian"
    r = (model(x) - y).detach()
    torch.testing.assert_close(result.layers[1].gamma, r.T @ r / 3, rtol=1e-12, atol=1e-15)
    official = kfac_factors(model, x, y, convention="official")
    torch.testing.assert_close(official.layers[1].gamma, r.T @ r / 27, rtol=1e-12, atol=1e-15)
    assert kfac_factors(model, x, torch.tensor([0, 1, 1])).likelihood == "categorical"
    with pytest.raises(ValueError, match="categorical likelihood needs integer"):
        kfac_factors(model, x, y, likelihood="categorical")
    with pytest.raises(ValueError, match="do not match the output"):
        kfac_factors(model, x, torch.randn(3, 5), likelihood="gaussian")
    with pytest.raises(ValueError, match="likelihood must be"):
        kfac_factors(model, x, y, likelihood="poisson")


# --------------------------------------------------------------------------- factor dtype


def test_factor_dtype_auto_is_float64():
    model = nn.Sequential(nn.Linear(3, 2)).float()
    f = kfac_factors(model, torch.randn(2, 3).float(), torch.tensor([0, 1])).layers[0]
    assert f.omega.dtype == f.gamma.dtype == torch.float64
    with pytest.raises(ValueError, match="factor_dtype must be 'auto'"):
        kfac_factors(model, torch.randn(2, 3).float(), torch.tensor([0, 1]),
                     factor_dtype="float16")


#: Measured on the cases below (batch 32, seed 0): worst |log lambda32 - log lambda64| of
#: factor eigenvalues above 1e-3 (1e-4) of the factor's largest: 4.6e-5 (2.4e-4); worst Eq. 2
#: distance between the float32 and float64 features of one function: 0.021 (tiny ViT; there
#: relu vs tanh is only 0.0024 apart, on the cnn 0.076), worst per-layer W1 6.5 log units.
FLOAT32_LOG_TOL = {1e-3: 2e-4, 1e-4: 1e-3}
FLOAT32_EQ2_TOL = 0.03


@pytest.mark.parametrize("arch,fn", [("cnn", "relu(x)"), ("cnn", "tanh(x)"),
                                     ("vit", "relu(x)")])
def test_float32_factors_agree_with_float64(arch, fn):
    """Explicit float32 factors (the fast choice on a GPU; not the default) against float64, on the
    CPU. Eigenvalues above 1e-3 (1e-4) of each factor's largest agree to ``FLOAT32_LOG_TOL``
    in log. Below ``n eps32`` of the largest float32 cannot resolve eigenvalues: its floor sets
    them to 0 where float64 keeps them (and the other way round for exact zeros that float32
    round-off lifts), so every eigenvalue that is zero in one dtype only is below ``10 n eps32``
    relative in float64. Those moves (a log-eigenvalue of, say, -30 clamped to -100) dominate
    the features' difference: the Eq. 2 distance is within ``FLOAT32_EQ2_TOL`` (module
    constants give the measured values: comparable to the distance between two activation
    functions on the tiny ViT, so float32 features are not interchangeable with float64 ones)."""
    from aquasurf_core.features.fim import fim_distance, random_batch
    from aquasurf_core.models import ARCHITECTURES, build_model

    torch.set_default_dtype(torch.float32)
    spec = ARCHITECTURES[arch]
    x, y = random_batch(spec.input_shape, spec.num_classes, 32, 0)
    model = build_model(arch, fn, seed=0)
    lo = kfac_factors(model, x, y, factor_dtype=torch.float32)
    hi = kfac_factors(model, x, y, factor_dtype=torch.float64)
    eps32 = torch.finfo(torch.float32).eps
    for a, b in zip(lo.layers, hi.layers, strict=True):
        assert a.omega.dtype == torch.float32 and b.omega.dtype == torch.float64
        for ma, mb in ((a.omega, b.omega), (a.gamma, b.gamma)):
            ea = factor_eigenvalues(ma, a.data_eps).double()
            eb = factor_eigenvalues(mb, b.data_eps)
            rel = eb / eb.max()
            for floor, tol in FLOAT32_LOG_TOL.items():
                keep = rel > floor
                worst = float((ea[keep].log() - eb[keep].log()).abs().max())
                assert worst < tol, (a.name, floor, worst)
            one_zero = (ea == 0) != (eb == 0)
            assert bool((rel[one_zero] < 10 * ma.shape[-1] * eps32).all()), a.name
    fa, fb = features_from_factors(lo), features_from_factors(hi)
    assert fa.valid and fb.valid
    assert fim_distance(fa.cdf, fb.cdf, fa.layout) < FLOAT32_EQ2_TOL


def test_features_of_a_model_with_every_new_layer():
    """Histogram features hold all |theta_l| eigenvalues of block-diagonal, diagonal and
    attention layers (the same count as the explicit eigenvalues)."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(11, 8, padding_idx=0)
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.grouped = nn.Conv1d(8, 12, 3, groups=4, padding=1)
            self.up = nn.ConvTranspose1d(12, 4, 2, stride=2)
            self.head = nn.Linear(4 * 10, 3)

        def forward(self, tokens):
            h = self.emb(tokens)
            h = torch.tanh(self.attn(h, h, h, need_weights=False)[0])
            h = torch.tanh(self.grouped(h.transpose(1, 2)))
            return self.head(torch.tanh(self.up(h)).flatten(1))

    torch.manual_seed(0)
    model = Net()
    x = torch.randint(0, 11, (6, 5))
    y = torch.randint(0, 3, (6,))
    feats = fim_features(model, x, y, keep_eigenvalues=True, min_coverage=1.0)
    assert feats.valid, feats.reason
    assert [s.kind for s in feats.layers] == ["embedding", "attention", "attention", "grouped",
                                              "conv_transpose", "dense"]
    assert sum(feats.layer_sizes) == sum(p.numel() for p in model.parameters())
    assert feats.coverage.fraction == 1.0
    factors = kfac_factors(model, x, y)
    for f, (eo, eg) in zip(factors.layers, feats.factor_eigenvalues, strict=True):
        assert layer_eigenvalues(f).numel() == f.num_params == eo.numel() // f.groups * (
            eg.numel())
    assert feats.summary_dict()["coverage"]["fraction"] == 1.0


def test_batch_forwards_min_coverage():
    from aquasurf_core.features.fim import fim_features_batch

    torch.set_default_dtype(torch.float32)
    with pytest.raises(CoverageError, match="norm"):  # the small ViT's LayerNorms
        fim_features_batch("vit", ["relu(x)"], batch_size=4, progress=False,
                           min_coverage=0.9999)
