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
Every module with weights becomes one or more K-FAC blocks (:class:`LayerFactors`, with a
``kind``):

* ``"dense"`` -- ``nn.Linear`` (any leading dimensions; all of them are rows, "examples x
  positions").
* ``"conv"`` -- ``nn.Conv1d``/``nn.Conv2d`` with ``groups == 1`` (any kernel, stride,
  dilation, padding including ``'same'`` and every ``padding_mode``).
* ``"depthwise"`` -- ``groups == in_channels == out_channels`` (one block, channels folded
  into the rows; see below).
* ``"grouped"`` -- any other ``groups > 1`` (including depthwise with a channel multiplier,
  ``out_channels = k in_channels``): BLOCK-DIAGONAL, one Kronecker block per group,
  ``F_g ~ Omega_g (x) Gamma_g`` with ``Omega_g`` from the patches of group ``g``'s input
  channels and ``Gamma_g`` from its output channels' gradients; stored as ``omega``
  ``(G, D, D)`` and ``gamma`` ``(G, I, I)``; the layer's eigenvalues are the union of the
  groups' (``G D I = |theta_l|``). Parameters of group ``g``: rows ``g I .. (g + 1) I - 1`` of
  ``weight``/``bias``, ordered within the group as for a convolution.
* ``"conv_transpose"`` -- ``nn.ConvTranspose1d``/``2d`` (any stride, padding, output padding
  or ``output_size``, dilation, groups): the equivalent stride-1 convolution of the
  zero-inserted, re-padded input with the flipped kernel (:func:`transposed_patches`), so
  the expanded input at each output position pairs with that position's output gradient and
  K-FAC is that of a convolution (per group as above). Parameter order: that of the
  equivalent weight ``W'[o, c, i, j] = weight[c, o, k_h - 1 - i, k_w - 1 - j]``.
* ``"embedding"`` -- ``nn.Embedding``: a linear layer without bias on one-hot inputs, ``W =
  weight^T``, so ``vec(DW)`` is ``weight.grad`` row-major. ``Omega = diag(token counts) / M``
  is DIAGONAL and stored as its diagonal (``omega`` of shape ``(V,)``; no ``V x V`` matrix is
  formed); ``Gamma`` is the second moment of the output gradients over the token positions.
  ``padding_idx`` rows get zero gradient in PyTorch, so padding positions are left out of both
  factors (their counts are 0: zero eigenvalues, exactly as in the true Fisher block).
  ``max_norm`` (rows renormalised in the forward pass: not linear in the weights) is refused.
* ``"attention"`` -- ``nn.MultiheadAttention``. PyTorch runs it through
  ``F.multi_head_attention_forward`` (the fused ``in_proj_weight``, or ``q/k/v_proj_weight``
  when ``kdim``/``vdim`` differ, and ``out_proj.weight`` through ``F.linear``, so hooks on
  ``out_proj`` never fire). During the pass its forward is replaced by the equivalent
  :func:`attention_forward` (restored afterwards, also on errors), whose projections are
  tapped. Each projection is a linear layer applied to every token: K-FAC with weight
  sharing, the "expand" variant (Eschenhagen et al. 2023): tokens are rows, ``Omega`` the sum
  over tokens ``/ M``, ``Gamma`` the per-token gradient second moment, exactly as for a dense
  layer on ``(M, N, d)``. Self-attention calls (``query is key is value``) with the fused
  weight make ONE block ``name.in_proj`` (``E -> 3E``, ``Gamma`` ``3E x 3E``); other calls
  make ``name.q_proj``, ``name.k_proj``, ``name.v_proj`` (the fused block's rows are folded
  into those when a layer is called both ways); ``name.out_proj`` is one more block.
  ``bias_k``/``bias_v`` are reported as skipped (kind ``"attention"``).

Layers called more than once in one forward pass (shared weights) accumulate ``Omega`` and
``Gamma`` over the calls, every call's rows being more positions (the expand variant again).
Affine normalisation layers (BatchNorm, LayerNorm, GroupNorm, InstanceNorm, RMSNorm) are
*reported* in :attr:`KFACFactors.skipped` (kind ``"norm"``), never mixed in. Weightless
modules are ignored. Anything else owning parameters -- recurrent layers (``"recurrent"``),
parameters held by a container such as ViT's ``class_token`` (``"unowned"``), any other module
(``"other"``) -- raises :class:`UnsupportedLayerError` listing all of them, or with
``on_unsupported="skip"`` is reported as skipped. :attr:`KFACFactors.coverage` (a
:class:`Coverage`) gives the share of parameters covered, by kind. A supported layer that is
never called is reported as skipped (with its own kind).

Likelihoods: ``"categorical"`` (cross-entropy on logits, Eq. 6) or ``"gaussian"``
(unit-variance Gaussian, ``0.5 sum (f - y)^2``; ``fisher="mc"`` samples ``y ~ N(f, 1)``), and
``"auto"``, Gaussian for floating-point targets or a single output column.

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
  With ``likelihood="gaussian"`` the per-example loss is ``0.5 sum (f - y)^2`` instead (its
  gradient ``f - y``; summed over examples).
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
``factor_dtype="auto"`` (the default) is float64 on every device (the wider of float64 and the
model dtype): float32 factors were measured not to agree closely enough (below), and one
search's workers may mix CPUs and GPUs, whose features must be interchangeable. With float64
everything is accumulated in float64: products of float32 numbers are exact there, so the only
error is the float64 summation, and
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
well-resolved eigenvalues per layer. Hence float64 is the default. Explicit float32 factors
(``factor_dtype=torch.float32``, the fast choice on a GPU; measured on
the CPU in tests/features/test_fisher_layers.py, small models of
:mod:`aquasurf_core.models`, batch 32): eigenvalues above 1e-3 (1e-4) of a factor's largest
agree with float64 to 4.6e-5 (2.4e-4) in log, but float32 cannot resolve eigenvalues below
``n eps32`` of the largest, so its floor zeroes some that float64 keeps (and float32
round-off lifts some exact zeros); those moves make the Eq. 2 distance between the float32 and
float64 features of one function up to 0.021 (tiny ViT), as large as the distance between two
activation functions on that model: features from float32 and float64 factors are not
interchangeable, which is why ``"auto"`` is float64 on CUDA too. With ``None``, ``Gamma``
(the last layer's structural zero) and dense layers' ``Omega`` (rank-limited by the batch)
still use exact products (they are cheap), and a float32 product that overflows is redone
in float64. Any explicit ``factor_dtype`` is used for products, sums and the returned
factors.

Convolutions with stride 1 along their first spatial axis never form the expanded input:
:func:`shifted_gram` sums shifted products of the input expanded along the second axis only
(exact; ~``k - 1/2`` instead of ``k^2 / 2`` Gram-type flops for ``k`` taps along the first
axis). Depthwise Grams are batched ``|Delta| x |Delta|`` products per (example, channel).
On the CPU large products go through NumPy (``a.T @ a`` is a BLAS ``syrk``), on as many
BLAS threads as torch has (:func:`numpy_blas_threads`); large expanded inputs are processed in
chunks of examples to bound memory. On CUDA the pass runs float32 convolutions and products in
full float32, never TF32 (:func:`full_float32_precision`).

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

import contextlib
import functools
import itertools
import math
import threading
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from threadpoolctl import ThreadpoolController
from torch import nn
from torch.nn import functional as F

FISHERS = ("empirical", "mc")
CONVENTIONS = ("per_example", "official")
#: Bound on the number of elements of one chunk of an expanded (unfolded) input.
_CHUNK_ELEMENTS = 1 << 23
#: Entries per chunk when rows are cast and multiplied (:func:`_row_chunks`).
_CAST_ELEMENTS = 1 << 21
#: CPU products/eigenproblems of at least this many flops may go through NumPy (OpenBLAS)
#: instead of torch (:func:`_numpy_product`); smaller ones stay in torch, where switching
#: thread pools costs more than it saves.
_NUMPY_MIN_FLOPS = 1 << 27
#: ``a.T @ a`` with at least this many columns is NumPy's ``syrk`` (half the flops) even
#: where torch's BLAS is MKL: measured on an Intel Xeon (Sapphire Rapids, one thread, 2^21
#: float64 entries): 256 columns 11.9 ms in NumPy's ``syrk`` against 15.9 ms in torch's
#: ``gemm``, 4096 x 1152 110 against 206 ms; at 128 columns they tie (7.4 ms), below it
#: torch is faster (32 columns: 2.4 against 3.8 ms).
_NUMPY_SYRK_MIN_COLUMNS = 144
#: With low-precision products and wider sums (``factor_dtype=None`` on a float32 model), no
#: single product accumulates more than this many rows (see :func:`_tn`).
_WIDEN_ROWS = 4096

_NORM_TYPES: tuple[type, ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, SyncBatchNorm, InstanceNorm*
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())
_RECURRENT_TYPES: tuple[type, ...] = (nn.RNNBase, nn.RNNCellBase)
#: Kinds of K-FAC blocks (covered) and of what is skipped (see :class:`Coverage`).
COVERED_KINDS = ("dense", "conv", "depthwise", "grouped", "conv_transpose", "attention",
                 "embedding")
SKIPPED_KINDS = ("norm", "recurrent", "unowned", "other")
LIKELIHOODS = ("auto", "categorical", "gaussian")


class UnsupportedLayerError(ValueError):
    """A module owns parameters that K-FAC here cannot represent (the message names it)."""


class CoverageError(UnsupportedLayerError):
    """K-FAC covers a smaller share of the parameters than required (the message holds the
    coverage report and the threshold)."""


@dataclass
class LayerFactors:
    """Kronecker factors of one layer (``omega`` and ``gamma`` on the model's device).

    Shapes: ``omega`` is ``(D, D)``, or ``(D,)`` for a DIAGONAL factor (``nn.Embedding``: the
    entries are its eigenvalues), or ``(G, D, D)`` for a block-diagonal layer of ``G``
    independent Kronecker blocks (grouped convolutions), in which case ``gamma`` is
    ``(G, I, I)`` and block ``g`` is ``omega[g] (x) gamma[g]``."""

    name: str
    kind: str  # one of COVERED_KINDS
    module_type: str
    num_params: int  # |theta_l|, bias included
    has_bias: bool
    omega: torch.Tensor
    gamma: torch.Tensor
    rows: int  # R = M |T| rows of the output gradient matrix (per group)
    positions: float  # |T| = R / M
    data_eps: float = 0.0  # machine epsilon of the model dtype (see factor_eigenvalues)
    #: ``r x D`` with ``omega == omega_rows.T @ omega_rows`` (homogeneous column and scale
    #: included) when the layer's expanded input has fewer rows than columns (``r < D``: few
    #: examples times positions, e.g. the last stages of a ResNet on small images); its
    #: ``r x r`` dual gives ``omega``'s eigenvalues (:func:`factor_eigenvalues`). None otherwise.
    omega_rows: torch.Tensor | None = None
    #: ``r x I`` with ``gamma == gamma_rows.T @ gamma_rows`` when the layer's output gradients
    #: have fewer rows than ``I`` (e.g. a wide layer on 1 x 1 maps: 128 rows, 576 columns in
    #: MobileNetV3); its dual gives ``gamma``'s eigenvalues as for ``omega_rows``. None otherwise.
    gamma_rows: torch.Tensor | None = None

    @property
    def omega_dim(self) -> int:
        """Size of ``Omega`` (the layer's input dimension, bias column included)."""
        return int(self.omega.shape[-1])

    @property
    def gamma_dim(self) -> int:
        """Size of ``Gamma`` (the layer's output dimension)."""
        return int(self.gamma.shape[-1])

    @property
    def groups(self) -> int:
        """Number of independent Kronecker blocks (1 unless block-diagonal)."""
        return int(self.omega.shape[0]) if self.omega.dim() == 3 else 1

    @property
    def diagonal(self) -> bool:
        """Whether ``omega`` is stored as its diagonal."""
        return self.omega.dim() == 1

    @property
    def finite(self) -> bool:
        """Whether both factors are free of NaN and infinity."""
        return all_finite(self.omega) and all_finite(self.gamma)


@dataclass
class SkippedLayer:
    """Parameters K-FAC leaves out: a module (or, for ``kind="unowned"``, parameters held by
    a container), its kind (one of :data:`SKIPPED_KINDS` or, for a supported layer that was
    not called, its own kind) and the qualified names of the parameters."""

    name: str
    module_type: str
    num_params: int
    reason: str
    kind: str = "other"
    parameters: tuple[str, ...] = ()


@dataclass
class Coverage:
    """Which share of a model's parameters K-FAC covers.

    ``covered``/``total`` count parameters (elements); ``by_kind`` maps a layer kind
    (:data:`COVERED_KINDS` and :data:`SKIPPED_KINDS`) to ``(covered, total)`` parameters of that
    kind; ``skipped_names`` maps a kind to the names of what was skipped (parameter names for
    ``"unowned"``, module names otherwise), for the report."""

    covered: int
    total: int
    by_kind: dict[str, tuple[int, int]]
    skipped_names: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """``covered / total`` (1.0 for a model without parameters)."""
        return 1.0 if self.total == 0 else self.covered / self.total

    def table(self) -> pd.DataFrame:
        """One row per kind: ``kind``, ``parameters`` (of that kind), ``covered`` and ``share``
        (``parameters / total``: the kind's share of the model), largest kinds first."""
        rows = [(k, t, c, t / self.total if self.total else math.nan)
                for k, (c, t) in self.by_kind.items()]
        frame = pd.DataFrame(rows, columns=["kind", "parameters", "covered", "share"])
        return frame.sort_values("parameters", ascending=False, kind="stable").reset_index(
            drop=True)

    def __str__(self) -> str:
        text = f"K-FAC covers {100 * self.fraction:.1f}% of {self.total:,} parameters"
        parts = []
        for kind, (c, t) in self.by_kind.items():
            if t - c <= 0:
                continue
            pct = 100 * (t - c) / self.total
            part = f"{kind} {pct:.1f}%" if pct >= 0.05 else f"{kind} <0.1%"
            names = self.skipped_names.get(kind, ())
            if names and kind != "norm":
                shown = ", ".join(names[:4]) + (f", +{len(names) - 4} more"
                                                 if len(names) > 4 else "")
                part += f" ({shown})"
            parts.append(part)
        return text + ("; skipped: " + ", ".join(parts) if parts else "")


@dataclass
class KFACFactors:
    """Result of :func:`kfac_factors`: supported layers in module order, plus what was skipped
    (:attr:`coverage` summarises both)."""

    layers: list[LayerFactors]
    skipped: list[SkippedLayer] = field(default_factory=list)
    loss: float = math.nan
    batch_size: int = 0
    fisher: str = "empirical"
    convention: str = "per_example"
    likelihood: str = "categorical"

    @property
    def coverage(self) -> Coverage:
        """Parameters in :attr:`layers` against all parameters, by kind."""
        by_kind: dict[str, list[int]] = {}
        names: dict[str, list[str]] = {}
        for f in self.layers:
            entry = by_kind.setdefault(f.kind, [0, 0])
            entry[0] += f.num_params
            entry[1] += f.num_params
        for s in self.skipped:
            by_kind.setdefault(s.kind, [0, 0])[1] += s.num_params
            if s.num_params:
                names.setdefault(s.kind, []).extend(
                    s.parameters if s.kind == "unowned" else (s.name or "<root>",))
        covered = sum(c for c, _ in by_kind.values())
        total = sum(t for _, t in by_kind.values())
        return Coverage(covered, total, {k: (c, t) for k, (c, t) in by_kind.items()},
                        {k: tuple(v) for k, v in names.items()})


# --------------------------------------------------------------------------- layer discovery


def _own_param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def _module_kind(module: nn.Module) -> tuple[str | None, str | None]:
    """``(kind, reason)``: the kind of block a module is (``None``: no parameters of its own,
    or the ``out_proj`` of an attention layer, handled by that layer) and, when K-FAC cannot
    represent it, why (``None`` when it can or when it is a normalisation layer)."""
    if isinstance(module, nn.Linear):
        return "dense", None
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        if module.groups == 1:
            return "conv", None
        if module.groups == module.in_channels == module.out_channels:
            return "depthwise", None
        return "grouped", None
    if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d)):
        return "conv_transpose", None
    if isinstance(module, nn.MultiheadAttention):
        return "attention", None
    if isinstance(module, nn.Embedding):
        if module.max_norm is not None:
            return "embedding", ("nn.Embedding with max_norm renormalises its weight rows in "
                                 "the forward pass (not linear in the weights); not supported")
        return "embedding", None
    if _own_param_count(module) == 0:
        return None, None
    if isinstance(module, _NORM_TYPES):
        return "norm", None
    owned = ", ".join(n for n, _ in module.named_parameters(recurse=False))
    if isinstance(module, _RECURRENT_TYPES):
        return "recurrent", f"recurrent layer (owns {owned}); not supported"
    if next(module.children(), None) is not None:
        return "unowned", (f"parameters ({owned}) held by a container, not by a layer K-FAC "
                           "can represent")
    return "other", (f"owns parameters ({owned}) that K-FAC here cannot represent; supported: "
                     "nn.Linear, nn.Conv1d/2d (any groups), nn.ConvTranspose1d/2d, "
                     "nn.MultiheadAttention, nn.Embedding")


def classify_module(name: str, module: nn.Module) -> str | None:
    """The kind of K-FAC block of a module (one of :data:`COVERED_KINDS`), ``"norm"`` (affine
    normalisation, skipped) or ``None`` (no parameters of its own); raises
    :class:`UnsupportedLayerError` naming the module otherwise."""
    kind, reason = _module_kind(module)
    if reason is not None:
        raise UnsupportedLayerError(f"layer {name or '<root>'!r} ({type(module).__name__}): "
                                    f"{reason}")
    return kind


# --------------------------------------------------------------------------- expansion


def _conv_geometry(module: nn.Module) -> tuple[list[int], str, tuple, tuple, tuple]:
    """Padding (as for ``F.pad``), pad mode and 2-D kernel/dilation/stride of a conv."""
    pad = list(module._reversed_padding_repeated_twice)
    mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
    k, d, s = module.kernel_size, module.dilation, module.stride
    if isinstance(module, nn.Conv1d):
        return pad, mode, (1, k[0]), (1, d[0]), (1, s[0])
    return pad, mode, tuple(k), tuple(d), tuple(s)


def _pad(x: torch.Tensor, pad: list[int], mode: str) -> torch.Tensor:
    """``x`` padded as a convolution pads its input (``pad``, ``mode`` from
    :func:`_conv_geometry`); ``x`` itself without padding."""
    if not any(pad):
        return x
    return F.pad(x, pad, mode=mode) if mode != "constant" else F.pad(x, pad)


_SCRATCH = threading.local()


def scratch(slot: str, shape: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialised ``shape`` tensor of ``dtype`` carved from this thread's CPU buffer
    named ``slot``, kept between calls and grown when too small. A fresh allocation of tens
    of MB is handed back to the OS when freed, so every first touch of each 4 KiB page costs
    a page fault (measured: zero-filling a fresh 147 MB float64 buffer took 0.11 s, most of a
    strided depthwise layer's Gram). Only for temporaries that die before the next use of the
    same slot; a slot holds at most ``8 * _CHUNK_ELEMENTS``-ish bytes as every user is chunked.
    Off the CPU it is a plain ``torch.empty`` (the CUDA caching allocator reuses memory)."""
    device = torch.device(device)
    if device.type != "cpu":
        return torch.empty(shape, dtype=dtype, device=device)
    size = math.prod(shape) * dtype.itemsize
    buf = getattr(_SCRATCH, slot, None)
    if buf is None or buf.numel() < size:
        buf = torch.empty(size, dtype=torch.uint8)
        setattr(_SCRATCH, slot, buf)
    return buf[:size].view(dtype).view(shape)


def _row_chunks(src: torch.Tensor, elements: int = _CAST_ELEMENTS) -> list[torch.Tensor]:
    """Views of about ``elements`` entries each that together hold the rows of ``src`` (all
    axes but the last are rows): leading axes are merged while that is a view, then split.
    Casting and multiplying chunks of ~2^21 entries (16 MB in float64, about the CPU's L2)
    was measured 10-40% faster than 2^23 (e.g. 204800 x 64 float32 gradients: 42 against
    51 ms for the cast and Gram), and no copy of the whole matrix is ever made."""
    lead = src
    while lead.dim() > 2:
        try:
            lead = lead.view((lead.shape[0] * lead.shape[1],) + tuple(lead.shape[2:]))
        except RuntimeError:  # not viewable: split the first axis
            break
    step = max(1, elements // max(1, math.prod(lead.shape[1:])))
    return [lead[i:i + step] for i in range(0, lead.shape[0], step)]


def _rows(src: torch.Tensor, dtype: torch.dtype, slot: str | None = None) -> torch.Tensor:
    """The ``R x D`` matrix of ``src``'s last axis (leading axes are rows) in ``dtype``,
    contiguous: one copy does the layout change and the cast (none when ``src`` already is
    that matrix). In :func:`scratch` ``slot`` when given, else in fresh memory."""
    if src.dtype == dtype and src.is_contiguous():
        return src.view(-1, src.shape[-1])
    rows = (torch.empty(src.shape, dtype=dtype, device=src.device) if slot is None
            else scratch(slot, tuple(src.shape), dtype, src.device))
    rows.copy_(src)
    return rows.view(-1, src.shape[-1])


def _unfold(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Patches ``(m, C * |Delta|, L)`` of a conv input ``x`` (``(m, C, L)`` or ``(m, C, H, W)``)
    in ``weight.reshape(out, -1)`` column order."""
    pad, mode, k, d, s = _conv_geometry(module)
    x = _pad(x, pad, mode)
    if isinstance(module, nn.Conv1d):
        x = x.unsqueeze(2)
    return F.unfold(x, kernel_size=k, dilation=d, stride=s)


def _planar(module: nn.Module, x: torch.Tensor):
    """A conv input as 4-D ``(m, C, H, W)`` with the padding still to apply (zeros) as
    ``(top, bottom, left, right)`` -- other padding modes are applied here and give zeros --
    and the 2-D kernel, dilation and stride. A ``Conv1d`` input ``(m, C, L)`` becomes
    ``(m, C, 1, L)``."""
    pad, mode, k, d, s = _conv_geometry(module)
    if mode != "constant":
        x = _pad(x, pad, mode)
        pad = [0] * len(pad)
    if isinstance(module, nn.Conv1d):
        return x.unsqueeze(2), (0, 0, pad[0], pad[1]), k, d, s
    return x, (pad[2], pad[3], pad[0], pad[1]), k, d, s


def _span(start: int, step: int, count: int, before: int, n: int) -> tuple[int, int, int]:
    """Of the padded positions ``start + step * i`` (``0 <= i < count``), the range ``[lo, hi)``
    of ``i`` inside the unpadded input (padded positions ``[before, before + n)``), and the
    input index of position ``lo``."""
    lo = max(0, -((start - before) // step))
    hi = min(count, -((start - before - n) // step))
    return lo, hi, start + step * lo - before


def expanded_input(module: nn.Module, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The expanded input (Eq. 15's ``[[A]]``, without the homogeneous column) of a ``groups=1``
    convolution on a batched input ``x``, as a ``(H_o, m, W_o, T, C)`` tensor in ``dtype``:
    row ``(i, example, j)``, column ``(tap, channel)`` -- TAP-major, the transpose of
    ``weight.reshape(out, -1)``'s channel-major order (:func:`weight_order` converts a Gram
    matrix).

    Built in :func:`scratch` slot ``"expand"`` with one strided copy per kernel offset from
    ``x`` (which does the cast), no ``F.unfold`` and no separate cast or transpose; with a
    channels-last ``x`` every copy moves contiguous runs of channels. Zero padding is never
    materialised: each offset copies the positions inside the input and zeroes the border
    strips outside it. Disjoint patches (stride = kernel, a ViT's patch embedding) are one
    copy."""
    x, (top, bottom, left, right), k, d, s = _planar(module, x)
    m, c, h, w = x.shape
    hp, wp = h + top + bottom, w + left + right
    ho = (hp - d[0] * (k[0] - 1) - 1) // s[0] + 1
    wo = (wp - d[1] * (k[1] - 1) - 1) // s[1] + 1
    taps_i, taps_j = [a * d[0] for a in range(k[0])], [b * d[1] for b in range(k[1])]
    out = scratch("expand", (ho, m, wo, k[0] * k[1], c), dtype, x.device)
    if (tuple(k) == tuple(s) and tuple(d) == (1, 1)
            and not any((top, bottom, left, right))):  # disjoint patches: one copy
        src = x[:, :, :ho * k[0], :wo * k[1]].unflatten(3, (wo, k[1])).unflatten(2, (ho, k[0]))
        out.view(ho, m, wo, k[0], k[1], c).copy_(src.permute(2, 0, 4, 3, 5, 1))
        return out
    for a, oi in enumerate(taps_i):
        i0, i1, src_i = _span(oi, s[0], ho, top, h)
        for b, oj in enumerate(taps_j):
            j0, j1, src_j = _span(oj, s[1], wo, left, w)
            dest = out[:, :, :, a * k[1] + b]
            if i0 > 0:
                dest[:i0].zero_()
            if i1 < ho:
                dest[i1:].zero_()
            if j0 > 0:
                dest[i0:i1, :, :j0].zero_()
            if j1 < wo:
                dest[i0:i1, :, j1:].zero_()
            if i1 > i0 and j1 > j0:
                dest[i0:i1, :, j0:j1].copy_(
                    x[:, :, src_i:src_i + s[0] * (i1 - i0 - 1) + 1:s[0],
                      src_j:src_j + s[1] * (j1 - j0 - 1) + 1:s[1]].permute(2, 0, 3, 1))
    return out


def weight_order(gram: torch.Tensor, colsum: torch.Tensor, taps: int, channels: int):
    """``(gram, colsum)`` of tap-major columns ``(tap, channel)`` (:func:`expanded_input`)
    reordered to ``weight.reshape(out, -1)``'s channel-major ``(channel, tap)`` columns."""
    n = taps * channels
    return (gram.view(taps, channels, taps, channels).permute(1, 0, 3, 2).reshape(n, n),
            colsum.view(taps, channels).T.reshape(n))


@functools.cache
def _blas_pools() -> ThreadpoolController:
    """The BLAS thread pools loaded in this process (found once)."""
    return ThreadpoolController()


def numpy_blas_threads():
    """A context in which NumPy's BLAS (OpenBLAS) runs on ``torch.get_num_threads()``
    threads: the large CPU products and eigenproblems go through NumPy, whose pool otherwise
    keeps one thread per core whatever torch was told. A search worker runs torch on one
    thread; with NumPy's pool on every core beside it, two workers on our 2 cores ran those
    calls 10-40x slower (measured: 4.5 s for one 577 x 577 ``eigvalsh`` that takes 20 ms on one
    thread), as OpenBLAS's threads wait for cores the other workers hold."""
    return _blas_pools().limit(limits=torch.get_num_threads(), user_api="blas")


@functools.cache
def mkl_on_intel() -> bool:
    """Whether torch's BLAS and LAPACK are MKL on an Intel CPU. There MKL's ``gemm`` and
    ``syevd`` beat NumPy's OpenBLAS (one thread, Xeon Sapphire Rapids: ``eigvalsh`` of
    1729 x 1729 in 260 ms against 484 ms, ``a.T @ b`` 10-30% faster), while on the AMD EPYC
    this code was first tuned on, OpenBLAS was 1.5-4x faster than MKL's generic code path."""
    if not torch.backends.mkl.is_available():
        return False
    try:
        with open("/proc/cpuinfo") as info:
            return any(line.startswith("vendor_id") and "GenuineIntel" in line
                       for line in info)
    except OSError:
        return False


def _numpy_product(rows: int, cols_a: int, cols_b: int | None) -> bool:
    """Whether the CPU product ``a^T b`` (``a^T a`` when ``cols_b`` is None) of ``rows``-row
    matrices goes through NumPy: large enough, and either a ``syrk`` of at least
    ``_NUMPY_SYRK_MIN_COLUMNS`` columns or a CPU where MKL is not the faster library."""
    if rows * cols_a * (cols_a if cols_b is None else cols_b) < _NUMPY_MIN_FLOPS:
        return False
    if not mkl_on_intel():
        return True
    return cols_b is None and cols_a >= _NUMPY_SYRK_MIN_COLUMNS


def all_finite(t: torch.Tensor) -> bool:
    """Whether every entry of ``t`` is finite, from its largest and smallest entries (NaN
    propagates through both; +-inf is one of them): two reductions and no ``numel``-sized
    boolean temporary, which on a 4609 x 4609 factor is most of the check's time."""
    if t.numel() == 0:
        return True
    if not (t.is_floating_point() or t.is_complex()):
        return True
    return bool(torch.isfinite(t.amax())) and bool(torch.isfinite(t.amin()))


def _as_numpy(t: torch.Tensor) -> np.ndarray:
    """A NumPy view of a CPU matrix that is contiguous or the transpose of a contiguous
    one (no copy), else a contiguous copy."""
    if t.is_contiguous():
        return t.numpy()
    if t.T.is_contiguous():
        return t.T.numpy().T
    return t.contiguous().numpy()


def _tn(a: torch.Tensor, b: torch.Tensor | None, out_dtype: torch.dtype) -> torch.Tensor:
    """``a^T b`` (``a^T a`` when ``b`` is None) of ``n x D`` matrices in their own dtype,
    returned in ``out_dtype``. When ``out_dtype`` is wider, the rows are taken
    ``_WIDEN_ROWS`` at a time and the partial products summed in ``out_dtype``, so the
    low-precision accumulation never runs over more than ``_WIDEN_ROWS`` terms. Large CPU
    products go through NumPy (OpenBLAS; ``a.T @ a`` is a ``syrk``, half the flops)."""
    n = a.shape[0]
    step = max(1, n if (out_dtype == a.dtype or n <= _WIDEN_ROWS) else _WIDEN_ROWS)
    total = None
    for i in range(0, max(n, 1), step):
        x = a[i:i + step]
        y = None if b is None else b[i:i + step]
        if x.device.type == "cpu" and _numpy_product(x.shape[0], x.shape[1],
                                                     None if y is None else y.shape[1]):
            # a transposed view of a contiguous matrix goes to NumPy as that view (no copy):
            # NumPy still sees ``a.T @ a`` as a ``syrk``
            xn = _as_numpy(x)
            yn = xn if y is None else _as_numpy(y)
            with np.errstate(all="ignore"), numpy_blas_threads():  # non-finite: flagged later
                part = torch.from_numpy(xn.T @ yn)
        else:
            part = x.T @ (x if y is None else y)
        part = part.to(out_dtype)
        if out_dtype != x.dtype and not all_finite(part):
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
    """Whether :func:`shifted_gram` applies: a ``groups=1`` convolution with stride 1 along
    every axis and more than one kernel tap."""
    return (kind == "conv" and all(st == 1 for st in module.stride)
            and math.prod(module.kernel_size) > 1)


def shifted_gram(module: nn.Module, x: torch.Tensor, comp: torch.dtype, out: torch.dtype):
    """``(P^T P, column sums of P, rows of P)`` of a stride-1 convolution's expanded input
    without forming ``P``: the exact shift ("Toeplitz") decomposition along both axes.

    Let ``X[i, j]`` be the ``m x C`` slab of the padded input at position ``(i, j)`` and
    ``t_a = a d`` the kernel offsets (per axis). The ``(c, a, b), (c', a', b')`` block of
    ``P^T P`` is ``sum_{(i, j) in W_ab} X[i, j]^T X[i + D_i, j + D_j]``, ``D = (t_a' - t_a,
    t_b' - t_b)``, over the window ``W_ab = [t_a, t_a + Ho) x [t_b, t_b + Wo)``. Held in one
    buffer laid out ``(i, j, example, channel)``, the rows ``[i0, i1) x [0, Wp)`` of ``X``
    and their shifts by ``D`` are contiguous matrices, so each block is::

        sum over row intervals I of W_ab:  X[I, :]^T X[I + D]  -  sum_{j not in the
        window's columns} X[I, j]^T X[I + D_i, j + D_j]

    (the shift of a whole row wraps into the next one only at columns outside the window,
    where the strip products remove exactly what the full product added). Splitting the rows
    at the window ends ``t_a``, ``t_a + Ho`` lets blocks with the same shift share products.
    With ``k_h x k_w`` taps that is about ``(2 k_h - 1)(2 k_w - 1)`` products of the input's
    ``C`` columns (25 for 3 x 3, plus the edge strips) instead of the ``k^2 (k^2 + 1) / 2``
    of the full Gram (45), and one cast copy of the input instead of ``|Delta|``. Exact
    (the sums of ``P^T P``, reordered and with the wrapped products subtracted again)."""
    x, (top, bottom, left, right), k, d, _ = _planar(module, x)
    m, c, h, w = x.shape
    hp, wp = h + top + bottom, w + left + right
    ho, wo = hp - d[0] * (k[0] - 1), wp - d[1] * (k[1] - 1)
    span = d[1] * (k[1] - 1)
    front = span * m  # rows of margin: a shifted whole row may start before the input
    buf = scratch("expand", (front + hp * wp * m + span * m, c), comp, x.device)
    buf[:front].zero_()
    buf[front + hp * wp * m:].zero_()
    grid = buf[front:front + hp * wp * m].view(hp, wp, m, c)
    for part in (grid[:top], grid[top + h:], grid[top:top + h, :left],
                 grid[top:top + h, left + w:]):
        if part.numel():
            part.zero_()
    grid[top:top + h, left:left + w].copy_(x.permute(2, 3, 0, 1))
    ta, tb = [a * d[0] for a in range(k[0])], [b * d[1] for b in range(k[1])]
    cuts = sorted(set(ta) | {t + ho for t in ta})
    intervals = list(zip(cuts[:-1], cuts[1:], strict=False))
    full: dict = {}
    strip: dict = {}

    def whole_rows(di: int, dj: int, lo: int, hi: int) -> torch.Tensor:
        if (di, dj, lo) not in full:
            a = buf[front + lo * wp * m:front + hi * wp * m]
            start = front + ((lo + di) * wp + dj) * m
            b = None if di == dj == 0 else buf[start:start + (hi - lo) * wp * m]
            full[di, dj, lo] = _tn(a, b, out)
        return full[di, dj, lo]

    def column(di: int, dj: int, lo: int, hi: int, j: int) -> torch.Tensor:
        if (di, dj, lo, j) not in strip:
            step, base = wp * m * c, buf.storage_offset() + (front + (lo * wp + j) * m) * c
            a = torch.as_strided(buf, (hi - lo, m, c), (step, c, 1), base)
            b = torch.as_strided(buf, (hi - lo, m, c), (step, c, 1),
                                 base + (di * wp + dj) * m * c)
            strip[di, dj, lo, j] = torch.bmm(a.transpose(1, 2), b).sum(0, dtype=out)
        return strip[di, dj, lo, j]

    n_taps = k[0] * k[1]
    gram = torch.empty((c, n_taps, c, n_taps), dtype=out, device=x.device)
    colsum = torch.empty((c, n_taps), dtype=out, device=x.device)
    row_sums = buf[front:front + hp * wp * m].view(hp, wp, m, c).sum(2, dtype=out)
    for a, ia in enumerate(ta):
        inside = [(lo, hi) for lo, hi in intervals if ia <= lo and hi <= ia + ho]
        for b, jb in enumerate(tb):
            p = a * k[1] + b
            outside = [j for j in range(wp) if not jb <= j < jb + wo]
            colsum[:, p] = row_sums[ia:ia + ho, jb:jb + wo].sum((0, 1))
            for p2 in range(p, n_taps):
                di, dj = ta[p2 // k[1]] - ia, tb[p2 % k[1]] - jb
                block = sum(whole_rows(di, dj, lo, hi) for lo, hi in inside)
                for lo, hi in inside:
                    for j in outside:
                        block = block - column(di, dj, lo, hi, j)
                gram[:, p, :, p2] = block
                if p2 != p:
                    gram[:, p2, :, p] = block.T
    n = c * n_taps
    return gram.view(n, n), colsum.view(n), m * ho * wo


def _banded_dots(buf: torch.Tensor, start: int, start2: int, n: int, width: int, tile: int):
    """``out[u, j, p, p2] = <buf[start + u, p], buf[start2 + u + j, p2]>`` for ``u < n`` (a
    multiple of ``tile``), ``j < width`` and all ``p, p2`` of ``buf`` (``(rows, P, r)``): the
    band of the products of ``tile`` consecutive rows with the ``tile + width - 1`` rows they
    need, one ``torch.bmm`` of ``tile P x (tile + width - 1) P`` blocks (overlapping strided
    views, no copy). Per-row dot products (``bmm`` of ``width x r`` by ``r x 1``) would cost
    one tiny GEMM per row, several times slower on the CPU."""
    phases, r = buf.shape[1], buf.shape[2]
    step, base = tile * phases * r, buf.storage_offset()
    rows = torch.as_strided(buf, (n // tile, tile * phases, r), (step, r, 1),
                            base + start * phases * r)
    near = torch.as_strided(buf, (n // tile, (tile + width - 1) * phases, r), (step, r, 1),
                            base + start2 * phases * r)
    block = torch.bmm(rows, near.transpose(1, 2)).view(n // tile, tile, phases,
                                                       tile + width - 1, phases)
    return torch.stack([block.diagonal(j, 1, 3).permute(0, 3, 1, 2).reshape(n, phases, phases)
                        for j in range(width)], 1)


def depthwise_gram(module: nn.Module, x: torch.Tensor, dtype: torch.dtype):
    """``(P^T P, column sums of P, rows of P)`` of a depthwise convolution's channel-folded
    expanded input ``P`` (one row per example, channel and output position, one column per
    kernel offset ``(a, b)``, row-major: ``P[(n, c, p), (a, b)] = x_pad[n, c, s p + d (a, b)]``)
    without forming ``P``: a shift decomposition along both axes.

    Per axis, tap ``a`` reads padded position ``s p + a d = s (p + q_a) + phi_a`` (phase
    ``phi_a = a d mod s``, offset ``q_a = a d div s``). Let ``X[u, phi]`` be the vector over
    (example, channel) of the padded input at position ``s u + phi`` (both axes), held in
    ``dtype`` in one buffer laid out ``(u_i, u_j, phi, example, channel)``. Then::

        (P^T P)[a, a'] = sum_{u in W_a} <X[u, phi_a], X[u + q_a' - q_a, phi_a']>,
        W_a = [q_a_i, q_a_i + Ho) x [q_a_j, q_a_j + Wo)  (tap a's window; a' >= a row-major)

    so every entry is a window sum of a map of dot products. For each offset ``D_i`` along
    the first axis, the maps of every pair of phases and every ``D_j`` needed are the band of
    one ``torch.bmm`` of blocks of consecutive positions (:func:`_banded_dots`). For stride 1
    that is ``k_i (2 k_j - 1)`` multiply-adds per input element (15 for 3 x 3, with a block's
    waste) against ``|Delta| (|Delta| + 1) / 2`` per row of ``P`` (45), and one cast copy of
    the input instead of ``|Delta|``. Exact in ``dtype``: the products and sums of ``P^T P``,
    reordered."""
    x, (top, bottom, left, right), k, d, s = _planar(module, x)
    m, c, h, w = x.shape
    hp, wp = h + top + bottom, w + left + right
    ho = (hp - d[0] * (k[0] - 1) - 1) // s[0] + 1
    wo = (wp - d[1] * (k[1] - 1) - 1) // s[1] + 1
    taps_i = [((a * d[0]) % s[0], (a * d[0]) // s[0]) for a in range(k[0])]
    taps_j = [((b * d[1]) % s[1], (b * d[1]) // s[1]) for b in range(k[1])]
    li, lj = -(-hp // s[0]), -(-wp // s[1])  # positions of a phase along each axis (at most)
    phases = {p: t for t, p in enumerate(itertools.product(sorted({p for p, _ in taps_i}),
                                                           sorted({p for p, _ in taps_j})))}
    qi_max, qj_max = taps_i[-1][1], taps_j[-1][1]
    nb, r = li * lj, m * c
    tile = 4 if len(phases) == 1 else 2  # positions per block (measured best of 1-16)
    padded_nb = -(-nb // tile) * tile
    front = qj_max  # margins keep every shifted view inside the buffer
    buf = scratch("expand", (front + padded_nb + qi_max * lj + qj_max + tile, len(phases), r),
                  dtype, x.device)
    buf[:front].zero_()
    buf[front + nb:].zero_()
    for (pi, pj), t in phases.items():
        i0, i1, src_i = _span(pi, s[0], li, top, h)
        j0, j1, src_j = _span(pj, s[1], lj, left, w)
        grid = buf[front:front + nb, t].view(li, lj, m, c)
        for part in (grid[:i0], grid[i1:], grid[i0:i1, :j0], grid[i0:i1, j1:]):
            if part.numel():
                part.zero_()  # zero padding, and the end of a shorter phase
        if i1 > i0 and j1 > j0:
            grid[i0:i1, j0:j1].copy_(x[:, :, src_i:src_i + s[0] * (i1 - i0 - 1) + 1:s[0],
                                       src_j:src_j + s[1] * (j1 - j0 - 1) + 1:s[1]].permute(
                                           2, 3, 0, 1))
    taps = [(ti, tj) for ti in taps_i for tj in taps_j]  # row-major kernel offsets
    pairs: dict[int, list[tuple[int, int, int, int, int]]] = {}
    for a, ((pi, qi), (pj, qj)) in enumerate(taps):
        for a2 in range(a, len(taps)):
            (pi2, qi2), (pj2, qj2) = taps[a2]
            pairs.setdefault(qi2 - qi, []).append(
                (a, a2, qj2 - qj, phases[pi, pj], phases[pi2, pj2]))
    index, values = [], []
    for di, items in pairs.items():
        lo = min(dj for _, _, dj, _, _ in items)
        width = max(dj for _, _, dj, _, _ in items) - lo + 1
        maps = _banded_dots(buf, front, front + di * lj + lo, padded_nb, width, tile)
        maps = maps[:nb].view(li, lj, width, len(phases), len(phases))
        window: dict[tuple[int, int], torch.Tensor] = {}
        for a, a2, dj, t, t2 in items:
            (_, qi), (_, qj) = taps[a]
            if (qi, qj) not in window:
                window[qi, qj] = maps[qi:qi + ho, qj:qj + wo].sum((0, 1))
            index.append((a, a2))
            values.append(window[qi, qj][dj - lo, t, t2])
    n = len(taps)
    gram = torch.empty((n, n), dtype=dtype, device=x.device)
    ii, jj = torch.tensor(index, device=x.device).T
    vals = torch.stack(values)
    gram[ii, jj] = vals
    gram[jj, ii] = vals
    sums = buf[front:front + nb].sum(-1).view(li, lj, len(phases))
    colsum = torch.stack([sums[qi:qi + ho, qj:qj + wo, phases[pi, pj]].sum()
                          for (pi, qi), (pj, qj) in taps])
    return gram, colsum, m * c * ho * wo


def _input_gram(kind: str, module: nn.Module, x: torch.Tensor, comp: torch.dtype,
                out: torch.dtype):
    """``(P^T P, column sums of P, number of rows of P)`` of the expanded input ``P`` (no
    homogeneous column): products in ``comp``, sums of chunks in ``out``, over chunks of
    examples."""
    acc: list = [None, None]
    n_rows = 0
    if kind == "dense":  # exact products: cheap, and rank deficiency (fewer rows than
        for chunk in _row_chunks(x if x.dim() > 1 else x.unsqueeze(0)):  # inputs) gives
            rows = _rows(chunk, out, "rows")  # exact zeros only that way
            n_rows += rows.shape[0]
            _gram_update(acc, rows, out)
        return acc[0], acc[1], n_rows
    batched = x.dim() == (3 if isinstance(module, nn.Conv1d) else 4)
    if not batched:
        x = x.unsqueeze(0)
    m, c = x.shape[0], x.shape[1]
    if (kind == "conv" and all(k == 1 for k in module.kernel_size)
            and not any(_conv_geometry(module)[0])):  # 1x1: the patches are the input itself
        sub = x[(slice(None), slice(None)) + tuple(slice(None, None, st) for st in module.stride)]
        for chunk in _row_chunks(sub.movedim(1, -1)):  # rows (example, *positions)
            rows = _rows(chunk, comp, "rows")
            n_rows += rows.shape[0]
            _gram_update(acc, rows, out)
        return acc[0], acc[1], n_rows
    toeplitz = shift_decomposable(kind, module)
    if toeplitz:
        expansion = 1  # shifted_gram's buffer is the padded input
    elif kind == "depthwise" and comp == out:
        expansion = 1  # depthwise_gram's buffer is the padded input
    else:  # P: |Delta| columns at 1 / prod(stride) of the positions
        expansion = -(-math.prod(module.kernel_size) // math.prod(module.stride))
    per_example = c * expansion * max(1, x[0, 0].numel())
    step = max(1, _CHUNK_ELEMENTS // per_example)
    for i in range(0, m, step):
        chunk = x[i:i + step]
        if kind == "depthwise" and comp == out:
            gram, colsum, rows = depthwise_gram(module, chunk, out)
            n_rows += rows
            _accumulate(acc, gram, colsum)
            continue
        if toeplitz:
            gram, colsum, rows = shifted_gram(module, chunk, comp, out)
            n_rows += rows
            _accumulate(acc, gram, colsum)
            continue
        if kind == "depthwise":  # products in comp: (example, channel) blocks |Delta| x L
            patches = _unfold(module, chunk)  # (mc, C*|Delta|, L), still in the model dtype
            mc, cols, length = patches.shape
            blocks = patches.reshape(mc * c, cols // c, length).to(comp)
            gram = torch.matmul(blocks, blocks.transpose(1, 2)).sum(0, dtype=out)
            colsum = blocks.sum((0, 2), dtype=out)
            n_rows += mc * c * length
            _accumulate(acc, gram, colsum)
            continue
        else:  # rows (output position, example), tap-major columns
            p = expanded_input(module, chunk, comp)
            rows = p.view(-1, p.shape[-2] * c)
            n_rows += rows.shape[0]
            _accumulate(acc, *weight_order(_gram(rows, out), rows.sum(0, dtype=out),
                                           p.shape[-2], c))
    return acc[0], acc[1], n_rows


def _homogeneous(gram: torch.Tensor, colsum: torch.Tensor, n_rows: int, bias: bool):
    """Gram matrix of ``(1  P)`` from that of ``P`` (the 1 column PREPENDED) when ``bias``;
    leading (group) dimensions are kept."""
    if not bias:
        return gram
    d = gram.shape[-1]
    out = gram.new_empty(gram.shape[:-2] + (d + 1, d + 1))
    out[..., 0, 0] = n_rows
    out[..., 0, 1:] = colsum
    out[..., 1:, 0] = colsum
    out[..., 1:, 1:] = gram
    return out


def _output_rows(kind: str, batched: bool, g: torch.Tensor) -> torch.Tensor:
    """The output gradients as a view ``(m, ..., I)``: the leading axes (examples first, then
    positions) are the rows of the ``R x I`` matrix, the output channel is last."""
    if kind in ("dense", "attention", "embedding"):
        return g if g.dim() > 1 else g.unsqueeze(0)
    if not batched:
        g = g.unsqueeze(0)
    return g.movedim(1, -1)


# --------------------------------------------------------------------------- grouped layers


def transposed_patches(module: nn.Module, x: torch.Tensor, out_shape) -> torch.Tensor:
    """Expanded input ``(m, C * |Delta|, L)`` of a transposed convolution (``x`` batched,
    ``out_shape`` its spatial output size): the convolution of the zero-inserted input with
    the flipped kernel.

    ``ConvTranspose`` with stride ``s``, padding ``p``, dilation ``d``, kernel ``k`` (and any
    output padding) equals a stride-1 convolution with dilation ``d`` of the input with
    ``s - 1`` zeros inserted between neighbours, padded by ``d (k - 1) - p`` before and by
    whatever makes the output ``out_shape`` after (negative padding crops), with the weight
    ``W'[o, c, i, j] = W[c, o, k_h - 1 - i, k_w - 1 - j]`` (per group). So the patches of that
    padded, zero-inserted input are the expanded input paired with each output position's
    gradient; columns are in ``W'.reshape(O, -1)`` order (input channel major, then kernel
    offsets of the FLIPPED kernel row-major)."""
    one_d = isinstance(module, nn.ConvTranspose1d)
    k, s = tuple(module.kernel_size), tuple(module.stride)
    d, p = tuple(module.dilation), tuple(module.padding)
    if one_d:
        x = x.unsqueeze(2)
        out_shape = (1,) + tuple(out_shape)
        k, s, d, p = (1,) + k, (1,) + s, (1,) + d, (0,) + p
    m, c, h, w = x.shape
    up = x.new_zeros((m, c, (h - 1) * s[0] + 1, (w - 1) * s[1] + 1))
    up[:, :, ::s[0], ::s[1]] = x
    pads = []
    for axis in (1, 0):  # F.pad order: last axis first
        lo = d[axis] * (k[axis] - 1) - p[axis]
        hi = out_shape[axis] + d[axis] * (k[axis] - 1) - up.shape[2 + axis] - lo
        pads += [lo, hi]
    up = F.pad(up, pads)
    return F.unfold(up, kernel_size=k, dilation=d)


def _grouped_gram(patches_of, x: torch.Tensor, groups: int, per_example: int,
                  comp: torch.dtype, out: torch.dtype):
    """Per-group ``(P_g^T P_g, column sums of P_g, rows)`` of the expanded input: ``gram``
    ``(G, D, D)``, ``colsum`` ``(G, D)``, over chunks of examples (``patches_of(chunk)`` gives
    ``(m, G D, L)`` patches with each group's columns contiguous; ``per_example = G D L``)."""
    m = x.shape[0]
    step = max(1, _CHUNK_ELEMENTS // per_example)
    acc: list = [None, None]
    rows = 0
    for i in range(0, m, step):
        p = patches_of(x[i:i + step])
        mc, cols, length = p.shape
        blocks = p.reshape(mc, groups, cols // groups, length).to(comp)
        gram = torch.matmul(blocks, blocks.transpose(-1, -2)).sum(0, dtype=out)
        _accumulate(acc, gram, blocks.sum((0, 3), dtype=out))
        rows += mc * length
    return acc[0], acc[1], rows


def _grouped_output_gram(g: torch.Tensor, groups: int, out: torch.dtype):
    """Per-group ``G_g^T G_g`` ``(G, I_g, I_g)`` of a batched conv output gradient
    ``(m, I, *positions)``, and the rows per group."""
    rows = g.movedim(1, -1).reshape(-1, groups, g.shape[1] // groups).transpose(0, 1).to(out)
    return torch.matmul(rows.transpose(1, 2), rows), rows.shape[1]


# --------------------------------------------------------------------------- attention


def _float_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A boolean mask (True = masked out) as an additive float mask (-inf where masked);
    float masks are returned as they are."""
    if mask is None or mask.is_floating_point():
        return mask
    if mask.dtype != torch.bool:
        raise ValueError(f"attention masks must be bool or floating point, got {mask.dtype}")
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(
        mask, float("-inf"))


def _plain_projection(role: str, x: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor | None) -> torch.Tensor:
    return F.linear(x, weight, bias)


def attention_forward(module: nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor,
                      value: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
                      need_weights: bool = True, attn_mask: torch.Tensor | None = None,
                      average_attn_weights: bool = True, is_causal: bool = False, *,
                      project=_plain_projection):
    """``module(query, key, value, ...)`` of an ``nn.MultiheadAttention``, decomposed so that
    every projection is one call ``project(role, x, weight, bias)`` (default ``F.linear``):
    ``role`` is ``"in_proj"`` (self-attention, ``query is key is value``, fused weights:
    ``E -> 3E``), or ``"q_proj"``/``"k_proj"``/``"v_proj"`` (otherwise), and ``"out_proj"``.

    Same arguments and results as ``nn.MultiheadAttention.forward`` (batch_first, unbatched
    inputs, boolean or float ``attn_mask`` and ``key_padding_mask``, ``is_causal``,
    ``bias_k``/``bias_v``, ``add_zero_attn``, dropout in train mode); the attention itself
    follows ``F.multi_head_attention_forward``: the explicit softmax when ``need_weights``,
    ``F.scaled_dot_product_attention`` otherwise."""
    mod = module
    batched = query.dim() == 3
    self_attention = query is key and key is value
    if mod.batch_first and batched:
        query, key, value = (t.transpose(1, 0) for t in (query, key, value))
    if not batched:
        query, key, value = (t.unsqueeze(1) for t in (query, key, value))
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    length, n, e = query.shape
    heads = mod.num_heads
    hd = e // heads
    dtype = query.dtype
    key_padding_mask = _float_mask(key_padding_mask, dtype)
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint")
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None
    else:
        attn_mask = _float_mask(attn_mask, dtype)
        if key_padding_mask is not None:
            is_causal = False
    bias = mod.in_proj_bias
    bq, bk, bv = (None, None, None) if bias is None else bias.chunk(3)
    if mod.in_proj_weight is not None and self_attention:
        q, k, v = project("in_proj", query, mod.in_proj_weight, bias).chunk(3, dim=-1)
    else:
        if mod.in_proj_weight is not None:
            wq, wk, wv = mod.in_proj_weight.chunk(3)
        else:
            wq, wk, wv = mod.q_proj_weight, mod.k_proj_weight, mod.v_proj_weight
        q = project("q_proj", query, wq, bq)
        k = project("k_proj", key, wk, bk)
        v = project("v_proj", value, wv, bv)
    if attn_mask is not None and attn_mask.dim() == 2:
        attn_mask = attn_mask.unsqueeze(0)
    if mod.bias_k is not None and mod.bias_v is not None:
        k = torch.cat([k, mod.bias_k.repeat(1, n, 1)])
        v = torch.cat([v, mod.bias_v.repeat(1, n, 1)])
        attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
        key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))
    q = q.reshape(length, n * heads, hd).transpose(0, 1)
    k = k.reshape(k.shape[0], n * heads, hd).transpose(0, 1)
    v = v.reshape(v.shape[0], n * heads, hd).transpose(0, 1)
    if mod.add_zero_attn:
        zeros = torch.zeros((n * heads, 1, hd), dtype=k.dtype, device=k.device)
        k, v = torch.cat([k, zeros], dim=1), torch.cat([v, zeros], dim=1)
        attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
        key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))
    src = k.shape[1]
    if key_padding_mask is not None:
        kpm = key_padding_mask.view(n, 1, 1, src).expand(-1, heads, -1, -1).reshape(
            n * heads, 1, src)
        attn_mask = kpm if attn_mask is None else attn_mask + kpm
    p = mod.dropout if mod.training else 0.0
    weights = None
    if need_weights:
        if is_causal and attn_mask is None:
            raise RuntimeError("is_causal needs attn_mask when need_weights=True")
        scores = q * math.sqrt(1.0 / float(hd))
        scores = (torch.baddbmm(attn_mask, scores, k.transpose(-2, -1)) if attn_mask is not None
                  else torch.bmm(scores, k.transpose(-2, -1)))
        attn = torch.softmax(scores, dim=-1)
        if p > 0.0:
            attn = F.dropout(attn, p=p)
        out = torch.bmm(attn, v).transpose(0, 1).reshape(length * n, e)
        weights = attn.view(n, heads, length, src)
        if average_attn_weights:
            weights = weights.mean(dim=1)
    else:
        if attn_mask is not None:
            attn_mask = (attn_mask.unsqueeze(0) if attn_mask.shape[0] == 1
                         else attn_mask.view(n, heads, -1, src))
        out = F.scaled_dot_product_attention(
            q.reshape(n, heads, length, hd), k.reshape(n, heads, src, hd),
            v.reshape(n, heads, src, hd), attn_mask, p, is_causal)
        out = out.permute(2, 0, 1, 3).reshape(length * n, e)
    out = project("out_proj", out, mod.out_proj.weight, mod.out_proj.bias).view(length, n, e)
    if mod.batch_first and batched:
        out = out.transpose(1, 0)
    if not batched:
        out = out.squeeze(1)
        weights = None if weights is None else weights.squeeze(0)
    return out, weights


# --------------------------------------------------------------------------- hooks


class _Block:
    """Accumulated Gram matrices of one K-FAC block (one :class:`LayerFactors`) over every
    call of its layer: each call's rows are more positions (the "expand" variant)."""

    def __init__(self, name: str, kind: str, module: nn.Module, num_params: int,
                 has_bias: bool, out_dim: int, comp: torch.dtype, out: torch.dtype,
                 groups: int = 1, module_type: str | None = None):
        self.name, self.kind, self.module = name, kind, module
        self.num_params, self.has_bias, self.out_dim, self.groups = (num_params, has_bias,
                                                                     out_dim, groups)
        self.module_type = module_type or type(module).__name__
        self.comp, self.out = comp, out  # product dtype, dtype of sums and results
        self.calls = 0
        self.gram: torch.Tensor | None = None
        self.colsum: torch.Tensor | None = None
        self.in_rows = 0
        self.gamma: torch.Tensor | None = None
        self.out_rows = 0
        #: the expanded input's rows while there are fewer than its columns (else None)
        self.kept_rows: list[torch.Tensor] | None = [] if kind in ("dense", "conv") else None
        #: the output gradient rows while there are fewer than ``out_dim`` (else None)
        self.kept_out: list[torch.Tensor] | None = (None if kind in ("grouped",
                                                                      "conv_transpose") else [])

    def add_input(self, gram: torch.Tensor, colsum: torch.Tensor | None, rows: int) -> None:
        self.calls += 1
        if self.gram is None:
            self.gram, self.colsum = gram, colsum
        else:
            self.gram = self.gram + gram
            self.colsum = None if colsum is None else self.colsum + colsum
        self.in_rows += rows

    def add_output(self, gram: torch.Tensor, rows: int) -> None:
        self.gamma = gram if self.gamma is None else self.gamma + gram
        self.out_rows += rows

    def keep_low_rank_rows(self, module: nn.Module, x: torch.Tensor, output: torch.Tensor,
                           batched: bool) -> None:
        """Keep this call's expanded input rows (in the output dtype) while the layer has had
        fewer rows than ``Omega`` has columns (:attr:`LayerFactors.omega_rows`); from the
        first call that reaches that many, keep nothing. (The Gram itself is still computed
        by :func:`_input_gram`: for a padded 3 x 3 convolution on a 1 x 1 map its shift
        decomposition needs half the products of ``rows.T @ rows``.)"""
        if self.kept_rows is None:
            return
        if self.kind == "dense":
            n_rows, width = math.prod(x.shape[:-1]), x.shape[-1]
        else:
            spatial = output.shape[2:] if batched else output.shape[1:]
            n_rows = (x.shape[0] if batched else 1) * math.prod(spatial)
            width = module.in_channels * math.prod(module.kernel_size)
        if self.in_rows + n_rows >= width + self.has_bias:
            self.kept_rows = None
            return
        if self.kind == "dense":
            rows = x.reshape(-1, x.shape[-1]).to(self.out)
        else:
            patches = _unfold(module, x if batched else x.unsqueeze(0))
            rows = _rows(patches.transpose(1, 2), self.out)
        self.kept_rows.append(rows)

    def record_rows(self, grads: torch.Tensor) -> None:
        """Add the Gram of the ``R x I`` gradient matrix of ``grads`` (a view whose leading
        axes are rows, :func:`_output_rows`; exact products in the output dtype: cheap, and
        the last layer's structural zeros survive only that way), cast chunk by chunk of
        examples (one copy each, in :func:`scratch`). While the layer has had fewer rows than
        ``I``, the rows are kept for :attr:`LayerFactors.gamma_rows`."""
        width, n = grads.shape[-1], math.prod(grads.shape[:-1])
        if self.kept_out is not None and self.out_rows + n >= width:
            self.kept_out = None
        gram = grads.new_zeros((width, width), dtype=self.out) if n == 0 else None
        for chunk in _row_chunks(grads):
            rows = _rows(chunk, self.out, "rows")
            part = _gram(rows, self.out)
            gram = part if gram is None else gram.add_(part)
            if self.kept_out is not None:
                self.kept_out.append(rows.clone())
        self.add_output(gram, n)


class _Tap(torch.autograd.Function):
    """Identity on a layer's output whose backward hands the incoming gradient to ``record``.
    ``anchor`` (a scalar requiring grad) puts every tap on the path of ``grad(loss, anchor)``,
    so the backward pass computes input gradients only."""

    @staticmethod
    def forward(ctx, output, anchor, record):
        ctx.record = record
        # Marked as modified in place (it is not): the tap becomes the output's node without
        # a copy, and later in-place ops (``ReLU(inplace=True)``) stack on top of it.
        ctx.mark_dirty(output)
        return output

    @staticmethod
    def backward(ctx, grad):
        ctx.record(grad)
        return grad, None, None


def _layer_hook(block: _Block, anchor: torch.Tensor):
    """Forward hook of a layer: adds the call's input Gram to ``block`` and taps the output."""
    kind, comp, out = block.kind, block.comp, block.out

    def hook(module, args, output):
        if not args or not isinstance(args[0], torch.Tensor):
            raise UnsupportedLayerError(f"layer {block.name!r}: input is not a tensor")
        x = args[0].detach()
        if kind in ("dense", "conv", "depthwise"):
            batched = kind == "dense" or x.dim() == (3 if isinstance(module, nn.Conv1d) else 4)
            block.keep_low_rank_rows(module, x, output, batched)  # before add_input
            block.add_input(*_input_gram(kind, module, x, comp, out))

            def record(grad):
                block.record_rows(_output_rows(kind, batched, grad))
        elif kind in ("grouped", "conv_transpose"):
            one_d = isinstance(module, (nn.Conv1d, nn.ConvTranspose1d))
            batched = x.dim() == (3 if one_d else 4)
            xb = x if batched else x.unsqueeze(0)
            out_shape = tuple(output.shape[-(1 if one_d else 2):])
            if kind == "grouped":
                def patches_of(chunk):
                    return _unfold(module, chunk)
            else:
                def patches_of(chunk):
                    return transposed_patches(module, chunk, out_shape)
            per_example = (xb.shape[1] * math.prod(module.kernel_size) * math.prod(out_shape))
            block.add_input(*_grouped_gram(patches_of, xb, block.groups, per_example, comp,
                                           out))

            def record(grad):
                g = grad if batched else grad.unsqueeze(0)
                block.add_output(*_grouped_output_gram(g, block.groups, out))
        elif kind == "embedding":
            idx = x.reshape(-1)
            keep = None if module.padding_idx is None else idx != module.padding_idx
            used = idx if keep is None else idx[keep]
            counts = torch.bincount(used, minlength=module.num_embeddings).to(out)
            block.add_input(counts, None, int(used.numel()))

            def record(grad):
                rows = grad.reshape(-1, grad.shape[-1])
                block.record_rows(rows if keep is None else rows[keep])
        else:  # pragma: no cover - every kind with a hook is listed above
            raise RuntimeError(f"no hook for kind {kind!r}")
        return _Tap.apply(output, anchor, record)

    return hook


class _Attention:
    """The K-FAC blocks of one ``nn.MultiheadAttention``: its forward is replaced, during the
    pass, by :func:`attention_forward` with tapped projections."""

    def __init__(self, name: str, module: nn.MultiheadAttention, comp: torch.dtype,
                 out: torch.dtype):
        self.name, self.module = name, module
        e = module.embed_dim
        b = int(module.in_proj_bias is not None)
        ob = module.out_proj.bias is not None
        mtype = type(module).__name__

        def block(role, d_in, d_out, bias, owner=module):
            return _Block(f"{name}.{role}" if name else role, "attention", owner,
                          d_out * (d_in + bias), bool(bias), d_out, comp, out,
                          module_type=mtype if owner is module else type(owner).__name__)

        self.blocks = {}
        if module.in_proj_weight is not None:
            self.blocks["in_proj"] = block("in_proj", e, 3 * e, b)
        self.blocks["q_proj"] = block("q_proj", e, e, b)
        self.blocks["k_proj"] = block("k_proj", module.kdim, e, b)
        self.blocks["v_proj"] = block("v_proj", module.vdim, e, b)
        self.blocks["out_proj"] = block("out_proj", e, e, int(ob), module.out_proj)
        self.anchor: torch.Tensor | None = None
        self._saved = None

    def project(self, role, x, weight, bias):
        blk = self.blocks[role]
        blk.add_input(*_input_gram("dense", None, x.detach(), blk.comp, blk.out))
        return _Tap.apply(F.linear(x, weight, bias), self.anchor, blk.record_rows)

    def install(self, anchor: torch.Tensor) -> None:
        self.anchor = anchor
        self._saved = self.module.__dict__.get("forward")
        self.module.forward = functools.partial(attention_forward, self.module,
                                                project=self.project)

    def remove(self) -> None:
        del self.module.forward
        if self._saved is not None:
            self.module.forward = self._saved

    def report(self, skipped: list[SkippedLayer]) -> list[_Block]:
        """The blocks to report: ``in_proj`` (only self-attention calls) or ``q/k/v_proj``
        (the fused block's Grams folded into them when the layer was called both ways), and
        ``out_proj``; the layer is reported skipped when never called, and ``bias_k``/
        ``bias_v`` always are."""
        mod, e = self.module, self.module.embed_dim
        extra = [(n, p) for n, p in (("bias_k", mod.bias_k), ("bias_v", mod.bias_v))
                 if p is not None]
        if extra:
            skipped.append(SkippedLayer(
                self.name, type(mod).__name__, sum(p.numel() for _, p in extra),
                "bias_k/bias_v of attention (K-FAC covers the projections only)", "attention",
                tuple(f"{self.name}.{n}" if self.name else n for n, _ in extra)))
        if self.blocks["out_proj"].calls == 0:
            total = sum(b.num_params for r, b in self.blocks.items() if r != "in_proj")
            skipped.append(SkippedLayer(self.name, type(mod).__name__, total,
                                        "not called in the forward pass", "attention"))
            return []
        fused = self.blocks.get("in_proj")
        separate = [self.blocks[r] for r in ("q_proj", "k_proj", "v_proj")]
        if fused is None or fused.calls == 0:
            return separate + [self.blocks["out_proj"]]
        if all(b.calls == 0 for b in separate):
            return [fused, self.blocks["out_proj"]]
        for i, b in enumerate(separate):  # mixed calls: the fused rows are q/k/v rows too
            b.gram, b.colsum = b.gram + fused.gram, b.colsum + fused.colsum
            b.in_rows += fused.in_rows
            b.kept_out = None  # the fused rows are 3E wide
            if fused.gamma is not None:
                b.add_output(fused.gamma[i * e:(i + 1) * e, i * e:(i + 1) * e],
                             fused.out_rows)
        return separate + [self.blocks["out_proj"]]


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


def _check_arguments(fisher: str, convention: str, on_unsupported: str, likelihood: str,
                     inputs, targets) -> None:
    if fisher not in FISHERS:
        raise ValueError(f"fisher must be one of {FISHERS}, got {fisher!r}")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    if on_unsupported not in ("error", "skip"):
        raise ValueError(f"on_unsupported must be 'error' or 'skip', got {on_unsupported!r}")
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 1 or inputs.shape[0] < 1:
        raise ValueError("inputs must be a tensor with a non-empty leading batch dimension")
    if fisher == "empirical" and targets is None:
        raise ValueError("fisher='empirical' needs targets (class labels or regression "
                         "targets)")


def _factor_dtypes(factor_dtype, model_dtype: torch.dtype,
                   device: torch.device) -> tuple[torch.dtype, torch.dtype]:
    """``(dtype of the products, dtype of the sums and factors)``; ``"auto"`` is the wider of
    float64 and the model dtype on every ``device`` (module docstring, Numerics)."""
    if isinstance(factor_dtype, str) and factor_dtype == "auto":
        factor_dtype = torch.promote_types(model_dtype, torch.float64)
    if factor_dtype is None:  # products in the model dtype, sums and factors in float64
        return model_dtype, torch.promote_types(model_dtype, torch.float64)
    if isinstance(factor_dtype, torch.dtype) and factor_dtype.is_floating_point:
        return factor_dtype, factor_dtype
    raise ValueError(f"factor_dtype must be 'auto', None or a floating torch.dtype, got "
                     f"{factor_dtype!r}")


def _qualified(name: str, module: nn.Module) -> tuple[str, ...]:
    return tuple(f"{name}.{n}" if name else n for n, _ in module.named_parameters(recurse=False))


def _new_block(name: str, kind: str, module: nn.Module, comp: torch.dtype,
               out: torch.dtype) -> _Block:
    n = _own_param_count(module)
    bias = getattr(module, "bias", None) is not None
    if kind == "embedding":
        return _Block(name, kind, module, n, False, module.embedding_dim, comp, out)
    if kind in ("grouped", "conv_transpose"):
        return _Block(name, kind, module, n, bias, module.out_channels // module.groups, comp,
                      out, groups=module.groups)
    return _Block(name, kind, module, n, bias, module.weight.shape[0], comp, out)


def _collect_layers(model: nn.Module, on_unsupported: str, comp: torch.dtype,
                    out: torch.dtype) -> tuple[list, list[SkippedLayer]]:
    """One unit (a :class:`_Block`, or an :class:`_Attention` holding several) per supported
    layer in module order; normalisation layers and (with ``on_unsupported="skip"``)
    unsupported ones are reported as skipped. With ``"error"``, every unsupported module is
    listed in one :class:`UnsupportedLayerError`."""
    units: list = []
    skipped: list[SkippedLayer] = []
    problems: list[str] = []
    handled: set[int] = set()  # out_proj of attention layers: part of those layers
    for name, module in model.named_modules():
        if id(module) in handled:
            continue
        kind, reason = _module_kind(module)
        if kind is None:
            continue
        n, mtype = _own_param_count(module), type(module).__name__
        if reason is not None:
            problems.append(f"layer {name or '<root>'!r} ({mtype}): {reason} [{n:,} parameters]")
            skipped.append(SkippedLayer(name, mtype, n, f"unsupported: {reason}", kind,
                                        _qualified(name, module)))
        elif kind == "norm":
            skipped.append(SkippedLayer(name, mtype, n,
                                        "affine normalisation layer (not part of K-FAC here)",
                                        "norm", _qualified(name, module)))
        elif kind == "attention":
            units.append(_Attention(name, module, comp, out))
            handled.add(id(module.out_proj))
        else:
            units.append(_new_block(name, kind, module, comp, out))
    if problems and on_unsupported == "error":
        raise UnsupportedLayerError(
            f"K-FAC cannot represent {len(problems)} module(s): " + "; ".join(problems)
            + ". Pass on_unsupported='skip' to leave them out (KFACFactors.coverage reports "
            "the share of parameters covered)")
    if not units:
        raise UnsupportedLayerError("model has no supported layer with weights")
    return units, skipped


def _resolve_likelihood(likelihood: str, output: torch.Tensor, targets) -> str:
    """``"auto"``: Gaussian when the targets are floating point or the output has a single
    column (``(M,)`` or ``(M, 1)``), categorical otherwise."""
    if likelihood != "auto":
        return likelihood
    single = output.dim() == 1 or (output.dim() == 2 and output.shape[1] == 1)
    floating = isinstance(targets, torch.Tensor) and targets.is_floating_point()
    return "gaussian" if single or floating else "categorical"


def _loss(output: torch.Tensor, targets, likelihood: str, fisher: str, convention: str,
          generator: torch.Generator | None, seed: int) -> torch.Tensor:
    """The negative log-likelihood whose gradients are ``G``: categorical (cross-entropy,
    Eq. 6) or unit-variance Gaussian ``0.5 sum (f - y)^2``; summed over examples
    (``per_example``) or averaged over them (``official``; for categorical outputs with
    positions ``F.cross_entropy``'s mean, over examples and positions)."""
    device = output.device
    if fisher == "mc" and generator is None:
        generator = torch.Generator(device=device).manual_seed(seed)
    if likelihood == "gaussian":
        f = output
        if fisher == "mc":  # y ~ N(f, 1)
            noise = torch.randn(f.shape, generator=generator, device=device, dtype=f.dtype)
            y = f.detach() + noise
        else:
            if targets.numel() != f.numel():
                raise ValueError(f"Gaussian likelihood: targets with {targets.numel()} "
                                 f"entries do not match the output {tuple(f.shape)}")
            y = targets.to(device=device, dtype=f.dtype).reshape(f.shape)
        loss = 0.5 * (f - y).pow(2).sum()
        return loss if convention == "per_example" else loss / f.shape[0]
    if output.dim() < 2:
        raise ValueError("categorical likelihood: the model must return logits of shape "
                         "(batch, classes, ...); for regression pass likelihood='gaussian'")
    if fisher == "mc":
        y = sample_labels(output, generator)
    else:
        if targets.is_floating_point():
            raise ValueError("categorical likelihood needs integer class labels as targets")
        y = targets.to(device=device, dtype=torch.long)
    reduction = "sum" if convention == "per_example" else "mean"
    return F.cross_entropy(output, y, reduction=reduction)


@contextlib.contextmanager
def full_float32_precision():
    """A context in which CUDA float32 convolutions and matrix products run in float32, not
    TF32 (10-bit mantissa). torch lets cuDNN use TF32 for convolutions by default
    (``torch.backends.cudnn.allow_tf32``), which on Ampere and later GPUs would make a GPU
    worker's signals, hence its spectra, differ from a CPU worker's by far more than float32
    round-off; the Fisher pass turns it off and restores the settings afterwards."""
    cudnn, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = cudnn, matmul


def channels_last_pass(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether the Fisher pass runs on a channels-last copy of ``x``: a 4-D floating input on
    the CPU, for a model with a ``Conv2d`` whose dtype oneDNN convolves natively (float32,
    bfloat16, float16; not float64). oneDNN's native CPU layout is NHWC: measured on
    MobileViTv2-0.5 (batch 128, one thread) the forward pass took 2.2 s against 3.7 s, the
    input-gradient backward 5.7 s against 6.9 s with the forward; and the layers' expanded
    inputs and output gradients are then rows of contiguous channels (:func:`expanded_input`,
    :func:`_output_rows`). The same maths: only the float32 round-off of the network's own
    convolutions differs. A model that cannot take it (``.view`` of a channels-last
    activation raises) is run again as given (:func:`kfac_factors`)."""
    if x.dim() != 4 or x.device.type != "cpu" or not x.is_floating_point():
        return False
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return bool(convs) and all(m.weight.dtype in (torch.float32, torch.bfloat16, torch.float16)
                               for m in convs)


def _dropout_in_standard_layout(model: nn.Module) -> list:
    """Hooks that make every active dropout module of ``model`` draw its mask on the
    standard (contiguous) layout of a 4-D input and hand a channels-last result on: random
    masks are drawn in memory order, so a channels-last input would get other masks than the
    pass on the input as given (All-CNN-C's spectra moved by 30%), while with these hooks the
    channels-last pass draws the same ones. An in-place module still updates its input."""
    handles = []
    for mod in model.modules():
        if not (isinstance(mod, nn.modules.dropout._DropoutNd) and mod.training and mod.p > 0):
            continue
        given: list = []

        def before(module, args, given=given):
            x = args[0] if args else None
            if not (isinstance(x, torch.Tensor) and x.dim() == 4 and not x.is_contiguous()):
                return None
            given.append(x)
            return (x.contiguous(),) + tuple(args[1:])

        def after(module, args, output, given=given):
            if not given:
                return None
            x = given.pop()
            if module.inplace:
                x.copy_(output)
                return x
            return output.contiguous(memory_format=torch.channels_last)

        handles += [mod.register_forward_pre_hook(before), mod.register_forward_hook(after)]
    return handles


def _pass_state(model: nn.Module, generator: torch.Generator | None):
    """What a failed pass may have changed and a rerun must start from: the normalisation
    layers' running statistics (updated by a forward pass in train mode) and the state of a
    caller's generator (``fisher="mc"``)."""
    buffers = [(b, b.clone()) for mod in model.modules() if isinstance(mod, _NORM_TYPES)
               for b in mod.buffers(recurse=False)]
    return buffers, None if generator is None else generator.get_state()


def _restore_pass_state(model: nn.Module, generator: torch.Generator | None, state) -> None:
    buffers, rng = state
    with torch.no_grad():
        for b, saved in buffers:
            b.copy_(saved)
    if generator is not None:
        generator.set_state(rng)


def _forward_backward(model: nn.Module, units: list, x: torch.Tensor, targets, fisher: str,
                      convention: str, likelihood: str, seed: int,
                      generator: torch.Generator | None) -> tuple[torch.Tensor, bool, str]:
    """One forward pass with the layers' hooks collecting ``Omega`` Grams, and (when the
    loss is finite) one backward pass to the taps collecting ``Gamma`` Grams; returns the
    loss, whether it is finite and the likelihood used. Attention layers run
    :func:`attention_forward` for the pass and are restored afterwards."""
    dtype, device = _model_dtype_device(model)
    anchor = torch.zeros((), device=device, dtype=dtype, requires_grad=True)
    handles, installed = [], []
    devices = ([device.index if device.index is not None else torch.cuda.current_device()]
               if device.type == "cuda" else [])
    try:
        for u in units:
            if isinstance(u, _Attention):
                u.install(anchor)
                installed.append(u)
            else:
                handles.append(u.module.register_forward_hook(_layer_hook(u, anchor)))
        with (torch.random.fork_rng(devices=devices), torch.enable_grad(),
              full_float32_precision()):
            torch.manual_seed(seed)
            output = model(x)
            if not isinstance(output, torch.Tensor) or output.dim() < 1:
                raise ValueError("model must return a tensor with a batch dimension")
            lik = _resolve_likelihood(likelihood, output, targets)
            loss = _loss(output, targets, lik, fisher, convention, generator, seed)
            # A non-finite loss (exploding or undefined signals) makes every Gamma undefined:
            # skip the backward pass, which for such functions is the slowest part, and
            # report Gamma as NaN (the features then flag the function invalid).
            loss_finite = bool(torch.isfinite(loss))
            if loss_finite:
                torch.autograd.grad(loss, anchor, allow_unused=True)
    finally:
        for h in handles:
            h.remove()
        for u in installed:
            u.remove()
    return loss, loss_finite, lik


def _block_factors(b: _Block, m: int, convention: str, loss_finite: bool,
                   dtype: torch.dtype, device: torch.device) -> LayerFactors:
    """Scale one block's accumulated Grams into its factors (Eqs. 17-18 and the module
    docstring's conventions)."""
    mod = b.module
    if b.gamma is None:  # the loss is not finite, or does not depend on this output
        fill = 0.0 if loss_finite else math.nan
        shape = ((b.groups, b.out_dim, b.out_dim) if b.kind in ("grouped", "conv_transpose")
                 else (b.out_dim,) * 2)
        b.gamma = torch.full(shape, fill, dtype=b.out, device=device)
        b.out_rows = b.in_rows if b.kind != "depthwise" else b.in_rows // mod.in_channels
    omega_scale = m * mod.in_channels if (b.kind == "depthwise"
                                           and convention == "per_example") else m
    if b.kind == "embedding":
        omega = b.gram / m  # token counts / M: the diagonal of the one-hot Gram
    else:
        omega = _homogeneous(b.gram, b.colsum, b.in_rows, b.has_bias).div_(omega_scale)
    gamma = b.gamma / max(b.out_rows, 1)
    if b.kind == "conv_transpose" and b.groups == 1:
        omega, gamma = omega[0], gamma[0]
    omega_rows = None
    if b.kept_rows:
        omega_rows = torch.cat(b.kept_rows)
        if b.has_bias:
            omega_rows = torch.cat([omega_rows.new_ones(omega_rows.shape[0], 1), omega_rows], 1)
        omega_rows = omega_rows / math.sqrt(omega_scale)
    gamma_rows = None
    if b.kept_out and gamma.dim() == 2:
        gamma_rows = torch.cat(b.kept_out) / math.sqrt(max(b.out_rows, 1))
    f = LayerFactors(name=b.name, kind=b.kind, module_type=b.module_type,
                     num_params=b.num_params, has_bias=b.has_bias, omega=omega, gamma=gamma,
                     rows=b.out_rows, positions=b.out_rows / m, data_eps=torch.finfo(dtype).eps,
                     omega_rows=omega_rows, gamma_rows=gamma_rows)
    expect = f.groups * f.omega_dim * f.gamma_dim
    if expect != b.num_params:
        raise RuntimeError(f"layer {b.name!r}: factor sizes {f.groups} x {f.omega_dim} x "
                           f"{f.gamma_dim} do not match {b.num_params} parameters")
    return f


def _layer_factors(units: list, skipped: list[SkippedLayer], m: int, convention: str,
                   loss_finite: bool, dtype: torch.dtype,
                   device: torch.device) -> list[LayerFactors]:
    """The factors of every block that was called; layers never called are skipped."""
    layers: list[LayerFactors] = []
    for u in units:
        for b in (u.report(skipped) if isinstance(u, _Attention) else [u]):
            if b.calls == 0:
                skipped.append(SkippedLayer(b.name, b.module_type, b.num_params,
                                            "not called in the forward pass", b.kind,
                                            _qualified(b.name, b.module)))
                continue
            layers.append(_block_factors(b, m, convention, loss_finite, dtype, device))
    return layers


def kfac_factors(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    fisher: str = "empirical",
    convention: str = "per_example",
    likelihood: str = "auto",
    seed: int = 0,
    generator: torch.Generator | None = None,
    factor_dtype: torch.dtype | str | None = "auto",
    on_unsupported: str = "error",
    channels_last: bool | None = None,
) -> KFACFactors:
    """K-FAC factors ``Omega`` and ``Gamma`` of every supported layer, in module order, from
    one forward and one backward pass of ``model`` on ``(inputs, targets)``.

    Args:
        model: the network; it runs in its current train/eval mode.
        inputs: a batch-first tensor (``M = inputs.shape[0]``); integer inputs (token ids)
            are kept as they are, floating ones are cast to the model dtype.
        targets: class labels (categorical) or regression targets (Gaussian); needed for
            ``fisher="empirical"``, ignored by ``"mc"``.
        fisher: ``"empirical"`` uses ``targets``; ``"mc"`` samples them from the model's own
            predictive distribution (Eq. 1; ``y ~ softmax(f)`` or ``y ~ N(f, 1)``) with
            ``generator`` (default: a generator on the model's device seeded with ``seed``).
        convention: ``"per_example"`` or ``"official"`` (module docstring).
        likelihood: ``"categorical"`` (cross-entropy on logits with the class dimension 1,
            Eq. 6), ``"gaussian"`` (unit variance, ``0.5 sum (f - y)^2``, i.e. MSE) or
            ``"auto"``: Gaussian when ``targets`` are floating point or the output has one
            column (``(M,)`` or ``(M, 1)``), categorical otherwise.
        seed: the global RNG is forked and seeded with it for the pass (dropout is
            reproducible, the caller's RNG state untouched).
        factor_dtype: ``"auto"`` (float64 on every device), ``None`` or a dtype
            (module docstring, Numerics).
        on_unsupported: ``"error"`` raises for any module K-FAC cannot represent, listing all
            of them; ``"skip"`` leaves them out and reports them in :attr:`KFACFactors.skipped`
            (and :attr:`KFACFactors.coverage`).
        channels_last: run the pass on a channels-last copy of a 4-D input (``None``: where
            :func:`channels_last_pass` says it pays; ``False``: on the input as given, e.g. to
            reproduce the float32 round-off of a pass in the standard layout).

    Returns:
        :class:`KFACFactors` (layers in module order, skipped parameters, loss, coverage).

    With BatchNorm in train mode the examples interact through the batch statistics, so the
    rows of ``G`` are gradients of the summed loss rather than strictly per-example ones.

    Raises:
        ValueError: bad arguments (or targets that do not fit the likelihood).
        UnsupportedLayerError: a module K-FAC cannot represent (with ``on_unsupported=
            "error"``), or no supported layer at all.
    """
    _check_arguments(fisher, convention, on_unsupported, likelihood, inputs, targets)
    dtype, device = _model_dtype_device(model)
    comp, out = _factor_dtypes(factor_dtype, dtype, device)
    units, skipped = _collect_layers(model, on_unsupported, comp, out)
    x = inputs.to(device=device, dtype=dtype) if inputs.is_floating_point() else inputs.to(device)
    if channels_last not in (None, True, False):
        raise ValueError(f"channels_last must be None, True or False, got {channels_last!r}")
    if channels_last is None:
        channels_last = channels_last_pass(model, x)
    if channels_last and x.dim() == 4 and x.is_floating_point():
        state = _pass_state(model, generator)
        handles = _dropout_in_standard_layout(model)
        try:
            loss, loss_finite, lik = _forward_backward(
                model, units, x.contiguous(memory_format=torch.channels_last), targets,
                fisher, convention, likelihood, seed, generator)
        except RuntimeError:  # e.g. ``.view`` of a channels-last activation: as given instead
            _restore_pass_state(model, generator, state)
            units, skipped = _collect_layers(model, on_unsupported, comp, out)
            loss, loss_finite, lik = _forward_backward(model, units, x, targets, fisher,
                                                       convention, likelihood, seed, generator)
        finally:
            for h in handles:
                h.remove()
    else:
        loss, loss_finite, lik = _forward_backward(model, units, x, targets, fisher, convention,
                                                   likelihood, seed, generator)
    m = int(x.shape[0])
    layers = _layer_factors(units, skipped, m, convention, loss_finite, dtype, device)
    return KFACFactors(layers, skipped, float(loss.detach()), m, fisher, convention, lik)


def _eigvalsh(matrix: torch.Tensor) -> torch.Tensor:
    """Ascending eigenvalues of a symmetric matrix (or a batch of them):
    ``torch.linalg.eigvalsh`` (cuSOLVER on CUDA, MKL on an Intel CPU); for large matrices on
    other CPUs ``numpy.linalg.eigvalsh``, the same LAPACK ``syevd`` through NumPy's OpenBLAS,
    1.5-4x faster than torch's MKL build on an AMD EPYC (:func:`mkl_on_intel`)."""
    if (matrix.device.type == "cpu" and matrix.dtype in (torch.float32, torch.float64)
            and matrix.numel() * matrix.shape[-1] >= _NUMPY_MIN_FLOPS
            and not mkl_on_intel()):
        with numpy_blas_threads():
            return torch.from_numpy(np.linalg.eigvalsh(matrix.numpy()))
    return torch.linalg.eigvalsh(matrix)


def factor_eigenvalues(matrix: torch.Tensor, data_eps: float = 0.0,
                       rows: torch.Tensor | None = None) -> torch.Tensor:
    """Eigenvalues (ascending) of a symmetric PSD factor (LAPACK ``syevd``); values
    ``<= n * max(eps, (10 data_eps)^2) * max|lambda|`` (round-off, negatives included; see the
    module docstring) are set to exactly 0. A non-finite matrix gives all-NaN (no exception).

    A 1-D ``matrix`` is a DIAGONAL factor (``nn.Embedding``'s token counts): its entries,
    sorted, are the eigenvalues, exact (no floor). A 3-D one is a batch of ``G`` blocks
    (grouped layers): ``(G, n)`` eigenvalues, each block with its own floor.

    ``rows`` (``r x n``, ``r < n``, with ``matrix == rows.T @ rows``): the nonzero
    eigenvalues of ``rows.T @ rows`` are those of the ``r x r`` dual ``rows @ rows.T`` (both
    are squared singular values of ``rows``), the other ``n - r`` are exactly 0; the floor is
    the same (``n`` the size of ``matrix``). An ``r^3`` instead of an ``n^3`` eigenproblem:
    torchvision's ResNet-18 on 32 x 32 images has four ``4609 x 4609`` ``Omega`` of 128
    rows."""
    if not all_finite(matrix):
        return torch.full(matrix.shape[:-1] if matrix.dim() > 1 else matrix.shape, math.nan,
                          dtype=matrix.dtype, device=matrix.device)
    if matrix.dim() == 1:
        return torch.sort(matrix).values
    n = matrix.shape[-1]
    if rows is not None and matrix.dim() == 2 and rows.shape[0] < n:
        dual = _eigvalsh(_tn(rows.T, None, rows.dtype))
        ev = torch.cat([dual.new_zeros(n - rows.shape[0]), dual])
    else:
        ev = _eigvalsh(matrix)
    rel = n * max(torch.finfo(matrix.dtype).eps, (10.0 * data_eps) ** 2)
    floor = ev.abs().amax(-1, keepdim=True) * rel
    return torch.where(ev > floor, ev, torch.zeros_like(ev))


def kronecker_eigenvalues(
    omega_eigs: torch.Tensor, gamma_eigs: torch.Tensor, log_scale: bool = True
) -> torch.Tensor:
    """All ``|Omega| x |Gamma|`` eigenvalues of ``Omega (x) Gamma`` from those of the factors,
    in ``torch.kron`` order (index ``i * |Gamma| + j``): pairwise sums of log-eigenvalues
    (natural log; a zero factor eigenvalue gives -inf) or, with ``log_scale=False``, products.
    With leading (group) dimensions, ``(G, |Omega|)`` and ``(G, |Gamma|)``, the eigenvalues of
    the block-diagonal layer: every group's, group by group."""
    if log_scale:
        return (torch.log(omega_eigs)[..., :, None]
                + torch.log(gamma_eigs)[..., None, :]).reshape(-1)
    return (omega_eigs[..., :, None] * gamma_eigs[..., None, :]).reshape(-1)


def layer_eigenvalues(layer: LayerFactors, log_scale: bool = True) -> torch.Tensor:
    """Eigenvalues of ``layer.omega (x) layer.gamma`` (``|theta_l|`` of them)."""
    return kronecker_eigenvalues(factor_eigenvalues(layer.omega, layer.data_eps,
                                                    layer.omega_rows),
                                 factor_eigenvalues(layer.gamma, layer.data_eps,
                                                    layer.gamma_rows), log_scale)


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
