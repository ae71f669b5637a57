"""Support rules: reductions (kernel "reduce" over [outer, R, inner]) and ArgMax/ArgMin (global pooling is in
rules_pooling.py)."""

from __future__ import annotations

from graph_partitioner.ir import INT64, Node
from graph_partitioner.support import common
from graph_partitioner.support.registry import FLOATS, NUMERIC, SupportContext, rule

FLOAT_ONLY_REDUCE = ("ReduceMean", "ReduceL2", "ReduceL1", "ReduceSumSquare", "ReduceLogSumExp")
NUMERIC_REDUCE = ("ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd")


def axes_input_since(op: str) -> int:
    """The op version from which axes is an input rather than an attribute."""
    return 13 if op == "ReduceSum" else 18


def _reduce(node: Node, ctx: SupportContext) -> str | None:
    ver = common.version(node, ctx)
    since = axes_input_since(node.op_type)
    x = node.input(0)
    if ver >= since:
        if "axes" in node.attrs:
            return (f"{node.op_type}-{ver} takes axes as an input; an 'axes' attribute is not valid at this "
                    f"opset")
        if why := common.computable_input(node, 1, ctx, "axes"):
            return why
        axes = common.const_array(node.input(1))
        if axes is not None and (why := common.check_axes(node, axes.reshape(-1).tolist(), common.rank(x))):
            return why
        if why := common.flag(node, "noop_with_empty_axes"):
            return why
    else:
        if node.input(1) is not None:
            return (f"{node.op_type}-{ver} takes axes as an attribute; a second input '{node.inputs[1].name}' "
                    f"is not valid at this opset")
        if (axes_attr := node.attr("axes")) is not None:
            if why := common.ints_attr(node, "axes", None):
                return why
            if why := common.check_axes(node, axes_attr, common.rank(x)):
                return why
    return common.flag(node, "keepdims", 1)


_REDUCE_DOC = ("axes attribute (before opset {since}) or axes input (opset {since}+, computable at build time); "
               "keepdims; noop_with_empty_axes. Float types accumulate in float32.")

for _op in FLOAT_ONLY_REDUCE + NUMERIC_REDUCE:

    def _fn(node: Node, ctx: SupportContext) -> str | None:
        return _reduce(node, ctx)

    _fn.__doc__ = _REDUCE_DOC.format(since=axes_input_since(_op))
    _fn.__name__ = f"rule_{_op}"
    rule(_op, dtypes=NUMERIC if _op in NUMERIC_REDUCE else FLOATS,
         exempt_inputs=(1,))(_fn)


def _arg(node: Node, ctx: SupportContext) -> str | None:
    if why := common.dtype_in(node, node.outputs[0] if node.outputs else None, {INT64}, "output"):
        return why
    if why := common.check_axis(node, node.attr("axis", 0), common.rank(node.input(0))):
        return why
    if why := common.flag(node, "keepdims", 1):
        return why
    return common.flag(node, "select_last_index", 0)


for _op in ("ArgMax", "ArgMin"):

    def _afn(node: Node, ctx: SupportContext) -> str | None:
        return _arg(node, ctx)

    _afn.__doc__ = "axis; keepdims; select_last_index; output int64."
    _afn.__name__ = f"rule_{_op}"
    rule(_op, dtypes=NUMERIC, exempt_outputs=(0,))(_afn)
