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


def replace_directory(tmp: Path, target: Path) -> None:
    """Move the finished directory ``tmp`` to ``target``, replacing an old one there."""
    if not target.exists():
        os.rename(tmp, target)
        return
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(target, old)
    os.rename(tmp, target)
    shutil.rmtree(old, ignore_errors=True)
