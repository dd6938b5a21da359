"""The inspector as a web page (:mod:`aquasurf_core.embedding.inspector`), served by Voila.

* :func:`serve` writes a one-cell notebook that displays ``Inspector(bench=...)``, runs Voila on
  it (``python -m voila``, this interpreter, bound to ``127.0.0.1``; its kernel is this
  interpreter too) and returns a :class:`PageServer` once the server answers. Every visit of
  the page starts a kernel that runs the notebook: it shows up after the benchmark is loaded
  and embedded (seconds; about 20 s more the first time a benchmark is embedded).
  ``aquasurf inspect`` is ``serve`` until Ctrl-C.
* :class:`InspectorPage` drives a served page in a Playwright browser page: waits for the plot,
  clicks a point, searches a name, and reads the detail panel, the message and the star.
* :func:`screenshot` does all of that in headless Chromium and saves a PNG of the inspector
  (notebook 03's figure, and the browser test), returning the measured timings.

The browser is ``$BROWSER_PATH``, else ``chromium`` on ``PATH`` (:func:`find_browser`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import webbrowser
from dataclasses import dataclass, field
from pathlib import Path

from aquasurf_core.paths import cache_dir

__all__ = ["CHROMIUM_ARGS", "InspectorPage", "PageServer", "find_browser", "free_port",
           "launch_chromium", "screenshot", "serve"]

KERNEL_NAME = "aquasurf-inspector"
#: Flags for headless Chromium in containers and CI (no sandbox, no GPU, no network chatter).
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync")
CELL = """\
from aquasurf_core.embedding import Inspector
from aquasurf_core.paths import set_cache_dir

set_cache_dir({cache!r})
Inspector(bench={bench!r})
"""


def free_port(port: int = 0) -> int:
    """``port`` if it is free on 127.0.0.1 now, else ``OSError``; ``0``: a free port the OS
    picks."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as err:
            raise OSError(f"port {port} on 127.0.0.1 is not available ({err.strerror})") \
                from err
        return int(sock.getsockname()[1])


def find_browser() -> str:
    """The Chromium executable: ``$BROWSER_PATH``, else ``chromium`` (or ``chromium-browser``,
    ``google-chrome``) on ``PATH``. Raises ``FileNotFoundError`` saying how to get one."""
    env = os.environ.get("BROWSER_PATH")
    if env:
        if not Path(env).is_file():
            raise FileNotFoundError(f"BROWSER_PATH={env} is not a file")
        return env
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError("no Chromium found: set BROWSER_PATH to a Chromium/Chrome "
                            "executable, or install one (Debian: apt-get install chromium)")


def _write_notebook(directory: Path, bench: str, cache: Path) -> Path:
    """The page's notebook, and a kernel spec running this interpreter (found through
    ``JUPYTER_PATH=<directory>/jupyter``)."""
    spec = directory / "jupyter" / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "aquasurf inspector", "language": "python"}))
    notebook = {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": KERNEL_NAME, "display_name": "aquasurf inspector",
                                    "language": "python"},
                     "language_info": {"name": "python"}},
        "cells": [{"cell_type": "code", "id": "inspector", "metadata": {}, "outputs": [],
                   "execution_count": None,
                   "source": CELL.format(bench=bench, cache=str(cache))}],
    }
    path = directory / "inspector.ipynb"
    path.write_text(json.dumps(notebook, indent=1))
    return path


@dataclass
class PageServer:
    """A running Voila server of the inspector (:func:`serve`): :attr:`url` is the page.
    :meth:`stop` (or leaving the ``with`` block) stops it and its kernels."""

    url: str
    process: subprocess.Popen
    directory: Path
    log_path: Path
    _temp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    def __enter__(self) -> PageServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        """Voila's output so far (its log)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait(self) -> int:
        """Block until the server exits; its exit status."""
        return self.process.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM to its process group, then SIGKILL after ``timeout``
        seconds) and remove its temporary files. Idempotent."""
        if self.process.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None


def serve(bench: str = "cnn", port: int | None = None, open_browser: bool = False, *,
          timeout: float = 60.0, cache: str | os.PathLike | None = None) -> PageServer:
    """Serve the inspector of benchmark ``bench`` with Voila on ``http://127.0.0.1:<port>/``.

    Arguments:
        bench: the benchmark shown first (``cnn``, ``resnet`` or ``vit``).
        port: the port (default: a free one, :func:`free_port`); one in use is an error.
        open_browser: open the page in the default web browser once the server answers.
        timeout: seconds to wait for the server to answer.
        cache: the project cache the page's kernel uses (default: this process's
            :func:`aquasurf_core.paths.cache_dir`).

    Returns a :class:`PageServer` (a context manager) once the server answers HTTP; the
    notebook itself runs when the page is opened. Raises ``ValueError`` for an unknown
    benchmark, ``OSError`` when the port is in use, ``RuntimeError`` (a first line saying
    what happened, then the end of Voila's log) when Voila exits or does not answer in
    time.
    """
    from aquasurf_core.bench.table import SHIPPED

    if bench not in SHIPPED:
        raise ValueError(f"unknown benchmark {bench!r}; choose one of {', '.join(SHIPPED)}")
    port = free_port(0 if port is None else int(port))
    temp = tempfile.TemporaryDirectory(prefix="aquasurf-inspector-")
    directory = Path(temp.name)
    notebook = _write_notebook(directory, bench, cache_dir() if cache is None else
                               Path(cache).expanduser().resolve())
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(directory / "jupyter"),
                                                        os.environ.get("JUPYTER_PATH")]))
    log_path = directory / "voila.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "voila", str(notebook), "--no-browser", f"--port={port}",
             "--Voila.ip=127.0.0.1", "--Voila.port_retries=0", "--show_tracebacks=True",
             "--theme=light"],
            cwd=directory, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
    server = PageServer(f"http://127.0.0.1:{port}/", process, directory, log_path, temp)
    try:
        _wait_until_answering(server, timeout)
    except BaseException:
        server.stop()
        raise
    if open_browser:
        webbrowser.open(server.url)
    return server


def _wait_until_answering(server: PageServer, timeout: float) -> None:
    """Poll a static URL of the server (not the page: that would start a kernel) until it
    answers HTTP."""
    probe = server.url + "voila/static/"
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"voila exited with status {server.process.returncode} before "
                               f"serving {server.url}:\n{server.log()[-3000:]}")
        try:
            with urllib.request.urlopen(probe, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # an HTTP answer, even 404: the server is up
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"voila did not answer at {server.url} within {timeout:.0f} s:"
                               f"\n{server.log()[-3000:]}")
        time.sleep(0.2)


class InspectorPage:
    """Drive the inspector in a Playwright (sync API) ``page``: each method waits for the
    page's answer, up to ``timeout`` seconds, and reads it back from the DOM."""

    POINTS = ".aq-plot .scatterlayer .trace:nth-child(1) path.point"
    STAR = ".aq-plot .scatterlayer .trace:nth-child(2) path.point"

    def __init__(self, page, timeout: float = 60.0) -> None:
        self.page = page
        self.timeout_ms = timeout * 1000
        #: the browser's console messages and uncaught page errors, for failure reports
        self.console: list[str] = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"page error: {e}"))

    def open(self, url: str, timeout: float = 300.0) -> float:
        """Load ``url`` and wait for the plot's points; seconds from the request to the plot
        drawn (kernel start, benchmark load and embedding included)."""
        start = time.perf_counter()
        self.page.goto(url, wait_until="commit", timeout=timeout * 1000)
        self.page.wait_for_selector(self.POINTS, state="attached", timeout=timeout * 1000)
        return time.perf_counter() - start

    def text(self, selector: str) -> str:
        """The visible text of the first element matching ``selector`` ("" if none)."""
        found = self.page.locator(selector)
        return found.first.inner_text() if found.count() else ""

    def detail_name(self) -> str:
        return self.text(".aq-detail-name").strip()

    def message(self) -> str:
        return self.text(".aq-message").strip()

    def point_center(self, index: int) -> tuple[float, float]:
        box = self.page.locator(self.POINTS).nth(index).bounding_box()
        return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    def hover_name(self, x: float, y: float) -> str:
        """Move the mouse to ``(x, y)`` and return the name in the hover label (the mouse
        leaves the plot first, so that the label read is the new one)."""
        labels = self.page.locator(".aq-plot .hoverlayer .hovertext")
        self.page.mouse.move(0, 0)
        labels.first.wait_for(state="detached", timeout=self.timeout_ms)
        self.page.mouse.move(x, y)
        label = labels.locator("tspan.line").first
        label.wait_for(timeout=self.timeout_ms)
        return label.text_content().strip()

    def click_point(self, index: int | None = None) -> tuple[str, float, float]:
        """Hover and click point ``index`` (default: the one nearest the plot's centre) and
        wait for the detail panel to show its function. Returns ``(name in the hover label,
        seconds from the click to the detail panel's title showing that name, seconds to the
        whole panel showing it: curve and Fisher CDFs drawn)``."""
        if index is None:
            index = self.central_points(1)[0]
        x, y = self.point_center(index)
        name = self.hover_name(x, y)
        start = time.perf_counter()
        self.page.mouse.click(x, y)
        self.wait_for_detail(name, whole=False)
        titled = time.perf_counter() - start
        self.wait_for_detail(name, whole=True)
        return name, titled, time.perf_counter() - start

    def wait_for_detail(self, name: str, whole: bool = True) -> None:
        """Wait for the detail panel's title to be ``name`` and (``whole``) its curve and CDF
        plots to be drawn for it (their title, legend)."""
        self.page.wait_for_function(
            """([name, whole]) => {
              const texts = sel => Array.from(document.querySelectorAll(sel),
                                              e => e.textContent.trim());
              const title = document.querySelector('.aq-detail-name');
              return title !== null && title.innerText.trim() === name
                && (!whole || (texts('.aq-curve .gtitle').includes(name + ' on [-5, 5]')
                               && (texts('.aq-cdf .legendtext').includes(name)
                                   || texts('.aq-cdf .gtitle').some(
                                        t => t.endsWith(name + ': invalid spectrum'))))); }""",
            arg=[name, whole], polling="raf", timeout=self.timeout_ms)

    def central_points(self, k: int, min_gap: float = 15.0) -> list[int]:
        """Indices of ``k`` points near the middle of the plot area (away from the toolbar,
        the legend and the colour bar), nearest first, each at least ``min_gap`` pixels from
        the others chosen: points on top of each other would show one function twice."""
        return self.page.evaluate(
            """([sel, k, gap]) => {
              const boxes = Array.from(document.querySelectorAll(sel),
                                       p => p.getBoundingClientRect());
              const xs = boxes.map(b => b.x + b.width / 2), ys = boxes.map(b => b.y + b.height / 2);
              const cx = (Math.min(...xs) + Math.max(...xs)) / 2;
              const cy = (Math.min(...ys) + Math.max(...ys)) / 2;
              const order = xs.map((x, i) => [(x - cx) ** 2 + (ys[i] - cy) ** 2, i])
                              .sort((a, b) => a[0] - b[0]).map(p => p[1]);
              const chosen = [];
              for (const i of order) {
                if (chosen.length === k) break;
                if (chosen.every(j => (xs[i] - xs[j]) ** 2 + (ys[i] - ys[j]) ** 2 >= gap * gap))
                  chosen.push(i);
              }
              return chosen; }""",
            [self.POINTS, k, min_gap])

    def search(self, name: str) -> str:
        """Type ``name`` in the search box, press Enter and return the message that answers
        it (the message changes to one that mentions the name, so ``name`` must differ from
        the previous search)."""
        before = self.message()
        box = self.page.locator(".aq-search input")
        box.fill(name)
        box.press("Enter")
        self.page.wait_for_function(
            "([before, name]) => { const e = document.querySelector('.aq-message');"
            " const t = e === null ? '' : e.innerText; return t !== before && t.includes(name); }",
            arg=[before, name], polling="raf", timeout=self.timeout_ms)
        return self.message()

    def plot_title(self) -> str:
        """The main plot's title as drawn ("" before the plot is)."""
        title = self.page.locator(".aq-plot .gtitle")
        return (title.first.text_content() or "").strip() if title.count() else ""

    def switch_feature(self, label: str) -> float:
        """Click the feature button ``label`` ("FIM", "outputs" or "both") and wait until the
        plot is redrawn with that embedding (its title names it); seconds taken. Raises
        ``TimeoutError`` with the title and the message line when it is not."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        start = time.perf_counter()
        self.page.locator(".aq-feature button", has_text=label).click()
        try:
            self.page.wait_for_function(
                "(text) => { const e = document.querySelector('.aq-plot .gtitle');"
                " return e !== null && e.textContent.includes(text); }",
                arg=f": {label} embedding", polling="raf", timeout=self.timeout_ms)
        except PlaywrightTimeout as err:
            raise TimeoutError(f"the plot was not redrawn with the {label} embedding within "
                               f"{self.timeout_ms / 1000:.0f} s; title: {self.plot_title()!r}; "
                               f"message: {self.message()!r}") from err
        return time.perf_counter() - start

    def star_label(self) -> str:
        """The legend entry of the star (``★ <name>``), "" when there is no star."""
        if not self.page.locator(self.STAR).count():
            return ""
        legend = self.page.locator(".aq-plot .legend .traces .legendtext")
        return (legend.first.text_content() or "").strip() if legend.count() else ""

    def wait_for_star(self, name: str) -> str:
        """Wait until the star's legend entry names ``name`` (the figure is redrawn after the
        message line changes: separate widget messages) and return :meth:`star_label`.
        Raises ``TimeoutError`` with what the plot holds (:meth:`plot_state`), the message
        line and the browser's console when it does not within the timeout."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_function(
                "(name) => [...document.querySelectorAll('.aq-plot .legend .traces .legendtext')]"
                ".some(e => (e.textContent || '').trim() === '\u2605 ' + name)",
                arg=name, polling="raf", timeout=self.timeout_ms)
        except PlaywrightTimeout as err:
            raise TimeoutError(
                f"no star for {name} within {self.timeout_ms / 1000:.0f} s; plot: "
                f"{self.plot_state()}; message: {self.message()!r}; console: "
                f"{self.console[-20:]}") from err
        return self.star_label()

    def plot_state(self) -> dict:
        """What the main plot holds in the browser: each trace's name, point count and
        ``showlegend``, the layout's computed ``showlegend`` and the legend's texts."""
        return self.page.evaluate(
            """() => {
              const gd = document.querySelector('.aq-plot .js-plotly-plot');
              if (gd === null) return {plot: null};
              return {traces: (gd.data || []).map(t => [t.name, (t.x || []).length, t.showlegend]),
                      showlegend: gd._fullLayout ? gd._fullLayout.showlegend : null,
                      legend: [...gd.querySelectorAll('.legend .traces .legendtext')]
                                .map(e => e.textContent)}; }""")

    def save(self, path: str | os.PathLike) -> Path:
        """A PNG screenshot of the whole inspector."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.locator(".aq-inspector").screenshot(path=str(path), timeout=self.timeout_ms)
        return path


def launch_chromium(playwright, executable: str | None = None):
    """Headless Chromium (``executable`` or :func:`find_browser`) with :data:`CHROMIUM_ARGS`."""
    return playwright.chromium.launch(executable_path=executable or find_browser(),
                                      headless=True, args=list(CHROMIUM_ARGS))


def _drive(path: Path, url: str, timeout: float, search: str) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1100})
            driver = InspectorPage(page, timeout=min(timeout, 60.0))
            load_s = driver.open(url, timeout=timeout)
            clicks = [driver.click_point(i) for i in driver.central_points(3)]
            message = driver.search(search)
            driver.page.mouse.move(0, 0)  # no hover label in the picture
            driver.save(path)
        finally:
            browser.close()
    return {"path": str(path), "page_load_s": load_s,
            "click_to_detail_s": min(c[1] for c in clicks[1:]),
            "click_to_full_detail_s": min(c[2] for c in clicks[1:]),
            "first_click_to_detail_s": clicks[0][1], "clicked": [c[0] for c in clicks],
            "searched": search, "message": message}


def screenshot(path: str | os.PathLike, bench: str = "cnn", timeout: float = 300.0, *,
               url: str | None = None, search: str = "relu(x)") -> dict:
    """Serve the inspector (or use the page at ``url``), open it in headless Chromium, click
    three points near the plot's centre one after the other, each time waiting for the detail
    panel to show the clicked function, find ``search`` and save a PNG of the whole inspector
    to ``path``.

    Returns ``{"path", "page_load_s" (request to plot drawn, kernel start included),
    "first_click_to_detail_s" (the first click, which may wait for the kernel to finish
    setting up the page), "click_to_detail_s" (the faster of the next two clicks, to the
    detail panel's title naming the clicked function: the response time once the page is
    up), "click_to_full_detail_s" (the same, to its curve and CDF plots drawn), "clicked"
    (the three names), "searched", "message" (the search's answer)}``. ``timeout`` bounds the page load (seconds). Raises
    ``FileNotFoundError`` when there is no Chromium (:func:`find_browser`), ``RuntimeError``
    when the server does not start, Playwright's ``TimeoutError`` when the page does not
    answer.

    Playwright's sync API cannot run inside an asyncio loop (a Jupyter kernel's), so the
    browser is driven from a worker thread.
    """
    find_browser()
    path = Path(path).resolve()
    result: dict = {}

    def work() -> None:
        try:
            if url is not None:
                result["value"] = _drive(path, url, timeout, search)
            else:
                with serve(bench) as server:
                    result["value"] = _drive(path, server.url, timeout, search)
        except BaseException as err:  # re-raised in the caller's thread
            result["error"] = err

    worker = threading.Thread(target=work, name="inspector-screenshot")
    worker.start()
    worker.join()
    if "error" in result:
        raise result["error"]
    return result["value"]
