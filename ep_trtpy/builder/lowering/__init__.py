"""Lowering: optimized IR (static shapes) -> engine plan (tensors + launch list of native kernels).

Each op key has one lowering function, registered with :func:`lowering`, that emits one or more layers through
a :class:`LowerCtx`::

    @lowering("Relu")
    def relu(ctx: LowerCtx, node: Node) -> None:
        ctx.emit("pointwise", [ctx.tensor(node.inputs[0])], [ctx.tensor(node.outputs[0])], ints=[...])

The module of a kernel documents its parameter layout next to the lowering function; the native ``prepare``
checks it. Modules in this package are imported on first use, so a new file only needs its decorators.

Memory: graph inputs and outputs bind to the runtime pointers; constants become weights (lowered against a
:class:`~ep_trtpy.builder.weight_reuse.WeightBase`, those the base holds point into it); every other value is an
activation in one arena, packed by lifetime (:mod:`ep_trtpy.builder.memory_plan`). ``ctx.alias`` makes a value a
view of another (Reshape and friends cost nothing) unless that would need a graph output to be a view, in which
case a copy is emitted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ep_trtpy._sync import Once, import_submodules
from ep_trtpy.engine.plan import LayerSpec, Plan, TensorSpec, nbytes_of
from ep_trtpy.options import Options
from graph_partitioner.ir import Graph, Node, Value, np_dtype

if TYPE_CHECKING:
    from ep_trtpy.builder.weight_reuse import WeightBase

WEIGHT_ALIGN = 256

LowerFn = Callable[["LowerCtx", Node], None]
_LOWERINGS: dict[str, LowerFn] = {}


class LoweringError(ValueError):
    """A node cannot be lowered as given (the message names the node and the reason)."""


def lowering(*keys: str) -> Callable[[LowerFn], LowerFn]:
    def deco(fn: LowerFn) -> LowerFn:
        for k in keys:
            if k in _LOWERINGS:
                raise ValueError(f"lowering for {k} registered twice")
            _LOWERINGS[k] = fn
        return fn

    return deco


def lowerings() -> dict[str, LowerFn]:
    _load_all()
    return dict(_LOWERINGS)


@dataclass
class LowerCtx:
    graph: Graph
    options: Options = field(default_factory=Options)  # what lowerings choose by (tf32_enable: the math flag)
    plan: Plan = field(default_factory=Plan)
    weights: bytearray = field(default_factory=bytearray)  # with a base: the tail (what the base lacks)
    base: WeightBase | None = None  # the program's first engine's weights, shared instead of copied
    sources: dict[tuple[int, int], tuple[np.ndarray, int]] = field(default_factory=dict)
    _taken: set[int] = field(default_factory=set)  # base offsets already bound to a tensor of this engine
    """(id(array), dtype) -> (array, offset) of every host array lowered into a weight (for WeightBase.of)."""
    _ids: dict[int, int] = field(default_factory=dict)  # id(Value) -> tensor id
    _output_slots: dict[int, list[int]] = field(default_factory=dict)  # id(Value) -> graph output positions
    _input_slots: dict[int, int] = field(default_factory=dict)
    consts: dict[int, np.ndarray] = field(default_factory=dict)  # id(Value) -> value known at build time

    def __post_init__(self) -> None:
        for k, v in enumerate(self.graph.inputs):
            self._input_slots[id(v)] = k
        for k, v in enumerate(self.graph.outputs):
            self._output_slots.setdefault(id(v), []).append(k)
        self.plan.n_inputs = len(self.graph.inputs)
        self.plan.n_outputs = len(self.graph.outputs)

    # ------------------------------------------------------------------------------------------ tensors --
    def _add(self, name: str, dtype: int, shape: Sequence[int], kind: str, index: int = -1, offset: int = 0) -> int:
        tid = len(self.plan.tensors)
        shape = tuple(int(d) for d in shape)
        self.plan.tensors.append(TensorSpec(tid, name, int(dtype), shape, kind, index, offset,
                                            nbytes_of(dtype, shape)))
        return tid

    def tensor(self, v: Value) -> int:
        """Tensor id of an IR value, created on first use with the home its role implies."""
        if id(v) in self._ids:
            return self._ids[id(v)]
        if v.dtype is None or v.shape is None or not all(isinstance(d, int) for d in v.shape):
            raise LoweringError(f"value '{v.name}' has no static dtype and shape ({v!r}); cannot lower")
        if id(v) in self._input_slots:
            tid = self._add(v.name, v.dtype, v.shape, "input", self._input_slots[id(v)])
        elif v.const is not None:
            tid = self.weight(v.const, v.name, dtype=v.dtype)
        elif id(v) in self._output_slots:
            tid = self._add(v.name, v.dtype, v.shape, "output", self._output_slots[id(v)][0])
        else:
            tid = self._add(v.name, v.dtype, v.shape, "activation")
        self._ids[id(v)] = tid
        return tid

    def weight(self, array: np.ndarray, name: str = "weight", dtype: int | None = None) -> int:
        """A weight tensor from host data: with a base that holds the same bytes, at the base's offset; else
        appended to the weights blob (256-byte aligned; with a base, offsets continue after its shared bytes)."""
        from graph_partitioner.ir import elem_type

        src = np.asarray(array)
        dt = elem_type(src.dtype) if dtype is None else dtype
        shape = src.shape
        offset = self._known(src, dt, name)
        if offset is not None:
            self._taken.add(offset)
        else:
            arr = src if src.flags.c_contiguous else src.copy(order="C")  # (ascontiguousarray: 0-d becomes 1-d)
            if arr.dtype != np_dtype(dt):
                arr = arr.astype(np_dtype(dt))
            self.weights.extend(bytes((-len(self.weights)) % WEIGHT_ALIGN))
            offset = len(self.weights) + (self.base.shared_bytes if self.base is not None else 0)
            self.weights += memoryview(arr.reshape(-1).view(np.uint8))
            self.sources[(id(src), dt)] = (src, offset)
        return self._add(name, dt, shape, "weight", offset=offset)

    def _known(self, src: np.ndarray, dtype: int, name: str) -> int | None:
        """The offset of a base weight with these bytes that no other tensor of this engine uses yet, else None.
        Every weight tensor gets bytes of its own, as in an engine lowered without a base (two constants with
        equal bytes, such as the zero biases of a freshly initialized model, are not folded onto one region:
        the first H200 run of an HF BERT export crashed in finalize with them folded)."""
        if self.base is None:
            return None
        return self.base.find(src, dtype, name, taken=self._taken)

    def const_value(self, v: Value | None) -> np.ndarray | None:
        """The value of `v` if it is known at build time (an IR constant, or recorded by :meth:`constant` while
        lowering an earlier node, e.g. the output of Shape), else None."""
        if v is None:
            return None
        if v.const is not None:
            return v.const
        return self.consts.get(id(v))

    def constant(self, v: Value, array: np.ndarray) -> int:
        """Record that `v` is the build-time constant `array` (later lowerings read it through
        :meth:`const_value`) and bind it to a weight tensor. Returns the tensor id."""
        if v.dtype is None:
            raise LoweringError(f"value '{v.name}' has no dtype; cannot bind a constant to it")
        arr = np.asarray(array).astype(np_dtype(v.dtype), copy=False)
        if v.shape is not None and tuple(arr.shape) != tuple(v.shape):
            raise LoweringError(f"value '{v.name}' has shape {tuple(v.shape)} but its computed constant has shape "
                                f"{tuple(arr.shape)}")
        if id(v) in self._ids:
            raise LoweringError(f"value '{v.name}' is bound to a tensor already; cannot make it a constant")
        self.consts[id(v)] = arr
        tid = self.weight(arr, v.name, dtype=v.dtype)
        self._ids[id(v)] = tid
        return tid

    def temp(self, dtype: int, shape: Sequence[int], name: str = "temp") -> int:
        """A scratch activation for use between the layers of one node."""
        return self._add(name, dtype, shape, "activation")

    def view(self, src: int, dtype: int, shape: Sequence[int], byte_offset: int = 0, name: str = "view") -> int:
        """A tensor that views `src` (no copy)."""
        return self._add(name, dtype, shape, "alias", index=src, offset=byte_offset)

    def alias(self, out: Value, src: Value, byte_offset: int = 0) -> None:
        """Make `out` a view of `src` (same bytes), or copy when `out` must live in a graph-output buffer."""
        s = self.tensor(src)
        if id(out) in self._output_slots or id(out) in self._ids:
            o = self.tensor(out)
            nbytes = self.plan.tensors[o].nbytes
            src_view = s if byte_offset == 0 else self.view(s, out.dtype, out.shape, byte_offset)
            self.emit("memcpy", [src_view], [o], ints=[nbytes], name=out.name)
            return
        if out.dtype is None or out.shape is None:
            raise LoweringError(f"value '{out.name}' has no static dtype and shape; cannot alias")
        self._ids[id(out)] = self.view(s, out.dtype, out.shape, byte_offset, out.name)

    # ------------------------------------------------------------------------------------------- layers --
    def emit(self, kernel: str, inputs: Sequence[int], outputs: Sequence[int], ints: Sequence[int] = (),
             floats: Sequence[float] = (), tactic: int = -1, workspace: int = 0, name: str = "",
             meta: dict[str, Any] | None = None) -> LayerSpec:
        layer = LayerSpec(kernel, [int(i) for i in inputs], [int(o) for o in outputs], [int(x) for x in ints],
                          [float(x) for x in floats], int(tactic), int(workspace), name, dict(meta or {}))
        self.plan.layers.append(layer)
        return layer

    def finish(self) -> Plan:
        """Bind every graph output slot (copying where a slot holds an input, a weight, a view or a value that
        already fills another slot), then plan the arena."""
        from ep_trtpy.builder.memory_plan import plan_memory

        for v in self.graph.inputs:  # every engine input slot gets a tensor, even one that no node reads
            self.tensor(v)
        for k, v in enumerate(self.graph.outputs):
            tid = self.tensor(v)
            t = self.plan.tensors[tid]
            if t.kind == "output" and t.index == k:
                continue
            o = self._add(f"{v.name}:out{k}", v.dtype, v.shape, "output", k)  # type: ignore[arg-type]
            self.emit("memcpy", [tid], [o], ints=[t.nbytes], name=f"output {k}")
        self.plan.weights_bytes = len(self.weights)
        self.plan.shared_weights_bytes = self.base.shared_bytes if self.base is not None else 0
        plan_memory(self.plan)
        return self.plan


def lower_with_context(graph: Graph, options: Options | None = None, base: WeightBase | None = None) -> LowerCtx:
    """Lower an optimized graph with static shapes; the finished context holds the plan, the weights blob (with
    `base`: only the tail the base lacks) and the host arrays behind its weights (for ``WeightBase.of``)."""
    _load_all()
    ctx = LowerCtx(graph, options if options is not None else Options(), base=base)
    for node in graph.nodes:
        fn = _LOWERINGS.get(node.key)
        if fn is None:
            raise LoweringError(f"node '{node.name}' ({node.key}) has no GPU lowering")
        fn(ctx, node)
    ctx.finish()
    return ctx


def lower(graph: Graph, options: Options | None = None, base: WeightBase | None = None) -> tuple[Plan, bytearray]:
    """Lower an optimized graph with static shapes into (plan, weights blob); `options` None: the defaults. With
    `base` (the weights of the program's first engine, ep_trtpy/builder/weight_reuse.py), weights the base holds
    are shared and the blob returned is only the tail; ``plan.shared_weights_bytes`` says where it starts."""
    ctx = lower_with_context(graph, options, base)
    return ctx.plan, ctx.weights


_load_all = Once(lambda: import_submodules("ep_trtpy.builder.lowering"))
"""Import every lowering module so that its @lowering decorators run (once per process, thread-safe)."""
