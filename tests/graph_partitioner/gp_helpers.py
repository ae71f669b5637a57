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
