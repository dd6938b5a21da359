"""Stage 3 -- UMAP embeddings of activation functions (paper Section 4, Appendix D).

* :mod:`~aquasurf_core.embedding.fit` -- fitting UMAP to output features.
* :mod:`~aquasurf_core.embedding.interpolation` -- points between functions for UMAP's
  inverse transform (Figure 3).
"""

from aquasurf_core.embedding.fit import fit_output_umap
from aquasurf_core.embedding.interpolation import bilinear_grid

__all__ = ["bilinear_grid", "fit_output_umap"]
