"""The held-out choice: mean AUCs and the leave-one-benchmark-out ranking, by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from aquasurf_core.search.selection import held_out_choice, mean_aucs


def results(table):
    """Tidy rows whose best-so-far is constant per trial (so the AUC is that value)."""
    rows = []
    for (bench, feature, method), aucs in table.items():
        for trial, auc in enumerate(aucs):
            for step in (1, 2):
                rows.append({"benchmark": bench, "feature": feature, "method": method,
                             "trial": trial, "step": step, "best_val_so_far": auc})
    return pd.DataFrame(rows)


def test_mean_aucs_by_hand():
    frame = results({("a", "f", "m"): [0.2, 0.4]})
    frame.loc[0, "best_val_so_far"] = 0.0  # trial 0: steps 0.0 and 0.2 -> AUC 0.1
    (row,) = mean_aucs(frame).itertuples()
    assert row.trials == 2 and row.auc == pytest.approx((0.1 + 0.4) / 2, abs=1e-12)


def test_each_benchmark_is_judged_by_a_choice_made_on_the_others():
    frame = results({
        ("a", "f", "x"): [0.9], ("b", "f", "x"): [0.1], ("c", "f", "x"): [0.5],
        ("a", "f", "y"): [0.5], ("b", "f", "y"): [0.4], ("c", "f", "y"): [0.6],
        ("a", "g", "z"): [0.0], ("b", "g", "z"): [0.9]})  # z lacks c: ranked only for c
    chosen = held_out_choice(frame).set_index("held out")
    # held out a: x (0.1+0.5)/2 = 0.3, y (0.4+0.6)/2 = 0.5 -> y
    # held out b: x 0.7, y 0.55 -> x;  held out c: x 0.5, y 0.45, z 0.45 -> x
    assert chosen["method"].to_dict() == {"a": "y", "b": "x", "c": "x"}
    assert chosen.loc["a", "tuning AUC (other benchmarks)"] == pytest.approx(0.5, abs=1e-4)
    with pytest.raises(ValueError, match="at least two benchmarks"):
        held_out_choice(frame, ["a"])
