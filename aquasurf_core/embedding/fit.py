"""Fitting UMAP to activation-function features (paper Section 4, Appendix D "UMAP Settings").

Output features (Eq. 3): a function is the vector of its values on fixed inputs, and distances
are Euclidean, ``d(f, g) = sqrt(sum_i (f(x_i) - g(x_i))^2 / n)``; UMAP with
``metric="euclidean"`` implements Eq. 3 up to the constant ``1/sqrt(n)``, which does not change
neighbourhoods. Figure 3 uses the 80 equally spaced inputs on [-5, 5] and ``min_dist=0.5``;
Figure 4 uses the 1,000 normal inputs with ``n_neighbors=15, min_dist=0.1``.

Many functions of the space return huge, infinite or NaN values somewhere on [-5, 5]
(``exp(exp(x))``, ``reciprocal(x)``, ``pow(x, x)``...). UMAP needs finite vectors, and a single
value of 1e30 would swamp every distance, so output features are first mapped by
:func:`aquasurf_core.features.outputs.clean_outputs` (clipped to ``[-10, 10]``, NaN to ``+10``).
"""

from __future__ import annotations

import numpy as np

from aquasurf_core.features.outputs import OUTPUT_CLIP, clean_outputs


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
