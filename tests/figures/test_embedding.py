"""Notebook 03's Figure 4, predictiveness table and comparisons, on a small synthetic
benchmark whose accuracy follows the outputs."""

from __future__ import annotations

import numpy as np
import pytest

from aquasurf_core import paths
from aquasurf_core.bench.table import Benchmark, make_table
from aquasurf_core.embedding.embeddings import embed_all, embedding_rows
from aquasurf_core.features.fim import FimLayout
from aquasurf_core.features.outputs import output_features
from aquasurf_core.figures import embedding as fe

UNARY = ["tanh", "sigmoid", "erf", "arctan", "softsign", "elu", "abs", "negative", "sinh",
         "arcsinh", "erfc", "relu", "swish", "square"]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    paths.set_cache_dir(tmp_path_factory.mktemp("cache"))
    names = [f"add({UNARY[i % 14]}(x),{UNARY[(i // 14) % 14]}(x))" for i in range(98)]
    names += ["elu(x)", "negative(elu(x))"]
    outputs = output_features(names)
    val = 0.5 + 0.4 * np.tanh(np.nan_to_num(outputs[:, :50], nan=0, posinf=5, neginf=-5)
                              .clip(-5, 5).mean(axis=1))
    rows = [{"fn_name": n, "equivalent_names": [n], "train_acc": v, "val_acc": v,
             "test_acc": v, "train_loss": 1.0, "val_loss": 1.0, "test_loss": 1.0,
             "runtime_s": 1.0, "seeds": [0]} for n, v in zip(names, val, strict=True)]
    layout = FimLayout.for_layers(["a"], [1500])
    rng = np.random.default_rng(0)
    cdf = np.sort(rng.random((100, layout.dim)), axis=1).astype(np.float32)
    bench = Benchmark("syn", make_table(rows), outputs, cdf, np.ones(100, bool), layout)
    embeddings = {"syn": embed_all(bench, log=lambda *_: None)}
    yield {"syn": bench}, embeddings
    paths.set_cache_dir(None)


def test_fig4_grid_and_marked_functions(case):
    benchmarks, embeddings = case
    fig = fe.fig4_embeddings(benchmarks, embeddings)
    marked = [t for t in fig.data if t.marker.symbol == "triangle-up"]
    assert len(fig.data) == 3 + len(marked)
    # ELU is named in the benchmark, -ELU is found by outputs; the others are absent
    assert sorted({t.name for t in marked}) == ["ELU", "−ELU"]
    assert sum(t.showlegend for t in marked) == 2
    assert len(fig.data[0].x) == len(embedding_rows(benchmarks["syn"]))


def test_predictiveness_table_and_verdicts(case):
    benchmarks, embeddings = case
    table, predictions = fe.predictiveness_table(benchmarks, embeddings, resamples=100)
    assert len(table) == 6 and set(table["feature"]) == {"FIM eigenvalues", "outputs", "both"}
    outputs_raw = table[(table["representation"] == "raw (Eq. 2/3)")
                        & (table["feature"] == "outputs")].iloc[0]
    fim_raw = table[(table["representation"] == "raw (Eq. 2/3)")
                    & (table["feature"] == "FIM eigenvalues")].iloc[0]
    assert outputs_raw["spearman"] > 0.5 > fim_raw["spearman"]  # accuracy follows the outputs
    comparisons = fe.feature_comparisons(predictions, resamples=100,
                                         representation="raw (Eq. 2/3)")
    verdict = dict(zip(comparisons["comparison"], comparisons["paper's claim (a > b)"],
                       strict=True))
    assert verdict["outputs − FIM eigenvalues"] == "holds"


def test_distance_examples_put_negation_near_by_fim_far_by_outputs(case):
    benchmarks, _ = case
    table = fe.distance_examples(benchmarks["syn"], [("elu(x)", "negative(elu(x))"),
                                                     ("elu(x)", "tanh(x)")])
    assert table["f"].tolist() == ["elu(x)"]  # tanh(x) alone is not in the benchmark
    assert table["Eq. 3 (outputs)"].iloc[0] > 0.5
