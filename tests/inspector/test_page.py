"""The inspector as a web page: ``aquasurf inspect`` started in a subprocess, driven by
headless Chromium through Playwright (skipped only when no Chromium is found), plus the page
module's checks that need no browser. The page works offline and its console stays quiet
(:data:`~aquasurf_core.inspector.page.VOILA_TEMPLATE`)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from aquasurf_core.inspector.driver import InspectorPage, find_browser, launch_chromium
from aquasurf_core.inspector.page import VOILA_TEMPLATE, free_port

RELU = "max(identity(x),zero(x))"  # the cnn row that relu(x) finds by its outputs
#: the console warnings of mismatched shared modules (module docstring of the page)
VERSION_WARNING = re.compile(r"Unsatisfied version|No satisfying version")
PAGE_TIMEOUT = 300  # s: kernel start, benchmark load, and a first UMAP fit on a cold cache


def test_free_port_and_port_in_use():
    port = free_port()
    assert free_port(port) == port
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OSError, match="is not available"):
            free_port(busy.getsockname()[1])


def test_find_browser_explains_a_bad_path(monkeypatch, tmp_path):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chromium"))
    with pytest.raises(FileNotFoundError, match="BROWSER_PATH"):
        find_browser()


def test_the_voila_template_removes_exactly_the_cdn_links():
    """The links the template drops are the ones Voila's lab template has (a Voila update
    that changes them fails here, not only in the browser test)."""
    from jupyter_core.paths import jupyter_path

    template = VOILA_TEMPLATE["index.html.j2"]
    links = re.findall(r"'(<link[^']*)'\s*~\s*'([^']*)'", template)
    assert len(links) == 2
    lab = next(path for path in map(Path, jupyter_path("voila", "templates", "lab",
                                                       "index.html.j2")) if path.is_file())
    text = lab.read_text()
    for head, tail in links:
        assert head + tail in text
    assert text.count("cdn.jsdelivr.net") == 2  # and nothing else from a CDN


def test_cli_rejects_an_unknown_benchmark_and_a_busy_port(capsys):
    import socket

    from aquasurf_core.cli import main

    with pytest.raises(SystemExit):
        main(["inspect", "--bench", "mlp"])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["inspect", "--port", str(busy.getsockname()[1]), "--no-browser"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("aquasurf inspect: error: port ") and "not available" in err[-1]


@pytest.fixture
def inspect_url():
    """``aquasurf inspect`` in its own session; its URL once it prints it. Stopped at the end
    (SIGTERM, which stops Voila too; SIGKILL if that takes over 20 s)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "aquasurf_core", "inspect", "--port", str(port), "--no-browser"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def read() -> None:
        for line in process.stdout:
            output.append(line)
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = time.monotonic() + 120
        url = None
        while url is None:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"aquasurf inspect printed no URL in 120 s:\n{''.join(output)}")
            if f"http://127.0.0.1:{port}/" in line:
                url = f"http://127.0.0.1:{port}/"
            elif process.poll() is not None:
                pytest.fail(f"aquasurf inspect exited ({process.returncode}):\n"
                            f"{''.join(output)}")
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def test_page_in_headless_chromium(chromium, inspect_url, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p, chromium)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1100})
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            driver = InspectorPage(page, timeout=60)
            load_s = driver.open(inspect_url, timeout=PAGE_TIMEOUT)
            print(f"\npage load -> plot drawn: {load_s:.3f} s")
            assert page.locator(InspectorPage.POINTS).count() > 100
            assert "functions embedded by both" in driver.message()

            # a click opens the detail panel of the point under the mouse (its hover label)
            clicked = []
            for index in driver.central_points(3):
                name, title_s, full_s = driver.click_point(index)
                print(f"click -> detail: {title_s:.3f} s (curve and CDFs drawn: {full_s:.3f} s)"
                      f"  {name}")
                assert page.locator(".aq-detail-name").inner_text().strip() == name
                assert name in page.locator(".aq-curve .gtitle").text_content()
                accuracy = page.locator(".aq-accuracy").inner_text()
                assert all(bench in accuracy for bench in ("cnn", "resnet", "vit"))
                clicked.append(name)
            assert len(set(clicked)) == 3  # three points apart: three functions

            # a name found by its outputs: the kernel stars it, and its detail is shown
            message = driver.search("relu(x)")
            assert f"found {RELU} (same outputs as relu(x)): marked with a star" in message
            driver.wait_for_detail(RELU)
            # an equivalent name of the same function
            message = driver.search("max(relu(x),zero(x))")
            assert f"found {RELU} (as max(relu(x),zero(x)))" in message
            # a malformed name: the parser's message, with the position
            message = driver.search("max(relu(x)")
            assert "'max(relu(x)' is not a valid function name" in message
            assert "never closed at position 11" in message
            assert page.locator(".aq-message-error").count() == 1

            page.mouse.move(0, 0)
            shot = driver.save(tmp_path / "inspector.png")
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

            # the star drawn on the plot: a kernel -> browser edit of the plot in place, which
            # a loaded machine once lost (README, "Known problems")
            label = driver.wait_for_star(RELU)
            assert label == f"\u2605 {RELU}"
            driver.mark_plot()  # (the first edit shows a new plot: renew_first_edit)
            assert page.locator(InspectorPage.STAR).count() == 1
            # a redraw on another embedding, the star kept
            for feature in ("FIM", "outputs"):
                print(f"switch to {feature}: {driver.switch_feature(feature):.3f} s")
                assert driver.wait_for_star(RELU) == f"\u2605 {RELU}"
                assert page.locator(InspectorPage.POINTS).count() > 100

            # either way the plot follows; which way the switches went, for the record
            print(f"plot shown anew after the first edit (an edit the page did not "
                  f"acknowledge): {driver.plot_renewed()}")

            # offline and quiet: nothing asked of another host, no version warnings, no error
            origin = inspect_url.rstrip("/")
            assert [u for u in requested if not u.startswith((origin, "data:", "blob:"))] == []
            assert [m for m in driver.console if VERSION_WARNING.search(m)] == []
            assert [m for m in driver.console if m.startswith(("error", "page error"))] == []
            assert page.locator(".aq-search-button").inner_text().strip() == "Find"
        finally:
            browser.close()
