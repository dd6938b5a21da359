"""The own-model examples build as their libraries build them, with seeded weights and
batches of the right shape; an unknown name is refused."""

from __future__ import annotations

import pytest
import torch

from aquasurf_core.models.user_networks import USER_NETWORKS, example_batch, user_network


@pytest.mark.parametrize("name", sorted(USER_NETWORKS))
def test_each_network_builds_seeded_and_classifies_its_batch(name):
    x, y = example_batch(name, 3, num_classes=7, image_size=32, seed=1)
    assert y.shape == (3,) and int(y.max()) < 7
    a = user_network(name, num_classes=7, seed=2)
    b = user_network(name, num_classes=7, seed=2)
    a.eval(), b.eval()
    with torch.no_grad():
        out = a(x)
        torch.testing.assert_close(out, b(x), rtol=0, atol=0)  # same seed, same network
    assert out.shape == (3, 7)


def test_zero_initialised_head_of_torchvision_vit_is_kept():
    """The ViT is built as torchvision builds it: its head starts at zero (the check that
    explains what that does to the Fisher spectra needs such a model)."""
    head = user_network("vit_tiny").heads.head
    assert not head.weight.any() and not head.bias.any()


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown network 'resnet19'.*resnet18"):
        user_network("resnet19")
    with pytest.raises(ValueError, match="unknown network"):
        example_batch("nope")
