"""canonicalize_pointwise: every elementwise ONNX node -> one ep_trtpy::Pointwise node.

Math: an elementwise op computes y[i] = f(x_0[b_0(i)], ..., x_n[b_n(i)]) with numpy broadcasting b_k; the same f
is a pointwise program (ep_trtpy/ops/pointwise_program.py) whose registers are loaded from the broadcast inputs.
``pointwise_ops.program_for_node`` gives the program and which node inputs it reads (constant Clip bounds become
immediates and are dropped from the inputs).

Match: a node of an op in ``pointwise_ops.ELEMENTWISE_OPS`` whose program exists (supported dtypes), with static
output shapes.

Refusal: an elementwise node with an operand type the Pointwise kernel does not load (e.g. float64, int8); it stays
an ONNX node, and the reason names the value.

Rewrite: ``Pointwise(inputs...)`` with attribute ``program`` (JSON), producing the node's outputs.
"""

from __future__ import annotations

from ep_trtpy.builder.passes._patterns import DOMAIN, replace_nodes
from ep_trtpy.builder.pipeline import PassContext
from ep_trtpy.ops import pointwise_ops
from graph_partitioner.ir import Graph, Node, dtype_name

NAME = "canonicalize_pointwise"


def pointwise_node(graph: Graph, node: Node) -> Node | None:
    """Replace one elementwise node by a Pointwise node (None when it has no program)."""
    found = pointwise_ops.program_for_node(node)
    if found is None:
        return None
    prog, idx = found
    prog.validate()
    ins = [node.inputs[i] for i in idx]
    return replace_nodes(graph, [node], "Pointwise", ins, list(node.outputs), {"program": prog.to_json()},
                         domain=DOMAIN, name=node.name)


def run(graph: Graph, ctx: PassContext) -> bool:
    changed = False
    for node in list(graph.nodes):
        if node.domain not in ("", "ai.onnx") or node.op_type not in pointwise_ops.ELEMENTWISE_OPS:
            continue
        new = pointwise_node(graph, node)
        if new is None:
            bad = [v for v in list(node.inputs) + list(node.outputs)
                   if v is not None and v.dtype not in pointwise_ops.IO_TYPES]
            what = f"'{bad[0].name}' is {dtype_name(bad[0].dtype)}" if bad else "its attributes are not supported"
            ctx.refuse(f"{node.op_type} '{node.name}' stays an ONNX node: {what}")
            continue
        ctx.record_fusion(new.name, [node])
        changed = True
    return changed
