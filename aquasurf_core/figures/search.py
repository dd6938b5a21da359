"""Figures and tables of notebook 04: searching the benchmarks (paper Section 5, Figure 6), and a
scorecard of the paper's claims with paired tests over trials.

All functions take the tidy results of :func:`aquasurf_core.search.benchmark_search.run_experiment`
(one row per evaluation) and ``reference``: per benchmark, ReLU's validation accuracy and the
benchmark's best (:func:`references`).

Definitions
-----------
* The *best-so-far* curve of a trial is its ``best_val_so_far`` by evaluation; its *area* (AUC)
  is the mean of that curve over the ``budget`` evaluations (higher is better: good functions
  found early count for more).
* Confidence bands and intervals are 95% t-intervals of the mean over trials (Figure 6
  draws them for KNR, random search and each panel's highest AUC only: more overlap).
* Paired tests compare two methods on the same trials (same starting functions): the
  one-sided Wilcoxon signed-rank test of ``AUC_a - AUC_b > 0`` (``scipy.stats.wilcoxon``,
  zero differences dropped); the p-values of one claim are Holm-corrected together
  (:func:`holm`). A comparison counts as a win at ``alpha = 0.05`` after correction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from aquasurf_core.bench.table import Benchmark
from aquasurf_core.search.surrogates import get_surrogate, surrogate_names

__all__ = ["METHOD_COLOURS", "METHOD_LABELS", "ablation_table", "auc_table", "fig6_search",
           "holm", "references", "heldout_table", "results_table", "scorecard", "stall_figure"]


class _RegistryView(Mapping):
    """A read-only view of one field of the surrogate registry
    (:mod:`aquasurf_core.search.surrogates`), read when looked up: a surrogate registered
    later is drawn with its own label and colour without another edit here."""

    def __init__(self, field: str):
        self.field = field

    def __getitem__(self, name: str) -> str:
        if name not in surrogate_names():
            raise KeyError(name)
        return getattr(get_surrogate(name), self.field)

    def __iter__(self):
        return iter(surrogate_names())

    def __len__(self) -> int:
        return len(surrogate_names())


#: Each surrogate's label (``"KNR"``) and colour, from the registry.
METHOD_LABELS: Mapping[str, str] = _RegistryView("label")
FEATURE_LABELS = {"fim": "FIM", "outputs": "outputs", "both": "both"}
#: One colour per method (the registry's); the feature is the line's dash (both: solid,
#: outputs: dashed, FIM: dotted).
METHOD_COLOURS: Mapping[str, str] = _RegistryView("colour")
#: The paper's three "out of the box" regressors, which its Section 5 claims name.
REGRESSORS = ("knr", "rfr", "svr")
ALPHA = 0.05


def references(benchmarks: Mapping[str, Benchmark]) -> dict[str, dict[str, float]]:
    """Per benchmark: ReLU's validation accuracy (located by name or outputs) and the best
    validation accuracy of any function."""
    out = {}
    for name, bench in benchmarks.items():
        (row,), _ = bench.locate(["relu(x)"])
        val = bench.table["val_acc"].to_numpy(dtype=float)
        out[name] = {"relu": float(val[row]) if row >= 0 else float("nan"),
                     "best": float(np.nanmax(val))}
    return out


def _label(method: str, feature: str) -> str:
    """``"KNR (both)"``; a method with options keeps them: ``"LGP-UCB(kappa=2) (both)"``."""
    name, bracket, options = method.partition("(")
    label = METHOD_LABELS.get(name, name) + bracket + options
    if method.startswith("random"):
        return label
    return f"{label} ({FEATURE_LABELS.get(feature, feature)})"


def _t_interval(values: np.ndarray) -> tuple[float, float, float]:
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return mean, mean - half, mean + half


def _curves(results: pd.DataFrame) -> pd.DataFrame:
    """Mean best-so-far by evaluation with its 95% band, per benchmark, method and feature."""
    grouped = results.groupby(["benchmark", "method", "feature", "step"])["best_val_so_far"]
    frame = grouped.agg(["mean", "std", "count"]).reset_index()
    half = stats.t.ppf(0.975, np.maximum(frame["count"] - 1, 1)) * frame["std"] / np.sqrt(
        frame["count"])
    frame["lo"], frame["hi"] = frame["mean"] - half, frame["mean"] + half
    return frame


def _method_label(method: str, feature: str) -> str:
    """The legend name of a method, without its feature (the feature is the figure's row):
    ``"KNR"``, ``"RS + filter"``, ``"LGP-UCB(kappa=2)"``."""
    return _label(method, feature).removesuffix(f" ({FEATURE_LABELS.get(feature, feature)})")


def fig6_search(results: pd.DataFrame, reference: Mapping[str, Mapping[str, float]],
                methods: Sequence[str] | None = None, features: Sequence[str] | None = None,
                title: str = "Search on the benchmarks (Figure 6)"):
    """A grid of panels, one row per feature and one column per benchmark (the y axis shared
    down a column): the mean best-so-far validation accuracy against evaluations of each
    method on that feature, one colour per method (:data:`METHOD_COLOURS`), with random search
    (which does not use the feature; its own rows where the results have them, else the
    first feature's) in every row for reference, and ReLU's accuracy and the benchmark's best
    as dashed lines. KNR is drawn thicker. 95% bands only for three curves per panel, so that
    they stay apart: KNR, random search (RS) and the method with the highest mean
    best-so-far (AUC) in that panel, which is also named in the panel's corner."""
    from plotly.subplots import make_subplots

    curves = _curves(results)
    benches = list(dict.fromkeys(results["benchmark"]))
    # unless given: KNR first, random search last; the features in the paper's order
    methods = list(methods or sorted(dict.fromkeys(results["method"]), key=lambda m: (
        m != "knr", m.startswith("random"))))
    features = list(features or sorted(dict.fromkeys(results["feature"]), key=lambda f: (
        list(FEATURE_LABELS).index(f) if f in FEATURE_LABELS else len(FEATURE_LABELS))))
    fig = make_subplots(rows=len(features), cols=len(benches), shared_xaxes=True,
                        column_titles=[f"Act-Bench-Mini {b}" for b in benches],
                        row_titles=[FEATURE_LABELS.get(f, f) for f in features],
                        horizontal_spacing=0.06, vertical_spacing=0.05)
    in_legend: set[str] = set()
    for r, feature in enumerate(features, start=1):
        for c, bench in enumerate(benches, start=1):
            drawn = {}  # method -> its curve in this panel
            for method in methods:
                own = curves[(curves["benchmark"] == bench) & (curves["method"] == method)]
                sel = own[own["feature"] == feature]
                if sel.empty and method.startswith("random") and not own.empty:
                    sel = own[own["feature"] == own["feature"].iloc[0]]
                if not sel.empty:
                    drawn[method] = sel
            if not drawn:
                continue
            best = max(drawn, key=lambda m: drawn[m]["mean"].mean())
            banded = {m for m in drawn if m in ("knr", "random") or m == best}
            for method, sel in drawn.items():
                colour = METHOD_COLOURS.get(method, "black")
                label = _method_label(method, feature)
                full = _label(method, sel["feature"].iloc[0])
                if method in banded:
                    fig.add_scatter(x=np.r_[sel["step"], sel["step"][::-1]],
                                    y=np.r_[sel["hi"], sel["lo"][::-1]], fill="toself",
                                    fillcolor=colour, opacity=0.15, line=dict(width=0),
                                    hoverinfo="skip", showlegend=False, legendgroup=label,
                                    row=r, col=c)
                fig.add_scatter(x=sel["step"], y=sel["mean"], mode="lines", name=label,
                                line=dict(color=colour, width=3 if method == "knr" else 1.5,
                                          dash="dot" if method == "random-filter" else
                                          "solid"),
                                hovertemplate=f"{full}<br>%{{x}} evaluations: %{{y:.4f}}"
                                              "<extra></extra>",
                                legendgroup=label, showlegend=label not in in_legend,
                                row=r, col=c)
                in_legend.add(label)
            auc = drawn[best]["mean"].mean()
            colour = METHOD_COLOURS.get(best, "black")
            fig.add_annotation(text=f"highest AUC: <b><span style='color:{colour}'>"
                                    f"{_method_label(best, feature)}</span></b> ({auc:.3f})",
                               x=0.98, y=0.1, xref="x domain", yref="y domain",
                               xanchor="right", yanchor="bottom", showarrow=False,
                               font=dict(size=10, color="#222"),
                               bgcolor="rgba(255,255,255,0.8)", row=r, col=c)
            for key, text in (("relu", "ReLU"), ("best", "best")):
                fig.add_hline(y=reference[bench][key], line=dict(color="black", dash="dash",
                                                                 width=1),
                              annotation_text=text, annotation_font_size=10,
                              annotation_position="bottom left" if key == "relu" else
                              "top left", row=r, col=c)
    # one y range per benchmark (column): the rows compare features on the same scale
    for c in range(1, len(benches) + 1):
        anchor = fig.get_subplot(1, c).yaxis.plotly_name.replace("axis", "")
        for r in range(2, len(features) + 1):
            fig.update_yaxes(matches=anchor, row=r, col=c)
    fig.update_xaxes(title_text="evaluations", row=len(features))
    fig.update_yaxes(title_text="best validation accuracy so far", col=1,
                     row=(len(features) + 1) // 2)
    fig.update_layout(title=title, width=max(900, 380 * len(benches) + 260),
                      height=260 * len(features) + 160, template="plotly_white",
                      legend=dict(title="method (bands: KNR, RS and<br>the highest AUC)",
                                  font=dict(size=11), x=1.04, y=1, yanchor="top"))
    return fig


def auc_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per benchmark, method, feature and trial: the area under the best-so-far curve
    and the final best."""
    grouped = results.groupby(["benchmark", "method", "feature", "trial"])["best_val_so_far"]
    return grouped.agg(auc="mean", final="last").reset_index()


def _evaluations_to(results: pd.DataFrame, threshold: Mapping[str, float], budget: int,
                    strict: bool) -> pd.DataFrame:
    """Per trial, the first evaluation whose best-so-far beats (``strict``) or reaches the
    benchmark's threshold; ``budget + 1`` when it never does."""
    ok = results["best_val_so_far"] > results["benchmark"].map(threshold) if strict else \
        results["best_val_so_far"] >= results["benchmark"].map(threshold)
    first = results[ok].groupby(["benchmark", "method", "feature", "trial"])["step"].min()
    keys = results.groupby(["benchmark", "method", "feature", "trial"]).size().index
    return first.reindex(keys, fill_value=budget + 1).rename("step").reset_index()


def _median_text(steps: np.ndarray, budget: int) -> str:
    """The median evaluations over trials (a trial that never got there counts as
    ``budget + 1``): a number, or ``>budget`` when half the trials did not get there."""
    median = float(np.median(steps))
    # a median of whole evaluation counts is a whole or half number; an interval's percentile
    # of medians is rounded to the same grid (digits beyond it mean nothing)
    return f">{budget}" if median > budget else f"{round(median * 2) / 2:g}"


def _median_interval(steps: np.ndarray, budget: int, resamples: int = 1000,
                     seed: int = 0) -> str:
    """95% percentile-bootstrap interval of the median over trials (same convention)."""
    draws = np.random.default_rng(seed).integers(0, len(steps), size=(resamples, len(steps)))
    lo, hi = np.percentile(np.median(steps[draws], axis=1), [2.5, 97.5])
    return f"[{_median_text(np.array([lo]), budget)}, {_median_text(np.array([hi]), budget)}]"


def results_table(results: pd.DataFrame, reference: Mapping[str, Mapping[str, float]],
                  checkpoints: Sequence[int] = (10, 25, 50, 100), within: float = 0.005
                  ) -> pd.DataFrame:
    """Per benchmark, method and feature: the mean best validation accuracy after each
    checkpoint with its 95% interval; the evaluations needed to beat ReLU and to come within
    ``within`` of the benchmark's best (median over trials with a 95% bootstrap interval, and
    the share of trials that got there within the budget)."""
    budget = int(results["step"].max())
    beat = _evaluations_to(results, {b: r["relu"] for b, r in reference.items()}, budget, True)
    near = _evaluations_to(results, {b: r["best"] - within for b, r in reference.items()},
                           budget, False)
    rows, seen = [], set()
    for (bench, method, feature), group in results.groupby(["benchmark", "method", "feature"],
                                                           sort=False):
        name = _label(method, feature)
        if (bench, name) in seen:
            continue  # random search does not depend on the feature: one row per benchmark
        seen.add((bench, name))
        row = {"benchmark": bench, "method": name, "trials": group["trial"].nunique()}
        for n in checkpoints:
            at = group[group["step"] == min(n, budget)]["best_val_so_far"]
            mean, lo, hi = _t_interval(at.to_numpy())
            row[f"best after {n}"] = round(mean, 3)
            row[f"95% CI after {n}"] = f"[{lo:.3f}, {hi:.3f}]"
        for label, table in (("to beat ReLU", beat), (f"to within {within} of best", near)):
            steps = table[(table["benchmark"] == bench) & (table["method"] == method)
                          & (table["feature"] == feature)]["step"].to_numpy()
            row[f"evaluations {label} (median)"] = _median_text(steps, budget)
            row[f"95% CI {label}"] = _median_interval(steps, budget)
            row[f"trials {label}"] = f"{(steps <= budget).mean():.0%}"
        rows.append(row)
    return pd.DataFrame(rows)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (monotone, capped at 1), in the input order."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def _paired(aucs: pd.DataFrame, bench: str, a: tuple[str, str], b: tuple[str, str]
            ) -> tuple[float, float, int]:
    """``(mean AUC difference, one-sided Wilcoxon p, trials)`` of a over b on common trials."""
    def pick(method, feature):
        sel = aucs[(aucs["benchmark"] == bench) & (aucs["method"] == method)
                   & (aucs["feature"] == feature)]
        return sel.set_index("trial")["auc"]

    x, y = pick(*a), pick(*b)
    common = x.index.intersection(y.index)
    diff = (x[common] - y[common]).to_numpy()
    if len(diff) == 0 or np.all(diff == 0):
        return float(diff.mean()) if len(diff) else float("nan"), 1.0, len(diff)
    p = stats.wilcoxon(diff, alternative="greater", zero_method="wilcox").pvalue
    return float(diff.mean()), float(p), len(diff)


def _claim(name: str, comparisons: list[tuple[str, tuple, tuple]], aucs: pd.DataFrame) -> dict:
    rows = [(bench, a, b, *_paired(aucs, bench, a, b)) for bench, a, b in comparisons]
    adjusted = holm([r[4] for r in rows]) if rows else np.array([])
    wins = int((adjusted < ALPHA).sum())
    detail = "; ".join(f"{bench}: {_label(*a)} vs {_label(*b)} ΔAUC {d:+.4f} (p_Holm {p:.2g})"
                       for (bench, a, b, d, _, _), p in zip(rows, adjusted, strict=True))
    return {"claim": name, "comparisons": len(rows), "won (Holm p < 0.05)": wins,
            "verdict": "holds" if rows and wins == len(rows) else
            ("holds in part" if wins else "does not hold"), "evidence": detail}


def scorecard(results: pd.DataFrame, reference: Mapping[str, Mapping[str, float]],
              regressors: Sequence[str] = REGRESSORS, within: float = 0.005) -> pd.DataFrame:
    """The paper's claims of Section 5 against these results (module docstring for the tests):

    1. every method, random search included, finds functions better than ReLU (share of trials
       whose final best beats ReLU; holds when it is 95% or more for every method);
    2. every regression method beats random search, for every feature and benchmark;
    3. both features beat either alone (each regressor, each benchmark);
    4. KNR is the best regressor (against RFR and SVR, each feature and benchmark);
    5. tens of evaluations suffice (KNR with both features comes within ``within`` of the
       benchmark's best in a median of at most 50 evaluations on every benchmark).
    """
    aucs = auc_table(results)
    benches = list(dict.fromkeys(results["benchmark"]))
    features = [f for f in ("fim", "outputs", "both") if f in set(results["feature"])]
    present = set(zip(results["method"], results["feature"], strict=True))
    regressors = [m for m in regressors if any(m == pm for pm, _ in present)]
    rs = next(((m, f) for m, f in present if m == "random"), None)
    rows = []
    # 1
    final = aucs.copy()
    final["beats"] = final["final"] > final["benchmark"].map({b: r["relu"]
                                                              for b, r in reference.items()})
    by_key = final.groupby(["benchmark", "method", "feature"], sort=False)["beats"].mean()
    labelled: dict[tuple[str, str], float] = {}  # random search once, not once per feature
    for (b, m, f), share in by_key.items():
        labelled.setdefault((b, _label(m, f)), float(share))
    shares = pd.Series(labelled)
    worst = shares.min()
    rows.append({"claim": "1. every method, RS included, finds functions better than ReLU",
                 "comparisons": len(shares), "won (Holm p < 0.05)": int((shares >= 0.95).sum()),
                 "verdict": "holds" if worst >= 0.95 else
                 ("holds in part" if (shares >= 0.95).any() else "does not hold"),
                 "evidence": "; ".join(f"{b} {label}: {s:.0%} of trials"
                                       for (b, label), s in shares.items())})
    # 2
    if rs is not None:
        rows.append(_claim("2. every regression method beats RS, for every feature and "
                           "benchmark", [(b, (m, f), rs) for b in benches for m in regressors
                                         for f in features if (m, f) in present], aucs))
    # 3
    rows.append(_claim("3. both features beat either alone",
                       [(b, (m, "both"), (m, other)) for b in benches for m in regressors
                        for other in ("fim", "outputs")
                        if (m, "both") in present and (m, other) in present], aucs))
    # 4
    rows.append(_claim("4. KNR is the best regressor",
                       [(b, ("knr", f), (m, f)) for b in benches for f in features
                        for m in regressors if m != "knr" and ("knr", f) in present
                        and (m, f) in present], aucs))
    # 5
    budget = int(results["step"].max())
    near = _evaluations_to(results, {b: r["best"] - within for b, r in reference.items()},
                           budget, False)
    knr = near[(near["method"] == "knr") & (near["feature"] == "both")]
    medians = knr.groupby("benchmark")["step"].median()
    rows.append({"claim": f"5. tens of evaluations suffice (KNR, both: within {within} of the "
                          "best in a median of <= 50)",
                 "comparisons": len(medians), "won (Holm p < 0.05)": int((medians <= 50).sum()),
                 "verdict": "holds" if len(medians) and (medians <= 50).all() else
                 ("holds in part" if (medians <= 50).any() else "does not hold"),
                 "evidence": "; ".join(f"{b}: median {m:g} evaluations" if m <= budget else
                                       f"{b}: not reached in half of the trials"
                                       for b, m in medians.items())})
    return pd.DataFrame(rows)


def ablation_table(results: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """KNR variants against a baseline variant (``results["feature"]`` names the variant, e.g.
    ``"both, 5-D"``), per benchmark: mean AUC and final best with 95% intervals, and the paired
    AUC difference to ``baseline`` on common trials with a two-sided Wilcoxon test,
    Holm-corrected over the table (p-values to two significant digits)."""
    aucs = auc_table(results)
    rows, pvalues = [], []
    for (bench, variant), group in aucs.groupby(["benchmark", "feature"], sort=False):
        auc, auc_lo, auc_hi = _t_interval(group["auc"].to_numpy())
        final = group["final"].mean()
        row = {"benchmark": bench, "variant": variant, "trials": len(group),
               "mean AUC": round(auc, 4), "AUC 95% CI": f"[{auc_lo:.4f}, {auc_hi:.4f}]",
               "mean final best": round(final, 4)}
        if variant == baseline:
            row.update({"ΔAUC vs baseline": 0.0, "p (Holm)": float("nan")})
            pvalues.append(float("nan"))
        else:
            base = aucs[(aucs["benchmark"] == bench) & (aucs["feature"] == baseline)]
            merged = group.merge(base, on="trial", suffixes=("", "_base"))
            diff = (merged["auc"] - merged["auc_base"]).to_numpy()
            p = (stats.wilcoxon(diff).pvalue if len(diff) and np.any(diff != 0) else 1.0)
            row["ΔAUC vs baseline"] = round(float(diff.mean()), 4) if len(diff) else float("nan")
            pvalues.append(float(p))
        rows.append(row)
    table = pd.DataFrame(rows)
    tested = ~np.isnan(pvalues)
    adjusted = np.full(len(pvalues), np.nan)
    if tested.any():
        adjusted[tested] = holm(np.asarray(pvalues)[tested])
    # two significant digits: what a p-value means does not hang on the third
    table["p (Holm)"] = [float(f"{p:.2g}") if np.isfinite(p) else p for p in adjusted]
    return table


def stall_figure(replays: pd.DataFrame, agreement: pd.DataFrame,
                 title: str = "Why KNR on the union embedding stalls"):
    """Three panels by evaluation, one line per benchmark and method: (1) the mean gap between
    the best accuracy so far and the surrogate's highest score (``replays`` of
    :func:`aquasurf_core.search.diagnosis.replay` with ``benchmark`` and ``method`` columns);
    (2) the share of picks that improve on the best so far (mean over trials); (3) the share of
    trial pairs that pick the same function (``agreement`` of
    :func:`~aquasurf_core.search.diagnosis.sequence_agreement`)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.07, subplot_titles=[
        "best so far − highest predicted score", "share of picks that improve the best",
        "share of trial pairs picking the same function"])
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    lines = list(dict.fromkeys(zip(replays["benchmark"], replays["method"], strict=True)))
    for i, (bench, method) in enumerate(lines):
        label = f"{bench}: {METHOD_LABELS.get(method, method)}"
        colour = palette[i % len(palette)]
        sel = replays[(replays["benchmark"] == bench) & (replays["method"] == method)]
        by_step = sel.assign(improves=sel["val_acc"] > sel["best_so_far"]).groupby("step")
        fig.add_scatter(x=by_step["gap"].mean().index, y=by_step["gap"].mean(), name=label,
                        legendgroup=label, line=dict(color=colour), row=1, col=1)
        improves = by_step["improves"].mean().rolling(5, min_periods=1).mean()
        fig.add_scatter(x=improves.index, y=improves, name=label, legendgroup=label,
                        showlegend=False, line=dict(color=colour), row=1, col=2)
        agree = agreement[(agreement["benchmark"] == bench) & (agreement["method"] == method)]
        fig.add_scatter(x=agree["step"], y=agree["same_pick"], name=label, legendgroup=label,
                        showlegend=False, line=dict(color=colour), row=1, col=3)
    fig.update_xaxes(title_text="evaluations")
    fig.update_yaxes(title_text="accuracy", row=1, col=1)
    fig.update_yaxes(title_text="share (5-step mean)", row=1, col=2)
    fig.update_yaxes(title_text="share", row=1, col=3)
    fig.update_layout(title=title, width=1400, height=450)
    return fig


def heldout_table(choice: pd.DataFrame, report: pd.DataFrame,
                  reference: Mapping[str, Mapping[str, float]],
                  baseline: tuple[str, str] = ("both", "knr"), within: float = 0.005,
                  target: int = 30) -> pd.DataFrame:
    """The held-out verdicts of a chosen default: for each row of ``choice``
    (:func:`aquasurf_core.search.selection.held_out_choice`: held-out benchmark, feature,
    method) the reporting trials of ``report`` (tidy results on trials not used for the
    choice, holding the chosen ``(feature, method)`` and ``baseline`` on each held-out
    benchmark): mean AUC of both, the paired difference with a one-sided Wilcoxon p-value
    (Holm-corrected over the held-out benchmarks), the median evaluations to come within
    ``within`` of the benchmark's best (95% bootstrap interval, a trial that never does counts
    as ``budget + 1``), and whether it is at most ``target``."""
    aucs = auc_table(report)
    budget = int(report["step"].max())
    near = _evaluations_to(report, {b: r["best"] - within for b, r in reference.items()},
                           budget, False)
    rows, pvalues = [], []
    for _, pick in choice.iterrows():
        bench = pick["held out"]
        chosen = (pick["method"], pick["feature"])
        delta, p, n = _paired(aucs, bench, chosen, baseline[::-1])
        pvalues.append(p)
        row = {"held out": bench, "chosen (tuned on the others)": _label(*chosen),
               "trials": n}
        for name, (method, feature) in (("chosen", chosen), ("baseline", baseline[::-1])):
            sel = aucs[(aucs["benchmark"] == bench) & (aucs["method"] == method)
                       & (aucs["feature"] == feature)]
            row[f"AUC {name}"] = round(float(sel["auc"].mean()), 4)
        row["ΔAUC vs " + _label(*baseline[::-1])] = round(delta, 4)
        for name, (method, feature) in (("chosen", chosen), ("baseline", baseline[::-1])):
            steps = near[(near["benchmark"] == bench) & (near["method"] == method)
                         & (near["feature"] == feature)]["step"].to_numpy()
            row[f"evaluations to within {within} of best, {name} (median)"] = \
                _median_text(steps, budget)
            row[f"95% CI, {name}"] = _median_interval(steps, budget)
            if name == "chosen":
                row[f"median <= {target}"] = bool(len(steps) and np.median(steps) <= target)
        rows.append(row)
    table = pd.DataFrame(rows)
    table.insert(table.columns.get_loc("ΔAUC vs " + _label(*baseline[::-1])) + 1, "p (Holm)",
                 [float(f"{q:.2g}") for q in holm(pvalues)] if pvalues else [])
    return table
