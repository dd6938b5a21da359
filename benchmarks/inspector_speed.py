"""How fast the inspector answers in the browser, and whether its plot follows the kernel under
load: headless Chromium on the Voila page (``aquasurf inspect``) or on a notebook in JupyterLab.

    python benchmarks/inspector_speed.py [--where voila|lab] [--rounds 3] [--load 0]
        [--window 1280] [--shot PATH] [--kernel-pythonpath DIR] [--import-line TEXT]

Each round searches three names (Enter -> the star's legend entry naming the function found
on the plot), switches the feature three times and the benchmark twice (click -> the plot's
title naming the new view, then the star drawn on it). A step whose result does not show
within 60 s is counted as a miss (the plot did not follow the kernel). For each kind of step it
prints the median, the fastest and the slowest time and the kilobytes the page received over
its websockets (the kernel's messages) per step. ``--load N`` runs N busy single-threaded torch
matmul loops beside the page once it is drawn (the load of the README's "Known problems").

In JupyterLab the notebook is run once the kernel is ready, with the file browser open; the
times to the loading line and to the plot are printed. ``--kernel-pythonpath`` and
``--import-line`` (lab only) run another copy of the package in the kernel, e.g. the code
before a change: ``--kernel-pythonpath /tmp/old --import-line "from aquasurf_core.embedding
import Inspector"``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

#: The last one stays starred through the switches (ReLU is embedded in every benchmark).
QUERIES = ("tanh(x)", "swish(x)", "relu(x)")


def busy(seconds: float) -> None:
    """One core's worth of load: torch matmuls for ``seconds``."""
    import torch

    torch.set_num_threads(1)
    a = torch.randn(300, 300)
    end = time.time() + seconds
    while time.time() < end:
        a = torch.tanh(a @ a)


class Received:
    """Bytes the page receives over its websockets, read and reset per step."""

    def __init__(self, page) -> None:
        self.bytes = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._add))

    def _add(self, payload) -> None:
        self.bytes += len(payload)

    def take(self) -> float:
        """Kilobytes since the last call."""
        kb, self.bytes = self.bytes / 1000, 0
        return kb


def run(args, page, url: str, times: dict, kb: dict, misses: dict) -> None:
    from aquasurf_core.inspector.driver import InspectorPage, LabNotebook

    driver = InspectorPage(page, timeout=60)
    received = Received(page)
    if args.where == "voila":
        print(f"page load -> plot drawn: {driver.open(url, timeout=300):.2f} s")
    else:
        lab = LabNotebook(page, timeout=300)
        print(f"JupyterLab page -> kernel ready: {lab.open(url):.2f} s")
        lab.show_file_browser()
        start = time.perf_counter()
        lab.run_all()
        loading = lab.wait_for(".aq-loading, .aq-plot")
        driver.wait_for_plot(300)
        print(f"run -> loading line: {loading:.2f} s; run -> plot drawn: "
              f"{time.perf_counter() - start:.2f} s")
    loaders = [multiprocessing.Process(target=busy, args=(3600,), daemon=True)
               for _ in range(args.load)]
    for process in loaders:
        process.start()
    try:
        received.take()
        starred = None
        for r in range(args.rounds):
            for query in QUERIES:  # a trailing space: a new query each round
                step(times, kb, misses, received, "search",
                     lambda q=query + " " * (r % 2): driver.timed_search(q)["star_s"])
                starred = driver.message().split("found ", 1)[-1].split(" ", 1)[0]
                if r == 0 and query == QUERIES[0]:  # the first edit (Voila: a new plot)
                    driver.mark_plot()
            for label in ("FIM", "outputs", "both"):
                step(times, kb, misses, received, "feature switch",
                     lambda label=label, star=starred: switch(driver, driver.switch_feature,
                                                              label, star))
            for bench in ("resnet", "cnn"):
                step(times, kb, misses, received, "benchmark switch",
                     lambda bench=bench, star=starred: switch(driver, driver.switch_bench,
                                                              bench, star))
        print(f"plot shown anew after the first step (an edit not acknowledged): "
              f"{driver.plot_renewed()}")
        if args.shot:
            page.mouse.move(0, 0)
            page.screenshot(path=args.shot)
            print(f"screenshot: {args.shot}; fit: {driver.fit()}")
    finally:
        for process in loaders:
            process.terminate()


def switch(driver, action, value: str, starred: str | None) -> float:
    """``action(value)``, then the star on ``starred`` drawn in the new view."""
    start = time.perf_counter()
    action(value)
    if starred:
        driver.wait_for_star(starred)
    return time.perf_counter() - start


def step(times, kb, misses, received, name: str, action) -> None:
    try:
        times.setdefault(name, []).append(action())
    except TimeoutError as err:
        misses[name] = misses.get(name, 0) + 1
        print(f"MISS {name}: {str(err)[:300]}")
    kb.setdefault(name, []).append(received.take())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--where", choices=("voila", "lab"), default="voila")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", type=int, default=0)
    parser.add_argument("--window", type=int, default=1280)
    parser.add_argument("--shot", default=None)
    parser.add_argument("--kernel-pythonpath", default=None)
    parser.add_argument("--import-line", default="from aquasurf_core.inspector import Inspector")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from aquasurf_core.inspector.driver import launch_chromium
    from aquasurf_core.inspector.page import serve, serve_lab, write_notebook
    from aquasurf_core.paths import cache_dir

    times: dict[str, list[float]] = {}
    kb: dict[str, list[float]] = {}
    misses: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="aquasurf-inspector-speed-") as root:
        if args.where == "voila":
            server = serve("cnn")
        else:
            if args.kernel_pythonpath:
                os.environ["PYTHONPATH"] = args.kernel_pythonpath
            write_notebook(Path(root) / "inspector.ipynb", [
                f"{args.import_line}\nfrom aquasurf_core.paths import set_cache_dir\n\n"
                f"set_cache_dir({str(cache_dir())!r})\nInspector(bench='cnn')"])
            server = serve_lab(root, "inspector.ipynb")
        with server, sync_playwright() as p:
            browser = launch_chromium(p)
            try:
                page = browser.new_page(viewport={"width": args.window, "height": 1000})
                run(args, page, server.url, times, kb, misses)
            finally:
                browser.close()
    print(f"{args.where}, {args.load} busy loops, {args.rounds} rounds; seconds from the action "
          "to the plot showing its result:")
    print(f"{'step':<17} {'median':>7} {'min':>6} {'max':>6} {'n':>3} {'misses':>6} "
          f"{'kB received (median)':>21}")
    for name in ("search", "feature switch", "benchmark switch"):
        got = times.get(name, [])
        row = (f"{statistics.median(got):7.2f} {min(got):6.2f} {max(got):6.2f}" if got
               else f"{'-':>7} {'-':>6} {'-':>6}")
        print(f"{name:<17} {row} {len(got):3d} {misses.get(name, 0):6d} "
              f"{statistics.median(kb.get(name, [0])):21.1f}")


if __name__ == "__main__":
    main()
