"""What the large-scale search's surrogate searches on, computed off the driver's path.

The engine (:mod:`aquasurf_core.search.engine`) ranks the functions with valid Fisher spectra
by one of two spaces (:data:`~aquasurf_core.search.engine.ENGINE_SURROGATES`):

* ``"lgp-ucb"`` (the default) -- the raw distances between them, Eq. 2 between their FIM
  eigenvalue CDFs plus Eq. 3 between their outputs, each divided by its median
  (:func:`~aquasurf_core.embedding.distances.combined_distances`); no UMAP;
* ``"knr-union"`` (the paper's) -- their 2-D union UMAP embedding (FIM features + outputs,
  :mod:`aquasurf_core.embedding.umap_models`), seeded with the search's seed.

:func:`compute_space` computes either from a :class:`SpaceInputs` snapshot (plain arrays, read
from the ledger by the driver). It is a pure function of its inputs, so it runs anywhere; the
engine runs it in a :class:`Refitter` -- one separate process (``spawn``) beside the driver --
so that a refit, which grows with the featured set (UMAP: tens of seconds for a few thousand
functions; numba holds the GIL, so a thread would stall the driver), never keeps the driver
from handing work to a free worker: the search goes on with the previous space until the new
one is ready.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

__all__ = ["Refitter", "SpaceInputs", "SurrogateSpace", "compute_space"]


@dataclass(frozen=True)
class SpaceInputs:
    """A snapshot of what a refit needs: the ``class_ids`` of the functions with valid spectra,
    their FIM eigenvalue ``cdf`` rows (float32), the FIM layout (``FimLayout.to_dict()``), and
    their ``outputs`` on the 1,000 normal inputs (float32, as stored in the space)."""

    class_ids: np.ndarray
    cdf: np.ndarray
    layout: dict
    outputs: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.class_ids)
        if len(self.cdf) != n or len(self.outputs) != n:
            raise ValueError(f"space inputs disagree: {n} class ids, {len(self.cdf)} CDF rows, "
                             f"{len(self.outputs)} output rows")


@dataclass(frozen=True)
class SurrogateSpace:
    """A computed space: ``class_ids`` in row order, and either ``distances`` (``[n, n]``) or
    ``coords`` (``[n, 2]``); ``seconds`` it took."""

    class_ids: np.ndarray
    distances: np.ndarray | None
    coords: np.ndarray | None
    seconds: float

    @property
    def size(self) -> int:
        """Number of functions in the space (rows of ``distances`` or ``coords``)."""
        return len(self.class_ids)


def compute_space(surrogate: str, inputs: SpaceInputs, seed: int = 0) -> SurrogateSpace:
    """The space ``surrogate`` searches (module docstring) for ``inputs``. Raises
    ``ValueError`` for a surrogate the engine does not know."""
    from aquasurf_core.features.fim import FimLayout
    from aquasurf_core.features.outputs import clean_outputs

    start = time.perf_counter()
    layout = FimLayout.from_dict(inputs.layout)
    outputs = clean_outputs(np.asarray(inputs.outputs))
    if surrogate == "lgp-ucb":
        from aquasurf_core.embedding.distances import (
            combined_distances,
            fim_distance_matrix,
            output_distance_matrix,
        )

        distances = combined_distances(fim_distance_matrix(inputs.cdf, layout),
                                       output_distance_matrix(outputs))
        return SurrogateSpace(inputs.class_ids, distances, None, time.perf_counter() - start)
    if surrogate == "knr-union":
        from dataclasses import replace

        from aquasurf_core.embedding.distances import fim_embedding_features
        from aquasurf_core.embedding.umap_models import (
            FIM_SETTINGS,
            OUTPUT_SETTINGS,
            fit,
            union,
        )

        fim_model = fit(fim_embedding_features(inputs.cdf, layout),
                        replace(FIM_SETTINGS, seed=seed))
        out_model = fit(outputs, replace(OUTPUT_SETTINGS, seed=seed))
        coords = np.asarray(union(fim_model, out_model).embedding_)
        return SurrogateSpace(inputs.class_ids, None, coords, time.perf_counter() - start)
    raise ValueError(f"no search space for surrogate {surrogate!r}; the engine's are "
                     "'lgp-ucb' and 'knr-union'")


def _compute_quietly(surrogate: str, inputs: SpaceInputs, seed: int) -> SurrogateSpace:
    import torch

    torch.set_num_threads(1)  # beside the workers: one core
    return compute_space(surrogate, inputs, seed)


class Refitter:
    """Computes spaces in one separate process, one at a time (module docstring).

    ``submit(surrogate, inputs, seed)`` starts a refit and returns its future (a second while
    one runs is a ``RuntimeError``); ``running`` says whether one is in flight; ``close()``
    stops the process (also on ``with`` exit). ``in_process=True`` computes in the caller
    instead (the future is done when ``submit`` returns): for tests and debugging."""

    def __init__(self, *, in_process: bool = False):
        self.in_process = in_process
        self._pool = None
        self.future: Future | None = None

    @property
    def running(self) -> bool:
        """Whether a submitted refit has not finished yet."""
        return self.future is not None and not self.future.done()

    def submit(self, surrogate: str, inputs: SpaceInputs, seed: int = 0) -> Future:
        """Start computing :func:`compute_space` ``(surrogate, inputs, seed)`` and return its
        future: its result is the :class:`SurrogateSpace`, or the error the computation
        raised. Raises ``RuntimeError`` while another refit is running."""
        if self.running:
            raise RuntimeError("a refit is running already")
        if self.in_process:
            future: Future = Future()
            try:
                future.set_result(compute_space(surrogate, inputs, seed))
            except Exception as err:  # noqa: BLE001 -- handed to the caller with the future
                future.set_exception(err)
        else:
            if self._pool is None:
                import multiprocessing

                self._pool = multiprocessing.get_context("spawn").Pool(1)
            future = Future()
            future.set_running_or_notify_cancel()
            self._pool.apply_async(_compute_quietly, (surrogate, inputs, seed),
                                   callback=future.set_result,
                                   error_callback=future.set_exception)
        self.future = future
        return future

    def close(self) -> None:
        """Stop the process, a refit in flight included (its result is not needed)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> Refitter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
