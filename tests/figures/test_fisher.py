"""Notebook 02's Figure 5 study, invalid shares and timings, checked the slow way on the small
MNIST-1D networks."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
import torch

from aquasurf_core.features.fim import fim_distance, fim_features_batch, random_batch
from aquasurf_core.figures import fisher as ff


def batch_for(arch):
    return ff.architecture_batch(arch, *random_batch((1, 40), 10, 32, seed=1), seed=0)


def test_architecture_batch():
    x, y = random_batch((1, 40), 10, 64, seed=1)
    assert ff.architecture_batch("cnn", x, y, 0)[0] is x
    xr, yr = ff.architecture_batch("all-cnn-c", x, y, 0)
    assert tuple(xr.shape) == (32, 3, 32, 32) and int(yr.max()) < 10


def test_negation_study_against_direct_distances():
    pairs, others, seeds = [("elu(x)", "negative(elu(x))")], ["relu(x)", "tanh(x)"], [0, 1, 2]
    spectra, table = ff.negation_study(["cnn"], batch_for, seeds=seeds, pairs=pairs,
                                       others=others)
    x, y = batch_for("cnn")
    names = ["elu(x)", "negative(elu(x))", *others]
    runs = {s: dict(zip(names, fim_features_batch("cnn", names, x, y, seed=s, progress=False),
                        strict=True)) for s in seeds}
    layout = runs[0]["relu(x)"].layout

    def d(a, b):
        return fim_distance(a.cdf, b.cdf, layout)

    row = table.iloc[0]
    assert row["d(f, −f)"] == pytest.approx(np.median(
        [d(runs[s]["elu(x)"], runs[s]["negative(elu(x))"]) for s in seeds]))
    noise = [d(runs[s]["elu(x)"], runs[t]["elu(x)"]) for s, t in combinations(seeds, 2)]
    assert row["noise d(f_s, f_s′)"] == pytest.approx(np.median(noise))
    assert row["d(f, −f) / noise"] == pytest.approx(row["d(f, −f)"] / np.median(noise))
    assert sorted(spectra) == [("cnn", "elu(x)"), ("cnn", "negative(elu(x))")]
    assert np.isfinite(spectra["cnn", "elu(x)"]).any()
    fig = ff.fig5_negation(spectra, ["cnn"], pairs)
    assert len(fig.data) == 2
    with pytest.raises(ValueError, match="two seeds"):
        ff.negation_study(["cnn"], batch_for, seeds=[0], pairs=pairs, others=others)


def test_invalid_share_counts_kinds_not_layers():
    names = ["relu(x)", "exp(exp(exp(x)))", "zero(x)", "tanh(x)"]
    share, kinds = ff.invalid_share(["cnn"], names, batch_for)
    x, y = batch_for("cnn")
    direct = fim_features_batch("cnn", names, x, y, progress=False)
    invalid = [f for f in direct if not f.valid]
    assert share["invalid"].tolist() == [len(invalid)]
    assert share["share invalid"].tolist() == [round(len(invalid) / len(names), 3)]
    assert sorted(kinds["reason"]) == sorted({f.invalid.kind.value for f in invalid})
    assert kinds["functions"].sum() == len(invalid)


def test_timing_table_has_the_paper_column():
    table = ff.timing_table(["cnn"], batch_for, functions=1)
    assert table.columns.tolist() == ["architecture", "batch", "parameters", "cpu s/function",
                                      "paper A10G s/function"]
    assert table["cpu s/function"].iloc[0] > 0 and table["batch"].iloc[0] == 32
    assert table["paper A10G s/function"].isna().all()  # the paper times full-size networks
    assert torch.get_num_threads() >= 1
