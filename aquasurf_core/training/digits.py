"""scikit-learn's handwritten digits: 1,797 grey 8x8 images of the digits 0-9, shipped with
scikit-learn (``sklearn.datasets.load_digits``; UCI "Optical Recognition of Handwritten Digits"),
so nothing is downloaded.

Splits, all class-balanced and drawn with a seed (:func:`aquasurf_core.training.data.
balanced_split`): ``test_per_class`` images of each class are held out for testing, then
``validation_per_class`` of the rest for validation (the search's objective), and the rest
trains. The defaults, 30 and 30, give 300 test / 300 validation / 1,197 training images.
Pixels (0-16) are scaled to [0, 1]; inputs are float32 ``(N, 1, 8, 8)``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from aquasurf_core.training.data import Split, Splits, balanced_split

__all__ = ["IMAGE_SHAPE", "load_digits"]

IMAGE_SHAPE = (1, 8, 8)


def load_digits(*, test_per_class: int = 30, validation_per_class: int = 30,
                seed: int = 0) -> Splits:
    """The digits as :class:`~aquasurf_core.training.data.Splits` (module docstring). Raises
    ``ValueError`` when the splits ask for more images of a class than there are."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = (bunch.data.reshape(-1, *IMAGE_SHAPE) / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    rest, test = balanced_split(y, test_per_class, seed)
    train, validation = balanced_split(y[rest], validation_per_class, seed + 1)
    train, validation = rest[train], rest[validation]
    digest = hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()

    def split(index: np.ndarray) -> Split:
        return Split(torch.from_numpy(x[index]), torch.from_numpy(y[index]))

    return Splits(split(train), split(validation), split(test), digest)
