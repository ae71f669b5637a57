"""The numpy emulation of the ``qdq`` kernel (kernel_emulator.py dispatches to it): the parameter layout and math
documented in ep_trtpy/builder/lowering/quantize.py (QuantizeLinear / DequantizeLinear), step by step, in the
kernel's precisions."""

from __future__ import annotations

import numpy as np

from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT8E4M3FN, FLOAT16, INT8, INT32, UINT8, np_dtype

FP8_MAX = np.float32(448.0)
_RANGES = {INT8: (-128, 127), UINT8: (0, 255)}


def run_qdq(ints: list[int], floats: list[float], ins: list[np.ndarray | None], y: np.ndarray, x_dtype: int,
            y_dtype: int) -> None:
    """``qdq``: Y = quantize(X) (mode 0) or dequantize(X) (mode 1), X read as [outer, channels, inner]."""
    assert len(ints) == 4 and not floats and len(ins) == 3, (ints, floats, len(ins))
    mode, outer, channels, inner = ints
    x, scale, zero = ins
    assert x is not None and scale is not None and mode in (0, 1) and channels >= 1
    n = outer * channels * inner
    assert x.size == y.size == n, (x.size, y.size, n)
    assert scale.dtype == np.float32 and scale.size == channels, (scale.dtype, scale.size, channels)
    c = (np.arange(n, dtype=np.int64) // max(inner, 1)) % channels
    s = scale[c]
    z = np.zeros(n, np.int64)
    if zero is not None:
        assert zero.dtype == np.int32 and zero.size == channels, (zero.dtype, zero.size)
        assert FLOAT8E4M3FN not in (x_dtype, y_dtype), "a zero point for float8e4m3fn data"
        z = zero[c].astype(np.int64)
    if mode == 0:
        assert x_dtype in (FLOAT, FLOAT16, BFLOAT16) and y_dtype in (INT8, UINT8, FLOAT8E4M3FN), (x_dtype, y_dtype)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            r = x.astype(np.float32) / s  # float32 division, as __fdiv_rn
        if y_dtype == FLOAT8E4M3FN:
            y[:] = np.clip(r, -FP8_MAX, FP8_MAX).astype(np_dtype(FLOAT8E4M3FN))  # nearest even; NaN stays NaN
            return
        lo, hi = _RANGES[y_dtype]
        t = np.where(np.isnan(r), 0.0, np.clip(np.rint(r), -1024.0, 1024.0)).astype(np.int64) + z
        y[:] = np.clip(t, lo, hi).astype(y.dtype)
        return
    assert x_dtype in (INT8, UINT8, INT32, FLOAT8E4M3FN) and y_dtype in (FLOAT, FLOAT16, BFLOAT16), (x_dtype, y_dtype)
    d = x.astype(np.float32) if x_dtype == FLOAT8E4M3FN else (x.astype(np.int64) - z).astype(np.float32)
    with np.errstate(over="ignore"):  # beyond float16's range: inf, as __float2half_rn gives
        y[:] = (d * s).astype(y.dtype)  # one float32 rounding, then y's type (nearest even)
