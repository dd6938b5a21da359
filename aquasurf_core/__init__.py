"""AQuaSurF: activation-function search with a surrogate built from Fisher-information spectra
and activation outputs (Bingham & Miikkulainen, NeurIPS 2023), in PyTorch.

Modules, one concept each:

* :mod:`~aquasurf_core.operators` -- the PANGAEA operator table (layout-stable float32 kernels).
* :mod:`~aquasurf_core.space` -- function names <-> trees, ``ActivationFunction`` modules.
* :mod:`~aquasurf_core.schemas` -- enumerating schemas such as ``binary(unary(x),unary(x))``.
* :mod:`~aquasurf_core.feature_inputs` -- the fixed inputs of the output features.
* :mod:`~aquasurf_core.space_evaluation` -- vectorised evaluation and deduplication of spaces.
* :mod:`~aquasurf_core.space_store` -- persisted spaces (Parquet + NumPy + manifest).
* :mod:`~aquasurf_core.datasets` -- MNIST-1D, generated locally.
* :mod:`~aquasurf_core.models` -- architectures whose activation sites take a searched function.
* :mod:`~aquasurf_core.initialization` -- variance-preserving initialisation (AutoInit-style).
* :mod:`~aquasurf_core.fisher` -- K-FAC factors and eigenvalues of the Fisher (Eqs. 4-18).
* :mod:`~aquasurf_core.fim_features` -- histogram/CDF features and the Eq. 2 distance.
* :mod:`~aquasurf_core.embedding` -- UMAP embeddings of activation functions.
* :mod:`~aquasurf_core.figures` -- figure and table export; :mod:`~aquasurf_core.pipeline` --
  the papermill pipeline; :mod:`~aquasurf_core.cli` -- the ``aquasurf`` command.
"""

__version__ = "0.1.0"
