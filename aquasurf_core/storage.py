"""Checksummed, atomically replaced directories and files: how persisted artefacts are written.

A store (a search space, a benchmark, an embedding) is written into a temporary directory next
to its target (:func:`atomic_directory`) and then renamed into place; an existing store is
first renamed aside and deleted only once the new one is in place, so a crash leaves the old
store or the new one, never a half-written one. Every file is listed in the store's manifest
with its size and SHA-256 (:func:`file_entry`), checked when loading
(:func:`listed_file_problem`). Single files are replaced the same way
(:func:`atomic_write_text`, :func:`atomic_write_bytes`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "atomic_directory",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_entry",
    "first_file_problem",
    "listed_file_problem",
    "replace_directory",
    "sha256_file",
]


def sha256_file(path: str | os.PathLike, offset: int = 0) -> str:
    """Hex SHA-256 of a file's bytes from ``offset`` on, read in 16 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def file_entry(path: Path) -> dict:
    """``{"bytes", "sha256"}`` of a file, as a manifest lists it."""
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def listed_file_problem(directory: Path, name: str, files: dict, verify: bool) -> str | None:
    """What is wrong with file ``name`` of a store at ``directory`` whose manifest lists
    ``files`` (``{name: {"bytes", "sha256"}}``, or ``"data_sha256"`` + ``"data_offset"`` for
    a digest of the bytes after a header): ``None`` if nothing, else ``"not listed"``,
    ``"missing"``, ``"corrupt (size N, manifest says M)"`` or ``"corrupt (checksum
    mismatch)"`` (checksums only when ``verify``)."""
    if not isinstance(files, dict) or name not in files:
        return "not listed"
    entry, file = files[name], directory / name
    if not isinstance(entry, dict) or isinstance(entry.get("bytes"), bool) or \
            not isinstance(entry.get("bytes"), int) or not (
                isinstance(entry.get("sha256"), str) or (
                    isinstance(entry.get("data_sha256"), str)
                    and isinstance(entry.get("data_offset"), int))):
        return f"corrupt (its manifest entry is not {{bytes, sha256}}: {str(entry)[:80]})"
    if not file.is_file():
        return "missing"
    if file.stat().st_size != entry["bytes"]:
        return f"corrupt (size {file.stat().st_size}, manifest says {entry['bytes']})"
    if verify:
        if "data_sha256" in entry:
            ok = sha256_file(file, int(entry["data_offset"])) == entry["data_sha256"]
        else:
            ok = sha256_file(file) == entry.get("sha256")
        if not ok:
            return "corrupt (checksum mismatch)"
    return None


def first_file_problem(directory: Path, names, files: dict,
                       verify: bool) -> tuple[str, str] | None:
    """``(name, problem)`` of the first of ``names`` with a :func:`listed_file_problem`, or
    ``None`` when every file is listed, present, of the listed size and (``verify``) checksum."""
    for name in names:
        problem = listed_file_problem(directory, name, files, verify)
        if problem:
            return name, problem
    return None


def replace_directory(tmp: Path, target: Path) -> None:
    """Move the finished directory ``tmp`` to ``target``, replacing an old one there."""
    if not target.exists():
        os.rename(tmp, target)
        return
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(target, old)
    os.rename(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_directory(target: str | os.PathLike, *, marker: str, kind: str = "store",
                     error: type[Exception] = FileExistsError) -> Iterator[Path]:
    """Write a directory atomically: yields an empty temporary directory beside ``target``;
    when the block ends normally it replaces ``target`` (:func:`replace_directory`), when it
    raises (or is interrupted) it is deleted and ``target`` is untouched.

    A non-empty ``target`` without the file ``marker`` (the store's manifest) is not a
    ``kind`` (e.g. ``"space store"``) and is never overwritten: raises ``error`` naming it."""
    target = Path(target)
    if target.exists() and not (target / marker).exists() and any(target.iterdir()):
        raise error(f"{target} exists and is not a {kind} (it has no {marker}); refusing to "
                    "overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a store is an ordinary directory
    try:
        yield tmp
        replace_directory(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Replace the file ``path`` by ``data`` atomically (a temporary file beside it, then
    ``os.replace``); a crash leaves the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))
