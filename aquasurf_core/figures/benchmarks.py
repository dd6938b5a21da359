"""Figures and tables of the activation-function benchmarks (paper Section 2, Figs. 1-2).

Used by ``notebooks/00_benchmarks.ipynb``; every function takes a mapping of name to
:class:`~aquasurf_core.bench.table.Benchmark` (from :func:`aquasurf_core.bench.get_benchmarks`:
the shipped ones, tiny ones built on the spot, or the published Act-Bench files) and returns a
pandas DataFrame or a plotly Figure.

Definitions
-----------
* **Chance** is ``1/10`` (ten classes). A function has **failed** when its run did not finish
  normally (``status`` ``"diverged"`` or ``"failed"``; diverged runs are recorded at chance
  accuracy with NaN losses), when its validation accuracy is NaN, or when
  ``val_acc <= 1/10 + chance_margin`` (:func:`failed_mask`).
* **FIM valid** is the benchmark's ``fim_valid`` flag: the K-FAC Fisher spectrum at
  initialisation was finite and inside the histogram range (paper Appendix C: invalid
  eigenvalues come from exploding or vanishing signals and "provide a good way to filter out
  bad activation functions").
* Figure 1 counts (:func:`failure_counts`): with ``F`` the failed set and ``I`` the set with
  invalid FIM, the table reports ``|F|``, ``|F & I|``, ``|F & I| / |F|`` (share of failures
  the FIM filter would have removed), ``|I|`` and ``|I - F|`` (invalid spectra that
  nevertheless trained above chance, i.e. what the filter would wrongly remove).
* Figure 2 (:func:`pairwise_correlations`, :func:`fig2_pairwise`): benchmarks are joined on
  ``fn_name`` (an inner join over rows whose validation accuracy is finite in both) and
  compared with Spearman's rank correlation and Pearson's linear correlation
  (:func:`scipy.stats.spearmanr`, :func:`scipy.stats.pearsonr`).
* Functions that are not names of the benchmark's space (``relu(x)``; its 3-node class is
  e.g. ``max(identity(x),zero(x))``) are located by their outputs
  (:meth:`~aquasurf_core.bench.table.Benchmark.locate`).

Figures stay small: histograms are binned here with :func:`numpy.histogram` and drawn as
bars; scatters draw one marker per function (a few thousand at most).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from itertools import combinations

import numpy as np
import pandas as pd

from aquasurf_core.bench.table import Benchmark
from aquasurf_core.space.baselines import BASELINES

__all__ = [
    "BASELINES",
    "CHANCE",
    "baseline_table",
    "failed_mask",
    "failure_counts",
    "fig1_histograms",
    "fig2_pairwise",
    "fim_reason_table",
    "pairwise_correlations",
    "recipe_table",
    "top_table",
]

#: Chance accuracy of the ten-class benchmarks.
CHANCE = 0.1
VALID_COLOR = "#4c72b0"
INVALID_COLOR = "#dd8452"


# ----------------------------------------------------------------------------- checks
def _check_margin(chance_margin: float) -> float:
    if isinstance(chance_margin, bool) or not isinstance(chance_margin, (int, float)) or \
            not math.isfinite(chance_margin) or not 0 <= chance_margin < 1 - CHANCE:
        raise ValueError(f"chance_margin must be a finite number in [0, {1 - CHANCE:g}), got "
                         f"{chance_margin!r}")
    return float(chance_margin)


def _check_benchmarks(benchmarks: Mapping[str, Benchmark]) -> Mapping[str, Benchmark]:
    if not isinstance(benchmarks, Mapping):
        raise TypeError("expected a mapping {name: Benchmark}, got "
                        f"{type(benchmarks).__name__}")
    for name, bench in benchmarks.items():
        if not isinstance(bench, Benchmark):
            raise TypeError(f"benchmarks[{name!r}] is a {type(bench).__name__}, not a Benchmark")
    return benchmarks


# ----------------------------------------------------------------------------- Figure 1
def failed_mask(benchmark: Benchmark, chance_margin: float = 0.05) -> np.ndarray:
    """Bool ``[N]``: status not ``"ok"``, or validation accuracy NaN or
    ``<= 1/10 + chance_margin``."""
    margin = _check_margin(chance_margin)
    table = benchmark.table
    val = table["val_acc"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        above = val > CHANCE + margin  # False for NaN
    return (table["status"].to_numpy() != "ok") | ~above


def failure_counts(benchmarks: Mapping[str, Benchmark], chance_margin: float = 0.05
                   ) -> pd.DataFrame:
    """Figure 1's counts, one row per benchmark (module docstring for ``F`` and ``I``):
    ``functions``, ``not ok`` (status diverged/failed), ``failed`` ``|F|``, ``failed share``,
    ``failed, invalid FIM`` ``|F & I|``, ``share of failures with invalid FIM``
    ``|F & I|/|F|`` (NaN without failures), ``invalid FIM`` ``|I|``, ``invalid FIM above
    chance`` ``|I - F|``, and ``chance threshold`` ``1/10 + chance_margin``."""
    margin = _check_margin(chance_margin)
    rows = []
    for name, bench in _check_benchmarks(benchmarks).items():
        failed = failed_mask(bench, margin)
        invalid = ~bench.fim_valid
        n_failed = int(failed.sum())
        both = int((failed & invalid).sum())
        rows.append({
            "benchmark": name,
            "functions": len(bench),
            "not ok": int((bench.table["status"] != "ok").sum()),
            "failed": n_failed,
            "failed share": n_failed / len(bench) if len(bench) else math.nan,
            "failed, invalid FIM": both,
            "share of failures with invalid FIM": both / n_failed if n_failed else math.nan,
            "invalid FIM": int(invalid.sum()),
            "invalid FIM above chance": int((invalid & ~failed).sum()),
            "chance threshold": CHANCE + margin,
        })
    return pd.DataFrame(rows)


def fig1_histograms(benchmarks: Mapping[str, Benchmark], chance_margin: float = 0.05, *,
                    bins: int = 50, log_y: bool = False):
    """Figure 1: per benchmark, a histogram of validation accuracy on ``[0, 1]`` in ``bins``
    equal bins, stacked by FIM validity (valid / invalid), with the failure threshold
    ``1/10 + chance_margin`` dashed. Counts are computed here (bars, not raw points); rows
    with NaN validation accuracy cannot be placed and are counted in the panel title."""
    from plotly.subplots import make_subplots

    margin = _check_margin(chance_margin)
    benchmarks = _check_benchmarks(benchmarks)
    if not benchmarks:
        raise ValueError("fig1_histograms needs at least one benchmark")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    counts = failure_counts(benchmarks, margin).set_index("benchmark")
    titles = []
    for name, bench in benchmarks.items():
        c = counts.loc[name]
        share = c["share of failures with invalid FIM"]
        text = f"{name}: {int(c['failed'])}/{int(c['functions'])} failed"
        if not math.isnan(share):
            text += f", {share:.0%} of them invalid FIM"
        nan = int(bench.table["val_acc"].isna().sum())
        titles.append(text + (f" ({nan} without accuracy)" if nan else ""))
    n = len(benchmarks)
    fig = make_subplots(rows=1, cols=n, subplot_titles=titles, horizontal_spacing=0.06)
    edges = np.linspace(0.0, 1.0, bins + 1)
    centers, width = 0.5 * (edges[1:] + edges[:-1]), edges[1] - edges[0]
    for col, bench in enumerate(benchmarks.values(), start=1):
        val = bench.table["val_acc"].to_numpy(dtype=float)
        finite = np.isfinite(val)
        for label, mask, color in (("FIM valid", bench.fim_valid, VALID_COLOR),
                                   ("FIM invalid", ~bench.fim_valid, INVALID_COLOR)):
            hist, _ = np.histogram(np.clip(val[finite & mask], 0.0, 1.0), bins=edges)
            fig.add_bar(x=centers, y=hist, width=width, name=label, legendgroup=label,
                        marker_color=color, showlegend=col == 1, row=1, col=col,
                        hovertemplate="val acc %{x:.2f}: %{y} functions<extra>" + label +
                                      "</extra>")
        fig.add_vline(x=CHANCE + margin, line_dash="dash", line_color="#555", line_width=1,
                      row=1, col=col)
        fig.update_xaxes(title_text="validation accuracy", range=[0, 1], row=1, col=col)
    fig.update_yaxes(title_text="functions", type="log" if log_y else "linear", row=1, col=1)
    fig.update_layout(barmode="stack", bargap=0, width=max(360 * n + 120, 640), height=420,
                      title=f"Validation accuracy (failed: ≤ {CHANCE + margin:.2f}, dashed)",
                      legend=dict(orientation="h", y=-0.2), margin=dict(t=90))
    fig.update_annotations(font_size=12)
    return fig


def fim_reason_table(benchmarks: Mapping[str, Benchmark]) -> pd.DataFrame:
    """Why spectra are invalid: per benchmark and kind of invalidity
    (:class:`~aquasurf_core.features.fim.InvalidKind`, ``"ok"`` for valid spectra), how many
    functions, from the manifest's ``fim.reasons`` (our builds; empty for the published
    files)."""
    rows = []
    for name, bench in _check_benchmarks(benchmarks).items():
        reasons = ((bench.manifest or {}).get("fim") or {}).get("reasons") or {}
        for reason, count in reasons.items():
            rows.append({"benchmark": name, "reason": str(reason), "functions": int(count)})
    frame = pd.DataFrame(rows, columns=["benchmark", "reason", "functions"])
    if frame.empty:
        return frame
    frame = frame.groupby(["benchmark", "reason"], sort=False, as_index=False)["functions"].sum()
    return frame.sort_values(["benchmark", "functions"], ascending=[True, False],
                             kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- Figure 2
def _joined(a: Benchmark, b: Benchmark, chance_margin: float = 0.05) -> pd.DataFrame:
    left = a.table[["fn_name", "val_acc"]].assign(failed=failed_mask(a, chance_margin))
    right = b.table[["fn_name", "val_acc"]].assign(failed=failed_mask(b, chance_margin))
    joined = left.merge(right, on="fn_name", suffixes=("_a", "_b"), how="inner")
    keep = np.isfinite(joined["val_acc_a"]) & np.isfinite(joined["val_acc_b"])
    return joined[keep].reset_index(drop=True)


def _correlations(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(Spearman, Pearson); NaN with fewer than 3 points or a constant side."""
    from scipy import stats

    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    return float(stats.spearmanr(x, y).statistic), float(stats.pearsonr(x, y).statistic)


def pairwise_correlations(benchmarks: Mapping[str, Benchmark]) -> pd.DataFrame:
    """For every pair of benchmarks (in the mapping's order): functions in common (joined on
    ``fn_name``, finite validation accuracy in both), Spearman and Pearson correlation of
    their validation accuracies."""
    rows = []
    for (na, a), (nb, b) in combinations(_check_benchmarks(benchmarks).items(), 2):
        joined = _joined(a, b)
        rho, r = _correlations(joined["val_acc_a"].to_numpy(), joined["val_acc_b"].to_numpy())
        rows.append({"x": na, "y": nb, "functions": len(joined), "spearman": rho,
                     "pearson": r})
    return pd.DataFrame(rows, columns=["x", "y", "functions", "spearman", "pearson"])


def fig2_pairwise(benchmarks: Mapping[str, Benchmark], chance_margin: float = 0.05, *,
                  hover_names: bool = True):
    """Figure 2: one scatter per pair of benchmarks, each point a function's validation
    accuracy on the two (joined on ``fn_name``), the diagonal dotted, Spearman's rho and
    Pearson's r in the panel title. With ``hover_names`` the HTML shows the name of every
    function that did not fail on both (:func:`failed_mask` with ``chance_margin``; those
    pile up at (0.1, 0.1), and leaving their names out keeps the file small). With fewer than
    two benchmarks the figure says so."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    benchmarks = _check_benchmarks(benchmarks)
    pairs = list(combinations(benchmarks.items(), 2))
    if not pairs:
        fig = go.Figure()
        fig.add_annotation(text=f"Figure 2 needs two benchmarks; got {list(benchmarks)}",
                           showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        fig.update_layout(width=600, height=300, xaxis_visible=False, yaxis_visible=False)
        return fig
    stats_table = pairwise_correlations(benchmarks)
    titles = [f"{row.x} vs {row.y}: ρ={row.spearman:.2f}, r={row.pearson:.2f} "
              f"(n={row.functions})" for row in stats_table.itertuples()]
    fig = make_subplots(rows=1, cols=len(pairs), subplot_titles=titles,
                        horizontal_spacing=0.08)
    for col, ((na, a), (nb, b)) in enumerate(pairs, start=1):
        joined = _joined(a, b, chance_margin)
        names = joined["fn_name"].where(~(joined["failed_a"] & joined["failed_b"]), "")
        fig.add_scatter(x=joined["val_acc_a"].to_numpy(np.float32),  # float32: smaller HTML
                        y=joined["val_acc_b"].to_numpy(np.float32),
                        mode="markers", showlegend=False, row=1, col=col,
                        marker=dict(size=4, color=VALID_COLOR, opacity=0.45),
                        text=names.tolist() if hover_names else None,
                        hovertemplate=("%{text}<br>" if hover_names else "") +
                                      f"{na} %{{x:.3f}}<br>{nb} %{{y:.3f}}<extra></extra>")
        fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", showlegend=False, hoverinfo="skip",
                        line=dict(color="#999", dash="dot", width=1), row=1, col=col)
        fig.update_xaxes(title_text=f"{na} validation accuracy", range=[0, 1], row=1, col=col)
        fig.update_yaxes(title_text=f"{nb} validation accuracy", range=[0, 1], row=1, col=col)
    fig.update_layout(width=max(400 * len(pairs) + 80, 640), height=440,
                      title="Validation accuracy of each function on two benchmarks")
    fig.update_annotations(font_size=12)
    return fig


# ----------------------------------------------------------------------------- tables
def baseline_table(benchmarks: Mapping[str, Benchmark],
                   baselines: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The baselines (default :data:`BASELINES`) on every benchmark, one row per (baseline,
    benchmark): the row found by :meth:`~aquasurf_core.bench.table.Benchmark.locate` (``-1``
    when absent), how it was
    found (``name``/``outputs``/``absent``), the row's representative name (``"not in
    benchmark"`` when absent), validation and test accuracy (NaN when absent), status and FIM
    validity."""
    baselines = dict(BASELINES if baselines is None else baselines)
    rows = []
    for bench_name, bench in _check_benchmarks(benchmarks).items():
        found, how = bench.locate(list(baselines.values()))
        for (label, fn), row, kind in zip(baselines.items(), found, how, strict=True):
            hit = bench.table.iloc[row] if row >= 0 else None
            rows.append({
                "baseline": label, "function": fn, "benchmark": bench_name, "row": int(row),
                "found by": kind,
                "representative": hit["fn_name"] if hit is not None else "not in benchmark",
                "val_acc": float(hit["val_acc"]) if hit is not None else math.nan,
                "test_acc": float(hit["test_acc"]) if hit is not None else math.nan,
                "status": hit["status"] if hit is not None else "",
                "fim_valid": bool(bench.fim_valid[row]) if hit is not None else None,
            })
    return pd.DataFrame(rows, columns=["baseline", "function", "benchmark", "row", "found by",
                                       "representative", "val_acc", "test_acc", "status",
                                       "fim_valid"])


def top_table(benchmarks: Mapping[str, Benchmark], k: int = 10) -> pd.DataFrame:
    """The ``k`` functions with the highest validation accuracy on each benchmark (ties:
    higher test accuracy, then name; NaN never ranks): benchmark, rank (1 = best), name,
    validation and test accuracy, FIM validity, status."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    frames = []
    for name, bench in _check_benchmarks(benchmarks).items():
        table = bench.table[["fn_name", "val_acc", "test_acc", "status"]].copy()
        table["fim_valid"] = bench.fim_valid
        table = table[np.isfinite(table["val_acc"])]
        table = table.sort_values(["val_acc", "test_acc", "fn_name"],
                                  ascending=[False, False, True], kind="stable",
                                  na_position="last").head(k)
        table.insert(0, "rank", np.arange(1, len(table) + 1))
        table.insert(0, "benchmark", name)
        frames.append(table)
    columns = ["benchmark", "rank", "fn_name", "val_acc", "test_acc", "status", "fim_valid"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def recipe_table(benchmarks: Mapping[str, Benchmark]) -> pd.DataFrame:
    """The training choices recorded in each benchmark's manifest: source, functions,
    architecture parameters, epochs, batch size, optimizer, peak learning rate, schedule,
    weight decay, training-set subset, seeds, group size, build seconds and diverged runs.
    Fields a manifest lacks (the published files record none) are empty."""
    rows = []
    for name, bench in _check_benchmarks(benchmarks).items():
        manifest = bench.manifest or {}
        config = manifest.get("config") or {}
        recipe = config.get("recipe") or {}
        build = manifest.get("build") or {}
        seeds = config.get("seeds")
        rows.append({
            "benchmark": name,
            "source": manifest.get("source", ""),
            "functions": len(bench),
            "parameters": (manifest.get("architecture") or {}).get("parameters"),
            "epochs": recipe.get("epochs"),
            "batch size": recipe.get("batch_size"),
            "optimizer": recipe.get("optimizer"),
            "lr": recipe.get("lr"),
            "schedule": recipe.get("schedule"),
            "weight decay": recipe.get("weight_decay"),
            "train subset": recipe.get("train_subset") or ("all" if recipe else None),
            "seeds": " ".join(map(str, seeds)) if seeds is not None else None,
            "group size": config.get("group_size"),
            "build seconds": build.get("seconds"),
            "diverged runs": build.get("diverged_runs"),
        })
    return pd.DataFrame(rows)
