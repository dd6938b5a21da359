"""The comparisons after a search (:mod:`aquasurf_core.search.comparisons`) on tables small
enough to check by hand; the whole flow, a search then its comparisons on real processes, is in
test_engine.py."""

from __future__ import annotations

import pandas as pd
import pytest

from aquasurf_core.search.comparisons import choose_for_comparison, median_over_seeds


def test_comparison_choice_and_medians_the_slow_obvious_way():
    rows = [(1, "relu", 0, 0.50, 0.40), (1, "relu", 1, 0.70, 0.60), (1, "relu", 2, 0.60, 0.90),
            (5, "a", 0, 0.80, 0.30), (5, "a", 1, 0.10, 0.20), (5, "a", 2, 0.90, 0.10),
            (6, "b", 0, 0.90, 0.80), (6, "b", 1, 0.90, 0.70), (6, "b", 2, 0.90, 0.75),
            (7, "c", 0, float("nan"), float("nan"))]
    table = pd.DataFrame(rows, columns=["class_id", "name", "seed", "val_acc", "test_acc"])
    chosen = choose_for_comparison(table, {1: "relu(x)"}, top=2)
    assert chosen == [(1, "relu(x)", "baseline"), (6, "b", "discovered"),
                      (5, "a", "discovered")]  # c is NaN: never chosen
    out = median_over_seeds(table, chosen, seeds=(0, 1, 2))
    assert out["function"].tolist() == ["b", "relu(x)", "a"]  # by median test accuracy
    assert out["median val acc"].tolist() == pytest.approx([0.9, 0.6, 0.8])
    assert out["median test acc"].tolist() == pytest.approx([0.75, 0.6, 0.2])
    assert out["test acc per seed"].iloc[1] == "0.400 0.600 0.900"
    with pytest.raises(KeyError, match=r"relu\(x\) \(class 1\) has no run with seed\(s\) \[3\]"):
        median_over_seeds(table, chosen, seeds=(0, 3))
