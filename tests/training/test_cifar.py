"""CIFAR-10/100 loaders on tiny files in CIFAR's on-disk format (written here).

The original batches are Python-2 pickles of dicts whose keys torchvision reads back, with
``encoding="latin1"``, as ``str`` (``"data"``, ``"labels"``); writing ``str`` keys from Python 3
reproduces exactly what torchvision sees. Images are ``uint8 [N, 3072]`` (channel-major rows).
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from aquasurf_core.training.cifar import AUGMENTATIONS, crop_padded, load_cifar, make_loaders


def _dump(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root, per_class_per_batch=1, n_test=20, seed=0):
    """Five training batches of ``10 * per_class_per_batch`` images and a test batch."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_x, train_y = [], []
    for b in range(1, 6):
        labels = [int(c) for c in rng.permutation(np.repeat(np.arange(10), per_class_per_batch))]
        data = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
        _dump(folder / f"data_batch_{b}", {"batch_label": f"training batch {b} of 5",
                                          "labels": labels, "data": data,
                                          "filenames": [f"img{b}_{i}.png" for i in
                                                        range(len(labels))]})
        train_x.append(data)
        train_y += labels
    test_labels = [int(c) for c in np.arange(n_test) % 10]
    test_data = rng.integers(0, 256, size=(n_test, 3072), dtype=np.uint8)
    _dump(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": test_labels,
                                  "data": test_data, "filenames": []})
    _dump(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)],
                                    "num_cases_per_batch": 10, "num_vis": 3072})
    as_images = lambda d: d.reshape(-1, 3, 32, 32)  # noqa: E731
    return (as_images(np.concatenate(train_x)), np.array(train_y),
            as_images(test_data), np.array(test_labels))


@pytest.fixture
def cifar10(tmp_path):
    return tmp_path, write_cifar10(tmp_path)


def expected_augmented(raw_chw: np.ndarray, pad: int, dy: int, dx: int, flip: bool):
    """The slow obvious way: numpy zero padding, slicing, flipping."""
    padded = np.pad(raw_chw, ((0, 0), (pad, pad), (pad, pad)))
    window = padded[:, dy : dy + 32, dx : dx + 32]
    return window[:, :, ::-1] if flip else window


def test_shapes_and_balanced_split(cifar10):
    root, (train_x, train_y, test_x, test_y) = cifar10
    s = load_cifar("cifar10", "resnet-56", root=root, validation_size=20, verify=False)
    assert (len(s.train), len(s.validation), len(s.test)) == (30, 20, 20)
    assert s.num_classes == 10 and s.classes[3] == "class3"
    x, y = s.train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and isinstance(y, int)
    assert torch.bincount(s.validation.labels, minlength=10).tolist() == [2] * 10
    held = s.validation_indices
    train_rows = np.setdiff1d(np.arange(50), held)
    # validation = the held-out original images; train = the rest, in order
    np.testing.assert_array_equal(s.validation.images.numpy(), train_x[held])
    np.testing.assert_array_equal(s.validation.labels.numpy(), train_y[held])
    np.testing.assert_array_equal(s.train.images.numpy(), train_x[train_rows])
    np.testing.assert_array_equal(s.test.images.numpy(), test_x)
    again = load_cifar("cifar10", "resnet-56", root=root, validation_size=20, verify=False)
    np.testing.assert_array_equal(again.validation_indices, held)
    assert again.fingerprint == s.fingerprint
    other = load_cifar("cifar10", "resnet-56", root=root, validation_size=20, split_seed=1,
                       verify=False)
    assert not np.array_equal(other.validation_indices, held)


def test_resnet_recipe_no_normalisation_and_unaugmented_eval(cifar10):
    root, (train_x, _, test_x, _) = cifar10
    s = load_cifar("cifar10", "resnet", root=root, validation_size=20, verify=False)
    assert s.augmentation == AUGMENTATIONS["resnet-56"] and s.mean is None and s.std is None
    for i in range(len(s.validation)):
        x, _ = s.validation[i]
        torch.testing.assert_close(x, torch.from_numpy(
            train_x[s.validation_indices[i]] / 255.0).float(), rtol=0, atol=0)
    for i in range(len(s.test)):
        torch.testing.assert_close(s.test[i][0], torch.from_numpy(test_x[i] / 255.0).float(),
                                   rtol=0, atol=0)
    assert float(s.test[0][0].min()) >= 0 and float(s.test[0][0].max()) <= 1


@pytest.mark.parametrize("augmentation, pad", [("resnet-56", 5), ("all-cnn-c", 4)])
def test_train_augmentation_is_a_padded_crop_and_flip(cifar10, augmentation, pad):
    root, _ = cifar10
    s = load_cifar("cifar10", augmentation, root=root, validation_size=20, verify=False)
    mean = np.zeros(3) if s.mean is None else np.array(s.mean)
    std = np.ones(3) if s.std is None else np.array(s.std)
    offsets, flips = [], []
    for epoch in range(4):
        s.train.set_epoch(epoch)
        for i in range(len(s.train)):
            dy, dx, flip = s.train.crop_and_flip(i)
            offsets += [dy, dx]
            flips.append(flip)
            raw = s.train.images[i].numpy()
            window = expected_augmented(raw, pad, dy, dx, flip) / 255.0
            expected = (window - mean[:, None, None]) / std[:, None, None]
            np.testing.assert_allclose(s.train[i][0].numpy(), expected, rtol=0, atol=1e-5)
    assert min(offsets) == 0 and max(offsets) == 2 * pad  # the full padded range is used
    assert 0.3 < np.mean(flips) < 0.7
    # reproducible within an epoch, different across epochs
    s.train.set_epoch(0)
    a = torch.stack([s.train[i][0] for i in range(len(s.train))])
    assert torch.equal(a, torch.stack([s.train[i][0] for i in range(len(s.train))]))
    s.train.set_epoch(1)
    assert not torch.equal(a, torch.stack([s.train[i][0] for i in range(len(s.train))]))


def test_allcnn_normalisation_uses_train_split_statistics(cifar10):
    root, (train_x, _, test_x, _) = cifar10
    s = load_cifar("cifar10", "all-cnn-c", root=root, validation_size=20, verify=False)
    rows = np.setdiff1d(np.arange(50), s.validation_indices)
    pixels = train_x[rows].astype(np.float64) / 255.0
    mean = [pixels[:, c].mean() for c in range(3)]
    std = [pixels[:, c].std() for c in range(3)]
    np.testing.assert_allclose(s.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(s.std, std, rtol=1e-12)
    # un-augmented training images come out with zero mean and unit variance per channel
    s.train.augment = False
    x = torch.stack([s.train[i][0] for i in range(len(s.train))]).double()
    np.testing.assert_allclose(x.mean(dim=(0, 2, 3)).numpy(), 0, atol=1e-6)
    np.testing.assert_allclose(x.std(dim=(0, 2, 3), unbiased=False).numpy(), 1, atol=1e-6)
    expected = (test_x[0] / 255.0 - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    np.testing.assert_allclose(s.test[0][0].numpy(), expected, atol=1e-5)
    assert not s.validation.augment and not s.test.augment


def test_crop_padded_against_numpy():
    image = torch.arange(2 * 6 * 7, dtype=torch.uint8).view(2, 6, 7)
    for dy in range(7):
        for dx in range(7):
            np.testing.assert_array_equal(crop_padded(image, 3, dy, dx).numpy(),
                                          expected_augmented(image.numpy(), 3, dy, dx,
                                                             False)[:, :6, :7])


def test_make_loaders(cifar10):
    root, _ = cifar10
    s = load_cifar("cifar10", "all-cnn-c", root=root, validation_size=20, verify=False)
    train, val, test = make_loaders(s, batch_size=8, seed=3)
    x, y = next(iter(train))
    assert x.shape == (8, 3, 32, 32) and y.dtype == torch.int64
    assert [len(b[1]) for b in val] == [8, 8, 4]
    assert torch.equal(torch.cat([b[1] for b in val]), s.validation.labels)
    order = lambda loader: torch.cat([b[1] for b in loader])  # noqa: E731
    first, _, _ = make_loaders(s, batch_size=8, seed=3)
    again, _, _ = make_loaders(s, batch_size=8, seed=3)
    epoch0 = order(first)
    assert torch.equal(epoch0, order(again))  # same seed, same shuffles, epoch after epoch
    assert torch.equal(order(first), order(again)) and not torch.equal(epoch0, order(first))
    assert sorted(epoch0.tolist()) == sorted(s.train.labels.tolist())
    # a worker process sees the epoch set in the main process
    workers, _, _ = make_loaders(s, batch_size=8, seed=5, num_workers=1)
    single, _, _ = make_loaders(s, batch_size=8, seed=5)
    for epoch in (0, 2):
        s.train.set_epoch(epoch)
        a = torch.cat([b[0] for b in workers])
        b = torch.cat([b[0] for b in single])
        assert torch.equal(a, b)


def test_cifar100(tmp_path, cifar100_writer):
    cifar100_writer(tmp_path)
    s = load_cifar("cifar100", "all-cnn-c", root=tmp_path, validation_size=100, verify=False)
    assert (len(s.train), len(s.validation), len(s.test), s.num_classes) == (200, 100, 100, 100)
    assert torch.bincount(s.validation.labels, minlength=100).tolist() == [1] * 100
    with pytest.raises(ValueError, match="multiple of 100"):
        load_cifar("cifar100", root=tmp_path, validation_size=150, verify=False)


def test_errors(tmp_path, cifar10):
    root, _ = cifar10
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py.*cifar-10-python.tar.gz"):
        load_cifar("cifar10", root=tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="missing: train, test, meta"):
        load_cifar("cifar100", root=tmp_path / "empty")
    with pytest.raises(ValueError, match="MD5 check.*verify=False"):
        load_cifar("cifar10", root=root, validation_size=20)  # tiny files are not the originals
    with pytest.raises(ValueError, match="unknown augmentation 'vgg'"):
        load_cifar("cifar10", "vgg", root=root, verify=False)
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        load_cifar("svhn", root=root)
    with pytest.raises(ValueError, match="cannot hold out"):  # 5 images per class
        load_cifar("cifar10", root=root, validation_size=50, verify=False)
    (root / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x02}q\x00(X")
    with pytest.raises(ValueError, match="are corrupt"):
        load_cifar("cifar10", root=root, validation_size=20, verify=False)
