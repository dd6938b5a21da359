"""Figure (PNG via kaleido + HTML) and table (CSV + Markdown) export."""

from __future__ import annotations

import math
import os
import re
import struct
import subprocess
import sys

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from aquasurf_core.export import (
    DEFAULT_HEIGHT,
    DEFAULT_SCALE,
    DEFAULT_WIDTH,
    PLOTLYJS_NAME,
    FigureExportError,
    markdown_table,
    save_figure,
    save_table,
)


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_save_figure_writes_png_and_small_html(tmp_path):
    fig = go.Figure(go.Scatter(x=[0, 1, 2], y=[1, 3, 2], name="demo"))
    paths = save_figure(fig, "01_demo", tmp_path / "figs", width=320, height=200, scale=2)
    png, html = paths
    assert paths == [tmp_path / "figs" / "01_demo.png", tmp_path / "figs" / "01_demo.html"]
    assert png_size(png) == (640, 400)
    text = html.read_text()
    assert 'id="01_demo"' in text
    assert html.stat().st_size < 50_000  # plotly.js itself (~4 MB) is not embedded
    # re-exporting the same figure gives the same HTML (stable div id)
    first = text
    save_figure(fig, "01_demo", tmp_path / "figs", width=320, height=200, scale=2)
    assert html.read_text() == first


def test_html_loads_plotly_js_from_beside_it_not_a_cdn(tmp_path):
    from plotly.offline import get_plotlyjs

    figs = tmp_path / "figs"
    _, html = save_figure(go.Figure(go.Bar(y=[1, 2])), "01_offline", figs, scale=1)
    text = html.read_text()
    scripts = re.findall(r"<script[^>]*\bsrc=[\"']([^\"']*)", text)
    assert scripts == [PLOTLYJS_NAME], scripts
    assert not re.search(r"https?://[^\"'\s]*plotly", text), "the HTML loads plotly from the web"
    bundle = figs / PLOTLYJS_NAME
    assert bundle.read_text(encoding="utf-8") == get_plotlyjs()
    assert sorted(p.name for p in figs.iterdir()) == [
        "01_offline.html", "01_offline.png", "plotly.min.js"]  # no temporary files left

    # an up-to-date bundle is not rewritten; a stale or truncated one is replaced
    before = bundle.stat().st_mtime_ns
    os.utime(bundle, ns=(before - 10**9, before - 10**9))
    save_figure(go.Figure(go.Bar(y=[2, 1])), "01_offline_two", figs, scale=1)
    assert bundle.stat().st_mtime_ns == before - 10**9
    bundle.write_text("/* truncated */")
    save_figure(go.Figure(go.Bar(y=[2, 1])), "01_offline_two", figs, scale=1)
    assert bundle.read_text(encoding="utf-8") == get_plotlyjs()
    assert not [p for p in figs.iterdir() if p.name.startswith(".")]


def test_save_figure_default_size_follows_layout(tmp_path):
    png, _ = save_figure(go.Figure(go.Bar(y=[1, 2])), "02_bar", tmp_path)
    assert png_size(png) == (DEFAULT_WIDTH * DEFAULT_SCALE, DEFAULT_HEIGHT * DEFAULT_SCALE)
    fig = go.Figure(go.Bar(y=[1, 2]), layout={"width": 250, "height": 150})
    png, _ = save_figure(fig, "02_bar_small", tmp_path, scale=1)
    assert png_size(png) == (250, 150)


@pytest.mark.parametrize("name", ["demo", "1_demo", "01_demo.png", "01_a/b", "01_", "../01_x"])
def test_names_must_follow_the_convention(tmp_path, name):
    with pytest.raises(ValueError, match="notebook number"):
        save_figure(go.Figure(), name, tmp_path)
    with pytest.raises(ValueError, match="notebook number"):
        save_table(pd.DataFrame({"a": [1]}), name, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(TypeError, match="plotly Figure, got dict"):
        save_figure({"data": []}, "01_x", tmp_path)
    with pytest.raises(TypeError, match="DataFrame, got list"):
        save_table([[1, 2]], "01_x", tmp_path)
    with pytest.raises(ValueError, match="scale"):
        save_figure(go.Figure(), "01_x", tmp_path, scale=0)


def test_browser_path_that_is_not_executable_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))
    with pytest.raises(FigureExportError, match="BROWSER_PATH=.*is not an executable"):
        save_figure(go.Figure(), "01_x", tmp_path)
    assert not (tmp_path / "01_x.png").exists()


def test_missing_browser_is_a_clear_error(tmp_path):
    # A fresh interpreter: kaleido's persistent browser of this process must not interfere.
    code = (
        "import plotly.graph_objects as go\n"
        "from aquasurf_core.export import save_figure, FigureExportError\n"
        "try:\n"
        f"    save_figure(go.Figure(), '01_x', {str(tmp_path)!r})\n"
        "except FigureExportError as e:\n"
        "    print('ERROR', e)\n"
    )
    for browser in ("/nonexistent/chromium", "/bin/false"):
        env = {**os.environ, "BROWSER_PATH": browser}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=120).stdout
        assert out.startswith("ERROR") and "chromium" in out and "BROWSER_PATH" in out, out
        assert not (tmp_path / "01_x.png").exists()


def test_markdown_table_against_hand_written_table():
    df = pd.DataFrame({
        "function": ["relu(x)", "a|b", "line\nbreak"],
        "accuracy": [0.91234567, math.nan, 1e-7],
        "rank": np.array([1, 2, 3], dtype=np.int64),
        "ok": [True, False, True],
    })
    assert markdown_table(df) == (
        "| function | accuracy | rank | ok |\n"
        "|:---|---:|---:|:---|\n"
        "| relu(x) | 0.9123 | 1 | True |\n"
        "| a\\|b |  | 2 | False |\n"
        "| line<br>break | 1e-07 | 3 | True |\n"
    )
    indexed = pd.DataFrame({"v": [1.5]}, index=pd.Index(["row"], name="key"))
    assert markdown_table(indexed, index=True) == "| key | v |\n|:---|---:|\n| row | 1.5 |\n"
    assert markdown_table(indexed, float_format=lambda v: f"{v:.3f}") == (
        "| v |\n|---:|\n| 1.500 |\n")


def test_save_table_writes_csv_and_markdown(tmp_path):
    df = pd.DataFrame({"name": ["x", "relu(x)"], "value": [1 / 3, 2.0]})
    csv, md = save_table(df, "01_values", tmp_path / "t")
    assert (csv.name, md.name) == ("01_values.csv", "01_values.md")
    pd.testing.assert_frame_equal(pd.read_csv(csv), df)  # full precision in the CSV
    assert md.read_text() == markdown_table(df)
    assert "| relu(x) | 2 |" in md.read_text()
