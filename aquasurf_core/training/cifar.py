"""CIFAR-10 and CIFAR-100 with the paper's augmentations (appendix Table 4, Appendix E).

The images are read with ``torchvision.datasets.CIFAR10``/``CIFAR100`` (``download=False``:
nothing is downloaded; put the extracted archives under ``root``, see :func:`load_cifar`).
A class-balanced validation set of ``validation_size`` images (5,000 in the paper: 500 per
class for CIFAR-10, 50 for CIFAR-100) is held out from the 50,000 training images with
:func:`aquasurf_core.training.data.balanced_split` and a seed; the 10,000 test images are never
used for selection.

Augmentations (:data:`AUGMENTATIONS`), applied to the uint8 images:

* ``all-cnn-c``: random 32x32 crops of the image zero-padded by 4 pixels on every side,
  random horizontal flips (p = 1/2), then per-channel mean/std normalisation
  ``(x / 255 - mean_c) / std_c`` with ``mean_c``/``std_c`` the per-channel mean and (population)
  standard deviation of ``x / 255`` over the *training split* (after the validation hold-out),
  as Keras' ``featurewise_center``/``featurewise_std_normalization`` do;
* ``resnet-56``: crops of the image zero-padded by 5 pixels, flips, and NO mean/std
  normalisation: inputs are ``x / 255`` in ``[0, 1]``.

Augmentation applies to the training split only; validation and test images are returned
unaugmented (same scaling/normalisation). Augmentation is deterministic: the crop offsets and
the flip of image ``i`` in epoch ``e`` come from a SplitMix64 hash ``h`` of ``(seed, e, i)``
(:func:`augmentation_hash`; ``dy = h mod (2 pad + 1)``, ``dx = (h div (2 pad + 1)) mod
(2 pad + 1)``, flip = top bit of ``h``), independent of worker processes and loading order. Call
``splits.train.set_epoch(e)`` before each epoch (the loaders of :func:`make_loaders` re-send
the dataset to the workers every epoch, so the new epoch reaches them).

Integrity: by default torchvision's MD5 check of the original files runs. ``verify=False``
uses subclasses of the torchvision classes whose file lists carry no checksum
(``check_integrity(path, None)`` only checks that the file exists); this is meant for tiny
files in CIFAR's on-disk format (tests) or re-packed copies. Array shapes, label ranges and
class counts are checked either way.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets import CIFAR10, CIFAR100

from aquasurf_core.paths import data_dir
from aquasurf_core.training.data import balanced_split

IMAGE_SIZE = 32
VALIDATION_SIZE = 5000


@dataclass(frozen=True)
class Augmentation:
    """Input pipeline of one architecture (paper Table 4)."""

    name: str
    pad: int  # zero padding before the random 32x32 crop
    flip: bool  # random horizontal flips
    normalize: bool  # per-channel mean/std normalisation


AUGMENTATIONS = {
    "all-cnn-c": Augmentation("all-cnn-c", pad=4, flip=True, normalize=True),
    "resnet-56": Augmentation("resnet-56", pad=5, flip=True, normalize=False),
}
#: Architecture aliases of :mod:`aquasurf_core.models` -> augmentation.
AUGMENTATION_ALIASES = {"cnn": "all-cnn-c", "resnet": "resnet-56", "preact-resnet-56": "resnet-56"}


class _UncheckedCIFAR10(CIFAR10):
    """``CIFAR10`` without MD5 checks: same files, checksums ``None`` (existence only)."""

    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": None}


class _UncheckedCIFAR100(CIFAR100):
    """``CIFAR100`` without MD5 checks: same files, checksums ``None`` (existence only)."""

    train_list = [[name, None] for name, _ in CIFAR100.train_list]
    test_list = [[name, None] for name, _ in CIFAR100.test_list]
    meta = {**CIFAR100.meta, "md5": None}


_DATASETS = {
    "cifar10": (CIFAR10, _UncheckedCIFAR10, 10,
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    "cifar100": (CIFAR100, _UncheckedCIFAR100, 100,
                 "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
}


def default_data_root() -> Path:
    """Where CIFAR is looked for: :func:`aquasurf_core.paths.data_dir` (``$AQUASURF_DATA``,
    else ``<cache>/data``)."""
    return data_dir()


def resolve_augmentation(augmentation: str | Augmentation) -> Augmentation:
    """The :class:`Augmentation` named ``augmentation`` (a key of :data:`AUGMENTATIONS` or an
    architecture alias of :data:`AUGMENTATION_ALIASES`); an :class:`Augmentation` is returned
    as it is. Raises ``ValueError`` for an unknown name, listing the known ones."""
    if isinstance(augmentation, Augmentation):
        return augmentation
    key = AUGMENTATION_ALIASES.get(augmentation, augmentation)
    if key not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {augmentation!r}; known: "
                         f"{', '.join(AUGMENTATIONS)} (aliases {', '.join(AUGMENTATION_ALIASES)})")
    return AUGMENTATIONS[key]


class CifarSplit(Dataset):
    """Images ``[N, 3, 32, 32]`` uint8 and labels ``[N]`` int64; items are ``(float32 image
    [3, 32, 32], int label)`` scaled to ``[0, 1]``, optionally normalised and augmented
    (module docstring).

    ``mean`` and ``std`` (per channel, of ``x / 255``; both ``None`` for no normalisation)
    normalise the items; ``augment`` applies ``augmentation``'s crop and flip, drawn from
    ``seed``, the epoch (:meth:`set_epoch`) and the item's index.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augmentation: Augmentation,
                 mean: torch.Tensor | None, std: torch.Tensor | None, augment: bool,
                 seed: int = 0):
        self.images, self.labels, self.augmentation = images, labels, augmentation
        self.mean = None if mean is None else mean.view(3, 1, 1)
        self.std = None if std is None else std.view(3, 1, 1)
        # (x / 255 - mean) / std == x * scale - shift, one fused op per image
        self._scale = None if mean is None else 1.0 / (255.0 * self.std)
        self._shift = None if mean is None else self.mean / self.std
        self.augment, self.seed, self.epoch = augment, int(seed), 0

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch``."""
        self.epoch = int(epoch)

    def crop_and_flip(self, index: int) -> tuple[int, int, bool]:
        """``(dy, dx, flip)`` of item ``index`` this epoch: the crop window starts at
        ``(dy, dx)`` in the padded image (``0 .. 2 * pad``)."""
        h = augmentation_hash(self.seed, self.epoch, index)
        n = 2 * self.augmentation.pad + 1
        return h % n, (h // n) % n, bool(self.augmentation.flip and h >> 63)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.augment:
            dy, dx, flip = self.crop_and_flip(index)
            image = crop_padded(image, self.augmentation.pad, dy, dx)
            if flip:
                image = image.flip(-1)
        if self._scale is None:
            return image.to(torch.float32).div_(255.0), int(self.labels[index])
        return torch.addcmul(-self._shift, image.to(torch.float32), self._scale), \
            int(self.labels[index])


_MASK64 = (1 << 64) - 1


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def augmentation_hash(seed: int, epoch: int, index: int) -> int:
    """64-bit SplitMix64 hash of ``(seed, epoch, index)``: the augmentation draw of one item."""
    return _splitmix64(_splitmix64(_splitmix64(seed & _MASK64) ^ (epoch & _MASK64))
                       ^ (index & _MASK64))


def crop_padded(image: torch.Tensor, pad: int, dy: int, dx: int) -> torch.Tensor:
    """The ``H x W`` window at ``(dy, dx)`` of ``image`` ``[C, H, W]`` zero-padded by ``pad``."""
    _, h, w = image.shape
    out = torch.zeros_like(image)
    # rows of the padded image dy .. dy+h-1 are source rows dy-pad .. dy-pad+h-1
    y0, x0 = dy - pad, dx - pad
    src_y, src_x = slice(max(0, y0), min(h, y0 + h)), slice(max(0, x0), min(w, x0 + w))
    dst_y = slice(max(0, -y0), max(0, -y0) + (src_y.stop - src_y.start))
    dst_x = slice(max(0, -x0), max(0, -x0) + (src_x.stop - src_x.start))
    out[:, dst_y, dst_x] = image[:, src_y, src_x]
    return out


def channel_statistics(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population standard deviation of ``images / 255`` (uint8
    ``[N, C, H, W]``), exactly in float64 from each channel's 256-bin value histogram (no
    float copy of the images)."""
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].reshape(-1), minlength=256).double().numpy()
        total = counts.sum()
        mean = float(counts @ values / total)
        means.append(mean)
        stds.append(float(np.sqrt(counts @ (values - mean) ** 2 / total)))
    return tuple(means), tuple(stds)


@dataclass
class CifarSplits:
    """What :func:`load_cifar` returns: the ``train``, ``validation`` (held out of the
    training images) and ``test`` splits, the ``dataset`` name, its ``num_classes`` and
    ``classes`` names, the ``augmentation``, the normalisation ``mean``/``std`` (``None``
    without), the ``validation_indices`` and a ``fingerprint`` of the data."""

    train: CifarSplit
    validation: CifarSplit
    test: CifarSplit
    dataset: str
    num_classes: int
    classes: list[str]
    augmentation: Augmentation
    mean: tuple[float, float, float] | None  # per channel, of x / 255 over the train split
    std: tuple[float, float, float] | None
    validation_indices: np.ndarray  # indices into the original 50,000 training images
    fingerprint: str  # sha256 of images and labels (train+test), for manifests


def _read(dataset: str, root: Path, train: bool, verify: bool):
    checked, unchecked, _, url = _DATASETS[dataset]
    cls = checked if verify else unchecked
    folder = root / cls.base_folder
    names = [n for n, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{dataset.upper()} not found: expected {folder}/ with {', '.join(names)} "
            f"(missing: {', '.join(missing)}). Nothing is downloaded here: fetch {url} "
            f"elsewhere and extract it into {root} (or set root= / $AQUASURF_DATA).")
    try:
        data = cls(str(root), train=train, download=False)
    except RuntimeError as err:  # torchvision's MD5 failures
        raise ValueError(f"{dataset.upper()} files under {folder} fail torchvision's MD5 check "
                         f"({err}); re-extract the original archive, or pass verify=False for "
                         "files that are not the original ones") from err
    except (KeyError, ValueError, EOFError, OSError, pickle.UnpicklingError) as err:
        raise ValueError(f"{dataset.upper()} files under {folder} are corrupt "
                         f"({type(err).__name__}: {err})") from err
    images = np.asarray(data.data)
    labels = np.asarray(data.targets, dtype=np.int64)
    if images.dtype != np.uint8 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3) \
            or len(images) != len(labels):
        raise ValueError(f"{dataset.upper()} files under {folder}: images {images.shape} "
                         f"{images.dtype} and {labels.shape} labels are inconsistent")
    return images, labels, list(data.classes)


def load_cifar(
    dataset: str = "cifar10",
    augmentation: str | Augmentation = "all-cnn-c",
    *,
    root: str | os.PathLike | None = None,
    validation_size: int = VALIDATION_SIZE,
    split_seed: int = 0,
    augment_seed: int = 0,
    verify: bool = True,
) -> CifarSplits:
    """CIFAR-10 (``"cifar10"``) or CIFAR-100 (``"cifar100"``) with ``augmentation``
    (``"all-cnn-c"``, ``"resnet-56"`` or a :class:`Augmentation`) and a balanced validation split of
    ``validation_size`` images chosen with ``split_seed``.

    ``root`` (default :func:`default_data_root`) holds the extracted archives:
    ``root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` and
    ``root/cifar-100-python/{train, test, meta}``. ``verify=False`` skips the MD5 check
    (module docstring)."""
    if dataset not in _DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(_DATASETS)}")
    augmentation = resolve_augmentation(augmentation)
    root = Path(root) if root is not None else default_data_root()
    num_classes = _DATASETS[dataset][2]
    if validation_size < 0 or validation_size % num_classes:
        raise ValueError(f"validation_size must be a non-negative multiple of {num_classes} "
                         f"(class-balanced), got {validation_size}")
    train_images, train_labels, classes = _read(dataset, root, True, verify)
    test_images, test_labels, _ = _read(dataset, root, False, verify)
    for name, labels in (("training", train_labels), ("test", test_labels)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{dataset.upper()} {name} labels outside 0..{num_classes - 1}")
    if len(classes) != num_classes:
        raise ValueError(f"{dataset.upper()} metadata lists {len(classes)} classes, expected "
                         f"{num_classes}")

    digest = hashlib.sha256()
    for a in (train_images, train_labels, test_images, test_labels):
        digest.update(np.ascontiguousarray(a).tobytes())
    if validation_size:
        keep, held = balanced_split(train_labels, validation_size // num_classes, split_seed)
    else:
        keep, held = np.arange(len(train_labels)), np.zeros(0, dtype=np.int64)

    def chw(images: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))

    train_x = chw(train_images[keep])
    mean = std = None
    if augmentation.normalize:
        mean, std = channel_statistics(train_x)
    mean_f = None if mean is None else torch.tensor(mean, dtype=torch.float32)
    std_f = None if std is None else torch.tensor(std, dtype=torch.float32)

    def split(images: torch.Tensor, labels: np.ndarray, augment: bool) -> CifarSplit:
        return CifarSplit(images, torch.from_numpy(labels), augmentation, mean_f, std_f, augment,
                          augment_seed)

    return CifarSplits(
        train=split(train_x, train_labels[keep], True),
        validation=split(chw(train_images[held]), train_labels[held], False),
        test=split(chw(test_images), test_labels, False),
        dataset=dataset, num_classes=num_classes, classes=classes, augmentation=augmentation,
        mean=mean, std=std, validation_indices=held, fingerprint=digest.hexdigest(),
    )


def make_loaders(
    splits: CifarSplits,
    batch_size: int = 128,
    *,
    num_workers: int = 0,
    seed: int = 0,
    pin_memory: bool = False,
    drop_last: bool = False,
) -> tuple[DataLoader, DataLoader, DataLoader]:
    """``(train, validation, test)`` loaders; train is shuffled with a ``torch.Generator``
    seeded by ``seed`` (same order on every run), the others keep their order. Workers are
    not persistent, so ``splits.train.set_epoch(e)`` takes effect every epoch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator().manual_seed(seed)

    def loader(data: CifarSplit, shuffle: bool) -> DataLoader:
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle,
                          generator=generator if shuffle else None, num_workers=num_workers,
                          pin_memory=pin_memory, drop_last=drop_last and shuffle)

    return loader(splits.train, True), loader(splits.validation, False), \
        loader(splits.test, False)
