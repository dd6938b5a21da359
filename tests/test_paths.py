"""One resolver for the cache and data directories."""

from __future__ import annotations

import pytest

from aquasurf_core import paths


@pytest.fixture(autouse=True)
def no_override():
    paths.set_cache_dir(None)
    yield
    paths.set_cache_dir(None)


def test_cache_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("AQUASURF_CACHE", raising=False)
    assert paths.cache_dir() == paths.repo_root().resolve() / ".aquasurf_cache"
    monkeypatch.setenv("AQUASURF_CACHE", str(tmp_path / "env"))
    assert paths.cache_dir("spaces", "k") == tmp_path / "env" / "spaces" / "k"
    assert paths.set_cache_dir(tmp_path / "nb") == tmp_path / "nb"  # beats the environment
    assert paths.cache_dir("bench") == tmp_path / "nb" / "bench"
    paths.set_cache_dir(None)
    assert paths.cache_dir() == tmp_path / "env"


def test_data_dir_defaults_into_the_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("AQUASURF_DATA", raising=False)
    paths.set_cache_dir(tmp_path)
    assert paths.data_dir("cifar") == tmp_path / "data" / "cifar"
    monkeypatch.setenv("AQUASURF_DATA", str(tmp_path / "mine"))
    assert paths.data_dir() == tmp_path / "mine"


def test_library_defaults_follow_the_resolver(tmp_path):
    from aquasurf_core.bench.ledger import default_ledger_path
    from aquasurf_core.space.store import default_store_dir
    from aquasurf_core.training.cifar import default_data_root

    paths.set_cache_dir(tmp_path)
    assert default_store_dir() == tmp_path / "spaces"
    assert default_ledger_path("cnn") == tmp_path / "bench" / "cnn" / "ledger.sqlite"
    assert default_data_root() == paths.data_dir()


def test_shipped_data_is_package_data():
    assert paths.shipped_data_dir("benchmarks").is_dir()
    assert paths.shipped_data_dir().parent.name == "aquasurf_core"
