"""The "ResNet v2" of the Keras CIFAR-10 example: a pre-activation ResNet with bottleneck
blocks, depth ``9 n + 2`` -- the network behind the AQuaSurF paper's "ResNet-56".

Why this network: the paper's Appendix D gives the Fisher feature size
``sum_l floor(|theta_l| / 100)`` (weights + bias of each weight layer) as 16,500 for
ResNet-56. He et al.'s 0.85M basic-block ResNet-56 (:mod:`.preact_resnet`, registered as
``preact-resnet-56``) gives 8,499; this network at depth 56 gives exactly 16,500 (1,663,338
parameters for 10 classes, BatchNorm affine parameters included).

Layout (``f`` the searched activation, ``BN`` BatchNorm, ``convK`` a K x K convolution WITH
bias, ``padding = K // 2`` i.e. Keras ``'same'``; ``n = (depth - 2) / 9``, 6 for depth 56)::

    stem:   x = f(BN(conv3(input, 16)))                       (conv first, then BN + f)
    stage s in 0, 1, 2 with bottleneck width m_s = 16, 64, 128 and output width
    c_s = 4 * 16 = 64, 2 * 64 = 128, 2 * 128 = 256; block j in 0 .. n-1:
        a = x                    if s == 0 and j == 0   (x already is f(BN(stem)))
            f(BN(x))             otherwise
        y = conv1_t(a, m_s)      with stride t = 2 if s > 0 and j == 0 else 1
        y = conv3(f(BN(y)), m_s)
        y = conv1(f(BN(y)), c_s)
        x = conv1_t(x, c_s) + y  if j == 0 (projection of the block INPUT x, not of a)
            x + y                otherwise
    head:   logits = linear(global_average_pool(f(BN(x))))    (softmax left to the loss)

Details kept from the Keras example because they change the parameter count or the wiring:
every convolution has a bias; the bottleneck width of stages 1 and 2 equals the previous
stage's output width, ``m_s = c_{s-1}`` (64 and 128, not c_s / 4 = 32 and 64); the first
block of stage 0 has no BN + f before its first convolution; the stride-2 downsampling
is in the first 1x1 convolution of a stage's first block and in its shortcut;
the shortcut projection (first block of every stage, stage 0 included) reads the raw block
input ``x``. Depth 56 = 1 stem + 3 x 6 x 3 convolutions + 1 dense layer (projections not
counted). Keras pools with ``AveragePooling2D(8)`` on the 8 x 8 map of a 32 x 32 input, which
is the global average used here (so other input sizes work too).

Activation sites (each an :class:`~aquasurf_core.space.ActivationFunction`): the stem, three
per block except two in the very first block, and the final one: ``1 + (9 n - 1) + 1``, 55 at depth
56. Not replicated (not architecture, or owned elsewhere): Keras' ``he_normal`` init and L2 kernel
regulariser (the package uses its own init, :mod:`aquasurf_core.models.initialization`; weight decay
belongs to the optimiser), and Keras' BatchNorm defaults (``epsilon=1e-3``, moving-average momentum
0.99); PyTorch's BatchNorm defaults (``eps=1e-5``, momentum 0.1) are used.
"""

from __future__ import annotations

import torch
from torch import nn

from aquasurf_core.models.factory import ActivationFactory, check_positive_int


class BottleneckV2Block(nn.Module):
    """``[BN + f] -> conv1 (stride) -> BN + f -> conv3 -> BN + f -> conv1`` plus a shortcut.

    ``cin`` channels in, bottleneck width ``mid``, ``cout`` out; the first convolution has
    stride ``stride``. ``preact=False`` drops the first BN + f (first block of the network);
    ``project=True`` puts a biased 1x1 convolution with the block's stride on the shortcut
    (applied to the block input, not to the pre-activated tensor).
    """

    def __init__(self, act: ActivationFactory, cin: int, mid: int, cout: int, stride: int,
                 *, preact: bool, project: bool):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin) if preact else None
        self.act1 = act() if preact else None
        self.conv1 = nn.Conv2d(cin, mid, 1, stride=stride)
        self.bn2 = nn.BatchNorm2d(mid)
        self.act2 = act()
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(mid)
        self.act3 = act()
        self.conv3 = nn.Conv2d(mid, cout, 1)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, cin, H, W)`` to ``(N, cout, H / stride, W / stride)`` (rounded up)."""
        y = x if self.bn1 is None else self.act1(self.bn1(x))
        y = self.conv1(y)
        y = self.conv2(self.act2(self.bn2(y)))
        y = self.conv3(self.act3(self.bn3(y)))
        return (x if self.shortcut is None else self.shortcut(x)) + y


class ResNetV2(nn.Module):
    """Keras-example ResNet v2 of depth ``9 n + 2`` (``n`` bottleneck blocks per stage) for
    images; see the module docstring for the exact layout.

    ``in_channels`` image channels, ``num_classes`` logits, ``stem_width`` the stem's
    channels (16 in the example); ``act`` builds the searched activation at each site.
    Raises ``ValueError`` for a ``depth`` that is not ``9 n + 2`` with ``n >= 1`` or a
    ``stem_width`` that is not a positive integer.
    """

    def __init__(self, act: ActivationFactory, *, in_channels: int, num_classes: int,
                 depth: int = 56, stem_width: int = 16):
        super().__init__()
        check_positive_int(depth, "depth")
        if (depth - 2) % 9 != 0 or depth < 11:
            raise ValueError(f"depth must be 9 n + 2 with n >= 1 (e.g. 56), got {depth}")
        check_positive_int(stem_width, "stem_width")
        per_stage = (depth - 2) // 9
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem_width, 3, padding=1),
                                  nn.BatchNorm2d(stem_width), act())
        blocks: list[nn.Module] = []
        mid, cin = stem_width, stem_width
        for stage in range(3):
            cout = mid * (4 if stage == 0 else 2)
            for j in range(per_stage):
                first = j == 0
                blocks.append(BottleneckV2Block(
                    act, cin, mid, cout, 2 if first and stage > 0 else 1,
                    preact=not (first and stage == 0), project=first))
                cin = cout
            mid = cout
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.act = act()
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of images ``(N, in_channels, H, W)``."""
        y = self.act(self.bn(self.blocks(self.stem(x))))
        return self.fc(y.mean(dim=(2, 3)))
