"""Jupyter server configuration of ``make lab``: notebooks/ stays free of outputs.

The notebooks in ``notebooks/`` are committed without outputs or execution counts (the executed
copies, with their outputs, are what ``make reproduce`` writes to ``papermill_runs/``;
``tests/test_notebooks_clean.py`` fails on a notebook that carries any). Saving in JupyterLab
would write the outputs of the session into the file, so :func:`strip_outputs`, the contents
manager's pre-save hook, removes them first from every notebook directly in ``notebooks/``:
the file on disk stays clean while the open notebook keeps showing its outputs until it is
closed. Notebooks elsewhere (``papermill_runs/``, your own folders) are saved as they are.

``make lab`` adds the repository root to ``JUPYTER_CONFIG_PATH``, so this file is read besides
(not instead of) your own Jupyter configuration, ahead of it: a ``pre_save_hook`` of your own is
replaced by this one. By hand, from the repository root: ``JUPYTER_CONFIG_PATH=$PWD jupyter lab``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

#: the notebooks kept without outputs
NOTEBOOKS_DIR = Path(__file__).resolve().parent / "notebooks"


def is_clean_notebook(path: str, root_dir: str | None = None) -> bool:
    """Whether ``path`` (an API path, relative to the server's ``root_dir``; default the
    repository root) is a notebook directly in ``notebooks/``."""
    root = Path(root_dir).expanduser() if root_dir else NOTEBOOKS_DIR.parent
    os_path = (root / path.strip("/")).resolve()
    return os_path.suffix == ".ipynb" and os_path.parent == NOTEBOOKS_DIR


def strip_outputs(model: dict[str, Any], path: str, contents_manager: Any = None,
                  **kwargs: Any) -> None:
    """Pre-save hook: clear the outputs and execution counts of the code cells of a notebook
    model being saved into ``notebooks/`` (in place; any other model is left alone)."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    if not is_clean_notebook(path, getattr(contents_manager, "root_dir", None)):
        return
    stripped = 0
    for cell in model["content"].get("cells", []):
        if cell.get("cell_type") == "code":
            stripped += bool(cell.get("outputs")) or cell.get("execution_count") is not None
            cell["outputs"] = []
            cell["execution_count"] = None
    log = getattr(contents_manager, "log", None)
    if stripped and log is not None:
        log.info("%s: saved without the outputs of %d cell(s) (notebooks/ stays clean; "
                 "executed copies go to papermill_runs/)", path, stripped)


# jupyter_server validates a configured hook twice and then warns that it replaces itself
# ("Overriding existing pre_save_hook (strip_outputs) with a new one (strip_outputs)"): silence
# that one message, and only for this hook.
warnings.filterwarnings("ignore", message=r"Overriding existing pre_save_hook \(strip_outputs\) "
                        r"with a new one \(strip_outputs\)", category=UserWarning)
c = get_config()  # noqa: F821 -- provided by traitlets when Jupyter loads this file
c.ContentsManager.pre_save_hook = strip_outputs
