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

* in JupyterLab: ``from aquasurf_core.inspector import Inspector; Inspector(bench="cnn")``
  (the last expression of a cell displays it; a loading line shows at once while the
  benchmark loads and embeds, 10-30 s the first time);
* as a web page, without a notebook: ``aquasurf inspect [--bench cnn] [--port N]
  [--no-browser]`` (served by Voila, :mod:`aquasurf_core.inspector.page`).

Its widths follow the output area (flex boxes, percentages and maximum widths; the plots size
themselves to their boxes), so it fits a 1,280 px JupyterLab window with the file browser
open: the detail panel goes below the plot when the two do not fit side by side.

The plot is one plotly ``FigureWidget`` edited in place: a search sends the star's new
coordinates (well under a kilobyte), a switch of benchmark or feature the new points, colours
and hover texts in one ``batch_update``. Showing a new ``FigureWidget`` instead sends the
figure and plotly's 5 MB widget bundle (anywidget's ``_esm``) for the browser to load again,
which made a search take 6 s in JupyterLab. It is still the fallback when the page does not
acknowledge an edit (:meth:`Inspector.check_acknowledged`; README, "Known problems").

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

import anywidget
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
#: Sizes (px): the plot's height and narrowest width, the detail panel's narrowest and widest
#: width (it goes below the plot when both do not fit), the curve's height. Widths otherwise
#: follow the output area.
PLOT_HEIGHT, PLOT_MIN = 520, 400
DETAIL_MIN, DETAIL_MAX = 380, 560
CURVE_HEIGHT = 220
#: Seconds the page has to acknowledge an edit of the plot before the plot is shown anew
#: (:meth:`Inspector.check_acknowledged`): a search or switch is drawn in under 1 s on an idle
#: machine and under 3 s with both cores busy.
ACK_TIMEOUT = 6.0


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


def _in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel (where a display shows in the cell's output)."""
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _loading_line():
    """Display the loading line in the running cell's output now; its display handle."""
    from IPython.display import display

    return display({"text/html": "<i class='aq-loading'>inspector: starting ...</i>",
                    "text/plain": "inspector: starting ..."}, raw=True, display_id=True)


def _show(output: widgets.Output, figure: dict) -> None:
    """Show a static plotly figure (``{"data": [...], "layout": {...}}``) in ``output``,
    rendered by the plotly MIME renderer of JupyterLab and Voila. Only the main plot is a
    FigureWidget: in Voila a second FigureWidget on the page sometimes ignores every later
    edit (plotly 7.1, anywidget)."""
    output.outputs = ({"output_type": "display_data", "metadata": {},
                       "data": {"application/vnd.plotly.v1+json":
                                {**figure, "config": {"displayModeBar": False,
                                                      "responsive": True}},
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
    fig.update_layout(height=60 + 95 * rows, autosize=True,
                      legend={"orientation": "h", "y": 0, "yanchor": "top",
                              "font": {"size": 10}})
    return json.loads(fig.to_json())["layout"]


class PlotFitter(anywidget.AnyWidget):
    """An invisible widget that keeps the plotly figures beside it sized to their boxes.

    plotly.js sizes an autosized figure to its element when it draws it, and again on the
    window's ``resize`` event (``responsive``); a FigureWidget's view is drawn before it is
    attached to the page (so at plotly's default 700 px), and a JupyterLab panel that
    changes width (the file browser opened or closed) fires no window event. This widget
    watches the box it is in (the inspector) and fires the window's ``resize`` event when
    the box changes size or a figure is added to it."""

    _esm = """
    export default {
      render({ el }) {
        el.style.display = "none";
        let box = null, sizes = null, timer = null, plots = null, tries = 0;
        const fire = () => {
          clearTimeout(timer);
          timer = setTimeout(() => window.dispatchEvent(new Event("resize")), 50);
        };
        const attach = () => {
          box = el.parentElement && el.parentElement.closest(".aq-inspector");
          if (box === null) {
            if (tries++ < 600) requestAnimationFrame(attach);
            return;
          }
          sizes = new ResizeObserver(fire);
          sizes.observe(box);
          plots = new MutationObserver(ms => {
            if (ms.some(m => [...m.addedNodes].some(n => n.nodeType === 1
                && (n.matches(".js-plotly-plot") || n.querySelector(".js-plotly-plot")))))
              fire();
          });
          plots.observe(box, {childList: true, subtree: true});
          fire();
        };
        attach();
        return () => { clearTimeout(timer); sizes?.disconnect(); plots?.disconnect(); };
      }
    };
    """


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
        loading_line: show a loading line in the cell's output while the first benchmark
            loads and embeds (before the inspector itself can be displayed), cleared once it
            is ready; ``None`` (the default): when running in a Jupyter kernel.
        renew_first_edit: draw the plot's first edit (the first search or switch) as a new
            ``FigureWidget`` instead of editing the one made by the constructor, later edits
            in place: for Voila, whose view of that first widget often draws no edit
            (:meth:`check_acknowledged`; :mod:`aquasurf_core.inspector.page` sets it).

    Raises ``ValueError`` for an unknown benchmark or feature; the loader's errors (e.g.
    ``FileNotFoundError`` for a benchmark not built) for the first benchmark. Later errors
    (another benchmark that does not load) are shown in the message line.

    The handlers behind the widgets are public, for scripts and tests: :meth:`set_view`,
    :meth:`click`, :meth:`show`, :meth:`search`, :meth:`select`, :meth:`selection`, and
    :meth:`check_acknowledged`; :attr:`renewals` counts the plots shown anew because the
    page did not draw an edit.
    """

    def __init__(self, bench: str = "cnn", feature: str = "both", *,
                 benchmarks: Sequence[str] = SHIPPED,
                 loader: Callable[[str], Benchmark] = load,
                 embedder: Callable[[Benchmark], dict[str, Embedding]] | None = None,
                 prefetch: bool = True, loading_line: bool | None = None,
                 renew_first_edit: bool = False) -> None:
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
        self.figure: go.FigureWidget | None = None  # the plot, made by the first draw
        self.renewals = 0  # plots shown anew because the page did not draw an edit
        self._renew_next = renew_first_edit
        show_loading = _in_kernel() if loading_line is None else loading_line
        self._loading = _loading_line() if show_loading else None
        try:
            self._build_widgets(bench, kind)
            self._redraw()
            if prefetch:
                self._prefetch()
        finally:
            if self._loading is not None:
                self._loading.update({"text/plain": ""}, raw=True)
                self._loading = None

    # ------------------------------------------------------------------------- display
    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # ------------------------------------------------------------------------- widgets
    def _build_widgets(self, bench: str, kind: str) -> None:
        def classed(widget, name):
            widget.add_class(name)
            return widget

        self.bench_select = classed(widgets.Dropdown(options=self.benchmarks, value=bench,
                                                     layout={"width": "auto"}), "aq-bench")
        self.feature_select = classed(widgets.ToggleButtons(
            options=list(FEATURES.items()), value=kind, style={"button_width": "auto"}),
            "aq-feature")
        self.search_box = classed(widgets.Text(
            placeholder="find a function, e.g. relu(x)", continuous_update=False,
            layout={"flex": "1 1 160px", "width": "auto", "max_width": "320px"}),
            "aq-search")
        # No icon: the Voila page would fetch Font Awesome from a CDN for it.
        self.search_button = classed(widgets.Button(description="Find",
                                                    layout={"width": "auto"}),
                                     "aq-search-button")
        self.message = classed(widgets.HTML(layout={"max_width": "100%"}), "aq-message")
        # the plot's box takes what the detail panel leaves, down to PLOT_MIN; the figure
        # sizes itself to the box (autosize, responsive), made by the first draw
        # (a column whose item stretches: the figure's element is as wide as the box, which
        # is the width plotly.js measures)
        self.plot = plot = classed(widgets.Box(layout={
            "flex": f"1 1 {PLOT_MIN}px", "min_width": f"{PLOT_MIN}px", "max_width": "100%",
            "flex_flow": "column", "align_items": "stretch", "overflow": "hidden"}),
            "aq-plot")

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
        _show(self.curve_output, {"data": [], "layout": {"height": CURVE_HEIGHT}})
        self.detail_body = widgets.VBox([self.detail_info, self.curve_output,
                                          self.accuracy_html, self.cdf_output],
                                         layout={"visibility": "hidden", "width": "100%"})
        self.detail = classed(widgets.VBox([self.detail_name_html, self.detail_body],
                                           layout={"flex": f"1 1 {DETAIL_MIN}px",
                                                   "min_width": f"{DETAIL_MIN}px",
                                                   "max_width": f"{DETAIL_MAX}px",
                                                   "padding": "0 0 0 10px"}),
                              "aq-detail")

        self.sort_select = classed(widgets.ToggleButtons(options=SORTS, value=SORTS[0],
                                                         description="sort by",
                                                         style={"button_width": "auto"}),
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
        main = classed(widgets.HBox([plot, self.detail], layout={
            "flex_flow": "row wrap", "align_items": "flex-start", "width": "100%"}), "aq-main")
        self.widget = classed(widgets.VBox([controls, self.message, main,
                                            self.selection_panel, PlotFitter()],
                                           layout={"width": "100%", "max_width": "1400px"}),
                              "aq-inspector")

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

    def _base_figure(self) -> go.Figure:
        """The plot without points: the embedded functions (trace 0) and the star (1)."""
        return go.Figure(
            [go.Scatter(mode="markers", name="functions", hoverinfo="text", showlegend=False,
                        marker={"size": 7, "colorscale": "Viridis", "showscale": True,
                                "colorbar": {"title": {"text": "val. acc."}},
                                "line": {"width": 0.3, "color": "#333"}}),
             go.Scatter(mode="markers", name="search", hoverinfo="text", showlegend=False,
                        marker={"symbol": "star", "size": 22, "color": "#e4572e",
                                "line": {"width": 1.5, "color": "black"}})],
            layout={"autosize": True, "height": PLOT_HEIGHT, "dragmode": "lasso",
                    "hovermode": "closest", "margin": {"l": 40, "r": 10, "t": 75, "b": 40},
                    "legend": {"x": 0, "y": 1.01, "yanchor": "bottom", "orientation": "h"},
                    "xaxis": {"title": {"text": "UMAP 1"}, "zeroline": False},
                    "yaxis": {"title": {"text": "UMAP 2"}, "zeroline": False}})

    def _edit(self, points: dict | None = None, star: dict | None = None,
              layout: dict | None = None) -> None:
        """Set properties of the points' trace, the star's trace and the layout (nested
        dicts, as ``update`` takes them).

        The first call makes the ``FigureWidget``, whole. Later ones edit it in place in one
        ``batch_update``, which sends the browser only what changed (one ``Plotly.update``),
        and watch for the page's acknowledgement (:meth:`check_acknowledged`). The kernel's
        copy of the state a view starts from is then brought up to date without sending it,
        so that a view made later (a page reload) shows the plot as it is."""
        if self.figure is None:
            figure = self._base_figure()
            for target, changes in ((figure.data[0], points), (figure.data[1], star),
                                    (figure.layout, layout)):
                target.update(changes or {})
            self._show_figure(figure)
            return
        if self._renew_next:  # (renew_first_edit)
            self._renew_next = False
            figure = go.Figure(self.figure)
            for target, changes in ((figure.data[0], points), (figure.data[1], star),
                                    (figure.layout, layout)):
                target.update(changes or {})
            self._show_figure(figure)
            return
        with self.figure.batch_update():
            for target, changes in ((self.figure.data[0], points),
                                    (self.figure.data[1], star), (self.figure.layout, layout)):
                if changes:
                    target.update(changes)
        # plotly-internal (6.x-7.x): the synced copies a new view is drawn from, which plotly
        # itself refreshes only when a FigureWidget is displayed on its own. Set without
        # notifying: assigning them would send the whole figure again.
        self.figure._trait_values["_widget_data"] = copy.deepcopy(self.figure._data)
        self.figure._trait_values["_widget_layout"] = copy.deepcopy(
            self.figure._layout_obj._props)
        self._watch(self.figure, self.figure._last_trace_edit_id)

    def _show_figure(self, figure: go.Figure) -> None:
        """Show ``figure`` on the plot as a new ``FigureWidget`` (closing the one shown)."""
        old = self.figure
        widget = go.FigureWidget(figure)
        widget._config = {"responsive": True}  # follow the box's size (plotly.js)
        self.figure = self._wired(widget)
        self.plot.children = (self.figure,)
        if old is not None:
            old.close()

    def _watch(self, figure: go.FigureWidget, edit_id: int) -> None:
        """Call :meth:`check_acknowledged` in :data:`ACK_TIMEOUT` seconds, on the kernel's
        event loop (when there is one running: in a Jupyter kernel, not in scripts)."""
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        loop.call_later(ACK_TIMEOUT, self.check_acknowledged, figure, edit_id)

    def check_acknowledged(self, figure: go.FigureWidget, edit_id: int) -> bool:
        """Whether the page drew edit ``edit_id`` of ``figure``; when it did not, show the
        plot anew, whole (:attr:`renewals` counts these), and return ``False``.

        A view of a ``FigureWidget`` answers each edit it draws with the differences it sees
        (``_js2py_traceDeltas``, carrying the edit's id; plotly-internal, 6.x-7.x). In Voila,
        the view drawn with the page sometimes draws no edit at all, on a loaded machine or
        not (plotly 7.1, anywidget 0.11; README, "Known problems"), while a FigureWidget made
        after the page is up does. So an edit not answered in :data:`ACK_TIMEOUT` seconds is
        taken as lost. Nothing is done for an edit that a later edit (which has its own
        check) or a new widget has replaced."""
        if figure is not self.figure or figure._last_trace_edit_id != edit_id \
                or not figure._trace_edit_in_process:
            return True
        self.renewals += 1
        self._show_figure(go.Figure(figure))
        return False

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
        if self._loading is not None:  # the constructor is still loading: say it there
            self._loading.update({"text/html": f"<div class='aq-loading' style='color:"
                                               f"{colour}'>{body}</div>",
                                  "text/plain": text}, raw=True)

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
        points = {"x": emb.coords[:, 0].tolist(), "y": emb.coords[:, 1].tolist(),
                  "marker": {"color": np.where(np.isfinite(acc), acc, low).tolist()},
                  "text": self._hover(emb.rows), "selectedpoints": None}
        layout = {"title": {"text": f"{self.bench}: {LABELS[emb.kind]} embedding, "
                                    f"{len(emb.rows):,} functions", "font": {"size": 14}},
                  # new coordinates: the axes fit them again (a zoom is for the old ones)
                  "xaxis": {"autorange": True}, "yaxis": {"autorange": True}}
        self._edit(points=points, star=self._star(starred), layout=layout)

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
            "layout": {"autosize": True, "height": CURVE_HEIGHT,
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

    def _star(self, row: int | None) -> dict:
        """The star's trace on the current benchmark's row ``row`` (``None``, or a row not
        embedded: no star); sets :attr:`highlight_name`."""
        pos = -1 if row is None else self.embedding.position(row)
        self.highlight_name = None if pos < 0 else self.embedding.names[pos]
        if pos < 0:
            return {"x": [], "y": [], "text": [], "name": "search", "showlegend": False}
        return {"x": [float(self.embedding.coords[pos, 0])],
                "y": [float(self.embedding.coords[pos, 1])],
                "text": self._hover(np.array([row])),
                "name": f"\u2605 {self.embedding.names[pos]}", "showlegend": True}

    def _highlight(self, row: int | None) -> None:
        """Star the current benchmark's row ``row`` on the plot (``None``: remove the star):
        only the star's trace is sent."""
        self._edit(star=self._star(row))

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
