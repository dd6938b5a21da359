"""The committed notebooks carry no outputs, and JupyterLab (``make lab``) saves them so.

The notebooks in ``notebooks/`` are sources: their executed copies, with outputs, are what the
pipeline writes to ``papermill_runs/``. A notebook committed with outputs (saved in JupyterLab
without ``make lab``'s pre-save hook) fails here, naming the notebook, the cells and the command
that strips them.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
from traitlets.config import Config

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
CONFIG_FILE = REPO_ROOT / "jupyter_server_config.py"


def tracked_notebooks() -> list[Path]:
    """``notebooks/*.ipynb`` as git tracks them (every such file outside a git checkout)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--", "notebooks/*.ipynb"],
                                cwd=REPO_ROOT, capture_output=True, text=True, check=True,
                                timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
    found = sorted(REPO_ROOT / name for name in listed.split("\0")
                   if name and "/" not in name.removeprefix("notebooks/"))
    return found or sorted(NOTEBOOKS_DIR.glob("*.ipynb"))


NOTEBOOKS = tracked_notebooks()


def dirty_cells(notebook: dict) -> list[str]:
    """One line per code cell with outputs or an execution count."""
    found = []
    for index, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        outputs, count = cell.get("outputs") or [], cell.get("execution_count")
        if outputs or count is not None:
            found.append(f"cell {index} (0-based, id {cell.get('id', '?')}): {len(outputs)} "
                         f"output(s), execution_count {count}")
    return found


def test_the_notebooks_are_found():
    assert {"01_search_space.ipynb", "04_benchmark_search.ipynb"} <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_has_no_outputs(path):
    relative = path.relative_to(REPO_ROOT).as_posix()
    dirty = dirty_cells(json.loads(path.read_text(encoding="utf-8")))
    assert not dirty, (
        f"{relative} is committed with outputs:\n  " + "\n  ".join(dirty)
        + f"\nstrip them with `jupyter nbconvert --clear-output --inplace {relative}` "
        "(and edit it in `make lab`, whose pre-save hook keeps notebooks/ clean)")


def load_config_file():
    """``jupyter_server_config.py`` as Jupyter loads it: a module whose ``get_config()``
    returns the config being built."""
    spec = importlib.util.spec_from_file_location("jupyter_server_config_under_test",
                                                  CONFIG_FILE)
    module = importlib.util.module_from_spec(spec)
    config = Config()
    module.get_config = lambda: config
    with warnings.catch_warnings():  # the file installs a warnings filter; keep it local
        spec.loader.exec_module(module)
    return module, config


def notebook_with_outputs() -> dict:
    return {
        "cells": [
            {"cell_type": "markdown", "id": "m0", "metadata": {}, "source": ["# Title"]},
            {"cell_type": "code", "execution_count": 7, "id": "c1", "metadata": {"tags": ["x"]},
             "outputs": [{"name": "stdout", "output_type": "stream", "text": ["4\n"]},
                         {"data": {"text/plain": ["4"]}, "execution_count": 7, "metadata": {},
                          "output_type": "execute_result"}],
             "source": ["print(2 + 2)\n", "2 + 2"]},
            {"cell_type": "code", "execution_count": None, "id": "c2", "metadata": {},
             "outputs": [], "source": ["pass"]},
        ],
        "metadata": {"kernelspec": {"name": "python3"}}, "nbformat": 4, "nbformat_minor": 5,
    }


def test_the_config_installs_the_pre_save_hook():
    module, config = load_config_file()
    assert config.ContentsManager.pre_save_hook is module.strip_outputs


@pytest.mark.parametrize("root_dir,path", [
    (REPO_ROOT, "notebooks/01_search_space.ipynb"),     # make lab: the repository root
    (REPO_ROOT, "/notebooks/new.ipynb"),
    (NOTEBOOKS_DIR, "01_search_space.ipynb"),           # a server rooted at notebooks/
    (None, "notebooks/04_benchmark_search.ipynb"),      # no contents manager: the repo root
])
def test_the_hook_strips_outputs_and_counts_of_notebooks_in_notebooks_dir(root_dir, path):
    module, _ = load_config_file()
    model = {"type": "notebook", "format": "json", "content": notebook_with_outputs()}
    before = copy.deepcopy(model)
    logged = []
    manager = None if root_dir is None else SimpleNamespace(
        root_dir=str(root_dir), log=SimpleNamespace(info=lambda *a: logged.append(a)))
    module.strip_outputs(model=model, path=path, contents_manager=manager)
    assert dirty_cells(model["content"]) == []
    cells, original = model["content"]["cells"], before["content"]["cells"]
    assert [c["source"] for c in cells] == [c["source"] for c in original]
    assert cells[1]["metadata"] == {"tags": ["x"]} and cells[0] == original[0]
    assert model["content"]["metadata"] == before["content"]["metadata"]
    if manager is not None:  # one line in the server's log: one cell had outputs
        assert len(logged) == 1 and logged[0][1:] == (path, 1), logged


@pytest.mark.parametrize("path,kind", [
    ("papermill_runs/smoke/01_search_space.ipynb", "notebook"),  # executed copies keep theirs
    ("scratch.ipynb", "notebook"),
    ("notebooks/sub/draft.ipynb", "notebook"),
    ("notebooks/01_search_space.ipynb", "file"),
])
def test_the_hook_leaves_other_saves_alone(path, kind):
    module, _ = load_config_file()
    model = {"type": kind, "format": "json", "content": notebook_with_outputs()}
    before = copy.deepcopy(model)
    module.strip_outputs(model=model, path=path,
                         contents_manager=SimpleNamespace(root_dir=str(REPO_ROOT), log=None))
    assert model == before
