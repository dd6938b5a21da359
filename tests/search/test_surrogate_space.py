"""What the engine's surrogate searches on: computed from a snapshot, the same in the refit
process as in the caller, against the distances written out the obvious way."""

from __future__ import annotations

import numpy as np
import pytest

from aquasurf_core.embedding.distances import output_distance
from aquasurf_core.features.fim import FimLayout, fim_distance
from aquasurf_core.features.outputs import clean_outputs
from aquasurf_core.search.surrogate_space import Refitter, SpaceInputs, compute_space


@pytest.fixture
def inputs():
    rng = np.random.default_rng(0)
    layout = FimLayout.for_layers(["a", "b"], [40, 400])
    n = 24
    cdf = np.sort(rng.random((n, layout.dim)), axis=1).astype(np.float32)
    grid = np.linspace(-3, 3, 50)
    outputs = np.stack([np.tanh(a * grid) + b for a, b in rng.normal(size=(n, 2))])
    return SpaceInputs(np.arange(100, 100 + n), cdf, layout.to_dict(),
                       outputs.astype(np.float32)), layout


def test_the_raw_distances_are_eq2_plus_eq3_each_over_its_median(inputs):
    snapshot, layout = inputs
    space = compute_space("lgp-ucb", snapshot)
    n = len(snapshot.class_ids)
    outputs = clean_outputs(snapshot.outputs)
    fim = np.array([[fim_distance(snapshot.cdf[i], snapshot.cdf[j], layout) for j in range(n)]
                    for i in range(n)])
    out = np.array([[output_distance(outputs[i], outputs[j]) for j in range(n)]
                    for i in range(n)])
    off = ~np.eye(n, dtype=bool)
    expected = fim / np.median(fim[off]) + out / np.median(out[off])
    np.testing.assert_allclose(space.distances, expected, rtol=1e-6, atol=1e-9)
    assert space.coords is None and np.array_equal(space.class_ids, snapshot.class_ids)


def test_the_refit_process_computes_what_the_caller_computes(inputs):
    snapshot, _ = inputs
    with Refitter() as refitter:
        remote = refitter.submit("lgp-ucb", snapshot).result(timeout=120)
    local = Refitter(in_process=True).submit("lgp-ucb", snapshot).result()
    np.testing.assert_allclose(remote.distances, local.distances, rtol=1e-12)


def test_one_refit_at_a_time(inputs):
    from concurrent.futures import Future

    refitter = Refitter(in_process=True)
    refitter.future = Future()  # one in flight
    assert refitter.running
    with pytest.raises(RuntimeError, match="running already"):
        refitter.submit("lgp-ucb", inputs[0])


def test_bad_inputs_and_surrogates_are_refused(inputs):
    snapshot, _ = inputs
    with pytest.raises(ValueError, match="24 class ids, 3 CDF rows"):
        SpaceInputs(snapshot.class_ids, snapshot.cdf[:3], snapshot.layout, snapshot.outputs)
    with pytest.raises(ValueError, match="no search space for surrogate 'rfr'"):
        compute_space("rfr", snapshot)
    failed = Refitter(in_process=True).submit("rfr", snapshot)
    with pytest.raises(ValueError, match="no search space"):
        failed.result()
