"""Small matching and editing helpers shared by the passes (not a pass itself).

Conventions: every helper that creates a value gives it a concrete dtype and shape (the pipeline runs on static
shapes after ``infer_shapes``), so passes never need to re-run shape inference.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from graph_partitioner.ir import INT64, Graph, Node, Value, elem_type, np_dtype

DOMAIN = "ep_trtpy"


def is_op(node: Node | None, *op_types: str) -> bool:
    """True for an ONNX-domain node of one of these op types."""
    return node is not None and node.domain in ("", "ai.onnx") and node.op_type in op_types


def is_internal(node: Node | None, op_type: str) -> bool:
    return node is not None and node.domain == DOMAIN and node.op_type == op_type


def opset(graph: Graph) -> int:
    return int(graph.opsets.get("", graph.opsets.get("ai.onnx", 17)))


def const_scalar(v: Value | None) -> float | None:
    """The value of a one-element constant, else None."""
    if v is None or v.const is None or v.const.size != 1:
        return None
    return float(np.asarray(v.const).reshape(()))


def close(a: float | None, b: float, rel: float = 1e-3) -> bool:
    return a is not None and abs(a - b) <= rel * max(abs(b), 1e-12)


def consumers(v: Value) -> list[Node]:
    """Distinct consumer nodes of v (a node reading v twice appears once)."""
    out: list[Node] = []
    for n, _ in v.consumers:
        if all(n is not m for m in out):
            out.append(n)
    return out


def sole_consumer(graph: Graph, v: Value) -> Node | None:
    """The only node that reads v (possibly at several inputs), if v is not also a graph output."""
    c = consumers(v)
    if len(c) != 1 or graph.is_graph_output(v):
        return None
    return c[0]


def used_only_by(graph: Graph, v: Value, nodes: Iterable[Node]) -> bool:
    """True if every use of v is an input of one of `nodes` (and v is not a graph output)."""
    ids = {id(n) for n in nodes}
    return not graph.is_graph_output(v) and all(id(n) in ids for n, _ in v.consumers)


def other_input(node: Node, v: Value) -> Value | None:
    """For a binary node reading v at one input, the other input."""
    a, b = node.input(0), node.input(1)
    if a is v:
        return b
    if b is v:
        return a
    return None


def new_value(graph: Graph, base: str, dtype: int | None, shape: Sequence[int] | None) -> Value:
    return graph.add_value(base, dtype, None if shape is None else tuple(int(d) for d in shape))


def contiguous(array: Any) -> np.ndarray:
    """A C-contiguous array with the same shape (numpy's ascontiguousarray turns 0-d arrays into 1-d ones)."""
    a = np.asarray(array)
    return a if a.flags.c_contiguous else a.copy(order="C")


def add_const(graph: Graph, array: Any, hint: str = "const", dtype: Any = None) -> Value:
    arr = np.asarray(array) if dtype is None else np.asarray(array, dtype=dtype)
    return graph.add_value(hint, const=contiguous(arr))


def add(graph: Graph, op_type: str, inputs: Sequence[Value | None], out_dtype: int | None,
        out_shape: Sequence[int] | None, attrs: dict[str, Any] | None = None, before: Node | None = None,
        name_hint: str = "", domain: str = "") -> Node:
    """A node with one new output value of the given dtype and shape."""
    name = graph.fresh_node_name(name_hint or op_type)
    out = new_value(graph, f"{name}_out", out_dtype, out_shape)
    return graph.add_node(op_type, list(inputs), [out], attrs=attrs, name=name, domain=domain, before=before)


def reshape(graph: Graph, x: Value, shape: Sequence[int], before: Node | None, hint: str = "") -> Value:
    """x reshaped to `shape` through a Reshape node (placed before `before`)."""
    s = add_const(graph, np.asarray(list(shape), dtype=np.int64), f"{hint or x.name}_shape")
    return add(graph, "Reshape", [x, s], x.dtype, shape, before=before, name_hint=f"{hint}Reshape").outputs[0]


def transpose(graph: Graph, x: Value, perm: Sequence[int], before: Node | None, hint: str = "") -> Value:
    shape = [x.static_shape[p] for p in perm]
    return add(graph, "Transpose", [x], x.dtype, shape, {"perm": [int(p) for p in perm]}, before=before,
               name_hint=f"{hint}Transpose").outputs[0]


def reduce_sum(graph: Graph, x: Value, axes: Sequence[int], keepdims: int, before: Node | None,
               hint: str = "") -> Value:
    """ReduceSum over `axes`, in the form the graph's ONNX opset expects (axes input from opset 13)."""
    shape = list(x.static_shape)
    out_shape = [1 if i in axes else d for i, d in enumerate(shape)] if keepdims else \
        [d for i, d in enumerate(shape) if i not in axes]
    if opset(graph) >= 13:
        a = add_const(graph, np.asarray(list(axes), dtype=np.int64), f"{hint or x.name}_axes")
        return add(graph, "ReduceSum", [x, a], x.dtype, out_shape, {"keepdims": keepdims}, before=before,
                   name_hint=f"{hint}ReduceSum").outputs[0]
    return add(graph, "ReduceSum", [x], x.dtype, out_shape, {"keepdims": keepdims, "axes": list(axes)},
               before=before, name_hint=f"{hint}ReduceSum").outputs[0]


def reduce_axes(node: Node) -> list[int] | None:
    """Axes of a Reduce* node as given (attribute or constant input 1); [] when none are given; None when the
    axes input is not a constant."""
    if "axes" in node.attrs:
        return [int(a) for a in node.attrs["axes"]]
    a = node.input(1)
    if a is None:
        return []
    if a.const is None:
        return None
    return [int(x) for x in np.asarray(a.const).reshape(-1)]


def norm_axes(axes: Iterable[int], rank: int) -> list[int]:
    return sorted({int(a) + rank if int(a) < 0 else int(a) for a in axes})


def broadcast_shape(*shapes: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(d) for d in np.broadcast_shapes(*[tuple(s) for s in shapes]))


def static(v: Value | None) -> bool:
    return v is not None and v.shape is not None and all(isinstance(d, int) for d in v.shape)


def as_dtype(array: np.ndarray, elem: int | None) -> np.ndarray:
    """array converted to the numpy dtype of ONNX element type `elem` (unchanged when None)."""
    return array if elem is None else np.asarray(array).astype(np_dtype(elem))


def elem_of(array: np.ndarray) -> int:
    return elem_type(np.asarray(array).dtype)


def rename(graph: Graph, v: Value, new_name: str) -> None:
    """Give value v a new (unique) name, keeping graph.values consistent."""
    if graph.values.get(v.name) is v:
        del graph.values[v.name]
    v.name = graph.fresh_name(new_name)
    graph.values[v.name] = v


def replace_nodes(graph: Graph, old: Sequence[Node], op_type: str, inputs: Sequence[Value | None],
                  outputs: Sequence[Value], attrs: dict[str, Any] | None = None, domain: str = "",
                  name: str = "") -> Node:
    """Remove the nodes `old` and insert one new node producing `outputs` (values that `old` produced) at the
    position of the last of them, which keeps topological order whenever the new inputs were available to the
    old nodes."""
    pos = max(graph.nodes.index(n) for n in old)
    anchor = graph.nodes[pos + 1] if pos + 1 < len(graph.nodes) else None
    for n in old:
        graph.remove_node(n)
    return graph.add_node(op_type, list(inputs), list(outputs), attrs=attrs,
                          name=name or graph.fresh_node_name(op_type), domain=domain, before=anchor)


def set_output(node: Node, k: int, value: Value) -> None:
    """Make `node` produce `value` as its output k (value must have no producer)."""
    if value.producer is not None:
        raise ValueError(f"value '{value.name}' is still produced by '{value.producer.name}'")
    node.outputs[k].producer = None
    value.producer = node
    node.outputs[k] = value


def int64_const(graph: Graph, values: Sequence[int], hint: str) -> Value:
    return add_const(graph, np.asarray(list(values), dtype=np.int64), hint)


__all__ = ["DOMAIN", "INT64", "add", "add_const", "as_dtype", "broadcast_shape", "close", "const_scalar",
           "consumers", "elem_of", "int64_const", "is_internal", "is_op", "new_value", "norm_axes", "opset",
           "other_input", "reduce_axes", "reduce_sum", "rename", "replace_nodes", "reshape", "set_output",
           "sole_consumer", "static",
           "transpose", "used_only_by"]
