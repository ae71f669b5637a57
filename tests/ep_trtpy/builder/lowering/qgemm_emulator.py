"""The numpy emulation of the ``qgemm`` kernel (kernel_emulator.py dispatches to it): the parameter layout and math
documented in ep_trtpy/builder/lowering/quantize.py, step by step, in the kernel's precisions."""

from __future__ import annotations

import numpy as np

from ep_trtpy.ops.internal import MATMUL_ACTIVATIONS, apply_activation
from ep_trtpy.quantize.numerics import quantize
from graph_partitioner.ir import FLOAT, FLOAT8E4M3FN, FLOAT16, INT8, UINT8, np_dtype


def _wrap_i32(x: np.ndarray) -> np.ndarray:
    """int64 -> int32 with two's-complement wrap-around, as the kernel's int32 sums behave."""
    return ((x.astype(np.int64) + 2**31) % 2**32 - 2**31).astype(np.int32)


def run_qgemm(ints: list[int], floats: list[float], ins: list[np.ndarray | None], y: np.ndarray,
              y_dtype: int) -> None:
    """``qgemm``: Y = epilogue(A @ B^T) over row-major A [M, K] and B [N, K]."""
    assert len(ints) == 5 and len(floats) == 2 and len(ins) == 5, (ints, floats, len(ins))
    m, n, k, act, y_zero = ints
    alpha, y_scale = floats
    a, b, scale, bias_i32, bias_f = ins
    assert a is not None and b is not None and scale is not None
    assert a.size == m * k and b.size == n * k and scale.size == n and scale.dtype == np.float32
    fp8 = a.dtype == np_dtype(FLOAT8E4M3FN)
    assert b.dtype == (np_dtype(FLOAT8E4M3FN) if fp8 else np.int8), (a.dtype, b.dtype)
    if a.dtype == np.uint8:  # read as int8: a - 128 (the lowering folded the shift into bias_i32)
        am = a.astype(np.int64) - 128
    else:
        assert a.dtype in (np.int8, np_dtype(FLOAT8E4M3FN)), a.dtype
        am = a.astype(np.float64 if fp8 else np.int64)
    am, bm = am.reshape(m, k), b.astype(np.float64 if fp8 else np.int64).reshape(n, k)
    if fp8:
        v = (am @ bm.T).astype(np.float32)  # the float32 accumulator (one rounding here; the GPU's may differ)
        if bias_i32 is not None:
            v = v + bias_i32.astype(np.float32).reshape(1, n)
    else:
        acc = _wrap_i32(am @ bm.T)
        if bias_i32 is not None:
            assert bias_i32.dtype == np.int32 and bias_i32.size == n
            acc = _wrap_i32(acc.astype(np.int64) + bias_i32.reshape(1, n))
        v = acc.astype(np.float32)
    v = v * scale.reshape(1, n)
    if alpha != 1.0:
        v = v * np.float32(alpha)
    if bias_f is not None:
        assert bias_f.dtype == np.float32 and bias_f.size == n
        v = v + bias_f.reshape(1, n)
    v = apply_activation(v.astype(np.float32), MATMUL_ACTIVATIONS[act]).astype(np.float32)
    if y_dtype in (FLOAT, FLOAT16):
        y[:] = v.astype(y.dtype).reshape(-1)
        return
    assert y_dtype in (INT8, UINT8, FLOAT8E4M3FN) and y_scale > 0, (y_dtype, y_scale)
    assert y_dtype != FLOAT8E4M3FN or y_zero == 0
    y[:] = quantize(v, np.float32(y_scale), y_zero, y_dtype).reshape(-1)
