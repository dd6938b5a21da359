"""Stage 3 -- UMAP embeddings of activation functions (paper Section 4, Appendix D).

* :mod:`~aquasurf_core.embedding.distances` -- Eq. 2 and Eq. 3 as plain functions and matrices.
* :mod:`~aquasurf_core.embedding.umap_models` -- fitting UMAP with the paper's settings, the
  union of two fitted models, and models restored from plain data.
* :mod:`~aquasurf_core.embedding.embeddings` -- the FIM / outputs / both embeddings of a
  benchmark, cached on disk.
* :mod:`~aquasurf_core.embedding.interpolation` -- points between functions for UMAP's
  inverse transform (Figure 3).

The interactive view of these embeddings is the next stage, :mod:`aquasurf_core.inspector`;
nothing here imports a widget library.
"""

from aquasurf_core.embedding.distances import (
    fim_distance,
    fim_distance_matrix,
    fim_embedding_features,
    output_distance,
    output_distance_matrix,
)
from aquasurf_core.embedding.embeddings import KINDS, Embedding, embed, embed_all, embedding_rows
from aquasurf_core.embedding.interpolation import bilinear_grid
from aquasurf_core.embedding.umap_models import (
    FIM_SETTINGS,
    OUTPUT_SETTINGS,
    UmapSettings,
    fit_output_umap,
)

__all__ = [
    "FIM_SETTINGS",
    "KINDS",
    "OUTPUT_SETTINGS",
    "Embedding",
    "UmapSettings",
    "bilinear_grid",
    "embed",
    "embed_all",
    "embedding_rows",
    "fim_distance",
    "fim_distance_matrix",
    "fim_embedding_features",
    "fit_output_umap",
    "output_distance",
    "output_distance_matrix",
]
