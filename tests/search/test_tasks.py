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
