"""MNIST-1D generation and the class-balanced validation split."""

import numpy as np
import pytest
import torch

from aquasurf_core.training.data import balanced_split, load_mnist1d


def test_mnist1d_shapes_split_and_determinism(tmp_path):
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    data = load_mnist1d(cache_dir=tmp_path)
    assert np.random.random() == before  # the package's reseeding does not leak
    assert data.train.x.shape == (3500, 1, 40) and data.train.x.dtype == torch.float32
    assert data.validation.x.shape == (500, 1, 40)
    assert data.test.x.shape == (1000, 1, 40)
    assert torch.bincount(data.validation.y).tolist() == [50] * 10
    assert (tmp_path / "mnist1d_seed42.npz").exists()
    again = load_mnist1d(cache_dir=tmp_path)  # from the cache file
    assert again.fingerprint == data.fingerprint
    torch.testing.assert_close(again.train.x, data.train.x)
    # validation and train are disjoint rows of the original training set
    train_rows = {tuple(r) for r in data.train.x[:, 0].numpy().round(6)}
    assert not any(tuple(r) in train_rows for r in data.validation.x[:, 0].numpy().round(6))


def test_corrupt_cache_file_is_named(tmp_path):
    (tmp_path / "mnist1d_seed42.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="corrupt MNIST-1D cache file"):
        load_mnist1d(cache_dir=tmp_path)


def test_balanced_split_rejects_too_small_classes():
    keep, held = balanced_split(np.array([0, 0, 0, 1, 1, 1]), 1, seed=0)
    assert sorted(np.r_[keep, held].tolist()) == list(range(6))
    with pytest.raises(ValueError, match="cannot hold out"):
        balanced_split(np.array([0, 0, 1]), 1, seed=0)


def test_harder_mnist1d_is_bigger_and_noisier_and_cached_apart(tmp_path):
    from aquasurf_core.training.data import HARD_MNIST1D

    easy = load_mnist1d(cache_dir=tmp_path)
    hard = load_mnist1d(cache_dir=tmp_path, generator=HARD_MNIST1D, validation_per_class=100)
    assert len(hard.train) + len(hard.validation) == 8_000 and len(hard.test) == 2_000
    assert torch.bincount(hard.validation.y).tolist() == [100] * 10
    assert hard.fingerprint != easy.fingerprint
    files = sorted(p.name for p in tmp_path.glob("mnist1d_seed42*.npz"))
    assert len(files) == 2 and "mnist1d_seed42.npz" in files  # the default file is untouched
    again = load_mnist1d(cache_dir=tmp_path, generator=dict(HARD_MNIST1D),
                         validation_per_class=100)
    assert again.fingerprint == hard.fingerprint

    # Noisier, measured the slow obvious way: a template-free proxy, the mean absolute
    # difference between neighbouring samples (i.i.d. noise raises it), per example.
    def roughness(split):
        return float(split.x[:, 0].diff(dim=1).abs().mean())

    assert roughness(hard.test) > roughness(easy.test)


@pytest.mark.parametrize("bad, message", [
    ({"final_seq_length": 60}, "unknown MNIST-1D generator argument"),
    ({"iid_noise_scale": -1}, "non-negative number"),
    ({"shear_scale": "big"}, "non-negative number"),
    ({"num_samples": 10.5}, "num_samples must be an integer"),
    ({"train_split": 1.0}, "train_split must be in"),
])
def test_bad_generator_arguments_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        load_mnist1d(generator=bad)
