"""Op registry: for every op the builder handles, a numpy reference and a shape/dtype inference function.

The reference is the semantics: the reference backend runs engines with it, constant folding evaluates with it,
and tests compare GPU results against it. Inference works on concrete shapes (engines are built per concrete
input shape), and may also produce a value when it follows from shapes alone (``Shape``, ``Size``), which is how
shape arithmetic folds away at build time.

    @reference("Relu")
    def relu(node: Node, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0).astype(x.dtype)

    @infer("Relu")
    def relu_infer(node: Node, x: Info) -> Info:
        return Info(x.dtype, x.shape)

A reference receives one numpy array per node input (``None`` for an absent optional input) and returns one
array or a tuple of arrays (one per node output). An inference function receives one :class:`Info` per input
(``None`` when absent) and returns one Info or a list. Both may raise :class:`OpError` with a sentence naming
the problem (bad attribute, shape mismatch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ep_trtpy._sync import Once, import_submodules
from graph_partitioner.ir import Node, dtype_name, np_dtype


class OpError(ValueError):
    """An op cannot be evaluated or inferred as given (the message names the node and the value)."""


@dataclass(frozen=True)
class Info:
    """What is known about a value at build time: dtype, concrete shape, and the value itself if it follows from
    constants or shapes alone."""

    dtype: int
    shape: tuple[int, ...]
    value: np.ndarray | None = None

    def __repr__(self) -> str:
        v = "" if self.value is None else f" = {self.value.tolist() if self.value.size <= 8 else '...'}"
        return f"Info({dtype_name(self.dtype)}{list(self.shape)}{v})"


RefFn = Callable[..., Any]
InferFn = Callable[..., Any]


@dataclass
class OpDef:
    key: str
    ref: RefFn | None = None
    infer: InferFn | None = None


_OPS: dict[str, OpDef] = {}


def _entry(key: str) -> OpDef:
    return _OPS.setdefault(key, OpDef(key))


def reference(*keys: str) -> Callable[[RefFn], RefFn]:
    """Register a numpy reference for one or more op keys."""

    def deco(fn: RefFn) -> RefFn:
        for k in keys:
            e = _entry(k)
            if e.ref is not None:
                raise ValueError(f"reference for {k} registered twice")
            e.ref = fn
        return fn

    return deco


def infer(*keys: str) -> Callable[[InferFn], InferFn]:
    """Register a shape/dtype inference function for one or more op keys."""

    def deco(fn: InferFn) -> InferFn:
        for k in keys:
            e = _entry(k)
            if e.infer is not None:
                raise ValueError(f"inference for {k} registered twice")
            e.infer = fn
        return fn

    return deco


def get(key: str) -> OpDef:
    _load_all()
    try:
        return _OPS[key]
    except KeyError:
        raise OpError(f"op {key} is not known to ep_trtpy's op registry") from None


def all_ops() -> dict[str, OpDef]:
    _load_all()
    return dict(_OPS)


def run_reference(node: Node, inputs: list[np.ndarray | None]) -> list[np.ndarray]:
    """Evaluate one node with its numpy reference; always returns a list (one array per output)."""
    d = get(node.key)
    if d.ref is None:
        raise OpError(f"op {node.key} has no numpy reference")
    out = d.ref(node, *inputs)
    return list(out) if isinstance(out, (tuple, list)) else [out]


FOLD_LIMIT = 4096
"""Outputs of at most this many elements are evaluated during inference when every input carries a value."""


def run_infer(node: Node, inputs: list[Info | None]) -> list[Info]:
    """Infer one node; always returns a list (one Info per output).

    Besides what the op's inference function gives, every output gets its ``value`` when all present inputs carry
    values and every output has at most :data:`FOLD_LIMIT` elements: the node is then evaluated with its
    reference, which is how shape arithmetic (Shape -> Gather -> Concat -> Reshape) folds at build time.
    """
    d = get(node.key)
    if d.infer is None:
        raise OpError(f"op {node.key} has no shape inference")
    out = d.infer(node, *inputs)
    infos = list(out) if isinstance(out, (tuple, list)) else [out]
    return _fold(node, inputs, infos)


def _fold(node: Node, inputs: list[Info | None], infos: list[Info]) -> list[Info]:
    present = [x for x in inputs if x is not None]
    if not present or any(x.value is None for x in present) or all(o.value is not None for o in infos):
        return infos
    if any(int(np.prod(o.shape, dtype=np.int64)) > FOLD_LIMIT for o in infos):
        return infos
    values = run_reference(node, [None if x is None else x.value for x in inputs])
    folded = []
    for k, (o, v) in enumerate(zip(infos, values)):
        v = np.asarray(v)
        if tuple(v.shape) != tuple(o.shape) or v.dtype != np_dtype(o.dtype):
            raise OpError(f"{node.key} node '{node.name}': output {k} evaluates to {v.dtype}{list(v.shape)} but "
                          f"inference says {o!r} (an inconsistency in ep_trtpy.ops)")
        folded.append(o if o.value is not None else Info(o.dtype, o.shape, v))
    return folded + infos[len(folded):]


_load_all = Once(lambda: import_submodules("ep_trtpy.ops", skip=("registry",)))
"""Import every module of ep_trtpy.ops so that its decorators run (once per process; threads that ask while the
imports are under way wait for them to finish)."""
