"""Train K activation functions at once: K copies of a small model fused into one wide model.

Given K functions ``f_1 .. f_K`` and one seed, :func:`build_grouped_model` builds
``build_model(arch, f_k, seed=seed)`` for every ``k`` and fuses the K networks, layer by layer,
into one network whose channels (features) are the K copies' channels side by side, copy-major
(channel ``k * C + c`` of a fused layer is channel ``c`` of copy ``k``):

* ``Conv1d(cin, cout, groups=g)`` -> ``Conv1d(K cin, K cout, groups=K g)``: a grouped
  convolution is block-diagonal over the groups, so copy ``k``'s outputs depend only on copy
  ``k``'s inputs and weights. The *stem* (the first weight layer, fed by the shared input) is
  ``Conv1d(cin, K cout)`` with the K weights stacked: the copies share the input.
* ``BatchNorm1d(C)`` -> ``BatchNorm1d(K C)``: batch statistics and running averages are
  per channel, hence per copy.
* ``Linear(i, o)`` -> :class:`GroupedLinear`, ``y[..., k, :] = x[..., k, :] W_k^T + b_k``
  (an einsum over a ``(K, o, i)`` weight); ``LayerNorm(d)`` -> :class:`GroupedLayerNorm`,
  normalising each copy's ``d`` features separately.
* Multi-head attention with ``h`` heads -> ``K h`` heads: the fused width ``K d`` splits into
  ``K h`` heads of size ``d / h`` exactly as copy-major channels do, so head ``k h + j`` is
  copy ``k``'s head ``j``.
* Each activation site -> :class:`GroupedActivation`, which applies ``f_k`` to copy ``k``'s
  slice of the channel axis (axis 1 in convolution layers, the last axis after a ``Linear``).

Every weight, bias and BatchNorm buffer is copied from the K separately built models, so
copy ``k`` starts exactly as ``build_model(arch, f_k, seed=seed)``. The model outputs logits
``(N, K, classes)``.

Training (:func:`train_grouped`) minimises ``L = sum_k m_k L_k`` with ``L_k`` copy ``k``'s
mean cross-entropy on the shared batch and ``m_k = 1`` while copy ``k`` is alive and its loss
is finite, else 0 (``torch.where``, so a NaN/inf ``L_k`` contributes nothing). Since the
parameter sets are disjoint and every fused layer is block-diagonal, ``dL/dtheta_k =
dL_k/dtheta_k``: each copy gets exactly the gradient it would get alone. The optimiser
(:class:`GroupedOptimizer`) is elementwise (SGD with momentum and coupled weight decay, or
AdamW, the same arithmetic as ``torch.optim``'s single-tensor code) -- nothing couples copies
(no global-norm clipping). A copy whose loss becomes non-finite is marked dead at that step and
frozen (its parameters are restored after every later update), and it is reported as diverged
exactly as :func:`aquasurf_core.training.reference.train_one` would report it. NaNs inside a dead
copy's slices cannot reach other copies: no fused operation mixes channels of different copies
(checked by the tests).

The architectures it fuses are the benchmark architectures,
:data:`aquasurf_core.models.BENCHMARK_ARCHS` (the benchmarks are built with it); the tests
check the two statements above for every one of them, so a benchmark architecture added to the
registry is checked here too.

So the K copies train as K independent runs of :func:`~aquasurf_core.training.reference.train_one`
with the same seed (same initialisation, same batches in the same order) would, up to the order of
floating-point reductions inside the fused kernels.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn
from torch.nn import functional as F

from aquasurf_core.models import BENCHMARK_ARCHS, build_model
from aquasurf_core.models.small_vit import SelfAttention
from aquasurf_core.space.activation import ActivationFunction
from aquasurf_core.space.names import canonical_name
from aquasurf_core.training.data import Split, Splits
from aquasurf_core.training.recipes import (
    Recipe,
    epoch_order,
    get_recipe,
    lr_at,
)
from aquasurf_core.training.recipes import (
    train_split as _train_split,
)
from aquasurf_core.training.reference import EVAL_BATCH
from aquasurf_core.training.results import RunResult, diverged_result

__all__ = [
    "GroupedActivation",
    "GroupedLayerNorm",
    "GroupedLinear",
    "GroupedModel",
    "GroupedOptimizer",
    "build_grouped_model",
    "split_copy",
    "train_grouped",
]

class GroupedActivation(nn.Module):
    """Applies ``fns[k]`` to copy ``k``'s slice of axis ``dim`` (length ``K * C``), ``K`` the
    number of modules in ``fns``."""

    def __init__(self, fns: Sequence[nn.Module], dim: int):
        super().__init__()
        self.fns = nn.ModuleList(fns)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with each copy's slice of axis ``dim`` passed through its function; the same
        shape."""
        dim = self.dim % x.dim()
        parts = x.unflatten(dim, (len(self.fns), -1))
        # unbind, not select: the backward of K selects would zero-fill K full-size tensors.
        out = torch.stack([fn(part) for fn, part in zip(self.fns, parts.unbind(dim),
                                                        strict=True)], dim)
        return out.flatten(dim, dim + 1)

    def extra_repr(self) -> str:
        """``K`` and ``dim``, shown in the module's repr."""
        return f"K={len(self.fns)}, dim={self.dim}"


class GroupedLinear(nn.Module):
    """K independent ``nn.Linear(i, o)`` on the copy-major last axis
    ``(..., K i) -> (..., K o)``; ``weight`` is ``(K, o, i)``, ``bias`` ``(K, o)``, copied
    from the K equally shaped ``layers``."""

    def __init__(self, layers: Sequence[nn.Linear]):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]).clone())
        has_bias = layers[0].bias is not None
        self.bias = (nn.Parameter(torch.stack([m.bias.detach() for m in layers]).clone())
                     if has_bias else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., K i) -> (..., K o)``: copy ``k``'s slice through copy ``k``'s layer."""
        k, o, i = self.weight.shape
        y = torch.einsum("...ki,koi->...ko", x.unflatten(-1, (k, i)), self.weight)
        if self.bias is not None:
            y = y + self.bias
        return y.flatten(-2)


class GroupedLayerNorm(nn.Module):
    """K independent ``nn.LayerNorm(d)`` on the copy-major last axis ``(..., K d)``, with the
    parameters and ``eps`` of the K ``layers``. Raises ``NotImplementedError`` for a
    LayerNorm over more than one axis or without affine parameters."""

    def __init__(self, layers: Sequence[nn.LayerNorm]):
        super().__init__()
        first = layers[0]
        if len(first.normalized_shape) != 1 or not first.elementwise_affine:
            raise NotImplementedError("only LayerNorm over one axis with affine parameters")
        self.d = first.normalized_shape[0]
        self.eps = first.eps
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]).clone())
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in layers]).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Each copy's ``d`` features of ``(..., K d)`` normalised by its own LayerNorm."""
        y = F.layer_norm(x.unflatten(-1, (self.weight.shape[0], self.d)), (self.d,),
                         eps=self.eps)
        return (y * self.weight + self.bias).flatten(-2)


def _cat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach() for t in tensors]).clone()


def _fuse_conv(layers: Sequence[nn.Conv1d], shared_input: bool) -> nn.Conv1d:
    first, k = layers[0], len(layers)
    if shared_input and first.groups != 1:
        raise NotImplementedError("a grouped convolution cannot read the shared input")
    cin = first.in_channels if shared_input else k * first.in_channels
    groups = first.groups if shared_input else k * first.groups
    fused = nn.Conv1d(cin, k * first.out_channels, first.kernel_size, stride=first.stride,
                      padding=first.padding, dilation=first.dilation, groups=groups,
                      bias=first.bias is not None, padding_mode=first.padding_mode)
    with torch.no_grad():
        fused.weight.copy_(_cat([m.weight for m in layers]))
        if first.bias is not None:
            fused.bias.copy_(_cat([m.bias for m in layers]))
    return fused


def _fuse_batchnorm(layers: Sequence[nn.BatchNorm1d]) -> nn.BatchNorm1d:
    first, k = layers[0], len(layers)
    fused = nn.BatchNorm1d(k * first.num_features, eps=first.eps, momentum=first.momentum,
                           affine=first.affine, track_running_stats=first.track_running_stats)
    if first.momentum is None:
        raise NotImplementedError("cumulative BatchNorm averages (momentum=None)")
    with torch.no_grad():
        if first.affine:
            fused.weight.copy_(_cat([m.weight for m in layers]))
            fused.bias.copy_(_cat([m.bias for m in layers]))
        if first.track_running_stats:
            fused.running_mean.copy_(_cat([m.running_mean for m in layers]))
            fused.running_var.copy_(_cat([m.running_var for m in layers]))
    return fused


def _activation_axis(parent: nn.Module, child_name: str) -> int:
    """1 (channels of a convolution layer) unless the activation directly follows a Linear
    inside an ``nn.Sequential``, where the features are the last axis."""
    if isinstance(parent, nn.Sequential):
        names = list(parent._modules)
        index = names.index(child_name)
        if index > 0 and isinstance(parent._modules[names[index - 1]], nn.Linear):
            return -1
    return 1


class GroupedModel(nn.Module):
    """The fused model of :func:`build_grouped_model`; ``forward`` returns ``(N, K, classes)``.

    ``body`` is the fused network (logits ``(N, K * classes)``, copy-major); copy ``k`` is
    ``arch`` with activation ``fn_names[k]``, all initialised from ``seed``.
    """

    def __init__(self, body: nn.Module, arch: str, fn_names: list[str], seed: int):
        super().__init__()
        self.body = body
        self.arch = arch
        self.fn_names = fn_names
        self.seed = seed

    @property
    def copies(self) -> int:
        """``K``, the number of fused copies (one per function name)."""
        return len(self.fn_names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Every copy's logits for the shared batch ``x``: ``(N, K, classes)``."""
        return self.body(x).unflatten(-1, (self.copies, -1))


def build_grouped_model(arch: str, fn_names: Sequence[str], *, seed: int = 0) -> GroupedModel:
    """Fuse ``build_model(arch, f, seed=seed)`` for every ``f`` in ``fn_names`` (see the
    module docstring). Raises ``ValueError`` for an empty list or an architecture that is not
    a benchmark architecture (:data:`aquasurf_core.models.BENCHMARK_ARCHS`)."""
    if arch not in BENCHMARK_ARCHS:
        raise ValueError(f"grouped training fuses the benchmark architectures "
                         f"({', '.join(BENCHMARK_ARCHS)}), not {arch!r}")
    names = [canonical_name(f) for f in fn_names]
    if not names:
        raise ValueError("need at least one function")
    models = [build_model(arch, f, seed=seed) for f in names]
    body = copy.deepcopy(models[0])
    if hasattr(body, "init_report"):
        del body.init_report
    modules = [dict(m.named_modules()) for m in models]
    first_weight_layer = True
    for name, module in models[0].named_modules():
        if not name:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = body.get_submodule(parent_name)
        group = [mods[name] for mods in modules]
        if isinstance(module, nn.Conv1d):
            fused = _fuse_conv(group, shared_input=first_weight_layer)
            first_weight_layer = False
        elif isinstance(module, nn.Linear):
            if first_weight_layer:
                raise NotImplementedError("a Linear stem is not supported")
            fused = GroupedLinear(group)
        elif isinstance(module, nn.BatchNorm1d):
            fused = _fuse_batchnorm(group)
        elif isinstance(module, nn.LayerNorm):
            fused = GroupedLayerNorm(group)
        elif isinstance(module, ActivationFunction):
            fused = GroupedActivation(group, _activation_axis(models[0].get_submodule(parent_name),
                                                              child))
        elif isinstance(module, SelfAttention):
            body.get_submodule(name).heads = module.heads * len(names)
            continue
        elif isinstance(module, (nn.Dropout, nn.Identity)) and not any(
                True for _ in module.parameters()):
            if isinstance(module, nn.Dropout) and module.p > 0:
                raise NotImplementedError("dropout is not supported (its masks are not per copy)")
            continue
        elif any(True for _ in module.parameters(recurse=False)) or any(
                True for _ in module.buffers(recurse=False)):
            raise NotImplementedError(f"cannot fuse layer {name!r} of type "
                                      f"{type(module).__name__}")
        else:
            continue  # a container: its children are handled one by one
        setattr(parent, child, fused)
    return GroupedModel(body, arch, names, seed)


def split_copy(grouped: GroupedModel, k: int) -> nn.Module:
    """Copy ``k`` of a fused model as an ordinary ``build_model`` network (weights and
    BatchNorm statistics copied out); for checks and for keeping trained models."""
    model = build_model(grouped.arch, grouped.fn_names[k], seed=grouped.seed)
    fused = dict(grouped.body.named_modules())
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, (nn.Conv1d, nn.BatchNorm1d)):
                for key, tensor in list(module.named_parameters(recurse=False)) + [
                        (b, t) for b, t in module.named_buffers(recurse=False)
                        if b in ("running_mean", "running_var")]:
                    source = getattr(fused[name], key)
                    tensor.copy_(source.unflatten(0, (grouped.copies, -1))[k])
            elif isinstance(module, (nn.Linear, nn.LayerNorm)):
                module.weight.copy_(fused[name].weight[k])
                if module.bias is not None:
                    module.bias.copy_(fused[name].bias[k])
    return model


class GroupedOptimizer:
    """SGD (momentum, coupled weight decay) or AdamW over fused parameters, elementwise, with
    dead copies frozen.

    Every fused parameter's first axis is copy-major, so ``p.view(K, -1)[k]`` is copy ``k``'s
    part. The arithmetic is that of ``torch.optim.SGD`` / ``AdamW``'s single-tensor code:

    * SGD: ``g <- g + wd p``; ``b <- g`` (first step) or ``b <- mu b + g``; ``p <- p - lr b``.
    * AdamW: ``p <- p (1 - lr wd)``; ``m <- m + (1 - b1)(g - m)``; ``v <- b2 v + (1 - b2) g^2``;
      ``p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.

    ``params`` are the fused parameters, ``copies`` is ``K`` and ``recipe`` gives the
    optimiser and its settings (the learning rate is passed to :meth:`step`). Raises
    ``ValueError`` for a parameter whose first axis does not split into ``copies``.
    """

    def __init__(self, params: Sequence[nn.Parameter], copies: int, recipe: Recipe):
        self.params = list(params)
        self.copies = copies
        self.recipe = recipe
        self.steps = 0
        self.state: list[dict[str, torch.Tensor]] = [{} for _ in self.params]
        for p in self.params:
            if p.shape[0] % copies:
                raise ValueError(f"parameter of shape {tuple(p.shape)} is not split in "
                                 f"{copies} copies along its first axis")

    def zero_grad(self) -> None:
        """Drop every parameter's gradient (set it to ``None``), as ``torch.optim`` does."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lr: float, alive: torch.Tensor) -> None:
        """One update with learning rate ``lr`` of the copies where ``alive`` (bool ``(K,)``);
        the others keep their parameters (their gradients are zeroed first)."""
        r = self.recipe
        self.steps += 1
        frozen = not bool(alive.all())
        for p, state in zip(self.params, self.state, strict=True):
            grad = p.grad
            if grad is None:
                continue
            keep = alive.view(self.copies, *([1] * p.dim())).expand(
                self.copies, p.shape[0] // self.copies, *p.shape[1:]).reshape(p.shape)
            if frozen:
                grad = torch.where(keep, grad, 0.0)
                old = p.detach().clone()
            if r.optimizer == "sgd":
                if r.weight_decay != 0:
                    grad = grad.add(p, alpha=r.weight_decay)
                if r.momentum != 0:
                    if "momentum" not in state:
                        state["momentum"] = grad.detach().clone()
                    else:
                        state["momentum"].mul_(r.momentum).add_(grad)
                    grad = state["momentum"]
                p.add_(grad, alpha=-lr)
            else:
                beta1, beta2 = r.betas
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                if r.weight_decay != 0:
                    p.mul_(1 - lr * r.weight_decay)
                state["exp_avg"].lerp_(grad, 1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step = float(self.steps)
                step_size = lr / (1 - beta1**step)
                denom = (state["exp_avg_sq"].sqrt() / (1 - beta2**step) ** 0.5).add_(r.eps)
                p.addcdiv_(state["exp_avg"], denom, value=-step_size)
            if frozen:
                p.copy_(torch.where(keep, p, old))


def _per_copy_loss(logits: torch.Tensor, y: torch.Tensor, smoothing: float = 0.0,
                   reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of each copy: ``logits (N, K, C)``, ``y (N,)`` -> ``(K,)``."""
    n, k, _ = logits.shape
    losses = F.cross_entropy(logits.permute(0, 2, 1), y.unsqueeze(1).expand(n, k),
                             reduction="none", label_smoothing=smoothing)
    return losses.mean(0) if reduction == "mean" else losses.sum(0)


@torch.no_grad()
def evaluate_grouped(model: GroupedModel, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-copy ``(mean cross-entropy, accuracy)`` in eval mode, each ``(K,)`` float64."""
    model.eval()
    loss = torch.zeros(model.copies, dtype=torch.float64)
    correct = torch.zeros(model.copies, dtype=torch.int64)
    for start in range(0, len(split), EVAL_BATCH):
        x, y = split.x[start:start + EVAL_BATCH], split.y[start:start + EVAL_BATCH]
        logits = model(x)
        loss += _per_copy_loss(logits, y, reduction="sum").double()
        correct += (logits.argmax(dim=2) == y.unsqueeze(1)).sum(0)
    return loss / len(split), correct.double() / len(split)


def _finite_at_first_step(model: GroupedModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Which copies have a finite training loss on the first batch (train mode; the
    BatchNorm running statistics are restored afterwards, so the model is unchanged)."""
    buffers = [(b, b.clone()) for b in model.buffers()]
    model.train()
    with torch.no_grad():
        finite = torch.isfinite(_per_copy_loss(model(x), y))
        for b, saved in buffers:
            b.copy_(saved)
    return finite


def train_grouped(arch: str, fn_names: Sequence[str], seed: int, data: Splits,
                  recipe: Recipe | None = None, *,
                  return_model: bool = False) -> list[RunResult] | tuple[list[RunResult],
                                                                        GroupedModel]:
    """Train the functions ``fn_names`` with one ``seed`` at once; one :class:`RunResult` per
    function, as :func:`aquasurf_core.training.reference.train_one` would give (``runtime_s`` is the
    group's wall time divided by K). With ``return_model=True`` also the trained fused model
    (of the copies that survived the first step).

    Copies whose loss is already non-finite on the first batch (about 13% of the 3-node
    functions give non-finite outputs on normal inputs) are recorded as diverged after
    0 epochs and dropped before training, so they cost no compute; copies that diverge later
    stay in the fused model, frozen."""
    recipe = get_recipe(arch) if recipe is None else recipe
    start = time.perf_counter()
    names = [canonical_name(f) for f in fn_names]
    train = _train_split(data, recipe)
    orders = epoch_order(seed, recipe.epochs, len(train))
    first = orders[0][:recipe.batch_size]
    model = build_grouped_model(arch, names, seed=seed)
    survivors = _finite_at_first_step(model, train.x[first], train.y[first]).tolist()
    if not all(survivors):
        kept = [n for n, ok in zip(names, survivors, strict=True) if ok]
        model = build_grouped_model(arch, kept, seed=seed) if kept else None
    results: list[RunResult | None] = [None] * len(names)
    if model is not None:
        trained = _train_fused(model, seed, data, train, orders, recipe)
        for i, result in zip([i for i, ok in enumerate(survivors) if ok], trained, strict=True):
            results[i] = result
    runtime = (time.perf_counter() - start) / len(names)
    results = [diverged_result(arch, names[i], seed, 0, runtime) if r is None
               else replace(r, runtime_s=runtime) for i, r in enumerate(results)]
    return (results, model) if return_model else results


def _train_fused(model: GroupedModel, seed: int, data: Splits, train: Split,
                 orders: list[torch.Tensor], recipe: Recipe) -> list[RunResult]:
    """The training loop of :func:`train_grouped` (``runtime_s`` left at 0)."""
    arch, k = model.arch, model.copies
    steps_per_epoch = recipe.steps_per_epoch(len(train))
    total = steps_per_epoch * recipe.epochs
    optimizer = GroupedOptimizer(model.parameters(), k, recipe)
    alive = torch.ones(k, dtype=torch.bool)
    epochs_done = torch.zeros(k, dtype=torch.int64)
    loss_sum = torch.zeros(k, dtype=torch.float64)
    correct = torch.zeros(k, dtype=torch.int64)
    step = 0
    for order in orders:
        model.train()
        loss_sum.zero_()
        correct.zero_()
        for begin in range(0, len(train), recipe.batch_size):
            index = order[begin:begin + recipe.batch_size]
            x, y = train.x[index], train.y[index]
            logits = model(x)
            losses = _per_copy_loss(logits, y, recipe.label_smoothing)
            alive &= torch.isfinite(losses.detach())
            if not alive.any():
                break
            torch.where(alive, losses, 0.0).sum().backward()
            optimizer.step(lr_at(recipe, step, total, steps_per_epoch), alive)
            optimizer.zero_grad()
            step += 1
            with torch.no_grad():
                loss_sum += _per_copy_loss(logits, y, reduction="sum").double()
                correct += (logits.argmax(dim=2) == y.unsqueeze(1)).sum(0)
        epochs_done += alive
        if not alive.any():
            break
    val_loss, val_acc = evaluate_grouped(model, data.validation)
    test_loss, test_acc = evaluate_grouped(model, data.test)
    results = []
    for i, name in enumerate(model.fn_names):
        ok = bool(alive[i]) and math.isfinite(val_loss[i]) and math.isfinite(test_loss[i])
        if not ok:
            # A copy that died in epoch e completed e epochs (as train_one reports).
            results.append(diverged_result(arch, name, seed, int(epochs_done[i]), 0.0))
            continue
        results.append(RunResult(arch, name, seed, "ok", float(loss_sum[i]) / len(train),
                                 float(correct[i]) / len(train), float(val_loss[i]),
                                 float(val_acc[i]), float(test_loss[i]), float(test_acc[i]),
                                 recipe.epochs, 0.0))
    return results
