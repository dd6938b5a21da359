"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

PARAMETERS_CELL = """\
profile = "smoke"
figures_dir = "figures"
cache_dir = ".aquasurf_cache"
seed = 0
"""


def write_notebook(path: Path, cells: list[str], *, parameters: str = PARAMETERS_CELL) -> Path:
    """Write a Python notebook whose first code cell is ``parameters`` (tagged 'parameters')
    followed by ``cells``; a cell starting with ``# md`` becomes a Markdown cell."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    for source in cells:
        if source.startswith("# md"):
            nb.cells.append(nbformat.v4.new_markdown_cell(source.removeprefix("# md").strip()))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(source))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def notebook_writer():
    return write_notebook
