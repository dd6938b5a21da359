"""FIM-eigenvalue features of an activation function (paper Section 3, Eq. 2; Appendix D).

For each K-FAC layer ``l`` (see :mod:`aquasurf_core.features.fisher`) the ``|theta_l|``
log-eigenvalues (natural log) of ``Omega (x) Gamma`` are binned into
``max(floor(|theta_l| / 100), MIN_BINS)`` equal bins on ``[-100, 100]`` (Appendix D uses
``floor(|theta_l| / 100)``; ``MIN_BINS = 10`` keeps layers with fewer than 1,000 weights from
collapsing to 0-9 bins), normalised to sum to 1 and turned into a cumulative distribution
(CDF). The per-layer CDFs are concatenated into one float32 vector; :class:`FimLayout` keeps
the layer sizes and bin counts.

Distance (Eq. 2): ``d = sum_l W1(mu_l, nu_l) / w_l`` with ``w_l = |theta_l|``. With equal-width
bins and the mass of each bin at its centre, the 1-Wasserstein distance between two 1-D
histograms is ``bin width x sum_k |F_mu(k) - F_nu(k)|`` (L1 distance of the CDFs), which is what
:func:`fim_distance` computes; :func:`l1_weights` gives per-entry weights so that a plain
Manhattan distance between weighted vectors (e.g. UMAP ``metric='manhattan'``) equals Eq. 2.

Zero eigenvalues. A factor eigenvalue indistinguishable from round-off is exactly 0
(:func:`aquasurf_core.features.fisher.factor_eigenvalues`), so every Kronecker eigenvalue it
takes part in has log = -inf. These, and positive eigenvalues below ``e^-100``, are CLAMPED into
the first bin: every layer's histogram always holds all ``|theta_l|`` eigenvalues, and
directions without information (e.g. the structural zero of the softmax gradient in the last
layer, or ``Omega`` rank-limited by the batch) are counted as the smallest possible value. They
are reported per layer (``n_zero``, ``n_below``).

Layers with several Kronecker blocks (grouped convolutions: ``omega`` of shape
``(G, D, D)``) contribute the union of their blocks' eigenvalues to ONE histogram; a diagonal
``omega`` (``nn.Embedding``) contributes its entries. Parameters K-FAC does not cover are not
in any histogram; :attr:`FimFeatures.coverage` says how many they are, and ``min_coverage``
turns too low a share into :class:`~aquasurf_core.features.fisher.CoverageError`.

Validity (never an exception for numerical trouble): the features are invalid when the loss or
any factor is not finite (exploding or NaN signals), when a layer's ``Omega`` or ``Gamma`` is
entirely zero or its largest log-eigenvalue is below -100 (vanishing signals), when any
log-eigenvalue is above 100 (exploding), or when the eigen-solver fails. The first problem
found, in layer order, is recorded as a structured :class:`Invalidity` (kind, layer, measured
value), which ledgers store field by field and tables group by kind
(:func:`invalidity_counts`). Invalid features have an all-NaN ``cdf`` of the same layout.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum

import numpy as np
import pandas as pd
import torch
from torch import nn

from aquasurf_core.features.fisher import (
    Coverage,
    CoverageError,
    KFACFactors,
    LayerFactors,
    SkippedLayer,
    all_finite,
    factor_eigenvalues,
    kfac_factors,
    kronecker_eigenvalues,
)

LOG_RANGE = (-100.0, 100.0)
MIN_BINS = 10
DEFAULT_BATCH_SIZE = 128


def bin_count(num_params: int, min_bins: int = MIN_BINS) -> int:
    """Number of histogram bins of a layer with ``num_params`` weights."""
    return max(int(num_params) // 100, int(min_bins))


@dataclass(frozen=True)
class FimLayout:
    """Which slice of the concatenated feature vector belongs to which layer."""

    names: tuple[str, ...]
    layer_sizes: tuple[int, ...]  # |theta_l| = w_l of Eq. 2
    bin_counts: tuple[int, ...]

    @classmethod
    def for_layers(cls, names: Sequence[str], sizes: Sequence[int], min_bins: int = MIN_BINS):
        """The layout of layers with these names and parameter counts (``bin_count`` bins
        each)."""
        return cls(tuple(names), tuple(int(s) for s in sizes),
                   tuple(bin_count(s, min_bins) for s in sizes))

    @property
    def offsets(self) -> np.ndarray:
        """Start of each layer's slice in the feature vector, and the end (``len + 1``)."""
        return np.concatenate([[0], np.cumsum(self.bin_counts)]).astype(np.int64)

    @property
    def dim(self) -> int:
        """Length of the concatenated feature vector."""
        return int(sum(self.bin_counts))

    @property
    def bin_widths(self) -> np.ndarray:
        """Width of each layer's bins on the log-eigenvalue axis (the W1 scale of Eq. 2)."""
        return (LOG_RANGE[1] - LOG_RANGE[0]) / np.asarray(self.bin_counts, dtype=np.float64)

    def to_dict(self) -> dict:
        """JSON-friendly form (read back by :meth:`from_dict`)."""
        return {"names": list(self.names), "layer_sizes": list(self.layer_sizes),
                "bin_counts": list(self.bin_counts)}

    @classmethod
    def from_dict(cls, data: dict) -> FimLayout:
        """The layout :meth:`to_dict` wrote."""
        return cls(tuple(data["names"]), tuple(data["layer_sizes"]), tuple(data["bin_counts"]))


class InvalidKind(str, Enum):
    """What makes a spectrum invalid (the value is the label used in tables and manifests)."""

    NONFINITE_LOSS = "non-finite loss"
    NONFINITE_OMEGA = "non-finite Omega (forward activations)"
    NONFINITE_GAMMA = "non-finite Gamma (gradients)"
    SOLVER_FAILED = "eigenvalue solver failed"
    ZERO_OMEGA = "Omega is zero (vanishing signal)"
    ZERO_GAMMA = "Gamma is zero (vanishing signal)"
    EXPLODING = "log-eigenvalue > 100 (exploding)"
    VANISHING = "largest log-eigenvalue < -100 (vanishing)"


@dataclass(frozen=True)
class Invalidity:
    """Why features are invalid: the ``kind``, the ``layer`` where it was found (``None`` for
    the whole network: the loss), the measured ``value`` where there is one (the loss, or the
    largest log-eigenvalue) and, for a solver failure, the solver's message in ``detail``.
    ``str()`` is a one-line description; :meth:`to_dict`/:meth:`from_dict` round-trip it."""

    kind: InvalidKind
    layer: str | None = None
    value: float | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", InvalidKind(self.kind))

    def __str__(self) -> str:
        where = "" if self.layer is None else f"layer {self.layer!r}: "
        kind = self.kind
        if kind is InvalidKind.NONFINITE_LOSS:  # a NaN loss is stored as "no value"
            return f"non-finite loss ({math.nan if self.value is None else self.value})"
        if kind is InvalidKind.SOLVER_FAILED:
            return f"{where}eigenvalue solver failed ({self.detail})"
        if kind is InvalidKind.EXPLODING:
            return f"{where}log-eigenvalue {self.value:.4g} > {LOG_RANGE[1]:g} (exploding)"
        if kind is InvalidKind.VANISHING:
            return (f"{where}largest log-eigenvalue {self.value:.4g} < {LOG_RANGE[0]:g} "
                    "(vanishing)")
        return f"{where}{kind.value}"

    def to_dict(self) -> dict:
        """JSON-friendly form (read back by :meth:`from_dict`)."""
        return {"kind": self.kind.value, "layer": self.layer, "value": self.value,
                "detail": self.detail}

    @classmethod
    def from_dict(cls, data: dict) -> Invalidity:
        """The invalidity :meth:`to_dict` wrote."""
        return cls(InvalidKind(data["kind"]), data.get("layer"), data.get("value"),
                   data.get("detail") or "")


def invalidity_counts(invalid: Sequence[Invalidity | None]) -> dict[str, int]:
    """How many features are valid (``"ok"``) and how many have each kind of invalidity,
    most frequent first (ties in order of first appearance)."""
    labels = ["ok" if i is None else i.kind.value for i in invalid]
    counts = pd.Series(labels, dtype=object).value_counts(sort=True)
    return {str(k): int(v) for k, v in counts.items()}


@dataclass
class LayerSummary:
    """One K-FAC layer of a feature: its factor sizes, bins and log-eigenvalue range."""

    name: str
    kind: str
    num_params: int
    bins: int
    omega_dim: int
    gamma_dim: int
    n_zero: int = 0  # eigenvalues that are exactly 0 (log -inf), clamped into the first bin
    n_below: int = 0  # positive eigenvalues with log < -100, clamped into the first bin
    min_log: float = math.nan  # over eigenvalues > 0
    max_log: float = math.nan
    mean_log: float = math.nan


@dataclass
class FimFeatures:
    """Features of one network: per-layer CDFs concatenated, and what went into them."""

    cdf: np.ndarray  # float32, layout.dim entries; all NaN when not valid
    layout: FimLayout
    invalid: Invalidity | None  # None when valid
    seconds: float
    layers: list[LayerSummary]
    skipped: list[SkippedLayer] = field(default_factory=list)
    loss: float = math.nan
    #: per layer ``(eigenvalues of Omega, eigenvalues of Gamma)`` (after the round-off floor,
    #: on the model's device), only with ``keep_eigenvalues=True``
    factor_eigenvalues: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    #: which share of the parameters the layers cover (fisher.Coverage)
    coverage: Coverage | None = None

    @property
    def valid(self) -> bool:
        """Whether the spectrum is valid (no :class:`Invalidity`)."""
        return self.invalid is None

    @property
    def reason(self) -> str:
        """``"ok"``, or the one-line description of :attr:`invalid`."""
        return "ok" if self.invalid is None else str(self.invalid)

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """``|theta_l|`` per layer (the weights ``w_l`` of Eq. 2)."""
        return self.layout.layer_sizes

    @property
    def bin_counts(self) -> tuple[int, ...]:
        """Number of histogram bins per layer."""
        return self.layout.bin_counts

    def summary_dict(self) -> dict:
        """JSON-friendly description (without the CDF vector)."""
        return {"valid": self.valid, "reason": self.reason,
                "invalid": None if self.invalid is None else self.invalid.to_dict(),
                "seconds": self.seconds,
                "loss": self.loss, "dim": self.layout.dim,
                "layers": [asdict(s) for s in self.layers],
                "skipped": [asdict(s) for s in self.skipped],
                "coverage": None if self.coverage is None else {
                    "covered": self.coverage.covered, "total": self.coverage.total,
                    "fraction": self.coverage.fraction,
                    "by_kind": {k: list(v) for k, v in self.coverage.by_kind.items()}}}


# --------------------------------------------------------------------------- histograms


def histogram_cdf(log_eigs: torch.Tensor, bins: int) -> torch.Tensor:
    """CDF (float64, ``bins`` entries, last = 1) of log-eigenvalues on ``LOG_RANGE`` with equal
    bins; values outside the range (including -inf) are clamped into the end bins. NaN input is
    the caller's problem (it is counted nowhere)."""
    lo, hi = LOG_RANGE
    v = log_eigs.double()
    v = v[~torch.isnan(v)]
    idx = torch.floor((v.clamp(lo, hi) - lo) * (bins / (hi - lo))).long().clamp_(0, bins - 1)
    counts = torch.bincount(idx, minlength=bins).double()
    return torch.cumsum(counts, 0) / max(1, v.numel())


def _l1_by_layer(a: np.ndarray, b: np.ndarray, layout: FimLayout) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape[-1] != layout.dim or b.shape[-1] != layout.dim:
        raise ValueError(f"feature vectors must have {layout.dim} entries, got "
                         f"{a.shape[-1]} and {b.shape[-1]}")
    return np.add.reduceat(np.abs(a - b), layout.offsets[:-1], axis=-1)


def layer_distances(a: np.ndarray, b: np.ndarray, layout: FimLayout) -> np.ndarray:
    """Per-layer 1-Wasserstein distances ``W1(mu_l, nu_l)`` between two feature vectors (CDFs),
    in log-eigenvalue units; broadcasts over leading dimensions."""
    return _l1_by_layer(a, b, layout) * layout.bin_widths


def fim_distance(a: np.ndarray, b: np.ndarray, layout: FimLayout) -> np.ndarray | float:
    """Eq. 2: ``sum_l W1(mu_l, nu_l) / w_l`` between CDF feature vectors ``a`` and ``b``
    (broadcasts over leading dimensions)."""
    d = (layer_distances(a, b, layout) / np.asarray(layout.layer_sizes, np.float64)).sum(-1)
    return float(d) if np.ndim(d) == 0 else d


def l1_weights(layout: FimLayout) -> np.ndarray:
    """Per-entry weights ``width_l / w_l``: Manhattan distance of ``cdf * l1_weights(layout)``
    vectors equals :func:`fim_distance`."""
    per_layer = layout.bin_widths / np.asarray(layout.layer_sizes, np.float64)
    return np.repeat(per_layer, layout.bin_counts)


# --------------------------------------------------------------------------- features


def _layer_check(f: LayerFactors, summary: LayerSummary
                 ) -> tuple[Invalidity | None, tuple[torch.Tensor, torch.Tensor] | None,
                            torch.Tensor | None]:
    """Validity of one layer's factors: ``(invalidity or None, factor eigenvalues or None,
    log-eigenvalues of the Kronecker product when valid)``; fills ``summary``'s statistics."""
    lo, hi = LOG_RANGE
    for kind, mat in ((InvalidKind.NONFINITE_OMEGA, f.omega), (InvalidKind.NONFINITE_GAMMA,
                                                                f.gamma)):
        if not all_finite(mat):
            return Invalidity(kind, f.name), None, None
    try:
        eo = factor_eigenvalues(f.omega, f.data_eps, f.omega_rows)
        eg = factor_eigenvalues(f.gamma, f.data_eps, f.gamma_rows)
    except (torch.linalg.LinAlgError, np.linalg.LinAlgError) as error:
        return Invalidity(InvalidKind.SOLVER_FAILED, f.name, detail=str(error)), None, None
    # Gamma first: when both factors vanish, the gradients are reported (as always).
    for kind, ev in ((InvalidKind.ZERO_GAMMA, eg), (InvalidKind.ZERO_OMEGA, eo)):
        if not bool((ev > 0).any()):
            return Invalidity(kind, f.name), (eo, eg), None
    logs = kronecker_eigenvalues(eo, eg, log_scale=True)
    finite = logs[torch.isfinite(logs)]
    stats = torch.stack([finite.min(), finite.max(), finite.mean(),
                         (finite < lo).sum().double(), torch.tensor(
                             float(logs.numel() - finite.numel()), dtype=finite.dtype,
                             device=finite.device)]).tolist()
    summary.min_log, summary.max_log, summary.mean_log = stats[0], stats[1], stats[2]
    summary.n_below, summary.n_zero = int(stats[3]), int(stats[4])
    if summary.max_log > hi:
        return Invalidity(InvalidKind.EXPLODING, f.name, summary.max_log), (eo, eg), None
    if summary.max_log < lo:
        return Invalidity(InvalidKind.VANISHING, f.name, summary.max_log), (eo, eg), None
    return None, (eo, eg), logs


def features_from_factors(
    factors: KFACFactors, *, min_bins: int = MIN_BINS, seconds: float = 0.0,
    keep_eigenvalues: bool = False,
) -> FimFeatures:
    """Histogram-CDF features (and validity) from K-FAC factors; with ``keep_eigenvalues``
    the factor eigenvalues are kept in the result (layers reached before an invalid one, and
    that one when its eigenvalues were computed)."""
    layout = FimLayout.for_layers([f.name for f in factors.layers],
                                  [f.num_params for f in factors.layers], min_bins)
    invalid = (None if math.isfinite(factors.loss)
               else Invalidity(InvalidKind.NONFINITE_LOSS, value=factors.loss))
    summaries: list[LayerSummary] = []
    parts: list[torch.Tensor] = []
    kept: list[tuple[torch.Tensor, torch.Tensor]] = []
    for f, bins in zip(factors.layers, layout.bin_counts, strict=True):
        summary = LayerSummary(f.name, f.kind, f.num_params, bins, f.omega_dim, f.gamma_dim)
        summaries.append(summary)
        if invalid is not None:
            continue
        invalid, eigenvalues, logs = _layer_check(f, summary)
        if eigenvalues is not None:
            kept.append(eigenvalues)
        if invalid is None:
            parts.append(histogram_cdf(logs, bins))
    if invalid is None:
        cdf = torch.cat(parts).cpu().numpy().astype(np.float32)
    else:
        cdf = np.full(layout.dim, np.nan, dtype=np.float32)
    return FimFeatures(cdf, layout, invalid, seconds, summaries, factors.skipped,
                       factors.loss, kept if keep_eigenvalues else None, factors.coverage)


def fim_features(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    min_bins: int = MIN_BINS,
    keep_eigenvalues: bool = False,
    min_coverage: float = 0.0,
    **kfac_kwargs,
) -> FimFeatures:
    """FIM-eigenvalue features of ``model`` on one batch. Keyword arguments go to
    :func:`aquasurf_core.features.fisher.kfac_factors` (``fisher``, ``convention``,
    ``likelihood``, ``seed``, ``factor_dtype``, ``on_unsupported``...). Structural problems
    (unsupported layer, bad arguments) raise; numerical ones give ``valid=False`` with a
    reason.

    ``min_coverage`` (in ``[0, 1]``): the least share of the model's parameters the K-FAC
    layers must cover (:attr:`FimFeatures.coverage`); below it :class:`CoverageError` is
    raised with the coverage report. It matters with ``on_unsupported="skip"`` (with the
    default ``"error"`` anything unsupported raises anyway; skipped normalisation layers and
    layers never called count as uncovered either way)."""
    if isinstance(min_coverage, bool) or not 0.0 <= float(min_coverage) <= 1.0:
        raise ValueError(f"min_coverage must be a number in [0, 1], got {min_coverage!r}")
    start = time.perf_counter()
    factors = kfac_factors(model, inputs, targets, **kfac_kwargs)
    coverage = factors.coverage
    if coverage.fraction < min_coverage:
        raise CoverageError(
            f"{coverage}. That is below min_coverage={min_coverage:g}; lower min_coverage "
            f"(e.g. min_coverage={math.floor(coverage.fraction * 1000) / 1000:g}) to accept it, "
            "or make the model's parameters K-FAC layers")
    feats = features_from_factors(factors, min_bins=min_bins, keep_eigenvalues=keep_eigenvalues)
    feats.seconds = time.perf_counter() - start
    return feats


def random_batch(input_shape: Sequence[int], num_classes: int, batch_size: int, seed: int,
                 device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed-seed N(0, 1) input batch with uniform random labels (drawn on the CPU, so the
    same on every device)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((batch_size, *input_shape), generator=g)
    y = torch.randint(0, num_classes, (batch_size,), generator=g)
    return x.to(device), y.to(device)


def _resolve_device(device: str | torch.device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but CUDA is not available")
    return device


def fim_features_batch(
    arch: str,
    fn_names: Sequence[str],
    inputs: torch.Tensor | None = None,
    targets: torch.Tensor | None = None,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    num_threads: int | None = None,
    min_coverage: float = 0.0,
    **kwargs,
) -> list[FimFeatures]:
    """Features of ``arch`` with each activation function in ``fn_names``, every network
    built by :func:`aquasurf_core.models.build_model` with the same ``seed`` (so they differ
    only in the activation function) and evaluated on the same batch, moved to ``device`` once.
    Without ``inputs``, a :func:`random_batch` of ``batch_size`` (seeded by ``seed``) is used.
    ``num_threads`` sets ``torch.set_num_threads`` for the loop (restored afterwards): for
    the small MNIST-1D models every op is tiny and one thread is as fast as two on a quiet
    2-core CPU and much faster on a loaded one (idle OpenMP threads spin). ``min_coverage``
    and the other keyword arguments go to :func:`fim_features`."""
    from tqdm.auto import tqdm

    from aquasurf_core import models

    device = _resolve_device(device)
    spec = models.ARCHITECTURES[arch] if arch in models.ARCHITECTURES else None
    if spec is None:
        raise ValueError(f"unknown architecture {arch!r}; known: {sorted(models.ARCHITECTURES)}")
    if inputs is None:
        inputs, targets = random_batch(spec.input_shape, spec.num_classes, batch_size, seed,
                                       device)
    inputs = inputs.to(device)
    targets = None if targets is None else targets.to(device)
    if num_threads is not None and (isinstance(num_threads, bool) or num_threads < 1):
        raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
    out = []
    threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        for name in tqdm(list(fn_names), desc=f"FIM {arch}", disable=not progress, unit="fn"):
            start = time.perf_counter()
            model = models.build_model(arch, name, seed=seed).to(device)
            feats = fim_features(model, inputs, targets, seed=seed, min_coverage=min_coverage,
                                 **kwargs)
            feats.seconds = time.perf_counter() - start
            out.append(feats)
    finally:
        torch.set_num_threads(threads)
    return out
