"""ResNet-50 (He et al. 2016) from torchvision, with every ReLU replaced by the searched
activation (the transfer experiment of the paper).

``torchvision.models.resnet50(weights=None)`` is built unchanged and each ``nn.ReLU`` child
module is swapped for a fresh activation module. torchvision's ``Bottleneck`` owns one ``relu``
module that its ``forward`` applies at three sites (after ``bn1``, after ``bn2`` and after the
residual sum), so each bottleneck's single replacement module serves all three of its sites;
the stem has its own. Nothing else in the network is nonlinear apart from max pooling.
"""

from __future__ import annotations

from torch import nn

from aquasurf_core.models.factory import ActivationFactory


def replace_relus(module: nn.Module, act: ActivationFactory) -> int:
    """Replace every ``nn.ReLU`` child (recursively) by ``act()``; return how many."""
    count = 0
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, act())
            count += 1
        else:
            count += replace_relus(child, act)
    return count


def resnet50(act: ActivationFactory, *, in_channels: int = 3, num_classes: int = 1000) -> nn.Module:
    """torchvision ResNet-50 (random weights) with the searched activation."""
    from torchvision.models import resnet50 as tv_resnet50

    if in_channels != 3:
        raise ValueError(f"resnet-50 takes 3 input channels, got {in_channels}")
    model = tv_resnet50(weights=None, num_classes=num_classes)
    replace_relus(model, act)
    return model
