"""Fitting UMAP to activation-function features, and restoring fitted models from plain data.

UMAP's settings (:class:`UmapSettings`) are the paper's by default (Appendix D, "UMAP
Settings"): outputs ``metric='euclidean', n_neighbors=15, min_dist=0.1`` (Eq. 3); FIM features
``metric='manhattan', n_neighbors=3, min_dist=0.1`` (Eq. 2, on the weighted CDFs of
:func:`aquasurf_core.embedding.distances.fim_embedding_features`); their union is umap's ``+``
of the two fitted models (:func:`union`). Every fit is seeded (``random_state``, which also makes
umap run its optimisation single-threaded, so the result is deterministic for a given seed,
versions and machine).

A fitted model is kept as data, never as a pickle (a pickle runs code when it is loaded): its
fuzzy graph ``graph_`` (a sparse matrix), its ``embedding_`` and its settings. That is all
umap's ``+`` reads, so :func:`restore` rebuilds a model that combines exactly as the original
does; it cannot ``transform`` new points (that needs the training data and search index, which
are not kept).

umap's kernels are compiled by numba in every new process, and umap declares most of them
without numba's on-disk cache: on our 2-core machine the first small fit in a process spent
about 25 s compiling (measured, numba 0.68 / umap 0.5.12), then 0.02 s per fit. :func:`load_umap`
turns the on-disk cache on for them, so that only the first process on a machine pays it (the
next one's first fit: 0.14 s). The compiled code is what numba would compile anyway; the cache
is keyed by numba's usual rules (source file, signature, CPU), so results do not change.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from aquasurf_core.features.outputs import OUTPUT_CLIP, clean_outputs

__all__ = ["OUTPUT_SETTINGS", "FIM_SETTINGS", "UMAP_UNION_SEED", "UmapSettings", "fit",
           "fit_output_umap", "load_umap", "restore", "union"]

#: umap's modules whose compiled kernels :func:`load_umap` caches on disk.
UMAP_KERNEL_MODULES = ("umap.umap_", "umap.layouts", "umap.spectral", "umap.utils",
                       "umap.distances", "umap.sparse")


@functools.cache
def load_umap():
    """The ``umap`` module, imported (lazily: its import is slow) with numba's on-disk cache
    turned on for the compiled kernels of :data:`UMAP_KERNEL_MODULES` (module docstring). The
    cache goes where numba puts it: ``$NUMBA_CACHE_DIR``, else beside umap's source, else the
    user's cache directory; where none is writable, the kernels are compiled as before."""
    import importlib

    from numba.core.registry import CPUDispatcher

    umap = importlib.import_module("umap")
    for module_name in UMAP_KERNEL_MODULES:
        for kernel in vars(importlib.import_module(module_name)).values():
            if isinstance(kernel, CPUDispatcher):
                try:
                    kernel.enable_caching()
                except RuntimeError:  # numba: no writable cache location for this file
                    pass
    return umap


@dataclass(frozen=True)
class UmapSettings:
    """The UMAP parameters of one embedding."""

    metric: str
    n_neighbors: int
    min_dist: float = 0.1
    dim: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.metric not in ("euclidean", "manhattan"):
            raise ValueError(f"metric must be 'euclidean' (Eq. 3) or 'manhattan' (Eq. 2), got "
                             f"{self.metric!r}")
        for name, least in (("n_neighbors", 2), ("dim", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
        if not 0 <= self.min_dist <= 1:
            raise ValueError(f"min_dist must lie in [0, 1], got {self.min_dist!r}")

    def to_dict(self) -> dict:
        """The settings as a JSON-able dict of the fields (part of an embedding's cache key)."""
        return asdict(self)

    def umap_kwargs(self) -> dict:
        """The keyword arguments of ``umap.UMAP`` for these settings (``dim`` as
        ``n_components``, ``seed`` as ``random_state``)."""
        return {"metric": self.metric, "n_neighbors": self.n_neighbors,
                "min_dist": self.min_dist, "n_components": self.dim,
                "random_state": self.seed}


#: The paper's settings (Appendix D).
OUTPUT_SETTINGS = UmapSettings("euclidean", 15, 0.1)
FIM_SETTINGS = UmapSettings("manhattan", 3, 0.1)


def fit(data: np.ndarray, settings: UmapSettings):
    """A ``umap.UMAP`` fitted to the rows of ``data`` (finite float) with ``settings``."""
    umap = load_umap()
    data = np.asarray(data)
    if data.ndim != 2 or not np.isfinite(data).all():
        raise ValueError(f"UMAP needs a finite 2-D feature matrix, got shape {data.shape}")
    if len(data) <= settings.n_neighbors:
        raise ValueError(f"UMAP needs more functions than n_neighbors={settings.n_neighbors}; "
                         f"got {len(data)}")
    model = umap.UMAP(**settings.umap_kwargs(), n_jobs=1)
    model.fit(data)
    return model


def restore(graph: scipy.sparse.spmatrix, embedding: np.ndarray, settings: UmapSettings):
    """A ``umap.UMAP`` carrying a fitted model's graph, embedding and settings (module
    docstring): enough for umap's ``+``, not for ``transform``."""
    umap = load_umap()
    from umap.umap_ import find_ab_params

    model = umap.UMAP(**settings.umap_kwargs(), n_jobs=1)
    model.graph_ = scipy.sparse.csr_matrix(graph)
    model.embedding_ = np.asarray(embedding)
    model._a, model._b = find_ab_params(model.spread, model.min_dist)
    return model


#: The seed umap's ``+`` always embeds the union graph with.
UMAP_UNION_SEED = 42


def union(fim_model, output_model, seed: int = UMAP_UNION_SEED):
    """umap's ``fim_model + output_model`` (the paper's combined model): the union of the two
    fuzzy graphs, embedded anew. umap embeds it with a fixed seed, 42, whatever the two models'
    seeds -- and for fewer than 4,096 functions umap's nearest neighbours are exact, so the two
    graphs, their union and hence the union's layout do not depend on the UMAP seed at all
    (measured: identical coordinates for seeds 0-4 on Act-Bench-Mini). With another ``seed``
    the union graph is embedded again exactly as ``+`` does (same graph, settings and
    initialisation rule) but from that seed: a different realisation of the same union."""
    import warnings

    with warnings.catch_warnings():
        # umap warns when the union graph has several components and falls back to a random
        # initialisation; the result is still deterministic
        warnings.filterwarnings("ignore", message=".*Combined graph is not connected.*")
        result = fim_model + output_model
    if seed == UMAP_UNION_SEED:
        return result
    from sklearn.utils import check_random_state
    from umap.umap_ import simplicial_set_embedding

    init = "random" if scipy.sparse.csgraph.connected_components(result.graph_)[0] > 1 \
        else "spectral"
    n_epochs = None if result.n_epochs is None else np.max(result.n_epochs)
    # the arguments of umap's UMAP.__add__ (umap 0.5), the seed aside
    result.embedding_, _ = simplicial_set_embedding(
        None, result.graph_, np.min(result.n_components), np.min(result.learning_rate),
        np.mean(result._a), np.mean(result._b), np.mean(result.repulsion_strength),
        np.mean(result.negative_sample_rate), n_epochs, init, check_random_state(seed),
        "euclidean", {}, result.densmap, result._densmap_kwds, result.output_dens,
        parallel=False, verbose=False, tqdm_kwds=fim_model.tqdm_kwds)
    return result


def fit_output_umap(outputs: np.ndarray, *, n_neighbors: int = 15, min_dist: float = 0.1,
                    seed: int = 0, clip: float = OUTPUT_CLIP):
    """A 2-D Euclidean UMAP (Eq. 3) of raw output features, cleaned first
    (:func:`~aquasurf_core.features.outputs.clean_outputs`); returns the fitted model, whose
    ``inverse_transform`` reconstructs output vectors (Figure 3)."""
    return fit(clean_outputs(outputs, clip), UmapSettings("euclidean", n_neighbors, min_dist,
                                                          2, seed))
