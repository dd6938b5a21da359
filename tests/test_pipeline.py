"""The papermill runner, run for real (papermill, the python3 kernel, kaleido) on a tiny
registry of generated notebooks in a temporary directory."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup
from nbconvert import HTMLExporter
from PIL import Image

from aquasurf_core.pipeline import (
    COMMON_PARAMETERS,
    NOTEBOOKS,
    NOTEBOOKS_DIR,
    Notebook,
    NotebookFailed,
    PipelineError,
    check_notebooks,
    format_manifest,
    output_paths,
    run_pipeline,
    select,
)

ALPHA = [
    "# md A notebook that makes one figure and one table.",
    "import os\nimport pandas as pd\nimport plotly.graph_objects as go\n"
    "from aquasurf_core.export import save_figure, save_table",
    "fig = go.Figure(go.Scatter(x=list(range(n_points)), y=[i * i for i in range(n_points)]))\n"
    "save_figure(fig, '01_squares', figures_dir, width=300, height=200, scale=1)\n"
    "save_figure(go.Figure(go.Bar(y=[1, 2])), '01_bars', figures_dir, width=200, height=100)\n"
    "save_table(pd.DataFrame({'i': range(n_points)}), '01_points', figures_dir)\n"
    "print('n_points', n_points, 'seed', seed, 'cwd', os.getcwd())",
]
BETA = [
    "import pathlib\n"
    "assert profile == 'smoke', profile\n"
    "assert pathlib.Path(cache_dir).is_dir(), cache_dir\n"
    "pathlib.Path(figures_dir, '02_note.md').write_text('# from ' + label + '\\n')",
]
BROKEN = [
    "# md cell 1: markdown",
    "x = 1",
    "y = 2\nraise ValueError('boom-marker ' + str(x))",
    "print('never reached')",
]


@pytest.fixture
def project(tmp_path, notebook_writer):
    """A notebooks dir with three notebooks and an output root, both in tmp_path."""
    nbdir = tmp_path / "notebooks"
    params = "profile = 'paper'\nfigures_dir = ''\ncache_dir = ''\nseed = 1\n"
    notebook_writer(nbdir / "01_alpha.ipynb", ALPHA, parameters=params + "n_points = 100\n")
    notebook_writer(nbdir / "02_beta.ipynb", BETA, parameters=params + "label = 'default'\n")
    notebook_writer(nbdir / "03_broken.ipynb", BROKEN, parameters=params)
    registry = [
        Notebook("01_alpha.ipynb", smoke={"n_points": 4}, paper={"n_points": 1000},
                 outputs=("01_squares", "01_points")),
        Notebook("02_beta.ipynb", smoke={"label": "smoke-run"}, paper={}),
    ]
    return nbdir, tmp_path / "out", registry


def test_runs_notebooks_in_order_collects_figures_and_writes_manifest(project):
    nbdir, out, registry = project
    cache = out / "cache"
    manifest = run_pipeline("smoke", registry=registry, notebooks_dir=nbdir, output_root=out,
                            cache_dir=cache, progress=False)
    runs_dir, figures_dir = output_paths("smoke", out)
    assert figures_dir == out.resolve() / "papermill_runs" / "smoke" / "figures"
    assert [r.notebook for r in manifest.runs] == ["01_alpha.ipynb", "02_beta.ipynb"]

    # executed copies, with the injected parameters taking effect
    executed = nbformat.read(runs_dir / "01_alpha.ipynb", as_version=4)
    tags = [c.metadata.get("tags", []) for c in executed.cells]
    assert ["injected-parameters"] in tags
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code"
                      for o in c.outputs)
    assert "n_points 4 seed 0" in printed
    assert f"cwd {nbdir.resolve()}" in printed
    assert (runs_dir / "02_beta.ipynb").is_file()

    # figures and tables, flat in figures_dir
    png = figures_dir / "01_squares.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (figures_dir / "01_squares.html").read_text()
    assert '<script charset="utf-8" src="plotly.min.js">' in html and "cdn.plot.ly" not in html
    assert (figures_dir / "plotly.min.js").stat().st_size > 1_000_000
    assert (figures_dir / "01_points.csv").read_text().splitlines() == ["i", "0", "1", "2", "3"]
    assert (figures_dir / "01_points.md").read_text().startswith("| i |")
    assert (figures_dir / "02_note.md").read_text() == "# from smoke-run\n"

    # manifest: per notebook, seconds and exactly the files it wrote
    document = json.loads((figures_dir / "manifest.json").read_text())
    assert document["profile"] == "smoke"
    entries = {e["notebook"]: e for e in document["notebooks"]}
    assert entries["01_alpha.ipynb"]["files"] == [
        "01_bars.html", "01_bars.png", "01_points.csv", "01_points.md", "01_squares.html",
        "01_squares.png"]
    assert entries["02_beta.ipynb"]["files"] == ["02_note.md"]
    assert entries["02_beta.ipynb"]["executed"] == "papermill_runs/smoke/02_beta.ipynb"
    assert all(e["seconds"] > 0 for e in entries.values())
    assert document["shared"] == ["plotly.min.js"]  # no notebook's own file
    text = format_manifest(manifest)
    assert "01_alpha.ipynb" in text and "01_squares.png" in text

    # --only re-runs one notebook and keeps the other's manifest entry
    again = run_pipeline("smoke", only=["2"], registry=registry, notebooks_dir=nbdir,
                         output_root=out, cache_dir=cache, progress=False)
    assert [r.notebook for r in again.runs] == ["02_beta.ipynb"]
    document = json.loads((figures_dir / "manifest.json").read_text())
    assert [e["notebook"] for e in document["notebooks"]] == ["01_alpha.ipynb", "02_beta.ipynb"]


def test_failing_cell_names_notebook_and_cell(project):
    nbdir, out, registry = project
    registry = [*registry[1:], Notebook("03_broken.ipynb")]
    with pytest.raises(NotebookFailed) as info:
        run_pipeline("smoke", registry=registry, notebooks_dir=nbdir, output_root=out,
                     cache_dir=out / "cache", progress=False)
    error = info.value
    # source cells: 0 parameters, 1 markdown, 2 'x = 1', 3 raise
    assert (error.notebook, error.cell_index, error.ename) == ("03_broken.ipynb", 3, "ValueError")
    message = str(error)
    assert "03_broken.ipynb" in message and "cell 3" in message
    assert "ValueError: boom-marker 1" in message
    assert "line 2: raise ValueError" in message
    runs_dir, figures_dir = output_paths("smoke", out)
    assert error.executed_copy == runs_dir / "03_broken.ipynb" and error.executed_copy.is_file()
    assert not (figures_dir / "manifest.json").exists()  # a failed run writes no manifest


def test_refuses_missing_notebooks_undeclared_parameters_and_unknown_selection(project):
    nbdir, out, registry = project
    kwargs = {"notebooks_dir": nbdir, "output_root": out, "progress": False}
    with pytest.raises(PipelineError, match="missing .*04_absent.ipynb"):
        run_pipeline("smoke", registry=[*registry, Notebook("04_absent.ipynb")], **kwargs)
    with pytest.raises(PipelineError, match="does not assign typo_param"):
        run_pipeline("smoke", registry=[Notebook("02_beta.ipynb", smoke={"typo_param": 1})],
                     **kwargs)
    with pytest.raises(PipelineError, match="matches no registered notebook"):
        run_pipeline("smoke", only=["07"], registry=registry, **kwargs)
    with pytest.raises(PipelineError, match="unknown profile"):
        run_pipeline("quick", registry=registry, **kwargs)
    assert not (out / "papermill_runs").exists()  # all checked before anything ran


def test_parameters_cell_must_declare_common_parameters(tmp_path, notebook_writer):
    notebook_writer(tmp_path / "01_x.ipynb", ["pass"], parameters="profile = 'smoke'\n")
    with pytest.raises(PipelineError, match="figures_dir, cache_dir, seed"):
        run_pipeline("smoke", registry=[Notebook("01_x.ipynb")], notebooks_dir=tmp_path,
                     output_root=tmp_path, progress=False)


def test_registry_entries_and_selection():
    assert [nb.filename for nb in NOTEBOOKS[:3]] == ["00_benchmarks.ipynb",
                                                     "01_search_space.ipynb",
                                                     "02_fim_eigenvalues.ipynb"]
    numbers = [nb.number for nb in NOTEBOOKS]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    for nb in NOTEBOOKS:
        for profile in ("smoke", "paper", "full"):
            assert not set(nb.parameters(profile)) & set(COMMON_PARAMETERS)
        # full = paper's parameters with full's on top (each resolved: a registry's list)
        on_top = Notebook(nb.filename, paper=nb.full).parameters("paper")
        assert nb.parameters("full") == {**nb.parameters("paper"), **on_top}
    for profile in ("smoke", "paper", "full"):  # every parameter passed is declared
        check_notebooks(NOTEBOOKS, NOTEBOOKS_DIR, profile)
    full = {nb.number: nb.parameters("full") for nb in NOTEBOOKS}
    assert full["00"]["source"] == full["03"]["source"] == full["04"]["source"] == "rebuild"
    assert full["05"]["source"] == "run" and full["05"]["space"] == "4-node"
    assert [nb.stem for nb in select(NOTEBOOKS, ["02", "01_search_space.ipynb"])] == [
        "01_search_space", "02_fim_eigenvalues"]
    with pytest.raises(ValueError, match="common parameters"):
        Notebook("05_x.ipynb", smoke={"seed": 3})
    with pytest.raises(ValueError, match="NN_name.ipynb"):
        Notebook("search.ipynb")


def test_paths_per_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("AQUASURF_OUTPUT_ROOT", str(tmp_path))
    assert output_paths("paper") == (tmp_path / "papermill_runs" / "paper", tmp_path / "figures")
    assert output_paths("smoke")[1] == tmp_path / "papermill_runs" / "smoke" / "figures"
    assert output_paths("full")[1] == tmp_path / "papermill_runs" / "full" / "figures"


def test_command_line_exits_nonzero_with_the_reason(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "aquasurf_core", "reproduce", "--profile", "smoke", "--only", "99",
         "--output-root", str(tmp_path), "--no-progress"],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[1],
    )
    assert result.returncode == 1
    assert "FAILED" in result.stderr and "'99' matches no registered notebook" in result.stderr


def test_executed_figures_carry_a_png_that_nbconvert_shows(tmp_path, notebook_writer):
    """The pipeline's kernels store every displayed plotly figure as plotly JSON (JupyterLab)
    and as a PNG, so ``jupyter nbconvert --to html`` (and GitHub) show it as an image."""
    nbdir = tmp_path / "notebooks"
    notebook_writer(nbdir / "01_fig.ipynb", [
        "import plotly.graph_objects as go\n"
        "from aquasurf_core.export import save_figure\n"
        "fig = go.Figure(go.Bar(x=['a', 'b'], y=[1, 3]), layout={'width': 320, 'height': 240})\n"
        "save_figure(fig, '01_bars', figures_dir)  # starts kaleido's server: no warning after\n"
        "fig"])
    run_pipeline("smoke", registry=[Notebook("01_fig.ipynb")], notebooks_dir=nbdir,
                 output_root=tmp_path, cache_dir=tmp_path / "cache", progress=False)
    executed = nbformat.read(output_paths("smoke", tmp_path)[0] / "01_fig.ipynb", as_version=4)
    (output,) = executed.cells[-1].outputs  # the figure, and no warning
    assert {"application/vnd.plotly.v1+json", "image/png"} <= set(output["data"])
    png = Image.open(io.BytesIO(base64.b64decode(output["data"]["image/png"])))
    assert png.size == (320, 240)  # the figure's own size
    html, _ = HTMLExporter(template_name="lab").from_notebook_node(executed)
    images = BeautifulSoup(html, "html.parser").select(".jp-OutputArea-output img")
    assert [img["src"][:22] for img in images] == ["data:image/png;base64,"]
