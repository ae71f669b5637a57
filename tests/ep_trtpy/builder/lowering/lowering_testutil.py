"""Single-node test graphs for the lowering tests: the same node as an IR graph (for lowering) and as an ONNX model
(for onnx's reference evaluator, the independent numpy reference here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper
from onnx.reference import ReferenceEvaluator

from graph_partitioner.ir import Graph, Value, elem_type


@dataclass
class In:
    """A node input: a run-time graph input, or a constant (initializer) when const=True."""

    name: str
    array: np.ndarray
    const: bool = False


@dataclass
class Case:
    graph: Graph
    feeds: list[np.ndarray]  # run-time inputs in graph order
    expected: list[np.ndarray]  # onnx reference outputs
    model: Any


def onnx_model(op: str, inputs: Sequence[In | None], attrs: dict[str, Any], n_out: int, opset: int,
               domain: str = "", out_types: Sequence[tuple[int, Sequence[int]]] | None = None) -> onnx.ModelProto:
    names = ["" if i is None else i.name for i in inputs]
    outs = [f"y{k}" for k in range(n_out)]
    onnx_attrs = {k: onnx.numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v for k, v in attrs.items()}
    node = helper.make_node(op, names, outs, domain=domain or None, **onnx_attrs)
    g_inputs = [helper.make_tensor_value_info(i.name, helper.np_dtype_to_tensor_dtype(i.array.dtype),
                                              list(i.array.shape)) for i in inputs if i is not None and not i.const]
    inits = [onnx.numpy_helper.from_array(i.array, i.name) for i in inputs if i is not None and i.const]
    if out_types is None:
        g_outputs = [helper.make_empty_tensor_value_info(o) for o in outs]
    else:
        g_outputs = [helper.make_tensor_value_info(o, t, list(s)) for o, (t, s) in zip(outs, out_types)]
    graph = helper.make_graph([node], "case", g_inputs, g_outputs, initializer=inits)
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def ir_graph(op: str, inputs: Sequence[In | None], attrs: dict[str, Any], outputs: Sequence[np.ndarray],
             opset: int, domain: str = "") -> Graph:
    g = Graph("case", {"": opset})
    vals: list[Value | None] = []
    for i in inputs:
        if i is None:
            vals.append(None)
        elif i.const:
            vals.append(g.add_value(i.name, const=np.asarray(i.array)))
        else:
            v = g.add_value(i.name, elem_type(i.array.dtype), tuple(int(d) for d in i.array.shape))
            g.inputs.append(v)
            vals.append(v)
    outs = [g.add_value(f"y{k}", elem_type(o.dtype), tuple(int(d) for d in o.shape)) for k, o in enumerate(outputs)]
    g.add_node(op, vals, outs, attrs=dict(attrs), name=f"{op.lower()}_node", domain=domain)
    g.outputs = list(outs)
    return g


def _inferred_types(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[tuple[int, list[int]]]:
    """Output (elem type, static shape) from onnx shape inference, else from running the reference evaluator."""
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    types = []
    for o in inferred.graph.output:
        t = o.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        if not t.elem_type or not t.HasField("shape") or None in dims:
            outs = ReferenceEvaluator(model).run(None, feeds)
            return [(helper.np_dtype_to_tensor_dtype(np.asarray(e).dtype), list(np.shape(e))) for e in outs]
        types.append((t.elem_type, dims))
    return types


def node_case(op: str, inputs: Sequence[In | None], attrs: dict[str, Any] | None = None, n_out: int = 1,
              opset: int = 18, ref: str = "ort") -> Case:
    """Run the node with ONNX Runtime's CPU provider (ref="ort", the behaviour we must match) or onnx's reference
    evaluator (ref="onnx"), and build the matching IR graph. The output types come from the reference evaluator."""
    attrs = dict(attrs or {})
    model = onnx_model(op, inputs, attrs, n_out, opset)
    feeds = {i.name: i.array for i in inputs if i is not None and not i.const}
    if ref == "ort":
        import onnxruntime as ort

        typed = onnx_model(op, inputs, attrs, n_out, opset, out_types=_inferred_types(model, feeds))
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(typed.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        expected = [np.asarray(o) for o in sess.run(None, feeds)]
        model = typed
    else:
        expected = [np.asarray(o) for o in ReferenceEvaluator(model).run(None, feeds)]
    graph = ir_graph(op, inputs, attrs, expected, opset)
    return Case(graph, [i.array for i in inputs if i is not None and not i.const], expected, model)


def cast_transpose_case(x: np.ndarray, perm: Sequence[int], to: Any) -> Case:
    """An ep_trtpy::CastTranspose node (no ONNX op to run): expected is numpy's transpose, then its cast (round
    to nearest even, as ONNX's Cast)."""
    want = np.ascontiguousarray(np.transpose(x, perm)).astype(to)
    g = ir_graph("CastTranspose", [In("x", x)], {"perm": list(perm), "to": elem_type(np.dtype(to))}, [want], 17,
                 domain="ep_trtpy")
    return Case(g, [x], [want], None)


def rand(shape: Sequence[int], dtype: Any = np.float32, seed: int = 0, low: float = -3.0,
         high: float = 3.0) -> np.ndarray:
    """Random values that are never all zero (ints: in [low, high), never 0)."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return np.asarray(rng.uniform(low, high, size=shape)).astype(dt)
    if dt.kind == "b":
        return np.asarray(rng.random(size=shape) < 0.5)
    v = rng.integers(int(low), int(high), size=shape)
    v = np.where(v == 0, 1, v)
    return np.asarray(v).astype(dt)
