"""The fixed inputs on which activation-function outputs are computed (paper Appendix D,
"Unique Activation Functions" in Appendix E).

* :func:`normal_inputs`: ``n = 1,000`` samples ``x ~ N(0, 1)`` truncated (clipped) to
  ``[-5, 5]``, drawn as ``np.random.seed(0); np.clip(np.random.normal(size=1000), -5, 5)``
  in float64 and then cast to float32. This is the exact stream of the official
  implementation (``RandomState(0).normal`` is the same generator as the legacy global seed),
  so equal-output classes and unique counts are comparable with the paper's. These inputs
  define function identity (de-duplication) and the output features of the surrogate.
* :func:`linspace_inputs`: 80 equally spaced points ``np.linspace(-5, 5, 80)`` (float32),
  used to draw functions and for the UMAP figure of the output space.
"""

from __future__ import annotations

import numpy as np
import torch

#: Seed, sample size and clipping bound of the normal inputs.
NORMAL_SEED = 0
N_NORMAL = 1000
CLIP = 5.0
#: Number and range of the equally spaced inputs.
N_LINSPACE = 80
LINSPACE_RANGE = (-5.0, 5.0)


def normal_inputs(n: int = N_NORMAL, seed: int = NORMAL_SEED, clip: float = CLIP) -> np.ndarray:
    """``clip(N(0, 1) samples, -clip, clip)`` from ``RandomState(seed)``, as float32 ``[n]``."""
    if n < 1:
        raise ValueError(f"need at least one input, got n={n}")
    samples = np.random.RandomState(seed).normal(size=n)
    return np.clip(samples, -clip, clip).astype(np.float32)


def linspace_inputs(n: int = N_LINSPACE, low: float = LINSPACE_RANGE[0],
                    high: float = LINSPACE_RANGE[1]) -> np.ndarray:
    """``np.linspace(low, high, n)`` as float32 ``[n]``."""
    if n < 1:
        raise ValueError(f"need at least one input, got n={n}")
    return np.linspace(low, high, n).astype(np.float32)


def as_tensor(values: np.ndarray, device: str | torch.device = "cpu",
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A fresh tensor copy of ``values`` on ``device`` with ``dtype``."""
    return torch.tensor(np.asarray(values), dtype=dtype, device=device)


def inputs_spec() -> dict:
    """A JSON-able description of both input sets (recorded in space manifests)."""
    return {
        "normal": {"n": N_NORMAL, "seed": NORMAL_SEED, "clip": CLIP, "dtype": "float32",
                   "recipe": "np.clip(np.random.RandomState(seed).normal(size=n), -clip, clip)"},
        "linspace": {"n": N_LINSPACE, "low": LINSPACE_RANGE[0], "high": LINSPACE_RANGE[1],
                     "dtype": "float32"},
    }
