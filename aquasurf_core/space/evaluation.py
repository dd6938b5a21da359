"""Vectorised evaluation and de-duplication of whole search spaces.

Evaluation
----------
A schema's functions share sub-expressions: ``unary(unary(unary(unary(x))))`` has 27 distinct
``unary(x)`` outputs, at most 729 ``unary(unary(x))``, and so on. :func:`evaluate_space`
evaluates a schema bottom-up, one tree level at a time: each placeholder node applies every
operator of its kind (``op.fn`` from :mod:`aquasurf_core.space.operators`, nothing else) to *all*
distinct outputs of its children at once, binary and n-ary nodes to all pairs by
broadcasting. Every non-root level is *hash-consed*: identical intermediate vectors (equal
bit for bit) are stored once, with an index from each sub-function to its vector, so the next
level applies its operators only to distinct vectors. Exact bit equality is the right key for
intermediates, because an operator's output is a function of its input bits alone. n-ary
operators are left folds, ``sum_n(a, b, c) = (a + b) + c``, evaluated exactly so (the partial
folds are hash-consed too).

Values are bit-identical to ``ActivationFunction(name)(x)`` on a 1-D ``x``: rows are kept in
a padded layout (row stride ``n + 16``) so that every elementwise kernel runs one inner loop
of exactly ``n`` elements per row, split into SIMD body and scalar tail exactly as for a lone
vector of length ``n`` (``torch.pow`` rounds differently in the two), and evaluation runs
on one intra-op thread so that no row is split between threads.

Equivalence ("unique functions", Appendix E)
--------------------------------------------
Two functions are the same when their outputs on the 1,000 normal inputs
(:func:`aquasurf_core.space.inputs.normal_inputs`) are identical. Concretely the float32
bit patterns of the two output rows are compared after canonicalisation
(:func:`canonical_bits`):

* every NaN becomes the single quiet NaN ``0x7FC00000`` (so NaN equals NaN at the same
  position, whatever its sign or payload);
* ``+inf`` and ``-inf`` are ordinary values;
* ``-0.0`` versus ``+0.0``: with ``signed_zero_distinct=True`` they differ (as in the
  official implementation, which compared ``str(list(float32_outputs))``, where ``-0.0``
  prints differently from ``0.0``); with ``False`` every ``-0.0`` becomes ``+0.0`` first.
  The default :data:`DEFAULT_SIGNED_ZERO_DISTINCT` is the rule whose counts are closest to
  the paper's (see the constant).

Rows are compared through a 16-byte digest (SHA-256 truncated to 128 bits) of their canonical
bytes, computed chunk by chunk, so the full ``[functions, 1000]`` matrix is never held (the
same digest, of exact bits, keys the intermediate hash-consing). Treating the digest as
random, the probability that any two of ``N`` hashed distinct rows collide is at most
``N^2 / 2^129``: below ``2e-27`` for the 1,023,516-function space.

Class ids and stored rows
-------------------------
Classes are numbered ``0, 1, ...`` in order of their first member in enumeration order
(:mod:`aquasurf_core.space.schemas`). The row kept for a class is its canonical row (NaN
canonical; ``-0.0`` written as ``+0.0`` under the merged-zero rule), i.e. the output every
member shares up to the equivalence rule.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from aquasurf_core.space.inputs import normal_inputs
from aquasurf_core.space.names import INPUT, Node, parse
from aquasurf_core.space.operators import BINARY, NARY, OPERATORS, UNARY, Operator
from aquasurf_core.space.schemas import (
    OperatorSet,
    Schema,
    parse_schemas,
    schema_of,
    slot_operators,
)

Tensor = torch.Tensor

#: Default ``-0.0`` rule: ``False`` (``-0.0 == +0.0``). Unique counts measured with the
#: operators of :mod:`aquasurf_core.space.operators` (paper: 2,913 and 425,896):
#:
#: ====================  ================  ====================
#: space                 ``-0 == +0``      ``-0 != +0``
#: ====================  ================  ====================
#: 3-node (5,103)        2,902 (-0.38%)    2,907 (-0.21%)
#: 4-node (1,023,516)    427,982 (+0.49%)  428,407 (+0.59%)
#: ====================  ================  ====================
#:
#: Only the merged-zero rule is within 0.5% of the paper in both spaces, so it is the
#: default, although the official code's string comparison distinguished the zeros. The
#: residual gap comes from operator kernels (TensorFlow/Eigen there, PyTorch here), not from
#: the rule: e.g. TensorFlow's ELU/SELU use ``exp(x) - 1`` where ours use ``expm1``, which
#: alone separates 9 more 3-node classes (``elu(x)`` from ``min(expm1(x),relu(x))`` ...).
DEFAULT_SIGNED_ZERO_DISTINCT = False

DIGEST_SIZE = 16
_PAD = 16  # extra elements per row in the padded layout
_CHUNK_ELEMENTS = 1 << 22  # values per evaluated chunk (16 MiB of float32)

_TORCH_INT = {
    torch.float16: torch.int16,
    torch.float32: torch.int32,
    torch.float64: torch.int64,
}


# ----------------------------------------------------------------------------- primitives
def _padded(rows: Tensor) -> Tensor:
    """A copy of ``rows`` ``[m, n]`` whose rows lie ``n + _PAD`` elements apart (a view)."""
    m, n = rows.shape
    buffer = torch.empty((m, n + _PAD), dtype=rows.dtype, device=rows.device)
    buffer[:, :n] = rows
    return buffer[:, :n]


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch's CPU kernels on one intra-op thread (restored afterwards)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


_NUMPY_INT = {np.dtype(np.float16): np.int16, np.dtype(np.float32): np.int32,
              np.dtype(np.float64): np.int64}


def canonical_bits(values: Tensor | np.ndarray,
                   signed_zero_distinct: bool = DEFAULT_SIGNED_ZERO_DISTINCT,
                   *, copy: bool = True) -> np.ndarray:
    """Integer bit patterns of ``values`` after canonicalisation (module docstring): every NaN
    becomes the quiet NaN, and unless ``signed_zero_distinct`` every ``-0.0`` becomes
    ``+0.0``. Returns a C-contiguous numpy array of the same shape (int32 for float32);
    with ``copy=False`` a contiguous numpy ``values`` may be overwritten in place."""
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    floats = np.ascontiguousarray(values)
    if floats.dtype not in _NUMPY_INT:
        raise TypeError(f"canonical_bits needs float16/32/64 values, got {floats.dtype}")
    int_type = _NUMPY_INT[floats.dtype]
    bits = floats.view(int_type)
    if copy:
        bits = bits.copy()
    nan = np.isnan(floats) if copy else np.isnan(bits.view(floats.dtype))
    if nan.any():
        bits[nan] = np.array(np.nan, dtype=floats.dtype).view(int_type)
    if not signed_zero_distinct:
        bits[bits == np.iinfo(int_type).min] = 0  # the bit pattern of -0.0
    return bits


def row_digests(bits: np.ndarray) -> list[bytes]:
    """16-byte digest (SHA-256 truncated to 128 bits) of each row of a 2-D array's raw
    bytes. Large inputs are hashed by two threads (hashlib releases the GIL)."""
    bits = np.ascontiguousarray(bits)
    if bits.ndim != 2:
        raise ValueError(f"row_digests needs a 2-D array, got shape {bits.shape}")
    rows = bits.shape[0]
    if rows >= 2 * _THREAD_MIN_ROWS:
        half = rows // 2
        future = _hash_pool().submit(_digests, bits[half:])
        return _digests(bits[:half]) + future.result()
    return _digests(bits)


def _digests(bits: np.ndarray) -> list[bytes]:
    width = bits.shape[1] * bits.itemsize
    view = memoryview(np.ascontiguousarray(bits).reshape(-1).view(np.uint8))
    sha = hashlib.sha256
    return [sha(view[i : i + width]).digest()[:DIGEST_SIZE]
            for i in range(0, bits.shape[0] * width, width)]


_THREAD_MIN_ROWS = 256
_POOL: ThreadPoolExecutor | None = None


def _hash_pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="row-digests")
    return _POOL


# ----------------------------------------------------------------------------- level grids
def _assign_ids(table: dict[bytes, int], bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Id of each row of ``bits`` from its digest, new digests numbered in order of first
    appearance (``table`` is updated). Returns ``(ids, new_rows)``: ``new_rows`` indexes the
    first row of every id seen for the first time, in id order."""
    before = len(table)
    ids = np.fromiter((table.setdefault(d, len(table)) for d in row_digests(bits)),
                      dtype=np.int64, count=bits.shape[0])
    new = ids >= before
    _, first = np.unique(ids[new], return_index=True)
    return ids, np.flatnonzero(new)[first]


@dataclass
class _Distinct:
    """Distinct outputs of a sub-tree: ``rows[index[c]]`` is the output of sub-function
    ``c`` (mixed-radix over the sub-tree's slots, prefix order)."""

    rows: Tensor  # [U, n], padded layout
    index: np.ndarray  # [M] int64


@dataclass
class _Block:
    """Rows ``fn(left[i], right[j])`` (or ``fn(left[i])``) for all ``i, j``, row id
    ``offset + i * len(right) + j``."""

    apply: Callable[..., Tensor]
    left: Tensor
    right: Tensor | None
    offset: int

    @property
    def width(self) -> int:
        return 1 if self.right is None else self.right.shape[0]

    @property
    def size(self) -> int:
        return self.left.shape[0] * self.width

    def chunks(self, chunk_elements: int) -> Iterator[tuple[int, Tensor]]:
        """``(first row id, rows [k, n])`` in row-id order, about ``chunk_elements`` values
        at a time."""
        n = self.left.shape[1]
        step = max(1, chunk_elements // (self.width * n))
        for start in range(0, self.left.shape[0], step):
            left = self.left[start : start + step]
            if self.right is None:
                out = self.apply(left)
            else:
                out = self.apply(left[:, None, :], self.right[None, :, :])
            if _shares_memory(out, self.left) or (
                    self.right is not None and _shares_memory(out, self.right)):
                out = out.clone()  # e.g. ``identity``: callers may overwrite chunks in place
            yield self.offset + start * self.width, out.reshape(-1, n).contiguous()


def _shares_memory(a: Tensor, b: Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


@dataclass
class _Grid:
    """All rows a placeholder node produces before de-duplication, as blocks, plus the row
    id of each of the node's sub-functions."""

    blocks: list[_Block]
    index: np.ndarray  # [M] int64 row id per sub-function
    size: int


def _unary_apply(op: Operator) -> Callable[[Tensor], Tensor]:
    return op.fn


def _binary_apply(op: Operator) -> Callable[[Tensor, Tensor], Tensor]:
    if op.kind == NARY:
        return lambda a, b: op.fn([a, b])
    return op.fn


def _pair_index(left: np.ndarray, right: np.ndarray, width: int) -> np.ndarray:
    return (left[:, None] * width + right[None, :]).reshape(-1)


class _Evaluator:
    """Bottom-up evaluation of one schema on one input vector (see module docstring)."""

    def __init__(self, x: Tensor, slot_ops: list[tuple[Operator, ...]], hashcons: bool,
                 chunk_elements: int):
        self.x = x
        self.slot_ops = slot_ops
        self.hashcons = hashcons
        self.chunk_elements = chunk_elements

    # A sub-tree is evaluated with the slot counter ``pos`` (prefix order).
    def distinct(self, node: Node, pos: list[int]) -> _Distinct:
        if node.op == INPUT:
            return _Distinct(_padded(self.x[None, :]), np.zeros(1, dtype=np.int64))
        return self.dedup(self.grid(node, pos))

    def grid(self, node: Node, pos: list[int]) -> _Grid:
        ops = self.slot_ops[pos[0]]
        pos[0] += 1
        children = [self.distinct(child, pos) for child in node.children]
        blocks: list[_Block] = []
        indices: list[np.ndarray] = []
        offset = 0
        for op in ops:
            if node.op == UNARY:
                (child,) = children
                block = _Block(_unary_apply(op), child.rows, None, offset)
                index = offset + child.index
            else:
                apply = _binary_apply(op)
                partial = children[0]
                for child in children[1:-1]:  # left fold: partial results are hash-consed
                    inner = _Grid([_Block(apply, partial.rows, child.rows, 0)],
                                  _pair_index(partial.index, child.index, child.rows.shape[0]),
                                  partial.rows.shape[0] * child.rows.shape[0])
                    partial = self.dedup(inner)
                last = children[-1]
                block = _Block(apply, partial.rows, last.rows, offset)
                index = offset + _pair_index(partial.index, last.index, last.rows.shape[0])
            blocks.append(block)
            indices.append(index)
            offset += block.size
        return _Grid(blocks, np.concatenate(indices), offset)

    def dedup(self, grid: _Grid) -> _Distinct:
        """Exact (bit-for-bit) hash-consing of a non-root grid."""
        if not self.hashcons:
            rows = [out for block in grid.blocks for _, out in block.chunks(self.chunk_elements)]
            return _Distinct(_padded(torch.cat(rows)), grid.index)
        table: dict[bytes, int] = {}
        inverse = np.empty(grid.size, dtype=np.int64)
        kept: list[Tensor] = []
        for block in grid.blocks:
            for start, out in block.chunks(self.chunk_elements):
                bits = out.view(_TORCH_INT[out.dtype]).cpu().numpy()
                ids, new_rows = _assign_ids(table, bits)
                inverse[start : start + out.shape[0]] = ids
                if len(new_rows):
                    kept.append(out[new_rows])
        return _Distinct(_padded(torch.cat(kept)), inverse[grid.index])


# ----------------------------------------------------------------------------- whole spaces
@dataclass
class SpaceEvaluation:
    """Result of :func:`evaluate_space`.

    ``class_ids[s][i]`` is the class of function ``i`` of schema ``s`` (enumeration order);
    ``unique_outputs`` (when collected) holds the canonical row of each class ``[U, n]``.
    """

    schemas: list[Schema]
    class_ids: list[np.ndarray]
    n_unique: int
    signed_zero_distinct: bool
    seconds: float
    unique_outputs: np.ndarray | None = None
    distinct_intermediates: dict[str, list[int]] = field(default_factory=dict)

    @property
    def n_functions(self) -> int:
        """Number of functions evaluated, over all schemas (equivalent ones counted apart)."""
        return sum(len(c) for c in self.class_ids)


class _Classifier:
    """Assigns class ids to canonical rows, across schemas, in order of first appearance."""

    def __init__(self, signed_zero_distinct: bool, on_new: Callable[[np.ndarray], None]):
        self.signed_zero_distinct = signed_zero_distinct
        self.on_new = on_new
        self.table: dict[bytes, int] = {}

    def classify(self, grid: _Grid, chunk_elements: int, bar) -> np.ndarray:
        row_class = np.empty(grid.size, dtype=np.int64)
        table = self.table
        for block in grid.blocks:
            for start, out in block.chunks(chunk_elements):
                bits = canonical_bits(out.cpu().numpy(), self.signed_zero_distinct, copy=False)
                ids, new_rows = _assign_ids(table, bits)
                row_class[start : start + bits.shape[0]] = ids
                if len(new_rows):
                    self.on_new(bits[new_rows])
                if bar is not None:
                    bar.update(bits.shape[0])
        return row_class[grid.index]


def _as_input(x: Tensor | np.ndarray | None, device, dtype) -> Tensor:
    if x is None:
        x = normal_inputs()
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
    if t.ndim != 1 or t.numel() == 0:
        raise ValueError(f"inputs must be a non-empty 1-D vector, got shape {tuple(t.shape)}")
    if dtype not in _TORCH_INT:
        raise ValueError(f"dtype must be float16, float32 or float64, got {dtype}")
    return t.to(device=device, dtype=dtype)


def evaluate_space(
    schemas: str | Iterable[str],
    operators: str | OperatorSet = "paper",
    x: Tensor | np.ndarray | None = None,
    *,
    signed_zero_distinct: bool = DEFAULT_SIGNED_ZERO_DISTINCT,
    hashcons: bool = True,
    collect_outputs: bool = True,
    on_new_outputs: Callable[[np.ndarray], None] | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    chunk_elements: int = _CHUNK_ELEMENTS,
    progress: bool = False,
) -> SpaceEvaluation:
    """Evaluate every function of the schemas on ``x`` (default: the 1,000 normal inputs)
    and group them into classes of identical outputs (module docstring).

    ``on_new_outputs(rows)`` receives the canonical rows of new classes, in class-id order,
    as they are found (as float arrays ``[k, n]``); with ``collect_outputs`` they are also
    gathered into ``SpaceEvaluation.unique_outputs``. ``hashcons=False`` evaluates every
    function without sharing intermediate vectors (slow; for testing).
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    parsed = parse_schemas(schemas)
    inputs = _as_input(x, device, dtype)
    collected: list[np.ndarray] = []
    float_dtype = torch.empty((), dtype=dtype).numpy().dtype

    def on_new(bits: np.ndarray) -> None:
        rows = bits.view(float_dtype)
        if collect_outputs:
            collected.append(rows)
        if on_new_outputs is not None:
            on_new_outputs(rows)

    classifier = _Classifier(signed_zero_distinct, on_new)
    class_ids: list[np.ndarray] = []
    intermediates: dict[str, list[int]] = {}
    with torch.no_grad(), single_thread():
        for schema in parsed:
            slot_ops = slot_operators(schema, operators)
            evaluator = _Evaluator(inputs, slot_ops, hashcons, chunk_elements)
            if schema.tree.op == INPUT:
                grid = _Grid([_Block(lambda t: t, _padded(inputs[None, :]), None, 0)],
                             np.zeros(1, dtype=np.int64), 1)
            else:
                grid = evaluator.grid(schema.tree, [0])
            bar = tqdm(total=grid.size, desc=f"{schema.text}", unit="row", leave=False,
                       disable=not progress, mininterval=0.5)
            class_ids.append(classifier.classify(grid, chunk_elements, bar))
            bar.close()
            intermediates[schema.text] = [b.left.shape[0] for b in grid.blocks]
    outputs = None
    if collect_outputs:
        n = inputs.shape[0]
        outputs = np.concatenate(collected) if collected else np.empty((0, n), float_dtype)
    return SpaceEvaluation(parsed, class_ids, len(classifier.table), signed_zero_distinct,
                           time.perf_counter() - started, outputs, intermediates)


# ----------------------------------------------------------------------------- many functions
def _combo_values(node: Node, digits: np.ndarray, pos: list[int], slot_ops, x: Tensor) -> Tensor:
    """Outputs ``[R, n]`` (padded layout) of ``R`` functions of one schema, given their
    operator digits ``[R, slots]``; each operator applied to the rows that use it."""
    if node.op == INPUT:
        return _padded(x[None, :].expand(digits.shape[0], -1))
    slot = pos[0]
    pos[0] += 1
    children = [_combo_values(c, digits, pos, slot_ops, x) for c in node.children]
    out = torch.empty((digits.shape[0], x.shape[0]), dtype=x.dtype, device=x.device)
    for k, op in enumerate(slot_ops[slot]):
        rows = np.flatnonzero(digits[:, slot] == k)
        if rows.size == 0:
            continue
        sel = torch.from_numpy(rows).to(x.device)
        args = [_padded(child.index_select(0, sel)) for child in children]
        if op.kind == UNARY:
            value = op.fn(*args)
        elif op.kind == BINARY:
            value = op.fn(*args)
        else:
            value = op.fn(args)
        out[sel] = value
    return _padded(out)


def evaluate_combos(schema: str | Schema, operators: str | OperatorSet, digits: np.ndarray,
                    x: Tensor | np.ndarray | None = None, *, device="cpu",
                    dtype: torch.dtype = torch.float32) -> Tensor:
    """Outputs ``[R, n]`` of the functions of ``schema`` whose operator table indices (one
    column per slot, prefix order) are the rows of ``digits``; bit-identical to the module
    path."""
    (parsed,) = parse_schemas([schema]) if isinstance(schema, str) else (schema,)
    slot_ops = slot_operators(parsed, operators)
    digits = np.asarray(digits, dtype=np.int64)
    if digits.ndim != 2 or digits.shape[1] != len(slot_ops):
        raise ValueError(f"digits must have shape [R, {len(slot_ops)}] for schema "
                         f"{parsed.text!r}, got {digits.shape}")
    for s, ops in enumerate(slot_ops):
        if digits.size and (digits[:, s].min() < 0 or digits[:, s].max() >= len(ops)):
            raise ValueError(f"digit of slot {s} outside 0..{len(ops) - 1}")
    inputs = _as_input(x, device, dtype)
    with torch.no_grad(), single_thread():
        if parsed.tree.op == INPUT:
            return inputs[None, :].expand(digits.shape[0], -1).clone()
        return _combo_values(parsed.tree, digits, [0], slot_ops, inputs).contiguous()


def index_to_digits(index: np.ndarray, radices: Sequence[int]) -> np.ndarray:
    """Mixed-radix digits ``[R, len(radices)]`` (last digit fastest) of enumeration indices."""
    index = np.asarray(index, dtype=np.int64).copy()
    out = np.empty((index.shape[0], len(radices)), dtype=np.int64)
    for s in range(len(radices) - 1, -1, -1):
        out[:, s] = index % radices[s]
        index //= radices[s]
    return out


def evaluate_functions(names: Sequence[str], x: Tensor | np.ndarray | None = None, *,
                       device="cpu", dtype: torch.dtype = torch.float32) -> Tensor:
    """Outputs ``[len(names), n]`` of arbitrary function names (any operators of
    :data:`~aquasurf_core.space.operators.OPERATORS`), grouped by schema and evaluated with
    :func:`evaluate_combos`; bit-identical to ``ActivationFunction(name)(x)``."""
    inputs = _as_input(x, device, dtype)
    out = torch.empty((len(names), inputs.shape[0]), dtype=inputs.dtype, device=inputs.device)
    table = {kind: tuple(op for op in OPERATORS.values() if op.kind == kind)
             for kind in (UNARY, BINARY, NARY)}
    position = {kind: {op.name: i for i, op in enumerate(ops)} for kind, ops in table.items()}
    groups: dict[str, list[tuple[int, list[int]]]] = {}
    for i, name in enumerate(names):
        tree = parse(name)
        digits = [position[OPERATORS[op].kind][op] for op in tree.operators()]
        groups.setdefault(schema_of(str(tree)), []).append((i, digits))
    for schema, members in groups.items():
        rows = torch.tensor([i for i, _ in members], dtype=torch.long, device=inputs.device)
        digits = np.array([d for _, d in members], dtype=np.int64).reshape(
            len(members), len(members[0][1]))
        out[rows] = evaluate_combos(schema, table, digits, inputs, device=device, dtype=dtype)
    return out


def find_rows_by_outputs(names: Sequence[str], outputs: np.ndarray, *,
                         signed_zero_distinct: bool = DEFAULT_SIGNED_ZERO_DISTINCT,
                         chunk_rows: int = 16384) -> np.ndarray:
    """For each function name, the first row of ``outputs`` (float32 ``[N, 1000]``, e.g. a
    space store's class rows or a benchmark's output features, possibly memory-mapped) equal
    to the function's outputs on the normal inputs under the equivalence rule (module
    docstring), ``-1`` where none is. Rows are read ``chunk_rows`` at a time. Raises
    ``InvalidFunctionName`` for a name that does not parse."""
    from aquasurf_core.space.inputs import normal_inputs

    found = np.full(len(names), -1, dtype=np.int64)
    if not len(names):
        return found
    targets = canonical_bits(evaluate_functions(list(names), normal_inputs()),
                             signed_zero_distinct)
    for start in range(0, outputs.shape[0], chunk_rows):
        rows = canonical_bits(np.asarray(outputs[start:start + chunk_rows]), signed_zero_distinct)
        for k in np.flatnonzero(found < 0):
            hit = np.flatnonzero((rows == targets[k]).all(axis=1))
            if len(hit):
                found[k] = start + int(hit[0])
        if (found >= 0).all():
            break
    return found
