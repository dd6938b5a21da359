"""The inspector's logic without a browser: its handlers called directly on three small,
hand-made benchmarks (fixed embeddings instead of UMAP), and what its widgets then hold."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aquasurf_core.bench.table import Benchmark, make_table
from aquasurf_core.embedding import Embedding
from aquasurf_core.features.fim import FimLayout
from aquasurf_core.features.outputs import output_features
from aquasurf_core.inspector import Inspector
from aquasurf_core.space import ActivationFunction, InvalidFunctionName, parse

RELU = "max(identity(x),zero(x))"
#: fn_name -> other equivalent names. exp(x) gets an invalid Fisher spectrum (not embedded).
FUNCTIONS = {
    "identity(x)": ["mul(one(x),identity(x))"],
    "tanh(x)": [],
    "sigmoid(x)": [],
    RELU: ["max(zero(x),identity(x))", "max(relu(x),zero(x))"],
    "swish(x)": [],
    "exp(x)": [],
    "softsign(x)": [],
    "abs(x)": [],
}
NAMES = list(FUNCTIONS)
INVALID = NAMES.index("exp(x)")
LAYOUT = FimLayout(("conv", "fc"), (400, 1000), (4, 10))
#: validation accuracies per benchmark (train = val - 0.01, test = val - 0.02)
VAL = {"cnn": [0.50, 0.30, 0.40, 0.70, 0.65, 0.10, 0.20, 0.60],
       "resnet": [0.52, 0.33, 0.41, 0.72, 0.61, 0.11, 0.25, 0.55],
       "vit": [0.40, 0.35, 0.45, 0.66, 0.62, 0.12, 0.22]}  # vit lacks abs(x)


def small_benchmark(name: str) -> Benchmark:
    names = NAMES[:len(VAL[name])]
    rows = [{"fn_name": fn, "equivalent_names": [fn, *FUNCTIONS[fn]], "train_acc": v - 0.01,
             "val_acc": v, "test_acc": v - 0.02, "train_loss": 1.0, "val_loss": 1.0,
             "test_loss": 1.0, "runtime_s": 0.1} for fn, v in zip(names, VAL[name], strict=True)]
    rng = np.random.default_rng(len(name))
    cdf = np.concatenate([np.sort(rng.uniform(size=(len(names), b)), axis=1)
                          for b in LAYOUT.bin_counts], axis=1).astype(np.float32)
    valid = np.array([fn != "exp(x)" for fn in names])
    cdf[~valid] = np.nan
    return Benchmark(name, make_table(rows), output_features(names), cdf, valid, LAYOUT, {})


def fixed_embeddings(benchmark: Benchmark) -> dict[str, Embedding]:
    """Distinct coordinates per kind: fim (i, 0), outputs (0, i), both (i, i)."""
    rows = np.flatnonzero(benchmark.fim_valid).astype(np.int64)
    names = [benchmark.table["fn_name"].iloc[r] for r in rows]
    i = np.arange(len(rows), dtype=np.float32)
    coords = {"fim": np.stack([i, 0 * i], 1), "outputs": np.stack([0 * i, i], 1),
              "both": np.stack([i, i], 1)}
    return {kind: Embedding(benchmark.name, kind, rows, names, xy, {}, kind)
            for kind, xy in coords.items()}


def make_inspector(**kwargs) -> Inspector:
    kwargs.setdefault("loader", small_benchmark)
    return Inspector(embedder=fixed_embeddings, **kwargs)


@pytest.fixture
def inspector() -> Inspector:
    return make_inspector()


def index_of(inspector: Inspector, name: str) -> int:
    return inspector.embedding.names.index(name)


def classes(widget) -> set[str]:
    found = set(getattr(widget, "_dom_classes", ()))
    for child in getattr(widget, "children", ()):
        found |= classes(child)
    return found


def test_widgets_have_stable_classes(inspector):
    assert {"aq-inspector", "aq-bench", "aq-feature", "aq-search", "aq-search-button",
            "aq-message", "aq-plot", "aq-detail", "aq-detail-name", "aq-accuracy", "aq-curve",
            "aq-cdf", "aq-selection", "aq-selection-sort",
            "aq-selection-table"} <= classes(inspector.widget)
    assert inspector.widget._repr_mimebundle_()  # displays as the root widget


def test_first_view_draws_embedded_functions_coloured_by_accuracy(inspector):
    points = inspector.figure.data[0]
    emb = inspector.embedding
    assert (inspector.bench, inspector.feature, emb.kind) == ("cnn", "both", "both")
    assert "exp(x)" not in emb.names and len(points.x) == len(NAMES) - 1
    np.testing.assert_allclose(points.x, emb.coords[:, 0])
    expected = [VAL["cnn"][NAMES.index(n)] for n in emb.names]
    np.testing.assert_allclose(points.marker.color, expected)
    assert points.text[index_of(inspector, "tanh(x)")] == \
        "<b>tanh(x)</b><br>validation accuracy 0.300"
    assert "7 of 8 functions embedded" in inspector.message.value
    # what Voila renders (the state synced at construction) is the drawn plot, not an empty one
    assert len(inspector.figure._widget_data[0]["x"]) == len(NAMES) - 1


def record(widget) -> list[dict]:
    """The messages ``widget`` sends to the front end from now on (the data of each)."""
    sent: list[dict] = []
    widget.comm.send = lambda data=None, metadata=None, buffers=None: sent.append(data)
    return sent


def plot_updates(sent: list[dict]) -> list[dict]:
    """The ``Plotly.update`` messages among ``sent`` (plotly's ``_py2js_update``)."""
    return [m["state"]["_py2js_update"] for m in sent
            if m.get("method") == "update" and m["state"].get("_py2js_update")]


def test_a_search_sends_only_the_star(inspector):
    """The plot is edited in place (README, "Known problems"): a search sends the star's
    trace, under a kilobyte, in one update; no new FigureWidget (whose state would carry
    plotly's 5 MB widget bundle) and no whole figure. A zoom the user set stays."""
    figure = inspector.figure
    figure.layout.xaxis.update(range=[0.5, 2.5], autorange=False)  # what a zoom syncs back
    sent = record(figure)
    inspector.search("tanh(x)")
    assert inspector.figure is figure and inspector.plot.children == (figure,)
    (update,) = plot_updates(sent)
    pos = inspector.embedding.position(inspector.benchmark.rows_of(["tanh(x)"])[0])
    x, y = (float(v) for v in inspector.embedding.coords[pos])
    assert update["style_traces"] == [1] and update["layout_data"] == {}
    assert update["style_data"]["x"] == [[x]] and update["style_data"]["y"] == [[y]]
    assert update["style_data"]["name"] == ["\u2605 tanh(x)"]
    assert not any({"_widget_data", "_widget_layout", "_esm"} & set(m.get("state", {}))
                   for m in sent)
    assert sum(len(json.dumps(m)) for m in sent) < 1000
    assert tuple(figure.layout.xaxis.range) == (0.5, 2.5)
    # a view made later (a page reload) is drawn from the kernel's copy: the star is in it
    assert [t["name"] for t in figure._widget_data] == ["functions", "\u2605 tanh(x)"]
    assert figure._widget_data[1]["x"] == [x]
    # the handlers stay wired to the traces
    assert figure.data[0]._click_callbacks and figure.data[1]._click_callbacks


def test_a_redraw_sends_the_new_points_in_one_update(inspector):
    """Another embedding: its coordinates, the star moved, the title, and the axes fitted
    again (a zoom was for the old coordinates), in one update of the same widget."""
    inspector.search("tanh(x)")
    figure = inspector.figure
    figure.layout.xaxis.update(range=[0.5, 2.5], autorange=False)
    sent = record(figure)
    inspector.feature_select.value = "fim"  # fim: (i, 0) where both was (i, i)
    assert inspector.figure is figure
    (update,) = plot_updates(sent)
    emb = inspector.embedding
    pos = emb.position(inspector.benchmark.rows_of(["tanh(x)"])[0])
    assert update["style_traces"] == [0, 1]
    assert update["style_data"]["y"] == [emb.coords[:, 1].tolist(), [float(emb.coords[pos, 1])]]
    assert "x" not in update["style_data"]  # unchanged: not sent
    assert update["layout_data"]["xaxis.autorange"] is True
    assert update["layout_data"]["title.text"].startswith("cnn: FIM embedding")
    assert figure._widget_data[0]["y"] == emb.coords[:, 1].tolist()


def test_the_plots_follow_their_boxes(inspector):
    """No fixed widths: the figures size themselves to their boxes (autosize; plotly.js's
    ``responsive``), and the boxes have flexible widths within bounds."""
    assert inspector.figure.layout.width is None and inspector.figure.layout.autosize
    assert inspector.figure._config == {"responsive": True}
    inspector.click(index_of(inspector, RELU))
    for figure in (inspector.curve_plot, inspector.cdf_plot):
        assert "width" not in figure["layout"] and figure["layout"]["autosize"] is True
    shown = inspector.cdf_output.outputs[0]["data"]["application/vnd.plotly.v1+json"]
    assert shown["config"]["responsive"] is True
    assert inspector.detail.layout.width is None and inspector.detail.layout.max_width
    assert inspector.plot.layout.width is None and inspector.plot.layout.min_width


def test_the_loading_line_shows_at_once_and_is_cleared():
    """In a notebook the cell shows a loading line while the first benchmark loads and
    embeds (the inspector can only be displayed once the constructor returns), with the
    embedding's own messages; it is emptied when the inspector is ready."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    had_shell = InteractiveShell.initialized()
    InteractiveShell.instance()  # capture_output needs a shell to display through
    seen_by_loader = []

    def loader(name):
        seen_by_loader.append(len(captured.outputs))
        return small_benchmark(name)

    try:
        with capture_output() as captured:
            make_inspector(loader=loader, loading_line=True)
    finally:
        if not had_shell:
            InteractiveShell.clear_instance()
    outputs = captured.outputs
    assert seen_by_loader[0] >= 1  # shown before the first benchmark was loaded
    first = outputs[0]
    display_id = first.transient["display_id"]
    assert "inspector: starting" in first.data["text/plain"] and not first.update
    updates = [o for o in outputs[1:] if o.update]
    assert all(o.transient["display_id"] == display_id for o in updates)
    assert any("loading and embedding cnn" in o.data["text/plain"] for o in updates)
    assert updates[-1].data == {"text/plain": ""}  # cleared once ready
    with capture_output() as captured:
        make_inspector(loading_line=False)
    assert captured.outputs == []


def test_click_opens_the_detail_panel(inspector):
    row = inspector.click(index_of(inspector, RELU))
    assert row == NAMES.index(RELU) and inspector.detail_name == RELU
    assert RELU in inspector.detail_name_html.value
    info = inspector.detail_info.value
    assert "2 equivalent names" in info
    assert "max(zero(x),identity(x))" in info and "max(relu(x),zero(x))" in info
    assert "on the plot" in info
    table = inspector.accuracy_html.value
    for bench, values in VAL.items():
        v = values[row]
        assert f"<td>{bench}</td>" in table
        for acc in (v - 0.01, v, v - 0.02):  # train, validation, test
            assert f"{acc:.3f}" in table
    # the curve on [-5, 5], and the Fisher CDFs of both layers beside ReLU's
    curve = inspector.curve_plot["data"][0]
    expected = ActivationFunction(RELU)(torch.linspace(-5, 5, 201)).numpy()
    np.testing.assert_allclose(curve["y"], expected, atol=1e-6)
    assert (curve["x"][0], curve["x"][-1]) == (-5, 5)
    assert RELU in inspector.curve_plot["layout"]["title"]["text"]
    cdf = inspector.cdf_plot
    assert [(t["name"], t["xaxis"]) for t in cdf["data"]] == \
        [(RELU, "x"), ("relu(x)", "x"), (RELU, "x2"), ("relu(x)", "x2")]
    fc = cdf["data"][2]  # the second layer: 10 bins on [-100, 100], a CDF from 0 to its end
    assert len(fc["x"]) == 12 and (fc["x"][0], fc["x"][-1]) == (-100, 100)
    np.testing.assert_allclose(fc["y"][1:-1], inspector.benchmark.fim_cdf[row, 4:], rtol=1e-6)
    assert [a["text"] for a in cdf["layout"]["annotations"]] == ["conv", "fc"]
    for output in (inspector.curve_output, inspector.cdf_output):
        shown = output.outputs[0]["data"]["application/vnd.plotly.v1+json"]
        assert json.loads(json.dumps(shown))["data"]  # JSON for the MIME renderer
    assert inspector.detail_body.layout.visibility == "visible"


def test_detail_marks_benchmarks_without_the_function(inspector):
    inspector.click(index_of(inspector, "abs(x)"))
    assert "<td>vit</td><td colspan=3>not in this benchmark</td>" in \
        inspector.accuracy_html.value


def test_click_on_the_star_opens_its_function(inspector):
    inspector.search("tanh(x)")
    inspector.show(None)
    assert inspector.detail_name is None
    star = inspector.figure.data[1]

    class Points:
        point_inds = [0]

    inspector._on_click(star, Points(), None)
    assert inspector.detail_name == "tanh(x)"


def test_search_by_an_equivalent_name_highlights_the_point(inspector):
    row = inspector.search("max(relu(x),zero(x))")
    assert row == NAMES.index(RELU)
    assert inspector.highlight_name == RELU and inspector.detail_name == RELU
    star = inspector.figure.data[1]
    pos = inspector.embedding.position(row)
    assert (star.x, star.y) == ((float(inspector.embedding.coords[pos, 0]),),
                                (float(inspector.embedding.coords[pos, 1]),))
    assert star.name == f"★ {RELU}"
    assert "found" in inspector.message.value and "marked with a star" in inspector.message.value


def test_search_finds_relu_by_its_outputs(inspector):
    assert "relu(x)" not in [n for names in FUNCTIONS.values() for n in names]
    assert inspector.search("relu(x)") == NAMES.index(RELU)
    assert inspector.highlight_name == RELU
    assert "same outputs as relu(x)" in inspector.message.value


def test_search_box_and_button_run_the_search(inspector):
    inspector.search_box.value = "tanh(x)"  # Enter (continuous_update=False)
    assert inspector.highlight_name == "tanh(x)"
    inspector.search("sigmoid(x)")
    inspector.search_button.click()  # the same text again
    assert inspector.highlight_name == "tanh(x)"


def test_malformed_name_gets_the_parsers_message(inspector):
    inspector.search("tanh(x)")
    with pytest.raises(InvalidFunctionName) as parsed:
        parse("max(relu(x)")
    assert inspector.search("max(relu(x)") is None
    message = inspector.message.value
    assert "aq-message-error" in message and "is not a valid function name" in message
    first, caret = str(parsed.value).split("\n", 1)
    assert first.replace("'", "&#x27;") in message and "never closed at position 11" in message
    assert caret in message.replace("&#x27;", "'")  # the name and the caret under it
    assert inspector.highlight_name == "tanh(x)"  # nothing else changed


def test_valid_name_not_in_the_benchmark(inspector):
    assert inspector.search("erf(x)") is None
    message = inspector.message.value
    assert "erf(x) is a valid function, but not in the cnn benchmark" in message
    assert "aq-message-warning" in message


def test_function_not_embedded_gets_its_detail_and_a_message(inspector):
    inspector.search("tanh(x)")
    row = inspector.search("exp(x)")
    assert row == INVALID and inspector.detail_name == "exp(x)"
    assert inspector.highlight_name is None and inspector.figure.data[1].x == ()
    message = inspector.message.value
    assert "not on the plot" in message and "Fisher spectrum is invalid" in message
    assert "not on the plot" in inspector.detail_info.value
    assert "invalid spectrum" in inspector.cdf_plot["layout"]["title"]["text"]
    assert {t["name"] for t in inspector.cdf_plot["data"]} == {"relu(x)"}


def test_empty_search_does_nothing(inspector):
    before = inspector.message.value
    assert inspector.search("  ") is None and inspector.message.value == before


def test_selection_lists_exactly_the_selected_functions_sorted(inspector):
    picked = ["tanh(x)", RELU, "softsign(x)", "identity(x)"]
    inspector.select([index_of(inspector, n) for n in picked])
    by_val = sorted(picked, key=lambda n: -VAL["cnn"][NAMES.index(n)])
    assert list(inspector.selection()["fn_name"]) == by_val
    html = inspector.selection_html.value
    assert "4 functions selected" in html
    assert [html.index(f">{n}<") for n in by_val] == sorted(html.index(f">{n}<") for n in by_val)
    assert "swish(x)" not in html
    inspector.sort_select.value = "validation accuracy ↑"
    assert list(inspector.selection()["fn_name"]) == by_val[::-1]
    inspector.sort_select.value = "name"
    assert list(inspector.selection()["fn_name"]) == sorted(picked)
    inspector.select([])
    assert inspector.selection().empty and "no functions selected" in \
        inspector.selection_html.value


def test_lasso_callback_selects(inspector):
    class Points:
        point_inds = [0, 1]

    inspector._on_selection(inspector.figure.data[0], Points(), None)
    assert set(inspector.selection()["fn_name"]) == set(inspector.embedding.names[:2])


def test_switching_feature_and_benchmark_redraws(inspector):
    inspector.search("tanh(x)")
    inspector.select([0, 1])
    inspector.set_view(feature="FIM")
    assert inspector.feature == "fim" and inspector.embedding.kind == "fim"
    np.testing.assert_allclose(inspector.figure.data[1].x, [index_of(inspector, "tanh(x)")])
    assert inspector.figure.data[0].y == (0.0,) * 7  # the fim coordinates (i, 0)
    assert "FIM embedding" in inspector.figure.layout.title.text
    assert inspector.selection().empty  # a new plot: the old selection is gone
    inspector.feature_select.value = "outputs"  # the toggle
    assert inspector.figure.data[0].x == (0.0,) * 7
    inspector.bench_select.value = "resnet"  # the menu
    assert inspector.bench == "resnet" and inspector.benchmark.name == "resnet"
    assert "resnet: outputs embedding" in inspector.figure.layout.title.text
    np.testing.assert_allclose(inspector.figure.data[0].marker.color,
                               [VAL["resnet"][NAMES.index(n)]
                                for n in inspector.embedding.names])
    assert inspector.highlight_name == "tanh(x)" and inspector.detail_name == "tanh(x)"
    assert "<tr class='aq-accuracy-resnet' style='font-weight:bold'>" in \
        inspector.accuracy_html.value
    inspector.set_view(bench="vit")  # vit has no abs(x): 6 embedded
    assert len(inspector.figure.data[0].x) == 6
    with pytest.raises(ValueError, match="unknown benchmark"):
        inspector.set_view(bench="mlp")
    with pytest.raises(ValueError, match="unknown feature"):
        inspector.set_view(feature="grads")


def test_a_benchmark_that_does_not_load(inspector):
    def loader(name):
        if name == "vit":
            raise FileNotFoundError("the shipped benchmark 'vit' is not built yet")
        return small_benchmark(name)

    inspector = make_inspector(loader=loader)
    inspector.click(0)
    assert "<td>vit</td><td colspan=3>not available (the shipped benchmark" in \
        inspector.accuracy_html.value
    inspector.set_view(bench="vit")
    assert "benchmark vit is not available" in inspector.message.value
    assert inspector.bench_select.value == "cnn" and inspector.bench == "cnn"
    with pytest.raises(FileNotFoundError):
        make_inspector(bench="vit", loader=loader)


def test_constructor_checks_its_arguments():
    with pytest.raises(ValueError, match="unknown benchmark"):
        make_inspector(bench="mlp")
    with pytest.raises(ValueError, match="unknown feature"):
        make_inspector(feature="grads")
    loaded = []
    lazy = make_inspector(feature="fim", prefetch=False,
                          loader=lambda name: loaded.append(name) or small_benchmark(name))
    assert lazy.feature == "fim" and loaded == ["cnn"]
    lazy.click(0)  # the accuracy table loads the others, once
    lazy.click(1)
    assert loaded == ["cnn", "resnet", "vit"]


def acknowledge(figure) -> None:
    """What a view sends back once it has drawn the latest edit (plotly's trace deltas)."""
    figure._js2py_traceDeltas = {"trace_deltas": [{"uid": t.uid} for t in figure.data],
                                 "trace_edit_id": figure._last_trace_edit_id}


def test_an_edit_the_page_acknowledges_is_kept(inspector):
    figure = inspector.figure
    inspector.search("tanh(x)")
    acknowledge(figure)
    assert inspector.check_acknowledged(figure, figure._last_trace_edit_id)
    assert inspector.figure is figure and inspector.renewals == 0


def test_an_edit_the_page_did_not_draw_shows_the_plot_anew(inspector):
    """No answer from a view: the plot is shown whole as a new FigureWidget, with the edit
    and the user's zoom, and the old one is closed."""
    figure = inspector.figure
    figure.layout.xaxis.update(range=[0.5, 2.5], autorange=False)
    inspector.search("tanh(x)")
    edit = figure._last_trace_edit_id
    assert not inspector.check_acknowledged(figure, edit)
    new = inspector.figure
    assert new is not figure and inspector.plot.children == (new,) and inspector.renewals == 1
    assert figure.comm is None and new.comm is not None
    assert new._widget_data[1]["name"] == "\u2605 tanh(x)" and len(new._widget_data[0]["x"]) == 7
    assert tuple(new.layout.xaxis.range) == (0.5, 2.5)
    assert new.data[0]._click_callbacks and new.data[1]._click_callbacks
    # a check of a replaced widget, or of an edit a later one replaced, does nothing
    assert inspector.check_acknowledged(figure, edit)
    inspector.search("sigmoid(x)")
    inspector.search("swish(x)")
    assert inspector.check_acknowledged(new, new._last_trace_edit_id - 1)
    assert inspector.figure is new and inspector.renewals == 1


def test_the_check_runs_on_the_kernels_event_loop(monkeypatch, inspector):
    """In a kernel (a running event loop) each edit schedules its check; outside one,
    nothing is scheduled."""
    import asyncio

    from aquasurf_core.inspector import widget

    monkeypatch.setattr(widget, "ACK_TIMEOUT", 0.05)

    async def search_and_wait(acknowledged: bool):
        figure = inspector.figure
        inspector.search("sigmoid(x)" if acknowledged else "tanh(x)")
        if acknowledged:
            acknowledge(figure)
        await asyncio.sleep(0.3)

    asyncio.run(search_and_wait(acknowledged=True))
    assert inspector.renewals == 0
    asyncio.run(search_and_wait(acknowledged=False))
    assert inspector.renewals == 1
    inspector.search("swish(x)")  # no loop running: no check scheduled
    assert inspector.renewals == 1


def test_renew_first_edit_draws_the_first_edit_as_a_new_widget():
    """For Voila: the first edit shows a new FigureWidget (the edit in it), later ones edit
    that one in place."""
    inspector = make_inspector(renew_first_edit=True)
    first = inspector.figure
    inspector.search("tanh(x)")
    second = inspector.figure
    assert second is not first and first.comm is None and inspector.renewals == 0
    assert second._widget_data[1]["name"] == "\u2605 tanh(x)"
    sent = record(second)
    inspector.search("sigmoid(x)")
    assert inspector.figure is second
    (update,) = plot_updates(sent)
    assert update["style_data"]["name"] == ["\u2605 sigmoid(x)"]
