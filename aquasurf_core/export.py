"""Exporting the notebooks' figures and tables into one flat figures directory.

Every figure is written twice: ``<name>.png`` (static, rendered by kaleido through a headless
Chromium) for the README and the paper comparison, and ``<name>.html`` (interactive plotly).
The HTML files load plotly.js from ``plotly.min.js`` beside them (written once per directory,
~4.6 MB), so each stays a few kB and they work offline, with no CDN. Every table is written as
``<name>.csv`` (full precision, for machines) and ``<name>.md`` (a GitHub-flavoured Markdown
table, for people).

Naming convention: one flat directory, every name prefixed with the two-digit number of the
notebook that makes it, e.g. ``01_operator_counts.png`` or ``02_eigenvalue_spectra.csv``. Files
then sort by notebook, a README gallery can link them directly, and two notebooks cannot collide.
:func:`save_figure` and :func:`save_table` refuse names that do not follow it.

PNG export needs Chromium (or Chrome). kaleido finds it through ``BROWSER_PATH`` or ``PATH``;
``scripts/ensure-browser.sh`` installs one. When export fails this module raises
:class:`FigureExportError` saying so; it never skips a PNG silently.
"""

from __future__ import annotations

import math
import numbers
import os
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aquasurf_core.storage import atomic_write_bytes, atomic_write_text

DEFAULT_WIDTH = 900
DEFAULT_HEIGHT = 560
DEFAULT_SCALE = 2
NAME_PATTERN = re.compile(r"[0-9]{2}_[A-Za-z0-9_-]+")
#: The plotly.js bundle every HTML figure of a directory loads, relative to itself.
PLOTLYJS_NAME = "plotly.min.js"

__all__ = [
    "DEFAULT_HEIGHT",
    "DEFAULT_SCALE",
    "DEFAULT_WIDTH",
    "PLOTLYJS_NAME",
    "FigureExportError",
    "markdown_table",
    "save_figure",
    "save_table",
    "write_plotlyjs",
]


class FigureExportError(RuntimeError):
    """A figure could not be written (usually: no Chromium for kaleido's PNG export)."""


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"figure/table name {name!r} must be the notebook number, an underscore and a "
            "stem of letters, digits, '_' or '-' without extension, e.g. '01_operator_counts'"
        )
    return name


def _prepare_dir(figures_dir: str | os.PathLike) -> Path:
    directory = Path(figures_dir)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


_browser_help = (
    "PNG export uses kaleido, which needs Chromium or Chrome. Install one "
    "(`bash scripts/ensure-browser.sh`, or `apt-get install chromium`) or set BROWSER_PATH to "
    "the browser executable."
)


def _check_browser_path() -> None:
    path = os.environ.get("BROWSER_PATH")
    if path and not (os.access(path, os.X_OK) or shutil.which(path)):
        raise FigureExportError(f"BROWSER_PATH={path!r} is not an executable. {_browser_help}")


# kaleido starts a fresh Chromium for every one-shot export (~3 s). After the first export in a
# process has succeeded (so a missing browser raised a proper error), keep one browser running
# for the rest of the process (~0.2 s per figure); kaleido closes it at exit.
_server_started = False


def _write_png(fig: Any, path: Path, width: int, height: int, scale: float) -> None:
    global _server_started
    import kaleido

    with warnings.catch_warnings():
        # plotly passes kaleido options the persistent server ignores; nothing to act on.
        warnings.filterwarnings("ignore", message="The kopts argument is ignored")
        fig.write_image(path, format="png", width=width, height=height, scale=scale)
    if not _server_started and hasattr(kaleido, "start_sync_server"):
        kaleido.start_sync_server(silence_warnings=True)
        _server_started = True
        # With the server running, every later to_image of plotly in this process (e.g. the
        # "png" renderer the pipeline's kernels use to store a static image of each displayed
        # figure) warns that its options are ignored; they are not needed.
        warnings.filterwarnings("ignore", message="The kopts argument is ignored",
                                category=UserWarning)


def write_plotlyjs(directory: str | os.PathLike) -> Path:
    """Write this plotly's ``plotly.min.js`` (:data:`PLOTLYJS_NAME`) into ``directory`` (made
    if missing) for the HTML pages there: atomically, and only when it is missing or differs
    (another plotly version), so an unchanged bundle is left as it is and a crash never leaves
    a truncated one. Returns its path."""
    from plotly.offline import get_plotlyjs

    path = _prepare_dir(directory) / PLOTLYJS_NAME
    data = get_plotlyjs().encode("utf-8")
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return path
    except FileNotFoundError:
        pass
    return atomic_write_bytes(path, data)


def save_figure(
    fig: Any,
    name: str,
    figures_dir: str | os.PathLike,
    *,
    width: int | None = None,
    height: int | None = None,
    scale: float = DEFAULT_SCALE,
) -> list[Path]:
    """Write a plotly figure as ``<name>.png`` and ``<name>.html`` in ``figures_dir``.

    The PNG is ``width x height`` CSS pixels (default: the figure's layout size, else
    ``DEFAULT_WIDTH x DEFAULT_HEIGHT``) rendered at ``scale`` device pixels per CSS pixel.
    The HTML loads plotly.js from ``plotly.min.js`` in the same directory (written there if
    missing or out of date; not among the returned paths), so it works offline, and uses
    ``name`` as its div id, so re-exporting an unchanged figure gives a byte-identical file.
    Both text files are replaced atomically. Returns the two paths (PNG first).
    """
    if not (hasattr(fig, "write_image") and hasattr(fig, "write_html")):
        raise TypeError(f"save_figure expects a plotly Figure, got {type(fig).__name__}")
    _check_name(name)
    if not (isinstance(scale, numbers.Real) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    directory = _prepare_dir(figures_dir)
    width = int(width or fig.layout.width or DEFAULT_WIDTH)
    height = int(height or fig.layout.height or DEFAULT_HEIGHT)

    png = directory / f"{name}.png"
    html = directory / f"{name}.html"
    _check_browser_path()
    try:
        _write_png(fig, png, width, height, scale)
    except Exception as error:
        png.unlink(missing_ok=True)
        raise FigureExportError(f"could not write {png}: {error}\n{_browser_help}") from error
    if not png.is_file() or png.stat().st_size == 0:
        raise FigureExportError(f"kaleido wrote no PNG data to {png}. {_browser_help}")
    # plotly's own write_html(include_plotlyjs="directory") would write both files in place;
    # the bundle goes first so an HTML file never points at a missing one.
    write_plotlyjs(directory)
    atomic_write_text(html, fig.to_html(include_plotlyjs="directory", full_html=True,
                                        div_id=name))
    return [png, html]


def _default_float(value: float) -> str:
    return f"{value:.4g}"


def _cell(value: Any, float_format: Callable[[float], str]) -> str:
    if value is None:
        return ""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        value = float(value)
        if math.isnan(value):
            return ""
        text = float_format(value)
    else:
        try:
            import pandas as pd

            if value is pd.NA or value is pd.NaT:
                return ""
        except ImportError:  # pragma: no cover - pandas is a dependency
            pass
        text = str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", "<br>").replace(
        "\n", "<br>"
    )


def markdown_table(
    df: Any,
    *,
    index: bool = False,
    float_format: Callable[[float], str] = _default_float,
) -> str:
    """Format a DataFrame as a GitHub-flavoured Markdown table (no ``tabulate`` needed).

    Numeric columns are right-aligned, others left-aligned; floats go through ``float_format``
    (default 4 significant digits), NaN/None/NA become empty cells, and ``|`` and newlines in
    text are escaped so they cannot break the table. ``index=True`` adds the index as the first
    column (headed by the index name, if any).
    """
    import pandas as pd

    if isinstance(df, pd.Series):
        df = df.to_frame()
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if isinstance(df.columns, pd.MultiIndex):
        raise ValueError("markdown_table does not support MultiIndex columns; flatten them first")
    frame = df.reset_index() if index else df
    headers = [_cell(c, float_format) if str(c) else " " for c in frame.columns]
    right = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
             for c in frame.columns]
    rows = [[_cell(v, float_format) for v in row] for row in frame.itertuples(index=False)]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" if r else ":---" for r in right) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def save_table(
    df: Any,
    name: str,
    figures_dir: str | os.PathLike,
    *,
    index: bool = False,
    float_format: Callable[[float], str] = _default_float,
) -> list[Path]:
    """Write a DataFrame as ``<name>.csv`` (full precision) and ``<name>.md`` in ``figures_dir``.

    ``index`` says whether the DataFrame index is a column worth keeping (default: no).
    Returns the two paths (CSV first).
    """
    import pandas as pd

    if isinstance(df, pd.Series):
        df = df.to_frame()
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"save_table expects a pandas DataFrame, got {type(df).__name__}")
    _check_name(name)
    directory = _prepare_dir(figures_dir)
    text = markdown_table(df, index=index, float_format=float_format)
    csv = directory / f"{name}.csv"
    md = directory / f"{name}.md"
    df.to_csv(csv, index=index)
    md.write_text(text, encoding="utf-8")
    return [csv, md]
