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


# ----------------------------------------------------------------------------- the spectra check
def _toy_task(build, *, batch=None, name="toy"):
    """A task on a tiny model: 32 fixed N(0, 1) examples of 1 x 40 (or ``batch``), 10 classes;
    its ``train`` is not a capability under test (it reports a fixed accuracy)."""
    from aquasurf_core.search.tasks import Task

    def fisher_batch(seed):
        if batch is not None:
            return batch
        g = torch.Generator().manual_seed(seed)
        return torch.randn(32, 1, 40, generator=g), torch.arange(32) % 10

    return Task(name, build, lambda fn_name, seed: {"val_acc": 0.5}, fisher_batch)


def _mlp(fn_name, seed, *, zero_head=False):
    from torch import nn

    from aquasurf_core.space.activation import ActivationFunction

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(40, 16), ActivationFunction(fn_name),
                          nn.Linear(16, 10))
    if zero_head:  # as torchvision's ViT initialises heads.head
        nn.init.zeros_(model[3].weight)
        nn.init.zeros_(model[3].bias)
    return model


class _Residual(torch.nn.Module):
    """x -> stem -> x + norm(lin2(act(lin1(x)))) -> head, the norm's weight zeroed (as
    torchvision's ``resnet18(zero_init_residual=True)`` zeroes every block's ``bn2.weight``)."""

    def __init__(self, fn_name):
        from torch import nn

        from aquasurf_core.space.activation import ActivationFunction

        super().__init__()
        self.stem = nn.Linear(40, 16)
        self.lin1, self.act, self.lin2 = nn.Linear(16, 16), ActivationFunction(fn_name), \
            nn.Linear(16, 16)
        self.norm = nn.LayerNorm(16)
        nn.init.zeros_(self.norm.weight)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        h = self.stem(x.flatten(1))
        return self.head(h + self.norm(self.lin2(self.act(self.lin1(h)))))


def test_a_zero_initialised_head_is_refused_naming_layer_kind_and_parameters():
    from aquasurf_core.features.fim import InvalidKind
    from aquasurf_core.search.tasks import TaskError, task_features

    task = _toy_task(lambda fn, seed: _mlp(fn, seed, zero_head=True))
    # the ground truth the slow obvious way: the gradient reaching layer 1 is W_head^T g = 0
    feats = task_features(task, "relu(x)", 0)
    assert feats.invalid.kind is InvalidKind.ZERO_GAMMA and feats.invalid.layer == "1"
    with pytest.raises(TaskError) as refused:
        check_task(task)  # refused before training (train() would have passed)
    message = str(refused.value)
    assert "the gradient reaching layer '1' is zero at initialisation" in message
    assert "parameters 3.weight, 3.bias are all zeros" in message
    assert "nn.init.normal_(..., std=0.02)" in message
    assert InvalidKind.ZERO_GAMMA.value in message
    assert "tanh(x)" in message or "2 more" in message  # every baseline was tried


def test_a_zero_initialised_residual_norm_is_refused_naming_it():
    from aquasurf_core.search.tasks import TaskError, zero_parameters

    task = _toy_task(lambda fn, seed: _Residual(fn))
    assert zero_parameters(_Residual("relu(x)")) == ["norm.weight", "norm.bias"]
    with pytest.raises(TaskError, match=r"gradient reaching layer 'lin1' is zero at "
                                        r"initialisation .*parameters norm\.weight, norm\.bias "
                                        r"are all zeros"):
        check_task(task, train=False)


def test_a_healthy_model_passes_and_one_invalid_baseline_is_not_a_refusal():
    from torch import nn

    from aquasurf_core.search.tasks import check_spectra
    from aquasurf_core.space.activation import ActivationFunction

    healthy = _toy_task(_mlp)
    assert check_task(healthy) == {"val_acc": 0.5}
    assert list(check_spectra(healthy)) == ["relu(x)"]  # valid at once: one computation
    # all-negative inputs, no bias: relu(x) = 0 leaves the next layer's Omega zero, while
    # tanh's is not -- an odd function, not a broken model: a warning, not a refusal

    def build(fn_name, seed):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), ActivationFunction(fn_name),
                             nn.Linear(40, 10, bias=False))

    negative = _toy_task(build, batch=(-torch.rand(32, 1, 40) - 0.1, torch.arange(32) % 10))
    with pytest.warns(UserWarning, match="ReLU's Fisher spectrum is invalid .*Omega is zero.* "
                                         "but elu\\(x\\)'s is valid"):
        computed = check_spectra(negative, ("relu(x)", "elu(x)", "tanh(x)"))
    assert [f.valid for f in computed.values()] == [False, True]


def test_stage_options_are_checked_and_reach_the_features():
    from torch import nn

    from aquasurf_core.search.tasks import StageOptions, TaskError, resolve_device, task_features
    from aquasurf_core.space.activation import ActivationFunction

    for bad, says in [({"factor_dtype": "float16"}, "factor_dtype must be one of auto"),
                      ({"on_unsupported": "ignore"}, "on_unsupported must be one of error"),
                      ({"min_coverage": 1.5}, "min_coverage must be a number in \\[0, 1\\]"),
                      ({"min_coverage": True}, "min_coverage"),
                      ({"device": "gpu"}, "device 'gpu' is not a device name")]:
        with pytest.raises(ValueError, match=says):
            StageOptions(**bad)
    if not torch.cuda.is_available():
        with pytest.raises(TaskError, match="device 'cuda' requested but CUDA is not "
                                            "available"):
            resolve_device("cuda")
        with pytest.raises(TaskError, match="CUDA is not available"):
            check_task(_toy_task(_mlp), options=StageOptions(device="cuda"))
    # the one place where names become dtypes; a default is not passed (the features' own)
    assert StageOptions(factor_dtype="float32").fim_kwargs() == {
        "on_unsupported": "skip", "factor_dtype": torch.float32, "min_coverage": 0.5}
    assert StageOptions().fim_kwargs() == {"on_unsupported": "skip", "min_coverage": 0.5}
    assert "min_coverage" not in StageOptions(min_coverage=None).fim_kwargs()
    assert StageOptions(min_coverage=0.9).fim_kwargs()["min_coverage"] == 0.9
    task = _toy_task(_mlp)
    f64 = task_features(task, "tanh(x)", 0, StageOptions(factor_dtype="float64"))
    f32 = task_features(task, "tanh(x)", 0, StageOptions(factor_dtype="float32"))
    assert f64.valid and f32.valid
    # the same spectrum in two precisions: CDFs agree up to eigenvalues moved across a bin
    # edge by float32 round-off (each such move shifts one CDF entry by 1/|theta_l|)
    assert float(abs(f64.cdf - f32.cdf).max()) <= 0.02
    # an unsupported layer: refused with "error", left out of the spectrum with "skip" (the
    # default)

    class Gru(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(16, 16, batch_first=True)

        def forward(self, x):
            return self.gru(x.unsqueeze(1))[0].squeeze(1)

    def build(fn_name, seed):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(40, 16), ActivationFunction(fn_name),
                             Gru(), nn.Linear(16, 10))

    with pytest.raises(TaskError, match="K-FAC cannot compute .*GRU.*in a search: "
                                        "SearchConfig\\(on_unsupported='skip'\\)"):
        check_task(_toy_task(build), train=False,
                   options=StageOptions(on_unsupported="error"))
    skip = StageOptions(on_unsupported="skip", min_coverage=None)
    check_task(_toy_task(build), train=False, options=skip)
    feats = task_features(_toy_task(build), "relu(x)", 0, skip)
    assert [s.name for s in feats.skipped] == ["3.gru"]
    # the coverage, the slow obvious way: the two Linear layers' parameters of all of them
    linear = 40 * 16 + 16 + 16 * 10 + 10
    gru = sum(p.numel() for p in nn.GRU(16, 16).parameters())
    assert feats.coverage.fraction == pytest.approx(linear / (linear + gru), abs=1e-12)
    # below min_coverage: refused by the check, with K-FAC's coverage report
    with pytest.raises(TaskError, match=f"K-FAC covers {linear / (linear + gru):.1%} of "
                                        f"{linear + gru:,} parameters.*below min_coverage=0.5"):
        check_task(_toy_task(build), options=StageOptions(on_unsupported="skip",
                                                          min_coverage=0.5))
    check_task(_toy_task(build), train=False,
               options=StageOptions(on_unsupported="skip", min_coverage=0.3))


def test_training_gets_the_device_where_train_takes_one():
    from dataclasses import replace

    from aquasurf_core.search.tasks import train_task

    seen = []
    task = _toy_task(_mlp)
    plain = replace(task, train=lambda fn_name, seed: {"val_acc": 0.5})
    assert train_task(plain, "relu(x)", 0, "cpu") == {"val_acc": 0.5}  # no device keyword

    def with_device(fn_name, seed, device=None):
        seen.append(device)
        return {"val_acc": 0.5}

    assert train_task(replace(task, train=with_device), "relu(x)", 0, "cpu")["val_acc"] == 0.5
    assert train_task(replace(task, train=with_device), "relu(x)", 0, None)["val_acc"] == 0.5
    assert seen == ["cpu", None]


def test_arch_task_trains_on_the_device_it_is_given():
    import inspect

    from aquasurf_core.search.tasks import TaskError, arch_task, train_task
    from aquasurf_core.training.data import load_mnist1d
    from aquasurf_core.training.recipes import get_recipe

    task = arch_task("tiny-device", "cnn", load_mnist1d,
                     recipe=get_recipe("cnn", epochs=1, train_subset=64))
    assert "device" in inspect.signature(task.train).parameters
    if not torch.cuda.is_available():
        with pytest.raises(TaskError, match="CUDA is not available"):
            train_task(task, "relu(x)", 0, "cuda")
    assert 0 <= train_task(task, "relu(x)", 0, "cpu")["val_acc"] <= 1


def test_an_inplace_operation_after_a_site_is_refused_with_its_remedy():
    """An in-place tensor op on an activation site's output (which make_searchable leaves in
    the user's forward) breaks the backward pass; the check says so and how to fix it."""
    from torch import nn

    from aquasurf_core.search.tasks import Task, TaskError
    from aquasurf_core.space.activation import ActivationFunction

    class InPlace(nn.Module):
        def __init__(self, fn_name):
            super().__init__()
            self.l1, self.act, self.l2 = nn.Linear(6, 8), ActivationFunction(fn_name), \
                nn.Linear(8, 3)

        def forward(self, x):
            h = self.act(self.l1(x))
            h.mul_(2.0)  # overwrites the activation's output
            return self.l2(h)

    task = Task("in-place", lambda fn_name, seed: InPlace(fn_name),
                lambda fn_name, seed: {"val_acc": 0.5},
                lambda seed: (torch.randn(8, 6), torch.arange(8) % 3))
    with pytest.raises(TaskError, match="modified by an inplace operation.*write it out of "
                                        "place"):
        check_task(task, train=False, baselines=["tanh(x)"])


def test_full_size_tasks_compute_features_where_they_train(monkeypatch):
    """A loader task's device is "auto": its Fisher features go to the first CUDA device of the
    process that computes them, as its training does, not to the CPU."""
    from aquasurf_core.search import tasks as t

    task = t.loader_task("lazy", "all-cnn-c", lambda: None, num_classes=10)
    assert task.device == "auto"
    assert t.resolve_device(task.device) == torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert t.resolve_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert t.resolve_device("auto") == torch.device("cpu")
    assert t.StageOptions(device="auto").device == "auto"
