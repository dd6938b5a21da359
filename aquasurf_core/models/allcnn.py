"""All-CNN-C (Springenberg et al. 2015, "Striving for simplicity"), in 1-D and 2-D.

Only convolutions: strided 3x3 convolutions replace max pooling, 1x1 convolutions replace the
dense layers, and global average pooling over the last feature map gives the logits::

    conv3 c1 -> f, conv3 c1 -> f, conv3/2 c1 -> f, [dropout]
    conv3 c2 -> f, conv3 c2 -> f, conv3/2 c2 -> f, [dropout]
    conv3 c2 (no padding) -> f, conv1 c2 -> f, conv1 classes, global average pool

With ``c1, c2 = 96, 192`` on 3x32x32 images this is All-CNN-C: 9 convolutions with biases,
1,369,738 parameters for 10 classes. Its Fisher feature size, sum over layers of
floor(|theta_l| / 100), is 13,692, exactly the AQuaSurF appendix's figure. ``f`` is the
searched activation at all 8 hidden sites.
Differences from the 2015 table, both deliberate: there is no 20% input dropout (the AQuaSurF
training table lists dropout 0.5 only; it is applied after each stride-2 layer as in the
original), and the last 1x1 convolution produces logits with no activation after it unless
``logit_activation=True`` (Springenberg applied ReLU there).

The same layout with ``nn.Conv1d``, widths 16/32, no dropout and a stride-2 first
convolution (``first_stride=2``: length 40 -> 20 -> 10 -> 5 -> 3, which halves the compute,
as the CPU benchmark builds need) is the MNIST-1D ``cnn`` model: 13,898 parameters.

In 2-D with widths 16/32, no dropout and ``last_padding=1`` (the third-to-last convolution
padded, so that an 8x8 image keeps a 2x2 map: 8 -> 8 -> 4 -> 4 -> 2 -> 2) it is the
``digits-cnn`` model for scikit-learn's 8x8 digits: 38,570 parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from aquasurf_core.models.factory import ActivationFactory


class AllCNN(nn.Module):
    """All-convolutional classifier; ``dims`` is 1 (sequences, ``N x C x L``) or 2 (images).

    ``in_channels`` input channels, ``num_classes`` logits; ``act`` builds a fresh
    searched-activation module per site; ``widths`` are ``(c1, c2)`` of the module docstring's
    layout; ``dropout`` (in ``[0, 1)``, 0 for none) follows each stride-2 convolution;
    ``logit_activation`` applies ``act`` to the logits too; ``first_stride`` is the first
    convolution's stride and ``last_padding`` the third-to-last convolution's padding. Raises
    ``ValueError`` for another ``dims`` or a ``dropout`` outside ``[0, 1)``.
    """

    def __init__(
        self,
        act: ActivationFactory,
        *,
        in_channels: int,
        num_classes: int,
        widths: tuple[int, int] = (96, 192),
        dims: int = 2,
        dropout: float = 0.5,
        logit_activation: bool = False,
        first_stride: int = 1,
        last_padding: int = 0,
    ):
        super().__init__()
        if dims not in (1, 2):
            raise ValueError(f"dims must be 1 or 2, got {dims!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        c1, c2 = widths
        # (in, out, kernel, stride, padding), then "drop" markers.
        plan = [
            (in_channels, c1, 3, first_stride, 1), (c1, c1, 3, 1, 1), (c1, c1, 3, 2, 1), "drop",
            (c1, c2, 3, 1, 1), (c2, c2, 3, 1, 1), (c2, c2, 3, 2, 1), "drop",
            (c2, c2, 3, 1, last_padding), (c2, c2, 1, 1, 0),
        ]  # fmt: skip
        layers: list[nn.Module] = []
        for step in plan:
            if step == "drop":
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
                continue
            cin, cout, k, s, p = step
            layers += [conv(cin, cout, k, stride=s, padding=p), act()]
        layers.append(conv(c2, num_classes, 1))
        if logit_activation:
            layers.append(act())
        self.features = nn.Sequential(*layers)
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of ``x``: ``(N, C, L)`` in 1-D (``(N, L)`` is taken as
        one channel) or ``(N, C, H, W)`` in 2-D."""
        if self.dims == 1 and x.dim() == 2:
            x = x.unsqueeze(1)
        y = self.features(x)
        return y.flatten(2).mean(dim=2)
