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


def test_listed_file_problem_names_each_fault(tmp_path):
    from aquasurf_core.storage import listed_file_problem, sha256_file

    (tmp_path / "a.bin").write_bytes(b"header|data")
    entry = {"bytes": 11, "sha256": sha256_file(tmp_path / "a.bin")}
    files = {"a.bin": entry, "gone.bin": {"bytes": 1, "sha256": ""}}
    assert listed_file_problem(tmp_path, "a.bin", files, verify=True) is None
    assert listed_file_problem(tmp_path, "b.bin", files, verify=True) == "not listed"
    assert listed_file_problem(tmp_path, "gone.bin", files, verify=True) == "missing"
    files["a.bin"] = {**entry, "bytes": 12}
    assert listed_file_problem(tmp_path, "a.bin", files, verify=True) == \
        "corrupt (size 11, manifest says 12)"
    files["a.bin"] = {**entry, "sha256": "0" * 64}
    assert listed_file_problem(tmp_path, "a.bin", files, verify=False) is None
    assert listed_file_problem(tmp_path, "a.bin", files, verify=True) == \
        "corrupt (checksum mismatch)"
    # a digest of the bytes after a header
    files["a.bin"] = {"bytes": 11, "data_offset": 7, "data_sha256": sha256_file(
        tmp_path / "a.bin", 7)}
    assert listed_file_problem(tmp_path, "a.bin", files, verify=True) is None
