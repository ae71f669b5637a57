"""Support rules: internal ops made by our own passes (domain "ep_trtpy"), so that a graph rewritten by the builder
still partitions. The full checks of a pointwise program live with its spec (ep_trtpy/ops/pointwise_program.py);
here only what the partitioner can check without it."""

from __future__ import annotations

import json

from graph_partitioner.ir import BFLOAT16, BOOL, FLOAT, FLOAT16, INT32, INT64, Node, dtype_name
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


CONV_ACTIVATIONS = ("", "Relu", "Clip", "Sigmoid", "Silu", "LeakyRelu", "HardSwish", "Tanh")
"""As ep_trtpy.ops.internal.CONV_ACTIVATIONS (a test keeps the two equal; the partitioner imports nothing of
ep_trtpy)."""
RESIDUAL_POSITIONS = ("pre_act", "post_act")
"""As ep_trtpy.ops.internal.RESIDUAL_POSITIONS (kept equal by the same test)."""


def _channels_last(node: Node, rank: int | None) -> str | None:
    if why := common.flag(node, "channels_last"):
        return why
    if node.attr("channels_last", 0) and rank is not None and rank != 4:
        return f"{node.key} channels_last=1 needs a 2-D window (rank-4 input); '{node.inputs[0].name}' has rank {rank}"
    return None


@rule("ep_trtpy::FusedConv", dtypes=FLOATS)
def fused_conv(node: Node, ctx: SupportContext) -> str | None:
    """Y = act(conv(X, W) + B + Z), or act(conv(X, W) + B) + Z with residual_position 'post_act'; explicit pads;
    activation '', 'Relu', 'Clip', 'Sigmoid', 'Silu', 'LeakyRelu', 'HardSwish' or 'Tanh' (act_alpha, act_beta);
    channels_last (2-D: NHWC data, KRSC weights)."""
    from graph_partitioner.support.rules_linalg import spatial_dims, window_attrs

    if why := common.attr_in(node, "activation", "", CONV_ACTIVATIONS, ", ".join(map(repr, CONV_ACTIVATIONS))
                             + " are"):
        return why
    if why := common.attr_in(node, "residual_position", "pre_act", RESIDUAL_POSITIONS,
                             ", ".join(map(repr, RESIDUAL_POSITIONS)) + " are"):
        return why
    if why := _channels_last(node, common.rank(node.input(0))):
        return why
    return window_attrs(node, spatial_dims(node, node.input(0), node.input(1)))


@rule("ep_trtpy::Pool", dtypes=FLOATS)
def pool(node: Node, ctx: SupportContext) -> str | None:
    """Channels-last 2-D MaxPool / AveragePool (mode 'max' or 'average'); X [N, H, W, C]; explicit pads,
    strides, dilations, ceil_mode, count_include_pad."""
    from graph_partitioner.support.rules_linalg import window_attrs

    if why := common.attr_in(node, "mode", "", ("max", "average"), "'max' and 'average' are"):
        return why
    if node.attr("channels_last", 0) != 1:
        return f"ep_trtpy::Pool channels_last={node.attr('channels_last', 0)!r} is not supported (only 1 is)"
    if why := _channels_last(node, common.rank(node.input(0))):
        return why
    if why := common.flag(node, "ceil_mode"):
        return why
    if why := common.flag(node, "count_include_pad"):
        return why
    return window_attrs(node, 2)


@rule("ep_trtpy::FusedMatMul", dtypes=FLOATS)
def fused_matmul(node: Node, ctx: SupportContext) -> str | None:
    """Y = act(alpha * op(A) @ op(B) + bias); activation '', 'Relu', 'Gelu' or 'GeluTanh'."""
    for name in ("transA", "transB"):
        if why := common.flag(node, name):
            return why
    return common.attr_in(node, "activation", "", ("", "Relu", "Gelu", "GeluTanh"),
                          "'', 'Relu', 'Gelu' and 'GeluTanh' are")


@rule("ep_trtpy::AddLayerNorm", dtypes=FLOATS)
def add_layer_norm(node: Node, ctx: SupportContext) -> str | None:
    """Y = LayerNormalization(X + R, scale, bias) (axis, epsilon); optional second output S = X + R; X and R of
    one shape (no broadcasting)."""
    x, r = node.input(0), node.input(1)
    if x is None or r is None or node.input(2) is None:
        return "ep_trtpy::AddLayerNorm needs X, R and scale inputs"
    if x.shape is not None and r.shape is not None and tuple(x.shape) != tuple(r.shape):
        return (f"ep_trtpy::AddLayerNorm inputs '{x.name}' {list(x.shape)} and '{r.name}' {list(r.shape)} differ in "
                f"shape; the fused kernel does not broadcast")
    if len(node.outputs) not in (1, 2):
        return f"ep_trtpy::AddLayerNorm has {len(node.outputs)} outputs; it makes Y and optionally S = X + R"
    return common.check_axis(node, node.attr("axis", -1), common.rank(x))


CAST_TRANSPOSE_DTYPES = ((FLOAT, FLOAT16), (FLOAT, BFLOAT16), (FLOAT16, FLOAT), (BFLOAT16, FLOAT))
"""As ep_trtpy.ops.internal.CAST_TRANSPOSE_DTYPES (a test keeps the two equal)."""


@rule("ep_trtpy::CastTranspose", dtypes=frozenset({FLOAT, FLOAT16, BFLOAT16}))
def cast_transpose(node: Node, ctx: SupportContext) -> str | None:
    """Y = Cast(Transpose(X, perm), to): float32 to or from float16 / bfloat16 (made by fuse_cast_transpose)."""
    x = node.input(0)
    to = node.attr("to", 0)
    if x is not None and x.dtype is not None and (x.dtype, to) not in CAST_TRANSPOSE_DTYPES:
        return (f"ep_trtpy::CastTranspose from {dtype_name(x.dtype)} to {dtype_name(int(to))} is not supported "
                f"(float32 to or from float16 / bfloat16)")
    perm = node.attr("perm")
    rank = common.rank(x)
    if perm is None or (rank is not None and sorted(int(p) for p in perm) != list(range(rank))):
        return f"ep_trtpy::CastTranspose perm={perm!r} is not a permutation of the input's axes"
    return None
