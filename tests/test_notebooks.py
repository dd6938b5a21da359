"""Every registered notebook runs under the smoke profile and writes its figures.

Each notebook is executed for real (papermill, python3 kernel) into a temporary output root, so
the committed ``figures/`` and ``papermill_runs/`` are never touched.
"""

from __future__ import annotations

import json

import pytest

from aquasurf_core.pipeline import NOTEBOOKS, NOTEBOOKS_DIR, output_paths, run_pipeline


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_runs_under_smoke_profile(notebook, tmp_path):
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
