"""The inspector is a stage of its own: the search (and the embeddings it builds on) never
load a widget library, and the stage's own entry points load only what they need."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WIDGET_LIBRARIES = ("ipywidgets", "anywidget", "plotly")


def loaded_after(module: str) -> dict[str, bool]:
    """Which of :data:`WIDGET_LIBRARIES` (and torch) ``import module`` loads, in a fresh
    interpreter."""
    names = [*WIDGET_LIBRARIES, "torch"]
    code = (f"import sys, {module}\n"
            f"import json; print(json.dumps({{n: n in sys.modules for n in {names!r}}}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ["aquasurf_core.search.engine",
                                   "aquasurf_core.search.benchmark_search",
                                   "aquasurf_core.embedding"])
def test_the_search_loads_no_widget_library(module):
    loaded = loaded_after(module)
    assert loaded["torch"]  # the check sees what the import loads
    assert {name for name in WIDGET_LIBRARIES if loaded[name]} == set()


def test_the_search_stage_imports_lazily():
    """``import aquasurf_core.search`` loads none of it (PEP 562): neither widgets nor torch."""
    loaded = loaded_after("aquasurf_core.search")
    assert not any(loaded.values()), loaded


def test_the_page_server_loads_neither_widgets_nor_torch():
    """``aquasurf inspect`` starts Voila without loading the widget (its kernel does)."""
    loaded = loaded_after("aquasurf_core.inspector.page")
    assert not any(loaded.values()), loaded


def test_the_widget_loads_them():
    """The yardstick: the check sees a widget import (anywidget comes with plotly's first
    FigureWidget, not with the import)."""
    loaded = loaded_after("aquasurf_core.inspector.widget")
    assert loaded["ipywidgets"] and loaded["plotly"] and loaded["torch"], loaded
