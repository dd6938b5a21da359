"""Networks a user brings, built as their libraries build them: the own-model examples.

These are *not* architectures of the search space's benchmarks; they are the ordinary models a
researcher points the search at (notebook 06, ``benchmarks/own_model_fisher.py`` and the
own-model tests), each exactly as its library builds it, with nothing rewritten:

=====================  ==========================================================  ==========
name                   network                                                     input
=====================  ==========================================================  ==========
``resnet18``           ``torchvision.models.resnet18(num_classes=...)``              3 x S x S
``mobilenet_v3_small`` ``torchvision.models.mobilenet_v3_small(num_classes=...)``    3 x S x S
``vit_tiny``           ``torchvision.models.VisionTransformer`` (patch 8, 2 layers,  3 x S x S
                       2 heads, width 64, MLP 128); its head is zero-initialised
``timm_resnet10t``     ``timm.create_model("resnet10t", num_classes=...)``         3 x S x S
``text_transformer``   :class:`TextTransformer`: ``nn.Embedding`` +                 tokens (L)
                       ``nn.TransformerEncoder`` (``F.relu`` inside) + a linear head
``text_lstm``          :class:`TextLSTM`: ``nn.Embedding`` + one-layer ``nn.LSTM`` +    tokens (L)
                       a ReLU MLP head
=====================  ==========================================================  ==========

:func:`user_network` builds one (seeded); :func:`example_batch` gives a fixed batch of its
input shape with labels. Make a network searchable with
:func:`aquasurf_core.models.make_searchable`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["USER_NETWORKS", "TextLSTM", "TextTransformer", "example_batch", "user_network"]

VOCABULARY = 100
SEQUENCE = 16


class TextTransformer(nn.Module):
    """Token classifier: ``nn.Embedding`` (plus a learned position embedding, a bare
    parameter no layer owns), a 2-layer ``nn.TransformerEncoder`` (width 32, 2 heads, MLP 64;
    its activation is the functional ``F.relu``), mean pooling, ``nn.Linear`` head.
    ``num_classes`` logits, token ids in ``[0, vocabulary)``, embedding width ``width``,
    sequences of at most ``length`` tokens."""

    def __init__(self, num_classes: int = 10, vocabulary: int = VOCABULARY, width: int = 32,
                 length: int = SEQUENCE):
        super().__init__()
        self.embed = nn.Embedding(vocabulary, width)
        self.position = nn.Parameter(torch.randn(1, length, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, 2, dim_feedforward=64, dropout=0.0,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(width, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of token ids ``(N, L)``, ``L <= length``."""
        h = self.encoder(self.embed(tokens) + self.position[:, :tokens.shape[1]])
        return self.head(h.mean(dim=1))


class TextLSTM(nn.Module):
    """Token classifier: ``nn.Embedding``, a one-layer ``nn.LSTM`` (width 64), and a head
    ``Linear -> ReLU -> Linear`` on the last hidden state (the ReLU is the searchable site: an
    LSTM's gates are computed inside its kernel). ``num_classes`` logits, token ids in
    ``[0, vocabulary)``, embedding width ``width``, LSTM and head width ``hidden``."""

    def __init__(self, num_classes: int = 10, vocabulary: int = VOCABULARY, width: int = 32,
                 hidden: int = 64):
        super().__init__()
        self.embed = nn.Embedding(vocabulary, width)
        self.lstm = nn.LSTM(width, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden,
                                                                               num_classes))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of token ids ``(N, L)``."""
        out, _ = self.lstm(self.embed(tokens))
        return self.head(out[:, -1])


def _vit_tiny(num_classes: int, image_size: int) -> nn.Module:
    from torchvision.models import VisionTransformer

    return VisionTransformer(image_size=image_size, patch_size=8, num_layers=2, num_heads=2,
                             hidden_dim=64, mlp_dim=128, num_classes=num_classes)


def _timm(name: str) -> Callable[[int, int], nn.Module]:
    def build(num_classes: int, image_size: int) -> nn.Module:
        import timm

        return timm.create_model(name, pretrained=False, num_classes=num_classes)

    return build


def _torchvision(name: str) -> Callable[[int, int], nn.Module]:
    def build(num_classes: int, image_size: int) -> nn.Module:
        import torchvision

        return getattr(torchvision.models, name)(num_classes=num_classes)

    return build


#: name -> (builder(num_classes, image_size), takes tokens)
USER_NETWORKS: dict[str, tuple[Callable[[int, int], nn.Module], bool]] = {
    "resnet18": (_torchvision("resnet18"), False),
    "mobilenet_v3_small": (_torchvision("mobilenet_v3_small"), False),
    "vit_tiny": (_vit_tiny, False),
    "timm_resnet10t": (_timm("resnet10t"), False),
    "text_transformer": (lambda c, s: TextTransformer(c), True),
    "text_lstm": (lambda c, s: TextLSTM(c), True),
}


def _known(name: str) -> tuple[Callable[[int, int], nn.Module], bool]:
    if name not in USER_NETWORKS:
        raise ValueError(f"unknown network {name!r}; known: {', '.join(USER_NETWORKS)}")
    return USER_NETWORKS[name]


def user_network(name: str, *, num_classes: int = 10, image_size: int = 32,
                 seed: int = 0) -> nn.Module:
    """The network ``name`` of :data:`USER_NETWORKS`, built with ``torch.manual_seed(seed)``.

    Raises ``ValueError`` for an unknown name (naming the known ones)."""
    build, _ = _known(name)
    torch.manual_seed(seed)
    return build(num_classes, image_size)


def example_batch(name: str, batch: int = 32, *, num_classes: int = 10, image_size: int = 32,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed batch for ``name``: N(0, 1) images ``(batch, 3, S, S)`` or tokens
    ``(batch, 16)`` in ``[0, 100)``, with uniform labels; drawn on the CPU from ``seed``."""
    _, tokens = _known(name)
    g = torch.Generator().manual_seed(seed)
    if tokens:
        x = torch.randint(0, VOCABULARY, (batch, SEQUENCE), generator=g)
    else:
        x = torch.randn((batch, 3, image_size, image_size), generator=g)
    return x, torch.randint(0, num_classes, (batch,), generator=g)
