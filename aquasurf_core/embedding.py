"""UMAP embeddings of activation functions (paper Section 4, Appendix D "UMAP Settings").

Output features (Eq. 3): a function is the vector of its values on fixed inputs, and distances
are Euclidean, ``d(f, g) = sqrt(sum_i (f(x_i) - g(x_i))^2 / n)``; UMAP with
``metric="euclidean"`` implements Eq. 3 up to the constant ``1/sqrt(n)``, which does not change
neighbourhoods. Figure 3 uses the 80 equally spaced inputs on [-5, 5] and ``min_dist=0.5``;
Figure 4 uses the 1,000 normal inputs with ``n_neighbors=15, min_dist=0.1``.

Many functions of the space return huge, infinite or NaN values somewhere on [-5, 5]
(``exp(exp(x))``, ``reciprocal(x)``, ``pow(x, x)``...). UMAP needs finite vectors, and a single
value of 1e30 would swamp every distance, so before embedding, output features are mapped by
:func:`clean_outputs`: values are clipped to ``[-clip, clip]`` (default 10, ±inf to ±clip) and NaN
(undefined) becomes ``+clip``, an extreme value that puts undefined outputs far from every
well-behaved function. This is a display/search preprocessing choice of ours; the paper does not
state its own.
"""

from __future__ import annotations

import numpy as np

#: Default clip for output features before embedding (see module docstring).
OUTPUT_CLIP = 10.0


def clean_outputs(outputs: np.ndarray, clip: float = OUTPUT_CLIP) -> np.ndarray:
    """Finite float64 copy of ``outputs`` clipped to ``[-clip, clip]``, NaN -> ``+clip``."""
    values = np.asarray(outputs, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"outputs must be a 2-D array (functions x inputs), got shape {values.shape}")
    cleaned = np.where(np.isnan(values), clip, values)
    return np.clip(cleaned, -clip, clip)


def fit_output_umap(
    outputs: np.ndarray,
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int = 0,
    clip: float = OUTPUT_CLIP,
):
    """Fit a 2-D Euclidean UMAP (Eq. 3) to output features; deterministic for a given seed.

    Returns the fitted ``umap.UMAP``; ``.embedding_`` holds the coordinates, and
    ``.inverse_transform`` reconstructs output vectors from coordinates (Figure 3).
    """
    import umap  # imported lazily: numba compilation makes the import slow

    data = clean_outputs(outputs, clip)
    if len(data) <= n_neighbors:
        raise ValueError(
            f"UMAP needs more functions than n_neighbors={n_neighbors}; got {len(data)}"
        )
    model = umap.UMAP(
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric="euclidean",
        n_components=2,
        random_state=seed,
        n_jobs=1,
    )
    model.fit(data)
    return model


def bilinear_grid(corners: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Points interpolating bilinearly between four 2-D corners.

    ``corners`` is ``[top_left, top_right, bottom_left, bottom_right]`` (shape (4, 2)). Returns
    ``(points, uv)`` with ``points[k] = (1-u)(1-v) TL + u(1-v) TR + (1-u)v BL + uv BR`` on a
    ``steps x steps`` grid of ``(u, v)`` in [0, 1]^2, row-major with ``v`` the row.
    """
    corners = np.asarray(corners, dtype=np.float64)
    if corners.shape != (4, 2):
        raise ValueError(f"corners must have shape (4, 2), got {corners.shape}")
    if steps < 2:
        raise ValueError("steps must be at least 2")
    t = np.linspace(0.0, 1.0, steps)
    v, u = np.meshgrid(t, t, indexing="ij")
    u, v = u.ravel(), v.ravel()
    tl, tr, bl, br = corners
    points = (
        np.outer((1 - u) * (1 - v), tl)
        + np.outer(u * (1 - v), tr)
        + np.outer((1 - u) * v, bl)
        + np.outer(u * v, br)
    )
    return points, np.column_stack([u, v])
