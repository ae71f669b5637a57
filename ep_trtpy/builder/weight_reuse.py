"""Weight reuse across the engines of one program (one fused subgraph built at several input shapes).

Every build of a program at a new shape optimizes a copy of the same subgraph, and most of what the passes do to
its weights (casts to float16, concatenated Q/K/V weights, folded BatchNorms, NHWC kernels) and most of the weights
blob that lowering writes come out the same for every shape. Two pieces keep later builds from doing that work
again:

* :class:`ConstMemo` lives with the program across its builds. A pass asks it for a derived array by a key made
  of the input arrays (by identity: ``Graph.copy()`` shares constant arrays, so the copies of every build hold the
  same objects) and the parameters of the transform; the same key gives back the same array object, computed
  once. The memo keeps the input arrays of every entry alive, so an ``id()`` in a key never names another array.
* :class:`WeightBase` is the weights of the program's first engine (its plan and blob). Lowering a later build
  with a base looks every weight up in it (by identity of the array lowered, then by content) and appends only
  the misses to a *tail* blob. Tensor offsets then address the base blob padded to ``shared_bytes``, followed
  by the tail: an offset below ``shared_bytes`` lies in the base, one at or above it in the tail at
  ``offset - shared_bytes``. The plan records ``shared_weights_bytes``; the native engine that runs it reads
  the base from the first engine's device weights, and :func:`assemble` rebuilds the blob of an ordinary
  engine (for the reference emulator and tests).

How a program's builds use them::

    memo = ConstMemo()                                         # one per program, kept across its builds
    g1, _ = optimize_with_context(subgraph, shapes_1, options, memo=memo)
    first = lower_with_context(g1, options)                    # an ordinary engine: first.plan, first.weights
    base = WeightBase.of(first)
    g2, _ = optimize_with_context(subgraph, shapes_2, options, memo=memo)
    plan_2, tail = lower(g2, options, base=base)               # tail: only the weights the base lacks

Results handed out by the memo are read-only (constants are immutable by convention; this makes a violation an
error instead of a silent change to every later engine).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from ep_trtpy.builder.lowering import WEIGHT_ALIGN
from ep_trtpy.engine.plan import Plan
from graph_partitioner.ir import np_dtype

T = TypeVar("T")


class _Unkeyable(Exception):
    pass


def _freeze(part: Any, keep: list[Any]) -> Any:
    """A hashable form of a key part: arrays by identity (collected into `keep`), containers element-wise."""
    if isinstance(part, np.ndarray):
        keep.append(part)
        return ("array", id(part))
    if isinstance(part, (tuple, list)):
        return (type(part).__name__, tuple(_freeze(p, keep) for p in part))
    if isinstance(part, dict):
        return ("dict", tuple(sorted((str(k), _freeze(v, keep)) for k, v in part.items())))
    if isinstance(part, np.dtype):
        return ("dtype", part.str)
    if isinstance(part, np.generic):
        return ("scalar", part.dtype.str, part.tobytes())
    try:
        hash(part)
    except TypeError:
        raise _Unkeyable from None
    return part


def _read_only(result: Any) -> Any:
    if isinstance(result, np.ndarray):
        result.flags.writeable = False
    elif isinstance(result, (tuple, list)):
        for r in result:
            _read_only(r)
    return result


class ConstMemo:
    """A thread-safe memo of weight transforms: ``get(key, compute)`` returns the result an earlier call with the
    same key computed, else ``compute()`` (stored, read-only). A key is a tuple of the transform's name, its input
    arrays (compared by identity; the entry keeps them alive) and its parameters (dtypes, permutations, axes,
    attributes); a key with an unhashable part is not memoized."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Any, tuple[Any, list[Any]]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> set[str]:
        """The transform names (first key parts) of the entries, for logs and tests."""
        with self._lock:
            return {k[1][0] for k in self._entries if isinstance(k[1][0], str)}

    def get(self, key: tuple, compute: Callable[[], T]) -> T:
        keep: list[Any] = []
        try:
            frozen = _freeze(key, keep)
        except _Unkeyable:
            return compute()
        with self._lock:
            entry = self._entries.get(frozen)
            if entry is not None:
                self.hits += 1
                return entry[0]
        result = _read_only(compute())  # outside the lock: builds of other programs' shapes go on meanwhile
        with self._lock:
            entry = self._entries.setdefault(frozen, (result, keep))  # a racing thread's result wins if it came first
            self.misses += entry[0] is result
            self.hits += entry[0] is not result
            return entry[0]

    def intern(self, array: np.ndarray) -> np.ndarray:
        """The memo's array equal to `array` (dtype, shape and bytes), `array` itself the first time: for small
        computed constants (biases, scales), so that later transforms and lowering find them by identity."""
        a = np.asarray(array)
        return self.get(("intern", operand(a)), lambda: a)


SMALL_BYTES = 1 << 14
"""Key parts up to this size are compared by content (their bytes), larger arrays by identity."""


def operand(array: np.ndarray) -> Any:
    """A key part for an input array: small arrays by content (a fresh but equal array of a later build matches),
    larger ones by identity (the array itself, which the memo turns into its id and keeps alive)."""
    a = np.asarray(array)
    if a.nbytes <= SMALL_BYTES:
        return ("bytes", a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes())
    return a


# ----------------------------------------------------------------------------------------- the base --

def _aligned(n: int) -> int:
    return n + (-n) % WEIGHT_ALIGN


class WeightBase:
    """The weights of a program's first engine: every weight tensor of its plan and its blob, for later builds of
    the same program to point into instead of copying. ``arrays`` maps (id(array), dtype) -> (array, offset) for
    the arrays that were lowered into the base (lowering records them); the base keeps them alive."""

    def __init__(self, plan: Plan, weights: bytes | bytearray | memoryview,
                 arrays: dict[tuple[int, int], tuple[np.ndarray, int]] | None = None) -> None:
        if plan.shared_weights_bytes:
            raise ValueError(f"a weight base must be an ordinary engine's plan, not one that shares "
                             f"{plan.shared_weights_bytes} bytes of another's")
        self.weights = weights
        self.shared_bytes = _aligned(len(weights))
        self._view = np.frombuffer(weights, dtype=np.uint8) if len(weights) else np.zeros(0, np.uint8)
        self._arrays = dict(arrays or {})
        self._by_size: dict[tuple[int, int], list[tuple[str, int]]] = {}  # (dtype, nbytes) -> [(name, offset)]
        seen: set[int] = set()
        for t in plan.tensors:
            if t.kind == "weight" and t.offset not in seen:
                seen.add(t.offset)
                self._by_size.setdefault((t.dtype, t.nbytes), []).append((t.name, t.offset))

    @classmethod
    def of(cls, lowered: Any) -> WeightBase:
        """The base of a finished lowering context (``lower_with_context``): its plan, blob and lowered arrays."""
        return cls(lowered.plan, lowered.weights, lowered.sources)

    def find(self, array: np.ndarray, dtype: int, name: str = "", taken: set[int] | frozenset[int] = frozenset()
             ) -> int | None:
        """The offset of a base weight with the bytes of `array` as ONNX type `dtype` (C order) that is not in
        `taken`, else None."""
        hit = self._arrays.get((id(array), dtype))
        if hit is not None and hit[0] is array and hit[1] not in taken:
            return hit[1]
        nbytes = array.size * np_dtype(dtype).itemsize
        candidates = self._by_size.get((dtype, nbytes))
        if not candidates:
            return None
        want = np.ascontiguousarray(array).astype(np_dtype(dtype), copy=False).reshape(-1).view(np.uint8)
        for _n, offset in sorted(candidates, key=lambda c: c[0] != name):
            if offset not in taken and np.array_equal(self._view[offset:offset + nbytes], want):
                if not array.flags.writeable:  # a memo result: later builds hand the same object, found by id
                    self._arrays[(id(array), dtype)] = (array, offset)
                return offset
        return None


def assemble(plan: Plan, tail: bytes | bytearray | memoryview, base: WeightBase) -> bytes:
    """The weights blob of an ordinary engine for a plan lowered with `base`: the base's blob padded to
    ``shared_bytes``, then `tail` (tensor offsets already address this layout)."""
    if plan.shared_weights_bytes != base.shared_bytes:
        raise ValueError(f"the plan shares {plan.shared_weights_bytes} weight bytes but the base has "
                         f"{base.shared_bytes}")
    pad = base.shared_bytes - len(base.weights)
    return b"".join((bytes(base.weights), b"\0" * pad, bytes(tail)))
