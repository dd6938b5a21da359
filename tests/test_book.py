"""The book (``make book``): built from executed notebooks without running them, offline.

The executed notebooks here are written by hand (a plotly figure with its PNG, a finished tqdm
bar and another widget with their saved state, Markdown with math, an error), so the test
needs no kernel; ``tests/test_notebooks.py`` builds and checks the book of every real
notebook it runs under the smoke profile.
"""

from __future__ import annotations

import base64
import io
import json

import nbformat
import pytest
from bs4 import BeautifulSoup
from PIL import Image

from aquasurf_core.book import BookError, build_book, main, render_math
from aquasurf_core.pipeline import Notebook, output_paths

REGISTRY = [Notebook("01_first.ipynb"), Notebook("02_second.ipynb"),
            Notebook("03_never_run.ipynb"), Notebook("04_broken.ipynb")]


def png_base64(width: int = 60, height: int = 40) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def figure_output() -> dict:
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 3]), layout={"width": 400, "height": 300})
    return nbformat.v4.new_output("display_data", data={
        "application/vnd.plotly.v1+json": json.loads(fig.to_json()),
        "image/png": png_base64(), "text/plain": "Figure()"})


def widget_output(model_id: str, text: str) -> dict:
    return nbformat.v4.new_output("display_data", data={
        "application/vnd.jupyter.widget-view+json": {"model_id": model_id, "version_major": 2,
                                                     "version_minor": 0},
        "text/plain": text})


#: a tqdm bar as nbclient saves it: an HBox of HTML, FloatProgress, HTML (and another widget)
WIDGET_STATE = {
    "bar": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_l", "IPY_MODEL_p",
                                                             "IPY_MODEL_r"]}},
    "l": {"model_name": "HTMLModel", "state": {"value": "trials:\u2007100%"}},
    "p": {"model_name": "FloatProgressModel", "state": {"value": 12, "max": 12,
                                                        "bar_style": "success"}},
    "r": {"model_name": "HTMLModel", "state": {"value": "\u200712/12\u2007[00:03&lt;00:00]"}},
    "other": {"model_name": "VBoxModel", "state": {"children": []}},
}


def executed_notebook(title: str, *, error: bool = False) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# {title}\n\nThe distance $d(f, g) = \\sum_l W_1$ and "
                                      "`$not math$` in code."),
        nbformat.v4.new_code_cell("fig", outputs=[figure_output()], execution_count=1),
        nbformat.v4.new_code_cell("run()", execution_count=2, outputs=[
            widget_output("bar", "trials:   0%|          | 0/12"),
            widget_output("other", "VBox()"),
            nbformat.v4.new_output("stream", name="stdout", text="done\n")]),
    ]
    if error:
        nb.cells.append(nbformat.v4.new_code_cell("1 / 0", execution_count=3, outputs=[
            nbformat.v4.new_output("error", ename="ZeroDivisionError",
                                   evalue="division by zero", traceback=["ZeroDivisionError"])]))
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": WIDGET_STATE, "version_major": 2, "version_minor": 0}}
    return nb


@pytest.fixture
def runs(tmp_path):
    """``papermill_runs/smoke`` with two clean executed notebooks, a broken one, one not run,
    and the pipeline's manifest."""
    runs_dir, figures_dir = output_paths("smoke", tmp_path)
    runs_dir.mkdir(parents=True)
    figures_dir.mkdir()
    nbformat.write(executed_notebook("01 · First"), runs_dir / "01_first.ipynb")
    nbformat.write(executed_notebook("02 · Second"), runs_dir / "02_second.ipynb")
    nbformat.write(executed_notebook("04 · Broken", error=True), runs_dir / "04_broken.ipynb")
    (figures_dir / "manifest.json").write_text(json.dumps({
        "profile": "smoke", "generated": "2026-01-01T00:00:00+00:00",
        "notebooks": [{"notebook": "01_first.ipynb", "seconds": 12.5},
                      {"notebook": "02_second.ipynb", "seconds": 61.25}]}))
    return tmp_path, runs_dir


def soup(path):
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def test_the_index_lists_the_notebooks_in_order_with_titles_times_and_failures(runs):
    root, runs_dir = runs
    index = build_book("smoke", output_root=root, registry=REGISTRY)
    assert index == runs_dir / "book" / "index.html"
    rows = [[td.get_text(" ", strip=True) for td in tr.find_all("td")]
            for tr in soup(index).select("tbody tr")]
    assert rows == [
        ["01_first", "01 · First", "12.5 s", "ok"],
        ["02_second", "02 · Second", "61.2 s", "ok"],
        ["03_never_run", "not executed yet: make reproduce PROFILE=smoke ONLY=03", "", ""],
        ["04_broken", "04 · Broken", "", "1 failed"],
    ]
    links = {a["href"] for a in soup(index).select("tbody a")}
    assert links == {"01_first.html", "02_second.html", "04_broken.html"}
    assert all((index.parent / link).is_file() for link in links)
    assert (index.parent / "plotly.min.js").stat().st_size > 1_000_000


def test_pages_are_local_and_link_to_their_neighbours(runs):
    root, _ = runs
    index = build_book("smoke", output_root=root, registry=REGISTRY)
    page = soup(index.parent / "02_second.html")
    nav = [[a["href"] for a in n.find_all("a")] for n in page.select("nav.aq-nav")]
    assert nav == [["index.html", "01_first.html", "04_broken.html"]] * 2
    assert page.title.get_text() == "02 · Second"
    for element, attribute in (("script", "src"), ("link", "href"), ("img", "src")):
        for tag in page.find_all(element):
            url = tag.get(attribute, "")
            assert not url.startswith(("http:", "https:", "//")), f"<{element}> loads {url}"
    assert [s["src"] for s in page.find_all("script", src=True)] == ["plotly.min.js"]
    # the figure: its static PNG and the data plotly.js draws; no widget manager, no MathJax
    (figure,) = page.select(".aq-figure")
    assert figure.select_one("img.aq-figure-static")["src"] == \
        "data:image/png;base64," + png_base64()
    spec = json.loads(figure.select_one("script.aq-figure-data").string)
    assert spec["data"][0]["type"] == "bar"
    # the tqdm bar as it ended; the other widget as a note
    assert page.select_one(".aq-progress").get_text(" ", strip=True) == \
        "trials:\u2007100% 12/12\u2007[00:03<00:00]"  # (strip=True strips \u2007 too)
    assert page.select_one(".aq-progress progress")["value"] == "12"
    assert "needs a running kernel" in page.select_one(".aq-widget-note").get_text()
    # math typeset as an image with its TeX as alt text; code left alone
    (math,) = page.select("img.aq-math")
    assert math["alt"] == "d(f, g) = \\sum_l W_1"
    assert page.find("code", string="$not math$") is not None
    assert page.select(".aq-error") == []
    assert len(soup(index.parent / "04_broken.html").select(".aq-error")) == 1


def test_render_math_outside_code_only():
    out = render_math("a $x^2$ b `$y$` c $\\notacommand{$ d")
    assert out.startswith('a <img class="aq-math" alt="x^2"')
    assert "`$y$`" in out
    assert out.endswith("c `\\notacommand{` d")  # mathtext cannot parse it: code
    assert render_math("costs 5$ and no math") == "costs 5$ and no math"


def test_nothing_executed_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(BookError, match="make reproduce PROFILE=smoke"):
        build_book("smoke", output_root=tmp_path, registry=REGISTRY)
    assert main(["--profile", "smoke", "--output-root", str(tmp_path)]) == 1
    assert "no executed notebooks in" in capsys.readouterr().err


def test_the_book_in_chromium_offline(runs, book_checker):
    root, runs_dir = runs
    (runs_dir / "04_broken.ipynb").unlink()
    index = build_book("smoke", output_root=root, registry=REGISTRY)
    found = book_checker(index)
    assert found == {"01_first.html": {"figures": 1, "images": 2},
                     "02_second.html": {"figures": 1, "images": 2}}  # the PNG and the math


def test_the_browser_check_catches_an_error_cell(runs, book_checker):
    root, _ = runs
    index = build_book("smoke", output_root=root, registry=REGISTRY)
    with pytest.raises(AssertionError, match="04_broken.html: 1 cell"):
        book_checker(index)
