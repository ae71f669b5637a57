"""The arithmetic of quantized tensors, shared by the references (ep_trtpy/ops/quantize.py), the builder passes
and calibration. Everything here is numpy and exact where the GPU is exact.

Quantized types (:data:`QTYPES`): int8 [-128, 127], uint8 [0, 255], and FP8 E4M3 without infinities
(``float8e4m3fn``, finite range +-448, NaN kept). ONNX's QuantizeLinear and DequantizeLinear define the maps::

    quantize(x, s, z)   = saturate(round_half_even(x / s) + z)     integers: x / s in float32, then rounded
                        = saturate_fp8(x / s) rounded to E4M3        FP8: z is 0; nearest even, clamped to +-448
    dequantize(q, s, z) = (q - z) * s                               float32 (q - z exact, one rounding at * s)

A NaN quantizes to the zero point for integer types (ONNX leaves it open) and stays NaN for FP8. Scales are float32
everywhere (a float64 scale is rounded to float32 first).

Symmetric scales (TensorRT's convention for calibrated tensors): ``scale = amax / QMAX`` with QMAX 127 for int8 and
448 for FP8, zero point 0. Weights get one scale per output channel (:func:`channel_scales`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graph_partitioner.ir import FLOAT8E4M3FN, INT8, INT32, UINT8, dtype_name, np_dtype

FP8_MAX = 448.0
"""The largest finite float8e4m3fn value."""


@dataclass(frozen=True)
class QType:
    """A quantized element type: its ONNX element type, range, and the symmetric maximum used for scales."""

    elem: int
    lo: float
    hi: float
    qmax: float  # amax maps to this value (symmetric scales)

    @property
    def is_float(self) -> bool:
        return self.elem == FLOAT8E4M3FN

    @property
    def name(self) -> str:
        return dtype_name(self.elem)

    @property
    def np(self) -> np.dtype:
        return np_dtype(self.elem)


QTYPES: dict[int, QType] = {
    INT8: QType(INT8, -128, 127, 127.0),
    UINT8: QType(UINT8, 0, 255, 255.0),
    FLOAT8E4M3FN: QType(FLOAT8E4M3FN, -FP8_MAX, FP8_MAX, FP8_MAX),
}
PRECISIONS = {"int8": INT8, "fp8": FLOAT8E4M3FN}
"""Names of the precisions a calibrated engine quantizes to (calibration tables and options use them)."""


def qtype(elem: int) -> QType:
    try:
        return QTYPES[elem]
    except KeyError:
        raise ValueError(f"{dtype_name(elem)} is not a quantized type (int8, uint8 and float8e4m3fn are)") from None


def f32(x: float | np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def along(values: np.ndarray, rank: int, axis: int | None) -> np.ndarray:
    """A per-axis vector reshaped to broadcast along `axis` of a rank-`rank` tensor (as is when axis is None)."""
    v = np.asarray(values)
    if axis is None or v.ndim == 0:
        return v.reshape(()) if v.size == 1 else v
    shape = [1] * rank
    shape[axis] = -1
    return v.reshape(shape)


def round_half_even(x: np.ndarray) -> np.ndarray:
    """Round to the nearest integer, ties to even (IEEE's default, numpy's rint), as ONNX QuantizeLinear does."""
    return np.rint(x)


def to_fp8(x: np.ndarray) -> np.ndarray:
    """float32 -> float8e4m3fn: nearest, ties to even, saturated to +-448 (ONNX saturate=1); NaN stays NaN."""
    return np.clip(f32(x), -FP8_MAX, FP8_MAX).astype(np_dtype(FLOAT8E4M3FN))


def quantize(x: np.ndarray, scale: np.ndarray | float, zero_point: np.ndarray | int | float, elem: int,
             axis: int | None = None) -> np.ndarray:
    """ONNX QuantizeLinear of float `x` to element type `elem`; per-axis scale and zero point when `axis` is
    given (vectors along that axis)."""
    t = qtype(elem)
    x32 = f32(x)
    s = along(f32(scale), x32.ndim, axis)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r = x32 / s
    if t.is_float:
        return to_fp8(r)
    z = along(np.asarray(zero_point, dtype=np.float64), x32.ndim, axis)
    q = round_half_even(r.astype(np.float64)) + z
    q = np.where(np.isnan(q), np.broadcast_to(z, q.shape), q)
    return np.clip(q, t.lo, t.hi).astype(t.np)


def dequantize(q: np.ndarray, scale: np.ndarray | float, zero_point: np.ndarray | int | float | None,
               axis: int | None = None) -> np.ndarray:
    """ONNX DequantizeLinear to float32: (q - zero_point) * scale; int32 (biases) included."""
    q = np.asarray(q)
    s = along(f32(scale), q.ndim, axis)
    if q.dtype == np_dtype(FLOAT8E4M3FN):
        d = q.astype(np.float32)
    else:
        z = 0 if zero_point is None else along(np.asarray(zero_point, dtype=np.int64), q.ndim, axis)
        d = (q.astype(np.int64) - z).astype(np.float32)
    return (d * s).astype(np.float32)


def fake_quantize(x: np.ndarray, scale: np.ndarray | float, zero_point: np.ndarray | int, elem: int,
                  axis: int | None = None) -> np.ndarray:
    """dequantize(quantize(x)): the float value a quantized tensor stands for."""
    zp = zero_point if not qtype(elem).is_float else 0
    return dequantize(quantize(x, scale, zero_point, elem, axis), scale, zp, axis)


def symmetric_scale(amax: float, elem: int = INT8) -> float:
    """The symmetric scale amax / QMAX as a float32 value; an amax of 0 (a tensor that is always zero) gets 1."""
    a = float(amax)
    if not np.isfinite(a) or a < 0:
        raise ValueError(f"amax {a!r} is not a finite non-negative number")
    if a == 0.0:
        return 1.0
    return float(np.float32(a / qtype(elem).qmax))


def channel_scales(w: np.ndarray, axis: int, elem: int = INT8) -> np.ndarray:
    """Per-output-channel symmetric scales of weight `w` along `axis` (float32; a channel of zeros gets 1)."""
    w = np.asarray(w, dtype=np.float64)
    other = tuple(i for i in range(w.ndim) if i != axis)
    amax = np.max(np.abs(w), axis=other) if other else np.abs(w)
    if not np.all(np.isfinite(amax)):
        raise ValueError("weights hold non-finite values; they cannot be quantized")
    scale = (amax / qtype(elem).qmax).astype(np.float32)
    return np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)


def quantize_weights(w: np.ndarray, axis: int, elem: int = INT8) -> tuple[np.ndarray, np.ndarray]:
    """(quantized w, per-channel scales) with symmetric scales along `axis` (zero points 0)."""
    scales = channel_scales(w, axis, elem)
    zero = np.zeros(scales.shape, np.int64)
    return quantize(w, scales, zero, elem, axis), scales


def int_range_check(acc: np.ndarray, what: str) -> None:
    """Raise when an accumulator leaves int32 (the GPU's accumulator would wrap)."""
    info = np.iinfo(np_dtype(INT32))
    if acc.size and (acc.max() > info.max or acc.min() < info.min):
        raise ValueError(f"{what}: the int32 accumulator overflows ({acc.min():.0f} .. {acc.max():.0f})")
