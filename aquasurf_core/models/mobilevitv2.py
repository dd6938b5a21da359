"""MobileViTv2 (Mehta & Rastegari 2022, "Separable self-attention for mobile vision
transformers"), written compactly after the reference ``ml-cvnets`` configuration.

Width multiplier ``alpha`` (0.5 here) gives the channel plan (``make_divisible`` rounds to a
multiple of 8, or 16 for layer 1)::

    layer0  conv3/2 3->16, BN, f                           (160 -> 80)
    layer1  MV2(16->32, s1)                                 80
    layer2  MV2(32->64, s2), MV2(64->64, s1, residual)      40
    layer3  MV2(64->128, s2),  MobileViTv2 block(128, d=64,  2 attention layers)   20
    layer4  MV2(128->192, s2), MobileViTv2 block(192, d=96,  4 attention layers)   10
    layer5  MV2(192->256, s2), MobileViTv2 block(256, d=128, 3 attention layers)    5
    head    global average pool, linear 256->classes

``MV2(cin->cout, s)`` is the inverted residual: conv1 cin->2cin, BN, f; depthwise conv3/s, BN,
f; conv1 ->cout, BN; plus the input when ``s == 1`` and ``cin == cout``.

A MobileViTv2 block on ``C`` channels with attention width ``d``: depthwise conv3, BN, f;
conv1 C->d (no bias); unfold into 2x2 patches, giving ``(N, d, P=4, M)`` with ``M`` patches
(the map is first resized bilinearly to a multiple of 2 if needed: 5x5 -> 6x6 in layer5);
``n`` pre-norm layers ``x + Attn(GN(x)); x + W2 f(W1 GN(x))`` with ``GN`` a one-group
GroupNorm ("layer_norm_2d") and ``W1: d->2d``, ``W2: 2d->d`` 1x1 convolutions with bias; a
final GroupNorm; fold back; conv1 d->C (no bias), BN. No skip around the block.

Separable self-attention (Eqs. in Sec. 3 of the paper) on ``x`` of shape ``(N, d, P, M)``::

    [i, K, V] = conv1_{d -> 1+2d}(x)          (one 1x1 conv with bias)
    c_s       = softmax over the M patches of i        (context scores, N x 1 x P x M)
    c_v       = sum_M c_s * K                          (context vector, N x d x P x 1)
    out       = conv1_{d -> d}(ReLU(V) * c_v)

Activation sites: the searched ``f`` replaces swish (MobileViTv2's activation) at every
convolution that had one: layer0, both activations of every MV2 block, the depthwise
convolution of each MobileViTv2 block and the first FFN convolution of each attention layer.
Kept as in the reference model and NOT searched: the softmax over context scores and the
ReLU applied to the values ``V`` inside separable self-attention.

Parameter count: 1,370,593 for 1000 classes (the paper quotes 1.4M) and 1,116,163 for 10; the
latter's Fisher feature size, sum over weight layers of floor(|theta_l| / 100), is 11,013,
exactly the AQuaSurF appendix's figure for MobileViTv2-0.5.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from aquasurf_core.models.factory import ActivationFactory


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``divisor``), never
    going more than 10% below ``value`` (the MobileNet/ml-cvnets rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout)]


class InvertedResidual(nn.Module):
    """MobileNetV2 block ("MV2") with expansion ratio 2: ``cin`` to ``cout`` channels with
    depthwise stride ``stride``, ``act`` at its two activation sites, a residual when
    ``stride == 1`` and ``cin == cout`` (module docstring)."""

    def __init__(self, act: ActivationFactory, cin: int, cout: int, stride: int):
        super().__init__()
        hidden = make_divisible(round(cin * 2), 8)
        self.block = nn.Sequential(
            *_conv_bn(cin, hidden, 1), act(),
            *_conv_bn(hidden, hidden, 3, stride, groups=hidden), act(),
            *_conv_bn(hidden, cout, 1),
        )
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, cin, H, W)`` to ``(N, cout, H / stride, W / stride)`` (rounded up)."""
        y = self.block(x)
        return x + y if self.residual else y


class SeparableSelfAttention(nn.Module):
    """Separable (linear-complexity) self-attention on ``(N, d, P, M)`` (module docstring),
    ``d = dim``."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.qkv = nn.Conv2d(dim, 1 + 2 * dim, 1)
        self.out = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over the ``M`` patches of ``x`` ``(N, d, P, M)``; same shape out."""
        query, key, value = torch.split(self.qkv(x), [1, self.dim, self.dim], dim=1)
        scores = F.softmax(query, dim=-1)
        context = (key * scores).sum(dim=-1, keepdim=True)
        return self.out(F.relu(value) * context)


class LinearAttnFFN(nn.Module):
    """Pre-norm attention layer: separable attention, then a 1x1-conv FFN with ``f``
    (``act``) of hidden width ``ffn_dim``, on ``dim`` channels; both with residuals."""

    def __init__(self, act: ActivationFactory, dim: int, ffn_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(1, dim)
        self.attn = SeparableSelfAttention(dim)
        self.norm2 = nn.GroupNorm(1, dim)
        self.ffn = nn.Sequential(nn.Conv2d(dim, ffn_dim, 1), act(), nn.Conv2d(ffn_dim, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + Attn(GN(x))``, then ``x + FFN(GN(x))`` on ``(N, dim, P, M)``; same shape."""
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class MobileViTv2Block(nn.Module):
    """Local depthwise conv, patch-wise separable attention, projection back (module
    docstring): ``channels`` in and out, attention width ``dim``, ``layers`` attention layers
    on ``patch x patch`` patches, ``act`` at the searched sites."""

    def __init__(self, act: ActivationFactory, channels: int, dim: int, layers: int,
                 patch: int = 2):
        super().__init__()
        self.patch = patch
        self.local = nn.Sequential(*_conv_bn(channels, channels, 3, groups=channels), act(),
                                   nn.Conv2d(channels, dim, 1, bias=False))
        ffn_dim = (2 * dim) // 16 * 16
        self.attention = nn.Sequential(*[LinearAttnFFN(act, dim, ffn_dim) for _ in range(layers)],
                                       nn.GroupNorm(1, dim))
        self.project = nn.Sequential(*_conv_bn(dim, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, channels, H, W)`` to ``(N, channels, H', W')``, where ``H'``, ``W'`` are
        ``H``, ``W`` rounded up to a multiple of ``patch`` (the map is resized first)."""
        p = self.patch
        height, width = x.shape[-2:]
        if height % p or width % p:
            size = (math.ceil(height / p) * p, math.ceil(width / p) * p)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        y = self.local(x)
        n, d, h, w = y.shape
        patches = F.unfold(y, kernel_size=p, stride=p).reshape(n, d, p * p, -1)
        patches = self.attention(patches)
        y = F.fold(patches.reshape(n, d * p * p, -1), output_size=(h, w), kernel_size=p, stride=p)
        return self.project(y)


class MobileViTv2(nn.Module):
    """MobileViTv2 classifier with width multiplier ``width`` (module docstring) for
    ``in_channels``-channel images and ``num_classes`` classes; ``act`` builds the searched
    activation at each site."""

    def __init__(self, act: ActivationFactory, *, in_channels: int = 3, num_classes: int = 1000,
                 width: float = 0.5):
        super().__init__()
        c0 = make_divisible(min(64.0, max(16.0, 32 * width)), 8)
        c1 = make_divisible(64 * width, 16)
        c2, c3, c4, c5 = (make_divisible(c * width, 8) for c in (128, 256, 384, 512))
        d3, d4, d5 = (make_divisible(c * width, 8) for c in (128, 192, 256))
        self.layer0 = nn.Sequential(*_conv_bn(in_channels, c0, 3, stride=2), act())
        self.layer1 = InvertedResidual(act, c0, c1, 1)
        self.layer2 = nn.Sequential(InvertedResidual(act, c1, c2, 2),
                                    InvertedResidual(act, c2, c2, 1))
        self.layer3 = nn.Sequential(InvertedResidual(act, c2, c3, 2),
                                    MobileViTv2Block(act, c3, d3, 2))
        self.layer4 = nn.Sequential(InvertedResidual(act, c3, c4, 2),
                                    MobileViTv2Block(act, c4, d4, 4))
        self.layer5 = nn.Sequential(InvertedResidual(act, c4, c5, 2),
                                    MobileViTv2Block(act, c5, d5, 3))
        self.classifier = nn.Linear(c5, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of images ``(N, in_channels, H, W)``."""
        for layer in (self.layer0, self.layer1, self.layer2, self.layer3, self.layer4,
                      self.layer5):
            x = layer(x)
        return self.classifier(x.mean(dim=(2, 3)))
