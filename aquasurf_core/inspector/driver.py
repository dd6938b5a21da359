"""Driving the inspector's page (:mod:`aquasurf_core.inspector.page`) in headless Chromium
through Playwright's sync API: the browser tests, the timings, the screenshots.

* :class:`InspectorPage` waits for the plot, clicks a point, searches a name, switches
  feature or benchmark, and reads the detail panel, the message and the star back from the
  DOM, timing each from the action to the page showing its result; :meth:`InspectorPage.fit`
  says what of the inspector lies outside its output area (JupyterLab) or the window.
* :class:`LabNotebook` opens a notebook in a JupyterLab page (:func:`~aquasurf_core.
  inspector.page.serve_lab`) and runs it.
* :func:`screenshot` serves the Voila page, clicks and searches, and saves a PNG of the
  inspector (notebook 03's figure), returning the timings.

The browser is ``$BROWSER_PATH``, else ``chromium`` on ``PATH`` (:func:`find_browser`).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

from aquasurf_core.inspector.page import serve

__all__ = ["CHROMIUM_ARGS", "InspectorPage", "LabNotebook", "find_browser", "launch_chromium",
           "screenshot"]

#: Flags for headless Chromium in containers and CI (no sandbox, no GPU, no network chatter).
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync")


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


def launch_chromium(playwright, executable: str | None = None):
    """Headless Chromium (``executable`` or :func:`find_browser`) with :data:`CHROMIUM_ARGS`."""
    return playwright.chromium.launch(executable_path=executable or find_browser(),
                                      headless=True, args=list(CHROMIUM_ARGS))


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
        self.wait_for_plot(timeout)
        return time.perf_counter() - start

    def wait_for_plot(self, timeout: float = 300.0) -> None:
        """Wait (up to ``timeout`` seconds) for the plot's points."""
        self.page.wait_for_selector(self.POINTS, state="attached", timeout=timeout * 1000)

    def text(self, selector: str) -> str:
        """The visible text of the first element matching ``selector`` ("" if none)."""
        found = self.page.locator(selector)
        return found.first.inner_text() if found.count() else ""

    def detail_name(self) -> str:
        """The function name shown in the detail panel (its placeholder text if none)."""
        return self.text(".aq-detail-name").strip()

    def message(self) -> str:
        """The text of the inspector's message line ("" when it is empty)."""
        return self.text(".aq-message").strip()

    def point_center(self, index: int) -> tuple[float, float]:
        """Page coordinates ``(x, y)`` (CSS pixels) of the centre of the ``index``-th point
        of the plot's scatter trace, for moving the mouse there."""
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
        the previous search). Raises ``TimeoutError`` with the message line when no answer
        comes within the timeout."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        before = self.message()
        box = self.page.locator(".aq-search input")
        box.fill(name)
        box.press("Enter")
        try:
            self.page.wait_for_function(
                "([before, name]) => { const e = document.querySelector('.aq-message');"
                " const t = e === null ? '' : e.innerText;"
                " return t !== before && t.includes(name); }",
                arg=[before, name.strip()], polling="raf", timeout=self.timeout_ms)
        except PlaywrightTimeout as err:
            raise TimeoutError(f"no answer to the search for {name!r} within "
                               f"{self.timeout_ms / 1000:.0f} s; message: {self.message()!r}") \
                from err
        return self.message()

    def timed_search(self, query: str) -> dict:
        """Search ``query`` (which must differ from the previous search, as for
        :meth:`search`) and wait for the star on the function found. Returns ``{"name" (the
        function starred), "message_s" (seconds from Enter to the answer in the message
        line), "star_s" (to the star's legend entry naming it on the plot)}``."""
        import re

        start = time.perf_counter()
        message = self.search(query)
        message_s = time.perf_counter() - start
        found = re.search(r"found (\S+)", message)
        if found is None:
            raise ValueError(f"the search for {query!r} found nothing: {message!r}")
        self.wait_for_star(found.group(1))
        return {"name": found.group(1), "message_s": message_s,
                "star_s": time.perf_counter() - start}

    def switch_bench(self, bench: str) -> float:
        """Choose ``bench`` in the benchmark menu and wait until the plot is redrawn with it
        (its title names it); seconds taken. Raises ``TimeoutError`` as
        :meth:`switch_feature` does."""
        return self._switch(lambda: self.page.locator(".aq-bench select").select_option(bench),
                            "(t) => { const e = document.querySelector('.aq-plot .gtitle');"
                            " return e !== null && e.textContent.startsWith(t); }",
                            f"{bench}: ", f"benchmark {bench}")

    def _switch(self, action, check: str, arg: str, what: str) -> float:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        start = time.perf_counter()
        action()
        try:
            self.page.wait_for_function(check, arg=arg, polling="raf",
                                        timeout=self.timeout_ms)
        except PlaywrightTimeout as err:
            raise TimeoutError(f"the plot was not redrawn with the {what} within "
                               f"{self.timeout_ms / 1000:.0f} s; title: {self.plot_title()!r}; "
                               f"message: {self.message()!r}") from err
        return time.perf_counter() - start

    def fit(self) -> dict:
        """Whether the inspector and its widest parts show whole: ``{"window" (the window's
        width), "boxes" (name -> [left, right] of "inspector", "plot" (the main plot's
        drawing), "colorbar", "detail", "cdf", "cdf column 4" (the fourth panel of the Fisher
        CDFs), "selection"; absent when not drawn), "outside" (the names of those reaching
        more than a pixel past what holds them: the plot's box for the plot and its colour
        bar, the CDF output for its panels, and for each the output area in JupyterLab, else
        the page, and the window), "scrolls" (whether the inspector is wider than its
        box)}``."""
        return self.page.evaluate(
            """() => {
              const root = document.querySelector('.aq-inspector');
              const area = root.closest('.jp-OutputArea-output') || document.body;
              const parts = {inspector: ['.aq-inspector', null],
                             plot: ['.aq-plot .main-svg', '.aq-plot'],
                             colorbar: ['.aq-plot .colorbar', '.aq-plot'],
                             detail: ['.aq-detail', null], cdf: ['.aq-cdf .main-svg', '.aq-cdf'],
                             'cdf column 4': ['.aq-cdf .draglayer .x4y4 .nsewdrag', '.aq-cdf'],
                             selection: ['.aq-selection', null]};
              const boxes = {}, outside = [];
              const past = (r, h) => r.left < h.left - 1 || r.right > h.right + 1;
              for (const [name, [sel, holder]] of Object.entries(parts)) {
                const e = document.querySelector(sel);
                if (e === null) continue;
                const r = e.getBoundingClientRect();
                if (r.width === 0 && r.height === 0) continue;
                boxes[name] = [r.left, r.right];
                const holders = [area.getBoundingClientRect(),
                                 {left: 0, right: window.innerWidth}];
                if (holder !== null) holders.push(
                  document.querySelector(holder).getBoundingClientRect());
                if (holders.some(h => past(r, h))) outside.push(name);
              }
              return {window: window.innerWidth, boxes, outside,
                      scrolls: root.scrollWidth > root.clientWidth + 1}; }""")

    def mark_plot(self) -> None:
        """Remember the plot element now shown, for :meth:`plot_renewed`."""
        self.page.evaluate("window.aqMarkedPlot = document.querySelector("
                           "'.aq-plot .js-plotly-plot')")

    def plot_renewed(self) -> bool:
        """Whether the plot shown is another element than at :meth:`mark_plot`: the kernel
        showed it anew (an edit the page did not acknowledge) rather than editing it."""
        return self.page.evaluate("document.querySelector('.aq-plot .js-plotly-plot')"
                                  " !== window.aqMarkedPlot")

    def plot_title(self) -> str:
        """The main plot's title as drawn ("" before the plot is)."""
        title = self.page.locator(".aq-plot .gtitle")
        return (title.first.text_content() or "").strip() if title.count() else ""

    def switch_feature(self, label: str) -> float:
        """Click the feature button ``label`` ("FIM", "outputs" or "both") and wait until the
        plot is redrawn with that embedding (its title names it); seconds taken. Raises
        ``TimeoutError`` with the title and the message line when it is not."""
        return self._switch(
            lambda: self.page.locator(".aq-feature button", has_text=label).click(),
            "(text) => { const e = document.querySelector('.aq-plot .gtitle');"
            " return e !== null && e.textContent.includes(text); }",
            f": {label} embedding", f"{label} embedding")

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



class LabNotebook:
    """A notebook in a JupyterLab page (Playwright ``page``; the server from
    :func:`~aquasurf_core.inspector.page.serve_lab`, which exposes the application to the
    page as ``window.jupyterapp``). Each method waits for the page up to ``timeout``
    seconds."""

    def __init__(self, page, timeout: float = 120.0) -> None:
        self.page = page
        self.timeout_ms = timeout * 1000

    def open(self, url: str) -> float:
        """Load ``url`` (a notebook's) and wait until its kernel is ready; seconds taken."""
        start = time.perf_counter()
        self.page.goto(url, wait_until="commit", timeout=self.timeout_ms)
        self.page.wait_for_function(
            "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
            " return !!(w && w.sessionContext && w.sessionContext.isReady"
            " && w.sessionContext.session && w.sessionContext.session.kernel); }",
            polling=200, timeout=self.timeout_ms)
        return time.perf_counter() - start

    def command(self, name: str, args: dict | None = None, wait: bool = True) -> None:
        """Run JupyterLab command ``name`` (e.g. ``filebrowser:activate``); ``wait``: until
        the command's promise settles (for ``notebook:run-all-cells``: the cells ran)."""
        self.page.evaluate("([name, args, wait]) => { const done = "
                           "window.jupyterapp.commands.execute(name, args);"
                           " return wait ? done.then(() => null) : null; }",
                           [name, args or {}, wait])

    def run_all(self) -> None:
        """Start running every cell of the open notebook (returns at once)."""
        self.command("notebook:run-all-cells", wait=False)

    def show_file_browser(self) -> None:
        """Open the file browser in the left side panel."""
        self.command("filebrowser:activate")
        self.page.locator(".jp-FileBrowser").first.wait_for(state="visible",
                                                             timeout=self.timeout_ms)

    def state(self) -> dict:
        """What the page shows of the notebook: the kernel's status, each code cell's
        execution count (``None``: not run) and the first 300 characters of its outputs'
        text (for failure reports)."""
        return self.page.evaluate(
            """() => {
              const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
              const kernel = w && w.sessionContext && w.sessionContext.session
                && w.sessionContext.session.kernel;
              return {kernel: kernel ? kernel.status : null,
                      cells: [...document.querySelectorAll('.jp-CodeCell')].map(c => [
                        (c.querySelector('.jp-InputPrompt') || {}).textContent || null,
                        ((c.querySelector('.jp-OutputArea') || {}).innerText || '')
                          .slice(0, 300)])}; }""")

    def wait_for(self, selector: str) -> float:
        """Wait for ``selector`` to be visible in the page; seconds taken."""
        start = time.perf_counter()
        self.page.locator(selector).first.wait_for(state="visible", timeout=self.timeout_ms)
        return time.perf_counter() - start


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
    (the three names), "searched", "message" (the search's answer)}``. ``timeout`` bounds the
    page load (seconds). Raises ``FileNotFoundError`` when there is no Chromium
    (:func:`find_browser`), ``RuntimeError`` when the server does not start, Playwright's
    ``TimeoutError`` when the page does not answer.

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
