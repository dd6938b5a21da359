"""A small MobileViT-style model for MNIST-1D sequences (``N x 1 x 40``).

Layout (``f`` the searched activation, ``c`` the stem width, ``d`` the token width)::

    stem      conv3/2 1->c, BN, f                                   (N, c, 20)
    MV2       conv1 c->2c, BN, f; depthwise conv3/2, BN, f; conv1 2c->d, BN   (N, d, 10)
    local     depthwise conv3, BN, f; conv1 d->d                    (mixing as in MobileViT)
    tokens    (N, 10, d): one pre-norm transformer block
                x + Attn(LN(x)),  Attn = softmax(Q K^T / sqrt(d_h)) V with
                Q, K, V, output = separate nn.Linear layers, ``heads`` heads
                x + W2 f(W1 LN(x)),  W1: d->2d, W2: 2d->d
    head      LN, mean over tokens, linear d->classes

Both downsamplings are stride-2 convolutions, as in MobileViT's stem and MV2 blocks, so the
transformer sees 10 tokens of a length-40 input (cheap enough for the CPU Fisher benchmark).
The searched function is used at 5 sites: stem, both MV2 activations, the local depthwise
activation and the transformer MLP. The attention softmax is not a searched site. There are
no positional embeddings; the convolutions before the transformer carry position, as in
MobileViT. With ``c = 16``, ``d = 32`` and 2 heads (the MNIST-1D ``vit``) the model has
12,026 parameters.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from aquasurf_core.models.factory import ActivationFactory


class SelfAttention(nn.Module):
    """Multi-head self-attention over ``(N, T, d)`` built from four ``nn.Linear`` layers (so
    that each projection is a separate K-FAC layer; no fused ``in_proj``): width ``dim``,
    ``heads`` heads. Raises ``ValueError`` when ``dim`` is not divisible by ``heads``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled dot-product attention of the ``T`` tokens of ``x`` ``(N, T, dim)``; same
        shape out."""
        n, t, d = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(n, t, self.heads, d // self.heads).transpose(1, 2)

        y = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)),
                                           split(self.value(x)))
        return self.out(y.transpose(1, 2).reshape(n, t, d))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: attention and an MLP with the searched activation.

    Width ``dim``, ``heads`` attention heads, MLP hidden width ``mlp_ratio * dim``; ``act``
    builds the MLP's activation.
    """

    def __init__(self, act: ActivationFactory, dim: int, heads: int, mlp_ratio: int = 2):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), act(),
                                 nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + Attn(LN(x))``, then ``x + MLP(LN(x))`` on ``(N, T, dim)``; same shape."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SmallMobileViT(nn.Module):
    """MobileViT-style 1-D classifier (see module docstring) of ``in_channels`` input
    channels and ``num_classes`` logits: ``stem`` is ``c`` and ``dim`` is ``d`` there, with
    ``heads`` attention heads; ``act`` builds the searched activation at each site."""

    def __init__(self, act: ActivationFactory, *, in_channels: int, num_classes: int,
                 stem: int = 32, dim: int = 64, heads: int = 4):
        super().__init__()
        hidden = 2 * stem
        self.stem = nn.Sequential(nn.Conv1d(in_channels, stem, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm1d(stem), act())
        self.mv2 = nn.Sequential(
            nn.Conv1d(stem, hidden, 1, bias=False), nn.BatchNorm1d(hidden), act(),
            nn.Conv1d(hidden, hidden, 3, stride=2, padding=1, groups=hidden, bias=False),
            nn.BatchNorm1d(hidden), act(),
            nn.Conv1d(hidden, dim, 1, bias=False), nn.BatchNorm1d(dim),
        )
        self.local = nn.Sequential(
            nn.Conv1d(dim, dim, 3, padding=1, groups=dim, bias=False), nn.BatchNorm1d(dim), act(),
            nn.Conv1d(dim, dim, 1, bias=False),
        )
        self.transformer = TransformerBlock(act, dim, heads)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of sequences ``(N, in_channels, L)`` (``(N, L)`` is
        taken as one channel)."""
        if x.dim() == 2:
            x = x.unsqueeze(1)
        y = self.local(self.mv2(self.stem(x)))
        tokens = self.transformer(y.transpose(1, 2))
        return self.head(self.norm(tokens).mean(dim=1))
