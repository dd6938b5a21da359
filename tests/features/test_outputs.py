"""Output features and their fingerprints: the tolerance rule checked against a slow obvious
implementation, element by element, on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aquasurf_core.features.outputs import (
    ATOL,
    N_PROBES,
    RTOL,
    clean_outputs,
    fingerprint,
    fingerprint_problems,
    output_features,
    probe_indices,
    values_agree,
)
from aquasurf_core.space.activation import ActivationFunction
from aquasurf_core.space.inputs import normal_inputs

F32_MAX = float(np.finfo(np.float32).max)


def agree_slowly(recorded: list[float], actual: list[float]) -> list[bool]:
    """The rule of the module docstring, one value at a time."""
    scale = max([abs(a) for a in recorded if math.isfinite(a)], default=0.0)
    out = []
    for a, b in zip(recorded, actual, strict=True):
        if math.isnan(a) or math.isnan(b):
            out.append(math.isnan(a) and math.isnan(b))
        elif math.isinf(a) or math.isinf(b):
            if math.isinf(a) and math.isinf(b):
                out.append(a == b)
            else:
                finite = b if math.isinf(a) else a
                infinite = a if math.isinf(a) else b
                out.append(abs(finite) > F32_MAX / 2 and (finite > 0) == (infinite > 0))
        else:
            out.append(abs(a - b) <= RTOL * max(abs(a), abs(b)) + ATOL * scale)
    return out


CASES = [
    # recorded, actual
    ([1.0, -2.0, 0.0], [1.0, -2.0, 0.0]),
    ([1.0, 1e4, 3.0], [np.nextafter(np.float32(1), np.float32(2)), 1e4 * (1 + 0.9 * RTOL), 3.0]),
    ([1.0, 1e4, 3.0], [1.0, 1e4 * (1 + 2 * RTOL), 3.1]),
    ([math.nan, 1.0, math.inf], [math.nan, math.nan, math.inf]),
    ([math.inf, -math.inf, 5.0], [F32_MAX, -F32_MAX, math.inf]),
    ([math.inf, -math.inf, 1.0], [-F32_MAX, 1e30, 1.0]),
    ([100.0, 1e-9, -3e-7], [100.0, -5e-9, 3e-5]),  # cancellation near 0, scale 100
    ([0.0, 0.0], [1e-30, -0.0]),
]


@pytest.mark.parametrize(("recorded", "actual"), CASES)
def test_values_agree_matches_the_rule_written_out(recorded, actual):
    got = values_agree(np.array([recorded], np.float32), np.array([actual], np.float32))
    expected = agree_slowly([float(np.float32(v)) for v in recorded],
                            [float(np.float32(v)) for v in actual])
    assert got[0].tolist() == expected


def test_probes_span_the_inputs():
    x = normal_inputs()
    idx = probe_indices()
    assert len(idx) == N_PROBES == len(set(idx.tolist()))
    assert x[idx[0]] == x.min() and x[idx[-1]] == x.max()
    assert (np.diff(x[idx]) >= 0).all()


def test_fingerprint_of_real_functions():
    names = ["relu(x)", "tanh(x)", "exp(exp(exp(x)))", "reciprocal(x)"]
    outputs = output_features(names)
    direct = np.stack([ActivationFunction(n)(torch.tensor(normal_inputs())).numpy()
                       for n in names])
    np.testing.assert_array_equal(outputs, direct)
    digests, probes = fingerprint(outputs)
    assert [len(d) for d in digests] == [16] * 4 and len(set(digests)) == 4
    np.testing.assert_array_equal(probes, outputs[:, probe_indices()])
    assert fingerprint_problems(names, outputs, digests, probes) == (4, 0, [])
    # -0.0 and NaN payloads are not differences (the space's equivalence rule)
    flipped = outputs.copy()
    flipped[flipped == 0] = -0.0
    assert fingerprint_problems(names, flipped, digests, probes)[0] == 4
    with pytest.raises(ValueError, match="float32"):
        fingerprint(outputs.astype(np.float64))


def test_fingerprint_problems_name_row_function_and_input():
    names = ["tanh(x)", "sigmoid(x)", "swish(x)"]
    outputs = output_features(names)
    digests, probes = fingerprint(outputs)
    noisy = np.nextafter(outputs, np.float32(np.inf))  # one ulp everywhere: tolerated
    assert fingerprint_problems(names, noisy, digests, probes) == (0, 3, [])
    swapped = outputs[[1, 0, 2]]
    exact, close, problems = fingerprint_problems(names, swapped, digests, probes)
    assert (exact, close, len(problems)) == (1, 0, 2)
    assert problems[0].startswith("row 0 ('tanh(x)'): at x = ")
    many = np.zeros_like(outputs)
    assert fingerprint_problems(names, many, digests, probes, limit=1)[2][-1] == \
        "... and 2 more rows"
    with pytest.raises(ValueError, match="does not fit"):
        fingerprint_problems(names[:2], outputs, digests, probes)


def test_clean_outputs_makes_finite_bounded_features():
    values = np.array([[1.0, math.nan, math.inf, -math.inf, -50.0]], np.float32)
    assert clean_outputs(values, clip=10).tolist() == [[1.0, 10.0, 10.0, -10.0, -10.0]]
    with pytest.raises(ValueError, match="2-D"):
        clean_outputs(np.zeros(3))
