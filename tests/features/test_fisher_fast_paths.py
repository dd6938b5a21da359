"""The fast paths of the K-FAC factors (aquasurf_core.features.fisher) against slower obvious
computations: the channels-last pass against the pass on the input as given, every conv Gram
path on a channels-last input against the same input contiguous, the low-rank duals of
``Gamma`` against its full eigenproblem, the scratch buffers, the BLAS routing.

The brute-force checks of each Gram path against explicit patches are in test_fisher.py
(``test_conv_factors_match_brute_force``, ``test_shifted_gram_equals_explicit_patch_gram``);
here the same paths are driven through layouts and dtypes those float64 tests do not reach.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aquasurf_core.features import fisher
from aquasurf_core.features.fisher import (
    channels_last_pass,
    factor_eigenvalues,
    kfac_factors,
    layer_eigenvalues,
)

CONVS = [
    ("conv", lambda: nn.Conv2d(3, 4, 3, padding=1)),  # shifted_gram
    ("conv", lambda: nn.Conv2d(3, 4, (3, 2), padding=(2, 1), dilation=(2, 1))),
    ("conv", lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1)),  # expanded_input
    ("conv", lambda: nn.Conv2d(3, 4, 2, stride=2)),  # disjoint patches
    ("conv", lambda: nn.Conv2d(3, 4, 1)),  # pointwise
    ("depthwise", lambda: nn.Conv2d(3, 3, 3, padding=1, groups=3)),  # two-axis shifts
    ("depthwise", lambda: nn.Conv2d(3, 3, 5, padding=2, dilation=1, groups=3)),
    ("depthwise", lambda: nn.Conv2d(3, 3, 3, stride=2, padding=1, groups=3)),  # strided
    ("depthwise", lambda: nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect", groups=3)),
]


@pytest.mark.parametrize("kind,make", CONVS)
def test_every_conv_gram_path_is_layout_independent(kind, make):
    """The same float64 input, contiguous and channels-last: the Gram paths copy it into
    their own buffers in the same order, so the sums are the same to the last bit."""
    torch.manual_seed(0)
    conv = make().double()
    x = torch.randn(5, 3, 7, 6, dtype=torch.float64)
    a = fisher._input_gram(kind, conv, x, torch.float64, torch.float64)
    b = fisher._input_gram(kind, conv, x.contiguous(memory_format=torch.channels_last),
                           torch.float64, torch.float64)
    assert a[2] == b[2]
    torch.testing.assert_close(a[0], b[0], rtol=1e-15, atol=0)
    torch.testing.assert_close(a[1], b[1], rtol=1e-15, atol=0)


def _float32_net():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Tanh(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Tanh(), nn.Dropout(0.5),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8), nn.Tanh(),
        nn.Conv2d(8, 12, 1), nn.Tanh(), nn.Dropout2d(0.3), nn.Dropout(0.2, inplace=True),
        nn.Conv2d(12, 12, 3, stride=2, padding=1), nn.Tanh(),
        nn.Conv2d(12, 16, 2, stride=2), nn.Flatten(), nn.Linear(16, 5)).float()


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_channels_last_pass_gives_the_factors_of_the_pass_as_given(mode):
    """A float32 conv net on the CPU runs channels-last; its factors equal those of the pass
    on the contiguous input to the float32 round-off of the network's own convolutions. In
    train mode that needs the same dropout masks (drawn in memory order: without
    ``_dropout_in_standard_layout`` they differ) and batch statistics."""
    torch.manual_seed(0)
    model = getattr(_float32_net(), mode)()
    x, y = torch.randn(16, 3, 8, 8).float(), torch.randint(0, 5, (16,))
    assert channels_last_pass(model, x)
    fast = kfac_factors(model, x, y)
    plain = kfac_factors(model, x, y, channels_last=False)
    for a, b in zip(fast.layers, plain.layers, strict=True):
        for u, v in ((a.omega, b.omega), (a.gamma, b.gamma)):
            torch.testing.assert_close(u, v, rtol=1e-4, atol=1e-6 * float(v.abs().max()))


def test_channels_last_only_for_cpu_float_convnets():
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match="channels_last"):
        kfac_factors(nn.Conv2d(3, 2, 3), x, torch.zeros(2, 2, 2, 2), channels_last="yes")
    assert channels_last_pass(nn.Conv2d(3, 2, 3).float(), x.float())
    assert not channels_last_pass(nn.Conv2d(3, 2, 3).double(), x.double())  # no oneDNN
    assert not channels_last_pass(nn.Linear(4, 2).float(), x.float())  # no convolution
    assert not channels_last_pass(nn.Conv1d(3, 2, 3).float(), torch.randn(2, 3, 4).float())


class _Viewing(nn.Module):
    """``.view`` of a conv activation: fails on a channels-last tensor."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4 * 5 * 5, 3)

    def forward(self, x):
        h = torch.tanh(self.bn(self.conv(x)))
        return self.head(h.view(h.shape[0], -1))


def test_a_model_that_refuses_channels_last_runs_as_given_with_state_restored():
    torch.manual_seed(0)
    x, y = torch.randn(6, 3, 5, 5).float(), torch.randint(0, 3, (6,))
    model = _Viewing().float().train()
    with pytest.raises(RuntimeError, match="view"):
        model(x.contiguous(memory_format=torch.channels_last))
    model.bn.reset_running_stats()
    reference = _Viewing().float().train()
    reference.load_state_dict(model.state_dict())
    generator = torch.Generator().manual_seed(3)
    got = kfac_factors(model, x, y, fisher="mc", generator=generator)
    other = torch.Generator().manual_seed(3)
    want = kfac_factors(reference, x, y, fisher="mc", generator=other, channels_last=False)
    for a, b in zip(got.layers, want.layers, strict=True):
        assert torch.equal(a.omega, b.omega) and torch.equal(a.gamma, b.gamma)
    # the failed attempt's batch statistics and label draws were undone: one update, not two
    assert torch.equal(model.bn.running_mean, reference.bn.running_mean)
    assert int(model.bn.num_batches_tracked) == 1
    assert torch.equal(generator.get_state(), other.get_state())


# --------------------------------------------------------------------------- Gamma duals


def test_low_rank_gamma_eigenvalues_from_the_dual_match_the_full_matrix():
    """Fewer gradient rows than outputs (3 examples, a 20-wide layer and a 1x1-map conv with
    12 outputs): Gamma keeps its rows, the r x r dual gives the eigenvalues of the full
    eigenproblem (zeros where it has none)."""
    torch.manual_seed(0)
    x = torch.randn(3, 2, 1, 1, dtype=torch.float64)
    y = torch.tensor([0, 2, 1])
    model = nn.Sequential(nn.Conv2d(2, 12, 1), nn.Tanh(), nn.Flatten(), nn.Linear(12, 20),
                          nn.Tanh(), nn.Linear(20, 3)).double()
    layers = kfac_factors(model, x, y).layers
    assert [f.gamma_rows is not None for f in layers] == [True, True, False]  # 3 < 12, 20; 3
    for f in layers[:2]:
        torch.testing.assert_close(f.gamma_rows.T @ f.gamma_rows, f.gamma, rtol=1e-10,
                                   atol=1e-14)
        dual = factor_eigenvalues(f.gamma, f.data_eps, f.gamma_rows)
        full = factor_eigenvalues(f.gamma, f.data_eps)
        assert torch.equal(dual > 0, full > 0) and int((dual > 0).sum()) <= 3
        torch.testing.assert_close(dual, full, rtol=1e-9, atol=1e-12 * float(full.max()))
        assert layer_eigenvalues(f).shape == (f.num_params,)


def test_gamma_rows_are_dropped_once_there_are_as_many_as_outputs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    few = kfac_factors(model, torch.randn(3, 3), torch.tensor([0, 1, 2])).layers
    assert few[0].gamma_rows is not None and few[0].gamma_rows.shape == (3, 4)
    assert few[1].gamma_rows is None  # 3 rows, 3 outputs
    many = kfac_factors(model, torch.randn(4, 3), torch.tensor([0, 1, 2, 0])).layers
    assert many[0].gamma_rows is None


# --------------------------------------------------------------------------- infrastructure


def test_scratch_slots_are_reused_and_independent():
    a = fisher.scratch("test-a", (4, 5), torch.float64, torch.device("cpu"))
    b = fisher.scratch("test-b", (4, 5), torch.float64, torch.device("cpu"))
    assert a.data_ptr() != b.data_ptr()
    again = fisher.scratch("test-a", (2, 3), torch.float32, torch.device("cpu"))
    assert again.data_ptr() == a.data_ptr() and again.shape == (2, 3)
    bigger = fisher.scratch("test-a", (100, 100), torch.float64, torch.device("cpu"))
    assert bigger.shape == (100, 100) and bigger.is_contiguous()


def test_numpy_products_follow_the_measured_routing(monkeypatch):
    big = fisher._NUMPY_MIN_FLOPS
    monkeypatch.setattr(fisher, "mkl_on_intel", lambda: True)
    assert fisher._numpy_product(big // 256 ** 2, 256, None)  # wide syrk: NumPy
    assert not fisher._numpy_product(big // 64 ** 2, 64, None)  # narrow syrk: torch
    assert not fisher._numpy_product(big // 256 ** 2, 256, 256)  # gemm: MKL
    assert not fisher._numpy_product(10, 256, None)  # small: torch
    monkeypatch.setattr(fisher, "mkl_on_intel", lambda: False)
    assert fisher._numpy_product(big // 64 ** 2, 64, None)
    assert fisher._numpy_product(big // 256 ** 2, 256, 256)
