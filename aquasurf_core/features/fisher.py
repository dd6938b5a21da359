"""K-FAC Kronecker factors of the Fisher information matrix at initialisation, and their
eigenvalues (paper Section 3, Eq. 1; Appendix C, Eqs. 4-18).

For every layer ``l`` with weights, K-FAC approximates the diagonal Fisher block by a Kronecker
product (Eq. 13/14)::

    F_ll = E[vec(DW_l) vec(DW_l)^T]  ~  Omega_{l-1} (x) Gamma_l

with ``W_l = (b_l  W_l)`` (bias column PREPENDED), ``Omega`` the second moment of the layer's
expanded input with a homogeneous 1 prepended (when the layer has a bias) and ``Gamma`` the
second moment of the gradient of the loss with respect to the layer's pre-activation output.
The parameter vector is ordered as ``vec`` stacks columns, ``vec(DW) = a (x) Ds`` (Eq. 10):
parameter ``(output i, input column j)`` sits at index ``j * I + i`` where column 0 is the bias
and columns ``1..`` follow the order of ``weight.reshape(I, -1)`` (for convolutions that is
PyTorch's ``unfold`` order: input channel major, then kernel offsets row-major).

Layers
------
``nn.Linear`` (any leading dimensions; all of them are rows, "examples x positions"),
``nn.Conv1d``/``nn.Conv2d`` with ``groups == 1`` (any kernel, stride, dilation, padding
including ``'same'`` and every ``padding_mode``), and depthwise convolutions
(``groups == in_channels == out_channels``). Affine normalisation layers (BatchNorm, LayerNorm,
GroupNorm, InstanceNorm, RMSNorm) are *reported* in :attr:`KFACFactors.skipped`, never mixed
in. Weightless modules are ignored. Any other module owning parameters (``nn.Embedding``,
``nn.MultiheadAttention`` with its fused ``in_proj_weight``, RNNs, grouped convolutions with
``1 < groups``, transposed convolutions, a bare ``nn.Parameter`` on a container...) raises
:class:`UnsupportedLayerError` naming it (or, with ``on_unsupported="skip"``, is reported as
skipped). A supported layer that is never called is reported as skipped; one called more than
once (weight sharing) raises.

Scaling conventions
-------------------
Let ``M`` be the batch size of ``inputs`` and ``R = M |T|`` the number of rows the layer sees
(examples x positions; for a dense layer on ``(M, N, d)`` tokens ``|T| = N``). ``P_H`` is the
``R x (1 + D)`` expanded input (Eq. 15, ``[[A]]_H``) and ``G`` the ``R x I`` matrix of output
gradients.

* ``convention="per_example"`` (default): the loss is the SUM of per-example cross-entropies,
  so row ``(m, t)`` of ``G`` is example ``m``'s own gradient ``DS`` (Eq. 6's ``D``), and::

      Omega = P_H^T P_H / M      (Eq. 17: sum over positions, mean over examples)
      Gamma = G^T G / R          (Eq. 18: 1/|T| E[DS^T DS])

  For one example at one position, ``Omega (x) Gamma`` is exactly that example's Fisher block
  ``vec(DW) vec(DW)^T``; for ``M`` examples at one position each factor is the batch mean.
* ``convention="official"``: as the authors' TensorFlow code: the gradient of the batch-MEAN
  loss (each row of ``G`` is ``1/M`` of the per-example one), ``Omega = P_H^T P_H / M`` and
  ``Gamma = G^T G / (M |T|)``. Hence ``Gamma_official = Gamma_per_example / M^2``.

Depthwise convolutions (Appendix C: ``[[A]]`` is ``M|T|J x |Delta|``): the channel is folded
into the rows of the expanded input, so ``Omega`` is ``(1 + |Delta|)`` square, and ``Gamma`` is
the ``J x J`` second moment of the output gradients exactly as for a standard convolution.
Their Kronecker product has ``(1 + |Delta|) J = |theta_l|`` eigenvalues. With
``per_example`` the channel-folded Gram matrix is divided by ``M J`` (a mean over channels as
well as examples), so the product is exact for one example at one position whenever all
channels see the same input patch (otherwise it additionally assumes the patch second moment is
the same in every channel). ``official`` follows Eq. 17 literally (divided by ``M`` only).

Numerics
--------
The forward and backward pass run in the model's own dtype and on its device (one forward, one
backward through input-gradients only: no parameter gradient is computed or accumulated).
By default (``factor_dtype=torch.float64``) everything is accumulated in float64: products
of float32 numbers are exact there, so the only error is the float64 summation, and
``torch.linalg.eigvalsh`` in float64 (values only) resolves eigenvalues down to ~1e-13 of the
largest one. Opt-in ``factor_dtype=None``: the products of the convolutions' ``Omega``
Gram matrices (the expensive ones) run in the model dtype (float32 for our models:
``sgemm``/``ssyrk``, ~1.5-2x the float64 rate on this CPU, far more on a GPU) over at most
``_WIDEN_ROWS`` rows at a time, and those partial products are summed in float64; the factors
are float64. Measured against all-float64 factors on All-CNN-C (relu/elu/tanh, batch 128),
eigenvalues down to 1e-7 of the largest agree to <= 6e-5 relative, with the same
zero counts under the floor below. But rounded float32 *sums* do not preserve
exact null spaces: on MobileViTv2-0.5 two pointwise convolutions whose input channels are
linearly dependent lose 31 of 64 and 46 of 96 exact zero eigenvalues (25,088 Kronecker
eigenvalues zero in float64 but not here) and one 64 x 64 ``Omega`` summed over 204,800 rows
is off by 1.2e-3 relative; an ``n eps32 lambda_max`` floor would instead zero hundreds of
well-resolved eigenvalues per layer. Hence float64 is the default. With ``None``, ``Gamma``
(the last layer's structural zero) and dense layers' ``Omega`` (rank-limited by the batch)
still use exact products (they are cheap), and a float32 product that overflows is redone
in float64. Any explicit ``factor_dtype`` is used for products, sums and the returned
factors.

Convolutions with stride 1 along their first spatial axis never form the expanded input:
:func:`shifted_gram` sums shifted products of the input expanded along the second axis only
(exact; ~``k - 1/2`` instead of ``k^2 / 2`` Gram-type flops for ``k`` taps along the first
axis). Depthwise Grams are batched ``|Delta| x |Delta|`` products per (example, channel).
On the CPU large products go through NumPy (``a.T @ a`` is a BLAS ``syrk``); large expanded
inputs are processed in chunks of examples to bound memory.

The signals themselves carry the round-off of the model dtype: if every entry of the ``R x n``
data matrix (expanded inputs or output gradients) is off by up to ``k eps_model`` relative, its
singular values move by up to ``sqrt(n) k eps_model sigma_max`` (Weyl), so Gram eigenvalues
below ``n (k eps_model)^2 lambda_max`` are not resolved (e.g. the exact zero of the last layer's
``Gamma``, softmax gradients summing to zero, shows up at ~1e-15 relative in float32). Hence
factor eigenvalues not larger than::

    floor = n * max(eps_factor, (10 eps_model)^2) * max|lambda|

(``n`` the factor size; ``k = 10`` allows for the round-off accumulated through the network)
are treated as exactly 0, negative round-off included, i.e. log = -inf;
:mod:`aquasurf_core.features.fim` decides what that means for the features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

FISHERS = ("empirical", "mc")
CONVENTIONS = ("per_example", "official")
#: Bound on the number of elements of one chunk of an expanded (unfolded) input.
_CHUNK_ELEMENTS = 1 << 23
#: CPU products/eigenproblems of at least this many flops go through NumPy (OpenBLAS) instead
#: of torch; smaller ones stay in torch, where switching thread pools costs more than it saves.
_NUMPY_MIN_FLOPS = 1 << 27
#: With low-precision products and wider sums (``factor_dtype=None`` on a float32 model), no
#: single product accumulates more than this many rows (see :func:`_tn`).
_WIDEN_ROWS = 4096

_NORM_TYPES: tuple[type, ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, SyncBatchNorm, InstanceNorm*
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())


class UnsupportedLayerError(ValueError):
    """A module owns parameters that K-FAC here cannot represent (the message names it)."""


@dataclass
class LayerFactors:
    """Kronecker factors of one layer (``omega`` and ``gamma`` on the model's device)."""

    name: str
    kind: str  # "dense" | "conv" | "depthwise"
    module_type: str
    num_params: int  # |theta_l|, bias included
    has_bias: bool
    omega: torch.Tensor
    gamma: torch.Tensor
    rows: int  # R = M |T| rows of the output gradient matrix
    positions: float  # |T| = R / M
    data_eps: float = 0.0  # machine epsilon of the model dtype (see factor_eigenvalues)

    @property
    def omega_dim(self) -> int:
        return int(self.omega.shape[0])

    @property
    def gamma_dim(self) -> int:
        return int(self.gamma.shape[0])

    @property
    def finite(self) -> bool:
        return bool(torch.isfinite(self.omega).all()) and bool(torch.isfinite(self.gamma).all())


@dataclass
class SkippedLayer:
    name: str
    module_type: str
    num_params: int
    reason: str


@dataclass
class KFACFactors:
    """Result of :func:`kfac_factors`: supported layers in module order, plus what was skipped."""

    layers: list[LayerFactors]
    skipped: list[SkippedLayer] = field(default_factory=list)
    loss: float = math.nan
    batch_size: int = 0
    fisher: str = "empirical"
    convention: str = "per_example"


# --------------------------------------------------------------------------- layer discovery


def _own_param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def classify_module(name: str, module: nn.Module) -> str | None:
    """``"dense"``, ``"conv"``, ``"depthwise"``, ``"norm"`` (affine normalisation, skipped) or
    ``None`` (no parameters of its own); raises :class:`UnsupportedLayerError` otherwise."""
    label = name or "<root>"
    if isinstance(module, nn.Linear):
        return "dense"
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        if module.groups == 1:
            return "conv"
        if module.groups == module.in_channels == module.out_channels:
            return "depthwise"
        raise UnsupportedLayerError(
            f"layer {label!r} ({type(module).__name__}): grouped convolution with groups="
            f"{module.groups}, in_channels={module.in_channels}, out_channels="
            f"{module.out_channels} is not supported (only groups=1 and depthwise)")
    if _own_param_count(module) == 0:
        return None
    if isinstance(module, _NORM_TYPES):
        return "norm"
    owned = ", ".join(n for n, _ in module.named_parameters(recurse=False))
    raise UnsupportedLayerError(
        f"layer {label!r} ({type(module).__name__}) owns parameters ({owned}) that K-FAC here "
        "cannot represent; supported: nn.Linear, nn.Conv1d, nn.Conv2d (groups=1 or depthwise)")


# --------------------------------------------------------------------------- expansion


def _conv_geometry(module: nn.Module) -> tuple[list[int], str, tuple, tuple, tuple]:
    """Padding (as for ``F.pad``), pad mode and 2-D kernel/dilation/stride of a conv."""
    pad = list(module._reversed_padding_repeated_twice)
    mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
    k, d, s = module.kernel_size, module.dilation, module.stride
    if isinstance(module, nn.Conv1d):
        return pad, mode, (1, k[0]), (1, d[0]), (1, s[0])
    return pad, mode, tuple(k), tuple(d), tuple(s)


def _unfold(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Patches ``(m, C * |Delta|, L)`` of a conv input ``x`` (``(m, C, L)`` or ``(m, C, H, W)``)
    in ``weight.reshape(out, -1)`` column order."""
    pad, mode, k, d, s = _conv_geometry(module)
    if any(pad):
        x = F.pad(x, pad, mode=mode) if mode != "constant" else F.pad(x, pad)
    if isinstance(module, nn.Conv1d):
        x = x.unsqueeze(2)
    return F.unfold(x, kernel_size=k, dilation=d, stride=s)


def _tn(a: torch.Tensor, b: torch.Tensor | None, out_dtype: torch.dtype) -> torch.Tensor:
    """``a^T b`` (``a^T a`` when ``b`` is None) of ``n x D`` matrices in their own dtype,
    returned in ``out_dtype``. When ``out_dtype`` is wider, the rows are taken
    ``_WIDEN_ROWS`` at a time and the partial products summed in ``out_dtype``, so the
    low-precision accumulation never runs over more than ``_WIDEN_ROWS`` terms. Large CPU
    products go through NumPy (OpenBLAS; ``a.T @ a`` is a ``syrk``, half the flops)."""
    n = a.shape[0]
    step = n if (out_dtype == a.dtype or n <= _WIDEN_ROWS) else _WIDEN_ROWS
    total = None
    for i in range(0, max(n, 1), step):
        x = a[i:i + step]
        y = None if b is None else b[i:i + step]
        big = x.shape[0] * x.shape[1] * (x.shape[1] if y is None else y.shape[1])
        if x.device.type == "cpu" and big >= _NUMPY_MIN_FLOPS:
            xn = x.contiguous().numpy()
            yn = xn if y is None else y.contiguous().numpy()
            with np.errstate(all="ignore"):  # non-finite signals are flagged downstream
                part = torch.from_numpy(xn.T @ yn)
        else:
            part = x.T @ (x if y is None else y)
        part = part.to(out_dtype)
        if out_dtype != x.dtype and not bool(torch.isfinite(part).all()):
            # overflow of low-precision products (huge but finite signals): redo widened
            x, y = x.to(out_dtype), None if y is None else y.to(out_dtype)
            part = x.T @ (x if y is None else y)
        total = part if total is None else total.add_(part)
    return total


def _gram(rows: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """``rows^T rows`` (see :func:`_tn`), in ``out_dtype`` (default: that of ``rows``)."""
    return _tn(rows, None, rows.dtype if out_dtype is None else out_dtype)


def _accumulate(acc: list, gram: torch.Tensor, colsum: torch.Tensor) -> None:
    """Add a chunk's Gram matrix and column sums to ``acc = [gram, colsum]``."""
    if acc[0] is None:
        acc[0], acc[1] = gram, colsum
    else:
        acc[0] += gram
        acc[1] += colsum


def _gram_update(acc: list, rows: torch.Tensor, out_dtype: torch.dtype) -> None:
    """Add ``rows^T rows`` and the column sums of ``rows`` (``n x D``) to ``acc``."""
    _accumulate(acc, _gram(rows, out_dtype), rows.sum(0, dtype=out_dtype))


def shift_decomposable(kind: str, module: nn.Module) -> bool:
    """Whether :func:`shifted_gram` applies: a ``groups=1`` convolution with stride 1 and a
    kernel of more than one tap along its first spatial axis."""
    return (kind == "conv" and module.stride[0] == 1 and module.kernel_size[0] > 1)


def shifted_gram(module: nn.Module, x: torch.Tensor, comp: torch.dtype, out: torch.dtype):
    """``(P^T P, column sums of P, rows of P)`` of a convolution's expanded input without
    forming ``P``: the exact shift ("Toeplitz") decomposition along the first spatial axis.

    Call that axis rows ``i``, the kernel taps along it ``a = 0..k-1`` (dilation ``d``), the
    padded input ``Hp`` rows and the output ``Ho = Hp - d (k - 1)`` rows (stride 1). Let
    ``U`` hold, for every padded row ``i``, example and output column, the input expanded
    along the remaining axis only (columns ``(c, b)``: channel, tap along the second axis;
    for ``Conv1d`` just ``c``), laid out row-major as ``(i, example, column)``. The patch
    entry ``(c, a, b)`` at output position ``(p, j)`` is ``U[p + a d][c, b]``, hence the
    ``(a, a')`` block of ``P^T P`` is::

        sum_{p < Ho} U[p + a d]^T U[p + a' d] = sum_{i = a d}^{a d + Ho - 1} U[i]^T U[i + s],
        s = (a' - a) d,

    a sum over a contiguous range of row-blocks of ``U``. Splitting ``[0, Hp)`` at the
    window ends ``a d`` and ``a d + Ho`` gives intervals ``I``; each block is the sum of the
    products ``P(s, I) = U[I]^T U[I + s]`` over the intervals in its window, and each
    ``(s, I)`` product is computed once and shared by all blocks with that shift and window
    (``(a', a)`` is the transpose). With ``k`` taps this costs ``(k - 1/2) |U|^2``-type flops
    instead of the ``k^2 / 2`` of the full Gram, and ``U`` is ``k`` times smaller than ``P``.
    Any padding mode, dilation and stride along the second axis is allowed (those enter
    ``U`` through ``F.pad`` and ``F.unfold``), so the result is exact (sums reordered)."""
    pad, mode, k, d, s = _conv_geometry(module)
    if any(pad):
        x = F.pad(x, pad, mode=mode) if mode != "constant" else F.pad(x, pad)
    m, c = x.shape[0], x.shape[1]
    if isinstance(module, nn.Conv1d):  # rows = positions, nothing to expand
        kh, dh, kw = module.kernel_size[0], module.dilation[0], 1
        hp, wo = x.shape[2], 1
        src = x.permute(2, 0, 1)  # (Hp, m, C)
    else:
        kh, dh, kw = k[0], d[0], k[1]
        if kw == 1 and s[1] == 1:
            hp, wo = x.shape[2], x.shape[3]
            src = x.permute(2, 0, 3, 1)  # (Hp, m, W, C)
        else:
            u = F.unfold(x, kernel_size=(1, kw), dilation=(1, d[1]), stride=(1, s[1]))
            hp = x.shape[2]
            wo = u.shape[2] // hp
            src = u.view(m, c * kw, hp, wo).permute(2, 0, 3, 1)  # (Hp, m, Wo, C kw)
    width = c * kw
    u = torch.empty(src.shape, dtype=comp, device=x.device)
    u.copy_(src)  # one copy: layout and accumulation dtype
    u = u.view(hp, m * wo, width)
    ho = hp - dh * (kh - 1)
    cuts = sorted({a * dh for a in range(kh)} | {a * dh + ho for a in range(kh)})
    intervals = list(zip(cuts[:-1], cuts[1:], strict=False))
    products: dict[tuple[int, int], torch.Tensor] = {}

    def product(shift: int, lo: int, hi: int) -> torch.Tensor:
        key = (shift, lo)
        if key not in products:
            a = u[lo:hi].reshape(-1, width)
            b = None if shift == 0 else u[lo + shift:hi + shift].reshape(-1, width)
            products[key] = _tn(a, b, out)
        return products[key]

    band = {lo: u[lo:hi].reshape(-1, width).sum(0, dtype=out) for lo, hi in intervals}
    gram = torch.zeros((c, kh, kw, c, kh, kw), dtype=out, device=x.device)
    colsum = torch.zeros((c, kh, kw), dtype=out, device=x.device)
    for a in range(kh):
        inside = [(lo, hi) for lo, hi in intervals if a * dh <= lo and hi <= a * dh + ho]
        colsum[:, a, :] = sum(band[lo] for lo, _ in inside).view(c, kw)
        for a2 in range(a, kh):
            shift = (a2 - a) * dh
            block = sum(product(shift, lo, hi) for lo, hi in inside).view(c, kw, c, kw)
            gram[:, a, :, :, a2, :] = block
            if a2 != a:
                gram[:, a2, :, :, a, :] = block.permute(2, 3, 0, 1)
    n = c * kh * kw
    return gram.view(n, n), colsum.view(n), m * ho * wo


def _input_gram(kind: str, module: nn.Module, x: torch.Tensor, comp: torch.dtype,
                out: torch.dtype):
    """``(P^T P, column sums of P, number of rows of P)`` of the expanded input ``P`` (no
    homogeneous column): products in ``comp``, sums of chunks in ``out``, over chunks of
    examples."""
    acc: list = [None, None]
    if kind == "dense":  # exact products: cheap, and rank deficiency (fewer rows than
        flat = x.reshape(-1, x.shape[-1])  # inputs) gives exact zeros only that way
        step = max(1, _CHUNK_ELEMENTS // max(1, flat.shape[1]))
        for i in range(0, flat.shape[0], step):
            _gram_update(acc, flat[i:i + step].to(out), out)
        return acc[0], acc[1], flat.shape[0]
    batched = x.dim() == (3 if isinstance(module, nn.Conv1d) else 4)
    if not batched:
        x = x.unsqueeze(0)
    m, c = x.shape[0], x.shape[1]
    pointwise = (kind == "conv" and all(k == 1 for k in module.kernel_size)
                 and not any(_conv_geometry(module)[0]))
    toeplitz = not pointwise and shift_decomposable(kind, module)
    width = module.kernel_size[-1] if toeplitz and isinstance(module, nn.Conv2d) else 1
    per_example = c * (width if toeplitz else math.prod(module.kernel_size)) * max(
        1, x[0, 0].numel())
    step = max(1, _CHUNK_ELEMENTS // per_example)
    n_rows = 0
    for i in range(0, m, step):
        chunk = x[i:i + step]
        if toeplitz:
            gram, colsum, rows = shifted_gram(module, chunk, comp, out)
            n_rows += rows
            _accumulate(acc, gram, colsum)
            continue
        if pointwise:  # 1x1 convolution: the patches are the (strided) input itself
            sub = chunk[(slice(None), slice(None)) + tuple(slice(None, None, st)
                                                           for st in module.stride)]
            src = sub.movedim(1, -1)  # (mc, *positions, C)
        else:
            patches = _unfold(module, chunk)  # (mc, C*|Delta|, L), still in the model dtype
            mc, cols, length = patches.shape
            if kind == "depthwise":  # (example, channel) blocks of |Delta| x L
                blocks = patches.reshape(mc * c, cols // c, length).to(comp)
                gram = torch.matmul(blocks, blocks.transpose(1, 2)).sum(0, dtype=out)
                colsum = blocks.sum((0, 2), dtype=out)
                n_rows += mc * c * length
                _accumulate(acc, gram, colsum)
                continue
            src = patches.transpose(1, 2)  # rows (example, position)
        # one copy does the transpose and the cast to the accumulation dtype
        rows = torch.empty(src.shape, dtype=comp, device=src.device)
        rows.copy_(src)
        rows = rows.view(-1, src.shape[-1])
        n_rows += rows.shape[0]
        _gram_update(acc, rows, out)
    return acc[0], acc[1], n_rows


def _homogeneous(gram: torch.Tensor, colsum: torch.Tensor, n_rows: int, bias: bool):
    """Gram matrix of ``(1  P)`` from that of ``P`` (the 1 column PREPENDED) when ``bias``."""
    if not bias:
        return gram
    d = gram.shape[0]
    out = gram.new_empty((d + 1, d + 1))
    out[0, 0] = n_rows
    out[0, 1:] = colsum
    out[1:, 0] = colsum
    out[1:, 1:] = gram
    return out


def _output_rows(state: _State, g: torch.Tensor) -> torch.Tensor:
    """The ``R x I`` matrix of output gradients (rows: examples x positions)."""
    if state.kind == "dense":
        return g.reshape(-1, g.shape[-1])
    if not state.batched:
        g = g.unsqueeze(0)
    return g.movedim(1, -1).reshape(-1, g.shape[1])


# --------------------------------------------------------------------------- hooks


class _State:
    def __init__(self, name: str, module: nn.Module, kind: str, comp: torch.dtype,
                 out: torch.dtype):
        self.name, self.module, self.kind = name, module, kind
        self.comp, self.out = comp, out  # product dtype, dtype of sums and results
        self.calls = 0
        self.batched = True
        self.omega: torch.Tensor | None = None
        self.in_rows = 0
        self.gamma: torch.Tensor | None = None
        self.out_rows = 0


class _Tap(torch.autograd.Function):
    """Identity on a layer's output whose backward records ``G^T G`` of the incoming gradient.
    ``anchor`` (a scalar requiring grad) puts every tap on the path of ``grad(loss, anchor)``,
    so the backward pass computes input gradients only."""

    @staticmethod
    def forward(ctx, output, anchor, state):
        ctx.state = state
        return output.clone()  # a clone: later in-place ops must not rewrite this node

    @staticmethod
    def backward(ctx, grad):
        state: _State = ctx.state
        # Gamma in the output dtype: cheap (I columns), and its exact structural zeros (the
        # last layer's softmax gradients sum to 0) survive only with exact products
        rows = _output_rows(state, grad).to(state.out)
        state.gamma = _gram(rows, state.out)
        state.out_rows = rows.shape[0]
        return grad, None, None


def _forward_hook(state: _State, anchor: torch.Tensor):
    def hook(module, args, output):
        state.calls += 1
        if state.calls > 1:
            raise UnsupportedLayerError(
                f"layer {state.name!r} ({type(module).__name__}) is called more than once in "
                "one forward pass (shared weights are not supported)")
        if not args or not isinstance(args[0], torch.Tensor):
            raise UnsupportedLayerError(f"layer {state.name!r}: input is not a tensor")
        x = args[0].detach()
        if state.kind != "dense":
            state.batched = x.dim() == (3 if isinstance(module, nn.Conv1d) else 4)
        gram, colsum, n_rows = _input_gram(state.kind, module, x, state.comp,
                                               state.out)
        state.omega = _homogeneous(gram, colsum, n_rows, module.bias is not None)
        state.in_rows = n_rows
        return _Tap.apply(output, anchor, state)

    return hook


# --------------------------------------------------------------------------- public API


def _model_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype, p.device
    raise ValueError("model has no floating-point parameters")


def sample_labels(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Labels ``y ~ softmax(logits)`` (class dimension 1), Eq. 1's model distribution. Rows
    with non-finite logits get label 0 (their gradients are non-finite anyway)."""
    z = logits.detach().movedim(1, -1).reshape(-1, logits.shape[1]).double()
    ok = torch.isfinite(z).all(dim=1)
    probs = torch.softmax(torch.where(ok[:, None], z, torch.zeros_like(z)), dim=1)
    y = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    y = torch.where(ok, y, torch.zeros_like(y))
    return y.reshape(logits.movedim(1, -1).shape[:-1])


def _check_arguments(fisher: str, convention: str, on_unsupported: str, inputs,
                     targets) -> None:
    if fisher not in FISHERS:
        raise ValueError(f"fisher must be one of {FISHERS}, got {fisher!r}")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    if on_unsupported not in ("error", "skip"):
        raise ValueError(f"on_unsupported must be 'error' or 'skip', got {on_unsupported!r}")
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 1 or inputs.shape[0] < 1:
        raise ValueError("inputs must be a tensor with a non-empty leading batch dimension")
    if fisher == "empirical" and targets is None:
        raise ValueError("fisher='empirical' needs targets (class labels)")


def _factor_dtypes(factor_dtype, model_dtype: torch.dtype) -> tuple[torch.dtype, torch.dtype]:
    """``(dtype of the products, dtype of the sums and factors)``."""
    if factor_dtype is None:  # products in the model dtype, sums and factors in float64
        return model_dtype, torch.promote_types(model_dtype, torch.float64)
    if isinstance(factor_dtype, torch.dtype) and factor_dtype.is_floating_point:
        return factor_dtype, factor_dtype
    raise ValueError(f"factor_dtype must be None or a floating torch.dtype, got {factor_dtype!r}")


def _collect_layers(model: nn.Module, on_unsupported: str, comp: torch.dtype,
                    out: torch.dtype) -> tuple[list[_State], list[SkippedLayer]]:
    """One :class:`_State` per supported layer in module order; normalisation layers (and,
    with ``on_unsupported="skip"``, unsupported ones) are reported as skipped."""
    states: list[_State] = []
    skipped: list[SkippedLayer] = []
    for name, module in model.named_modules():
        try:
            kind = classify_module(name, module)
        except UnsupportedLayerError as error:
            if on_unsupported == "error":
                raise
            skipped.append(SkippedLayer(name, type(module).__name__, _own_param_count(module),
                                        f"unsupported layer type: {error}"))
            continue
        if kind == "norm":
            skipped.append(SkippedLayer(name, type(module).__name__, _own_param_count(module),
                                        "affine normalisation layer (not part of K-FAC here)"))
        elif kind is not None:
            states.append(_State(name, module, kind, comp, out))
    if not states:
        raise UnsupportedLayerError("model has no supported layer with weights")
    return states, skipped


def _forward_backward(model: nn.Module, states: list[_State], x: torch.Tensor, targets,
                      fisher: str, convention: str, seed: int,
                      generator: torch.Generator | None) -> tuple[torch.Tensor, bool]:
    """One forward pass with the layers' hooks collecting ``Omega`` Grams, and (when the
    loss is finite) one backward pass to the taps collecting ``Gamma`` Grams; returns the
    loss and whether it is finite."""
    dtype, device = _model_dtype_device(model)
    anchor = torch.zeros((), device=device, dtype=dtype, requires_grad=True)
    handles = [s.module.register_forward_hook(_forward_hook(s, anchor)) for s in states]
    devices = ([device.index if device.index is not None else torch.cuda.current_device()]
               if device.type == "cuda" else [])
    try:
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            torch.manual_seed(seed)
            logits = model(x)
            if not isinstance(logits, torch.Tensor) or logits.dim() < 2:
                raise ValueError("model must return logits of shape (batch, classes, ...)")
            if fisher == "mc":
                if generator is None:
                    generator = torch.Generator(device=device).manual_seed(seed)
                y = sample_labels(logits, generator)
            else:
                y = targets.to(device=device, dtype=torch.long)
            reduction = "sum" if convention == "per_example" else "mean"
            loss = F.cross_entropy(logits, y, reduction=reduction)
            # A non-finite loss (exploding or undefined signals) makes every Gamma undefined:
            # skip the backward pass, which for such functions is the slowest part, and
            # report Gamma as NaN (the features then flag the function invalid).
            loss_finite = bool(torch.isfinite(loss))
            if loss_finite:
                torch.autograd.grad(loss, anchor, allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    return loss, loss_finite


def _layer_factors(states: list[_State], skipped: list[SkippedLayer], m: int,
                   convention: str, loss_finite: bool, dtype: torch.dtype,
                   device: torch.device) -> list[LayerFactors]:
    """Scale the accumulated Grams into the factors of every layer that was called (Eqs.
    17-18 and the module docstring's conventions); layers never called are skipped."""
    layers: list[LayerFactors] = []
    for s in states:
        mod = s.module
        n_params = _own_param_count(mod)
        if s.calls == 0:
            skipped.append(SkippedLayer(s.name, type(mod).__name__, n_params,
                                        "not called in the forward pass"))
            continue
        if s.gamma is None:  # the loss is not finite, or does not depend on this output
            fill = 0.0 if loss_finite else math.nan
            s.gamma = torch.full((mod.weight.shape[0],) * 2, fill, dtype=s.out, device=device)
            s.out_rows = s.in_rows if s.kind != "depthwise" else s.in_rows // mod.in_channels
        omega_scale = m * mod.in_channels if (s.kind == "depthwise"
                                               and convention == "per_example") else m
        layers.append(LayerFactors(
            name=s.name, kind=s.kind, module_type=type(mod).__name__, num_params=n_params,
            has_bias=mod.bias is not None, omega=s.omega / omega_scale,
            gamma=s.gamma / s.out_rows, rows=s.out_rows, positions=s.out_rows / m,
            data_eps=torch.finfo(dtype).eps))
        expect = layers[-1].omega_dim * layers[-1].gamma_dim
        if expect != n_params:
            raise RuntimeError(f"layer {s.name!r}: factor sizes {layers[-1].omega_dim} x "
                               f"{layers[-1].gamma_dim} do not match {n_params} parameters")
    return layers


def kfac_factors(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    fisher: str = "empirical",
    convention: str = "per_example",
    seed: int = 0,
    generator: torch.Generator | None = None,
    factor_dtype: torch.dtype | None = torch.float64,
    on_unsupported: str = "error",
) -> KFACFactors:
    """K-FAC factors ``Omega`` and ``Gamma`` of every supported layer, in module order, from
    one forward and one backward pass of ``model`` on ``(inputs, targets)``.

    The model outputs logits (class dimension 1); the loss is cross-entropy (the negative
    log-likelihood of a categorical distribution, Eq. 6). ``fisher="empirical"`` uses
    ``targets``; ``fisher="mc"`` ignores them and samples labels from the model's own
    predictive distribution (Eq. 1) with ``generator`` (default: a generator on the model's
    device seeded with ``seed``). The model runs in its current train/eval mode; the global
    RNG is forked and seeded with ``seed`` for the pass (dropout is reproducible and the
    caller's RNG state is untouched). ``inputs`` are batch-first (``M = inputs.shape[0]``).
    With BatchNorm in train mode the examples interact through the batch statistics, so the
    rows of ``G`` are gradients of the summed loss rather than strictly per-example ones. See
    the module docstring for the scaling conventions.

    Raises ``ValueError`` for bad arguments and :class:`UnsupportedLayerError` naming a layer
    K-FAC cannot represent (unless ``on_unsupported="skip"``).
    """
    _check_arguments(fisher, convention, on_unsupported, inputs, targets)
    dtype, device = _model_dtype_device(model)
    comp, out = _factor_dtypes(factor_dtype, dtype)
    states, skipped = _collect_layers(model, on_unsupported, comp, out)
    x = inputs.to(device=device, dtype=dtype) if inputs.is_floating_point() else inputs.to(device)
    loss, loss_finite = _forward_backward(model, states, x, targets, fisher, convention, seed,
                                          generator)
    m = int(x.shape[0])
    layers = _layer_factors(states, skipped, m, convention, loss_finite, dtype, device)
    return KFACFactors(layers, skipped, float(loss.detach()), m, fisher, convention)


def _eigvalsh(matrix: torch.Tensor) -> torch.Tensor:
    """Ascending eigenvalues of a symmetric matrix: ``torch.linalg.eigvalsh`` (cuSOLVER on
    CUDA); for large matrices on the CPU ``numpy.linalg.eigvalsh``, the same LAPACK ``syevd``
    through NumPy's OpenBLAS, which here is 1.5-4x faster than torch's MKL build (AMD EPYC)."""
    if (matrix.device.type == "cpu" and matrix.dtype in (torch.float32, torch.float64)
            and matrix.shape[0] ** 3 >= _NUMPY_MIN_FLOPS):
        return torch.from_numpy(np.linalg.eigvalsh(matrix.numpy()))
    return torch.linalg.eigvalsh(matrix)


def factor_eigenvalues(matrix: torch.Tensor, data_eps: float = 0.0) -> torch.Tensor:
    """Eigenvalues (ascending) of a symmetric PSD factor (LAPACK ``syevd``); values
    ``<= n * max(eps, (10 data_eps)^2) * max|lambda|`` (round-off, negatives included; see the
    module docstring) are set to exactly 0. A non-finite matrix gives all-NaN (no exception)."""
    n = matrix.shape[0]
    if not bool(torch.isfinite(matrix).all()):
        return torch.full((n,), math.nan, dtype=matrix.dtype, device=matrix.device)
    ev = _eigvalsh(matrix)
    rel = n * max(torch.finfo(matrix.dtype).eps, (10.0 * data_eps) ** 2)
    floor = ev.abs().max() * rel
    return torch.where(ev > floor, ev, torch.zeros_like(ev))


def kronecker_eigenvalues(
    omega_eigs: torch.Tensor, gamma_eigs: torch.Tensor, log_scale: bool = True
) -> torch.Tensor:
    """All ``|Omega| x |Gamma|`` eigenvalues of ``Omega (x) Gamma`` from those of the factors,
    in ``torch.kron`` order (index ``i * |Gamma| + j``): pairwise sums of log-eigenvalues
    (natural log; a zero factor eigenvalue gives -inf) or, with ``log_scale=False``, products.
    """
    if log_scale:
        return (torch.log(omega_eigs)[:, None] + torch.log(gamma_eigs)[None, :]).reshape(-1)
    return (omega_eigs[:, None] * gamma_eigs[None, :]).reshape(-1)


def layer_eigenvalues(layer: LayerFactors, log_scale: bool = True) -> torch.Tensor:
    """Eigenvalues of ``layer.omega (x) layer.gamma`` (``|theta_l|`` of them)."""
    return kronecker_eigenvalues(factor_eigenvalues(layer.omega, layer.data_eps),
                                 factor_eigenvalues(layer.gamma, layer.data_eps), log_scale)


def kfac_eigenvalues(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    fisher: str = "empirical",
    log_scale: bool = True,
    convention: str = "per_example",
    **kwargs,
) -> list[torch.Tensor]:
    """One 1-D tensor per supported layer (module order) with the eigenvalues of its K-FAC
    block ``Omega (x) Gamma`` (log-scaled pairwise sums by default, never forming the Kronecker
    product). Other keyword arguments go to :func:`kfac_factors`."""
    result = kfac_factors(model, inputs, targets, fisher=fisher, convention=convention, **kwargs)
    return [layer_eigenvalues(layer, log_scale) for layer in result.layers]
