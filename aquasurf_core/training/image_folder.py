"""ImageNet-style image folders (ImageNet, Imagenette) with the paper's MobileViTv2 / ResNet-50
input pipeline (appendix Table 4).

Layout, the one ImageNet and Imagenette are distributed in after extraction::

    root/train/<class>/*.JPEG|jpg|png     the training images, one folder per class
    root/val/<class>/...                  the held-out images, used as the test split

Classes are the sorted folder names of ``train/`` and ``val/`` must have the same ones.
A class-balanced validation split of ``validation_per_class`` images per class is held out from
``train/`` with :func:`aquasurf_core.training.data.balanced_split` and ``split_seed`` (the paper
holds out 10,000 ImageNet training images, Appendix E); ``val/`` is never used for selection.

Transforms (torchvision, on PIL images):

* training: ``RandomResizedCrop(image_size, scale=(0.08, 1))`` (Table 4: "minimum 8% of the
  original image"), horizontal flip, ``RandAugment(num_ops=2, magnitude=6)`` ("magnitude six,
  applied twice"), then ``ToTensor`` and the ImageNet mean/std normalisation;
* validation and test: resize to ``image_size / 0.95`` and a centre crop of ``image_size``
  ("evaluation centre crop 95%"), then the same normalisation.

Mixup (alpha 0.1) and CutMix (alpha 1.0) act on batches, in the trainer
(:mod:`aquasurf_core.training.loader_training`). Errors name the problem: a missing folder, a
class without images, ``val/`` classes that differ from ``train/``, a file that is not an image.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from aquasurf_core.paths import data_dir
from aquasurf_core.training.data import balanced_split

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ImageFolderSplits", "load_image_folder"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".webp")


class ImageFiles(Dataset):
    """``(float32 image [3, S, S], int label)`` items read from ``paths`` with ``transform``."""

    def __init__(self, paths: list[Path], labels: np.ndarray, transform):
        self.paths, self.labels, self.transform = list(paths), np.asarray(labels), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image, UnidentifiedImageError

        path = self.paths[index]
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB")
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"{path} is not a readable image ({err})") from err
        return self.transform(rgb), int(self.labels[index])


@dataclass(frozen=True)
class ImageFolderSplits:
    """What :func:`load_image_folder` returns: the ``train`` and ``validation`` splits (both
    from ``train/``), the ``test`` split (``val/``), the sorted ``classes``, their number
    ``num_classes``, the ``image_size`` of the crops and a ``fingerprint`` of the files."""

    train: ImageFiles
    validation: ImageFiles
    test: ImageFiles
    classes: list[str]
    num_classes: int
    image_size: int
    fingerprint: str  # sha256 of the relative paths and sizes of every file, for manifests


def _list(folder: Path, classes: list[str] | None) -> tuple[list[Path], list[int], list[str]]:
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} not found (expected "
                                f"{folder}/<class>/<image files>)")
    found = sorted(d.name for d in folder.iterdir() if d.is_dir())
    if classes is not None and found != classes:
        missing, extra = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
        raise ValueError(f"{folder} has other classes than train/: missing {missing[:5]}, "
                         f"extra {extra[:5]}")
    if not found:
        raise ValueError(f"{folder} has no class folders")
    paths, labels = [], []
    for label, name in enumerate(found):
        files = sorted(p for p in (folder / name).iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"class folder {folder / name} has no images "
                             f"({', '.join(IMAGE_SUFFIXES)})")
        paths += files
        labels += [label] * len(files)
    return paths, labels, found


def transforms_for(image_size: int, train: bool):
    """The training or the evaluation transform (module docstring)."""
    from torchvision import transforms as T

    normalize = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if train:
        return T.Compose([T.RandomResizedCrop(image_size, scale=(0.08, 1.0)),
                          T.RandomHorizontalFlip(), T.RandAugment(num_ops=2, magnitude=6),
                          *normalize])
    return T.Compose([T.Resize(round(image_size / 0.95)), T.CenterCrop(image_size), *normalize])


def load_image_folder(root: str | os.PathLike | None = None, *, image_size: int = 160,
                      validation_per_class: int = 10, split_seed: int = 0,
                      name: str = "imagenet") -> ImageFolderSplits:
    """The splits of the image folder at ``root`` (default ``data_dir(name)``, i.e.
    ``$AQUASURF_DATA/<name>``; module docstring for the layout and transforms).

    Raises ``FileNotFoundError`` for a missing folder and ``ValueError`` for an unusable one
    (no classes, an empty class, different classes in ``val/``, too few images in a class for
    the validation hold-out)."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an integer >= 8, got {image_size!r}")
    root = Path(root) if root is not None else data_dir(name)
    train_paths, train_labels, classes = _list(root / "train", None)
    test_paths, test_labels, _ = _list(root / "val", classes)
    keep, held = balanced_split(np.asarray(train_labels), validation_per_class, split_seed)
    digest = hashlib.sha256()
    for p in train_paths + test_paths:
        digest.update(f"{p.relative_to(root)}:{p.stat().st_size}\n".encode())
    train_paths_a, train_labels_a = np.asarray(train_paths, dtype=object), np.asarray(train_labels)
    train_t, eval_t = transforms_for(image_size, True), transforms_for(image_size, False)
    return ImageFolderSplits(
        train=ImageFiles(list(train_paths_a[keep]), train_labels_a[keep], train_t),
        validation=ImageFiles(list(train_paths_a[held]), train_labels_a[held], eval_t),
        test=ImageFiles(test_paths, np.asarray(test_labels), eval_t),
        classes=classes, num_classes=len(classes), image_size=image_size,
        fingerprint=digest.hexdigest())
