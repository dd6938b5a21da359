"""The inspector: an interactive view of the UMAP embeddings (paper Figure 4, Section 4), above
:mod:`~aquasurf_core.embedding` and beside :mod:`~aquasurf_core.search`.

* :mod:`~aquasurf_core.inspector.widget` -- :class:`Inspector`, the ipywidgets + plotly widget
  (JupyterLab, or any Jupyter front end that renders widgets).
* :mod:`~aquasurf_core.inspector.page` -- the widget as a web page served by Voila
  (``aquasurf inspect``), and JupyterLab served on a folder (the browser tests).
* :mod:`~aquasurf_core.inspector.driver` -- driving either page in headless Chromium
  (Playwright): clicks, searches, timings, screenshots.

This is the only stage that imports widget libraries (ipywidgets, anywidget, plotly's
FigureWidget); the search stages never load it. ``Inspector`` is imported on first use, so that
``aquasurf inspect`` starts its server without loading torch or the widgets.
"""

from __future__ import annotations

import importlib

__all__ = ["Inspector"]


def __getattr__(name: str):
    if name == "Inspector":
        value = importlib.import_module("aquasurf_core.inspector.widget").Inspector
        globals()[name] = value
        return value
    raise AttributeError(f"module 'aquasurf_core.inspector' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
