"""The DataLoader trainer of the full-size tasks: it learns, it is seeded, it records
divergence like the reference trainer, and its batch mixing gives proper soft targets."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from aquasurf_core.training.loader_training import Mixing, evaluate_loader, train_with_loaders
from aquasurf_core.training.recipes import Recipe

RECIPE = Recipe(epochs=4, batch_size=16, optimizer="sgd", lr=0.1, schedule="linear",
                warmup_epochs=1.0)


def _blobs(n, seed):
    """Three well separated Gaussian blobs in 8-D, as 'images' of shape (1, 2, 4)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centres = torch.eye(3, 8) * 4
    x = centres[y] + torch.randn(n, 8, generator=g)
    return TensorDataset(x.view(n, 1, 2, 4), y)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))


def test_learns_a_separable_problem_deterministically_without_touching_global_rng():
    train, val, test = _blobs(96, 0), _blobs(30, 1), _blobs(30, 2)
    model = _model()
    state = torch.random.get_rng_state()
    a = train_with_loaders(model, train, val, test, RECIPE, seed=3, num_classes=3,
                           arch="mlp", fn_name="tanh(x)")
    assert torch.equal(torch.random.get_rng_state(), state)
    b = train_with_loaders(_model(), train, val, test, RECIPE, seed=3, num_classes=3)
    assert a.status == "ok" and a.val_accuracy > 0.9 and a.test_accuracy > 0.9
    assert (a.train_loss, a.val_loss, a.test_accuracy) == (b.train_loss, b.val_loss,
                                                           b.test_accuracy)
    c = train_with_loaders(_model(), train, val, test, RECIPE, seed=4, num_classes=3)
    assert c.train_loss != a.train_loss  # another seed, another data order
    # evaluation, the slow obvious way
    model = _model()
    loss, acc = evaluate_loader(model, torch.utils.data.DataLoader(val, batch_size=7))
    x, y = val.tensors
    with torch.no_grad():
        logits = model(x)
    assert loss == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert acc == pytest.approx((logits.argmax(1) == y).float().mean().item())


def test_divergence_is_recorded_at_chance():
    train, val = _blobs(48, 0), _blobs(12, 1)
    wild = Recipe(epochs=2, batch_size=16, optimizer="sgd", lr=1e12, schedule="linear",
                  warmup_epochs=0.0, momentum=0.0)
    r = train_with_loaders(_model(), train, val, val, wild, seed=0, num_classes=3)
    assert r.status == "diverged" and r.val_accuracy == pytest.approx(1 / 3)
    assert math.isnan(r.val_loss)


def test_mixing_gives_soft_targets_and_still_learns():
    mix = Mixing(mixup_alpha=0.1, cutmix_alpha=1.0).transform(3)
    x, y = torch.randn(8, 1, 2, 4), torch.arange(8) % 3
    torch.manual_seed(0)
    mixed, soft = mix(x, y)
    assert mixed.shape == x.shape and soft.shape == (8, 3)
    torch.testing.assert_close(soft.sum(1), torch.ones(8))
    assert Mixing().transform(3) is None
    train, val = _blobs(96, 0), _blobs(30, 1)
    r = train_with_loaders(_model(), train, val, val, RECIPE, seed=0, num_classes=3,
                           mixing=Mixing(mixup_alpha=0.1, cutmix_alpha=1.0))
    assert r.status == "ok" and r.val_accuracy > 0.8


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="Mixing.mixup_alpha must be"):
        Mixing(mixup_alpha=-1)
    subset = Recipe(epochs=1, batch_size=4, optimizer="sgd", lr=0.1, schedule="linear",
                    warmup_epochs=0.0, train_subset=4)
    with pytest.raises(ValueError, match="Subset"):
        train_with_loaders(_model(), _blobs(8, 0), _blobs(3, 1), _blobs(3, 1), subset, seed=0,
                           num_classes=3)
    with pytest.raises(ValueError, match="training split is empty"):
        train_with_loaders(_model(), _blobs(0, 0), _blobs(3, 1), _blobs(3, 1), RECIPE, seed=0,
                           num_classes=3)
