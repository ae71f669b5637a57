"""GPU tests of the extended "layernorm" (residual input, sum output, bfloat16), "gather_elements", and the "gemm"
math flag / bfloat16 / cuBLASLt GELU epilogue, from hand-written layers (direct_plan.py)."""

from __future__ import annotations

import numpy as np
import pytest

from direct_plan import Input, Weight, run_layer
from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT16, INT64, np_dtype
from lib_kernel_helpers import GPU_SKIP_REASON, gelu_ref, gpu_available

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason=GPU_SKIP_REASON)]


def ln_ref(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    x = x.astype(np.float64)
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


@pytest.mark.parametrize("cols", [64, 768, 1536])
@pytest.mark.parametrize("dtype", [FLOAT, FLOAT16, BFLOAT16], ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("with_sum", [False, True])
def test_layernorm_residual(cols: int, dtype: int, with_sum: bool) -> None:
    rng = np.random.default_rng(cols)
    npd = np_dtype(dtype)
    rows = 37
    x = rng.uniform(-2, 2, (rows, cols)).astype(npd)
    r = rng.uniform(-2, 2, (rows, cols)).astype(npd)
    g = rng.uniform(0.5, 1.5, cols).astype(npd)
    b = rng.uniform(-0.5, 0.5, cols).astype(npd)
    outs = [(dtype, (rows, cols))] + ([(dtype, (rows, cols))] if with_sum else [])
    got, _ = run_layer("layernorm", [Input(x), Weight(g), Weight(b), Input(r)], outs, [rows, cols], [1e-5])
    s = (x.astype(np.float32) + r.astype(np.float32)).astype(npd)
    ref = ln_ref(s, g.astype(np.float64), b.astype(np.float64), 1e-5)
    tol = {FLOAT: 1e-4, FLOAT16: 1e-2, BFLOAT16: 5e-2}[dtype]
    assert float(np.max(np.abs(got[0].astype(np.float64) - ref))) <= tol
    if with_sum:
        np.testing.assert_array_equal(got[1], s)


def test_gather_elements() -> None:
    rng = np.random.default_rng(1)
    data = rng.standard_normal((3, 5, 4)).astype(np.float32)
    idx = rng.integers(-5, 5, (3, 2, 4)).astype(np.int64)
    (y,), _ = run_layer("gather_elements", [Input(data), Input(idx)], [(FLOAT, (3, 2, 4))],
                        [3, 1, 3, 5, 4, 3, 2, 4])
    ref = np.take_along_axis(data, np.where(idx < 0, idx + 5, idx), axis=1)
    np.testing.assert_array_equal(y, ref)
    ids = np.arange(10, dtype=np.int64).reshape(1, 10)
    pos = rng.integers(0, 10, (2, 6)).astype(np.int64)
    (y2,), _ = run_layer("gather_elements", [Input(np.repeat(ids, 2, 0)), Input(pos)], [(INT64, (2, 6))],
                         [2, 1, 2, 10, 2, 6])
    np.testing.assert_array_equal(y2, pos)


@pytest.mark.parametrize("dtype, math_flag", [(FLOAT, 0), (FLOAT, 1), (FLOAT16, 0), (BFLOAT16, 0)],
                         ids=["fp32", "tf32", "fp16", "bf16"])
@pytest.mark.parametrize("act", [0, 2, 3])
def test_gemm_bias_act_precisions(dtype: int, math_flag: int, act: int) -> None:
    rng = np.random.default_rng(act)
    npd = np_dtype(dtype)
    m, n, k = 96, 160, 256
    a = rng.uniform(-1, 1, (m, k)).astype(npd)
    w = (rng.uniform(-1, 1, (k, n)) / 16).astype(npd)
    bias = rng.uniform(-1, 1, n).astype(npd)
    ints = [m, n, k, 1, 0, 0, 0, 0, act, 0, 0, 1, math_flag]
    (y,), eng = run_layer("gemm", [Input(a), Weight(w), Weight(bias)], [(dtype, (m, n))], ints, [1.0, 1.0])
    v = a.astype(np.float64) @ w.astype(np.float64) + bias.astype(np.float64)
    ref = {0: v, 2: gelu_ref(v), 3: 0.5 * v * (1 + np.tanh(np.sqrt(2 / np.pi) * (v + 0.044715 * v ** 3)))}[act]
    tol = {(FLOAT, 0): 1e-5, (FLOAT, 1): 5e-3, (FLOAT16, 0): 1.5e-2, (BFLOAT16, 0): 6e-2}[(dtype, math_flag)]
    err = float(np.max(np.abs(y.astype(np.float64) - ref)) / np.max(np.abs(ref)))
    assert err <= tol, f"relative max err {err:.3g} > {tol} (tactic {eng.tactic_names()[0]})"
    assert eng.tactic_names()[0].startswith("lt")
