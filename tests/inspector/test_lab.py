"""The inspector in JupyterLab, not only Voila: a real JupyterLab server (free loopback port,
token, a temporary root) opened in headless Chromium at 1,280 px with the file browser open,
a small notebook that shows the inspector on the first 400 rows of each shipped benchmark.
Skipped only when no Chromium is found."""

from __future__ import annotations

import pytest

from aquasurf_core.inspector.driver import (
    InspectorPage,
    LabNotebook,
    launch_chromium,
)
from aquasurf_core.inspector.page import serve_lab, write_notebook
from aquasurf_core.paths import cache_dir

RELU = "max(identity(x),zero(x))"  # row 18 of cnn; relu(x) finds it by its outputs
PAGE_TIMEOUT = 300  # s: kernel start, imports and a first UMAP fit on a cold cache, loaded
CELL = """\
from aquasurf_core.bench.table import load
from aquasurf_core.inspector import Inspector
from aquasurf_core.paths import set_cache_dir

set_cache_dir({cache!r})
Inspector("cnn", loader=lambda name: load(name).subset(range(400)))
"""
#: when the loading line and the plot first show in the page (performance.now(), ms)
WATCH = """
window.aqSeen = {};
new MutationObserver(() => {
  for (const [name, sel] of [['loading', '.aq-loading'], ['plot', '.aq-plot .scatterlayer']])
    if (!(name in window.aqSeen) && document.querySelector(sel) !== null)
      window.aqSeen[name] = [performance.now(), document.querySelector(sel).textContent];
}).observe(document, {childList: true, subtree: true, characterData: true});
"""


def test_inspector_in_jupyterlab_at_1280_px(chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    root = tmp_path / "root"
    root.mkdir()
    write_notebook(root / "inspector.ipynb", [CELL.format(cache=str(cache_dir()))])
    with serve_lab(root, "inspector.ipynb") as server, sync_playwright() as p:
        browser = launch_chromium(p, chromium)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.add_init_script(WATCH)
            lab = LabNotebook(page, timeout=PAGE_TIMEOUT)
            driver = InspectorPage(page, timeout=60)
            lab.open(server.url)
            lab.show_file_browser()
            started = page.evaluate("performance.now()")
            lab.run_all()
            try:
                driver.wait_for_plot(PAGE_TIMEOUT)
            except Exception as err:
                pytest.fail(f"no plot within {PAGE_TIMEOUT} s ({err}); notebook: "
                            f"{lab.state()}; console: {driver.console[-10:]}")

            # the loading line showed while the benchmark loaded, before the plot
            seen = page.evaluate("window.aqSeen")
            assert "loading" in seen, seen
            assert started < seen["loading"][0] < seen["plot"][0]
            assert "inspector: starting" in seen["loading"][1] \
                or "loading and embedding cnn" in seen["loading"][1]
            print(f"\nrun -> loading line {(seen['loading'][0] - started) / 1000:.2f} s, "
                  f"-> plot {(seen['plot'][0] - started) / 1000:.2f} s")
            # ... and is gone once the inspector shows
            assert page.locator(".aq-loading").count() == 0
            assert "242 of 400 functions embedded by both" in driver.message()

            # a search stars the function (an edit of the plot in place) and opens its detail
            found = driver.timed_search("relu(x)")
            print(f"search -> star {found['star_s']:.2f} s")
            assert found["name"] == RELU and driver.star_label() == f"\u2605 {RELU}"
            driver.wait_for_detail(RELU)
            print(f"switch to FIM: {driver.switch_feature('FIM'):.2f} s")
            assert driver.wait_for_star(RELU) == f"\u2605 {RELU}"

            # nothing cut off at 1,280 px with the file browser open: the colour bar and the
            # fourth column of the Fisher CDFs show whole, inside the output area
            assert page.locator(".jp-FileBrowser").first.is_visible()
            page.wait_for_timeout(500)  # the plots' resize after the detail panel opened
            fit = driver.fit()
            assert fit["window"] == 1280
            assert {"colorbar", "cdf column 4", "plot", "detail"} <= set(fit["boxes"]), fit
            assert fit["outside"] == [] and not fit["scrolls"], fit
            page.mouse.move(0, 0)
            page.screenshot(path=str(tmp_path / "lab.png"))

            # nothing asked of another host
            origin = server.url.split("/lab/")[0]
            assert [u for u in requested if not u.startswith((origin, "data:", "blob:"))] == []
        finally:
            browser.close()
