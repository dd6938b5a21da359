"""The inspector: an interactive view of a benchmark's UMAP embeddings (paper Figure 4).

It shows one benchmark (``cnn``, ``resnet`` or ``vit``) embedded by one feature (``FIM``,
``outputs`` or ``both``, :func:`~aquasurf_core.embedding.embeddings.embed_all`) as a scatter
plot, one marker per embedded function (those with a valid Fisher spectrum), coloured by
validation accuracy; hovering shows a function's name and accuracy.

* A click on a point opens the detail panel of its function: the curve on ``[-5, 5]``, its
  equivalent names, its train/validation/test accuracies on every benchmark, and its
  per-layer Fisher log-eigenvalue CDFs beside ReLU's.
* The search box finds a function by any name (one of its equivalent names, or any valid name
  with the same outputs, e.g. ``relu(x)``: :meth:`Benchmark.locate
  <aquasurf_core.bench.table.Benchmark.locate>`), marks it with a star and opens its detail;
  the message line says why when a name is malformed (the parser's message, with the
  position), valid but not in the benchmark, or in the benchmark but not embedded.
* A lasso or box selection lists the selected functions in a table, sorted by validation
  accuracy (either way) or by name.

Two ways to run it:

* in JupyterLab: ``from aquasurf_core.embedding import Inspector; Inspector(bench="cnn")``
  (the last expression of a cell displays it);
* as a web page, without a notebook: ``aquasurf inspect [--bench cnn] [--port N]
  [--no-browser]`` (served by Voila, :mod:`aquasurf_core.embedding.page`).

Every element has a CSS class (``aq-inspector``, ``aq-bench``, ``aq-feature``, ``aq-search``,
``aq-search-button``, ``aq-message``, ``aq-plot``, ``aq-detail``, ``aq-detail-name``,
``aq-accuracy``, ``aq-curve``, ``aq-cdf``, ``aq-selection``, ``aq-selection-sort``,
``aq-selection-table``) so that pages and tests can find it.
"""

from __future__ import annotations

import copy
import functools
import html
import json
from collections.abc import Callable, Sequence

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from aquasurf_core.bench.table import SHIPPED, Benchmark, load
from aquasurf_core.embedding.embeddings import Embedding, embed_all
from aquasurf_core.features.fim import LOG_RANGE
from aquasurf_core.space import ActivationFunction, InvalidFunctionName

__all__ = ["FEATURES", "SORTS", "Inspector"]

#: Toggle label -> embedding kind.
FEATURES = {"FIM": "fim", "outputs": "outputs", "both": "both"}
LABELS = {kind: label for label, kind in FEATURES.items()}
#: Orders of the selection table.
SORTS = ("validation accuracy ↓", "validation accuracy ↑", "name")
CURVE_X = torch.linspace(-5.0, 5.0, 201)
CURVE_CLIP = 20.0  # the curve plot's y range stops here (exp(exp(x)) would flatten the rest)
CDF_COLUMNS = 4
CDF_TITLE = "Fisher log-eigenvalue CDFs per layer (x: log-eigenvalue, -100 to 100)"
ACCURACIES = (("train_acc", "train"), ("val_acc", "validation"), ("test_acc", "test"))


def _reported(method):
    """Run a widget callback, showing an unexpected error in the message line (a callback's
    exception would otherwise vanish into the kernel's log)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as err:  # shown to the user, then re-raised
            self._say(f"internal error: {type(err).__name__}: {err}", "error")
            raise

    return wrapper


def _show(output: widgets.Output, figure: dict) -> None:
    """Show a static plotly figure (``{"data": [...], "layout": {...}}``) in ``output``,
    rendered by the plotly MIME renderer of JupyterLab and Voila. Only the main plot is a
    FigureWidget: in Voila a second FigureWidget on the page sometimes ignores every later
    edit (plotly 7.1, anywidget)."""
    output.outputs = ({"output_type": "display_data", "metadata": {},
                       "data": {"application/vnd.plotly.v1+json":
                                {**figure, "config": {"displayModeBar": False}},
                                "text/plain": "<plotly figure>"}},)


@functools.lru_cache(maxsize=8)
def _cdf_grid(names: tuple[str, ...]) -> dict:
    """Layout (a dict) of a grid of small CDF panels, one per layer, row by row."""
    rows = -(-len(names) // CDF_COLUMNS)
    fig = make_subplots(rows=rows, cols=CDF_COLUMNS, subplot_titles=list(names),
                        horizontal_spacing=0.04, vertical_spacing=0.3 / rows)
    fig.update_xaxes(range=list(LOG_RANGE), showticklabels=False)
    fig.update_yaxes(range=[-0.05, 1.05], showticklabels=False)
    fig.update_annotations(font_size=9)
    fig.update_layout(width=480, height=60 + 95 * rows, autosize=False,
                      legend={"orientation": "h", "y": 0, "yanchor": "top",
                              "font": {"size": 10}})
    return json.loads(fig.to_json())["layout"]


def _fmt(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.3f}"


class Inspector:
    """The embedding inspector (module docstring). Display it (last expression of a cell, or
    ``display(inspector)``); :attr:`widget` is the root ``ipywidgets.VBox``.

    Arguments:
        bench: the benchmark shown first (one of ``benchmarks``).
        feature: ``"FIM"``, ``"outputs"`` or ``"both"`` (or the kinds ``"fim"``, ...).
        benchmarks: names in the benchmark menu and the detail panel's accuracy table.
        loader: ``name -> Benchmark`` (default :func:`aquasurf_core.bench.load`); each
            benchmark is loaded once and kept.
        embedder: ``Benchmark -> {"fim": Embedding, "outputs": ..., "both": ...}`` (default
            :func:`~aquasurf_core.embedding.embeddings.embed_all`, cached on disk).
        prefetch: load the other benchmarks now (about a second) rather than when the first
            detail panel needs them.

    Raises ``ValueError`` for an unknown benchmark or feature; the loader's errors (e.g.
    ``FileNotFoundError`` for a benchmark not built) for the first benchmark. Later errors
    (another benchmark that does not load) are shown in the message line.

    The handlers behind the widgets are public, for scripts and tests: :meth:`set_view`,
    :meth:`click`, :meth:`show`, :meth:`search`, :meth:`select`, :meth:`selection`.
    """

    def __init__(self, bench: str = "cnn", feature: str = "both", *,
                 benchmarks: Sequence[str] = SHIPPED,
                 loader: Callable[[str], Benchmark] = load,
                 embedder: Callable[[Benchmark], dict[str, Embedding]] | None = None,
                 prefetch: bool = True) -> None:
        self.benchmarks = tuple(benchmarks)
        if bench not in self.benchmarks:
            raise ValueError(f"unknown benchmark {bench!r}; choose one of "
                             f"{', '.join(self.benchmarks)}")
        kind = self._kind(feature)
        self._loader = loader
        self._embedder = embedder or (lambda b: embed_all(b, log=self._say))
        self._loaded: dict[str, Benchmark] = {}
        self._embedded: dict[str, dict[str, Embedding]] = {}
        self.bench: str | None = None  # the benchmark shown
        self.feature: str | None = None  # the embedding kind shown: "fim", "outputs", "both"
        self.benchmark: Benchmark | None = None
        self.embedding: Embedding | None = None
        self._quiet = False
        self.detail_name: str | None = None  # fn_name of the function in the detail panel
        self.highlight_name: str | None = None  # fn_name of the starred function
        self.selected_rows = np.zeros(0, dtype=np.int64)
        self._build_widgets(bench, kind)
        self._redraw()
        if prefetch:
            self._prefetch()

    # ------------------------------------------------------------------------- display
    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # ------------------------------------------------------------------------- widgets
    def _build_widgets(self, bench: str, kind: str) -> None:
        def classed(widget, name):
            widget.add_class(name)
            return widget

        self.bench_select = classed(widgets.Dropdown(options=self.benchmarks, value=bench,
                                                     layout={"width": "100px"}), "aq-bench")
        self.feature_select = classed(widgets.ToggleButtons(
            options=list(FEATURES.items()), value=kind, style={"button_width": "70px"}),
            "aq-feature")
        self.search_box = classed(widgets.Text(
            placeholder="find a function, e.g. relu(x)", continuous_update=False,
            layout={"width": "320px"}), "aq-search")
        self.search_button = classed(widgets.Button(description="Find", icon="search",
                                                    layout={"width": "80px"}),
                                     "aq-search-button")
        self.message = classed(widgets.HTML(), "aq-message")
        self.figure = self._wired(go.FigureWidget(
            [go.Scatter(mode="markers", name="functions", hoverinfo="text", showlegend=False,
                        marker={"size": 7, "colorscale": "Viridis", "showscale": True,
                                "colorbar": {"title": {"text": "val. acc."}},
                                "line": {"width": 0.3, "color": "#333"}}),
             go.Scatter(mode="markers", name="search", hoverinfo="text", showlegend=True,
                        marker={"symbol": "star", "size": 22, "color": "#e4572e",
                                "line": {"width": 1.5, "color": "black"}})],
            layout={"width": 680, "height": 560, "dragmode": "lasso", "hovermode": "closest",
                    "margin": {"l": 40, "r": 10, "t": 75, "b": 40},
                    "legend": {"x": 0, "y": 1.01, "yanchor": "bottom", "orientation": "h"},
                    "xaxis": {"title": {"text": "UMAP 1"}, "zeroline": False},
                    "yaxis": {"title": {"text": "UMAP 2"}, "zeroline": False}}))
        self.plot = plot = classed(widgets.Box([self.figure]), "aq-plot")

        self.detail_name_html = classed(widgets.HTML("<i>Click a point or find a function to "
                                                     "see it here.</i>"), "aq-detail-name")
        self.detail_info = classed(widgets.HTML(), "aq-detail-info")
        self.accuracy_html = classed(widgets.HTML(), "aq-accuracy")
        self.curve_output = classed(widgets.Output(), "aq-curve")
        self.cdf_output = classed(widgets.Output(), "aq-cdf")
        self.curve_plot: dict | None = None  # the figures shown in those two (plotly JSON)
        self.cdf_plot: dict | None = None
        # An empty figure while the panel is hidden: the page loads the plotly renderer now,
        # not at the first click (a second's delay).
        _show(self.curve_output, {"data": [], "layout": {"width": 460, "height": 220}})
        self.detail_body = widgets.VBox([self.detail_info, self.curve_output,
                                          self.accuracy_html, self.cdf_output],
                                         layout={"visibility": "hidden"})
        self.detail = classed(widgets.VBox([self.detail_name_html, self.detail_body],
                                           layout={"width": "490px", "padding": "0 0 0 10px"}),
                              "aq-detail")

        self.sort_select = classed(widgets.ToggleButtons(options=SORTS, value=SORTS[0],
                                                         description="sort by",
                                                         style={"button_width": "150px"}),
                                   "aq-selection-sort")
        self.selection_html = classed(widgets.HTML(), "aq-selection-table")
        self.selection_panel = classed(widgets.VBox(
            [widgets.HTML("<b>Selection</b> (lasso or box tool of the plot's toolbar; "
                          "double-click the plot to clear)"),
             self.sort_select, self.selection_html]), "aq-selection")

        def label(text):
            return widgets.HTML(f"<b>{text}</b>", layout={"margin": "0 4px 0 12px"})

        controls = classed(widgets.HBox([label("benchmark"), self.bench_select,
                                         label("feature"), self.feature_select,
                                         label("find"), self.search_box, self.search_button],
                                        layout={"flex_flow": "row wrap",
                                                "align_items": "center"}), "aq-controls")
        self.widget = classed(widgets.VBox([controls, self.message,
                                            widgets.HBox([plot, self.detail]),
                                            self.selection_panel]), "aq-inspector")

        self.bench_select.observe(lambda change: self._redraw(), "value")
        self.feature_select.observe(lambda change: self._redraw(), "value")
        self.search_box.observe(lambda change: self.search(change["new"]), "value")
        self.search_button.on_click(lambda button: self.search(self.search_box.value))
        self.sort_select.observe(lambda change: self._render_selection(), "value")

    def _wired(self, figure: go.FigureWidget) -> go.FigureWidget:
        """``figure`` with the plot's handlers: a click opens a detail, a lasso or box
        selects, a double-click clears the selection."""
        for trace in figure.data:
            trace.on_click(self._on_click)
        figure.data[0].on_selection(self._on_selection)
        figure.data[0].on_deselect(lambda trace, points: self.select([]))
        return figure

    def _renew_figure(self, figure: go.Figure) -> None:
        """Show ``figure`` on the plot as a new FigureWidget and close the old one.

        The shown FigureWidget is not edited in place. In Voila, on a loaded machine, the page
        can draw the plot while the notebook is still executing (it logs "voila is still
        executing..."), and that view then misses every edit the kernel sends later (plotly
        7.1, anywidget 0.11; README, "Known problems"); a widget opened after the page is up
        is drawn whole from its own state. A zoom the user set stays (the kernel holds it in
        the old widget's layout, which ``figure`` copies). It costs one send of the whole
        figure (a few hundred kB at 2,913 points) per search or redraw."""
        old = self.figure
        self.figure = self._wired(go.FigureWidget(figure))
        self.plot.children = (self.figure,)
        old.close()

    def _say(self, text: str, level: str = "info") -> None:
        """Show ``text`` (plain text; may span lines) in the message line."""
        colour = {"info": "#333", "warning": "#8a5a00", "error": "#b00020"}[level]
        body = html.escape(text)
        if "\n" in text:
            first, rest = text.split("\n", 1)
            body = (f"{html.escape(first)}<pre style='margin:2px 0;color:{colour}'>"
                    f"{html.escape(rest)}</pre>")
        self.message.value = (f"<div class='aq-message-{level}' style='color:{colour}'>"
                              f"{body}</div>")

    @staticmethod
    def _kind(feature: str) -> str:
        kind = FEATURES.get(feature, feature)
        if kind not in FEATURES.values():
            raise ValueError(f"unknown feature {feature!r}; choose one of "
                             f"{', '.join(FEATURES)}")
        return kind

    # ------------------------------------------------------------------------- data
    def get_benchmark(self, name: str) -> Benchmark:
        """The benchmark ``name``, loaded once and kept."""
        if name not in self._loaded:
            self._loaded[name] = self._loader(name)
        return self._loaded[name]

    def _embeddings(self, name: str) -> dict[str, Embedding]:
        if name not in self._embedded:
            self._embedded[name] = self._embedder(self.get_benchmark(name))
        return self._embedded[name]

    def _prefetch(self) -> None:
        for name in self.benchmarks:
            try:
                self.get_benchmark(name)
            except (OSError, ValueError):  # shown in the detail panel's accuracy table
                pass

    # ------------------------------------------------------------------------- view
    def set_view(self, bench: str | None = None, feature: str | None = None) -> None:
        """Show benchmark ``bench`` embedded by ``feature`` (``None``: unchanged), as the
        menu and the toggle do."""
        if bench is not None:
            if bench not in self.benchmarks:
                raise ValueError(f"unknown benchmark {bench!r}; choose one of "
                                 f"{', '.join(self.benchmarks)}")
            self.bench_select.value = bench
        if feature is not None:
            self.feature_select.value = self._kind(feature)

    def _set_quietly(self, widget, value) -> None:
        """Set a menu back without redrawing."""
        self._quiet = True
        try:
            widget.value = value
        finally:
            self._quiet = False

    @_reported
    def _redraw(self) -> None:
        if self._quiet:
            return
        bench, kind = self.bench_select.value, self.feature_select.value
        if bench not in self._embedded:
            self._say(f"loading and embedding {bench} (the first embedding of a benchmark "
                      "takes about 20 s; it is cached afterwards) ...")
        try:
            benchmark = self.get_benchmark(bench)
            embeddings = self._embeddings(bench)
        except (OSError, ValueError) as err:
            if self.benchmark is None:
                raise  # the first benchmark: the constructor fails
            self._set_quietly(self.bench_select, self.bench)
            self._say(f"benchmark {bench} is not available: {err}", "error")
            return
        note = ""
        if kind not in embeddings:
            note = f" It has no {LABELS[kind]} embedding (no Fisher features)."
            kind = "outputs"
            self._set_quietly(self.feature_select, kind)
        starred, detail = (None if name is None else int(benchmark.rows_of([name])[0])
                           for name in (self.highlight_name, self.detail_name))
        self.bench, self.feature = bench, kind
        self.benchmark, self.embedding = benchmark, embeddings[kind]
        self._draw_points(starred if starred is not None and starred >= 0 else None)
        self.select([])
        n, total = len(self.embedding.rows), len(benchmark)
        left = (f" (the other {total - n:,} have an invalid Fisher spectrum)"
                if n < total else "")
        self._say(f"{bench}: {n:,} of {total:,} functions embedded by {LABELS[kind]}{left}."
                  f"{note} Click a point, find a function by name, or lasso a group.")
        if detail is not None:  # the same function, in this benchmark
            self.show(detail if detail >= 0 else None)

    def _hover(self, rows: np.ndarray) -> list[str]:
        table = self.benchmark.table
        return [f"<b>{html.escape(table['fn_name'].iloc[r])}</b><br>validation accuracy "
                f"{_fmt(table['val_acc'].iloc[r])}" for r in rows]

    def _draw_points(self, starred: int | None) -> None:
        """Draw the current embedding, with a star on row ``starred`` (``None``: none)."""
        emb, table = self.embedding, self.benchmark.table
        acc = table["val_acc"].to_numpy(dtype=np.float64)[emb.rows]
        finite = acc[np.isfinite(acc)]
        low = float(finite.min()) if len(finite) else 0.0
        figure = go.Figure(self.figure)
        points = figure.data[0]
        points.x, points.y = emb.coords[:, 0].tolist(), emb.coords[:, 1].tolist()
        points.marker.color = np.where(np.isfinite(acc), acc, low).tolist()
        points.text = self._hover(emb.rows)
        points.selectedpoints = None
        figure.layout.title = {
            "text": f"{self.bench}: {LABELS[emb.kind]} embedding, {len(emb.rows):,} functions "
                    "(colour: validation accuracy)", "font": {"size": 14}}
        figure.layout.xaxis.autorange = figure.layout.yaxis.autorange = True  # new coordinates
        self._highlight(starred, figure)

    # ------------------------------------------------------------------------- handlers
    @_reported
    def _on_click(self, trace, points, state) -> None:
        if not points.point_inds:
            return
        if trace is self.figure.data[1]:  # the star
            if self.highlight_name is not None:
                self.show(int(self.benchmark.rows_of([self.highlight_name])[0]))
            return
        self.click(points.point_inds[0])

    @_reported
    def _on_selection(self, trace, points, selector) -> None:
        self.select(points.point_inds)

    def click(self, index: int) -> int:
        """What a click on point ``index`` (into :attr:`embedding`'s coordinates) does: open
        its function's detail panel. Returns the benchmark row."""
        row = int(self.embedding.rows[index])
        self.show(row)
        return row

    @_reported
    def show(self, row: int | None) -> None:
        """Open the detail panel of the current benchmark's row ``row`` (``None``: close it)."""
        if row is None:
            self.detail_name = None
            self.detail_name_html.value = "<i>Click a point or find a function to see it " \
                                          "here.</i>"
            self.detail_body.layout.visibility = "hidden"
            return
        record = self.benchmark.table.iloc[row]
        name = str(record["fn_name"])
        self.detail_name = name
        self.detail_name_html.value = f"<b style='font-size:15px'>{html.escape(name)}</b>"
        names = [n for n in record["equivalent_names"] if n != name]
        where = ("on the plot" if self.embedding.position(row) >= 0 else
                 f"<b>not on the plot</b> ({self._not_embedded(row)})")
        self.detail_info.value = (
            f"<div>row {row} of {self.bench}, run status {html.escape(str(record['status']))}"
            f", {where}</div><div>{len(names)} equivalent name{'s' * (len(names) != 1)}:</div>"
            "<div style='max-height:5.5em;overflow:auto;font-family:monospace;font-size:11px'>"
            + (", ".join(html.escape(n) for n in names) or "none") + "</div>")
        self._draw_curve(name)
        self.accuracy_html.value = self._accuracy_table(name)
        self._draw_cdfs(row)
        self.detail_body.layout.visibility = "visible"

    def _draw_curve(self, name: str) -> None:
        with torch.no_grad():
            y = ActivationFunction(name)(CURVE_X).double().numpy()
        finite = y[np.isfinite(y)]
        shown = np.clip(finite, -CURVE_CLIP, CURVE_CLIP) if len(finite) else np.zeros(1)
        pad = 0.05 * max(float(np.ptp(shown)), 1e-3)
        self.curve_plot = {
            "data": [{"type": "scatter", "mode": "lines", "name": name, "x": CURVE_X.tolist(),
                      "y": [float(v) if np.isfinite(v) else None for v in y],
                      "line": {"color": "#1f77b4"}}],
            "layout": {"width": 460, "height": 220, "autosize": False,
                       "margin": {"l": 40, "r": 10, "t": 30, "b": 30},
                       "title": {"text": f"{html.escape(name)} on [-5, 5]",
                                 "font": {"size": 12}},
                       "yaxis": {"range": [float(shown.min()) - pad,
                                           float(shown.max()) + pad]}}}
        _show(self.curve_output, self.curve_plot)

    def _accuracy_table(self, name: str) -> str:
        head = "".join(f"<th style='padding:0 8px'>{label}</th>" for _, label in ACCURACIES)
        lines = []
        for bench in self.benchmarks:
            try:
                benchmark = self.get_benchmark(bench)
                row = int(benchmark.locate([name])[0][0])
            except (OSError, ValueError) as err:
                cells = f"<td colspan=3>not available ({html.escape(str(err)[:80])})</td>"
            else:
                cells = ("<td colspan=3>not in this benchmark</td>" if row < 0 else
                         "".join(f"<td style='padding:0 8px;text-align:right'>"
                                 f"{_fmt(benchmark.table[col].iloc[row])}</td>"
                                 for col, _ in ACCURACIES))
            style = " style='font-weight:bold'" if bench == self.bench else ""
            lines.append(f"<tr class='aq-accuracy-{bench}'{style}><td>{bench}</td>{cells}</tr>")
        return (f"<table class='aq-accuracy-table'><tr><th>accuracy</th>{head}</tr>"
                + "".join(lines) + "</table>")

    def _draw_cdfs(self, row: int) -> None:
        benchmark, layout = self.benchmark, self.benchmark.fim_layout
        if layout is None or benchmark.fim_cdf is None:
            self.cdf_plot = None
            self.cdf_output.outputs = ({"output_type": "display_data", "metadata": {},
                                        "data": {"text/html": "<i>no Fisher features in "
                                                 "this benchmark</i>",
                                                 "text/plain": "no Fisher features"}},)
            return
        relu = int(benchmark.locate(["relu(x)"])[0][0])
        name = str(benchmark.table["fn_name"].iloc[row])
        lo, hi = LOG_RANGE
        traces = []
        for layer, bins in enumerate(layout.bin_counts):
            part = slice(layout.offsets[layer], layout.offsets[layer + 1])
            x = [lo, *(lo + (np.arange(bins) + 0.5) * (hi - lo) / bins).tolist(), hi]
            axes = {"xaxis": f"x{layer + 1 if layer else ''}",
                    "yaxis": f"y{layer + 1 if layer else ''}"}
            for r, label, line in ((row, name, {"color": "#d62728"}),
                                   (relu, "relu(x)", {"color": "#555", "dash": "dot"})):
                if r >= 0 and benchmark.fim_valid[r]:
                    cdf = benchmark.fim_cdf[r, part].astype(np.float64).tolist()
                    traces.append({"type": "scatter", "mode": "lines", "x": x,
                                   "y": [0.0, *cdf, cdf[-1]], "line": {"shape": "hv", **line},
                                   "name": label, "legendgroup": label,
                                   "showlegend": layer == 0, "hoverinfo": "skip", **axes})
        invalid = "" if benchmark.fim_valid[row] else f"<br><b>{name}: invalid spectrum</b>"
        self.cdf_plot = {"data": traces, "layout": {
            **copy.deepcopy(_cdf_grid(tuple(layout.names))),
            "margin": {"l": 10, "r": 10, "t": 40 + 22 * bool(invalid), "b": 25},
            "title": {"text": CDF_TITLE + invalid, "font": {"size": 12}}}}
        _show(self.cdf_output, self.cdf_plot)

    def _highlight(self, row: int | None, figure: go.Figure | None = None) -> None:
        """Star the current benchmark's row ``row`` on the plot (``None``: remove the star)
        and show the plot anew (:meth:`_renew_figure`); ``figure``: the figure to star
        instead of the one shown (a redraw's)."""
        figure = go.Figure(self.figure) if figure is None else figure
        star = figure.data[1]
        pos = -1 if row is None else self.embedding.position(row)
        if pos < 0:
            star.x, star.y, star.text, star.name = [], [], [], "search"
            star.showlegend = False
        else:
            star.x, star.y = [float(self.embedding.coords[pos, 0])], \
                [float(self.embedding.coords[pos, 1])]
            star.text = self._hover(np.array([row]))
            star.name = f"\u2605 {self.embedding.names[pos]}"
            star.showlegend = True
        self._renew_figure(figure)
        self.highlight_name = None if pos < 0 else self.embedding.names[pos]

    @_reported
    def search(self, query: str) -> int | None:
        """Find ``query`` in the current benchmark: star it and open its detail panel. Returns
        its row, or ``None`` with the reason in the message line (malformed name, not in the
        benchmark). A function in the benchmark but not embedded gets its detail panel and a
        warning, and its row is returned."""
        query = (query or "").strip()
        if not query:
            return None
        try:
            rows, how = self.benchmark.locate([query])
        except InvalidFunctionName as err:
            self._say(f"{query!r} is not a valid function name: {err}", "error")
            return None
        row = int(rows[0])
        if row < 0:
            self._say(f"{query} is a valid function, but not in the {self.bench} benchmark: "
                      "none of its functions has this name or the same outputs.", "warning")
            return None
        name = str(self.benchmark.table["fn_name"].iloc[row])
        found = name if name == query else (f"{name} (same outputs as {query})"
                                            if how[0] == "outputs" else f"{name} (as {query})")
        self.show(row)
        self._highlight(row)
        if self.highlight_name is None:
            self._say(f"found {found} in {self.bench}, but it is not on the plot: "
                      f"{self._not_embedded(row)}.", "warning")
        else:
            self._say(f"found {found}: marked with a star.")
        return row

    def _not_embedded(self, row: int) -> str:
        if self.benchmark.fim_cdf is not None and not self.benchmark.fim_valid[row]:
            return ("its Fisher spectrum is invalid, and only functions with a valid spectrum "
                    "are embedded")
        return f"the {LABELS[self.feature]} embedding does not include it"

    def select(self, indices: Sequence[int]) -> None:
        """What a lasso or box selection of points ``indices`` (into :attr:`embedding`'s
        coordinates) does: list their functions in the selection table."""
        self.selected_rows = np.asarray(self.embedding.rows[np.asarray(indices, dtype=np.int64)]
                                        if len(indices) else [], dtype=np.int64)
        self._render_selection()

    def selection(self) -> pd.DataFrame:
        """The selected functions in the table's order (``fn_name``, the accuracies,
        ``status``; index: benchmark rows)."""
        columns = ["fn_name", "val_acc", "train_acc", "test_acc", "status"]
        frame = self.benchmark.table.iloc[self.selected_rows][columns]
        order = self.sort_select.value
        if order == "name":
            return frame.sort_values("fn_name", kind="stable")
        return frame.sort_values(["val_acc", "fn_name"], ascending=[order == SORTS[1], True],
                                 na_position="last", kind="stable")

    def _render_selection(self) -> None:
        frame = self.selection()
        if frame.empty:
            self.selection_html.value = "<i>no functions selected</i>"
            return
        head = "".join(f"<th style='padding:0 8px'>{h}</th>" for h in
                       ("#", "function", "validation", "train", "test", "status"))
        body = "".join(
            f"<tr><td>{i}</td><td style='font-family:monospace'>{html.escape(r.fn_name)}</td>"
            + "".join(f"<td style='padding:0 8px;text-align:right'>{_fmt(v)}</td>"
                      for v in (r.val_acc, r.train_acc, r.test_acc))
            + f"<td>{html.escape(str(r.status))}</td></tr>"
            for i, r in enumerate(frame.itertuples(), 1))
        self.selection_html.value = (
            f"<div>{len(frame):,} functions selected</div>"
            "<div style='max-height:320px;overflow:auto'><table class='aq-selection-rows'>"
            f"<tr>{head}</tr>{body}</table></div>")
