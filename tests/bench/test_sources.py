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


def test_rebuild_uses_the_shipped_settings_and_resumes(tmp_path):
    """The full profile's source: the shipped benchmark's own build config (checked against
    its manifest), built resumably in the command line's ledger; here the first function."""
    from aquasurf_core import paths
    from aquasurf_core.bench.ledger import default_ledger_path
    from aquasurf_core.bench.sources import shipped_build_config
    from aquasurf_core.bench.table import load

    for arch in ("cnn", "resnet", "vit"):
        assert shipped_build_config(arch).to_dict() == load(arch, verify=False).manifest["config"]
    paths.set_cache_dir(tmp_path)
    try:
        logs = []
        first = get_benchmarks("rebuild", ["vit"], rebuild_limit=1, workers=1, log=logs.append)
        assert len(first["vit"]) == 1 and default_ledger_path("vit").is_file()
        again = get_benchmarks("rebuild", ["vit"], rebuild_limit=1, workers=1,
                               log=logs.append)  # finished: assembled, nothing retrained
        assert again["vit"].table["val_acc"].tolist() == first["vit"].table["val_acc"].tolist()
        assert any("already in the ledger" in line for line in logs)
    finally:
        paths.set_cache_dir(None)
