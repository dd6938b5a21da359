"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

PARAMETERS_CELL = """\
profile = "smoke"
figures_dir = "figures"
cache_dir = ".aquasurf_cache"
seed = 0
"""


def write_notebook(path: Path, cells: list[str], *, parameters: str = PARAMETERS_CELL) -> Path:
    """Write a Python notebook whose first code cell is ``parameters`` (tagged 'parameters')
    followed by ``cells``; a cell starting with ``# md`` becomes a Markdown cell."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    for source in cells:
        if source.startswith("# md"):
            nb.cells.append(nbformat.v4.new_markdown_cell(source.removeprefix("# md").strip()))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(source))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def notebook_writer():
    return write_notebook


def write_image_folder(root: Path, classes=("cat", "dog", "eel"), train_per_class: int = 4,
                       val_per_class: int = 2, seed: int = 0) -> Path:
    """A tiny ImageNet-style folder (``root/{train,val}/<class>/``) of random RGB images of
    assorted sizes, JPEG and PNG."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in (("train", train_per_class), ("val", val_per_class)):
        for c in classes:
            folder = root / split / c
            folder.mkdir(parents=True)
            for i in range(n):
                h, w = rng.integers(24, 60, size=2)
                pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{c}_{i}.{'png' if i % 2 else 'jpg'}")
    return root


def write_cifar100(root: Path, train_per_class: int = 3, seed: int = 1) -> Path:
    """CIFAR-100 in its on-disk format (``root/cifar-100-python/{train,test,meta}``) with
    ``train_per_class`` random training images per class and one test image per class."""
    import pickle

    import numpy as np

    def dump(path, obj):
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=2)

    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    n = 100 * train_per_class
    labels = [int(c) for c in rng.permutation(np.repeat(np.arange(100), train_per_class))]
    dump(folder / "train", {"fine_labels": labels, "coarse_labels": [0] * n,
                            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)})
    dump(folder / "test", {"fine_labels": list(range(100)), "coarse_labels": [0] * 100,
                           "data": rng.integers(0, 256, (100, 3072), dtype=np.uint8)})
    dump(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)],
                           "coarse_label_names": [f"s{i}" for i in range(20)]})
    return root


@pytest.fixture
def image_folder_writer():
    return write_image_folder


@pytest.fixture
def cifar100_writer():
    return write_cifar100
