"""Figures and tables of notebook 03: the surrogate's space (paper Section 4, Figure 4; Appendix D
"UMAP Settings"; the appendix figure of FIM embeddings with the default ``n_neighbors``).

* :func:`fig4_embeddings` -- a grid of embeddings, one row per feature (FIM, outputs, both)
  and one column per benchmark, points coloured by validation accuracy, the six functions the
  paper marks (ELU, -ELU, Swish, -Swish, ReLU, tanh) drawn as triangles in dark colours
  (:func:`mark_style`; f and -f one hue, up and down triangles) and named by arrow labels that
  :func:`place_labels` keeps apart: a function and its negation are often neighbours by their
  Fisher spectra, the paper's point, so their labels would otherwise overlap.
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

__all__ = ["FEATURE_LABELS", "MARKED", "MARK_COLOURS", "distance_examples",
           "feature_comparisons", "fig4_embeddings", "label_box", "mark_style", "place_labels",
           "predictiveness_table"]

#: The six functions marked in Figure 4 (label -> function name).
MARKED: dict[str, str] = {"ELU": "elu(x)", "−ELU": "negative(elu(x))", "Swish": "swish(x)",
                          "−Swish": "negative(swish(x))", "ReLU": "relu(x)", "tanh": "tanh(x)"}
#: Marker and label colours of the marked functions, dark enough for text on white (contrast
#: ratio 4.5:1 or more); a negation ("−f") takes f's colour and differs by its symbol
#: (:func:`mark_style`). Labels without a colour take :data:`MARK_FALLBACK_COLOURS` in turn.
MARK_COLOURS = {"ELU": "#1b7837", "Swish": "#6a3d9a", "ReLU": "#b2182b", "tanh": "#8c510a"}
MARK_FALLBACK_COLOURS = ("#1f4e79", "#7f2704", "#3f3f3f", "#00441b")
FEATURE_LABELS = {"fim": "FIM eigenvalues", "outputs": "outputs", "both": "both"}
#: Size of the marked functions' labels (CSS pixels).
LABEL_FONT = 11
# the label placement's model of a text box (CSS pixels per character, line height, padding),
# of a marker (half its extent, outline included), and the arrows it tries: lengths shortest
# first, and directions (screen pixels, y down) clockwise from straight up
_CHAR_PX, _LINE_PX, _PAD_PX, _MARKER_PX = 0.62 * LABEL_FONT, 1.4 * LABEL_FONT, 2.0, 8.0
_RADII = (28.0, 44.0, 62.0, 84.0)
_DIRECTIONS = np.array([(np.sin(a), -np.cos(a))
                        for a in np.deg2rad([0, 45, -45, 90, -90, 135, -135, 180])])
# the panels' outer margins, fixed (autoexpand off) so that pixels per data unit are known
_MARGIN = dict(l=30, r=130, t=80, b=70)


def mark_style(label: str, index: int) -> tuple[str, str]:
    """``(colour, marker symbol)`` of the ``index``-th marked function: a label "−f" (or
    "-f") is drawn like f with a downward triangle, others with an upward one."""
    base = label.removeprefix("−").removeprefix("-")
    negated = base != label
    colour = MARK_COLOURS.get(base, MARK_FALLBACK_COLOURS[index % len(MARK_FALLBACK_COLOURS)])
    return colour, "triangle-down" if negated else "triangle-up"


def label_box(centre: Sequence[float], label: str) -> np.ndarray:
    """The estimated text box ``[x0, y0, x1, y1]`` (CSS pixels) of ``label`` drawn at size
    :data:`LABEL_FONT` centred at ``centre``."""
    half_w = (_CHAR_PX * len(label)) / 2 + _PAD_PX
    half_h = _LINE_PX / 2 + _PAD_PX
    return np.array([centre[0] - half_w, centre[1] - half_h, centre[0] + half_w,
                     centre[1] + half_h])


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Area of the intersection of two boxes ``[x0, y0, x1, y1]``."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _crosses(start: np.ndarray, end: np.ndarray, box: np.ndarray, samples: int = 24) -> bool:
    """Whether the segment from ``start`` to ``end`` passes through ``box`` (checked at
    ``samples`` evenly spaced points, the slow obvious way)."""
    t = np.linspace(0, 1, samples)[:, None]
    at = start + t * (end - start)
    return bool(np.any((at[:, 0] > box[0]) & (at[:, 0] < box[2]) & (at[:, 1] > box[1])
                       & (at[:, 1] < box[3])))


def place_labels(points: np.ndarray, labels: Sequence[str], size: tuple[float, float]
                 ) -> np.ndarray:
    """Offsets ``[n, 2]`` (CSS pixels, y down) from each point to the centre of its label, so
    that the labels (boxes of :func:`label_box`) overlap neither each other nor any point's
    marker, no arrow (point to label centre) crosses another label or marker, and the labels stay
    inside the panel ``size = (width, height)``; ``points`` are the markers' pixel positions
    in the panel (``[n, 2]``, y down).

    Greedy: the most crowded points first, each taking the first offset (shortest arrow, then
    clockwise from straight up) free of conflicts; when none is free, the one with the
    smallest cost: overlapping area, area outside the panel tenfold, and 100 per crossing
    arrow. Raises ``ValueError`` when ``points`` and ``labels`` differ in length."""
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(points) != len(labels):
        raise ValueError(f"{len(points)} points but {len(labels)} labels")
    width, height = size
    markers = [np.r_[p - _MARKER_PX, p + _MARKER_PX] for p in points]
    gaps = np.linalg.norm(points[:, None] - points[None], axis=-1)
    crowding = (gaps < 3 * _RADII[0]).sum(axis=1)
    offsets = np.zeros_like(points)
    placed: list[np.ndarray] = []
    done: list[int] = []
    for i in np.argsort(-crowding, kind="stable"):
        best, best_cost = None, np.inf
        for radius in _RADII:
            for direction in _DIRECTIONS:
                offset = radius * direction
                box = label_box(points[i] + offset, labels[i])
                inside = (min(box[2], width) - max(box[0], 0)) * (min(box[3], height)
                                                                  - max(box[1], 0))
                area = (box[2] - box[0]) * (box[3] - box[1])
                cost = 10 * (area - max(0.0, inside)) + sum(_overlap(box, b) for b in placed)
                cost += sum(_overlap(box, m) for m in markers)
                cost += 100 * sum(_crosses(points[i], points[i] + offset, b) for b in placed)
                cost += 100 * sum(_crosses(points[i], points[i] + offset, m)
                                  for j, m in enumerate(markers) if j != i)
                cost += 100 * sum(_crosses(points[j], points[j] + offsets[j], box)
                                  for j in done)
                if cost < best_cost:
                    best, best_cost = offset, cost
                if cost == 0:
                    break
            if best_cost == 0:
                break
        offsets[i] = best
        placed.append(label_box(points[i] + best, labels[i]))
        done.append(i)
    return offsets


def _padded(values: np.ndarray, pad: float = 0.08) -> list[float]:
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    span = hi - lo if hi > lo else 1.0
    return [lo - pad * span, hi + pad * span]


def fig4_embeddings(benchmarks: Mapping[str, Benchmark],
                    embeddings: Mapping[str, Mapping[str, Embedding]],
                    kinds: Sequence[str] = ("fim", "outputs", "both"),
                    marked: Mapping[str, str] = MARKED, title: str | None = None):
    """Rows ``kinds``, columns the benchmarks; ``embeddings[bench][kind]``. Marked functions
    are located in each benchmark by name or outputs
    (:meth:`~aquasurf_core.bench.table.Benchmark.locate`) and drawn when embedded, as
    triangles (:func:`mark_style`) in the legend and labelled in the panel by an arrow, the
    labels placed apart (:func:`place_labels`) so that a function and its negation, often
    neighbours by their Fisher spectra, are both named."""
    from plotly.subplots import make_subplots

    names = list(benchmarks)
    width, height = 330 * len(names) + 150, 300 * len(kinds) + 120
    in_legend: set[str] = set()
    fig = make_subplots(rows=len(kinds), cols=len(names), horizontal_spacing=0.03,
                        vertical_spacing=0.05,
                        column_titles=[f"Act-Bench-Mini {n}" for n in names],
                        row_titles=[FEATURE_LABELS.get(k, k) for k in kinds])
    styles = [mark_style(label, k) for k, label in enumerate(marked)]
    plot_w = width - _MARGIN["l"] - _MARGIN["r"]
    plot_h = height - _MARGIN["t"] - _MARGIN["b"]
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
            x_range, y_range = _padded(emb.coords[:, 0]), _padded(emb.coords[:, 1])
            fig.update_xaxes(range=x_range, row=r + 1, col=c + 1)
            fig.update_yaxes(range=y_range, row=r + 1, col=c + 1)
            shown = []  # (label, style, x, y) of the marked functions embedded here
            for k, (label, row) in enumerate(zip(marked, located, strict=True)):
                at = emb.position(int(row)) if row >= 0 else -1
                if at >= 0:
                    shown.append((label, styles[k], *emb.coords[at, :2]))
            if not shown:
                continue
            axis = fig.get_subplot(r + 1, c + 1)
            panel_w = plot_w * (axis.xaxis.domain[1] - axis.xaxis.domain[0])
            panel_h = plot_h * (axis.yaxis.domain[1] - axis.yaxis.domain[0])
            pixels = np.array([[(x - x_range[0]) / (x_range[1] - x_range[0]) * panel_w,
                                (y_range[1] - y) / (y_range[1] - y_range[0]) * panel_h]
                               for *_, x, y in shown])
            offsets = place_labels(pixels, [s[0] for s in shown], (panel_w, panel_h))
            for (label, (colour, symbol), x, y), (dx, dy) in zip(shown, offsets, strict=True):
                fig.add_scatter(x=[x], y=[y], mode="markers", hovertext=label,
                                hoverinfo="text",
                                marker=dict(symbol=symbol, size=12, color=colour,
                                            line=dict(width=1.5, color="white")),
                                name=label, legendgroup=label,
                                showlegend=label not in in_legend, row=r + 1, col=c + 1)
                in_legend.add(label)
                fig.add_annotation(x=x, y=y, ax=float(dx), ay=float(dy), text=label,
                                   showarrow=True, arrowhead=0, arrowwidth=1,
                                   arrowcolor=colour, standoff=6,
                                   font=dict(size=LABEL_FONT, color=colour),
                                   bgcolor="rgba(255,255,255,0.85)", borderpad=1,
                                   row=r + 1, col=c + 1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(coloraxis=dict(colorscale="Viridis", cmin=0.1,
                                     colorbar=dict(title="val acc", x=1.04)),
                      width=width, height=height,
                      title=title or "UMAP embeddings of the functions with valid spectra "
                                     "(Figure 4)",
                      legend=dict(orientation="h", y=-0.02, yanchor="top"),
                      margin=dict(**_MARGIN, autoexpand=False))
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
