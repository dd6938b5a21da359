"""The three embeddings of a benchmark's functions (paper Section 4, Figure 4), cached on disk.

:func:`embed` returns an :class:`Embedding` of the functions of a
:class:`~aquasurf_core.bench.table.Benchmark` by one kind of feature:

* ``"fim"`` -- the FIM-eigenvalue CDFs weighted so that Manhattan distance is Eq. 2
  (:func:`~aquasurf_core.embedding.distances.fim_embedding_features`), UMAP
  ``metric='manhattan', n_neighbors=3, min_dist=0.1``;
* ``"outputs"`` -- the cleaned outputs on the 1,000 normal inputs (Eq. 3), UMAP
  ``metric='euclidean', n_neighbors=15, min_dist=0.1``;
* ``"both"`` -- the union of those two fitted models (umap's ``+``), embedded from seed
  ``42 + seed`` (:func:`~aquasurf_core.embedding.umap_models.union`): seed 0 is exactly umap's
  ``+`` (the paper's), and other seeds give other realisations. (umap's ``+`` alone embeds the
  union from 42 whatever the seed, and on fewer than 4,096 functions the union graph is
  seed-independent, so without this every seed gave the same union layout.)

All three embed the same functions: those whose Fisher spectrum is valid (the paper filters the
others out first, and the union needs both features), in benchmark row order (``rows``). A
benchmark without FIM features (a published file without CDFs) embeds every function by its
outputs only.

Cache
-----
Every fitted model is stored under ``<cache>/embeddings/<key>/`` (:func:`aquasurf_core.paths.
cache_dir`): ``coords.npy`` (float32 ``[n, dim]``), ``graph.npz`` (the fuzzy graph, sparse) and
``manifest.json`` (kind, settings, rows, versions, seconds, and the size and SHA-256 of both
files). The key is the SHA-256 of everything that determines the result: the feature matrix's
bytes, the settings, the kind, the umap version and the cache format -- so the notebooks, the
inspector and the searches never refit the same thing, and a change of data or settings never
reads a stale entry. An entry that is missing a file, fails its checksum or does not parse is
refitted with a warning naming it, never a crash. Entries are written atomically
(:func:`aquasurf_core.storage.atomic_directory`).
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse

from aquasurf_core.bench.table import Benchmark
from aquasurf_core.embedding.distances import fim_embedding_features
from aquasurf_core.embedding.umap_models import (
    FIM_SETTINGS,
    OUTPUT_SETTINGS,
    UMAP_UNION_SEED,
    UmapSettings,
    fit,
    restore,
    union,
)
from aquasurf_core.features.outputs import clean_outputs
from aquasurf_core.paths import cache_dir
from aquasurf_core.storage import atomic_directory, file_entry, first_file_problem

__all__ = ["CACHE_FORMAT", "KINDS", "Embedding", "embed", "embed_all", "embedding_rows"]

KINDS = ("fim", "outputs", "both")
CACHE_FORMAT = 1
_FILES = ("coords.npy", "graph.npz")


@dataclass
class Embedding:
    """Coordinates of some of a benchmark's functions: ``coords[i]`` is the embedding of the
    benchmark row ``rows[i]`` (function ``names[i]``)."""

    benchmark: str
    kind: str
    rows: np.ndarray  # int64 [n]
    names: list[str]
    coords: np.ndarray  # float32 [n, dim]
    settings: dict
    key: str
    seconds: float = 0.0  # fitting time; 0 when read from the cache
    from_cache: bool = False
    path: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        """Number of embedding dimensions (columns of :attr:`coords`)."""
        return int(self.coords.shape[1])

    def position(self, row: int) -> int:
        """Index into :attr:`coords` of benchmark row ``row``; ``-1`` when not embedded."""
        where = np.searchsorted(self.rows, row)
        return int(where) if where < len(self.rows) and self.rows[where] == row else -1


def embedding_rows(benchmark: Benchmark) -> np.ndarray:
    """Benchmark rows embedded by :func:`embed`: those with a valid Fisher spectrum (all rows
    when the benchmark has no FIM features)."""
    if benchmark.fim_cdf is None:
        return np.arange(len(benchmark), dtype=np.int64)
    return np.flatnonzero(benchmark.fim_valid).astype(np.int64)


def _features(benchmark: Benchmark, kind: str, rows: np.ndarray) -> np.ndarray:
    if kind == "outputs":
        return clean_outputs(benchmark.outputs[rows])
    return fim_embedding_features(benchmark.fim_cdf[rows], benchmark.fim_layout)


def _key(*parts: object) -> str:
    import umap

    digest = hashlib.sha256()
    for part in (CACHE_FORMAT, umap.__version__, *parts):
        if isinstance(part, np.ndarray):
            digest.update(str((part.dtype.str, part.shape)).encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def _read(directory: Path, rows: np.ndarray) -> tuple[np.ndarray, scipy.sparse.csr_matrix] | None:
    """``(coords, graph)`` of a cache entry, or ``None`` (with a warning) when it is absent
    or damaged."""
    manifest = directory / "manifest.json"
    if not manifest.exists():
        return None
    try:
        meta = json.loads(manifest.read_text())
        found = first_file_problem(directory, _FILES, meta["files"], verify=True)
        if found:
            raise ValueError(f"{found[0]} is {found[1]}")
        coords = np.load(directory / "coords.npy", allow_pickle=False)
        graph = scipy.sparse.load_npz(directory / "graph.npz").tocsr()
        if coords.shape[0] != len(rows) or graph.shape != (len(rows), len(rows)) or \
                meta["rows"] != rows.tolist():
            raise ValueError("shapes or rows do not match the request")
    except (OSError, ValueError, KeyError, TypeError) as err:
        warnings.warn(f"embedding cache entry {directory} is unreadable ({err}); refitting it",
                      stacklevel=3)
        return None
    return coords, graph


def _write(directory: Path, coords: np.ndarray, graph, meta: dict) -> None:
    with atomic_directory(directory, marker="manifest.json", kind="embedding cache entry") as tmp:
        np.save(tmp / "coords.npy", np.asarray(coords, dtype=np.float32))
        scipy.sparse.save_npz(tmp / "graph.npz", scipy.sparse.csr_matrix(graph))
        meta = {**meta, "files": {name: file_entry(tmp / name) for name in _FILES}}
        (tmp / "manifest.json").write_text(json.dumps(meta, indent=2) + "\n")


def _component(benchmark: Benchmark, kind: str, rows: np.ndarray, settings: UmapSettings,
               use_cache: bool, log) -> tuple[Embedding, object | None]:
    """The ``"fim"`` or ``"outputs"`` embedding and, when it was fitted now, the model."""
    data = _features(benchmark, kind, rows)
    key = _key(kind, settings.to_dict(), data)
    directory = cache_dir("embeddings", key)
    names = [benchmark.table["fn_name"].iloc[r] for r in rows]
    found = _read(directory, rows) if use_cache else None
    if found is not None:
        coords, graph = found
        return Embedding(benchmark.name, kind, rows, names, coords, settings.to_dict(), key,
                         from_cache=True, path=directory,
                         extra={"graph": graph}), None
    start = time.perf_counter()
    model = fit(data, settings)
    seconds = time.perf_counter() - start
    coords = model.embedding_.astype(np.float32)
    if use_cache:
        _write(directory, coords, model.graph_, _meta(kind, settings.to_dict(), rows, seconds))
        log(f"embedding {benchmark.name}/{kind}: fitted {len(rows)} functions in "
            f"{seconds:.1f} s, cached in {directory}")
    return Embedding(benchmark.name, kind, rows, names, coords, settings.to_dict(), key,
                     seconds, False, directory if use_cache else None), model


def _meta(kind: str, settings: dict, rows: np.ndarray, seconds: float) -> dict:
    import umap

    return {"format": CACHE_FORMAT, "kind": kind, "settings": settings, "rows": rows.tolist(),
            "seconds": round(seconds, 3), "umap": umap.__version__}


def embed(benchmark: Benchmark, kind: str = "both", *, dim: int = 2, seed: int = 0,
          fim_neighbors: int = FIM_SETTINGS.n_neighbors,
          output_neighbors: int = OUTPUT_SETTINGS.n_neighbors,
          min_dist: float = OUTPUT_SETTINGS.min_dist, use_cache: bool = True,
          log=print) -> Embedding:
    """The ``kind`` embedding (``"fim"``, ``"outputs"`` or ``"both"``) of ``benchmark``'s
    functions with a valid spectrum, in ``dim`` dimensions, seeded (module docstring for the
    features, settings and cache). Raises ``ValueError`` for an unknown kind, ``"fim"`` or
    ``"both"`` on a benchmark without FIM features, or too few functions."""
    if kind not in KINDS:
        raise ValueError(f"unknown embedding kind {kind!r}; choose one of {', '.join(KINDS)}")
    if kind != "outputs" and benchmark.fim_cdf is None:
        raise ValueError(f"benchmark {benchmark.name!r} has no FIM features; only 'outputs' "
                         "can be embedded")
    rows = embedding_rows(benchmark)
    fim_settings = UmapSettings("manhattan", fim_neighbors, min_dist, dim, seed)
    out_settings = UmapSettings("euclidean", output_neighbors, min_dist, dim, seed)
    if kind == "fim":
        return _component(benchmark, "fim", rows, fim_settings, use_cache, log)[0]
    if kind == "outputs":
        return _component(benchmark, "outputs", rows, out_settings, use_cache, log)[0]
    return _union(benchmark, rows, fim_settings, out_settings, use_cache, log)[0]


def _union(benchmark: Benchmark, rows: np.ndarray, fim_settings: UmapSettings,
           out_settings: UmapSettings, use_cache: bool, log
           ) -> tuple[Embedding, Embedding, Embedding]:
    """``(union, fim, outputs)`` embeddings; each model fitted at most once."""
    fim_emb, fim_model = _component(benchmark, "fim", rows, fim_settings, use_cache, log)
    out_emb, out_model = _component(benchmark, "outputs", rows, out_settings, use_cache, log)
    union_seed = UMAP_UNION_SEED + fim_settings.seed
    settings = {"fim": fim_settings.to_dict(), "outputs": out_settings.to_dict(),
                "combination": "umap union (fim_model + output_model)",
                "union_seed": union_seed}
    # seed 0 keeps the key it had before union seeds existed (same layout, same entry)
    key = _key("both", fim_emb.key, out_emb.key,
               *([] if union_seed == UMAP_UNION_SEED else [{"union_seed": union_seed}]))
    directory = cache_dir("embeddings", key)
    found = _read(directory, rows) if use_cache else None
    if found is not None:
        return Embedding(benchmark.name, "both", rows, fim_emb.names, found[0], settings, key,
                         from_cache=True, path=directory), fim_emb, out_emb
    if fim_model is None:
        fim_model = restore(fim_emb.extra["graph"], fim_emb.coords, fim_settings)
    if out_model is None:
        out_model = restore(out_emb.extra["graph"], out_emb.coords, out_settings)
    start = time.perf_counter()
    model = union(fim_model, out_model, union_seed)
    seconds = time.perf_counter() - start
    coords = model.embedding_.astype(np.float32)
    if use_cache:
        _write(directory, coords, model.graph_, _meta("both", settings, rows, seconds))
        log(f"embedding {benchmark.name}/both: union of the two models in {seconds:.1f} s, "
            f"cached in {directory}")
    both = Embedding(benchmark.name, "both", rows, fim_emb.names, coords, settings, key,
                     seconds, False, directory if use_cache else None)
    return both, fim_emb, out_emb


def embed_all(benchmark: Benchmark, *, dim: int = 2, seed: int = 0,
              fim_neighbors: int = FIM_SETTINGS.n_neighbors,
              output_neighbors: int = OUTPUT_SETTINGS.n_neighbors,
              min_dist: float = OUTPUT_SETTINGS.min_dist, use_cache: bool = True,
              log=print) -> dict[str, Embedding]:
    """``{"fim", "outputs", "both"}`` embeddings of ``benchmark`` (arguments of
    :func:`embed`), each model fitted at most once."""
    if benchmark.fim_cdf is None:
        return {"outputs": embed(benchmark, "outputs", dim=dim, seed=seed,
                                 output_neighbors=output_neighbors, min_dist=min_dist,
                                 use_cache=use_cache, log=log)}
    both, fim_emb, out_emb = _union(
        benchmark, embedding_rows(benchmark),
        UmapSettings("manhattan", fim_neighbors, min_dist, dim, seed),
        UmapSettings("euclidean", output_neighbors, min_dist, dim, seed), use_cache, log)
    for emb in (fim_emb, out_emb):
        emb.extra.pop("graph", None)
    return {"fim": fim_emb, "outputs": out_emb, "both": both}
