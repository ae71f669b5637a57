"""Support rules: QuantizeLinear and DequantizeLinear (QDQ models), and the quantized layers the builder folds them
into (``ep_trtpy::QConv``, ``ep_trtpy::QMatMul``; ep_trtpy/ops/quantize.py has their semantics).

Scales and zero points must be constants: the builder folds them into the quantized layers' attributes. On the
GPU these ops have no kernels yet; the EP leaves them to ORT's CPU provider there (the lowering's refusals,
ep_trtpy/builder/lowering/quantize.py, reach the partitioner as ``partition(..., refused=...)``).
"""

from __future__ import annotations

import numpy as np

from graph_partitioner.ir import FLOAT, FLOAT8E4M3FN, FLOAT16, INT8, INT32, UINT8, Node
from graph_partitioner.support import common
from graph_partitioner.support.registry import SupportContext, rule

QUANTIZED = frozenset({INT8, UINT8, FLOAT8E4M3FN})
"""Element types of quantized tensors (ep_trtpy.quantize.numerics.QTYPES; a test keeps them equal)."""
SCALES = frozenset({FLOAT, FLOAT16})


def _scale_and_zero_point(node: Node) -> str | None:
    """Constant scale (a scalar, or a 1-D vector along ``axis``) and zero point; no blocked quantization."""
    if int(node.attr("block_size", 0) or 0) != 0:
        return f"{node.key} block_size={node.attr('block_size')} (blocked quantization) is not supported"
    for i, what in ((1, "scale"), (2, "zero point")):
        if why := common.const_input(node, i, what):
            return why
    scale = node.input(1)
    if scale is None:
        return f"{node.key} has no scale"
    if why := common.dtype_in(node, scale, SCALES, "scale"):
        return why
    if scale.const is not None and np.asarray(scale.const).ndim > 1:
        return f"{node.key} scale '{scale.name}' has rank {np.asarray(scale.const).ndim}; a scalar or a 1-D vector " \
               f"is supported"
    if scale.const is not None and not np.all(np.asarray(scale.const, dtype=np.float64) > 0):
        return f"{node.key} scale '{scale.name}' holds a value that is not positive"
    if scale.const is not None and np.asarray(scale.const).size > 1:  # per-axis: the axis must exist
        return common.check_axis(node, node.attr("axis", 1), common.rank(node.input(0)))
    return None


@rule("QuantizeLinear", dtypes=SCALES | QUANTIZED)
def quantize_linear(node: Node, ctx: SupportContext) -> str | None:
    """float32/float16 to int8, uint8 or float8e4m3fn (saturate=1); per-tensor or per-axis; constant scale and zero
    point."""
    if why := common.dtype_in(node, node.input(0), SCALES, "input"):
        return why
    if why := common.dtype_in(node, node.outputs[0], QUANTIZED, "output"):
        return why
    if node.attr("saturate", 1) != 1:
        return f"{node.key} saturate={node.attr('saturate')!r} is not supported (1 is)"
    return _scale_and_zero_point(node)


@rule("DequantizeLinear", dtypes=SCALES | QUANTIZED | frozenset({INT32}))
def dequantize_linear(node: Node, ctx: SupportContext) -> str | None:
    """int8, uint8, int32 (biases) or float8e4m3fn to float32/float16; per-tensor or per-axis; constant scale and
    zero point."""
    if why := common.dtype_in(node, node.input(0), QUANTIZED | {INT32}, "input"):
        return why
    if why := common.dtype_in(node, node.outputs[0], SCALES, "output"):
        return why
    return _scale_and_zero_point(node)


def _layer(node: Node, scales: tuple[str, str]) -> str | None:
    for name in scales:
        if node.attr(name) is None:
            return f"{node.key} has no {name} attribute"
    if node.attr("y_scale") is not None and node.attr("y_type", INT8) not in QUANTIZED:
        return f"{node.key} y_type={node.attr('y_type')!r} is not a quantized type"
    return None


@rule("ep_trtpy::QConv", dtypes=QUANTIZED | frozenset({FLOAT, INT32}))
def qconv(node: Node, ctx: SupportContext) -> str | None:
    """Y = quantize(act(float(sum (X - zx)(W - zw)) * x_scale * w_scale + B)); int8/uint8/FP8 data, int32 or float32
    bias, per-channel weight scales; FusedConv's window attributes and activations."""
    from graph_partitioner.support.rules_internal import fused_conv

    return _layer(node, ("x_scale", "w_scale")) or fused_conv(node, ctx)


@rule("ep_trtpy::QMatMul", dtypes=QUANTIZED | frozenset({FLOAT, INT32}))
def qmatmul(node: Node, ctx: SupportContext) -> str | None:
    """Y = quantize(act(alpha * float(sum (A - za)(B - zb)) * a_scale * b_scale + bias)); int8/uint8/FP8 operands,
    per-column B scales; FusedMatMul's transA/transB and activations."""
    from graph_partitioner.support.rules_internal import fused_matmul

    return _layer(node, ("a_scale", "b_scale")) or fused_matmul(node, ctx)
