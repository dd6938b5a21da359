"""Notebook 01's tables and Figure 3 pieces, against the obvious computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aquasurf_core.figures import space as fs
from aquasurf_core.paper import SPACE_COUNTS
from aquasurf_core.space import THREE_NODE_SCHEMA, build_space


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    return build_space(THREE_NODE_SCHEMA, out_dir=tmp_path_factory.mktemp("s") / "three",
                       progress=False)


def test_operator_table_counts():
    table = fs.operator_table()
    assert table.groupby("kind", sort=False).size().to_dict() == {
        "unary": 27, "unary (CoAtNet extension)": 4, "binary": 7, "n-ary": 4}


def test_count_tables_compare_with_the_paper(three):
    schemas, summary = fs.count_tables({"3-node": three})
    assert schemas["functions"].iloc[0] == 27 * 27 * 7 == SPACE_COUNTS["3-node"][0]
    assert schemas.loc[schemas["space"] == "4-node", "functions"].sum() == \
        SPACE_COUNTS["4-node"][0]
    row = summary.iloc[0]
    assert (row["functions"], row["unique"]) == (5103, three.n_unique)
    gap = 100 * (three.n_unique - 2913) / 2913
    assert row["unique vs paper"] == f"{gap:+.2f}%"


def test_equivalent_name_tables(three):
    largest, familiar = fs.equivalent_name_tables(three, list(fs.CORNERS), largest=3)
    counts = three.unique["count"].to_numpy()
    assert largest["names"].tolist() == sorted(counts, reverse=True)[:3]
    assert familiar["class id"].tolist() == three.class_of(list(fs.CORNERS)).tolist()
    relu = familiar.set_index("function").loc["relu(x)"]
    members = list(three.unique.loc[relu["class id"], "equivalent_names"])
    assert relu["names in the 3-node space"] == len(members)
    assert relu["equivalent names"] == ", ".join(members[:5])
    assert "max(identity(x),zero(x))" in members


def test_embedding_subset_is_the_seeded_draw_plus_the_included_rows():
    include = [3, 50, 7]
    subset = fs.embedding_subset(100, include, 10, seed=0)
    rng = np.random.default_rng(0)
    others = np.setdiff1d(np.arange(100), np.sort(include))
    expected = np.sort(np.concatenate([np.sort(include), rng.choice(others, 7, replace=False)]))
    np.testing.assert_array_equal(subset, expected)
    np.testing.assert_array_equal(fs.embedding_subset(100, include, None, 0), np.arange(100))
    with pytest.raises(ValueError, match="cannot take 2 of 100"):
        fs.embedding_subset(100, include, 2, 0)


def test_corner_positions_look_rows_up_in_the_subset():
    subset = np.array([2, 5, 9, 11])
    embedding = np.arange(8.0).reshape(4, 2)
    np.testing.assert_array_equal(fs.corner_positions(embedding, subset, [9, 2]),
                                  [[4.0, 5.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"rows \[3\] are not in the embedded subset"):
        fs.corner_positions(embedding, subset, [3])


def test_figure3_panels():
    steps = 3
    xs = np.linspace(-5, 5, 80)
    curves = np.tile(np.tanh(xs), (steps * steps, 1))
    true = {label: np.tanh(xs) for label, _, _ in fs.CORNERS.values()}
    fig = fs.fig3_reconstructions(curves, xs, true, steps)
    # one curve per panel plus the four corner functions in grey
    assert len(fig.data) == steps * steps + 4
    assert [a.text for a in fig.layout.annotations] == ["ReLU", "ELU", "Swish", "tanh"]
    # tick labels on the left column and the bottom row; one y range holding every curve
    axes = {k: fig.layout[k] for k in fig.layout if k.startswith(("xaxis", "yaxis"))}
    labelled = sorted(k for k, a in axes.items() if a.showticklabels is not False)
    assert labelled == sorted(["yaxis", "yaxis4", "yaxis7", "xaxis7", "xaxis8", "xaxis9"])
    assert fig.layout.xaxis8.title.text == "x"
    ranges = {tuple(a.range) for k, a in axes.items() if k.startswith("yaxis")}
    (lo, hi), = ranges
    assert lo < curves.min() and curves.max() < hi
    tall = curves.copy()
    tall[4] = 3 * xs  # a reconstruction reaching 15: not cut off at a fixed range
    assert fs.fig3_reconstructions(tall, xs, true, steps).layout.yaxis5.range[1] > 15
    with pytest.raises(ValueError, match="expected 9 reconstructions"):
        fs.fig3_reconstructions(curves[:4], xs, true, steps)
    grid = np.zeros((9, 2))
    emb = fs.fig3_embedding(np.zeros((5, 2)), list("abcde"), grid,
                            {"relu(x)": np.zeros(2), "tanh(x)": np.ones(2)}, "t")
    assert [t.name for t in emb.data] == ["unique functions", "interpolation points", "relu(x)",
                                           "tanh(x)"]
    assert isinstance(fs.count_tables({})[1], pd.DataFrame)
