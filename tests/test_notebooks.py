"""Every registered notebook runs under the smoke profile and writes its figures, and its page
of the book (``make book``) works offline in Chromium.

Each notebook is executed for real (papermill, python3 kernel) into a temporary output root, so
the committed ``figures/`` and ``papermill_runs/`` are never touched; the book is built from
that executed copy (no second execution) and opened with the network blocked: the page opens,
shows its figures (static images and the interactive plots) and no error cell.
"""

from __future__ import annotations

import json

import pytest

from aquasurf_core.book import main as build_book
from aquasurf_core.pipeline import NOTEBOOKS, NOTEBOOKS_DIR, output_paths, run_pipeline


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_runs_under_smoke_profile(notebook, tmp_path, book_checker):
    assert (NOTEBOOKS_DIR / notebook.filename).is_file(), f"{notebook.filename} is missing"
    manifest = run_pipeline("smoke", only=[notebook.filename], output_root=tmp_path,
                            progress=False)
    runs_dir, figures_dir = output_paths("smoke", tmp_path)
    assert (runs_dir / notebook.filename).is_file()
    (run,) = manifest.runs
    assert run.files, f"{notebook.filename} wrote nothing into figures_dir"
    for name in run.files:
        assert (figures_dir / name).stat().st_size > 0, name
    stems = {name.rsplit(".", 1)[0] for name in run.files}
    for stem in stems:
        assert stem.startswith(notebook.number + "_"), f"{stem} lacks the notebook prefix"
    suffixes = {name: {n.rsplit(".", 1)[1] for n in run.files if n.startswith(name + ".")}
                for name in stems}
    for stem, found in suffixes.items():
        assert found in ({"png", "html"}, {"csv", "md"}, {"md"}), (stem, found)
    listed = json.loads((figures_dir / "manifest.json").read_text())["notebooks"]
    assert [e["notebook"] for e in listed] == [notebook.filename]

    # the book of this executed copy, in Chromium, offline
    assert build_book(["--profile", "smoke", "--output-root", str(tmp_path)]) == 0
    pages = book_checker(runs_dir / "book" / "index.html")
    assert list(pages) == [f"{notebook.stem}.html"]
    figures = sum(name.endswith(".png") for name in run.files)
    assert pages[f"{notebook.stem}.html"]["figures"] >= min(figures, 1)
