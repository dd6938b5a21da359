"""Figures 8 and 9 of notebook 05: what the searches discovered (paper Section 7).

* Figure 8 (:func:`fig8_functions`): (a) the top discovered functions of each search, (b)
  novel ones. The paper picks (b) by hand ("selected novel activation functions ... all of
  these outperformed ReLU and are distinct from existing activation functions"); here the pick
  is a rule (:func:`novel_functions`): among the functions a search evaluated (its own seed)
  with a validation accuracy above ReLU's, those farthest from every baseline by Eq. 3 (the
  root-mean-square difference of the outputs on the 1,000 normal inputs, cleaned as for the
  embeddings). Each panel draws the function on [-5, 5] with its nearest baseline dashed, on
  a y range that holds both curves (:func:`curve_range`), under a title wrapped to the panel
  (:func:`wrap_name`).
* Figure 9 (:func:`fig9_usage`): the best discovered function's curve with the histograms of
  its inputs, at initialisation and after training, over all sites and site by site
  (:func:`aquasurf_core.search.usage.activation_usage`); the function's flat regions,
  ``|f'(x)| < 0.05`` (:func:`flat_intervals`, the rule of
  :func:`~aquasurf_core.training.activation_inputs.flat_share`), shaded, and the share of the
  inputs that fall there before and after training in each panel's title.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from aquasurf_core.embedding.distances import output_distance_matrix
from aquasurf_core.features.outputs import clean_outputs, output_features
from aquasurf_core.search.usage import ActivationUsage
from aquasurf_core.space.activation import ActivationFunction
from aquasurf_core.space.baselines import BASELINE_FUNCTIONS
from aquasurf_core.space.evaluation import evaluate_functions
from aquasurf_core.training.activation_inputs import FLAT_SLOPE, flat_share

__all__ = ["curve_range", "fig8_functions", "fig9_usage", "flat_intervals", "nearest_baselines",
           "novel_functions", "wrap_name"]

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


def wrap_name(name: str, width: int = 40) -> list[str]:
    """``name`` cut into lines of at most ``width`` characters, after a comma where one falls
    in the line's second half, else at ``width``; joined, the lines give ``name`` back."""
    if width < 2:
        raise ValueError(f"width must be at least 2, got {width}")
    lines = []
    while len(name) > width:
        cut = name.rfind(",", width // 2, width) + 1 or width
        lines.append(name[:cut])
        name = name[cut:]
    return [*lines, name]


def curve_range(*curves: np.ndarray, pad: float = 0.06) -> list[float]:
    """``[low, high]`` covering every finite value of ``curves`` with ``pad`` of the span on
    each side (``[-1, 1]`` around a constant; ``[-1, 1]`` when nothing is finite)."""
    values = np.concatenate([np.asarray(c, dtype=float).ravel() for c in curves])
    values = values[np.isfinite(values)]
    if not len(values):
        return [-1.0, 1.0]
    lo, hi = float(values.min()), float(values.max())
    span = hi - lo
    return [lo - 1, hi + 1] if span == 0 else [lo - pad * span, hi + pad * span]


def fig8_functions(rows: Mapping[str, Sequence[str]], *, columns: int = 3):
    """Figure 8: one row of panels per entry of ``rows`` (``{label: function names}``, e.g.
    ``"(a) digits-cnn: top"`` and ``"(b) digits-cnn: novel"``), at most ``columns`` functions
    each; every function drawn with its nearest baseline dashed. A panel's title names the
    row, the nearest baseline and the function (wrapped, :func:`wrap_name`); its y range
    covers both curves (:func:`curve_range`), so nothing is cut off."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    grid = [(r, c, label, name) for r, (label, names) in enumerate(rows.items(), start=1)
            for c, name in enumerate(list(names)[:columns], start=1)]
    n_rows = max(1, len(rows))
    # a function can be both a top and a novel one: one row of distances per name
    near = nearest_baselines(list(dict.fromkeys(name for *_, name in grid))).set_index("name")
    titles = [""] * (n_rows * columns)
    for r, c, label, name in grid:
        base = str(near.loc[name, "nearest baseline"]).removesuffix("(x)")
        titles[(r - 1) * columns + c - 1] = "<br>".join(
            [f"{label} · nearest: {base}", *wrap_name(name)])
    lines = max((t.count("<br>") + 1 for t in titles), default=1)
    # CSS pixels: a panel's height, the space between rows (the x ticks and the next titles),
    # the margins (the figure's title and the first titles; the x title and the legend)
    panel, gap, top, bottom = 190, 15 * lines + 40, 70 + 15 * lines, 100
    height = n_rows * panel + (n_rows - 1) * gap + top + bottom
    fig = make_subplots(rows=n_rows, cols=columns, subplot_titles=titles,
                        horizontal_spacing=0.07,
                        vertical_spacing=gap / (height - top - bottom))
    x = np.linspace(*CURVE_RANGE, 401, dtype=np.float32)
    drawn = list(dict.fromkeys([*near.index, *near["nearest baseline"]]))
    curves = dict(zip(drawn, evaluate_functions(drawn, x).numpy(), strict=True))
    for i, (r, c, _, name) in enumerate(grid):
        base = str(near.loc[name, "nearest baseline"])
        fig.add_trace(go.Scatter(x=x, y=curves[base], mode="lines",
                                 line={"color": "#666", "dash": "dash", "width": 1.4},
                                 name="nearest baseline", legendgroup="base", showlegend=i == 0,
                                 hovertemplate=f"{base}<extra></extra>"), row=r, col=c)
        fig.add_trace(go.Scatter(x=x, y=curves[name], mode="lines",
                                 line={"color": "#d62728", "width": 2}, name="discovered",
                                 legendgroup="found", showlegend=i == 0,
                                 hovertemplate=f"{name}<extra></extra>"), row=r, col=c)
        fig.update_yaxes(range=curve_range(curves[name], curves[base]), row=r, col=c)
    for annotation in fig.layout.annotations:  # the panel titles
        annotation.font.size = 11
    fig.update_xaxes(range=list(CURVE_RANGE), zeroline=True)
    fig.update_xaxes(title_text="x", row=n_rows)
    fig.update_yaxes(title_text="f(x)", col=1)
    fig.update_layout(title="Figure 8: discovered functions: (a) the top of each search, (b) "
                            "novel ones (better than ReLU, far from every baseline)",
                      width=380 * columns, height=height, template="plotly_white",
                      legend={"orientation": "h", "y": -50 / (height - top - bottom),
                              "yanchor": "top"},
                      margin={"t": top, "b": bottom})
    return fig


def flat_intervals(fn_name: str, low: float, high: float, slope: float = FLAT_SLOPE,
                   points: int = 2001) -> list[tuple[float, float]]:
    """Where ``fn_name`` is flat on ``[low, high]``: the maximal intervals of a grid of
    ``points`` inputs where ``|f'(x)| < slope`` -- the rule of
    :func:`~aquasurf_core.training.activation_inputs.flat_share` (derivative by autograd,
    float32; a point where it is not finite is not flat) -- each widened by half a grid step
    on both sides (clipped to ``[low, high]``). Raises ``ValueError`` for an empty range or
    fewer than 2 points."""
    if not high > low or points < 2:
        raise ValueError(f"need low < high and at least 2 points, got [{low}, {high}] and "
                         f"{points}")
    x = torch.linspace(low, high, points, dtype=torch.float32, requires_grad=True)
    ActivationFunction(fn_name)(x).sum().backward()
    grad = x.grad.numpy()
    flat = np.isfinite(grad) & (np.abs(grad) < slope)
    grid, half = x.detach().numpy().astype(float), (high - low) / (points - 1) / 2
    edges = np.flatnonzero(np.diff(np.r_[0, flat.astype(np.int8), 0]))
    return [(float(max(low, grid[a] - half)), float(min(high, grid[b - 1] + half)))
            for a, b in zip(edges[::2], edges[1::2], strict=True)]


def fig9_usage(usage: ActivationUsage, *, bins: int = 60, max_sites: int = 8,
               slope: float = FLAT_SLOPE):
    """Figure 9: the function's curve (right axis) over the histograms (probability density,
    left axis) of its inputs at initialisation and after training: all sites together, then
    site by site (the first ``max_sites``). The x range spans the 0.5%-99.5% quantiles of
    both, at least [-5, 5]. The function's flat regions, ``|f'(x)| < slope``
    (:func:`flat_intervals`), are shaded, and each panel's title gives the share of its
    inputs there before and after training
    (:func:`~aquasurf_core.training.activation_inputs.flat_share`, as
    :func:`aquasurf_core.search.usage.usage_table` reports it)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    both = np.concatenate([usage.pooled("init"), usage.pooled("trained")])
    both = both[np.isfinite(both)]
    lo, hi = (np.quantile(both, [0.005, 0.995]) if len(both) else CURVE_RANGE)
    lo, hi = min(float(lo), CURVE_RANGE[0]), max(float(hi), CURVE_RANGE[1])
    sites = list(usage.init)[:max_sites]
    panels = [("all sites", usage.pooled("init"), usage.pooled("trained"))]
    panels += [(f"site {s}", usage.init[s], usage.trained[s]) for s in sites]
    titles = [f"{name}: flat {flat_share(usage.fn_name, init, slope):.0%} → "
              f"{flat_share(usage.fn_name, trained, slope):.0%}"
              for name, init, trained in panels]
    columns = 3
    rows = -(-len(panels) // columns)
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles,
                        specs=[[{"secondary_y": True}] * columns] * rows,
                        horizontal_spacing=0.1, vertical_spacing=0.5 / rows)
    edges = np.linspace(lo, hi, bins + 1)
    centres, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    x = np.linspace(lo, hi, 401, dtype=np.float32)
    curve = evaluate_functions([usage.fn_name], x)[0].numpy()
    flat = flat_intervals(usage.fn_name, lo, hi, slope)
    styles = (("at initialisation", "#1f77b4"), ("after training", "#ff7f0e"))
    shade = "rgba(120,120,120,0.18)"
    for i, (_, init, trained) in enumerate(panels):
        r, c = 1 + i // columns, 1 + i % columns
        for a, b in flat:
            fig.add_vrect(x0=a, x1=b, fillcolor=shade, line_width=0, layer="below",
                          exclude_empty_subplots=False, row=r, col=c)
        for (label, colour), values in zip(styles, (init, trained), strict=True):
            values = values[np.isfinite(values)]
            density, _ = np.histogram(values, bins=edges, density=False)
            density = density / max(1, len(values)) / width
            fig.add_trace(go.Bar(x=centres, y=density, width=width, name=label,
                                 marker={"color": colour}, opacity=0.55, legendgroup=label,
                                 showlegend=i == 0), row=r, col=c, secondary_y=False)
        fig.add_trace(go.Scatter(x=x, y=curve, mode="lines", line={"color": "#d62728",
                                                                    "width": 2},
                                 name=f"f(x) = {usage.fn_name}", legendgroup="f",
                                 showlegend=i == 0),
                      row=r, col=c, secondary_y=True)
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"flat: |f′(x)| < {slope:g}",
                             marker={"symbol": "square", "size": 14, "color": shade,
                                     "line": {"width": 1, "color": "#999"}}),
                  row=1, col=1, secondary_y=False)
    fig.update_xaxes(range=[lo, hi])
    fig.update_xaxes(title_text="input of the activation", row=rows)
    fig.update_yaxes(title_text="density", secondary_y=False, col=1)
    fig.update_yaxes(secondary_y=True, showgrid=False, tickmode="auto", nticks=6,
                     zeroline=False)
    fig.update_yaxes(title_text="f(x)", secondary_y=True, col=columns)
    fig.update_layout(barmode="overlay", template="plotly_white", width=360 * columns,
                      height=270 * rows + 150, legend={"orientation": "h", "y": -0.1,
                                                        "yanchor": "top"},
                      title=f"Figure 9: how the {usage.task} network uses {usage.fn_name} "
                            f"(inputs of its activation sites, seed {usage.seed})")
    for annotation in fig.layout.annotations:
        annotation.font.size = 11
    return fig
