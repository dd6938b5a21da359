"""Figures and tables of notebook 03: the surrogate's space (paper Section 4, Figure 4; Appendix D
"UMAP Settings"; the appendix figure of FIM embeddings with the default ``n_neighbors``).

* :func:`fig4_embeddings` -- a grid of embeddings, one row per feature (FIM, outputs, both)
  and one column per benchmark, points coloured by validation accuracy, the six functions the
  paper marks (ELU, -ELU, Swish, -Swish, ReLU, tanh) drawn as labelled triangles.
* :func:`predictiveness_table` -- for every benchmark and feature, how well a function's three
  nearest neighbours predict its validation accuracy, on the 2-D embedding and, as a control,
  on the raw features with the paper's distances
  (:mod:`aquasurf_core.embedding.predictiveness`), on the same functions (valid spectra);
  :func:`feature_comparisons` the paired differences behind the paper's ordering
  both > outputs > FIM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from aquasurf_core.bench.table import Benchmark
from aquasurf_core.embedding.distances import (
    raw_distance_matrices,
)
from aquasurf_core.embedding.embeddings import Embedding, embedding_rows
from aquasurf_core.embedding.predictiveness import (
    neighbour_predictions,
    paired_differences,
    prediction_scores,
)

__all__ = ["FEATURE_LABELS", "MARKED", "distance_examples", "feature_comparisons",
           "fig4_embeddings", "predictiveness_table"]

#: The six functions marked in Figure 4 (label -> function name).
MARKED: dict[str, str] = {"ELU": "elu(x)", "−ELU": "negative(elu(x))", "Swish": "swish(x)",
                          "−Swish": "negative(swish(x))", "ReLU": "relu(x)", "tanh": "tanh(x)"}
_MARK_COLOURS = ["#2ca02c", "#98df8a", "#9467bd", "#c5b0d5", "#d62728", "#ff7f0e"]
FEATURE_LABELS = {"fim": "FIM eigenvalues", "outputs": "outputs", "both": "both"}


def fig4_embeddings(benchmarks: Mapping[str, Benchmark],
                    embeddings: Mapping[str, Mapping[str, Embedding]],
                    kinds: Sequence[str] = ("fim", "outputs", "both"),
                    marked: Mapping[str, str] = MARKED, title: str | None = None):
    """Rows ``kinds``, columns the benchmarks; ``embeddings[bench][kind]``. Marked functions
    are located in each benchmark by name or outputs
    (:meth:`~aquasurf_core.bench.table.Benchmark.locate`) and drawn when embedded."""
    from plotly.subplots import make_subplots

    names = list(benchmarks)
    in_legend: set[str] = set()
    fig = make_subplots(rows=len(kinds), cols=len(names), horizontal_spacing=0.03,
                        vertical_spacing=0.05,
                        column_titles=[f"Act-Bench-Mini {n}" for n in names],
                        row_titles=[FEATURE_LABELS.get(k, k) for k in kinds])
    for c, name in enumerate(names):
        bench = benchmarks[name]
        located, _ = bench.locate(list(marked.values()))
        for r, kind in enumerate(kinds):
            emb = embeddings[name][kind]
            val = bench.table["val_acc"].to_numpy()[emb.rows]
            fig.add_scatter(x=emb.coords[:, 0], y=emb.coords[:, 1], mode="markers",
                            marker=dict(size=3, color=val, coloraxis="coloraxis"),
                            text=[f"{n}<br>val acc {v:.3f}" for n, v in zip(emb.names, val,
                                                                             strict=True)],
                            hoverinfo="text", showlegend=False, row=r + 1, col=c + 1)
            for k, (label, row) in enumerate(zip(marked, located, strict=True)):
                at = emb.position(int(row)) if row >= 0 else -1
                if at < 0:
                    continue
                fig.add_scatter(x=[emb.coords[at, 0]], y=[emb.coords[at, 1]],
                                mode="markers+text", text=[label], textposition="top center",
                                textfont=dict(size=10, color=_MARK_COLOURS[k]),
                                marker=dict(symbol="triangle-up", size=11,
                                            color=_MARK_COLOURS[k],
                                            line=dict(width=1, color="black")),
                                name=label, legendgroup=label,
                                showlegend=label not in in_legend, row=r + 1, col=c + 1)
                in_legend.add(label)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(coloraxis=dict(colorscale="Viridis", cmin=0.1,
                                     colorbar=dict(title="val acc")),
                      width=330 * len(names) + 150, height=300 * len(kinds) + 120,
                      title=title or "UMAP embeddings of the functions with valid spectra "
                                     "(Figure 4)",
                      legend=dict(orientation="h", y=-0.03), margin=dict(t=80))
    return fig


def _predictions(bench: Benchmark, embeddings: Mapping[str, Embedding], *, k: int, folds: int,
                 seed: int, raw: bool) -> dict[tuple[str, str], np.ndarray]:
    rows = embedding_rows(bench)
    target = bench.table["val_acc"].to_numpy()[rows]
    preds = {}
    for kind, emb in embeddings.items():
        if emb.rows.tolist() != rows.tolist():
            raise ValueError(f"the {kind} embedding of {bench.name!r} does not cover the "
                             "functions with valid spectra")
        preds["UMAP 2-D", kind] = neighbour_predictions(target, emb.coords, k=k, folds=folds,
                                                        seed=seed)
    if raw:
        for kind, d in raw_distance_matrices(bench)[1].items():
            preds["raw (Eq. 2/3)", kind] = neighbour_predictions(target, distances=d, k=k,
                                                                 folds=folds, seed=seed)
    return preds


def predictiveness_table(benchmarks: Mapping[str, Benchmark],
                         embeddings: Mapping[str, Mapping[str, Embedding]], *, k: int = 3,
                         folds: int = 10, resamples: int = 1000, seed: int = 0,
                         raw: bool = True) -> tuple[pd.DataFrame, dict]:
    """One row per benchmark, representation (UMAP 2-D, raw) and feature: functions, Spearman
    rho and R^2 of the cross-validated k-NN predictions with 95% bootstrap intervals. Returns
    ``(table, predictions)``; ``predictions[bench][(representation, feature)]`` feed
    :func:`feature_comparisons`."""
    rows, all_preds = [], {}
    for name, bench in benchmarks.items():
        truth = bench.table["val_acc"].to_numpy()[embedding_rows(bench)]
        preds = _predictions(bench, embeddings[name], k=k, folds=folds, seed=seed, raw=raw)
        all_preds[name] = (truth, preds)
        for (representation, kind), pred in preds.items():
            s = prediction_scores(truth, pred, resamples=resamples, seed=seed)
            rows.append({"benchmark": name, "representation": representation,
                         "feature": FEATURE_LABELS[kind], "functions": s["n"],
                         "spearman": s["spearman"], "spearman 95% CI":
                             f"[{s['spearman_lo']:.2f}, {s['spearman_hi']:.2f}]",
                         "R²": s["r2"], "R² 95% CI": f"[{s['r2_lo']:.2f}, {s['r2_hi']:.2f}]"})
    return pd.DataFrame(rows), all_preds


def feature_comparisons(predictions: dict, *, resamples: int = 1000, seed: int = 0,
                        representation: str = "UMAP 2-D") -> pd.DataFrame:
    """The paper's ordering as paired differences on the same bootstrap draws: both - outputs
    and outputs - FIM (Spearman and R^2, 95% intervals), per benchmark, and a verdict: "holds"
    when the whole interval of the Spearman difference is above 0, "reversed" when below,
    "no difference" otherwise."""
    rows = []
    for name, (truth, preds) in predictions.items():
        chosen = {kind: pred for (rep, kind), pred in preds.items() if rep == representation}
        for diff in paired_differences(truth, chosen, [("both", "outputs"), ("outputs", "fim")],
                                       resamples=resamples, seed=seed):
            lo, hi = diff["Δ spearman lo"], diff["Δ spearman hi"]
            verdict = "holds" if lo > 0 else "reversed" if hi < 0 else "no difference"
            rows.append({"benchmark": name,
                         "comparison": f"{FEATURE_LABELS[diff['a']]} − "
                                       f"{FEATURE_LABELS[diff['b']]}",
                         "Δ spearman": diff["Δ spearman"],
                         "Δ spearman 95% CI": f"[{lo:.3f}, {hi:.3f}]",
                         "Δ R²": diff["Δ r2"],
                         "Δ R² 95% CI": f"[{diff['Δ r2 lo']:.3f}, {diff['Δ r2 hi']:.3f}]",
                         "paper's claim (a > b)": verdict})
    return pd.DataFrame(rows)


def distance_examples(bench: Benchmark, pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Eq. 2 and Eq. 3 between the functions of each pair (located by name or outputs), each
    also as the percentile among all pairwise distances of the benchmark's functions with valid
    spectra: the paper's point that a function and its negation are near by their Fisher
    spectra and far by their outputs. Pairs not embedded are skipped."""
    rows, matrices = raw_distance_matrices(bench)
    d_fim, d_out = matrices["fim"], matrices["outputs"]
    upper = np.triu_indices(len(rows), 1)
    out = []
    for f, g in pairs:
        (a, b), _ = bench.locate([f, g])
        ia, ib = (int(np.searchsorted(rows, r)) if r in rows else -1 for r in (a, b))
        if ia < 0 or ib < 0:
            continue
        row = {"f": f, "g": g}
        for label, d in (("Eq. 2 (FIM)", d_fim), ("Eq. 3 (outputs)", d_out)):
            row[label] = float(d[ia, ib])
            row[f"{label} percentile"] = float(100 * np.mean(d[upper] < d[ia, ib]))
        out.append(row)
    return pd.DataFrame(out)
