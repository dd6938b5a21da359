"""scikit-learn's digits: balanced, disjoint, seeded splits, and the digits-cnn network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aquasurf_core.models import build_model
from aquasurf_core.training.digits import load_digits


def test_splits_are_balanced_disjoint_and_seeded():
    d = load_digits()
    assert (len(d.train), len(d.validation), len(d.test)) == (1197, 300, 300)
    assert tuple(d.train.x.shape[1:]) == (1, 8, 8) and d.train.x.dtype == torch.float32
    assert float(d.train.x.min()) == 0.0 and float(d.train.x.max()) == 1.0
    for split, per_class in ((d.validation, 30), (d.test, 30)):
        assert np.bincount(split.y.numpy(), minlength=10).tolist() == [per_class] * 10
    rows = {tuple(x.flatten().tolist()) for x in d.test.x}
    assert not any(tuple(x.flatten().tolist()) in rows for x in d.validation.x[:50])
    again = load_digits()
    assert torch.equal(again.validation.x, d.validation.x) and again.fingerprint == d.fingerprint
    assert not torch.equal(load_digits(seed=1).validation.y, d.validation.y) or \
        not torch.equal(load_digits(seed=1).validation.x, d.validation.x)
    with pytest.raises(ValueError, match="cannot hold out"):
        load_digits(test_per_class=500)


def test_digits_network():
    model = build_model("digits-cnn", "tanh(x)", seed=0)
    assert sum(p.numel() for p in model.parameters()) == 38570
    assert tuple(model(torch.zeros(3, 1, 8, 8)).shape) == (3, 10)
