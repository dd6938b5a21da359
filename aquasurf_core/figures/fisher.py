"""Figures and tables of notebook 02: the K-FAC Fisher spectrum at initialisation (paper
Section 3, Figure 5; Appendices C-E).

Figure 5 and its yardstick (:func:`negation_study`)
---------------------------------------------------
The paper's Figure 5 shows that a network with ``f`` and one with ``-f`` have the same
eigenvalue distribution. Exactly: the network ``(-f, W)`` computes the same function as
``(f, W')`` where ``W'`` negates the weights that read the activation's output, so with
weights drawn from a distribution symmetric about zero, ``-f``'s spectrum *has the same
distribution* as ``f``'s -- it is not the same spectrum for a given draw. (The exact identity,
``(f, W)`` against ``(-f, W')`` with the same draw, is checked in ``tests/features``.) So the
right yardstick for the Eq. 2 distance ``d(f, -f)`` is the seed-to-seed noise
``d(f_s, f_s')``: the distance between ``f``'s own spectra under two independent weight draws.
For each architecture and ``f`` the study reports, over ``seeds``:

* ``d(f, −f)``: the median over seeds ``s`` of ``d(f_s, (-f)_s)`` (same seed: same ``W`` up
  to the sign flip above);
* ``noise d(f_s, f_s′)``: the median over seed pairs ``s < s'`` of ``d(f_s, f_s')``;
* ``d(f, g)``: the median over seeds and the comparison functions (ReLU, tanh, sigmoid,
  Softplus) of ``d(f_s, g_s)``;
* the ratios of the first and last to the noise. The claim holds where ``d(f, −f)`` is of the
  order of the noise and well below ``d(f, g)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
import torch

from aquasurf_core.features.fim import (
    FimFeatures,
    fim_distance,
    fim_features_batch,
    invalidity_counts,
    random_batch,
)
from aquasurf_core.features.fisher import kronecker_eigenvalues
from aquasurf_core.models import ARCHITECTURES, build_model
from aquasurf_core.paper import FIM_SECONDS_A10G

__all__ = [
    "COMPARISON_FUNCTIONS",
    "NEGATION_PAIRS",
    "TIMED_FUNCTIONS",
    "architecture_batch",
    "fig5_negation",
    "invalid_share",
    "negation_study",
    "timing_table",
]

#: Figure 5's functions and their negations.
NEGATION_PAIRS: tuple[tuple[str, str], ...] = (("elu(x)", "negative(elu(x))"),
                                               ("swish(x)", "negative(swish(x))"))
#: Other functions whose distance to ``f`` sets the scale of "different".
COMPARISON_FUNCTIONS: tuple[str, ...] = ("relu(x)", "tanh(x)", "sigmoid(x)", "softplus(x)")
#: Functions timed by :func:`timing_table`, in order.
TIMED_FUNCTIONS: tuple[str, ...] = ("relu(x)", "swish(x)", "elu(x)", "tanh(x)", "softplus(x)",
                                    "selu(x)")
_MNIST1D_SHAPE = (1, 40)

BatchFor = Callable[[str], tuple[torch.Tensor, torch.Tensor]]


def architecture_batch(arch: str, mnist_x: torch.Tensor, mnist_y: torch.Tensor, seed: int,
                       max_random: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch the Fisher of ``arch`` is computed on: the MNIST-1D batch for the small
    networks, else a seeded random batch of the architecture's input shape (at most
    ``max_random`` examples: the full-size networks are slow on a CPU)."""
    spec = ARCHITECTURES[arch]
    if spec.input_shape == _MNIST1D_SHAPE:
        return mnist_x, mnist_y
    return random_batch(spec.input_shape, spec.num_classes, min(len(mnist_x), max_random), seed)


def _all_eigenvalues(features: FimFeatures) -> np.ndarray:
    """Log-eigenvalues of every layer of a network, concatenated (``keep_eigenvalues``)."""
    logs = [kronecker_eigenvalues(o, g, log_scale=True) for o, g in features.factor_eigenvalues]
    return torch.cat(logs).cpu().numpy()


def negation_study(archs: Sequence[str], batch_for: BatchFor, seeds: Sequence[int] = (0, 1, 2),
                   pairs: Sequence[tuple[str, str]] = NEGATION_PAIRS,
                   others: Sequence[str] = COMPARISON_FUNCTIONS,
                   seeds_for: Callable[[str], Sequence[int]] | None = None,
                   ) -> tuple[dict[tuple[str, str], np.ndarray], pd.DataFrame]:
    """Figure 5's spectra and its distance table against seed-to-seed noise (module
    docstring). ``seeds_for(arch)`` may give an architecture fewer seeds (at least two).

    Returns ``(spectra, table)``: ``spectra[(arch, name)]`` are the log-eigenvalues of every
    layer under the first seed, for the functions of ``pairs``; ``table`` has one row per
    architecture and ``f``."""
    spectra: dict[tuple[str, str], np.ndarray] = {}
    rows = []
    names = [n for pair in pairs for n in pair] + list(others)
    for arch in archs:
        arch_seeds = list(seeds_for(arch) if seeds_for else seeds)
        if len(arch_seeds) < 2:
            raise ValueError(f"the seed-to-seed noise needs two seeds or more, got {arch_seeds}")
        x, y = batch_for(arch)
        runs = {s: dict(zip(names, fim_features_batch(arch, names, x, y, seed=s, progress=False,
                                                      keep_eigenvalues=(s == arch_seeds[0])),
                            strict=True))
                for s in arch_seeds}
        first = runs[arch_seeds[0]]
        for name in [n for pair in pairs for n in pair]:
            spectra[arch, name] = _all_eigenvalues(first[name])
        layout = first[others[0]].layout
        for f, neg in pairs:
            to_neg = [fim_distance(runs[s][f].cdf, runs[s][neg].cdf, layout) for s in arch_seeds]
            noise = [fim_distance(runs[s][f].cdf, runs[t][f].cdf, layout)
                     for s, t in combinations(arch_seeds, 2)]
            to_others = [fim_distance(runs[s][f].cdf, runs[s][g].cdf, layout)
                         for s in arch_seeds for g in others]
            d_neg, d_noise, d_other = (float(np.median(v)) for v in (to_neg, noise, to_others))
            rows.append({"architecture": arch, "f": f, "seeds": len(arch_seeds),
                         "d(f, −f)": d_neg, "noise d(f_s, f_s′)": d_noise,
                         "d(f, g), g ∈ ReLU/tanh/σ/Softplus": d_other,
                         "d(f, −f) / noise": d_neg / d_noise if d_noise > 0 else float("nan"),
                         "d(f, g) / noise": d_other / d_noise if d_noise > 0 else float("nan")})
    return spectra, pd.DataFrame(rows)


def fig5_negation(spectra: dict[tuple[str, str], np.ndarray], archs: Sequence[str],
                  pairs: Sequence[tuple[str, str]] = NEGATION_PAIRS, bins: int = 120):
    """Figure 5: per architecture (rows) and pair (columns), the log-eigenvalue densities of
    ``f`` and ``-f`` (binned here, so the interactive HTML stays small)."""
    from plotly.subplots import make_subplots

    labels = [pair[0].removesuffix("(x)").upper() if pair[0] == "elu(x)" else
              pair[0].removesuffix("(x)").capitalize() for pair in pairs]
    fig = make_subplots(rows=len(archs), cols=len(pairs),
                        subplot_titles=[f"{a}: {label} vs −{label}" for a in archs
                                        for label in labels],
                        vertical_spacing=0.35 / max(len(archs), 1), horizontal_spacing=0.08)
    colors = ["#1f77b4", "#d62728"]
    for i, arch in enumerate(archs):
        for j, pair in enumerate(pairs):
            finite = [spectra[arch, name][np.isfinite(spectra[arch, name])] for name in pair]
            edges = np.linspace(min(v.min() for v in finite), max(v.max() for v in finite),
                                bins + 1)
            for c, values in enumerate(finite):
                density, _ = np.histogram(values, bins=edges, density=True)
                fig.add_scatter(x=edges[:-1], y=density, mode="lines", line_shape="hv",
                                fill="tozeroy", opacity=0.6,
                                line=dict(color=colors[c], width=1.5), name=["f", "−f"][c],
                                legendgroup=str(c), showlegend=(i == 0 and j == 0),
                                row=i + 1, col=j + 1)
    height = 260 * len(archs) + 120
    fig.update_layout(height=height, width=1000,
                      title="Log-eigenvalue distributions of the K-FAC Fisher at "
                            "initialisation (all layers)")
    fig.update_xaxes(title_text="log λ")
    return fig


def invalid_share(archs: Sequence[str], names: Sequence[str], batch_for: BatchFor,
                  seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Share of invalid spectra among ``names`` per architecture, and why: ``(share table,
    counts per architecture and kind of invalidity)`` (kinds of
    :class:`~aquasurf_core.features.fim.InvalidKind`, not layers)."""
    share_rows, kind_rows = [], []
    for arch in archs:
        x, y = batch_for(arch)
        results = fim_features_batch(arch, list(names), x, y, seed=seed, progress=False)
        flags = np.array([not r.valid for r in results])
        share_rows.append({"architecture": arch, "functions": len(results),
                           "invalid": int(flags.sum()),
                           "share invalid": round(float(flags.mean()), 3),
                           "seconds per function": round(float(np.mean([r.seconds
                                                                        for r in results])), 3)})
        for kind, count in invalidity_counts([r.invalid for r in results]).items():
            if kind != "ok":
                kind_rows.append({"architecture": arch, "reason": kind, "functions": count})
    return (pd.DataFrame(share_rows),
            pd.DataFrame(kind_rows, columns=["architecture", "reason", "functions"]))


def timing_table(archs: Sequence[str], batch_for: BatchFor, *, functions: int = 2,
                 devices: Sequence[str] = ("cpu",), batch_size: int = 128,
                 seed: int = 0) -> pd.DataFrame:
    """Seconds per function to build the network and compute its features (one warm-up
    function first), per architecture and device, beside the paper's A10G figures
    (:data:`aquasurf_core.paper.FIM_SECONDS_A10G`). The small networks use ``batch_for``'s
    MNIST-1D batch; the full-size ones a random batch of ``batch_size``."""
    rows = []
    names = list(TIMED_FUNCTIONS[:functions])
    for arch in archs:
        spec = ARCHITECTURES[arch]
        if spec.input_shape == _MNIST1D_SHAPE:
            x, y = batch_for(arch)
        else:
            x, y = random_batch(spec.input_shape, spec.num_classes, batch_size, seed)
        row = {"architecture": arch, "batch": len(x),
               "parameters": sum(p.numel() for p in build_model(arch, "relu(x)").parameters())}
        for device in devices:
            fim_features_batch(arch, names[:1], x, y, seed=seed, device=device, progress=False)
            start = time.perf_counter()
            fim_features_batch(arch, names, x, y, seed=seed, device=device, progress=False)
            row[f"{device} s/function"] = round((time.perf_counter() - start) / len(names), 3)
        row["paper A10G s/function"] = FIM_SECONDS_A10G.get(arch)
        rows.append(row)
    return pd.DataFrame(rows)
