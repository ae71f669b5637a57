"""GPU tests of the quantized GEMM "qgemm" (cuda_kernels/runtime/kernels_qgemm.cpp, kernels/qgemm.cu) through the
``ep_trtpy::QMatMul`` lowering (lower_qmatmul, called directly while QMatMul is still in PENDING), against the
reference backend (ep_trtpy/ops/quantize.py): the cases of the CPU test (test_lowering_qmatmul.py) on each tactic
family (cuBLASLt "lt:0" where the shape allows it, our "simt"), and a shape sweep.

Integer outputs must equal the reference bit for bit (INT8: the int32 accumulator is exact and the epilogue rounds
as the reference does); FP8 outputs may sit one FP8 code away (float32 accumulation order); float outputs within one
accumulator step (a_scale * b_scale * |alpha|; erf/tanh GELU differ by float32 ulps). Every run goes twice over
different poison bytes and must agree bitwise. Run on the H200 with
``python -m pytest tests/cuda_kernels/test_qgemm_gpu.py -m gpu -q``; EP_TRTPY_KERNEL_TESTS_EMULATE=1 dry-runs the
tests (not the CUDA code) through the plan emulator on a machine without a GPU."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ep_trtpy" / "builder" / "lowering"))

from kernel_emulator import execute as emulate  # noqa: E402
from test_lowering_qmatmul import CASES, build_case, q_data, qmatmul_graph  # noqa: E402

from ep_trtpy.builder.lowering import LowerCtx  # noqa: E402
from ep_trtpy.builder.lowering.quantize import lower_qmatmul  # noqa: E402
from ep_trtpy.engine.plan import Plan  # noqa: E402
from graph_partitioner.ir import FLOAT8E4M3FN, np_dtype  # noqa: E402

from lib_kernel_helpers import GPU_SKIP_REASON, gpu_available  # noqa: E402

HAVE_GPU = gpu_available()
EMULATE = os.environ.get("EP_TRTPY_KERNEL_TESTS_EMULATE", "") == "1" and not HAVE_GPU
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not (HAVE_GPU or EMULATE), reason=GPU_SKIP_REASON)]
needs_gpu = pytest.mark.skipif(not HAVE_GPU, reason=GPU_SKIP_REASON)


def _device_dtype(dtype: int) -> np.dtype:
    """cupy has no FP8: FP8 tensors travel as their bytes."""
    return np.dtype(np.uint8) if dtype == FLOAT8E4M3FN else np_dtype(dtype)


def run_gpu(plan: Plan, weights: bytes, feeds: Sequence[np.ndarray], tuning_level: int = 3) -> np.ndarray:
    """Build and run the plan twice over different poison; the two outputs must agree bitwise."""
    if EMULATE:
        return emulate(plan, weights, feeds)[0]
    import cupy as cp

    from ep_trtpy.runtime import build_engine

    engine = build_engine(plan, bytes(weights), 0, tuning_level=tuning_level)
    out_t = next(t for t in plan.tensors if t.kind == "output" and t.index == 0)
    results = []
    for poison in (0xA5, 0x5A):
        ins = [cp.asarray(np.ascontiguousarray(x).view(_device_dtype(FLOAT8E4M3FN)) if x.dtype == np_dtype(
            FLOAT8E4M3FN) else np.ascontiguousarray(x)) for x in feeds]
        y = cp.empty(tuple(out_t.shape), dtype=_device_dtype(out_t.dtype))
        y.reshape(-1).view(cp.uint8).fill(poison)
        stream = cp.cuda.Stream(non_blocking=True)
        cp.cuda.Device().synchronize()
        engine.run([int(x.data.ptr) for x in ins], [int(y.data.ptr)], int(stream.ptr))
        stream.synchronize()
        results.append(cp.asnumpy(y))
    assert results[0].tobytes() == results[1].tobytes(), "two runs differ: elements left unwritten, or a race"
    return results[0].view(np_dtype(out_t.dtype))


def lowered(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None, attrs: dict[str, Any],
            tactic: str = "") -> tuple[Plan, bytes, np.ndarray]:
    g, node, want = qmatmul_graph(a, b, bias, attrs)
    ctx = LowerCtx(g)
    lower_qmatmul(ctx, node)
    ctx.finish()
    ctx.plan.layers[-1].tactic_name = tactic
    return ctx.plan, bytes(ctx.weights), want


def fp8_codes_apart(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """How many FP8 codes apart two float8e4m3fn arrays are (sign-magnitude order)."""
    def order(x: np.ndarray) -> np.ndarray:
        u = x.view(np.uint8).astype(np.int64)
        return np.where(u & 0x80, -(u & 0x7F), u & 0x7F)

    return np.abs(order(got) - order(want))


def check(got: np.ndarray, want: np.ndarray, attrs: dict[str, Any], plan: Plan) -> None:
    what = f"layers {[(lay.kernel, lay.tactic_name, lay.ints) for lay in plan.layers]}"
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, want.shape, got.dtype, want.dtype, what)
    if want.dtype == np_dtype(FLOAT8E4M3FN):
        far = fp8_codes_apart(got, want)
        assert far.max(initial=0) <= 1, f"FP8 output {far.max()} codes off; {what}"
    elif want.dtype.kind in "iu":
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (f"{bad.size} of {want.size} quantized outputs differ, first at {bad[0]}: got "
                               f"{got.reshape(-1)[bad[0]]}, expected {want.reshape(-1)[bad[0]]}; {what}")
    else:
        step = float(np.max(np.float32(attrs["a_scale"]) * np.asarray(attrs["b_scale"], np.float32)))
        step *= abs(float(attrs.get("alpha", 1.0)))
        if plan.layers[-1].meta.get("precision") == "fp8":  # float32 (tensor-core) accumulation order
            step += 1e-3 * float(np.max(np.abs(want), initial=0.0))
        err = np.abs(got.astype(np.float64) - want.astype(np.float64))
        assert np.all(err <= step), f"float output off by {err.max():.3g} (allowed {step:.3g}); {what}"


@pytest.mark.parametrize("tactic", ["", "simt"], ids=["tuned", "simt"])
@pytest.mark.parametrize("name", list(CASES))
def test_qmatmul_cases(name: str, tactic: str) -> None:
    a, b, bias, attrs = build_case(name, seed=11)
    plan, weights, want = lowered(a, b, bias, attrs, tactic)
    got = run_gpu(plan, weights, [a])
    check(got, want, attrs, plan)
    if tactic and not EMULATE:
        assert plan.layers[-1].tactic_name == tactic


SWEEP_M = [1, 7, 128, 4096]
SWEEP_KN = [(64, 64), (256, 1024), (768, 3072), (40, 24)]  # the last: K, N not multiples of 16


@pytest.mark.parametrize("kind", ["int8", "fp8"])
@pytest.mark.parametrize("k, n", SWEEP_KN, ids=[f"k{k}_n{n}" for k, n in SWEEP_KN])
@pytest.mark.parametrize("m", SWEEP_M)
def test_shape_sweep(m: int, k: int, n: int, kind: str) -> None:
    rng = np.random.default_rng(m * 7 + k + n)
    a, b = q_data(rng, (m, k), kind), q_data(rng, (k, n), kind)
    attrs: dict[str, Any] = {"a_scale": 0.02, "b_scale": [float(s) for s in rng.uniform(0.001, 0.01, n)],
                             "y_scale": 0.5 if kind == "int8" else 4.0, "y_type": 3 if kind == "int8" else 17}
    bias = rng.integers(-2000, 2000, size=n).astype(np.int32) if kind == "int8" else None
    plan, weights, want = lowered(a, b, bias, attrs)
    got = run_gpu(plan, weights, [a])
    check(got, want, attrs, plan)
    tactic = plan.layers[-1].tactic_name
    if EMULATE:
        return
    if k % 16 or n % 16:
        assert tactic == "simt", f"K={k}, N={n} must run the SIMT kernel, ran {tactic}"
    else:
        assert tactic == "simt" or tactic.startswith("lt:"), tactic


@pytest.mark.parametrize("kind", ["int8", "fp8"])
def test_cublaslt_serves_aligned_shapes(kind: str) -> None:
    """K and N multiples of 16 get cuBLASLt candidates on sm_90 (IMMA for int8, FP8 kernels for E4M3): forcing lt:0
    must build and match the reference (a refusal here means the documented combination is not what we set up)."""
    rng = np.random.default_rng(5)
    a, b = q_data(rng, (128, 256), kind), q_data(rng, (256, 128), kind)
    attrs: dict[str, Any] = {"a_scale": 0.02, "b_scale": [0.01]}
    plan, weights, want = lowered(a, b, None, attrs, tactic="lt:0")
    got = run_gpu(plan, weights, [a])
    assert EMULATE or plan.layers[-1].tactic_name == "lt:0", plan.layers[-1].tactic_name
    check(got, want, attrs, plan)


@needs_gpu
def test_misaligned_a_falls_back_to_simt() -> None:
    """A that starts 1 byte into its buffer (a view) cannot take the 16-byte cuBLASLt plan; the launch must still
    be right (the SIMT kernel serves it)."""
    import cupy as cp

    from ep_trtpy.runtime import build_engine

    rng = np.random.default_rng(9)
    a, b = q_data(rng, (32, 64), "int8"), q_data(rng, (64, 32), "int8")
    attrs: dict[str, Any] = {"a_scale": 0.05, "b_scale": [0.02], "y_scale": 0.3, "y_type": 3}
    plan, weights, want = lowered(a, b, None, attrs, tactic="lt:0")
    engine = build_engine(plan, weights, 0)
    buf = cp.zeros(a.size + 16, dtype=cp.int8)
    buf[1:1 + a.size] = cp.asarray(a.reshape(-1))
    y = cp.empty(want.shape, dtype=cp.int8)
    engine.run([int(buf.data.ptr) + 1], [int(y.data.ptr)], int(cp.cuda.get_current_stream().ptr))
    cp.cuda.get_current_stream().synchronize()
    np.testing.assert_array_equal(cp.asnumpy(y), want)
