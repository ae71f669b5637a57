"""Support rules: pooling, windowed (MaxPool, AveragePool) and global (GlobalAveragePool, GlobalMaxPool)."""

from __future__ import annotations

from graph_partitioner.ir import INT64, Node
from graph_partitioner.support import common
from graph_partitioner.support.registry import FLOATS, SupportContext, rule
from graph_partitioner.support.rules_linalg import window_attrs


def _pool(node: Node, ctx: SupportContext) -> str | None:
    ks = node.attr("kernel_shape")
    if not isinstance(ks, list) or not ks:
        return f"{node.op_type} has no kernel_shape attribute"
    k = len(ks)
    r = common.rank(node.input(0))
    if r is not None and r != k + 2:
        return (f"{node.op_type} input '{node.inputs[0].name}' has rank {r} but kernel_shape {ks} has {k} spatial "
                f"dims")
    if why := window_attrs(node, k):
        return why
    return common.flag(node, "ceil_mode")


@rule("MaxPool", dtypes=FLOATS, exempt_outputs=(1,))
def max_pool(node: Node, ctx: SupportContext) -> str | None:
    """1-D/2-D/3-D; kernel_shape, strides, pads, dilations, ceil_mode, auto_pad; storage_order 0; the Indices
    output must be unused."""
    if why := _pool(node, ctx):
        return why
    if node.attr("storage_order", 0) != 0:
        return f"MaxPool storage_order={node.attr('storage_order')!r} is not supported (only 0, row major, is)"
    if why := common.dtype_in(node, node.outputs[1] if len(node.outputs) > 1 else None, {INT64}, "Indices output"):
        return why
    return common.unused_output(node, 1, ctx, "Indices", "only the pooled output Y is supported")


@rule("AveragePool", dtypes=FLOATS)
def average_pool(node: Node, ctx: SupportContext) -> str | None:
    """1-D/2-D/3-D; count_include_pad; ceil_mode; pads; auto_pad; strides; dilations."""
    if why := _pool(node, ctx):
        return why
    return common.flag(node, "count_include_pad")


@rule("GlobalAveragePool", dtypes=FLOATS)
@rule("GlobalMaxPool", dtypes=FLOATS)
def global_pool(node: Node, ctx: SupportContext) -> str | None:
    """Input rank >= 3 (N, C, spatial dims); reduces all spatial dims."""
    r = common.rank(node.input(0))
    if r is not None and r < 3:
        return f"{node.op_type} input '{node.inputs[0].name}' has rank {r}; rank >= 3 (N, C, spatial...) is needed"
    return None
