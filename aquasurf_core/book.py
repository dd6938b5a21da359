"""The book: a browsable site of the executed notebooks that works offline (``make book``).

``make book [PROFILE=paper|smoke|full]`` (``python -m aquasurf_core.book --profile paper``)
reads the executed copies ``make reproduce`` writes (``papermill_runs/<profile>/NN_*.ipynb``)
and the pipeline's ``manifest.json`` beside the figures, and writes, **without executing
anything**, ``papermill_runs/<profile>/book/``:

* ``index.html``: the notebooks in the pipeline's order (:data:`aquasurf_core.pipeline.NOTEBOOKS`)
  with their titles (each notebook's first heading), run times from the manifest, and the
  number of cells that failed, each linked to its page; registered notebooks not executed yet
  are listed as such;
* one page per notebook, ``NN_name.html``: nbconvert's HTML exporter with JupyterLab's
  template (``lab``), with links to the index and to the previous and next notebook at the
  top and the bottom;
* ``plotly.min.js``, the one script the pages load.

Everything is local, so the book opens from the file system with the network off: the
template's CDN scripts (require.js, MathJax, mermaid, the widget manager) are left out, and

* **figures** (outputs with plotly JSON) are drawn interactively by the local plotly.js, with
  the PNG the pipeline stores beside each figure (:data:`aquasurf_core.pipeline.KERNEL_ENVIRONMENT`)
  as the static fallback: shown when plotly.js cannot draw (and when printing), hidden once
  the interactive figure is drawn;
* **math** in Markdown cells (``$...$``) is typeset here, by matplotlib's mathtext, as inline SVG
  images (alt text: the TeX source); a formula mathtext cannot parse stays as code;
* **widgets** have no kernel behind them in a static page: a tqdm progress bar is shown as it
  ended, from the widget state the executed notebook saved; any other widget (the inspector)
  as a note saying it needs JupyterLab;
* **errors**: an error output is marked (class ``aq-error``) and counted on the index.

Raises :class:`BookError` when there is no executed notebook to build from.
"""

from __future__ import annotations

import argparse
import base64
import copy
import html
import io
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aquasurf_core.export import PLOTLYJS_NAME, write_plotlyjs
from aquasurf_core.pipeline import MANIFEST_NAME, NOTEBOOKS, PROFILES, Notebook, output_paths

__all__ = ["BOOK_DIR", "BookError", "BookPage", "build_book", "main", "render_math"]

#: The book's folder inside ``papermill_runs/<profile>/``.
BOOK_DIR = "book"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
#: Font size (points) of typeset math: the size of the template's 14 px body text.
MATH_POINTS = 10.5


class BookError(RuntimeError):
    """The book cannot be built (nothing executed to build it from)."""


@dataclass
class BookPage:
    """One registered notebook in the book: its page (``None`` when not executed), title, run
    seconds from the manifest (``None`` when not listed) and number of error outputs."""

    notebook: str
    page: str | None
    title: str
    seconds: float | None
    errors: int


# ------------------------------------------------------------------------------------ math
_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.S)
_MATH = re.compile(r"(?<![\\$])\$(?!\$)([^$\n]+?)(?<![\\\s])\$")


def _math_image(tex: str) -> str | None:
    """An ``<img>`` of ``tex`` typeset by mathtext (SVG, data URI), or ``None`` when mathtext
    cannot parse it (or matplotlib, which the lock installs for mnist1d, is missing)."""
    try:
        from matplotlib import mathtext
        from matplotlib.font_manager import FontProperties
    except ImportError:
        return None

    buffer = io.BytesIO()
    try:
        depth = mathtext.math_to_image(f"${tex}$", buffer, prop=FontProperties(size=MATH_POINTS),
                                       dpi=72, format="svg")
    except (ValueError, RuntimeError):
        return None
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<img class="aq-math" alt="{html.escape(tex)}" style="vertical-align: '
            f'-{float(depth or 0):.2f}pt" src="data:image/svg+xml;base64,{data}">')


def render_math(markdown: str) -> str:
    """``markdown`` with every inline ``$...$`` formula outside code replaced by an ``<img>``
    of it typeset by matplotlib's mathtext (offline; the alt text is the TeX source). A
    formula mathtext cannot parse becomes inline code. ``$$`` and escaped ``\\$`` are left
    alone."""
    parts = _CODE.split(markdown)
    for i in range(0, len(parts), 2):  # even parts are outside code
        parts[i] = _MATH.sub(lambda m: _math_image(m.group(1)) or f"`{m.group(1)}`", parts[i])
    return "".join(parts)


# ------------------------------------------------------------------------- outputs
def _figure_html(spec: dict, png: str | None, index: int) -> str:
    """A plotly output: its PNG (the fallback) and a box plotly.js draws it into."""
    data = json.dumps(spec, separators=(",", ":")).replace("</", "<\\/")
    static = (f'<img class="aq-figure-static" alt="figure {index} (static image)" '
              f'src="data:image/png;base64,{png}">' if png else "")
    return (f'<div class="aq-figure" id="aq-figure-{index}">{static}'
            f'<div class="aq-figure-plot"></div>'
            f'<script type="application/json" class="aq-figure-data">{data}</script></div>')


def _progress_html(model_id: str, state: dict) -> str | None:
    """A tqdm bar (an HBox of HTML, FloatProgress, HTML) as it ended, or ``None``."""
    box = state.get(model_id, {})
    children = box.get("state", {}).get("children", [])
    if box.get("model_name") != "HBoxModel" or len(children) != 3:
        return None
    left, bar, right = (state.get(str(c).removeprefix("IPY_MODEL_"), {}) for c in children)
    if bar.get("model_name") != "FloatProgressModel":
        return None
    value, top = bar["state"].get("value", 0), bar["state"].get("max", 1)
    style = bar["state"].get("bar_style", "") or "running"
    text = [html.unescape(part.get("state", {}).get("value", "")) for part in (left, right)]
    return (f'<div class="aq-progress aq-progress-{html.escape(style)}">'
            f'<span>{html.escape(text[0])}</span> <progress value="{value}" max="{top}">'
            f'</progress> <span>{html.escape(text[1])}</span></div>')


WIDGET_NOTE = ('<div class="aq-widget-note">An interactive widget: it needs a running kernel. '
               "Open the notebook in JupyterLab (<code>make lab</code>) to use it.</div>")


def _prepare(nb: Any) -> tuple[Any, int]:
    """A copy of an executed notebook ready for the static page, and its error count."""
    nb = copy.deepcopy(nb)
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    nb.metadata.pop("widgets", None)  # no widget manager in the page
    figures = errors = 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = render_math(cell.source)
            continue
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            errors += output.get("output_type") == "error"
            data = output.get("data")
            if not data:
                continue
            if PLOTLY_MIME in data:
                figures += 1
                data["text/html"] = _figure_html(data[PLOTLY_MIME], data.get("image/png"),
                                                 figures)
                for key in (PLOTLY_MIME, "image/png"):
                    data.pop(key, None)
            elif WIDGET_MIME in data:
                model = data.pop(WIDGET_MIME).get("model_id", "")
                data["text/html"] = _progress_html(model, state) or WIDGET_NOTE
    return nb, errors


# ---------------------------------------------------------------------------- template
TEMPLATE = r"""
{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block extra_css %}
<style type="text/css">
nav.aq-nav { display: flex; gap: 1.5em; padding: 0.6em 1em; margin: 0 0 1em;
  font: 14px/1.4 var(--jp-ui-font-family, sans-serif); background: #f5f5f5;
  border-bottom: 1px solid #ddd; }
nav.aq-nav.aq-bottom { margin: 2em 0 0; border-top: 1px solid #ddd; border-bottom: 0; }
nav.aq-nav .aq-title { flex: 1; color: #555; }
.aq-figure { max-width: 100%; overflow-x: auto; }
.aq-figure-static { max-width: 100%; height: auto; display: block; }
.aq-figure.aq-drawn > .aq-figure-static { display: none; }
.aq-figure-plot:empty { display: none; }
.aq-progress { font: 12px var(--jp-code-font-family, monospace); color: #555; }
.aq-progress progress { vertical-align: middle; width: 12em; }
.aq-widget-note { padding: 0.5em 1em; border-left: 3px solid #1976d2; background: #e3f2fd; }
.aq-error { border-left: 4px solid #d32f2f; }
img.aq-math { display: inline; margin: 0; }
@media print {
  .aq-figure-plot { display: none !important; }
  .aq-figure .aq-figure-static { display: block !important; }
}
</style>
{% endblock extra_css %}
{%- block body_header -%}
{{ super() }}
{{ resources.book.nav_top }}
{%- endblock body_header -%}
{% block error -%}
<div class="aq-error">{{ super() }}</div>
{%- endblock error %}
{% block body_footer %}
{{ resources.book.nav_bottom }}
<script src="{{ resources.book.plotlyjs }}"></script>
<script>
document.querySelectorAll(".aq-figure").forEach(function (box) {
  if (!window.Plotly) { return; }  // the static image stays
  var spec = JSON.parse(box.querySelector("script.aq-figure-data").textContent);
  var plot = box.querySelector(".aq-figure-plot");
  Plotly.newPlot(plot, spec.data || [], spec.layout || {}, spec.config || {}).then(
    function () { box.classList.add("aq-drawn"); },
    function (error) { plot.replaceChildren(); box.classList.add("aq-failed");
                       console.error("figure", box.id, error); });
});
</script>
{{ super() }}
{% endblock body_footer %}
"""


def _exporter():
    import jinja2
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab", template_file="aquasurf_book.html.j2",
                        extra_loaders=[jinja2.DictLoader({"aquasurf_book.html.j2": TEMPLATE})])


def _title(nb: Any, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _nav(pages: list[BookPage], i: int, title: str, where: str) -> str:
    def link(page: BookPage | None, text: str) -> str:
        return f'<a href="{page.page}">{html.escape(text)}</a>' if page else ""

    ran = [p for p in pages if p.page]
    k = ran.index(pages[i])
    before = ran[k - 1] if k > 0 else None
    after = ran[k + 1] if k + 1 < len(ran) else None
    return (f'<nav class="aq-nav aq-{where}"><a class="aq-index" href="index.html">'
            f'&#8962; index</a><span class="aq-title">{html.escape(title)}</span>'
            f'{link(before, "← " + before.notebook.removesuffix(".ipynb")) if before else ""}'
            f'{link(after, after.notebook.removesuffix(".ipynb") + " →") if after else ""}</nav>')


def _index_html(pages: list[BookPage], profile: str, manifest: dict) -> str:
    rows = []
    for p in pages:
        name = html.escape(p.notebook.removesuffix(".ipynb"))
        if p.page is None:
            rows.append(f"<tr class='aq-missing'><td>{name}</td><td>not executed yet: "
                        f"<code>make reproduce PROFILE={profile} ONLY={p.notebook[:2]}</code>"
                        "</td><td></td><td></td></tr>")
            continue
        seconds = "" if p.seconds is None else f"{p.seconds:,.1f} s"
        errors = f"<span class='aq-failed'>{p.errors} failed</span>" if p.errors else "ok"
        rows.append(f"<tr><td><a href='{p.page}'>{name}</a></td>"
                    f"<td><a href='{p.page}'>{html.escape(p.title)}</a></td>"
                    f"<td class='aq-seconds'>{seconds}</td><td>{errors}</td></tr>")
    total = sum(p.seconds or 0 for p in pages)
    generated = html.escape(str(manifest.get("generated", "unknown")))
    built = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>aquasurf-core notebooks ({profile} profile)</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 62em; margin: 2em auto; padding: 0 1em; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: 0.4em 0.8em; border-bottom: 1px solid #ddd; }}
td.aq-seconds {{ text-align: right; white-space: nowrap; }}
.aq-failed {{ color: #d32f2f; font-weight: bold; }}
.aq-missing {{ color: #777; }}
</style></head>
<body>
<h1>aquasurf-core: the notebooks, executed ({html.escape(profile)} profile)</h1>
<p>The executed copies of <code>make reproduce PROFILE={html.escape(profile)}</code>, as pages;
nothing was re-executed to build them. Figures are interactive (plotly.js, local), with their
static image as the fallback. Run times from the pipeline's manifest (generated {generated});
book built {built}.</p>
<table><thead><tr><th>notebook</th><th>title</th><th>run time</th><th>cells</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
<tfoot><tr><td></td><td>all</td><td class='aq-seconds'>{total:,.1f} s</td><td></td></tr></tfoot>
</table>
</body></html>
"""


def build_book(profile: str = "paper", *, output_root: str | os.PathLike | None = None,
               out_dir: str | os.PathLike | None = None,
               registry: Sequence[Notebook] | None = None) -> Path:
    """Build the book of ``profile``'s executed notebooks (module docstring) and return the
    path of its ``index.html``.

    Arguments:
        profile: one of :data:`aquasurf_core.pipeline.PROFILES`.
        output_root: where ``papermill_runs/`` and the figures are
            (:func:`aquasurf_core.pipeline.output_paths`; default the repository, or
            ``$AQUASURF_OUTPUT_ROOT``).
        out_dir: the book's folder (default ``papermill_runs/<profile>/book``).
        registry: the notebooks, in order (default :data:`aquasurf_core.pipeline.NOTEBOOKS`).

    Raises :class:`BookError` when none of the registered notebooks has an executed copy, and
    :class:`aquasurf_core.pipeline.PipelineError` for an unknown profile.
    """
    import nbformat

    runs_dir, figures_dir = output_paths(profile, output_root)
    registry = list(NOTEBOOKS if registry is None else registry)
    out = Path(out_dir) if out_dir is not None else runs_dir / BOOK_DIR
    manifest: dict = {}
    manifest_path = figures_dir / MANIFEST_NAME
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("profile") != profile:
            manifest = {}
    seconds = {e["notebook"]: e.get("seconds") for e in manifest.get("notebooks", [])}

    executed = {nb.filename: runs_dir / nb.filename for nb in registry
                if (runs_dir / nb.filename).is_file()}
    if not executed:
        raise BookError(f"no executed notebooks in {runs_dir}: run `make reproduce "
                        f"PROFILE={profile}` first (the book only shows executed copies)")
    notebooks, pages = {}, []
    for entry in registry:
        path = executed.get(entry.filename)
        if path is None:
            pages.append(BookPage(entry.filename, None, entry.stem, None, 0))
            continue
        nb, errors = _prepare(nbformat.read(path, as_version=4))
        title = _title(nb, entry.stem)
        nb.metadata["title"] = title
        notebooks[entry.filename] = nb
        pages.append(BookPage(entry.filename, f"{entry.stem}.html", title,
                              seconds.get(entry.filename), errors))

    out.mkdir(parents=True, exist_ok=True)
    write_plotlyjs(out)
    exporter = _exporter()
    for i, page in enumerate(pages):
        if page.page is None:
            continue
        resources = {"book": {"nav_top": _nav(pages, i, page.title, "top"),
                              "nav_bottom": _nav(pages, i, page.title, "bottom"),
                              "plotlyjs": PLOTLYJS_NAME},
                     "metadata": {"name": page.title}}
        body, _ = exporter.from_notebook_node(notebooks[page.notebook], resources=resources)
        (out / page.page).write_text(body, encoding="utf-8")
    index = out / "index.html"
    index.write_text(_index_html(pages, profile, manifest), encoding="utf-8")
    return index


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m aquasurf_core.book [--profile paper] [--output-root DIR] [--out DIR]``:
    build the book and print where it is; exit status 1 (with the reason) when it cannot."""
    parser = argparse.ArgumentParser(prog="python -m aquasurf_core.book",
                                     description="Build the browsable book of the executed "
                                                 "notebooks (no re-execution).")
    parser.add_argument("--profile", choices=PROFILES, default="paper")
    parser.add_argument("--output-root", default=None,
                        help="where papermill_runs/ is (default: the repository)")
    parser.add_argument("--out", default=None,
                        help="the book's folder (default: papermill_runs/<profile>/book)")
    args = parser.parse_args(argv)
    try:
        index = build_book(args.profile, output_root=args.output_root, out_dir=args.out)
    except BookError as err:
        print(f"make book: {err}", file=sys.stderr)
        return 1
    print(f"book: {index}\nopen it in a browser: file://{index.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
