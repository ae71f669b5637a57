"""Lowering of the pure views Reshape, Flatten, Squeeze, Unsqueeze, Identity and inference Dropout: the output is
the input's bytes with a new static shape (``LowerCtx.alias``: no layer; a ``memcpy`` only where the output must
fill a graph-output buffer). When the input is known at build time (a constant, or a Shape/Gather/Concat... chain
that the passes did not fold), the output is recorded as a build-time constant too (``LowerCtx.constant``), so
later lowerings that need constant operands (Slice starts, Pad pads, Resize sizes, ...) still find them.
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.builder.lowering import LowerCtx, LoweringError, lowering
from ep_trtpy.builder.lowering._util import SMALL_CONST, const_input, numel, shape_of
from graph_partitioner.ir import Node


# ----------------------------------------------------------------------------------------------------- views --
@lowering("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")
def lower_view(ctx: LowerCtx, node: Node) -> None:
    """Same bytes, new shape: a view of the input (a copy only when the output must be a graph-output buffer)."""
    x, y = node.inputs[0], node.outputs[0]
    if x is None:
        raise LoweringError(f"node '{node.name}' ({node.op_type}) has no data input")
    if numel(shape_of(x)) != numel(shape_of(y)):
        raise LoweringError(f"node '{node.name}' ({node.op_type}): input '{x.name}' {list(shape_of(x))} and output "
                            f"'{y.name}' {list(shape_of(y))} differ in element count")
    c = ctx.const_value(x)
    if c is not None:
        arr = np.asarray(c).reshape(shape_of(y))
        if arr.size <= SMALL_CONST:
            ctx.constant(y, arr)
            return
        ctx.consts[id(y)] = arr
    ctx.alias(y, x)


@lowering("Dropout")
def lower_dropout(ctx: LowerCtx, node: Node) -> None:
    """Inference Dropout is the identity (the mask output must be unused)."""
    if len(node.outputs) > 1 and (node.outputs[1].consumers or ctx.graph.is_graph_output(node.outputs[1])):
        raise LoweringError(f"node '{node.name}' (Dropout): the mask output is used; only inference is lowered")
    training = const_input(ctx, node, 2, "training_mode")
    if training is not None and bool(np.asarray(training).reshape(-1)[0]):
        raise LoweringError(f"node '{node.name}' (Dropout): training_mode is true; only inference is lowered")
    x, y = node.inputs[0], node.outputs[0]
    assert x is not None
    ctx.alias(y, x)
