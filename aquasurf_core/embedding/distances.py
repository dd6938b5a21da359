"""The surrogate's two distances between activation functions (paper Section 4, Eqs. 2-3).

Eq. 3, outputs: ``d(f, g) = sqrt( sum_i (f(x_i) - g(x_i))^2 / n )`` over the ``n = 1,000``
normal inputs -- the root-mean-square difference of the outputs (:func:`output_distance`).
It is the Euclidean distance divided by ``sqrt(n)``, so UMAP with ``metric='euclidean'`` on the
output vectors has the same neighbours as Eq. 3. The embeddings use the cleaned outputs of
:func:`aquasurf_core.features.outputs.clean_outputs` (clipped to ``[-10, 10]``, NaN to ``+10``):
Eq. 3 on raw outputs is infinite or undefined for every function that overflows somewhere.

Eq. 2, Fisher eigenvalues: ``d(f, g) = sum_l W1(mu_l, nu_l) / w_l``, the 1-Wasserstein
distances between the per-layer log-eigenvalue distributions, each divided by the layer's
weight count ``w_l = |theta_l|`` (:func:`fim_distance`, defined with the features in
:mod:`aquasurf_core.features.fim`). Between two 1-D histograms on the same equal-width bins, with
each bin's mass at its centre, ``W1 = bin width x sum_k |F_mu(k) - F_nu(k)|``: the Manhattan
distance between the CDFs, scaled by the bin width. So with every CDF entry of layer ``l``
multiplied by ``width_l / w_l`` (:func:`fim_embedding_features`), the plain Manhattan distance
between two functions' vectors *is* Eq. 2, and UMAP with ``metric='manhattan'`` on those vectors
implements it. (The Manhattan distance of the *unweighted* concatenated CDFs would instead weigh
layer ``l`` by ``1 / width_l``, i.e. by its bin count, favouring the big layers.) For the
published Act-Bench files the per-layer layout is not documented; their CDFs are used
unweighted, with a plain Manhattan distance.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from aquasurf_core.features.fim import FimLayout, fim_distance, l1_weights
from aquasurf_core.features.outputs import clean_outputs

__all__ = [
    "combined_distances",
    "fim_distance",
    "fim_distance_matrix",
    "fim_embedding_features",
    "output_distance",
    "output_distance_matrix",
    "raw_distance_matrices",
]


def output_distance(f: np.ndarray, g: np.ndarray) -> np.ndarray | float:
    """Eq. 3: the root-mean-square difference of two output vectors (last axis; broadcasts
    over leading axes). NaN or infinite outputs give NaN or infinity, as the formula does."""
    f = np.asarray(f, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if f.shape[-1] != g.shape[-1]:
        raise ValueError(f"output vectors must have the same length, got {f.shape[-1]} and "
                         f"{g.shape[-1]}")
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.sqrt(np.mean((f - g) ** 2, axis=-1))
    return float(d) if np.ndim(d) == 0 else d


def output_distance_matrix(outputs: np.ndarray, other: np.ndarray | None = None) -> np.ndarray:
    """Eq. 3 between every pair of rows (of ``outputs`` and ``other``, default ``outputs``):
    Euclidean distances divided by ``sqrt(n)``. The rows must be finite (clean them first)."""
    outputs = np.asarray(outputs, dtype=np.float64)
    other = outputs if other is None else np.asarray(other, dtype=np.float64)
    if not (np.isfinite(outputs).all() and np.isfinite(other).all()):
        raise ValueError("output vectors must be finite; clean them with "
                         "aquasurf_core.features.outputs.clean_outputs first")
    return cdist(outputs, other, metric="euclidean") / np.sqrt(outputs.shape[1])


def fim_embedding_features(cdf: np.ndarray, layout: FimLayout | None) -> np.ndarray:
    """Per-layer CDF features weighted so that their Manhattan distance is Eq. 2 (module
    docstring): float64 ``cdf * l1_weights(layout)``; unweighted when ``layout`` is ``None``
    (published files). Rows must be finite (valid spectra)."""
    cdf = np.asarray(cdf, dtype=np.float64)
    if cdf.ndim != 2:
        raise ValueError(f"expected a 2-D array of CDF features, got shape {cdf.shape}")
    if not np.isfinite(cdf).all():
        raise ValueError("FIM features must be finite: filter out invalid spectra first")
    if layout is None:
        return cdf
    if layout.dim != cdf.shape[1]:
        raise ValueError(f"layout has {layout.dim} entries, features have {cdf.shape[1]}")
    return cdf * l1_weights(layout)


def fim_distance_matrix(cdf: np.ndarray, layout: FimLayout | None,
                        other: np.ndarray | None = None) -> np.ndarray:
    """Eq. 2 between every pair of rows (of ``cdf`` and ``other``, default ``cdf``), as the
    Manhattan distance of :func:`fim_embedding_features`."""
    a = fim_embedding_features(cdf, layout)
    b = a if other is None else fim_embedding_features(other, layout)
    return cdist(a, b, metric="cityblock")


def combined_distances(*matrices: np.ndarray) -> np.ndarray:
    """The sum of distance matrices, each divided by the median of its off-diagonal entries,
    so that neither feature's scale dominates (how we combine Eq. 2 and Eq. 3 without UMAP;
    the paper combines them only through UMAP's union)."""
    total = None
    for d in matrices:
        d = np.asarray(d, dtype=np.float64)
        off = d[~np.eye(len(d), dtype=bool)]
        scale = np.median(off) if off.size and np.median(off) > 0 else 1.0
        total = d / scale if total is None else total + d / scale
    if total is None:
        raise ValueError("give at least one distance matrix")
    return total


def raw_distance_matrices(benchmark) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(rows, {"fim", "outputs", "both"})``: the distances between a benchmark's functions
    with valid spectra (``rows``) by Eq. 2, by Eq. 3 on the cleaned outputs, and their
    :func:`combined_distances` -- the raw features with the paper's distances, no UMAP."""
    if benchmark.fim_cdf is None:
        raise ValueError(f"benchmark {benchmark.name!r} has no FIM features")
    rows = np.flatnonzero(benchmark.fim_valid)
    d_fim = fim_distance_matrix(benchmark.fim_cdf[rows], benchmark.fim_layout)
    d_out = output_distance_matrix(clean_outputs(benchmark.outputs[rows]))
    return rows, {"fim": d_fim, "outputs": d_out, "both": combined_distances(d_fim, d_out)}
