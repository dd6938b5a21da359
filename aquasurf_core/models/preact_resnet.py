"""Pre-activation ResNets with basic blocks (He et al. 2016, "Identity mappings in deep
residual networks"), in 1-D and 2-D.

Block (``x`` the block input, ``f`` the searched activation)::

    a = f(BN(x));  out = conv3(f(BN(conv3_s(a)))) + shortcut

The shortcut is ``x`` when shape is unchanged, otherwise a 1x1 stride-``s`` convolution of
``a`` (projection, no bias), as in the pre-activation paper. The network is::

    conv3 (stem, no activation) -> stages of blocks -> f(BN(.)) -> global average pool -> linear

``ResNet-56`` for CIFAR (He et al. 2016, Sec. 4.2) is three stages of 9 blocks with 16/32/64
channels, strides 1/2/2: 55 convolutions + 2 projection convolutions + linear, 855,578
parameters for 10 classes (the paper quotes 0.85M). Activation sites using the searched
function: two per block plus the final one before pooling (55 for ResNet-56). Convolutions
have no bias (each is followed by BatchNorm or added to a normalised path); the linear head
has one.

This network is registered as ``preact-resnet-56``. Its Fisher feature size (sum over layers
of floor(|theta_l| / 100)) is 8,499, not the 16,500 the AQuaSurF appendix reports for its
"ResNet-56"; 16,500 is exactly what the Keras example's ResNet v2 at depth 56 gives, so
``resnet-56`` is that network (:mod:`.resnet_v2`).

The MNIST-1D ``resnet`` model is the same with ``nn.Conv1d``, three stages of 1 block with
8/16/32 channels and a stride-2 stem (length 40 -> 20 -> 10 -> 5, for CPU speed).
"""

from __future__ import annotations

import torch
from torch import nn

from aquasurf_core.models.factory import ActivationFactory


class PreActBlock(nn.Module):
    """One pre-activation basic block (two 3-wide convolutions), ``cin`` to ``cout``
    channels, the first convolution (and the projection shortcut, used when ``stride != 1``
    or ``cin != cout``) with stride ``stride``; ``dims`` 1 or 2; ``act`` at both sites."""

    def __init__(self, act: ActivationFactory, cin: int, cout: int, stride: int, dims: int):
        super().__init__()
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        norm = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        self.bn1 = norm(cin)
        self.act1 = act()
        self.conv1 = conv(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = norm(cout)
        self.act2 = act()
        self.conv2 = conv(cout, cout, 3, stride=1, padding=1, bias=False)
        self.shortcut = (
            conv(cin, cout, 1, stride=stride, bias=False) if stride != 1 or cin != cout else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``conv3(f(BN(conv3_s(f(BN(x)))))) + shortcut`` (module docstring): ``cin`` channels
        in, ``cout`` out, the length or height and width divided by ``stride`` (rounded up)."""
        a = self.act1(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(a)
        out = self.conv1(a)
        out = self.conv2(self.act2(self.bn2(out)))
        return out + skip


class PreActResNet(nn.Module):
    """Pre-activation ResNet; ``blocks[i]`` blocks of width ``widths[i]`` in stage ``i``.

    ``in_channels`` input channels, ``num_classes`` logits. Stages after the first halve the
    size; ``dims`` is 1 (sequences) or 2 (images); ``stem_stride`` is the stem convolution's
    stride; ``act`` builds the searched activation at each site. Raises ``ValueError`` for
    another ``dims``, or ``widths`` and ``blocks`` of different lengths or empty.
    """

    def __init__(
        self,
        act: ActivationFactory,
        *,
        in_channels: int,
        num_classes: int,
        widths: tuple[int, ...] = (16, 32, 64),
        blocks: tuple[int, ...] = (9, 9, 9),
        dims: int = 2,
        stem_stride: int = 1,
    ):
        super().__init__()
        if dims not in (1, 2):
            raise ValueError(f"dims must be 1 or 2, got {dims!r}")
        if len(widths) != len(blocks) or not widths:
            raise ValueError(f"widths {widths} and blocks {blocks} must be equally long, non-empty")
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        norm = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        self.dims = dims
        self.stem = conv(in_channels, widths[0], 3, stride=stem_stride, padding=1, bias=False)
        stages: list[nn.Module] = []
        cin = widths[0]
        for i, (width, count) in enumerate(zip(widths, blocks, strict=True)):
            for j in range(count):
                stride = 2 if (i > 0 and j == 0) else 1
                stages.append(PreActBlock(act, cin, width, stride, dims))
                cin = width
        self.blocks = nn.Sequential(*stages)
        self.bn = norm(cin)
        self.act = act()
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of ``x``: ``(N, C, L)`` in 1-D (``(N, L)`` is taken as
        one channel) or ``(N, C, H, W)`` in 2-D."""
        if self.dims == 1 and x.dim() == 2:
            x = x.unsqueeze(1)
        y = self.act(self.bn(self.blocks(self.stem(x))))
        return self.fc(y.flatten(2).mean(dim=2))
