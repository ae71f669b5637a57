"""Support rules: data movement (any 1/2/4/8-byte element type unless said)."""

from __future__ import annotations

import numpy as np

from graph_partitioner.ir import BOOL, INT32, INT64, Node
from graph_partitioner.support import common
from graph_partitioner.support.registry import ANY_FIXED, SupportContext, rule

INDEX_TYPES = frozenset({INT32, INT64})


@rule("Reshape", dtypes=ANY_FIXED, exempt_inputs=(1,))
def reshape(node: Node, ctx: SupportContext) -> str | None:
    """shape computable at build time (0 copies a dim unless allowzero=1; -1 inferred); allowzero."""
    if common.version(node, ctx) < 5:
        return None if isinstance(node.attr("shape"), list) else "Reshape-1 has no 'shape' attribute"
    if node.input(1) is None:
        return "Reshape has no shape input"
    if why := common.computable_input(node, 1, ctx, "shape"):
        return why
    return common.flag(node, "allowzero")


@rule("Flatten", dtypes=ANY_FIXED)
def flatten(node: Node, ctx: SupportContext) -> str | None:
    """axis in [-r, r]."""
    return common.check_axis(node, node.attr("axis", 1), common.rank(node.input(0)), allow_end=True)


@rule("Squeeze", dtypes=ANY_FIXED, exempt_inputs=(1,))
def squeeze(node: Node, ctx: SupportContext) -> str | None:
    """axes attribute (before opset 13) or axes input computable at build time (13+); no axes: all 1-dims."""
    return _squeeze_like(node, ctx, required=False)


@rule("Unsqueeze", dtypes=ANY_FIXED, exempt_inputs=(1,))
def unsqueeze(node: Node, ctx: SupportContext) -> str | None:
    """axes attribute (before opset 13) or axes input computable at build time (13+)."""
    return _squeeze_like(node, ctx, required=True)


def _squeeze_like(node: Node, ctx: SupportContext, required: bool) -> str | None:
    ver = common.version(node, ctx)
    r = common.rank(node.input(0))
    if node.op_type == "Unsqueeze" and r is not None:
        axes_len = None
        if ver >= 13 and (a := common.const_array(node.input(1))) is not None:
            axes_len = a.size
        elif ver < 13 and isinstance(node.attr("axes"), list):
            axes_len = len(node.attr("axes"))
        r = None if axes_len is None else r + axes_len
    if ver >= 13:
        if "axes" in node.attrs:
            return f"{node.op_type}-{ver} takes axes as an input; an 'axes' attribute is not valid at this opset"
        if required and node.input(1) is None:
            return f"{node.op_type} has no axes input"
        if why := common.computable_input(node, 1, ctx, "axes"):
            return why
        axes = common.const_array(node.input(1))
        return None if axes is None else common.check_axes(node, axes.reshape(-1).tolist(), r)
    if node.input(1) is not None:
        return f"{node.op_type}-{ver} takes axes as an attribute; a second input is not valid at this opset"
    axes_attr = node.attr("axes")
    if axes_attr is None:
        return f"{node.op_type} has no axes attribute" if required else None
    return common.ints_attr(node, "axes", None) or common.check_axes(node, axes_attr, r)


@rule("Identity", dtypes=ANY_FIXED)
def identity(node: Node, ctx: SupportContext) -> str | None:
    """Tensor copy (removed by the canonicalization pass); refused when the input's type is unknown, since
    opset 14 Identity also passes sequences and optionals, which engines do not take."""
    x = node.input(0)
    if x is not None and x.dtype is None and x.const is None:
        return (f"Identity input '{x.name}' has an unknown type (it may be a sequence or an optional); only "
                f"tensors are claimed")
    return None


@rule("Dropout", dtypes=ANY_FIXED, exempt_inputs=(1, 2), exempt_outputs=(1,))
def dropout(node: Node, ctx: SupportContext) -> str | None:
    """Inference only: ratio and training_mode inputs constant, training_mode false; the mask output unused."""
    ver = common.version(node, ctx)
    if ver < 7 and node.attr("is_test", 0) != 1:
        return f"Dropout-{ver} without is_test=1 runs in training mode, which is not supported"
    if ver >= 12:
        if why := common.const_input(node, 1, "ratio"):
            return why
        if why := common.const_input(node, 2, "training_mode"):
            return why
        t = common.const_array(node.input(2))
        if t is not None and t.size and bool(np.asarray(t).reshape(-1)[0]):
            return f"Dropout training_mode input '{node.inputs[2].name}' is true; only inference is supported"
    if why := common.dtype_in(node, node.outputs[1] if len(node.outputs) > 1 else None, {BOOL}, "mask output"):
        return why
    return common.unused_output(node, 1, ctx, "mask", "only the output is supported (inference)")


@rule("Transpose", dtypes=ANY_FIXED)
def transpose(node: Node, ctx: SupportContext) -> str | None:
    """perm (default: reverse the dims)."""
    perm = node.attr("perm")
    if perm is None:
        return None
    r = common.rank(node.input(0))
    if why := common.ints_attr(node, "perm", r):
        return why
    if sorted(perm) != list(range(len(perm))):
        return f"Transpose perm={perm} is not a permutation of 0..{len(perm) - 1}"
    return None


@rule("Concat", dtypes=ANY_FIXED)
def concat(node: Node, ctx: SupportContext) -> str | None:
    """axis (negative allowed); any number of inputs, zero-size ones included."""
    if "axis" not in node.attrs:
        return "Concat has no axis attribute"
    if not any(v is not None for v in node.inputs):
        return "Concat node has no inputs"
    ranks = {common.rank(v) for v in node.inputs if v is not None} - {None}
    return common.check_axis(node, node.attr("axis"), min(ranks) if ranks else None)


@rule("Split", dtypes=ANY_FIXED, exempt_inputs=(1,))
def split(node: Node, ctx: SupportContext) -> str | None:
    """axis; split attribute (before opset 13) or split input computable at build time (13+); num_outputs (18+);
    neither: equal parts."""
    ver = common.version(node, ctx)
    x = node.input(0)
    if why := common.check_axis(node, node.attr("axis", 0), common.rank(x)):
        return why
    sizes: list[int] | None = None
    if ver >= 13:
        if "split" in node.attrs:
            return f"Split-{ver} takes split as an input; a 'split' attribute is not valid at this opset"
        if why := common.computable_input(node, 1, ctx, "split"):
            return why
        if (arr := common.const_array(node.input(1))) is not None:
            sizes = [int(s) for s in arr.reshape(-1)]
    else:
        if node.input(1) is not None:
            return f"Split-{ver} takes split as an attribute; a second input is not valid at this opset"
        if (why := common.ints_attr(node, "split", None, 0)):
            return why
        sizes = node.attr("split")
    if "num_outputs" in node.attrs:
        if ver < 18:
            return f"Split-{ver} has no num_outputs attribute (it came with opset 18)"
        if node.input(1) is not None:
            return "Split has both a split input and num_outputs; ONNX allows only one"
        n = node.attr("num_outputs")
        if n != len(node.outputs):
            return f"Split num_outputs={n!r} but the node has {len(node.outputs)} outputs"
    if sizes is not None:
        if len(sizes) != len(node.outputs):
            return f"Split sizes {sizes} give {len(sizes)} parts but the node has {len(node.outputs)} outputs"
        if any(s < 0 for s in sizes):
            return f"Split sizes {sizes} include a negative size"
    return None


@rule("Slice", dtypes=ANY_FIXED, exempt_inputs=(1, 2, 3, 4))
def slice_(node: Node, ctx: SupportContext) -> str | None:
    """starts/ends/axes/steps computable at build time (attributes before opset 10); negative steps."""
    if common.version(node, ctx) < 10:
        if not isinstance(node.attr("starts"), list) or not isinstance(node.attr("ends"), list):
            return "Slice-1 needs starts and ends attributes"
        return None
    if node.input(1) is None or node.input(2) is None:
        return "Slice needs starts and ends inputs"
    for i, what in ((1, "starts"), (2, "ends"), (3, "axes"), (4, "steps")):
        if why := common.computable_input(node, i, ctx, what):
            return why
    steps = common.const_array(node.input(4))
    if steps is not None and np.any(steps == 0):
        return f"Slice steps input '{node.inputs[4].name}' contains 0, which is not a valid step"
    return None


@rule("Gather", dtypes=ANY_FIXED, exempt_inputs=(1,))
def gather(node: Node, ctx: SupportContext) -> str | None:
    """axis; indices int32/int64, runtime or constant, negative allowed."""
    if why := common.dtype_in(node, node.input(1), INDEX_TYPES, "indices"):
        return why
    return common.check_axis(node, node.attr("axis", 0), common.rank(node.input(0)))


MAX_GATHER_ELEMENTS_RANK = 8
"""Rank limit of the ``gather_elements`` kernel (cuda_kernels/kernels/movement.h kMaxGatherRank)."""


@rule("GatherElements", dtypes=ANY_FIXED, exempt_inputs=(1,))
def gather_elements(node: Node, ctx: SupportContext) -> str | None:
    """axis; indices int32/int64 of the data's rank, runtime or constant, negative allowed; rank up to 8."""
    if why := common.dtype_in(node, node.input(1), INDEX_TYPES, "indices"):
        return why
    r = common.rank(node.input(0))
    if r is not None and r > MAX_GATHER_ELEMENTS_RANK:
        return (f"GatherElements data '{node.inputs[0].name}' has rank {r}; the kernel takes up to "
                f"{MAX_GATHER_ELEMENTS_RANK}")
    return common.check_axis(node, node.attr("axis", 0), r)


@rule("GatherND", dtypes=ANY_FIXED, exempt_inputs=(1,))
def gather_nd(node: Node, ctx: SupportContext) -> str | None:
    """batch_dims; int64 indices computable at build time (they become rows of a gather)."""
    if why := common.dtype_in(node, node.input(1), {INT64}, "indices"):
        return why
    b, r, q = node.attr("batch_dims", 0), common.rank(node.input(0)), common.rank(node.input(1))
    if not isinstance(b, int) or b < 0 or (r is not None and q is not None and b >= min(r, q)):
        return f"GatherND batch_dims={b!r} must be an integer in [0, min(rank(data), rank(indices)))"
    return common.computable_input(node, 1, ctx, "indices")


@rule("Expand", dtypes=ANY_FIXED, exempt_inputs=(1,))
def expand(node: Node, ctx: SupportContext) -> str | None:
    """shape computable at build time (bidirectional broadcast)."""
    if node.input(1) is None:
        return "Expand has no shape input"
    return common.computable_input(node, 1, ctx, "shape")


@rule("Tile", dtypes=ANY_FIXED, exempt_inputs=(1,))
def tile(node: Node, ctx: SupportContext) -> str | None:
    """repeats computable at build time."""
    if node.input(1) is None:
        return "Tile has no repeats input"
    return common.computable_input(node, 1, ctx, "repeats")


PAD_MODES = ("constant", "reflect", "edge")


@rule("Pad", dtypes=ANY_FIXED, exempt_inputs=(1, 3))
def pad(node: Node, ctx: SupportContext) -> str | None:
    """modes constant, reflect, edge ('wrap' refused); pads/axes computable at build time (pads attribute before
    opset 11); constant_value a constant scalar."""
    ver = common.version(node, ctx)
    if why := common.attr_in(node, "mode", "constant", PAD_MODES, "constant, reflect and edge are"):
        return why
    if ver < 11:
        if not isinstance(node.attr("pads"), list):
            return f"Pad-{ver} has no pads attribute"
        return common.ints_attr(node, "pads", None if (r := common.rank(node.input(0))) is None else 2 * r)
    if node.input(1) is None:
        return "Pad has no pads input"
    if why := common.computable_input(node, 1, ctx, "pads"):
        return why
    if why := common.computable_input(node, 3, ctx, "axes"):
        return why
    cv = node.input(2)
    if cv is not None:
        if cv.const is None:
            return f"Pad constant_value input '{cv.name}' must be a constant"
        if cv.const.size > 1:
            return f"Pad constant_value input '{cv.name}' has {cv.const.size} elements; a scalar is needed"
    return None
