"""The stall diagnosis: replayed picks against the obvious computation on a tiny line, the
clusters, and the agreement of pick sequences counted by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aquasurf_core.search.diagnosis import (
    clusters,
    replay,
    sequence_agreement,
    spacing,
    stall_summary,
)
from aquasurf_core.search.searcher import Searcher


def line():
    coords = np.array([[0.0], [1.0], [2.0], [3.0], [10.0], [11.0], [12.0], [12.0]])
    valid = np.ones(8, dtype=bool)
    valid[2] = False
    names = [f"f{i}(x)" for i in range(8)]
    accuracy = np.array([0.3, 0.5, 0.4, 0.45, 0.9, 0.6, 0.8, 0.7])
    return coords, valid, names, accuracy


def test_spacing_and_clusters():
    coords, valid, names, accuracy = line()
    # nearest-other distances: 1, 1, 1, 1, 1, 1, 0, 0 -> median 1
    assert spacing(coords) == pytest.approx(1.0, abs=1e-12)
    labels = clusters(coords, 1.5)
    assert len(set(labels[:4])) == 1 and len(set(labels[4:])) == 1 and labels[0] != labels[4]
    with pytest.raises(ValueError, match="radius must be positive"):
        clusters(coords, 0)


def test_replay_of_a_knr_search_matches_the_computation_by_hand():
    coords, valid, names, accuracy = line()
    searcher = Searcher(names, coords, valid=valid, first=[names[0]], n_random=1, seed=0)
    picks = []
    for _ in range(6):
        (name,) = searcher.ask()
        searcher.tell(name, float(accuracy[searcher.index[name]]))
        picks.append(name)
    acc = [accuracy[names.index(p)] for p in picks]
    table = replay(coords, valid, names, picks, acc, start=2, radius=1.5)
    assert list(table["step"]) == [3, 4, 5, 6]
    # the searcher picked the highest score, with no ties on this line
    assert (table["score"] == table["max_score"]).all()
    for _, row in table.iterrows():
        s = row["step"] - 1
        seen = [names.index(p) for p in picks[:s]]
        known = [r for r in seen if valid[r]]
        best = max(known, key=lambda r: accuracy[r])
        pick = names.index(picks[s])
        d = np.abs(coords[known, 0] - coords[pick, 0])
        assert row["nearest"] == pytest.approx(d.min(), abs=1e-12)
        assert row["to_best"] == pytest.approx(abs(coords[pick, 0] - coords[best, 0]), abs=1e-12)
        assert row["best_so_far"] == pytest.approx(accuracy[best], abs=1e-12)
        assert row["gap"] == pytest.approx(accuracy[best] - row["max_score"], abs=1e-12)
        assert row["gap"] >= -1e-12  # KNR never predicts above the best evaluated
        assert row["twin"] == (d.min() == 0)
        assert row["same_cluster"] == ((coords[pick, 0] >= 10) == (coords[best, 0] >= 10))


def test_a_twin_at_zero_distance_is_predicted_as_its_twin():
    coords, valid, names, accuracy = line()
    # f6 and f7 share a coordinate: once f6 is evaluated, f7's KNR score is f6's accuracy
    picks = ["f6(x)", "f0(x)", "f7(x)"]
    table = replay(coords, valid, names, picks, [0.8, 0.3, 0.7], start=2)
    (row,) = table.itertuples()
    assert row.twin and row.score == pytest.approx(0.8, abs=1e-12) and row.nearest == 0
    with pytest.raises(ValueError, match="unknown function"):
        replay(coords, valid, names, ["g(x)"], [0.1])
    with pytest.raises(ValueError, match="deterministic"):
        replay(coords, valid, names, picks, [0.8, 0.3, 0.7], surrogate="rfr")


def test_sequence_agreement_counted_by_hand():
    rows = []
    sequences = {0: ["a", "b", "c"], 1: ["a", "b", "c"], 2: ["a", "d", "c"]}
    for trial, seq in sequences.items():
        for step, fn in enumerate(seq, 1):
            rows.append({"benchmark": "x", "feature": "both", "method": "knr", "trial": trial,
                         "step": step, "function": fn})
    table = sequence_agreement(pd.DataFrame(rows)).set_index("step")
    # step 1: all three pairs agree; step 2: one pair of three (0, 1); step 3: all three
    assert table.loc[1, "same_pick"] == 1 and table.loc[3, "same_pick"] == 1
    assert table.loc[2, "same_pick"] == pytest.approx(1 / 3, abs=1e-12)
    # tails: from step 1 and 2 two of three trials are one sequence; from step 3 all three
    assert table["identical_tail"].tolist() == pytest.approx([2 / 3, 2 / 3, 1.0], abs=1e-12)


def test_stall_summary_means_by_hand():
    frame = pd.DataFrame({"step": [31, 32, 33, 5], "function": list("abcd"),
                          "val_acc": [0.5, 0.9, 0.1, 1.0], "best_so_far": [0.8] * 4,
                          "score": [0.6, 0.5, 0.4, 0.8], "max_score": [0.6, 0.5, 0.4, 0.8],
                          "ties": [1, 2, 1, 1], "gap": [0.2, 0.3, 0.4, 0.0],
                          "nearest": [0.0, 1.0, 2.0, 0.0], "to_best": [1.0, 2.0, 3.0, 0.0],
                          "twin": [True, False, False, True],
                          "same_cluster": [True, True, False, True], "weights": ["d"] * 4})
    (row,) = stall_summary(frame, after=30).itertuples()
    assert row.picks == 3 and row.mean_gap == pytest.approx(0.3, abs=1e-4)
    assert row.twins == pytest.approx(1 / 3, abs=1e-3) and row.tied == pytest.approx(1 / 3,
                                                                                     abs=1e-3)
    assert row.improves == pytest.approx(1 / 3, abs=1e-3)
    assert row.median_nearest == 1.0 and row.median_to_best == 2.0
