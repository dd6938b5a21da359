"""Figures and tables of notebook 01: the search space (paper Section 2, Appendix B) and
Figure 3 (UMAP of the unique 3-node functions by their outputs, with the functions UMAP's
inverse transform reconstructs between ReLU, ELU, Swish and tanh).

Figure 3's grid: the four corners are the embedded positions of ReLU (top left), ELU (top
right), Swish (bottom left) and tanh (bottom right); :func:`aquasurf_core.embedding.bilinear_grid`
interpolates between them and ``reducer.inverse_transform`` maps each grid point back to an
output vector, drawn in :func:`fig3_reconstructions` (corner panels show the true function in
grey beneath the reconstruction).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from aquasurf_core.paper import SPACE_COUNTS
from aquasurf_core.space.operators import (
    BINARY_OPERATORS,
    EXTENSION_UNARY_OPERATORS,
    NARY_OPERATORS,
    UNARY_OPERATORS,
)
from aquasurf_core.space.schemas import FOUR_NODE_SCHEMAS, THREE_NODE_SCHEMA, count_schema
from aquasurf_core.space.store import SpaceStore

__all__ = [
    "CORNERS",
    "corner_positions",
    "count_tables",
    "embedding_subset",
    "equivalent_name_tables",
    "fig3_embedding",
    "fig3_reconstructions",
    "operator_table",
]

#: Figure 3's corner functions in grid order (top left, top right, bottom left, bottom right),
#: with their labels, colours and label positions.
CORNERS: dict[str, tuple[str, str, str]] = {
    "relu(x)": ("ReLU", "#d62728", "top right"),
    "elu(x)": ("ELU", "#2ca02c", "top left"),
    "swish(x)": ("Swish", "#9467bd", "bottom right"),
    "tanh(x)": ("tanh", "#ff7f0e", "bottom left"),
}


def operator_table() -> pd.DataFrame:
    """Every operator with its kind and definition (paper and CoAtNet extension)."""
    rows = []
    for kind, table in [("unary", UNARY_OPERATORS),
                        ("unary (CoAtNet extension)", EXTENSION_UNARY_OPERATORS),
                        ("binary", BINARY_OPERATORS), ("n-ary", NARY_OPERATORS)]:
        rows += [{"kind": kind, "name": op.name, "definition": op.formula} for op in table]
    return pd.DataFrame(rows)


def count_tables(spaces: Mapping[str, SpaceStore]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(schemas, summary)``: the functions of every schema of the two spaces, and per built
    space its functions and unique functions beside the paper's
    (:data:`aquasurf_core.paper.SPACE_COUNTS`) with the relative gap and the build time."""
    schema_rows = [{"space": "3-node" if schema == THREE_NODE_SCHEMA else "4-node",
                    "schema": schema, "functions": count_schema(schema)}
                   for schema in [THREE_NODE_SCHEMA, *FOUR_NODE_SCHEMAS]]
    summary_rows = []
    for label, store in spaces.items():
        paper_functions, paper_unique = SPACE_COUNTS[label]
        summary_rows.append({
            "space": label, "functions": store.n_functions, "unique": store.n_unique,
            "paper functions": paper_functions, "paper unique": paper_unique,
            "unique vs paper": f"{100 * (store.n_unique - paper_unique) / paper_unique:+.2f}%",
            "build seconds": round(store.manifest["seconds"]["total"], 1),
        })
    return pd.DataFrame(schema_rows), pd.DataFrame(summary_rows)


def equivalent_name_tables(store: SpaceStore, familiar: Sequence[str], largest: int = 8
                           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(largest classes, familiar functions)``: the ``largest`` classes of the space by
    number of names, and the class of each familiar function (found by its outputs when the
    name is not in the space) with its size and first equivalent names."""
    unique = store.unique
    top = unique.sort_values("count", ascending=False).head(largest)
    largest_table = pd.DataFrame({
        "representative": top["representative"],
        "names": top["count"],
        "some equivalent names": [", ".join(list(names)[:4]) + (" ..." if len(names) > 4 else "")
                                  for names in top["equivalent_names"]],
    })
    ids = store.class_of(familiar)
    familiar_table = pd.DataFrame({
        "function": list(familiar),
        "class id": ids,
        "names in the 3-node space": [len(unique.loc[i, "equivalent_names"]) for i in ids],
        "equivalent names": [", ".join(list(unique.loc[i, "equivalent_names"])[:5])
                             for i in ids],
    })
    return largest_table, familiar_table


def embedding_subset(n_total: int, include: Sequence[int], size: int | None,
                     seed: int) -> np.ndarray:
    """Sorted row indices to embed: all ``n_total`` rows when ``size`` is ``None`` or not
    smaller, else the rows ``include`` plus ``size - len(include)`` others drawn without
    replacement with ``numpy.random.default_rng(seed)``."""
    include = np.unique(np.asarray(include, dtype=np.int64))
    if size is None or size >= n_total:
        return np.arange(n_total)
    if size < len(include) or (len(include) and (include.min() < 0 or include.max() >= n_total)):
        raise ValueError(f"cannot take {size} of {n_total} rows including {include.tolist()}")
    others = np.setdiff1d(np.arange(n_total), include)
    drawn = np.random.default_rng(seed).choice(others, size - len(include), replace=False)
    return np.sort(np.concatenate([include, drawn]))


def corner_positions(embedding: np.ndarray, subset: np.ndarray,
                     rows: Sequence[int]) -> np.ndarray:
    """Embedded coordinates (``[len(rows), d]``) of the given rows, where ``embedding[k]`` is
    the embedding of row ``subset[k]`` (``subset`` sorted). Raises ``ValueError`` for a row
    that was not embedded."""
    subset = np.asarray(subset)
    where = np.searchsorted(subset, rows)
    bad = [r for r, w in zip(rows, where, strict=True) if w >= len(subset) or subset[w] != r]
    if bad:
        raise ValueError(f"rows {bad} are not in the embedded subset")
    return np.asarray(embedding)[where]


def fig3_embedding(embedding: np.ndarray, names: Sequence[str], grid_points: np.ndarray,
                   corners: Mapping[str, np.ndarray], title: str):
    """Figure 3, left: the embedded functions, the interpolation points and the labelled
    corner functions (``corners``: function name -> position, names of :data:`CORNERS`)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_scattergl(x=embedding[:, 0], y=embedding[:, 1], mode="markers", text=list(names),
                      hoverinfo="text", marker=dict(size=4, color="rgba(70,110,180,0.45)"),
                      name="unique functions")
    fig.add_scatter(x=grid_points[:, 0], y=grid_points[:, 1], mode="markers",
                    name="interpolation points", marker=dict(symbol="x", size=9, color="black"))
    for name, (px, py) in corners.items():
        label, color, where = CORNERS[name]
        fig.add_scatter(x=[px], y=[py], mode="markers+text", text=[label], textposition=where,
                        textfont=dict(size=15, color=color),
                        marker=dict(size=14, color=color, line=dict(width=1, color="black")),
                        name=name)
    fig.update_layout(title=title, xaxis_title="UMAP 1", yaxis_title="UMAP 2", width=900,
                      height=700)
    return fig


def fig3_reconstructions(reconstructed: np.ndarray, xs: np.ndarray,
                         true_curves: Mapping[str, np.ndarray], steps: int):
    """Figure 3, right: a ``steps x steps`` grid of reconstructed functions (row-major, as
    :func:`~aquasurf_core.embedding.bilinear_grid` orders them) on the inputs ``xs``; the four
    corner panels draw the true corner function (``true_curves``: label -> values) in grey
    beneath the reconstruction in red. Every panel has the same axes, ticked on the left
    column and the bottom row, the y range covering every curve."""
    from plotly.subplots import make_subplots

    if len(reconstructed) != steps * steps:
        raise ValueError(f"expected {steps * steps} reconstructions, got {len(reconstructed)}")
    labels = [label for label, _, _ in CORNERS.values()]
    corner_at = dict(zip([0, steps - 1, steps * (steps - 1), steps * steps - 1], labels,
                         strict=True))
    fig = make_subplots(rows=steps, cols=steps, shared_xaxes=True, horizontal_spacing=0.02,
                        vertical_spacing=0.03)
    for k, curve in enumerate(reconstructed):
        row, col = divmod(k, steps)
        corner = corner_at.get(k)
        if corner:
            fig.add_scatter(x=xs, y=true_curves[corner], row=row + 1, col=col + 1,
                            showlegend=False, line=dict(color="rgba(0,0,0,0.35)", width=6))
        fig.add_scatter(x=xs, y=curve, row=row + 1, col=col + 1, showlegend=False,
                        line=dict(color="black" if corner is None else "#d62728", width=2))
        if corner:
            suffix = k + 1 if k else ""
            fig.add_annotation(text=corner, xref=f"x{suffix} domain", yref=f"y{suffix} domain",
                               x=0.05, y=0.95, showarrow=False,
                               font=dict(size=11, color="#d62728"))
    # one y range for every panel, covering every curve: the panels compare at a glance
    values = np.concatenate([np.ravel(reconstructed), *map(np.ravel, true_curves.values())])
    values = values[np.isfinite(values)].astype(float)
    lo, hi = (float(values.min()), float(values.max())) if len(values) else (-1.0, 1.0)
    pad = 0.06 * (hi - lo) if hi > lo else 1.0
    fig.update_yaxes(range=[lo - pad, hi + pad], matches="y", nticks=4,
                     tickfont=dict(size=10))
    fig.update_yaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=True, col=1)
    span = float(np.max(xs) - np.min(xs))  # padded: end ticks of neighbours stay apart
    fig.update_xaxes(range=[float(np.min(xs)) - 0.05 * span, float(np.max(xs)) + 0.05 * span],
                     nticks=5, tickfont=dict(size=10))
    fig.update_xaxes(title_text="x", title_standoff=2, row=steps)
    fig.update_yaxes(title_text="f(x)", title_standoff=2, col=1, row=(steps + 1) // 2)
    fig.update_layout(title="Inverse-transform reconstructions at the crosses (corners: red, "
                            "with the true function in grey)",
                      width=900, height=820, margin=dict(l=60, r=20, t=60, b=50))
    return fig
