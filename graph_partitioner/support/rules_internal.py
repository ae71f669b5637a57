"""Support rules: internal ops made by our own passes (domain "ep_trtpy"), so that a graph rewritten by the builder
still partitions. The full checks of a pointwise program live with its spec (ep_trtpy/ops/pointwise_program.py);
here only what the partitioner can check without it."""

from __future__ import annotations

import json

from graph_partitioner.ir import BOOL, FLOAT, FLOAT16, INT32, INT64, Node
from graph_partitioner.support import common
from graph_partitioner.support.registry import FLOATS, SupportContext, rule

POINTWISE_IO = frozenset({FLOAT, FLOAT16, INT32, INT64, BOOL})
MAX_POINTWISE_OUTPUTS = 8


@rule("ep_trtpy::Pointwise", dtypes=POINTWISE_IO)
def pointwise(node: Node, ctx: SupportContext) -> str | None:
    """A fused elementwise program (JSON attribute 'program'); inputs broadcast to the output shape."""
    program = node.attr("program")
    if not isinstance(program, str):
        return "ep_trtpy::Pointwise has no 'program' attribute"
    try:
        doc = json.loads(program)
    except ValueError as e:
        return f"ep_trtpy::Pointwise program is not valid JSON ({e})"
    if not isinstance(doc, dict) or doc.get("compute") not in ("float", "int64") or "code" not in doc:
        return "ep_trtpy::Pointwise program lacks 'compute' (float or int64) or 'code'"
    n_in = sum(1 for v in node.inputs if v is not None)
    if not 0 < n_in <= common.MAX_POINTWISE_INPUTS:
        return f"ep_trtpy::Pointwise with {n_in} inputs is outside 1..{common.MAX_POINTWISE_INPUTS}"
    if not 0 < len(node.outputs) <= MAX_POINTWISE_OUTPUTS:
        return f"ep_trtpy::Pointwise with {len(node.outputs)} outputs is outside 1..{MAX_POINTWISE_OUTPUTS}"
    return None


@rule("ep_trtpy::FusedConv", dtypes=FLOATS)
def fused_conv(node: Node, ctx: SupportContext) -> str | None:
    """Y = act(conv(X, W) + B + Z); explicit pads; activation '' or 'Relu'."""
    from graph_partitioner.support.rules_linalg import spatial_dims, window_attrs

    if why := common.attr_in(node, "activation", "", ("", "Relu"), "'' and 'Relu' are"):
        return why
    return window_attrs(node, spatial_dims(node, node.input(0), node.input(1)))


@rule("ep_trtpy::FusedMatMul", dtypes=FLOATS)
def fused_matmul(node: Node, ctx: SupportContext) -> str | None:
    """Y = act(alpha * op(A) @ op(B) + bias); activation '', 'Relu', 'Gelu' or 'GeluTanh'."""
    for name in ("transA", "transB"):
        if why := common.flag(node, name):
            return why
    return common.attr_in(node, "activation", "", ("", "Relu", "Gelu", "GeluTanh"),
                          "'', 'Relu', 'Gelu' and 'GeluTanh' are")
