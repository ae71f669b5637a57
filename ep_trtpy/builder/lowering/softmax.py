"""Lowering of Softmax and LogSoftmax onto the ``softmax`` kernel (cuda_kernels/runtime/kernels_norm.cpp)::

    softmax   inputs [X] outputs [Y]   ints [log, outer, R, inner]
              X read as [outer, R, inner]; normalizes over R; log: 0 = Softmax, 1 = LogSoftmax

Opset >= 13: over the single axis `axis` (default -1): outer = prod(dims before), R = dims[axis], inner =
prod(dims after). Opset < 13: the input is coerced to 2-D at `axis` (default 1) and normalized over the second
dim: outer = prod(dims[:axis]), R = prod(dims[axis:]), inner = 1 (a reshape, no data moves).
"""

from __future__ import annotations

from ep_trtpy.builder.lowering import LowerCtx, lowering
from ep_trtpy.builder.lowering._util import FLOATS, check_dtype, check_out_shape, normalize_axis, numel, shape_of
from graph_partitioner.ir import Node


def op_version(ctx: LowerCtx, node: Node) -> int:
    """The node's opset version (its schema's since_version when known, else the graph's default opset)."""
    if node.since_version is not None:
        return int(node.since_version)
    return int(ctx.graph.opsets.get(node.domain or "", ctx.graph.opsets.get("", 17)))


@lowering("Softmax", "LogSoftmax")
def lower_softmax(ctx: LowerCtx, node: Node) -> None:
    """Softmax / LogSoftmax (either opset semantics)."""
    x, y = node.inputs[0], node.outputs[0]
    assert x is not None
    xs = shape_of(x)
    check_dtype(node, x, FLOATS, "input")
    check_out_shape(node, y, xs)
    log = 1 if node.op_type == "LogSoftmax" else 0
    rank = len(xs)
    if op_version(ctx, node) < 13:
        axis = normalize_axis(node.attr("axis", 1), max(rank, 1), node) if rank else 0
        outer, r, inner = numel(xs[:axis]), numel(xs[axis:]), 1
    elif rank == 0:
        outer, r, inner = 1, 1, 1
    else:
        axis = normalize_axis(node.attr("axis", -1), rank, node)
        outer, r, inner = numel(xs[:axis]), xs[axis], numel(xs[axis + 1:])
    ctx.emit("softmax", [ctx.tensor(x)], [ctx.tensor(y)], ints=[log, outer, r, inner], name=node.name)
