"""The one graph IR used from GetCapability to engine build.

A :class:`Graph` holds :class:`Node` objects in topological order and the :class:`Value` objects that connect
them. Protobuf appears only at the edges (``onnx_io.graph_from_onnx``, ``onnx_io.graph_to_onnx``), and the shim's
JSON export arrives through ``onnx_io.graph_from_export``; this module imports none of them.

Conventions
-----------
* ``Value.dtype`` is an ONNX ``TensorProto`` element type (``FLOAT`` = 1, ...), or ``None`` when unknown.
* ``Value.shape`` is a tuple whose entries are ``int`` (static), ``str`` (a symbolic dimension) or ``None``
  (unknown); the whole shape is ``None`` when even the rank is unknown.
* ``Value.const`` is a numpy array for initializers and folded constants (treated as immutable: passes make a
  new array rather than writing into one), else ``None``.
* ``Node.inputs`` may hold ``None`` for an absent optional input; trailing absent inputs may be dropped.
* Graph outputs are positional: a pass may replace an output value by another (even a graph input or a
  constant), and the same value may appear twice in ``Graph.outputs``.
* Attributes are plain Python values: ``int``, ``float``, ``str``, ``list[int]``, ``list[float]``, ``list[str]``,
  ``numpy.ndarray`` (TENSOR), or an opaque object for GRAPH attributes (which no support rule accepts).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

# ONNX TensorProto element types.
UNDEFINED, FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, STRING, BOOL = range(10)
FLOAT16, DOUBLE, UINT32, UINT64, COMPLEX64, COMPLEX128, BFLOAT16 = range(10, 17)
FLOAT8E4M3FN = 17
"""FP8 E4M3 without infinities (ONNX FLOAT8E4M3FN): the FP8 of quantized engines (ml_dtypes.float8_e4m3fn)."""
_ML_DTYPES = {BFLOAT16: "bfloat16", FLOAT8E4M3FN: "float8_e4m3fn"}

_NP_OF_ELEM: dict[int, Any] = {
    FLOAT: np.float32, UINT8: np.uint8, INT8: np.int8, UINT16: np.uint16, INT16: np.int16, INT32: np.int32,
    INT64: np.int64, BOOL: np.bool_, FLOAT16: np.float16, DOUBLE: np.float64, UINT32: np.uint32,
    UINT64: np.uint64, STRING: np.object_,
}
_NAMES = {
    FLOAT: "float32", UINT8: "uint8", INT8: "int8", UINT16: "uint16", INT16: "int16", INT32: "int32",
    INT64: "int64", STRING: "string", BOOL: "bool", FLOAT16: "float16", DOUBLE: "float64", UINT32: "uint32",
    UINT64: "uint64", BFLOAT16: "bfloat16", COMPLEX64: "complex64", COMPLEX128: "complex128",
    FLOAT8E4M3FN: "float8e4m3fn",
}
FLOAT_TYPES = frozenset({FLOAT, FLOAT16, DOUBLE, BFLOAT16})
INT_TYPES = frozenset({UINT8, INT8, UINT16, INT16, INT32, INT64, UINT32, UINT64})


def np_dtype(elem: int) -> np.dtype:
    """numpy dtype of an ONNX element type (bfloat16 and float8e4m3fn through ml_dtypes, which onnx depends on)."""
    if elem in _ML_DTYPES:
        import ml_dtypes

        return np.dtype(getattr(ml_dtypes, _ML_DTYPES[elem]))
    try:
        return np.dtype(_NP_OF_ELEM[elem])
    except KeyError:
        raise ValueError(f"ONNX element type {elem} ({dtype_name(elem)}) has no numpy equivalent here") from None


def elem_type(dtype: Any) -> int:
    """ONNX element type of a numpy dtype."""
    dt = np.dtype(dtype)
    for elem, name in _ML_DTYPES.items():
        if dt.name == name:
            return elem
    for elem, np_t in _NP_OF_ELEM.items():
        if np.dtype(np_t) == dt:
            return elem
    raise ValueError(f"numpy dtype {dt} has no ONNX element type")


def dtype_name(elem: int | None) -> str:
    return "unknown" if elem is None else _NAMES.get(elem, f"elem_type_{elem}")


Dim = int | str | None
Shape = tuple[Dim, ...] | None


def is_static(shape: Shape) -> bool:
    return shape is not None and all(isinstance(d, int) for d in shape)


def shape_str(shape: Shape) -> str:
    if shape is None:
        return "?"
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


class Value:
    """A tensor flowing between nodes (or a graph input, or a constant)."""

    __slots__ = ("name", "dtype", "shape", "const", "producer", "consumers")

    def __init__(self, name: str, dtype: int | None = None, shape: Shape = None, const: np.ndarray | None = None):
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.const = const
        self.producer: Node | None = None
        self.consumers: list[tuple[Node, int]] = []  # (node, input index)
        if const is not None:
            self.dtype = elem_type(const.dtype) if dtype is None else dtype
            self.shape = tuple(int(d) for d in const.shape)

    @property
    def is_const(self) -> bool:
        return self.const is not None

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def static_shape(self) -> tuple[int, ...]:
        if not is_static(self.shape):
            raise ValueError(f"value '{self.name}' has no static shape ({shape_str(self.shape)})")
        return self.shape  # type: ignore[return-value]

    def __repr__(self) -> str:
        kind = "const " if self.const is not None else ""
        return f"Value({kind}{self.name!r}: {dtype_name(self.dtype)}{shape_str(self.shape)})"


class Node:
    """One operator application."""

    __slots__ = ("name", "op_type", "domain", "attrs", "inputs", "outputs", "since_version", "index")

    def __init__(self, op_type: str, name: str = "", domain: str = "", attrs: dict[str, Any] | None = None,
                 since_version: int | None = None):
        self.op_type = op_type
        self.name = name
        self.domain = domain
        self.attrs: dict[str, Any] = dict(attrs or {})
        self.inputs: list[Value | None] = []
        self.outputs: list[Value] = []
        self.since_version = since_version
        self.index = -1  # position in the graph this node came from (the shim's node index); -1 if created later

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def input(self, i: int) -> Value | None:
        """Input i, or None when absent (missing optional input or beyond the end)."""
        return self.inputs[i] if i < len(self.inputs) else None

    @property
    def key(self) -> str:
        """'domain::op_type' (just op_type for the ONNX domain)."""
        return f"{self.domain}::{self.op_type}" if self.domain not in ("", "ai.onnx") else self.op_type

    def __repr__(self) -> str:
        ins = ", ".join(v.name if v is not None else "-" for v in self.inputs)
        outs = ", ".join(v.name for v in self.outputs)
        return f"Node({self.name!r}: {self.key}({ins}) -> {outs})"


class Graph:
    """A directed acyclic graph of nodes; ``nodes`` is kept in topological order by the editing helpers."""

    def __init__(self, name: str = "graph", opsets: dict[str, int] | None = None):
        self.name = name
        self.opsets: dict[str, int] = dict(opsets or {"": 17})
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.nodes: list[Node] = []
        self.values: dict[str, Value] = {}
        self.model_path: str = ""
        self._counter = itertools.count()

    # ---------------------------------------------------------------------------------------- values --
    def fresh_name(self, base: str) -> str:
        base = base or "v"
        if base not in self.values:
            return base
        while True:
            name = f"{base}__{next(self._counter)}"
            if name not in self.values:
                return name

    def add_value(self, name: str, dtype: int | None = None, shape: Shape = None,
                  const: np.ndarray | None = None, *, unique: bool = True) -> Value:
        """A new value; with unique=True a clashing name gets a suffix."""
        if name in self.values:
            if not unique:
                raise ValueError(f"value '{name}' already exists in graph '{self.name}'")
            name = self.fresh_name(name)
        v = Value(name, dtype, shape, const)
        self.values[name] = v
        return v

    def add_constant(self, array: Any, name_hint: str = "const") -> Value:
        arr = np.asarray(array)
        return self.add_value(name_hint, const=arr)

    @property
    def initializers(self) -> list[Value]:
        return [v for v in self.values.values() if v.const is not None and v.producer is None]

    # ----------------------------------------------------------------------------------------- nodes --
    def add_node(self, op_type: str, inputs: Sequence[Value | None], outputs: Sequence[Value] | int = 1,
                 attrs: dict[str, Any] | None = None, name: str = "", domain: str = "",
                 before: Node | None = None, since_version: int | None = None) -> Node:
        """Create a node, wire it, and insert it (at the end, or right before `before`).

        `outputs` is a list of existing unproduced values, or a count of new values to create.
        Inserting at the end keeps topological order only if every input already exists; passes that rewrite
        in the middle of a graph pass `before=` the first consumer, or call toposort() afterwards.
        """
        node = Node(op_type, name=name or self.fresh_node_name(op_type), domain=domain, attrs=attrs,
                    since_version=since_version)
        for i, v in enumerate(inputs):
            node.inputs.append(v)
            if v is not None:
                v.consumers.append((node, i))
        if isinstance(outputs, int):
            outputs = [self.add_value(f"{node.name}_out{k}") for k in range(outputs)]
        for k, v in enumerate(outputs):
            if v.producer is not None:
                raise ValueError(f"value '{v.name}' already produced by {v.producer.name}")
            v.producer = node
            node.outputs.append(v)
        if before is None:
            self.nodes.append(node)
        else:
            self.nodes.insert(self.nodes.index(before), node)
        return node

    def fresh_node_name(self, base: str) -> str:
        return f"{base}_{next(self._counter)}"

    def remove_node(self, node: Node) -> None:
        """Unwire and drop a node. Its outputs stay in `values` without a producer until cleaned up."""
        for i, v in enumerate(node.inputs):
            if v is not None:
                v.consumers = [(n, k) for (n, k) in v.consumers if not (n is node and k == i)]
        for v in node.outputs:
            v.producer = None
        self.nodes.remove(node)

    def set_input(self, node: Node, i: int, value: Value | None) -> None:
        old = node.inputs[i] if i < len(node.inputs) else None
        if old is not None:
            old.consumers = [(n, k) for (n, k) in old.consumers if not (n is node and k == i)]
        while len(node.inputs) <= i:
            node.inputs.append(None)
        node.inputs[i] = value
        if value is not None:
            value.consumers.append((node, i))

    def replace_all_uses(self, old: Value, new: Value) -> None:
        """Every consumer of `old` (and every graph-output slot holding it) now uses `new`."""
        for node, i in list(old.consumers):
            self.set_input(node, i, new)
        self.outputs = [new if v is old else v for v in self.outputs]

    def remove_unused(self) -> int:
        """Drop nodes none of whose outputs are used, and values nothing refers to. Returns nodes removed."""
        removed = 0
        outputs = {id(v) for v in self.outputs}
        for node in reversed(list(self.nodes)):
            if all(not v.consumers and id(v) not in outputs for v in node.outputs):
                self.remove_node(node)
                removed += 1
        live = {id(v) for v in self.inputs} | outputs
        for node in self.nodes:
            live.update(id(v) for v in node.inputs if v is not None)
            live.update(id(v) for v in node.outputs)
        self.values = {k: v for k, v in self.values.items() if id(v) in live}
        return removed

    def toposort(self) -> None:
        """Reorder nodes topologically (stable for nodes already in order). Raises on a cycle."""
        position = {id(n): i for i, n in enumerate(self.nodes)}
        indegree = {id(n): 0 for n in self.nodes}
        users: dict[int, list[Node]] = {id(n): [] for n in self.nodes}
        for n in self.nodes:
            preds = {id(v.producer) for v in n.inputs if v is not None and v.producer is not None}
            preds.discard(id(n))
            for p in preds:
                if p in users:
                    users[p].append(n)
                    indegree[id(n)] += 1
        import heapq

        ready = [(position[id(n)], id(n), n) for n in self.nodes if indegree[id(n)] == 0]
        heapq.heapify(ready)
        order: list[Node] = []
        while ready:
            _, _, n = heapq.heappop(ready)
            order.append(n)
            for u in users[id(n)]:
                indegree[id(u)] -= 1
                if indegree[id(u)] == 0:
                    heapq.heappush(ready, (position[id(u)], id(u), u))
        if len(order) != len(self.nodes):
            raise ValueError(f"graph '{self.name}' has a cycle")
        self.nodes = order

    # ------------------------------------------------------------------------------------- queries --
    def producer_of(self, value: Value) -> Node | None:
        return value.producer

    def consumers_of(self, value: Value) -> list[Node]:
        return [n for n, _ in value.consumers]

    def is_graph_output(self, value: Value) -> bool:
        return any(v is value for v in self.outputs)

    def node_by_name(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def op_types(self) -> list[str]:
        return [n.key for n in self.nodes]

    def copy(self) -> Graph:
        """Deep copy of the structure; constant arrays are shared (they are immutable by convention)."""
        g = Graph(self.name, self.opsets)
        g.model_path = self.model_path
        vmap: dict[int, Value] = {}
        for name, v in self.values.items():
            nv = Value(v.name, v.dtype, v.shape)
            nv.const = v.const
            g.values[name] = nv
            vmap[id(v)] = nv

        def m(v: Value | None) -> Value | None:
            if v is None:
                return None
            if id(v) not in vmap:  # a value not registered in `values` (should not happen); register it
                nv = Value(v.name, v.dtype, v.shape)
                nv.const = v.const
                g.values[g.fresh_name(v.name)] = nv
                vmap[id(v)] = nv
            return vmap[id(v)]

        for n in self.nodes:
            nn = Node(n.op_type, n.name, n.domain, dict(n.attrs), n.since_version)
            nn.index = n.index
            for i, v in enumerate(n.inputs):
                mv = m(v)
                nn.inputs.append(mv)
                if mv is not None:
                    mv.consumers.append((nn, i))
            for v in n.outputs:
                mv = m(v)
                assert mv is not None
                mv.producer = nn
                nn.outputs.append(mv)
            g.nodes.append(nn)
        g.inputs = [m(v) for v in self.inputs]  # type: ignore[misc]
        g.outputs = [m(v) for v in self.outputs]  # type: ignore[misc]
        return g

    def subgraph(self, nodes: Iterable[Node], name: str = "subgraph") -> Graph:
        """A standalone copy of `nodes`: inputs are the non-constant values they read from outside, outputs the
        values they produce that are used outside (or are outputs of this graph). Constants are carried along."""
        chosen = [n for n in self.nodes if n in set(nodes)] if not isinstance(nodes, list) else nodes
        ids = {id(n) for n in chosen}
        g = Graph(name, self.opsets)
        g.model_path = self.model_path
        vmap: dict[int, Value] = {}
        outside_outputs = {id(v) for v in self.outputs}

        def m(v: Value) -> Value:
            if id(v) not in vmap:
                nv = Value(v.name, v.dtype, v.shape)
                nv.const = v.const
                g.values[v.name] = nv
                vmap[id(v)] = nv
                if v.const is None and (v.producer is None or id(v.producer) not in ids):
                    g.inputs.append(nv)
            return vmap[id(v)]

        for n in sorted(chosen, key=self.nodes.index):
            nn = Node(n.op_type, n.name, n.domain, dict(n.attrs), n.since_version)
            nn.index = n.index
            for i, v in enumerate(n.inputs):
                mv = m(v) if v is not None else None
                nn.inputs.append(mv)
                if mv is not None:
                    mv.consumers.append((nn, i))
            for v in n.outputs:
                mv = m(v)
                mv.producer = nn
                nn.outputs.append(mv)
                used_outside = any(id(c) not in ids for c, _ in v.consumers) or id(v) in outside_outputs
                if used_outside:
                    g.outputs.append(mv)
            g.nodes.append(nn)
        return g

    def __repr__(self) -> str:
        return f"Graph({self.name!r}: {len(self.nodes)} nodes, {len(self.inputs)} inputs, {len(self.outputs)} outputs)"
