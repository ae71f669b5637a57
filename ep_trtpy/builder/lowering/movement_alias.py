"""Lowering of the zero-copy movement ops: Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout (inference).

Each of these keeps the bytes of its input in the same order, so the output becomes a view of the input
(``LowerCtx.alias``: an ``alias`` tensor at byte offset 0, no layer). Where the output must live in a graph-output
buffer (or already has a home), ``LowerCtx.alias`` emits a copy instead, with the ``memcpy`` kernel:

``memcpy`` (kernels_memcpy.cpp)
    inputs  [src]    outputs [dst]    ints [nbytes]    floats []
    copies the first nbytes of src to the start of dst (device to device, on the engine's stream).

The output shape comes from the (static) IR; shape inputs and attributes (``shape``, ``allowzero``, ``axes``,
``axis``) were already applied by shape inference, so only the element count and dtype are checked here.
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.builder.lowering import LowerCtx, LoweringError, lowering
from graph_partitioner.ir import Node, dtype_name


@lowering("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout")
def lower_view(ctx: LowerCtx, node: Node) -> None:
    """Y = X with a new static shape, as a view of X's bytes."""
    src = node.input(0)
    out = node.outputs[0]
    if src is None:
        raise LoweringError(f"node '{node.name}' ({node.key}) has no data input")
    if node.op_type == "Dropout" and len(node.outputs) > 1:
        mask = node.outputs[1]
        if mask.consumers or any(v is mask for v in ctx.graph.outputs):
            raise LoweringError(f"node '{node.name}' (Dropout): the mask output '{mask.name}' is used; only the "
                                "inference form (data output only) is lowered")
    for v in (src, out):
        if v.shape is None or not all(isinstance(d, int) for d in v.shape):
            raise LoweringError(f"node '{node.name}' ({node.key}): value '{v.name}' has no static shape")
    if src.dtype != out.dtype:
        raise LoweringError(f"node '{node.name}' ({node.key}): output '{out.name}' is {dtype_name(out.dtype)}, "
                            f"input '{src.name}' is {dtype_name(src.dtype)}")
    n_in = int(np.prod(src.shape, dtype=np.int64))
    n_out = int(np.prod(out.shape, dtype=np.int64))
    if n_in != n_out:
        raise LoweringError(f"node '{node.name}' ({node.key}): output '{out.name}' {list(out.shape)} has {n_out} "
                            f"elements, input '{src.name}' {list(src.shape)} has {n_in}")
    ctx.alias(out, src)
