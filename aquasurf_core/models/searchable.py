"""Searching your own model: put the searched activation into a torchvision/timm network.

Public API::

    ACTIVATION_MODULES: tuple of nn.Module classes replaced by default
    ACTIVATION_FUNCTIONS: tuple of functions (F.relu, torch.tanh, ...) replaced by default
    Site(name, original, kind, module)
    make_searchable(model, name, *, types=None, names=None, functional=None,
                    normalize=False) -> (model, sites)
    set_activation(model, name, *, normalize=None) -> int
    FunctionalSitesError

Three kinds of activation site are found:

* **modules** -- every submodule that is an instance of :data:`ACTIVATION_MODULES`
  (``nn.ReLU``, ``nn.GELU``, ...) is replaced by a fresh
  :class:`~aquasurf_core.space.ActivationFunction`, in place, at the same qualified name. A
  module applied several times in ``forward`` (torchvision's ``BasicBlock.relu``) is one site;
  its replacement serves every call.
* **attributes** -- an activation function kept as a module attribute and called in a
  library ``forward`` (``nn.TransformerEncoderLayer(activation=F.relu)`` stores
  ``self.activation = F.relu``; tracing does not enter torch's own layers) becomes an
  :class:`~aquasurf_core.space.ActivationFunction` submodule under that attribute (kind
  ``"attribute"``); the layer's inference fast path, which would skip it, is switched off.
* **functional calls** -- ``F.relu(x)``, ``torch.tanh(x)``, ``x.sigmoid()`` ... written in a
  ``forward``. They are found by ``torch.fx.symbolic_trace``; each call becomes a call of an
  added ``ActivationFunction`` submodule and the result is an ``fx.GraphModule`` (sharing the
  original's parameters and submodules). Arguments of the original call other than the input
  (``negative_slope``, ``approximate``, ``inplace``) are dropped.

In-place operations after a replaced site could overwrite a tensor that the searched
function's backward needs, so every module with a boolean ``inplace`` attribute that is
``True`` (``nn.Dropout``, ``nn.Hardsigmoid`` left out by ``types`` ...) gets ``inplace=False``;
each such change is reported as a site of kind ``"inplace"``. In-place tensor operations
written in a ``forward`` (``x.add_(y)``, ``F.dropout(x, inplace=True)``) are left as they are.
"""

from __future__ import annotations

import ast
import fnmatch
import inspect
import textwrap
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F  # noqa: N812
from torch import fx, nn

from aquasurf_core.models.factory import activation_factory
from aquasurf_core.space.activation import ActivationFunction

__all__ = ["ACTIVATION_FUNCTIONS", "ACTIVATION_METHODS", "ACTIVATION_MODULES",
           "FunctionalSitesError", "Site", "make_searchable", "set_activation"]

#: Activation module classes replaced by :func:`make_searchable` (``types=None``).
ACTIVATION_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.Mish, nn.ELU, nn.CELU, nn.Tanh,
    nn.Sigmoid, nn.LeakyReLU, nn.SELU, nn.Softplus, nn.Hardsigmoid,
)

#: Activation functions replaced where ``forward`` calls them (``types=None``). ``F.tanh`` and
#: ``F.sigmoid`` call the tensor methods, so their sites read ``Tensor.tanh``/``Tensor.sigmoid``.
ACTIVATION_FUNCTIONS: tuple[Callable, ...] = (
    F.relu, F.relu_, torch.relu, torch.relu_, F.relu6, F.gelu, F.silu, F.hardswish, F.mish,
    F.elu, F.elu_, torch.selu, F.selu, F.celu, torch.tanh, F.tanh, torch.sigmoid, F.sigmoid,
    F.leaky_relu, F.leaky_relu_, F.softplus, F.hardsigmoid,
)

#: Tensor methods replaced where ``forward`` calls them (``x.relu()``; ``types=None``).
ACTIVATION_METHODS: tuple[str, ...] = ("relu", "relu_", "tanh", "tanh_", "sigmoid",
                                       "sigmoid_")

#: Attribute names of the functional activations, for finding them in source code when a
#: model does not trace.
_CALL_NAMES = frozenset({f.__name__ for f in ACTIVATION_FUNCTIONS} | set(ACTIVATION_METHODS))


class FunctionalSitesError(RuntimeError):
    """The model calls activation functions in ``forward`` but ``torch.fx`` cannot trace it."""


@dataclass(frozen=True)
class Site:
    """One change :func:`make_searchable` made.

    ``name`` is where the site is: a module's qualified name (``"layer1.0.relu"``), or for a
    functional call the qualified name of the module whose ``forward`` makes it, a dot and the
    call's ``torch.fx`` node name (``"layer1.0.relu_1"``; the root's calls have no prefix).
    ``original`` is what was there (``"torch.nn.ReLU"``, ``"torch.nn.functional.relu"``,
    ``"Tensor.sigmoid"``). ``kind`` is ``"module"``, ``"attribute"``, ``"function"`` or
    ``"inplace"`` (a module whose ``inplace`` was set to ``False``; nothing replaced). ``module`` is
    the qualified name of the :class:`ActivationFunction` now computing the site (``""`` for
    ``"inplace"``). ``calls`` is how many times the traced ``forward`` applies it (torchvision's
    ``BasicBlock.relu`` is one module site with 2 calls; 1 for a function site; ``None`` when the
    model was not traced).
    """

    name: str
    original: str
    kind: str
    module: str
    calls: int | None = None


def _describe(obj: object) -> str:
    if isinstance(obj, str):
        return f"Tensor.{obj}"
    mod = getattr(obj, "__module__", None) or "torch"
    if mod.startswith("torch.nn.modules"):
        mod = "torch.nn"
    if mod == "torch._C._nn":
        mod = "torch.nn.functional"
    if mod == "torch._C._VariableFunctions" or mod.startswith("torch._C"):
        mod = "torch"
    return f"{mod}.{obj.__name__}"


def _wanted(qualname: str, names: list[str] | None) -> bool:
    return names is None or any(fnmatch.fnmatchcase(qualname, p) for p in names)


def _type_matches(original: object, types: tuple | None) -> bool:
    if types is None:
        if isinstance(original, nn.Module):
            return isinstance(original, ACTIVATION_MODULES)
        if isinstance(original, str):
            return original in ACTIVATION_METHODS
        return any(original is f for f in ACTIVATION_FUNCTIONS)
    if isinstance(original, nn.Module):
        return any(isinstance(t, type) and isinstance(original, t) for t in types)
    if isinstance(original, str):
        return original in types
    return any(original is t for t in types)


def _replace_modules(model: nn.Module, make: Callable[[], nn.Module], types: tuple | None,
                     names: list[str] | None) -> list[Site]:
    sites = []
    for qualname, module in list(model.named_modules(remove_duplicate=False)):
        for child_name, child in list(module.named_children()):
            full = f"{qualname}.{child_name}" if qualname else child_name
            if isinstance(child, ActivationFunction) or not _type_matches(child, types) \
                    or not _wanted(full, names):
                continue
            setattr(module, child_name, make())
            sites.append(Site(full, _describe(type(child)), "module", full))
    return sites


def _replace_attributes(model: nn.Module, make: Callable[[], nn.Module], types: tuple | None,
                        names: list[str] | None) -> list[Site]:
    """Activation *functions* stored as a module attribute (``self.activation = F.relu``, as
    ``nn.TransformerEncoderLayer``/``DecoderLayer`` keep theirs) become an
    :class:`ActivationFunction` submodule under the same attribute; the layers' inference
    fast path (``activation_relu_or_gelu``), which would bypass it, is switched off."""
    sites = []
    for qualname, module in list(model.named_modules()):
        for attr in ("activation", "act", "activation_fn"):
            original = module.__dict__.get(attr)
            if original is None or isinstance(original, nn.Module) or not callable(original):
                continue
            full = f"{qualname}.{attr}" if qualname else attr
            if not _type_matches(original, types) or not _wanted(full, names):
                continue
            setattr(module, attr, make())
            if hasattr(module, "activation_relu_or_gelu"):
                module.activation_relu_or_gelu = 0
            sites.append(Site(full, _describe(original), "attribute", full))
    return sites


def _functional_calls_in_source(model: nn.Module) -> list[str]:
    """``"Class.forward: F.relu(...)"`` for activation calls in the source of user forwards."""
    found = []
    seen: set[type] = set()
    for module in model.modules():
        cls = type(module)
        if cls in seen or cls.__module__.startswith("torch."):
            continue
        seen.add(cls)
        try:
            source = textwrap.dedent(inspect.getsource(cls.forward))
        except (OSError, TypeError):
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in _CALL_NAMES:
                found.append(f"{cls.__name__}.forward line {node.lineno}: "
                             f"{ast.unparse(node.func)}(...)")
    return found


class _Tracer(fx.Tracer):
    """``torch.fx`` tracer that keeps :class:`ActivationFunction` modules as leaves (calls of
    the module, so that :func:`set_activation` still reaches them)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, ActivationFunction) or super().is_leaf_module(
            m, module_qualified_name)


def _trace(model: nn.Module) -> fx.GraphModule:
    tracer = _Tracer()
    graph = tracer.trace(model)
    return fx.GraphModule(tracer.root, graph, type(model).__name__)


def _unique_name(root: nn.Module, base: str) -> str:
    name, i = base, 1
    while hasattr(root, name):
        name, i = f"{base}_{i}", i + 1
    return name


def _replace_functions(gm: fx.GraphModule, make: Callable[[], nn.Module], types: tuple | None,
                       names: list[str] | None) -> list[Site]:
    sites = []
    for node in list(gm.graph.nodes):
        if node.op == "call_function":
            original = node.target
        elif node.op == "call_method" and isinstance(node.target, str):
            original = node.target
        else:
            continue
        if not _type_matches(original, types) or not node.args:
            continue
        stack = node.meta.get("nn_module_stack") or {}
        owner = next(reversed(stack.values()))[0] if stack else ""
        where = f"{owner}.{node.name}" if owner else node.name
        if not _wanted(where, names):
            continue
        attr = _unique_name(gm, f"act_{node.name}")
        gm.add_submodule(attr, make())
        with gm.graph.inserting_after(node):
            new = gm.graph.call_module(attr, (node.args[0],))
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
        sites.append(Site(where, _describe(original), "function", attr, 1))
    if sites:
        gm.graph.lint()
        gm.recompile()
    return sites


def _disable_inplace(model: nn.Module) -> list[Site]:
    sites = []
    for qualname, module in model.named_modules():
        if isinstance(getattr(module, "inplace", None), bool) and module.inplace:
            module.inplace = False
            sites.append(Site(qualname, _describe(type(module)), "inplace", ""))
    return sites


def make_searchable(model: nn.Module, name: str, *, types: Iterable | None = None,
                    names: Iterable[str] | None = None, functional: bool | None = None,
                    normalize: bool = False) -> tuple[nn.Module, list[Site]]:
    """Replace the activation sites of a built ``model`` by ``ActivationFunction(name)``.

    Args:
        model: any ``nn.Module`` (a torchvision or timm network, your own); changed in place.
        name: the function to put at every site (``"relu(x)"``, a PANGAEA expression).
        types: restrict the sites to these: module classes (``nn.ReLU`` matches instances and
            subclasses), functions (``F.relu``, ``torch.tanh``) and tensor method names
            (``"sigmoid"`` for ``x.sigmoid()``). ``None``: :data:`ACTIVATION_MODULES`,
            :data:`ACTIVATION_FUNCTIONS` and :data:`ACTIVATION_METHODS`.
        names: restrict the sites to those whose :attr:`Site.name` matches one of these
            ``fnmatch`` patterns (``"layer1.*"``, or an exact name). ``None``: all.
        functional: whether to replace functional calls in ``forward`` (needs
            ``torch.fx.symbolic_trace``). ``None`` (default): if the model traces, yes; if it
            does not, raise :class:`FunctionalSitesError` when a user ``forward`` visibly calls
            an activation function (found in its source), else replace only the modules.
            ``True``: trace, raising :class:`FunctionalSitesError` if that fails. ``False``:
            modules only, no tracing.
        normalize: passed to every :class:`ActivationFunction`.

    Returns:
        ``(model, sites)``: the model (the same object, or an ``fx.GraphModule`` sharing its
        parameters when functional calls were replaced) and one :class:`Site` per change, in
        model order: replaced modules, then replaced calls, then modules whose ``inplace``
        was switched off.

    Raises:
        aquasurf_core.space.InvalidFunctionName: ``name`` is not a valid function.
        FunctionalSitesError: functional sites could not be traced (the message gives the
            tracing error and the calls found; pass ``functional=False`` to skip them). The
            model is then unchanged.
        TypeError: ``model`` is not an ``nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    make = activation_factory(name, normalize)
    types_t = None if types is None else tuple(types)
    if types_t is not None:  # F.tanh and F.sigmoid trace as the tensor methods they call
        types_t += tuple(t.__name__ for t in types_t if t is F.tanh or t is F.sigmoid)
    names_l = None if names is None else [str(n) for n in names]
    traceable = functional is not False
    if traceable:
        try:
            _trace(model)  # before any change, so that a failure changes nothing
        except Exception as error:  # noqa: BLE001 -- any tracing failure is reported
            calls = _functional_calls_in_source(model)
            if functional or calls:
                listed = "; ".join(calls) if calls else "none found in the source"
                raise FunctionalSitesError(
                    f"cannot replace the activation functions called in forward of "
                    f"{type(model).__name__}: torch.fx.symbolic_trace failed with "
                    f"{type(error).__name__}: {error}. Calls: {listed}. Rewrite them as "
                    f"modules (e.g. nn.ReLU()), or pass functional=False to replace only the "
                    f"activation modules.") from error
            traceable = False
    sites = _replace_modules(model, make, types_t, names_l)
    sites += _replace_attributes(model, make, types_t, names_l)
    if traceable:
        gm = _trace(model)
        function_sites = _replace_functions(gm, make, types_t, names_l)
        uses = Counter(n.target for n in gm.graph.nodes if n.op == "call_module")
        sites = [replace(site, calls=uses[site.module]) if site.kind == "module" else site
                 for site in sites] + function_sites
        if function_sites:
            for attr in ("arch", "fn_name"):
                if hasattr(model, attr):
                    setattr(gm, attr, getattr(model, attr))
            model = gm
    sites += _disable_inplace(model)
    return model, sites


def set_activation(model: nn.Module, name: str, *, normalize: bool | None = None) -> int:
    """Make every :class:`ActivationFunction` in ``model`` compute ``name``, in place.

    For a search, one model is made searchable once and each candidate then swaps the function
    (re-initialise the weights between candidates as you would for a fresh model).
    ``normalize=None`` keeps each module's setting. Returns how many modules were changed.

    Raises:
        aquasurf_core.space.InvalidFunctionName: ``name`` is not a valid function (nothing is
            changed).
        ValueError: the model has no :class:`ActivationFunction` (call
            :func:`make_searchable` first).
    """
    ActivationFunction(name)  # validate before changing anything
    acts = [m for m in model.modules() if isinstance(m, ActivationFunction)]
    if not acts:
        raise ValueError(f"{type(model).__name__} has no ActivationFunction modules; call "
                         "make_searchable(model, name) first")
    for act in acts:
        act.set_function(name, normalize)
    if hasattr(model, "fn_name"):
        model.fn_name = acts[0].name
    return len(acts)
