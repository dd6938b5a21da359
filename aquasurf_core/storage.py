"""Checksummed, atomically replaced directories: how persisted artefacts are written.

A store (a search space, a benchmark) is written into a temporary directory next to its target
and then renamed into place; an existing store is first renamed aside and deleted only once the
new one is in place, so a crash leaves the old store or the new one, never a half-written one.
Every file is listed in the store's manifest with its size and SHA-256, checked when loading.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path


def sha256_file(path: str | os.PathLike, offset: int = 0) -> str:
    """Hex SHA-256 of a file's bytes from ``offset`` on, read in 16 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def listed_file_problem(directory: Path, name: str, files: dict, verify: bool) -> str | None:
    """What is wrong with file ``name`` of a store at ``directory`` whose manifest lists
    ``files`` (``{name: {"bytes", "sha256"}}``, or ``"data_sha256"`` + ``"data_offset"`` for
    a digest of the bytes after a header): ``None`` if nothing, else ``"not listed"``,
    ``"missing"``, ``"corrupt (size N, manifest says M)"`` or ``"corrupt (checksum
    mismatch)"`` (checksums only when ``verify``)."""
    if name not in files:
        return "not listed"
    entry, file = files[name], directory / name
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


def replace_directory(tmp: Path, target: Path) -> None:
    """Move the finished directory ``tmp`` to ``target``, replacing an old one there."""
    if not target.exists():
        os.rename(tmp, target)
        return
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(target, old)
    os.rename(tmp, target)
    shutil.rmtree(old, ignore_errors=True)
