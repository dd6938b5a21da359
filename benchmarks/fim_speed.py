"""Speed of the FIM features (not a test): ours against a straightforward reference.

    .venv/bin/python benchmarks/fim_speed.py                      # everything, CPU
    .venv/bin/python benchmarks/fim_speed.py --archs all-cnn-c --fns "relu(x)" --small 0
    .venv/bin/python benchmarks/fim_speed.py --device cuda --no-reference   # GPU figures
    .venv/bin/python benchmarks/fim_speed.py --anchor all-cnn-c resnet-56 mobilevitv2-0.5 \
        resnet18 mobilenet_v3_small vit_tiny --archs --small 0 --repeats 3   # vs curvlinops

Part 1, full-size models (batch of N(0,1) inputs with random labels, fixed seed): seconds per
function for :func:`aquasurf_core.features.fim.fim_features` (one forward/backward, factors,
eigenvalues, histograms) and for :func:`fisher_reference` below, the same maths written the
obvious way: NumPy float64, patches expanded by shifting the padded input once per kernel
offset, ``scipy.linalg.eigh``. Both use the same forward/backward pass of the same model (the
reference captures layer inputs and output gradients with ``retain_grad``) and the same
round-off floor on factor eigenvalues; the table prints the largest relative difference of
the Kronecker eigenvalues (those > 0 in both) and how many are zero in one but not the other.

Part 0 (``--anchor``), side by side with curvlinops, the K-FAC library a user would pick
instead: for each model (the paper's three and the own-model networks of
:mod:`aquasurf_core.models.user_networks`), alternating in this process, the same batch and
the same empirical Fisher: ours (:func:`fim_features`, float64 factors) against curvlinops'
``KFACLinearOperator`` (``FisherType.EMPIRICAL``, expand, weight and bias in one factor, its
own float32 factors) followed by ``torch.linalg.eigvalsh`` of every factor; the ratio
(curvlinops / ours, > 1: ours faster), how far each factor's normalised spectrum is from the
other's on the layers both cover, and a FLOP floor: the forward and backward pass's FLOPs
(``torch.utils.flop_counter``) at this CPU's float32 GEMM rate plus the Kronecker factors'
Gram FLOPs as we compute them (``syrk`` halves; the shift decomposition of stride-1
convolutions) and ``4/3 n^3`` per eigenproblem at its float64 rate, both rates measured here
first. Only a floor: memory traffic, patch extraction and the cast to float64 are free in it.

Part 2, small MNIST-1D models: functions per second of
:func:`aquasurf_core.fim_features.fim_features_batch` (model construction included).

The CPU is shared: the load average is printed with the figures. Paper (A10G GPU): 26 s /
84 s / 37 s per function for All-CNN-C / ResNet-56 / MobileViTv2-0.5.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import math
import os
import time

import numpy as np
import scipy.linalg
import torch
from torch import nn
from torch.nn import functional as F

from aquasurf_core import models
from aquasurf_core.features.fim import fim_features, fim_features_batch, random_batch
from aquasurf_core.features.fisher import UnsupportedLayerError, classify_module, shift_decomposable

FULL = ["all-cnn-c", "resnet-56", "mobilevitv2-0.5"]
SMALL = ["cnn", "resnet", "vit"]
SMALL_FNS = ["relu(x)", "elu(x)", "selu(x)", "swish(x)", "tanh(x)", "sigmoid(x)",
             "softplus(x)", "gelu(x)", "arctan(x)", "softsign(x)", "mish(x)", "leaky_relu(x)",
             "elish(x)", "erf(x)", "arcsinh(x)", "abs(x)", "mul(x,sigmoid(x))",
             "max(x,zero(x))", "sub(x,tanh(x))", "add(x,erf(x))"]
ANCHOR_NETS = ["resnet18", "mobilenet_v3_small", "vit_tiny"]
PAPER_A10G = {"all-cnn-c": 26.0, "resnet-56": 84.0, "mobilevitv2-0.5": 37.0}
H100_TARGET = {"all-cnn-c": 0.5, "resnet-56": 1.5, "mobilevitv2-0.5": 1.0}
CHUNK = 1 << 23  # elements of one chunk of expanded patches in the reference


# --------------------------------------------------------------------------- reference


def _ref_padding(conv: nn.Module, ndim: int) -> list[tuple[int, int]]:
    pads = []
    for i in range(ndim):
        k, d = conv.kernel_size[i], conv.dilation[i]
        if conv.padding == "same":
            total = d * (k - 1)
            pads.append((total // 2, total - total // 2))
        elif conv.padding == "valid":
            pads.append((0, 0))
        else:
            pads.append((conv.padding[i], conv.padding[i]))
    return pads


_NP_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _ref_patches(x: np.ndarray, conv: nn.Module, depthwise: bool) -> np.ndarray:
    """Expanded input: one row per (example, position) [and channel, for depthwise]; built by
    slicing the padded input once per kernel offset."""
    ndim = x.ndim - 2
    xp = np.pad(x, [(0, 0), (0, 0)] + _ref_padding(conv, ndim), mode=_NP_MODE[conv.padding_mode])
    k, d, s = conv.kernel_size, conv.dilation, conv.stride
    out = [(xp.shape[2 + i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(ndim)]
    shifted = []
    for off in itertools.product(*[range(n) for n in k]):
        index = tuple(slice(o * d[i], o * d[i] + s[i] * (out[i] - 1) + 1, s[i])
                      for i, o in enumerate(off))
        shifted.append(xp[(slice(None), slice(None)) + index])
    p = np.stack(shifted, axis=2)  # (M, C, |Delta|, *out)
    m, c, delta = p.shape[:3]
    if depthwise:  # (M, C, *out, |Delta|)
        return np.moveaxis(p, 2, -1).reshape(-1, delta)
    return np.moveaxis(p.reshape(m, c * delta, -1), 1, -1).reshape(-1, c * delta)


def _ref_eigs(mat: np.ndarray, data_eps: float) -> np.ndarray:
    ev = scipy.linalg.eigh(mat)[0]
    floor = np.abs(ev).max() * mat.shape[0] * max(np.finfo(np.float64).eps, (10 * data_eps) ** 2)
    return np.where(ev > floor, ev, 0.0)


def fisher_reference(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int = 0):
    """Per layer (name, Omega eigenvalues, Gamma eigenvalues), per-example convention."""
    layers = [(n, m) for n, m in model.named_modules()
              if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    store: dict[str, dict] = {}

    def hook(name):
        def fn(module, args, out):
            out.retain_grad()
            store[name] = {"x": args[0].detach(), "s": out}
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in layers]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        loss = F.cross_entropy(model(x), y, reduction="sum")
    loss.backward()
    for h in handles:
        h.remove()
    model.zero_grad(set_to_none=True)
    data_eps = float(torch.finfo(x.dtype).eps)
    result = []
    for name, mod in layers:
        inp = store[name]["x"].cpu().double().numpy()
        grad = store[name]["s"].grad.cpu().double().numpy()
        batch = inp.shape[0]
        depthwise = isinstance(mod, nn.Conv1d | nn.Conv2d) and mod.groups > 1
        if isinstance(mod, nn.Linear):
            a_chunks = [inp.reshape(-1, inp.shape[-1])]
            g = grad.reshape(-1, grad.shape[-1])
        else:
            per = max(1, CHUNK // (inp[0].size * int(np.prod(mod.kernel_size))))
            a_chunks = (_ref_patches(inp[i:i + per], mod, depthwise)
                        for i in range(0, batch, per))
            g = np.moveaxis(grad, 1, -1).reshape(-1, grad.shape[1])
        omega = 0.0
        for a in a_chunks:
            if mod.bias is not None:
                a = np.hstack([np.ones((a.shape[0], 1)), a])
            omega = omega + a.T @ a
        omega = omega / (batch * (mod.in_channels if depthwise else 1))
        gamma = g.T @ g / g.shape[0]
        result.append((name, _ref_eigs(omega, data_eps), _ref_eigs(gamma, data_eps)))
    return result


def compare(ours, ref) -> tuple[float, int]:
    """Max relative difference of Kronecker eigenvalues (> 0 in both), and how many are zero
    in exactly one of the two."""
    worst, mismatched = 0.0, 0
    for (eo, eg), (_, ro, rg) in zip(ours, ref, strict=True):
        a = np.sort(np.outer(eo.cpu().numpy(), eg.cpu().numpy()).ravel())
        b = np.sort(np.outer(ro, rg).ravel())
        both = (a > 0) & (b > 0)
        mismatched += int(((a > 0) != (b > 0)).sum())
        if both.any():
            worst = max(worst, float(np.max(np.abs(a[both] - b[both]) / b[both])))
    return worst, mismatched


# --------------------------------------------------------------------------- runs


def _load() -> str:
    return "load avg " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def run_full(args) -> None:
    device = torch.device(args.device)
    print(f"\n== full-size models: batch {args.batch_size}, device {device}, "
          f"torch threads {torch.get_num_threads()}, {_load()}")
    head = (f"{'arch':<16} {'fn':<14} {'layers':>6} {'dim':>6} {'valid':>5} {'ours s':>8} "
            f"{'ref s':>8} {'speedup':>7} {'max rel diff':>12} {'0-mismatch':>10} "
            f"{'paper A10G s':>12}")
    print("max rel diff = max |ours - ref| / ref over Kronecker eigenvalues > 0 in both (both "
          "use the round-off floor of fisher.factor_eigenvalues); 0-mismatch = eigenvalues zero "
          "in exactly one of the two")
    print(head)
    for arch in args.archs:
        spec = models.ARCHITECTURES[arch]
        x, y = random_batch(spec.input_shape, spec.num_classes, args.batch_size, args.seed)
        x, y = x.to(device), y.to(device)
        for fn in args.fns:
            model = models.build_model(arch, fn, seed=args.seed).to(device)
            best = None
            for _ in range(args.repeats):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                feats = fim_features(model, x, y, seed=args.seed, keep_eigenvalues=True)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                took = time.perf_counter() - start
                best = took if best is None else min(best, took)
            ref_s = speed = diff = mism = "-"
            if args.reference:
                start = time.perf_counter()
                ref = fisher_reference(model, x, y, seed=args.seed)
                ref_time = time.perf_counter() - start
                worst, mismatched = compare(feats.factor_eigenvalues, ref)
                ref_s, speed = f"{ref_time:.2f}", f"{ref_time / best:.1f}x"
                diff, mism = f"{worst:.2e}", str(mismatched)
            print(f"{arch:<16} {fn:<14} {len(feats.layers):>6} {feats.layout.dim:>6} "
                  f"{feats.valid!s:>5} {best:>8.2f} {ref_s:>8} {speed:>7} {diff:>12} "
                  f"{mism:>10} {PAPER_A10G.get(arch, float('nan')):>12.0f}", flush=True)
            if device.type == "cuda":
                print(f"{'':<31} H100 target <= {H100_TARGET.get(arch, float('nan'))} s")
    print(_load())


# --------------------------------------------------------------------------- curvlinops anchor


def _gemm_rate(dtype: torch.dtype, n: int = 1536) -> float:
    """FLOP/s of one square ``torch.mm`` in ``dtype`` (best of 3) on this machine, now."""
    a = torch.randn(n, n, dtype=dtype)
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def _anchor_model(name: str, seed: int):
    """(model, x, y) for a paper architecture or an own-model network, batch set later."""
    if name in models.ARCHITECTURES:
        spec = models.ARCHITECTURES[name]
        return models.build_model(name, "relu(x)", seed=seed), spec.input_shape, spec.num_classes
    from own_model_fisher import searchable  # benchmarks/ is on sys.path when run as a script

    model, _ = searchable(name, seed)
    return model, (3, 32, 32), 10


def _kind(name: str, module: nn.Module) -> str | None:
    try:
        return classify_module(name, module)
    except UnsupportedLayerError:  # a container holding parameters (e.g. a ViT's class token)
        return None


def _eig(n: int, rows: int) -> float:
    """4/3 n^3 flops of an n x n eigenproblem, or of its dual when there are fewer rows."""
    return 4 / 3 * min(n, rows) ** 3


def gram_flops(model: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(FLOPs of the K-FAC factors' Gram matrices as fisher.py computes them, FLOPs of the
    factors' eigenproblems), from the layer inputs/outputs of one forward pass. A Gram of
    ``n`` rows and ``d`` columns counts ``n d^2`` (a ``syrk``); stride-1 convolutions count
    their shift decomposition (``(2 k_h - 1)(2 k_w - 1)`` products of the padded input's
    ``C`` columns; the edge strips are left out), depthwise ones the banded products of
    ``depthwise_gram`` (``2 (tile + width - 1) P`` flops per padded input element per row
    offset, ``P`` phases); eigenproblems ``4/3 n^3``, ``n`` the smaller of the factor's size
    and its rows (the dual), for ``Omega`` and ``Gamma`` alike. Self-attention counts its
    ``in_proj`` and ``out_proj`` blocks."""
    total, eig = 0.0, 0.0
    shapes: list = []

    def hook(mod, args, out):
        out = out[0] if isinstance(out, tuple) else out
        shapes.append((mod, tuple(args[0].shape), tuple(out.shape)))

    handles = [m.register_forward_hook(hook) for n, m in model.named_modules()
               if _kind(n, m) in ("dense", "conv", "depthwise", "attention")]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    for mod, xin, xout in shapes:
        kind = _kind("", mod)
        if kind == "attention":  # self-attention: in_proj (E -> 3E) and out_proj (E -> E)
            rows, e = math.prod(xin[:-1]), xin[-1]
            total += 2 * rows * (e + 1) ** 2 + rows * (3 * e) ** 2 + rows * e ** 2
            eig += 2 * _eig(e + 1, rows) + _eig(3 * e, rows) + _eig(e, rows)
            continue
        if isinstance(mod, nn.Linear):
            rows = math.prod(xin[:-1])
            d_in, d_out = xin[-1] + (mod.bias is not None), xout[-1]
            total += rows * d_in ** 2 + rows * d_out ** 2  # two syrk: n d^2 each
            eig += _eig(d_in, rows) + _eig(d_out, rows)
            continue
        m, c = xin[0], xin[1]
        k = math.prod(mod.kernel_size)
        positions = math.prod(xout[2:])
        rows_out = m * positions
        if kind == "depthwise":
            (kh, kw), (sh, sw) = mod.kernel_size, mod.stride
            pad = mod._reversed_padding_repeated_twice
            padded = m * c * (xin[2] + pad[2] + pad[3]) * (xin[3] + pad[0] + pad[1])
            phases = min(sh, kh) * min(sw, kw)
            tile = 4 if phases == 1 else 2
            offsets = -(-kh // sh)  # row offsets q_i
            total += 2 * offsets * (tile + 2 * (-(-kw // sw)) - 2) * phases * padded
            eig += _eig(k + 1, rows_out * c) + _eig(xout[1], rows_out)
            total += rows_out * xout[1] ** 2
            continue
        d_in = c * k + (mod.bias is not None)
        if shift_decomposable(kind, mod) and isinstance(mod, nn.Conv2d):
            kh, kw = mod.kernel_size  # one product per shift, over the padded input
            pad = mod._reversed_padding_repeated_twice  # (left, right, top, bottom)
            padded = m * (xin[2] + pad[2] + pad[3]) * (xin[3] + pad[0] + pad[1])
            total += (2 * kh - 1) * (2 * kw - 1) * padded * c ** 2
        else:
            total += rows_out * d_in ** 2
        total += rows_out * xout[1] ** 2
        eig += _eig(d_in, rows_out) + _eig(xout[1], rows_out)
    return total, eig


def curvlinops_spectra(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int):
    """Per layer name, (input-factor eigenvalues, gradient-factor eigenvalues) from
    curvlinops' KFACLinearOperator (empirical Fisher, expand, float32 factors). The global
    RNG is seeded with ``seed`` before the pass, as fim_features does, so that dropout draws
    the same masks in both."""
    from curvlinops import KFACLinearOperator
    from curvlinops.kfac import FisherType

    names = {m: n for n, m in model.named_modules()}
    layers = [m for m in model.modules()
              if type(m) in (nn.Linear, nn.Conv2d) or type(m).__name__ ==
              "NonDynamicallyQuantizableLinear"]
    params = [p for m in layers for p in m.parameters(recurse=False)]
    op = KFACLinearOperator(model, nn.CrossEntropyLoss(), params, [(x, y)],
                            fisher_type=FisherType.EMPIRICAL, check_deterministic=False,
                            separate_weight_and_bias=False, progressbar=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        op.compute_kronecker_factors()
    out = {}
    for m in layers:
        name = names[m]
        a = op._input_covariances.get(name)
        g = op._gradient_covariances.get(name)
        if g is None:
            continue
        out[name] = (torch.linalg.eigvalsh(a) if a is not None else None,
                     torch.linalg.eigvalsh(g))
    return out, sum(p.numel() for p in params)


def spectra_gap(ours, names: list[str], theirs: dict) -> tuple[float, int]:
    """Largest relative difference of normalised factor eigenvalues above 1e-3 of the
    largest, over the factors of the same size in both; how many factors were compared."""
    worst, compared = 0.0, 0
    for (name, kind), (eo, eg) in zip(names, ours, strict=True):
        if name not in theirs or kind in ("depthwise", "grouped"):
            continue
        for mine, other in zip((eo, eg), theirs[name], strict=True):
            if other is None or mine.numel() != other.numel():
                continue
            a = np.sort(mine.double().cpu().numpy())
            b = np.sort(other.double().cpu().numpy())
            a, b = a / a.max(), b / b.max()
            keep = b > 1e-3
            worst = max(worst, float(np.max(np.abs(a[keep] - b[keep]) / b[keep])))
            compared += 1
    return worst, compared


def pass_flops(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """FLOPs of the network's own work in the Fisher pass: one forward pass and a backward
    pass to the input gradients (fisher.py computes no parameter gradients; curvlinops does,
    so this floor is below its pass)."""
    from torch.utils.flop_counter import FlopCounterMode

    params = [p for p in model.parameters() if p.requires_grad]
    xg = x.clone().requires_grad_(True)
    try:
        for p in params:  # no parameter gradients (the counter needs .backward())
            p.requires_grad_(False)
        with FlopCounterMode(display=False) as counter:
            F.cross_entropy(model(xg), y, reduction="sum").backward()
    finally:
        for p in params:
            p.requires_grad_(True)
    return float(counter.get_total_flops())


def run_anchor(args) -> None:
    print(f"\n== side by side with curvlinops: batch {args.batch_size}, torch threads "
          f"{torch.get_num_threads()}, {args.warmup} untimed call(s) of each first, "
          f"{args.repeats} timed, {_load()}")
    print("ours = fim_features (float64 factors, eigenvalues, histograms); curvlinops = "
          "KFACLinearOperator factors (float32) + eigvalsh; ratio = curvlinops / ours (> 1: "
          "ours faster), wall and process CPU seconds, medians of the repeats, alternating "
          "in this process; floor = pass FLOPs (forward + input-gradient backward) at the "
          "float32 GEMM rate + Gram and eigen FLOPs as fisher.py computes them at the float64 "
          "GEMM rate, both rates measured just before the model (GF/s 32/64); spectra gap = "
          "largest relative difference of normalised factor eigenvalues > 1e-3 on the factors "
          "compared (depthwise ones excluded: curvlinops averages their channels first), of "
          "ours as timed and, 'as given', of ours on the input's own layout "
          "(channels_last=False, one more untimed call: the same float32 forward pass as "
          "curvlinops, so the gap is that of the factors alone)")
    print(f"{'model':<20} {'ours s':>7} {'curvl s':>7} {'wall':>6} {'cpu':>6} {'floor s':>7} "
          f"{'= pass+gram+eig':>16} {'ours/floor':>10} {'GF/s 32/64':>10} {'covered ours':>12} "
          f"{'curvl':>6} {'spectra gap':>11} {'as given':>9} {'factors':>7}")
    for name in args.anchor:
        model, shape, classes = _anchor_model(name, args.seed)
        x, y = random_batch(shape, classes, args.batch_size, args.seed)
        r32, r64 = _gemm_rate(torch.float32), _gemm_rate(torch.float64)
        parts = (pass_flops(model, x, y) / r32, *(f / r64 for f in gram_flops(model, x)))
        floor = sum(parts)
        model.zero_grad(set_to_none=True)

        ours = functools.partial(fim_features, model, x, y, seed=args.seed,
                                 keep_eigenvalues=True, on_unsupported="skip")  # as a search
        theirs = functools.partial(curvlinops_spectra, model, x, y, args.seed)
        for _ in range(args.warmup):
            ours()
            theirs()
        times: dict = {ours: [], theirs: []}
        for _ in range(args.repeats):
            for run in (ours, theirs):
                start, cpu = time.perf_counter(), time.process_time()
                result = run()
                times[run].append((time.perf_counter() - start, time.process_time() - cpu))
                if run is ours:
                    feats = result
                else:
                    spectra, n_params = result
        model.zero_grad(set_to_none=True)
        (ours_s, ours_cpu), (theirs_s, theirs_cpu) = (np.median(np.array(times[r]), axis=0)
                                                      for r in (ours, theirs))
        total = sum(p.numel() for p in model.parameters())
        names = [(la.name, la.kind) for la in feats.layers]
        gap, compared = spectra_gap(feats.factor_eigenvalues, names, spectra)
        given = fim_features(model, x, y, seed=args.seed, keep_eigenvalues=True,
                             on_unsupported="skip", channels_last=False)
        gap_given, _ = spectra_gap(given.factor_eigenvalues, names, spectra)
        split = "+".join(f"{p:.2f}" for p in parts)
        print(f"{name:<20} {ours_s:>7.2f} {theirs_s:>7.2f} {theirs_s / ours_s:>5.2f}x "
              f"{theirs_cpu / ours_cpu:>5.2f}x {floor:>7.2f} {split:>16} "
              f"{ours_s / floor:>9.1f}x {r32 / 1e9:>5.0f}/{r64 / 1e9:<4.0f} "
              f"{feats.coverage.fraction:>12.1%} {n_params / total:>6.1%} {gap:>11.1e} "
              f"{gap_given:>9.1e} {compared:>7}", flush=True)
    print(_load())


def run_small(args) -> None:
    fns = list(itertools.islice(itertools.cycle(SMALL_FNS), args.small))
    threads = torch.get_num_threads()
    if args.small_threads:
        torch.set_num_threads(args.small_threads)
    print(f"\n== small MNIST-1D models: {len(fns)} functions, batch {args.small_batch_size}, "
          f"device {args.device}, torch threads {torch.get_num_threads()}, {_load()}")
    print(f"{'arch':<8} {'fn/s':>7} {'ms/fn':>7} {'cpu ms/fn':>9} {'valid':>6} {'dim':>6}")
    for arch in SMALL:
        fim_features_batch(arch, fns[:1], seed=args.seed, device=args.device, progress=False,
                           batch_size=args.small_batch_size)  # warm-up
        start, cpu = time.perf_counter(), time.process_time()
        feats = fim_features_batch(arch, fns, seed=args.seed, device=args.device, progress=False,
                                   batch_size=args.small_batch_size)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(f"{arch:<8} {len(fns) / wall:>7.1f} {1000 * wall / len(fns):>7.1f} "
              f"{1000 * cpu / len(fns):>9.1f} {sum(f.valid for f in feats):>6} "
              f"{feats[0].layout.dim:>6}", flush=True)
    print(_load())
    torch.set_num_threads(threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", nargs="*", default=FULL)
    parser.add_argument("--fns", nargs="*", default=["relu(x)", "elu(x)"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1,
                        help="best of N for ours (part 1); median of N (part 0)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed calls of ours and curvlinops before part 0's timing")
    parser.add_argument("--no-reference", dest="reference", action="store_false")
    parser.add_argument("--anchor", nargs="*", default=[],
                        help="models to time side by side with curvlinops (part 0), e.g. "
                        + " ".join(FULL + ANCHOR_NETS))
    parser.add_argument("--small", type=int, default=40, help="functions per small model")
    parser.add_argument("--small-batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--small-threads", type=int, default=None,
                        help="torch.set_num_threads for the small models only")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.anchor:
        run_anchor(args)
    if args.archs:
        run_full(args)
    if args.small:
        run_small(args)


if __name__ == "__main__":
    main()
