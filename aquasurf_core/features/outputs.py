"""Output features of activation functions (paper Section 4, Eq. 3; Appendix D).

A function's output feature is the vector of its values on the 1,000 normal inputs of
:func:`aquasurf_core.space.inputs.normal_inputs` (:func:`output_features`): the same values that
decide which functions are the same (:mod:`aquasurf_core.space.evaluation`), so the features
of a class are shared by all of its names.

Embedding them needs finite vectors of comparable scale: :func:`clean_outputs` clips values to
``[-clip, clip]`` (default 10; ``±inf`` to ``±clip``) and maps NaN (undefined) to ``+clip``, an
extreme value that puts undefined outputs far from every well-behaved function. This is a
preprocessing choice of ours; the paper does not state its own.

Checking stored outputs across machines (:func:`fingerprint`, :func:`fingerprint_problems`)
----------------------------------------------------------------------------------------------
Outputs are recomputed from function names rather than shipped (they are 11.6 MB for the 3-node
space and cost about a second to compute). Recomputed on another CPU (AVX2 vs AVX-512, Intel vs
AMD) or with another torch release they can differ in the last bits of some values: each
operator's floating-point kernel may round differently, and composed functions carry those
differences forward. That is not an error. What is an error is a *real* difference: a function
whose definition changed, or a stored row that belongs to another function. So a benchmark
records, per function, a fingerprint of the outputs it was built with:

* ``digest``: 16 bytes, SHA-256 (truncated) of the row's canonical bits
  (:func:`aquasurf_core.space.evaluation.canonical_bits`: NaNs equal, ``-0.0 == +0.0``), over
  all 1,000 inputs;
* ``probe``: the row's float32 values at :data:`N_PROBES` fixed inputs, the normal inputs of
  ranks ``round(linspace(0, 999, N_PROBES))`` in sorted order (the smallest and the largest
  input included, the rest spread like the inputs themselves).

A recomputed row passes when its digest is equal (bit-identical up to the equivalence rule), or
else when every probe value agrees with the recorded one under :func:`values_agree`:

* NaN agrees with NaN only;
* an infinity agrees with the same infinity, or with a finite value of the same sign beyond
  ``FLOAT32_MAX / 2`` (a last-bit difference at the overflow threshold);
* finite ``a`` (recorded) and ``b`` agree when
  ``|a - b| <= RTOL * max(|a|, |b|) + ATOL * s``, with ``RTOL = 1e-4`` (about 800 float32
  ulps: room for last-ulp kernel differences amplified through three nested operators) and
  ``ATOL = 1e-6`` times ``s``, the largest finite ``|value|`` of the recorded probe row (room
  for cancellation, as in ``sub(x, sin(x))`` near 0, without a unit that depends on the
  function's scale).

A changed definition moves values by far more than this at some probe. Measured on the 2,902
unique functions of the 3-node space (the shipped benchmarks' rows): 134 pairs of rows agree
within the tolerance at every probe, and every one of them agrees within the tolerance at all
1,000 inputs too -- they are the same function up to float32 rounding, told apart only by the
space's bit-exact equality (``div(one(x),one(x))`` and ``add(erf(x),erfc(x))``). Any other
swap of two rows is caught. What the check cannot see is a change confined to inputs between
the probes (32 of the 1,000): such a row passes. The digest is the fast path -- rows whose bits
are reproduced are not compared value by value -- and the report of how many rows matched
bit for bit says whether this machine reproduces the build machine's kernels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aquasurf_core.space.evaluation import (
    DEFAULT_SIGNED_ZERO_DISTINCT,
    canonical_bits,
    evaluate_functions,
    row_digests,
)
from aquasurf_core.space.inputs import normal_inputs

__all__ = [
    "ATOL",
    "N_PROBES",
    "OUTPUT_CLIP",
    "RTOL",
    "clean_outputs",
    "fingerprint",
    "fingerprint_problems",
    "output_features",
    "probe_indices",
    "values_agree",
]

#: Default clip for output features before embedding (module docstring).
OUTPUT_CLIP = 10.0
#: Probe inputs per fingerprint, relative and scale-relative absolute tolerance.
N_PROBES = 32
RTOL = 1e-4
ATOL = 1e-6
_OVERFLOW = float(np.finfo(np.float32).max) / 2


def output_features(names: Sequence[str]) -> np.ndarray:
    """Each function evaluated on the 1,000 normal inputs: float32 ``[len(names), 1000]``
    (:func:`aquasurf_core.space.evaluation.evaluate_functions`, bit-identical to
    ``ActivationFunction(name)(x)``). Raises ``InvalidFunctionName`` for a bad name."""
    return evaluate_functions(list(names), normal_inputs()).numpy()


def clean_outputs(outputs: np.ndarray, clip: float = OUTPUT_CLIP) -> np.ndarray:
    """Finite float64 copy of ``outputs`` clipped to ``[-clip, clip]``, NaN -> ``+clip``."""
    values = np.asarray(outputs, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"outputs must be a 2-D array (functions x inputs), got shape "
                         f"{values.shape}")
    cleaned = np.where(np.isnan(values), clip, values)
    return np.clip(cleaned, -clip, clip)


def probe_indices(n_probes: int = N_PROBES) -> np.ndarray:
    """Indices into the normal inputs of the fingerprint's probes (module docstring)."""
    order = np.argsort(normal_inputs(), kind="stable")
    return order[np.round(np.linspace(0, len(order) - 1, n_probes)).astype(np.int64)]


def fingerprint(outputs: np.ndarray) -> tuple[list[bytes], np.ndarray]:
    """``(digests, probes)`` of float32 output rows ``[N, 1000]``: 16-byte canonical digests
    and float32 ``[N, N_PROBES]`` probe values (module docstring)."""
    outputs = np.asarray(outputs)
    if outputs.ndim != 2 or outputs.dtype != np.float32:
        raise ValueError(f"outputs must be float32 [functions, inputs], got {outputs.dtype} "
                         f"{outputs.shape}")
    digests = row_digests(canonical_bits(outputs, DEFAULT_SIGNED_ZERO_DISTINCT))
    return digests, np.ascontiguousarray(outputs[:, probe_indices()])


def values_agree(recorded: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Elementwise: does ``actual`` agree with ``recorded`` under the tolerance rule of the
    module docstring? The scale ``s`` is taken per row (last axis) of ``recorded``."""
    a = np.asarray(recorded, dtype=np.float64)
    b = np.asarray(actual, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: recorded {a.shape}, actual {b.shape}")
    finite_a, finite_b = np.isfinite(a), np.isfinite(b)
    scale = np.max(np.where(finite_a, np.abs(a), 0.0), axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):
        close = np.abs(a - b) <= RTOL * np.maximum(np.abs(a), np.abs(b)) + ATOL * scale
        both_nan = np.isnan(a) & np.isnan(b)
        same_inf = np.isinf(a) & (a == b)
        a_inf_b_huge = np.isinf(a) & finite_b & (np.abs(b) > _OVERFLOW) & (np.sign(a) == np.sign(b))
        b_inf_a_huge = np.isinf(b) & finite_a & (np.abs(a) > _OVERFLOW) & (np.sign(a) == np.sign(b))
    return (finite_a & finite_b & close) | both_nan | same_inf | a_inf_b_huge | b_inf_a_huge


def fingerprint_problems(names: Sequence[str], outputs: np.ndarray,
                         digests: Sequence[bytes], probes: np.ndarray,
                         limit: int = 5) -> tuple[int, int, list[str]]:
    """Check recomputed ``outputs`` of ``names`` against a recorded fingerprint.

    Returns ``(bit_identical, within_tolerance, problems)``: how many rows have an equal
    digest, how many others agree at every probe, and one message per failing row (the first
    ``limit`` of them, then a count), each naming the row, the function, the first probe input
    that disagrees and both values."""
    names = list(names)
    n = len(names)
    probes = np.asarray(probes)
    if outputs.shape[0] != n or len(digests) != n or probes.shape != (n, N_PROBES):
        raise ValueError(f"fingerprint of {len(digests)} digests and probes {probes.shape} "
                         f"does not fit {n} functions with outputs {outputs.shape}")
    fresh_digests, fresh_probes = fingerprint(outputs)
    exact = np.array([a == b for a, b in zip(fresh_digests, digests, strict=True)], dtype=bool)
    agree = values_agree(probes, fresh_probes)
    failing = np.flatnonzero(~exact & ~agree.all(axis=1))
    x = normal_inputs()[probe_indices()]
    problems = []
    for row in failing[:limit]:
        k = int(np.flatnonzero(~agree[row])[0])
        problems.append(f"row {row} ({names[row]!r}): at x = {x[k]:.6g} the function now gives "
                        f"{fresh_probes[row, k]!r}, the stored fingerprint says {probes[row, k]!r}")
    if len(failing) > limit:
        problems.append(f"... and {len(failing) - limit} more rows")
    return int(exact.sum()), int((~exact & agree.all(axis=1)).sum()), problems
