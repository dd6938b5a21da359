"""Choosing where a notebook's benchmarks come from."""

from __future__ import annotations

import pytest

from aquasurf_core.bench.sources import get_benchmarks


def test_get_benchmarks_rejects_bad_sources(tmp_path):
    with pytest.raises(ValueError, match="unknown source"):
        get_benchmarks("s3", ["cnn"])
    with pytest.raises(ValueError, match="archs must be"):
        get_benchmarks("shipped", "cnn")
    with pytest.raises(ValueError, match="actbench_dir"):
        get_benchmarks("actbench", ["cnn"])
    with pytest.raises(FileNotFoundError, match="act-bench-cnn.json"):
        get_benchmarks("actbench", ["cnn"], actbench_dir=tmp_path)
