"""A small CoAtNet-style hybrid (convolution, then attention) for MNIST-1D sequences
(``N x 1 x 40``).

CoAtNet (Dai et al. 2021) stacks a convolutional stem, MBConv stages, then transformer stages,
downsampling between stages. The paper's Table 3 searches activation functions for CoAtNet on
ImageNet with an extended operator set; this is the same layout at MNIST-1D size, for
searching on a 2-core CPU (``f`` the searched activation)::

    stem      conv3/2 1->c, BN, f                                           (N, c, 20)
    MBConv    pre-norm, stride 2: x' = shortcut(x) + proj(f(BN(dw3/2(f(BN(expand(BN(x))))))))
                expand conv1 c->4c; depthwise conv3/2; proj conv1 4c->m;
                shortcut avgpool2 then conv1 c->m                           (N, m, 10)
    tokens    conv1 m->d, then (N, 10, d): ``blocks`` pre-norm transformer blocks
                x + Attn(LN(x)); x + W2 f(W1 LN(x)), W1: d->2d, W2: 2d->d
                (:class:`aquasurf_core.models.small_vit.TransformerBlock`)
    head      LN, mean over tokens, linear d->classes

Differences from CoAtNet, chosen for size: one MBConv block and ``blocks`` transformer blocks
instead of stages of several; no squeeze-excitation; attention without CoAtNet's relative
position bias (the convolutions before it carry position, as in MobileViT). The searched
function is used at ``3 + blocks`` sites: stem, the two MBConv activations, and each
transformer MLP; the attention softmax is not a searched site. With ``c = 16``, ``m = 24``,
``d = 32``, 2 heads and 2 blocks (the MNIST-1D ``coatnet``) the model has 21,786 parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from aquasurf_core.models.factory import ActivationFactory
from aquasurf_core.models.small_vit import TransformerBlock


class MBConv(nn.Module):
    """Pre-norm inverted-bottleneck block with a stride-2 depthwise convolution and a pooled,
    projected shortcut (module docstring): ``channels`` in, ``out`` out, hidden width
    ``expansion * channels``, ``act`` at its two sites."""

    def __init__(self, act: ActivationFactory, channels: int, out: int, expansion: int = 4):
        super().__init__()
        hidden = expansion * channels
        self.body = nn.Sequential(
            nn.BatchNorm1d(channels),
            nn.Conv1d(channels, hidden, 1, bias=False), nn.BatchNorm1d(hidden), act(),
            nn.Conv1d(hidden, hidden, 3, stride=2, padding=1, groups=hidden, bias=False),
            nn.BatchNorm1d(hidden), act(),
            nn.Conv1d(hidden, out, 1, bias=False),
        )
        self.shortcut = nn.Sequential(nn.AvgPool1d(2, ceil_mode=True),
                                      nn.Conv1d(channels, out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, channels, L)`` to ``(N, out, ceil(L / 2))``."""
        return self.shortcut(x) + self.body(x)


class SmallCoAtNet(nn.Module):
    """CoAtNet-style 1-D classifier (see module docstring) of ``in_channels`` input channels
    and ``num_classes`` logits: ``stem`` is ``c``, ``conv`` is ``m`` and ``dim`` is ``d``
    there, with ``heads`` attention heads and ``blocks`` transformer blocks; ``act`` builds
    the searched activation at each site."""

    def __init__(self, act: ActivationFactory, *, in_channels: int, num_classes: int,
                 stem: int = 16, conv: int = 24, dim: int = 32, heads: int = 2,
                 blocks: int = 2):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(in_channels, stem, 3, stride=2, padding=1,
                                            bias=False),
                                  nn.BatchNorm1d(stem), act())
        self.mbconv = MBConv(act, stem, conv)
        self.to_tokens = nn.Conv1d(conv, dim, 1)
        self.transformer = nn.Sequential(*[TransformerBlock(act, dim, heads)
                                           for _ in range(blocks)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of sequences ``(N, in_channels, L)`` (``(N, L)`` is
        taken as one channel)."""
        if x.dim() == 2:
            x = x.unsqueeze(1)
        y = self.to_tokens(self.mbconv(self.stem(x)))
        tokens = self.transformer(y.transpose(1, 2))
        return self.head(self.norm(tokens).mean(dim=1))
