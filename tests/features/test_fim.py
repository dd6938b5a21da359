"""FIM features: histogram CDFs, the Eq. 2 distance against scipy, validity flags, the batch
API and the ``aquasurf fim`` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance
from torch import nn

from aquasurf_core.cli import main as cli_main
from aquasurf_core.features.fim import (
    LOG_RANGE,
    FimLayout,
    bin_count,
    features_from_factors,
    fim_distance,
    fim_features,
    fim_features_batch,
    histogram_cdf,
    l1_weights,
    layer_distances,
    random_batch,
)
from aquasurf_core.features.fisher import kfac_factors
from aquasurf_core.space.activation import ActivationFunction


def _mlp(fn: str, seed: int = 0, widths=(8, 32, 16, 5)) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(ActivationFunction(fn))
    return nn.Sequential(*layers)


def _data(n=64, d=8, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, classes, (n,), generator=g)


def test_bin_count_rule():
    assert bin_count(13_692_00) == 13_692
    assert bin_count(1_099) == 10 and bin_count(1_100) == 11
    assert bin_count(57) == 10 and bin_count(57, min_bins=1) == 1
    layout = FimLayout.for_layers(["a", "b"], [2_500, 40])
    assert layout.bin_counts == (25, 10) and layout.dim == 35
    assert list(layout.offsets) == [0, 25, 35]
    assert FimLayout.from_dict(json.loads(json.dumps(layout.to_dict()))) == layout


def test_histogram_cdf_matches_numpy_and_clamps():
    rng = np.random.default_rng(0)
    v = rng.normal(-20, 30, 5000)
    cdf = histogram_cdf(torch.from_numpy(v), 37).numpy()
    counts, _ = np.histogram(np.clip(v, *LOG_RANGE), bins=37, range=LOG_RANGE)
    np.testing.assert_allclose(cdf, np.cumsum(counts) / v.size, rtol=0, atol=1e-12)
    assert cdf[-1] == 1.0
    # -inf (zero eigenvalues) and values below -100 go to the first bin, above 100 to the last
    cdf = histogram_cdf(torch.tensor([-np.inf, -500.0, -99.0, 0.0, 100.0, 300.0]), 10).numpy()
    np.testing.assert_allclose(cdf, [3 / 6] + [3 / 6] * 4 + [4 / 6] * 4 + [1.0])


def test_fim_distance_is_layer_weighted_wasserstein():
    rng = np.random.default_rng(1)
    layout = FimLayout.for_layers(["l1", "l2"], [3_000, 1_500])
    samples = {k: [rng.normal(m, s, n) for m, s, n in zip(mus, (8, 3), (3_000, 1_500),
                                                           strict=True)]
               for k, mus in (("a", (-30, 5)), ("b", (-22, 12)))}
    vec = {k: np.concatenate([histogram_cdf(torch.from_numpy(x), b).numpy()
                              for x, b in zip(s, layout.bin_counts, strict=True)])
           for k, s in samples.items()}
    expected_binned, expected_raw = 0.0, 0.0
    per_layer = layer_distances(vec["a"], vec["b"], layout)
    for i, (bins, size) in enumerate(zip(layout.bin_counts, layout.layer_sizes, strict=True)):
        edges = np.linspace(*LOG_RANGE, bins + 1)
        centres = (edges[:-1] + edges[1:]) / 2
        ha = np.histogram(samples["a"][i], bins=edges)[0]
        hb = np.histogram(samples["b"][i], bins=edges)[0]
        w_binned = wasserstein_distance(centres, centres, ha, hb)
        w_raw = wasserstein_distance(samples["a"][i], samples["b"][i])
        np.testing.assert_allclose(per_layer[i], w_binned, rtol=1e-10)
        assert abs(per_layer[i] - w_raw) <= edges[1] - edges[0]  # binning moves mass < width
        expected_binned += w_binned / size
        expected_raw += w_raw / size
    d = fim_distance(vec["a"], vec["b"], layout)
    np.testing.assert_allclose(d, expected_binned, rtol=1e-10)
    assert d > 0 and abs(d - expected_raw) <= (layout.bin_widths / layout.layer_sizes).sum()
    assert fim_distance(vec["a"], vec["a"], layout) == 0.0
    w = l1_weights(layout)
    np.testing.assert_allclose(np.abs(vec["a"] * w - vec["b"] * w).sum(), d, rtol=1e-10)
    batch = fim_distance(np.stack([vec["a"], vec["b"]]), vec["b"], layout)
    np.testing.assert_allclose(batch, [d, 0.0], rtol=1e-10, atol=0)
    with pytest.raises(ValueError, match="entries"):
        fim_distance(vec["a"][:-1], vec["b"], layout)


def test_features_of_valid_model():
    x, y = _data()
    model = _mlp("elu(x)")
    feats = fim_features(model, x, y)
    assert feats.valid and feats.reason == "ok"
    assert feats.layer_sizes == (288, 528, 85)
    assert feats.bin_counts == (10, 10, 10)
    assert feats.cdf.dtype == np.float32 and feats.cdf.shape == (30,)
    for lo, hi in zip(feats.layout.offsets[:-1], feats.layout.offsets[1:], strict=True):
        part = feats.cdf[lo:hi]
        assert np.all(np.diff(part) >= 0) and part[-1] == pytest.approx(1.0)
    last = feats.layers[-1]
    # last layer: softmax gradients sum to zero -> Gamma has a zero eigenvalue, clamped to
    # the first bin; Omega is 17 x 17, so at least 17 eigenvalues are zero
    assert last.n_zero >= 17
    assert feats.cdf[feats.layout.offsets[2]] >= last.n_zero / last.num_params - 1e-7
    assert feats.seconds > 0
    # the distance sees a different function, not a different run
    again = fim_features(_mlp("elu(x)"), x, y)
    np.testing.assert_array_equal(feats.cdf, again.cdf)
    other = fim_features(_mlp("sigmoid(x)"), x, y)
    assert fim_distance(feats.cdf, other.cdf, feats.layout) > 0


@pytest.mark.parametrize(
    "fn,needle",
    [
        ("exp(exp(exp(x)))", "non-finite"),
        ("zero(x)", "vanishing"),
        ("reciprocal(zero(x))", "non-finite"),
    ],
)
def test_invalid_spectra_are_flagged_not_raised(fn, needle):
    x, y = _data()
    feats = fim_features(_mlp(fn), 3 * x, y)
    assert not feats.valid and needle in feats.reason
    assert np.isnan(feats.cdf).all() and feats.cdf.shape == (feats.layout.dim,)


def test_exploding_log_eigenvalues_are_flagged():
    x, y = _data()
    model = _mlp("identity(x)")
    with torch.no_grad():
        model[0].weight.mul_(1e30)  # float32 survives, log-eigenvalues of Omega(x)Gamma > 100
    feats = fim_features(model, x, y)
    assert not feats.valid and "exploding" in feats.reason


def test_features_from_factors_reports_skipped_norms():
    x, y = _data()
    model = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Tanh(), nn.Linear(16, 5))
    feats = features_from_factors(kfac_factors(model, x, y))
    assert feats.valid and [s.name for s in feats.skipped] == ["1"]
    assert feats.layout.names == ("0", "3")


def test_random_batch_is_seeded():
    a = random_batch((1, 40), 10, 8, seed=3)
    b = random_batch((1, 40), 10, 8, seed=3)
    c = random_batch((1, 40), 10, 8, seed=4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])
    assert a[0].shape == (8, 1, 40) and a[1].max() < 10


@pytest.mark.parametrize("arch", ["cnn", "resnet", "vit"])
def test_batch_on_small_architectures(arch):
    fns = ["relu(x)", "negative(relu(x))", "exp(exp(exp(x)))"]
    feats = fim_features_batch(arch, fns, seed=0, batch_size=32, progress=False)
    assert [f.valid for f in feats] == [True, True, False]
    assert feats[0].layout == feats[1].layout
    assert fim_distance(feats[0].cdf, feats[1].cdf, feats[0].layout) > 0
    again = fim_features_batch(arch, fns[:1], seed=0, batch_size=32, progress=False)
    np.testing.assert_array_equal(again[0].cdf, feats[0].cdf)


def test_batch_rejects_unknown_arch():
    with pytest.raises(ValueError, match="unknown architecture 'nope'"):
        fim_features_batch("nope", ["relu(x)"], progress=False)


def test_cli_fim_json(capsys):
    assert cli_main(["fim", "--arch", "cnn", "--fn", "relu(x)", "--batch-size", "16",
                     "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["valid"] is True and out["batch_size"] == 16
    assert [s["name"] for s in out["layers"]][0] == "features.0"
    assert sum(s["bins"] for s in out["layers"]) == out["dim"]


def test_cli_fim_table(capsys):
    assert cli_main(["fim", "--arch", "vit", "--fn", "tanh(x)", "--batch-size", "8"]) == 0
    text = capsys.readouterr().out
    assert "transformer.attn.query" in text and "valid=True" in text


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--arch", "nope", "--fn", "relu(x)"], "unknown architecture"),
        (["--arch", "cnn", "--fn", "relu(y)"], "relu(y)"),
        (["--arch", "cnn", "--fn", "relu(x)", "--batch-size", "0"], "--batch-size"),
    ],
)
def test_cli_fim_errors(argv, needle, capsys):
    assert cli_main(["fim", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aquasurf fim: error:") and needle in err
    assert "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cli_fim_cuda_unavailable(capsys):
    assert cli_main(["fim", "--arch", "cnn", "--fn", "relu(x)", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_official_convention_shifts_log_eigenvalues_by_two_log_batch():
    """Gamma_official = Gamma_per_example / M^2, Omega unchanged: every log-eigenvalue moves
    by exactly -2 log M (dense layers)."""
    x, y = _data(n=32)
    pe = fim_features(_mlp("tanh(x)"), x, y, keep_eigenvalues=True)
    off = fim_features(_mlp("tanh(x)"), x, y, convention="official", keep_eigenvalues=True)
    for a, b in zip(pe.layers, off.layers, strict=True):
        assert b.max_log - a.max_log == pytest.approx(-2 * np.log(32), abs=1e-9)
        assert b.mean_log - a.mean_log == pytest.approx(-2 * np.log(32), abs=1e-9)
    assert len(pe.factor_eigenvalues) == 3
    (eo, eg), layer = pe.factor_eigenvalues[0], pe.layers[0]
    assert (eo.numel(), eg.numel()) == (layer.omega_dim, layer.gamma_dim)
    assert fim_features(_mlp("tanh(x)"), x, y).factor_eigenvalues is None


def test_non_finite_loss_skips_backward_and_marks_gamma_undefined():
    from aquasurf_core.features.fisher import kfac_factors
    from aquasurf_core.space.activation import ActivationFunction

    torch.manual_seed(0)
    act = ActivationFunction("exp(exp(exp(exp(x))))")
    model = nn.Sequential(nn.Linear(4, 8), act, nn.Linear(8, 3))
    x, y = torch.randn(16, 4) * 3, torch.randint(0, 3, (16,))
    factors = kfac_factors(model, x, y)
    assert not math.isfinite(factors.loss)
    assert all(torch.isnan(layer.gamma).all() for layer in factors.layers)
    feats = fim_features(model, x, y)
    assert not feats.valid and "non-finite loss" in feats.reason


def test_invalidity_is_a_structured_value():
    from aquasurf_core.features.fim import Invalidity, InvalidKind, invalidity_counts

    exploding = Invalidity(InvalidKind.EXPLODING, "features.2", 131.5)
    assert str(exploding) == "layer 'features.2': log-eigenvalue 131.5 > 100 (exploding)"
    assert Invalidity.from_dict(exploding.to_dict()) == exploding
    assert Invalidity("non-finite loss", value=float("inf")).kind is InvalidKind.NONFINITE_LOSS
    assert str(Invalidity(InvalidKind.NONFINITE_LOSS)) == "non-finite loss (nan)"
    assert str(Invalidity(InvalidKind.ZERO_GAMMA, "fc")) == \
        "layer 'fc': Gamma is zero (vanishing signal)"
    with pytest.raises(ValueError):
        Invalidity("no such kind")
    counts = invalidity_counts([None, exploding, None, Invalidity(InvalidKind.EXPLODING, "a", 200),
                                Invalidity(InvalidKind.NONFINITE_LOSS)])
    assert counts == {"ok": 2, "log-eigenvalue > 100 (exploding)": 2, "non-finite loss": 1}


@pytest.mark.parametrize(("fn", "kind"), [
    ("exp(exp(exp(x)))", "non-finite loss"),
    ("zero(x)", "Gamma is zero (vanishing signal)"),
])
def test_features_report_the_kind_and_layer(fn, kind):
    from aquasurf_core.features.fim import fim_features_batch

    (feats,) = fim_features_batch("cnn", [fn], batch_size=16, progress=False)
    assert feats.invalid is not None and feats.invalid.kind.value == kind
    assert (feats.invalid.layer is None) == (kind == "non-finite loss")
    assert feats.summary_dict()["invalid"]["kind"] == kind
