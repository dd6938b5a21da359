"""The built-in tasks: registered by name, checked before any work, the right data."""

import pytest
import torch

from aquasurf_core import paths
from aquasurf_core.search.tasks import check_task, get_task, registered_tasks


@pytest.fixture
def cache(tmp_path):
    paths.set_cache_dir(tmp_path)
    yield tmp_path
    paths.set_cache_dir(None)


def test_every_builtin_task_is_registered():
    assert {"digits-cnn", "mnist1d-cnn", "mnist1d-resnet", "mnist1d-vit",
            "mnist1d-hard-resnet", "mnist1d-hard-vit"} <= set(registered_tasks())


@pytest.mark.parametrize("name, arch", [("mnist1d-hard-resnet", "resnet"),
                                        ("mnist1d-hard-vit", "vit")])
def test_harder_mnist1d_tasks_use_the_harder_data(cache, name, arch):
    task = get_task(name)
    assert task.info["arch"] == arch
    check_task(task, train=False)  # sites found, every layer K-FAC can handle
    x, y = task.fisher_batch(0)
    assert x.shape == (128, 1, 40) and y.dtype == torch.int64
    assert len(list(cache.glob("mnist1d_seed42_*.npz"))) == 1  # the harder data, cached
    easy_x, _ = get_task(f"mnist1d-{arch}").fisher_batch(0)
    assert not torch.equal(x, easy_x)


FULL_SIZE = ["cifar100-all-cnn-c", "cifar100-resnet-56", "imagenet-mobilevitv2-0.5",
             "imagenet-resnet-50"]


@pytest.mark.parametrize("name", FULL_SIZE)
def test_full_size_tasks_register_without_data_and_name_what_is_missing(tmp_path, monkeypatch,
                                                                        name):
    monkeypatch.setenv("AQUASURF_DATA", str(tmp_path / "no-data"))
    task = get_task(name)  # registering and building a task reads no data
    assert task.info["num_classes"] in (100, 1000)
    missing = "cifar-100-python" if name.startswith("cifar") else "imagenet/train not found"
    with pytest.raises(FileNotFoundError, match=missing):
        task.train("relu(x)", 0)


def test_cifar100_task_trains_end_to_end_on_small_files(tmp_path, cifar100_writer):
    from aquasurf_core.search.tasks import loader_task
    from aquasurf_core.training.cifar import load_cifar
    from aquasurf_core.training.recipes import get_recipe

    cifar100_writer(tmp_path, train_per_class=2)
    task = loader_task("tiny-cifar100", "all-cnn-c",
                       lambda: load_cifar("cifar100", "all-cnn-c", root=tmp_path,
                                          validation_size=100, verify=False),
                       num_classes=100, fisher_examples=16,
                       recipe=get_recipe("all-cnn-c", epochs=1, batch_size=50,
                                         warmup_epochs=0.5))
    metrics = check_task(task)  # sites, K-FAC layers, and one training run of ReLU
    assert metrics["status"] in ("ok", "diverged") and 0 <= metrics["val_acc"] <= 1
    assert metrics["epochs"] == 1 and metrics["device"] in ("cpu", "cuda")
    x, y = task.fisher_batch(0)
    assert x.shape == (16, 3, 32, 32) and y.shape == (16,)


def test_image_folder_task_with_mixing_trains_end_to_end(tmp_path, image_folder_writer):
    from aquasurf_core.search.tasks import IMAGENET_MIXING, loader_task
    from aquasurf_core.training.image_folder import load_image_folder
    from aquasurf_core.training.loader_training import Mixing
    from aquasurf_core.training.recipes import get_recipe

    root = image_folder_writer(tmp_path)
    # the ImageNet recipe (AdamW, Mixup/CutMix, RandAugment) on a small net and image size;
    # MobileViTv2 itself is checked against K-FAC in tests/features and tests/models
    task = loader_task("tiny-folder", "all-cnn-c",
                       lambda: load_image_folder(root, image_size=32, validation_per_class=1),
                       num_classes=3, mixing=Mixing(**IMAGENET_MIXING),
                       recipe=get_recipe("mobilevitv2-0.5", epochs=1, batch_size=4,
                                         warmup_epochs=0.5))
    metrics = check_task(task)
    assert 0 <= metrics["val_acc"] <= 1 and metrics["epochs"] == 1
    assert task.fisher_batch(0)[0].shape == (3, 3, 32, 32)
