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
    marked = [t for t in fig.data if str(t.marker.symbol).startswith("triangle")]
    assert len(fig.data) == 3 + len(marked)
    # ELU is named in the benchmark, -ELU is found by outputs; the others are absent
    assert sorted({t.name for t in marked}) == ["ELU", "−ELU"]
    assert sum(t.showlegend for t in marked) == 2
    assert len(fig.data[0].x) == len(embedding_rows(benchmarks["syn"]))
    # every marked function is named in its panel by an arrow label in its own colour
    labels = [a for a in fig.layout.annotations if a.showarrow]
    assert sorted((a.text, a.x, a.y, a.font.color) for a in labels) == sorted(
        (t.name, t.x[0], t.y[0], t.marker.color) for t in marked)
    # f and -f: one hue, told apart by the symbol
    (elu,), (neg,) = ([t for t in marked if t.name == n][:1] for n in ("ELU", "−ELU"))
    assert elu.marker.color == neg.marker.color
    assert (elu.marker.symbol, neg.marker.symbol) == ("triangle-up", "triangle-down")
    # each panel's ranges are set and hold every point (so label pixels are known)
    for t in fig.data[:3]:
        axis = fig.layout[t.xaxis.replace("x", "xaxis")]
        assert axis.range[0] < min(t.x) and max(t.x) < axis.range[1]


def _contrast(colour: str, background: str = "#ffffff") -> float:
    """WCAG 2 contrast ratio of two sRGB colours, written out."""
    def luminance(hex_colour):
        channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    hi, lo = sorted([luminance(colour), luminance(background)], reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_mark_colours_are_readable_on_white():
    for label in [*fe.MARKED, "other", "−other"]:
        colour, _ = fe.mark_style(label, 5)
        assert _contrast(colour) >= 4.5, (label, colour)
    # the two colours the review found unreadable
    assert _contrast("#98df8a") < 2 and _contrast("#c5b0d5") < 2


def _boxes_apart(a, b):
    return a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


@pytest.mark.parametrize("points", [
    [[100, 100], [100, 100]],  # f and -f on the same spot
    [[100, 100], [104, 98], [97, 103], [102, 106], [150, 40], [10, 190]],  # a cluster
])
def test_place_labels_keeps_labels_apart_and_inside(points):
    labels = ["ELU", "−ELU", "Swish", "−Swish", "ReLU", "tanh"][:len(points)]
    size = (200.0, 200.0)
    offsets = fe.place_labels(np.array(points, float), labels, size)
    boxes = [fe.label_box(np.add(p, o), lab) for p, o, lab in zip(points, offsets, labels,
                                                                    strict=True)]
    for i, box in enumerate(boxes):
        assert 0 <= box[0] and box[2] <= size[0] and 0 <= box[1] and box[3] <= size[1]
        for j in range(i + 1, len(boxes)):
            assert _boxes_apart(box, boxes[j]), (labels[i], labels[j])
        for p in points:  # no label hides a marker (markers are 2 x 8 px wide)
            assert _boxes_apart(box, [p[0] - 8, p[1] - 8, p[0] + 8, p[1] + 8])
    with pytest.raises(ValueError, match="2 points but 1 labels"):
        fe.place_labels(np.zeros((2, 2)), ["a"], size)


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
