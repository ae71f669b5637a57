"""eliminate_identities: remove nodes that return their input unchanged.

Math: y = x for Identity; for Dropout at inference (training_mode false: y = x, the mask is not computed); for
Cast to x's own type; for Reshape / Flatten / Squeeze / Unsqueeze / Expand / Tile whose output has x's shape
(the row-major element order is the same, so the data is identical); for Transpose whose permutation keeps every
axis of size > 1 in order and whose output shape equals x's (memory order unchanged); for Concat of one input;
for Pad with all-zero pads.

Match: one of the above with the output's dtype and static shape equal to the input's.

Refusal: Dropout whose mask output is used, or whose training_mode is not a constant false; the reason names
the value.

Rewrite: every use of y (including graph-output slots, which are positional) now reads x; the node is removed.
A graph output may thereby become a graph input or a constant, which the lowering copies.
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.builder.pipeline import PassContext
from graph_partitioner.ir import Graph, Node, Value

NAME = "eliminate_identities"

SHAPE_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Expand", "Tile")


def _same(x: Value | None, y: Value) -> bool:
    return x is not None and x.dtype == y.dtype and x.shape is not None and x.shape == y.shape and \
        all(isinstance(d, int) for d in x.shape)


def _unused(graph: Graph, v: Value) -> bool:
    return not v.consumers and not graph.is_graph_output(v)


def _transpose_is_identity(node: Node, x: Value, y: Value) -> bool:
    if not _same(x, y):
        return False
    rank = len(x.shape)  # type: ignore[arg-type]
    perm = node.attr("perm", list(reversed(range(rank))))
    big = [p for p in perm if x.shape[p] != 1]  # type: ignore[index]
    return big == sorted(big)


def _identity_input(graph: Graph, node: Node, ctx: PassContext) -> Value | None:
    """The input this node merely forwards, or None."""
    if node.domain not in ("", "ai.onnx") or not node.outputs:
        return None
    op, x, y = node.op_type, node.input(0), node.outputs[0]
    if op == "Identity":
        return x if x is not None and x.dtype == y.dtype else None
    if op == "Dropout":
        if any(not _unused(graph, v) for v in node.outputs[1:]):
            ctx.refuse(f"Dropout '{node.name}' is kept: its mask output '{node.outputs[1].name}' is used")
            return None
        tm = node.input(2)
        if tm is not None and (tm.const is None or bool(np.asarray(tm.const).reshape(-1)[0])):
            ctx.refuse(f"Dropout '{node.name}' is kept: training_mode '{tm.name}' is not a constant false")
            return None
        return x if _same(x, y) else None
    if op == "Cast":
        return x if _same(x, y) else None
    if op in SHAPE_OPS:
        return x if _same(x, y) else None
    if op == "Transpose":
        return x if x is not None and _transpose_is_identity(node, x, y) else None
    if op == "Concat":
        present = [v for v in node.inputs if v is not None]
        return present[0] if len(present) == 1 and _same(present[0], y) else None
    if op == "Pad":
        pads = node.attr("pads")
        p = node.input(1)
        if pads is None and p is not None and p.const is not None:
            pads = np.asarray(p.const).reshape(-1).tolist()
        if pads is not None and all(int(v) == 0 for v in pads):
            return x if _same(x, y) else None
    return None


def run(graph: Graph, ctx: PassContext) -> bool:
    changed = False
    for node in list(graph.nodes):
        x = _identity_input(graph, node, ctx)
        if x is None:
            continue
        y = node.outputs[0]
        graph.replace_all_uses(y, x)
        graph.remove_node(node)
        changed = True
    return changed
