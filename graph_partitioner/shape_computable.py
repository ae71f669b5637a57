"""Which values can be computed when an engine is built (the "shape-computable" analysis of ops_spec.md).

Engines are built per concrete input shape, so a value that follows from constants and input *shapes* alone folds
to a constant at build time. A value is shape-computable if it is

* a constant (an initializer, or the output of a ``Constant`` node, i.e. any value with ``Value.const``), or
* an output of ``Shape`` or ``Size`` (whatever their input: only its shape is read), or
* an output of an ONNX-domain node whose op is in :data:`SHAPE_OPS` and whose present inputs are all
  shape-computable.

Graph inputs are not (their values arrive at run time). One pass over the nodes in topological order: O(nodes).
Support rules ask through ``SupportContext.shape_computable(value)``; the partitioner additionally makes sure that
the nodes computing such a value end up in the cluster of the node that needs it (see ``partition.py``).
"""

from __future__ import annotations

from graph_partitioner.ir import Graph, Node, Value

SOURCE_OPS = frozenset({"Shape", "Size"})
"""Ops whose outputs are shape-computable whatever their inputs."""

SHAPE_OPS = frozenset({
    "Gather", "Concat", "Unsqueeze", "Squeeze", "Slice", "Cast", "Add", "Sub", "Mul", "Div", "Equal", "Where",
    "ConstantOfShape", "Range", "Expand", "Reshape", "Identity", "Max", "Min", "Neg", "Abs", "Mod", "Less",
    "Greater", "Not", "ReduceProd", "ReduceSum", "Tile", "Transpose", "Flatten", "GatherElements", "GatherND",
})
"""Ops whose outputs are shape-computable when all their present inputs are."""


def _onnx_domain(node: Node) -> bool:
    return node.domain in ("", "ai.onnx")


def node_is_computing(node: Node, computable: set[int]) -> bool:
    """True if `node`'s outputs are shape-computable given the set of ids of computable values."""
    if not _onnx_domain(node):
        return False
    if node.op_type in SOURCE_OPS:
        return True
    if node.op_type == "Constant":
        return all(v.const is not None for v in node.outputs)
    if node.op_type not in SHAPE_OPS:
        return False
    return all(v is None or v.const is not None or id(v) in computable for v in node.inputs)


class ShapeComputable:
    """The analysis over one graph; call it with a value. Recompute after editing the graph."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self._ids: set[int] = set()
        for v in graph.values.values():
            if v.const is not None:
                self._ids.add(id(v))
        for node in graph.nodes:
            if node_is_computing(node, self._ids):
                self._ids.update(id(v) for v in node.outputs)

    def __call__(self, value: object) -> bool:
        if not isinstance(value, Value):
            return False
        return value.const is not None or id(value) in self._ids

    def values(self) -> list[Value]:
        """The shape-computable values that are not plain constants, in graph order (for reports and tests)."""
        out = []
        for node in self.graph.nodes:
            out.extend(v for v in node.outputs if id(v) in self._ids and v.const is None)
        return out
