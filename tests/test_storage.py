"""Checksums and atomic directory replacement."""

import hashlib

from aquasurf_core.storage import replace_directory, sha256_file


def test_sha256_file_with_offset(tmp_path):
    path = tmp_path / "f.bin"
    data = bytes(range(256)) * 1000
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(path, 100) == hashlib.sha256(data[100:]).hexdigest()


def test_replace_directory_swaps_and_cleans_up(tmp_path):
    target = tmp_path / "store"
    first, second = tmp_path / "tmp1", tmp_path / "tmp2"
    for d, text in [(first, "one"), (second, "two")]:
        d.mkdir()
        (d / "x").write_text(text)
    replace_directory(first, target)
    assert (target / "x").read_text() == "one" and not first.exists()
    replace_directory(second, target)
    assert (target / "x").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]  # the old copy is gone
