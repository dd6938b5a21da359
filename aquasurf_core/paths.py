"""Where things live: the repository, the cache of regenerable artefacts, and user data.

One resolver per kind of directory, used by every module:

* :func:`cache_dir` -- computed spaces, benchmark build ledgers, embeddings, MNIST-1D arrays.
  In order of precedence: the directory set by :func:`set_cache_dir` (a notebook calls it
  with its ``cache_dir`` parameter), ``$AQUASURF_CACHE``, else ``<repo>/.aquasurf_cache``.
  ``cache_dir("spaces")`` is a subdirectory (not created here).
* :func:`data_dir` -- datasets a user brings (CIFAR, ImageNet-style folders, Act-Bench JSON):
  ``$AQUASURF_DATA``, else ``<cache>/data``.
* :func:`repo_root`, :func:`shipped_data_dir` -- the checkout and the package data shipped
  with it (``aquasurf_core/data``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV_CACHE", "ENV_DATA", "cache_dir", "check_path_name", "data_dir", "repo_root",
           "set_cache_dir", "shipped_data_dir"]

ENV_CACHE = "AQUASURF_CACHE"
ENV_DATA = "AQUASURF_DATA"
_PACKAGE = Path(__file__).resolve().parent
_override: Path | None = None


def repo_root() -> Path:
    """The directory holding ``aquasurf_core/`` (the checkout, for an editable install)."""
    return _PACKAGE.parent


def shipped_data_dir(*parts: str) -> Path:
    """``aquasurf_core/data/<parts...>``: data shipped inside the package."""
    return _PACKAGE.joinpath("data", *parts)


def set_cache_dir(path: str | os.PathLike | None) -> Path:
    """Use ``path`` as the cache for the rest of this process (``None``: back to the
    environment and the default). Returns the cache directory now in effect."""
    global _override
    _override = None if path is None else Path(path).expanduser().resolve()
    return cache_dir()


def cache_dir(*parts: str) -> Path:
    """The cache directory (module docstring), absolute, with ``parts`` appended."""
    if _override is not None:
        base = _override
    else:
        env = os.environ.get(ENV_CACHE)
        base = Path(env).expanduser() if env else repo_root() / ".aquasurf_cache"
    return base.resolve().joinpath(*parts)


def data_dir(*parts: str) -> Path:
    """Where user datasets are looked for: ``$AQUASURF_DATA``, else ``<cache>/data``."""
    env = os.environ.get(ENV_DATA)
    base = Path(env).expanduser().resolve() if env else cache_dir("data")
    return base.joinpath(*parts)


def check_path_name(name: str, what: str = "task name") -> str:
    """``name`` if it can be one component of a path; ``ValueError`` when it is empty, ``.``,
    ``..`` or holds a path separator or NUL (it would write outside its folder)."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name \
            or "\0" in name:
        raise ValueError(f"{what} {name!r} cannot name a folder (no '/', '\\', '..' or empty)")
    return name
