"""Small graph builders shared by the graph_partitioner tests."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from graph_partitioner.ir import FLOAT, Graph, Node, Value
from graph_partitioner.partition import PartitionResult
from graph_partitioner.support import SupportContext, check
from graph_partitioner.shape_computable import ShapeComputable

Spec = tuple[int | None, tuple | None] | Value | np.ndarray | None


def one_node(op: str, inputs: Sequence[Spec], outputs: Sequence[tuple[int | None, tuple | None]] = ((FLOAT, None),),
             attrs: dict[str, Any] | None = None, opset: int = 17, domain: str = "",
             since_version: int | None = None) -> tuple[Graph, Node]:
    """A graph holding one node. Inputs: (dtype, shape) for a graph input, an ndarray for a constant, None for
    absent. Outputs are graph outputs unless the test removes them."""
    g = Graph("t", {"": opset})
    ins: list[Value | None] = []
    for k, spec in enumerate(inputs):
        if spec is None:
            ins.append(None)
        elif isinstance(spec, Value):
            ins.append(spec)
        elif isinstance(spec, np.ndarray):
            ins.append(g.add_constant(spec, f"c{k}"))
        else:
            v = g.add_value(f"in{k}", spec[0], spec[1])
            g.inputs.append(v)
            ins.append(v)
    outs = [g.add_value(f"out{k}", dt, sh) for k, (dt, sh) in enumerate(outputs)]
    node = g.add_node(op, ins, outs, attrs=attrs, name="n", domain=domain, since_version=since_version)
    g.outputs.extend(outs)
    return g, node


def verdict(g: Graph, node: Node) -> str | None:
    return check(node, SupportContext(graph=g, shape_computable=ShapeComputable(g)))


def random_dag(n: int, p_unsupported: float, seed: int, window: int = 8, max_inputs: int = 3) -> Graph:
    """A random DAG of Relu/Add/Sum (supported) and TopK (no rule) nodes over float32[4] values."""
    rnd = random.Random(seed)
    g = Graph(f"random{seed}", {"": 17})
    x = g.add_value("x", FLOAT, (4,))
    g.inputs.append(x)
    outs = [x]
    for i in range(n):
        k = rnd.randint(1, max_inputs)
        ins = [outs[max(0, len(outs) - 1 - rnd.randrange(min(window, len(outs))))] for _ in range(k)]
        op = "TopK" if rnd.random() < p_unsupported else {1: "Relu", 2: "Add"}.get(k, "Sum")
        v = g.add_node(op, ins, name=f"n{i}").outputs[0]
        v.dtype, v.shape = FLOAT, (4,)
        outs.append(v)
    g.outputs.append(outs[-1])
    return g


def positions(result: PartitionResult) -> tuple[list[list[int]], list[list[int]]]:
    """(preds by position, clusters as positions) of a partition result."""
    g = result.graph
    pos = {id(nd): i for i, nd in enumerate(g.nodes)}
    preds = [sorted({pos[id(v.producer)] for v in nd.inputs if v is not None and v.producer is not None})
             for nd in g.nodes]
    return preds, [[pos[id(nd)] for nd in c] for c in result.clusters]


def quotient_has_cycle(preds: list[list[int]], clusters: list[list[int]]) -> bool:
    """True if contracting each cluster to one node gives a cyclic graph (independent of cluster.py)."""
    n = len(preds)
    comp = list(range(n))
    for k, c in enumerate(clusters):
        for v in c:
            comp[v] = n + k
    succ: dict[int, set[int]] = {}
    for v, ps in enumerate(preds):
        for p in ps:
            if comp[p] != comp[v]:
                succ.setdefault(comp[p], set()).add(comp[v])
    color: dict[int, int] = {}
    for start in set(comp):
        if start in color:
            continue
        stack = [(start, iter(sorted(succ.get(start, ()))))]
        color[start] = 1
        while stack:
            u, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[u] = 2
                stack.pop()
            elif color.get(nxt) == 1:
                return True
            elif nxt not in color:
                color[nxt] = 1
                stack.append((nxt, iter(sorted(succ.get(nxt, ())))))
    return False


def split_model() -> onnx.ModelProto:
    """x -> Relu -> Mul -> CumSum (no rule) -> Add(., relu) -> Sigmoid -> y: two clusters and a CPU node."""
    nodes = [h.make_node("Relu", ["x"], ["a"], name="relu"),
             h.make_node("Mul", ["a", "two"], ["b"], name="mul"),
             h.make_node("CumSum", ["b", "axis"], ["c"], name="cumsum"),
             h.make_node("Add", ["c", "a"], ["d"], name="add"),
             h.make_node("Sigmoid", ["d"], ["y"], name="sigmoid")]
    g = h.make_graph(nodes, "split", [h.make_tensor_value_info("x", T.FLOAT, [2, 3])],
                     [h.make_tensor_value_info("y", T.FLOAT, [2, 3])],
                     initializer=[nh.from_array(np.array(2, np.float32), "two"),
                                  nh.from_array(np.array(1, np.int64), "axis")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def encoder_model(layers: int = 2, hidden: int = 32, heads: int = 4, ffn: int = 64, seed: int = 0) -> onnx.ModelProto:
    """A BERT-style encoder as exported by PyTorch with decomposed ops (opset 17): per layer, attention with
    Shape->Gather->Unsqueeze->Concat->Reshape head splitting, MatMul+Add projections, Softmax, decomposed
    LayerNorm (ReduceMean, Sub, Pow, Sqrt, Div) and an Erf GELU. Input x[batch, seq, hidden], dynamic dims."""
    rng = np.random.default_rng(seed)
    nodes: list = []
    inits: list = []
    counter = [0]

    def name(base: str) -> str:
        counter[0] += 1
        return f"{base}_{counter[0]}"

    def const(arr: np.ndarray, base: str = "c") -> str:
        n = name(base)
        inits.append(nh.from_array(arr, n))
        return n

    def op(op_type: str, ins: list[str], **attrs: Any) -> str:
        out = name(op_type.lower())
        nodes.append(h.make_node(op_type, ins, [out], name=name(op_type), **attrs))
        return out

    def linear(x: str, n_in: int, n_out: int) -> str:
        w = const((rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32), "w")
        b = const((rng.standard_normal(n_out) * 0.1).astype(np.float32), "b")
        return op("Add", [op("MatMul", [x, w]), b])

    def layer_norm(x: str) -> str:
        mean = op("ReduceMean", [x], axes=[-1])
        d = op("Sub", [x, mean])
        var = op("ReduceMean", [op("Pow", [d, const(np.array(2.0, np.float32))])], axes=[-1])
        std = op("Sqrt", [op("Add", [var, const(np.array(1e-12, np.float32))])])
        y = op("Div", [d, std])
        return op("Add", [op("Mul", [y, const(np.ones(hidden, np.float32))]), const(np.zeros(hidden, np.float32))])

    def dim(x: str, i: int) -> str:
        return op("Unsqueeze", [op("Gather", [op("Shape", [x]), const(np.array(i, np.int64))], axis=0),
                                const(np.array([0], np.int64))])

    x = "x"
    head = hidden // heads
    for _ in range(layers):
        b, s = dim(x, 0), dim(x, 1)
        split_shape = op("Concat", [b, s, const(np.array([heads, head], np.int64))], axis=0)
        q, k, v = (op("Transpose", [op("Reshape", [linear(x, hidden, hidden), split_shape])], perm=[0, 2, 1, 3])
                   for _ in range(3))
        kt = op("Transpose", [k], perm=[0, 1, 3, 2])
        scores = op("Div", [op("MatMul", [q, kt]), const(np.array(np.sqrt(head), np.float32))])
        ctx = op("Transpose", [op("MatMul", [op("Softmax", [scores], axis=-1), v])], perm=[0, 2, 1, 3])
        merged = op("Reshape", [ctx, op("Concat", [b, s, const(np.array([hidden], np.int64))], axis=0)])
        x = layer_norm(op("Add", [linear(merged, hidden, hidden), x]))
        hdn = linear(x, hidden, ffn)
        gelu = op("Mul", [op("Mul", [hdn, op("Add", [op("Erf", [op("Div", [hdn, const(np.array(np.sqrt(2.0),
                                                                                              np.float32))])]),
                                                      const(np.array(1.0, np.float32))])]),
                          const(np.array(0.5, np.float32))])
        x = layer_norm(op("Add", [linear(gelu, ffn, hidden), x]))
    nodes.append(h.make_node("Identity", [x], ["y"], name="output"))
    g = h.make_graph(nodes, "encoder", [h.make_tensor_value_info("x", T.FLOAT, ["batch", "seq", hidden])],
                     [h.make_tensor_value_info("y", T.FLOAT, ["batch", "seq", hidden])], initializer=inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    return m
