"""Stage 2 -- the surrogate's features of a function (paper Sections 3-4, Appendices C-D):
its outputs on fixed inputs, and the eigenvalues of the Fisher information matrix of a network
at initialisation, approximated with K-FAC.

* :mod:`~aquasurf_core.features.outputs` -- output features (Eq. 3's vectors), their cleaning
  for embedding, and fingerprints that check recomputed outputs with a stated tolerance.
* :mod:`~aquasurf_core.features.fisher` -- K-FAC factors and eigenvalues (Eqs. 4-18).
* :mod:`~aquasurf_core.features.fim` -- per-layer log-eigenvalue histogram CDFs, validity
  (:class:`Invalidity`) and the Eq. 2 distance.
"""

from aquasurf_core.features.fim import (
    FimFeatures,
    FimLayout,
    Invalidity,
    InvalidKind,
    fim_distance,
    fim_features,
    fim_features_batch,
    invalidity_counts,
    layer_distances,
    random_batch,
)
from aquasurf_core.features.fisher import (
    Coverage,
    CoverageError,
    KFACFactors,
    UnsupportedLayerError,
    kfac_eigenvalues,
    kfac_factors,
    kronecker_eigenvalues,
)
from aquasurf_core.features.outputs import clean_outputs, fingerprint, output_features

__all__ = [
    "Coverage",
    "CoverageError",
    "FimFeatures",
    "FimLayout",
    "InvalidKind",
    "Invalidity",
    "KFACFactors",
    "UnsupportedLayerError",
    "clean_outputs",
    "fim_distance",
    "fim_features",
    "fim_features_batch",
    "fingerprint",
    "invalidity_counts",
    "kfac_eigenvalues",
    "kfac_factors",
    "kronecker_eigenvalues",
    "layer_distances",
    "output_features",
    "random_batch",
]
