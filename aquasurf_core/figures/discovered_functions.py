"""Figures 8 and 9 of notebook 05: what the searches discovered (paper Section 7).

* Figure 8 (:func:`fig8_functions`): (a) the top discovered functions of each search, (b)
  novel ones. The paper picks (b) by hand ("selected novel activation functions ... all of
  these outperformed ReLU and are distinct from existing activation functions"); here the pick
  is a rule (:func:`novel_functions`): among the functions a search evaluated (its own seed)
  with a validation accuracy above ReLU's, those farthest from every baseline by Eq. 3 (the
  root-mean-square difference of the outputs on the 1,000 normal inputs, cleaned as for the
  embeddings). Each panel draws the function on [-5, 5] with its nearest baseline dashed.
* Figure 9 (:func:`fig9_usage`): the best discovered function's curve with the histograms of
  its inputs, at initialisation and after training, over all sites and site by site
  (:func:`aquasurf_core.search.usage.activation_usage`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from aquasurf_core.embedding.distances import output_distance_matrix
from aquasurf_core.features.outputs import clean_outputs, output_features
from aquasurf_core.search.usage import ActivationUsage
from aquasurf_core.space.baselines import BASELINE_FUNCTIONS
from aquasurf_core.space.evaluation import evaluate_functions

__all__ = ["fig8_functions", "fig9_usage", "nearest_baselines", "novel_functions"]

#: Where the curves are drawn (the paper's plots use [-5, 5]).
CURVE_RANGE = (-5.0, 5.0)


def nearest_baselines(names: Sequence[str],
                      baselines: Sequence[str] = BASELINE_FUNCTIONS) -> pd.DataFrame:
    """For each function, the nearest of ``baselines`` by Eq. 3 (cleaned outputs) and the
    distance: columns ``name``, ``nearest baseline``, ``distance``."""
    names = list(names)
    if not names:
        return pd.DataFrame(columns=["name", "nearest baseline", "distance"])
    d = output_distance_matrix(clean_outputs(output_features(names)),
                               clean_outputs(output_features(list(baselines))))
    nearest = d.argmin(axis=1)
    return pd.DataFrame({"name": names, "nearest baseline": [baselines[i] for i in nearest],
                         "distance": d[np.arange(len(names)), nearest]})


def novel_functions(results: pd.DataFrame, k: int = 6, *, seed: int = 0,
                    reference: str = "relu(x)") -> pd.DataFrame:
    """Figure 8b's rule (module docstring): the ``k`` functions evaluated by the search (runs
    of ``seed``, baselines excluded) with a validation accuracy above ``reference``'s, farthest
    from every baseline. Columns ``name``, ``val_acc``, ``nearest baseline``, ``distance``."""
    runs = results[results["seed"] == seed]
    if "phase" in runs:
        runs = runs[runs["phase"] == "search"]
    ref = runs.loc[runs["baseline"] == reference, "val_acc"]
    if ref.empty:
        raise ValueError(f"the search has no run of {reference} with seed {seed}")
    better = runs[(runs["baseline"] == "") & (runs["val_acc"] > ref.max())]
    better = better.drop_duplicates("class_id")
    near = nearest_baselines(better["name"].tolist())
    out = better[["name", "val_acc"]].reset_index(drop=True).join(
        near.drop(columns="name"))
    return out.sort_values(["distance", "val_acc"], ascending=False,
                           kind="stable").head(k).reset_index(drop=True)


def fig8_functions(rows: Mapping[str, Sequence[str]], *, columns: int = 3):
    """Figure 8: one row of panels per entry of ``rows`` (``{label: function names}``, e.g.
    ``"(a) digits-cnn: top"`` and ``"(b) digits-cnn: novel"``), at most ``columns`` functions
    each; every function drawn with its nearest baseline dashed."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    grid = [(r, c, label, name) for r, (label, names) in enumerate(rows.items(), start=1)
            for c, name in enumerate(list(names)[:columns], start=1)]
    n_rows = max(1, len(rows))
    titles = [""] * (n_rows * columns)
    for r, c, label, name in grid:
        titles[(r - 1) * columns + c - 1] = f"{label}: {name}"
    # a function can be both a top and a novel one: one row of distances per name
    near = nearest_baselines(list(dict.fromkeys(name for *_, name in grid))).set_index("name")
    fig = make_subplots(rows=n_rows, cols=columns, subplot_titles=titles,
                        horizontal_spacing=0.05, vertical_spacing=0.5 / n_rows)
    x = np.linspace(*CURVE_RANGE, 401, dtype=np.float32)
    drawn = list(dict.fromkeys([*near.index, *near["nearest baseline"]]))
    curves = dict(zip(drawn, evaluate_functions(drawn, x).numpy(), strict=True))
    for i, (r, c, _, name) in enumerate(grid):
        base = str(near.loc[name, "nearest baseline"])
        fig.add_trace(go.Scatter(x=x, y=curves[base], mode="lines",
                                 line={"color": "#999", "dash": "dash", "width": 1.2},
                                 name="nearest baseline", legendgroup="base", showlegend=i == 0,
                                 hovertemplate=f"{base}<extra></extra>"), row=r, col=c)
        fig.add_trace(go.Scatter(x=x, y=curves[name], mode="lines",
                                 line={"color": "#d62728", "width": 2}, name="discovered",
                                 legendgroup="found", showlegend=i == 0,
                                 hovertemplate=f"{name}<extra></extra>"), row=r, col=c)
        fig.add_annotation(text=f"nearest: {base.removesuffix('(x)')}", showarrow=False,
                           x=0.02, y=0.98, xanchor="left", yanchor="top", font={"size": 9},
                           row=r, col=c, xref="x domain", yref="y domain")
    for annotation in fig.layout.annotations:
        if not annotation.text.startswith("nearest"):  # the panel titles
            annotation.font.size = 11
    fig.update_yaxes(range=[-3, 5])
    fig.update_layout(title="Figure 8: discovered functions: (a) the top of each search, (b) "
                            "novel ones (better than ReLU, far from every baseline)",
                      width=330 * columns, height=230 * n_rows + 110, template="plotly_white",
                      legend={"orientation": "h", "y": -0.06})
    return fig


def fig9_usage(usage: ActivationUsage, *, bins: int = 60, max_sites: int = 8):
    """Figure 9: the function's curve over the histograms (probability density) of its inputs
    at initialisation and after training: all sites together, then site by site (the first
    ``max_sites``). The x range spans the 0.5%-99.5% quantiles of both, at least [-5, 5]."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    both = np.concatenate([usage.pooled("init"), usage.pooled("trained")])
    both = both[np.isfinite(both)]
    lo, hi = (np.quantile(both, [0.005, 0.995]) if len(both) else CURVE_RANGE)
    lo, hi = min(float(lo), CURVE_RANGE[0]), max(float(hi), CURVE_RANGE[1])
    sites = list(usage.init)[:max_sites]
    panels = [("all sites", usage.pooled("init"), usage.pooled("trained"))]
    panels += [(f"site {s}", usage.init[s], usage.trained[s]) for s in sites]
    columns = 3
    rows = -(-len(panels) // columns)
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=[p[0] for p in panels],
                        specs=[[{"secondary_y": True}] * columns] * rows,
                        horizontal_spacing=0.08, vertical_spacing=0.45 / rows)
    edges = np.linspace(lo, hi, bins + 1)
    centres, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    x = np.linspace(lo, hi, 401, dtype=np.float32)
    curve = evaluate_functions([usage.fn_name], x)[0].numpy()
    styles = (("at initialisation", "#1f77b4"), ("after training", "#ff7f0e"))
    for i, (_, init, trained) in enumerate(panels):
        r, c = 1 + i // columns, 1 + i % columns
        for (label, colour), values in zip(styles, (init, trained), strict=True):
            values = values[np.isfinite(values)]
            density, _ = np.histogram(values, bins=edges, density=False)
            density = density / max(1, len(values)) / width
            fig.add_trace(go.Bar(x=centres, y=density, width=width, name=label,
                                 marker={"color": colour}, opacity=0.55, legendgroup=label,
                                 showlegend=i == 0), row=r, col=c, secondary_y=False)
        fig.add_trace(go.Scatter(x=x, y=curve, mode="lines", line={"color": "#d62728",
                                                                    "width": 2},
                                 name=usage.fn_name, legendgroup="f", showlegend=i == 0),
                      row=r, col=c, secondary_y=True)
    fig.update_layout(barmode="overlay", template="plotly_white", width=330 * columns,
                      height=260 * rows + 120, legend={"orientation": "h", "y": -0.08},
                      title=f"Figure 9: how the {usage.task} network uses {usage.fn_name} "
                            f"(inputs of its activation sites, seed {usage.seed})")
    for annotation in fig.layout.annotations:
        annotation.font.size = 10
    return fig
