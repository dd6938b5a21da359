"""Checksums and atomic directory replacement."""

import hashlib

from aquasurf_core.storage import listed_file_problem, replace_directory, sha256_file


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


def test_atomic_directory_replaces_on_success_and_keeps_the_old_on_failure(tmp_path):
    import pytest

    from aquasurf_core.storage import atomic_directory

    target = tmp_path / "store"
    with atomic_directory(target, marker="manifest.json") as tmp:
        (tmp / "manifest.json").write_text("1")
    assert (target / "manifest.json").read_text() == "1"
    with pytest.raises(RuntimeError, match="boom"), atomic_directory(
            target, marker="manifest.json") as tmp:
        (tmp / "manifest.json").write_text("2")
        raise RuntimeError("boom")
    assert (target / "manifest.json").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]  # no temporary left
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="photos exists and is not a space store"), \
            atomic_directory(foreign, marker="manifest.json", kind="space store",
                             error=ValueError):
        pass
    assert (foreign / "cat.jpg").read_bytes() == b"x"


def test_atomic_directory_survives_sigkill_mid_write(tmp_path):
    """A real process killed with SIGKILL while writing leaves the old store whole."""
    import signal
    import subprocess
    import sys
    import time

    from aquasurf_core.storage import atomic_directory

    target = tmp_path / "store"
    with atomic_directory(target, marker="manifest.json") as tmp:
        (tmp / "manifest.json").write_text("old")
    code = (
        "import time, sys\n"
        "from aquasurf_core.storage import atomic_directory\n"
        f"with atomic_directory({str(target)!r}, marker='manifest.json') as tmp:\n"
        "    (tmp / 'manifest.json').write_text('new')\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert (target / "manifest.json").read_text() == "old"
    # the killed writer's temporary directory is left beside the store, never in its place
    assert [p.name for p in tmp_path.iterdir() if p.name != "store"][0].startswith(".store.tmp-")


def test_atomic_write_text(tmp_path):
    from aquasurf_core.storage import atomic_write_text

    path = atomic_write_text(tmp_path / "a" / "f.json", "{}")
    assert path.read_text() == "{}" and sorted(p.name for p in path.parent.iterdir()) == ["f.json"]


def test_a_manifest_entry_of_the_wrong_type_is_named_not_raised(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"abc")
    for entry in ("oops", {"bytes": "3", "sha256": "x"}, {"bytes": 3}, None, [3]):
        problem = listed_file_problem(tmp_path, "a.bin", {"a.bin": entry}, verify=True)
        assert problem.startswith("corrupt (its manifest entry"), (entry, problem)
    assert listed_file_problem(tmp_path, "a.bin", ["a.bin"], verify=True) == "not listed"
