"""Quantization: ONNX QuantizeLinear / DequantizeLinear, and the quantized layers the builder folds them into,
``ep_trtpy::QConv`` and ``ep_trtpy::QMatMul``. The arithmetic is in :mod:`ep_trtpy.quantize.numerics`.

QuantizeLinear (x, y_scale, y_zero_point?) and DequantizeLinear (x, x_scale, x_zero_point?), opsets 10-21:
per-tensor (a scalar or one-element scale) or per-axis (a 1-D scale along ``axis``, default 1); int8, uint8 and
float8e4m3fn (``saturate`` 1 only); DequantizeLinear also reads int32 (quantized biases). Blocked quantization
(``block_size``) is refused. Quantize's output type is its zero point's, else ``output_dtype``, else uint8;
Dequantize's is its scale's float type.

``ep_trtpy::QConv`` inputs (X, W, B?), ``ep_trtpy::QMatMul`` inputs (A, B, bias?): X/A and W/B hold quantized
values (int8, uint8 or float8e4m3fn); the scales are attributes (float32 values), so no pass can change their
precision::

    QConv     x_scale, x_zero_point   w_scale, w_zero_point (one entry, or one per output channel M)
    QMatMul   a_scale, a_zero_point   b_scale, b_zero_point (one entry, or one per output column N)
    both      y_scale, y_zero_point, y_type: the quantized output (absent: a float32 output)
    QConv     kernel_shape, strides, pads, dilations, group, activation, act_alpha, act_beta, channels_last
              (as ep_trtpy::FusedConv)
    QMatMul   transA, transB, alpha, activation (as ep_trtpy::FusedMatMul)

    acc  = sum (X - x_zero_point) * (W - w_zero_point[m])   exact integers (int32, 0 at padding); FP8: the exact
                                                            products summed, rounded once to float32
    acc += B                                                 when B is int32 (a bias of scale x_scale * w_scale)
    y    = float32(acc) * float32(x_scale * w_scale[m])      the scale product rounded to float32 first
                                                             (QMatMul: times alpha)
    y   += B                                                 when B is float32
    y    = act(y)                                            float32, FusedConv's / FusedMatMul's activations
    Y    = quantize(y, y_scale, y_zero_point, y_type)        round half to even, saturate; absent: Y = y

The zero point of an FP8 operand is 0. A runtime (non-constant) W or B is allowed (attention's two activations);
its scale is then per-tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ep_trtpy.ops._common import fail, in_name, is_float, norm_axis
from ep_trtpy.ops.internal import (CONV_ACTIVATIONS, MATMUL_ACTIVATIONS, NCHW_OF_NHWC, NHWC_OF_NCHW,
                                   apply_activation)
from ep_trtpy.ops.linalg import conv2, conv_plan, matmul_shape
from ep_trtpy.ops.registry import Info, infer, reference
from ep_trtpy.quantize.numerics import QTYPES, dequantize, int_range_check, qtype, quantize
from graph_partitioner.ir import FLOAT, FLOAT8E4M3FN, INT8, INT32, UINT8, Node, dtype_name, elem_type

DOMAIN = "ep_trtpy"


# ------------------------------------------------------------------------- QuantizeLinear / Dequantize --

def _block_size(node: Node) -> None:
    if int(node.attr("block_size", 0)) != 0:
        raise fail(node, f"block_size={node.attr('block_size')} (blocked quantization) is not supported")


def quant_axis(node: Node, scale_shape: tuple[int, ...], x_shape: tuple[int, ...]) -> int | None:
    """The axis of a per-axis Q/DQ (None: per-tensor), checked against the data's shape."""
    _block_size(node)
    if len(scale_shape) == 0 or (len(scale_shape) == 1 and scale_shape[0] == 1):
        return None
    if len(scale_shape) != 1:
        raise fail(node, f"scale {in_name(node, 1)} has shape {list(scale_shape)}; a scalar or a 1-D vector "
                         f"expected")
    axis = norm_axis(node, int(node.attr("axis", 1)), len(x_shape))
    if x_shape[axis] != scale_shape[0]:
        raise fail(node, f"scale {in_name(node, 1)} has {scale_shape[0]} entries but axis {axis} of the data has "
                         f"{x_shape[axis]}")
    return axis


def _zero_point_shape(node: Node, zp: tuple[int, ...] | None, scale: tuple[int, ...]) -> None:
    if zp is not None and tuple(zp) != tuple(scale) and not (max(len(zp), len(scale)) <= 1
                                                             and int(np.prod(zp)) == int(np.prod(scale)) == 1):
        raise fail(node, f"zero point {in_name(node, 2)} has shape {list(zp)} but the scale has {list(scale)}")


def quantize_output_type(node: Node, zp_dtype: int | None) -> int:
    if zp_dtype is not None:
        out = zp_dtype
    else:
        out = int(node.attr("output_dtype", 0)) or UINT8
    if out not in QTYPES:
        raise fail(node, f"quantizes to {dtype_name(out)}; int8, uint8 and float8e4m3fn are supported")
    if out == FLOAT8E4M3FN and int(node.attr("saturate", 1)) != 1:
        raise fail(node, "saturate=0 (FP8 overflow to NaN) is not supported; saturate=1 is")
    return out


@reference("QuantizeLinear")
def quantize_linear_ref(node: Node, x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None = None) -> np.ndarray:
    axis = quant_axis(node, scale.shape, x.shape)
    out = quantize_output_type(node, None if zp is None else elem_type(zp.dtype))
    z = np.zeros(scale.shape, np.int64) if zp is None or qtype(out).is_float else zp.astype(np.int64)
    return quantize(x, scale.reshape(-1) if axis is not None else scale, z.reshape(-1) if axis is not None else z,
                    out, axis)


@infer("QuantizeLinear")
def quantize_linear_infer(node: Node, x: Info, scale: Info, zp: Info | None = None) -> Info:
    if not is_float(x.dtype) or not is_float(scale.dtype):
        raise fail(node, f"quantizes {dtype_name(x.dtype)} with a {dtype_name(scale.dtype)} scale; float types "
                         f"expected")
    quant_axis(node, scale.shape, x.shape)
    _zero_point_shape(node, None if zp is None else zp.shape, scale.shape)
    return Info(quantize_output_type(node, None if zp is None else zp.dtype), x.shape)


def _dequantize_input(node: Node, dtype: int) -> None:
    if dtype not in QTYPES and dtype != INT32:
        raise fail(node, f"dequantizes {dtype_name(dtype)}; int8, uint8, int32 and float8e4m3fn are supported")


@reference("DequantizeLinear")
def dequantize_linear_ref(node: Node, x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None = None) -> np.ndarray:
    axis = quant_axis(node, scale.shape, x.shape)
    _dequantize_input(node, elem_type(x.dtype))
    s = scale.reshape(-1) if axis is not None else scale
    z = None if zp is None or x.dtype.name == "float8_e4m3fn" else (zp.reshape(-1) if axis is not None else zp)
    return dequantize(x, s.astype(np.float32), z, axis).astype(scale.dtype)


@infer("DequantizeLinear")
def dequantize_linear_infer(node: Node, x: Info, scale: Info, zp: Info | None = None) -> Info:
    _dequantize_input(node, x.dtype)
    if not is_float(scale.dtype):
        raise fail(node, f"scale {in_name(node, 1)} is {dtype_name(scale.dtype)}; a float type expected")
    if zp is not None and zp.dtype != x.dtype:
        raise fail(node, f"zero point {in_name(node, 2)} is {dtype_name(zp.dtype)} but the data is "
                         f"{dtype_name(x.dtype)}")
    quant_axis(node, scale.shape, x.shape)
    _zero_point_shape(node, None if zp is None else zp.shape, scale.shape)
    return Info(scale.dtype, x.shape)


# ------------------------------------------------------------------------------------ QConv / QMatMul --

@dataclass(frozen=True)
class QLayer:
    """The quantization attributes of a QConv (prefixes x, w) or QMatMul (a, b) node."""

    in_scale: float
    in_zero: int
    w_scale: np.ndarray  # float32 [1] or [channels]
    w_zero: np.ndarray  # int64, same length
    y_scale: float | None
    y_zero: int
    y_type: int  # FLOAT for a float32 output

    @classmethod
    def of(cls, node: Node) -> QLayer:
        i, w = ("x", "w") if node.op_type == "QConv" else ("a", "b")
        names = [f"{i}_scale", f"{w}_scale"]
        missing = [n for n in names if node.attr(n) is None]
        if missing:
            raise fail(node, f"has no {' or '.join(missing)} attribute")
        w_scale = np.asarray(node.attr(f"{w}_scale"), dtype=np.float32).reshape(-1)
        w_zero = np.asarray(node.attr(f"{w}_zero_point", [0]), dtype=np.int64).reshape(-1)
        if w_zero.size not in (1, w_scale.size):
            raise fail(node, f"{w}_zero_point has {w_zero.size} entries but {w}_scale has {w_scale.size}")
        y_scale = node.attr("y_scale")
        y_type = int(node.attr("y_type", INT8)) if y_scale is not None else FLOAT
        if y_scale is not None:
            qtype(y_type)
        return cls(float(np.float32(node.attr(f"{i}_scale"))), int(node.attr(f"{i}_zero_point", 0)), w_scale,
                   np.broadcast_to(w_zero, w_scale.shape), None if y_scale is None else float(np.float32(y_scale)),
                   int(node.attr("y_zero_point", 0)), y_type)

    def check_channels(self, node: Node, channels: int) -> None:
        if self.w_scale.size not in (1, channels):
            what = "w_scale" if node.op_type == "QConv" else "b_scale"
            raise fail(node, f"{what} has {self.w_scale.size} entries for {channels} output channels")


def _quantized(node: Node, arr: np.ndarray | Info, i: int) -> int:
    dtype = arr.dtype if isinstance(arr, Info) else elem_type(arr.dtype)
    if dtype not in QTYPES:
        raise fail(node, f"{in_name(node, i)} is {dtype_name(dtype)}; a quantized type (int8, uint8, "
                         f"float8e4m3fn) expected")
    return dtype


def _centered(q: np.ndarray, zero: np.ndarray | int, axis: int | None = None) -> np.ndarray:
    """q - zero_point as float64 (exact: integers, or FP8 values)."""
    if q.dtype.name == "float8_e4m3fn":
        return q.astype(np.float64)
    z = np.asarray(zero, dtype=np.float64)
    if axis is not None and z.ndim == 1 and z.size > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        z = z.reshape(shape)
    return q.astype(np.float64) - z


def _epilogue(node: Node, acc: np.ndarray, q: QLayer, bias: np.ndarray | None, channel_axis: int,
              alpha: float, act: str, act_alpha: float, act_beta: float, integer: bool) -> np.ndarray:
    """acc (float64: exact integers, or FP8's exact sum) -> the node's output, as the module docstring says."""
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    if bias is not None and bias.dtype == np.int32:
        acc = acc + bias.astype(np.float64).reshape(shape)
    if integer:
        int_range_check(acc, f"{node.key} node '{node.name}'")
    m = (np.float32(q.in_scale) * q.w_scale).astype(np.float32).reshape(shape if q.w_scale.size > 1 else [])
    y = acc.astype(np.float32) * m
    if alpha != 1.0:
        y = y * np.float32(alpha)
    if bias is not None and bias.dtype != np.int32:
        y = y + bias.astype(np.float32).reshape(shape)
    y = apply_activation(y.astype(np.float32), act, act_alpha, act_beta).astype(np.float32)
    if q.y_scale is None:
        return y
    return quantize(y, q.y_scale, q.y_zero, q.y_type)


def _bias_check(node: Node, b: Info | None, channels: int, i: int) -> None:
    if b is None:
        return
    if b.dtype not in (INT32, FLOAT):
        raise fail(node, f"bias {in_name(node, i)} is {dtype_name(b.dtype)}; int32 or float32 expected")
    if tuple(b.shape) != (channels,):
        raise fail(node, f"bias {in_name(node, i)} has shape {list(b.shape)}; [{channels}] expected")


def _channels_last(node: Node, rank: int) -> bool:
    flag = int(node.attr("channels_last", 0))
    if flag not in (0, 1) or (flag and rank != 4):
        raise fail(node, f"channels_last={flag} is not valid here (0, or 1 for a 2-D convolution)")
    return bool(flag)


def _activation(node: Node, allowed: tuple[str, ...]) -> str:
    act = str(node.attr("activation", ""))
    if act not in allowed:
        raise fail(node, f"activation={act!r} is not one of {allowed}")
    return act


@reference(f"{DOMAIN}::QConv")
def qconv_ref(node: Node, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    q = QLayer.of(node)
    act = _activation(node, CONV_ACTIVATIONS)
    _quantized(node, x, 0)
    _quantized(node, w, 1)
    last = _channels_last(node, x.ndim)
    if last:
        x, w = x.transpose(NCHW_OF_NHWC), w.transpose(NCHW_OF_NHWC)
    kernel, strides, dils, begin, end, out, group = conv_plan(node, x.shape, w.shape)
    q.check_channels(node, w.shape[0])
    acc = conv2(_centered(x, q.in_zero), _centered(w, q.w_zero, 0), kernel, strides, dils, begin, end, out, group)
    y = _epilogue(node, acc, q, b, 1, 1.0, act, float(node.attr("act_alpha", 0.0)),
                  float(node.attr("act_beta", 0.0)), _integer(x, w))
    return np.ascontiguousarray(y.transpose(NHWC_OF_NCHW)) if last else y


@infer(f"{DOMAIN}::QConv")
def qconv_infer(node: Node, x: Info, w: Info, b: Info | None = None) -> Info:
    q = QLayer.of(node)
    _activation(node, CONV_ACTIVATIONS)
    _quantized(node, x, 0)
    _quantized(node, w, 1)
    last = _channels_last(node, len(x.shape))
    xs = tuple(x.shape[p] for p in NCHW_OF_NHWC) if last else x.shape
    ws = tuple(w.shape[p] for p in NCHW_OF_NHWC) if last else w.shape
    *_, out, _group = conv_plan(node, xs, ws)
    q.check_channels(node, ws[0])
    _bias_check(node, b, ws[0], 2)
    shape = (xs[0], ws[0], *out)
    return Info(q.y_type, tuple(shape[p] for p in NHWC_OF_NCHW) if last else shape)


def _integer(*arrays: np.ndarray) -> bool:
    return all(a.dtype.name != "float8_e4m3fn" for a in arrays)


def _ranks(node: Node, a: int, b: int) -> None:
    if a < 2 or b < 2:
        raise fail(node, f"operands of rank {a} and {b}; QMatMul needs rank >= 2 (1-D operands are reshaped first)")


def _op(x: np.ndarray, trans: bool) -> np.ndarray:
    return np.swapaxes(x, -1, -2) if trans and x.ndim >= 2 else x


def _op_shape(shape: tuple[int, ...], trans: bool) -> tuple[int, ...]:
    return shape[:-2] + (shape[-1], shape[-2]) if trans and len(shape) >= 2 else shape


@reference(f"{DOMAIN}::QMatMul")
def qmatmul_ref(node: Node, a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    q = QLayer.of(node)
    act = _activation(node, MATMUL_ACTIVATIONS)
    _quantized(node, a, 0)
    _quantized(node, b, 1)
    ta, tb = bool(int(node.attr("transA", 0))), bool(int(node.attr("transB", 0)))
    _ranks(node, a.ndim, b.ndim)
    shape = matmul_shape(node, _op_shape(a.shape, ta), _op_shape(b.shape, tb))
    bt = _op(b, tb)
    q.check_channels(node, bt.shape[-1])
    acc = np.matmul(_centered(_op(a, ta), q.in_zero), _centered(bt, q.w_zero, bt.ndim - 1))
    return _epilogue(node, np.asarray(acc).reshape(shape), q, bias, len(shape) - 1, float(node.attr("alpha", 1.0)),
                     act, 0.0, 0.0, _integer(a, b))


@infer(f"{DOMAIN}::QMatMul")
def qmatmul_infer(node: Node, a: Info, b: Info, bias: Info | None = None) -> Info:
    q = QLayer.of(node)
    _activation(node, MATMUL_ACTIVATIONS)
    _quantized(node, a, 0)
    _quantized(node, b, 1)
    ta, tb = bool(int(node.attr("transA", 0))), bool(int(node.attr("transB", 0)))
    _ranks(node, len(a.shape), len(b.shape))
    shape = matmul_shape(node, _op_shape(a.shape, ta), _op_shape(b.shape, tb))
    q.check_channels(node, _op_shape(b.shape, tb)[-1])
    _bias_check(node, bias, shape[-1], 2)
    return Info(q.y_type, shape)

