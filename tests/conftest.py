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


def write_image_folder(root: Path, classes=("cat", "dog", "eel"), train_per_class: int = 4,
                       val_per_class: int = 2, seed: int = 0) -> Path:
    """A tiny ImageNet-style folder (``root/{train,val}/<class>/``) of random RGB images of
    assorted sizes, JPEG and PNG."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in (("train", train_per_class), ("val", val_per_class)):
        for c in classes:
            folder = root / split / c
            folder.mkdir(parents=True)
            for i in range(n):
                h, w = rng.integers(24, 60, size=2)
                pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{c}_{i}.{'png' if i % 2 else 'jpg'}")
    return root


def write_cifar100(root: Path, train_per_class: int = 3, seed: int = 1) -> Path:
    """CIFAR-100 in its on-disk format (``root/cifar-100-python/{train,test,meta}``) with
    ``train_per_class`` random training images per class and one test image per class."""
    import pickle

    import numpy as np

    def dump(path, obj):
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=2)

    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    n = 100 * train_per_class
    labels = [int(c) for c in rng.permutation(np.repeat(np.arange(100), train_per_class))]
    dump(folder / "train", {"fine_labels": labels, "coarse_labels": [0] * n,
                            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)})
    dump(folder / "test", {"fine_labels": list(range(100)), "coarse_labels": [0] * 100,
                           "data": rng.integers(0, 256, (100, 3072), dtype=np.uint8)})
    dump(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)],
                           "coarse_label_names": [f"s{i}" for i in range(20)]})
    return root


@pytest.fixture
def image_folder_writer():
    return write_image_folder


@pytest.fixture
def cifar100_writer():
    return write_cifar100


def find_chromium() -> str | None:
    """``$BROWSER_PATH``, else a Chromium or Chrome on ``PATH``, else ``None``."""
    import os
    import shutil

    path = os.environ.get("BROWSER_PATH")
    if path:
        return shutil.which(path) or (path if os.access(path, os.X_OK) else None)
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                "google-chrome"))), None)


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run",
                 "--host-resolver-rules=MAP * ~NOTFOUND"]  # no name resolves: offline


def check_book(index: Path, *, screenshot: Path | None = None, timeout_s: float = 120) -> dict:
    """Open a book (``aquasurf_core.book``) in headless Chromium with every request other than
    ``file:`` and ``data:`` blocked, and check it: the index links every page; each page links
    back to the index, shows no error cell, every image on it loads (static figures, math) and
    every figure is drawn by plotly.js. Returns ``{page: {"figures": n, "images": n}}``;
    fails the calling test with what went wrong. ``screenshot``: a full-page PNG of the first
    page with a figure."""
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium for the book's browser test (install chromium or set "
                    "BROWSER_PATH)")
    blocked, errors, found = [], [], {}

    def route(r):
        if r.request.url.startswith(("file:", "data:")):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.route("**/*", route)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(index.as_uri())
            links = page.eval_on_selector_all("table a",
                                              "as => as.map(a => a.getAttribute('href'))")
            pages = sorted(set(links))
            assert pages, f"the index {index} links no page"
            for name in pages:
                page.goto((index.parent / name).as_uri())
                page.wait_for_function(
                    "() => [...document.querySelectorAll('.aq-figure')].every(b => "
                    "b.classList.contains('aq-drawn') || b.classList.contains('aq-failed')) && "
                    "[...document.images].every(i => i.complete)", timeout=timeout_s * 1000)
                report = page.evaluate("""() => ({
                    figures: document.querySelectorAll('.aq-figure').length,
                    drawn: [...document.querySelectorAll('.aq-figure.aq-drawn')]
                        .filter(b => b.querySelector('.aq-figure-plot .main-svg')).length,
                    failed: document.querySelectorAll('.aq-figure.aq-failed').length,
                    statics: document.querySelectorAll('.aq-figure-static').length,
                    images: document.images.length,
                    broken: [...document.images].filter(i => !i.naturalWidth)
                        .map(i => i.alt || i.src.slice(0, 40)),
                    errors: document.querySelectorAll('.aq-error').length,
                    index: document.querySelectorAll('nav.aq-nav a[href="index.html"]').length,
                })""")
                assert report["index"] == 2, f"{name}: no link back to the index at top and bottom"
                assert report["errors"] == 0, f"{name}: {report['errors']} cell(s) show an error"
                assert report["broken"] == [], f"{name}: images not loaded: {report['broken']}"
                assert report["failed"] == 0 and report["drawn"] == report["figures"], (
                    f"{name}: {report['drawn']} of {report['figures']} figures drawn")
                assert report["statics"] == report["figures"], (
                    f"{name}: {report['figures'] - report['statics']} figures lack a static image")
                found[name] = {"figures": report["figures"], "images": report["images"]}
                if screenshot is not None and report["figures"] and not screenshot.exists():
                    page.locator(".aq-figure").first.scroll_into_view_if_needed()
                    page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    assert blocked == [], f"the book asked the network for {blocked}"
    assert errors == [], f"JavaScript errors: {errors}"
    return found


@pytest.fixture
def book_checker():
    return check_book
