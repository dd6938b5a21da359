"""AQuaSurF: activation-function search with a surrogate built from Fisher-information spectra
and activation outputs (Bingham & Miikkulainen, NeurIPS 2023), in PyTorch.

Modules, one concept each:

* :mod:`aquasurf_core.operators` -- the PANGAEA operator table.
* :mod:`aquasurf_core.space` -- parsing function names, ``ActivationFunction`` modules.
"""

__version__ = "0.1.0"
