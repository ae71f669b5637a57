"""Support rules: LayerNormalization, Softmax/LogSoftmax, BatchNormalization (inference)."""

from __future__ import annotations

from graph_partitioner.support import common
from graph_partitioner.ir import Node
from graph_partitioner.support.registry import FLOATS, SupportContext, rule


@rule("LayerNormalization", dtypes=FLOATS, exempt_outputs=(1, 2))
def layer_normalization(node: Node, ctx: SupportContext) -> str | None:
    """Normalizes axis..last (any axis); epsilon; stash_type 1; accumulates in float32. Outputs Mean and InvStdDev
    must be unused."""
    if why := common.check_axis(node, node.attr("axis", -1), common.rank(node.input(0))):
        return why
    if node.attr("stash_type", 1) != 1:
        return (f"LayerNormalization stash_type={node.attr('stash_type')!r} is not supported (only 1, float32 "
                f"statistics, is)")
    for i, what in ((1, "Mean"), (2, "InvStdDev")):
        if why := common.unused_output(node, i, ctx, what, "only the normalized output Y is supported"):
            return why
    return None


def _softmax(node: Node, ctx: SupportContext) -> str | None:
    ver = common.version(node, ctx)
    default = -1 if ver >= 13 else 1
    return common.check_axis(node, node.attr("axis", default), common.rank(node.input(0)))


for _op in ("Softmax", "LogSoftmax"):

    def _fn(node: Node, ctx: SupportContext) -> str | None:
        return _softmax(node, ctx)

    _fn.__doc__ = ("Any axis: opset 13+ normalizes along that one axis; before 13 the input is coerced to 2-D at "
                   "axis (default 1) and each row normalized.")
    _fn.__name__ = f"rule_{_op}"
    rule(_op, dtypes=FLOATS)(_fn)


@rule("BatchNormalization", dtypes=FLOATS)
def batch_normalization(node: Node, ctx: SupportContext) -> str | None:
    """Inference only (training_mode 0, outputs beyond Y unused); folded into a preceding Conv or rewritten to
    x*scale+shift."""
    if node.attr("training_mode", 0) != 0:
        return (f"BatchNormalization training_mode={node.attr('training_mode')!r} is not supported (inference "
                f"only)")
    if node.attr("spatial", 1) != 1:
        return "BatchNormalization spatial=0 (per-activation statistics) is not supported"
    for i, what in ((1, "running mean"), (2, "running var"), (3, "saved mean"), (4, "saved var")):
        if why := common.unused_output(node, i, ctx, what, "only the normalized output Y is supported "
                                       "(inference)"):
            return why
    return None
