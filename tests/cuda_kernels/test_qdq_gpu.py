"""GPU tests of kernel "qdq" (cuda_kernels/runtime/kernels_qdq.cpp, kernels/qdq.cu) through the QuantizeLinear /
DequantizeLinear lowerings (called directly while both keys are still in PENDING), against the reference backend
(ep_trtpy/ops/quantize.py): every case of the CPU test (test_lowering_qdq.py: each dtype pair, per-tensor and
per-axis with positive and negative axes, ties, saturation, NaN / +-inf), a sweep of sizes over the vector and
scalar paths and their tails, and an input that starts one element into its buffer.

Every output must equal the reference bit for bit (the kernel divides and multiplies with IEEE float32 operations
and rounds as numpy and ml_dtypes do); only NaN payloads may differ (any NaN matches any NaN). Every run goes twice
over different poison bytes and must agree bitwise. Run on the H200 with
``python -m pytest tests/cuda_kernels/test_qdq_gpu.py -m gpu -q``; EP_TRTPY_KERNEL_TESTS_EMULATE=1 dry-runs the tests
(not the CUDA code) through the plan emulator on a machine without a GPU."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ep_trtpy" / "builder" / "lowering"))

from kernel_emulator import execute as emulate  # noqa: E402
from test_lowering_qdq import CASES, assert_same_bits, build_case, lower_node, qdq_graph  # noqa: E402

from ep_trtpy.engine.plan import Plan  # noqa: E402
from graph_partitioner.ir import np_dtype  # noqa: E402

from lib_kernel_helpers import GPU_SKIP_REASON, gpu_available  # noqa: E402

HAVE_GPU = gpu_available()
EMULATE = os.environ.get("EP_TRTPY_KERNEL_TESTS_EMULATE", "") == "1" and not HAVE_GPU
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not (HAVE_GPU or EMULATE), reason=GPU_SKIP_REASON)]
needs_gpu = pytest.mark.skipif(not HAVE_GPU, reason=GPU_SKIP_REASON)


def _bits(a: np.ndarray) -> np.ndarray:
    """An array as unsigned integers of its item size (cupy has neither bfloat16 nor FP8)."""
    return np.ascontiguousarray(a).view(f"u{a.dtype.itemsize}")


def run_gpu(plan: Plan, weights: bytes, feeds: Sequence[np.ndarray], offset_elems: int = 0) -> np.ndarray:
    """Build and run the plan twice over different poison; the two outputs must agree bitwise. offset_elems > 0
    places each input that many elements into its device buffer (a pointer the vector path cannot take)."""
    if EMULATE:
        return emulate(plan, weights, feeds)[0]
    import cupy as cp

    from ep_trtpy.runtime import build_engine

    engine = build_engine(plan, bytes(weights), 0)
    out_t = next(t for t in plan.tensors if t.kind == "output" and t.index == 0)
    out_np = np_dtype(out_t.dtype)
    results = []
    for poison in (0xA5, 0x5A):
        bufs, ptrs = [], []
        for x in feeds:
            b = _bits(x).reshape(-1)
            buf = cp.zeros(b.size + offset_elems, dtype=b.dtype)
            buf[offset_elems:] = cp.asarray(b)
            bufs.append(buf)
            ptrs.append(int(buf.data.ptr) + offset_elems * b.itemsize)
        y = cp.empty(tuple(out_t.shape), dtype=f"u{out_np.itemsize}")
        y.reshape(-1).view(cp.uint8).fill(poison)
        stream = cp.cuda.Stream(non_blocking=True)
        cp.cuda.Device().synchronize()
        engine.run(ptrs, [int(y.data.ptr)], int(stream.ptr))
        stream.synchronize()
        results.append(cp.asnumpy(y))
    assert results[0].tobytes() == results[1].tobytes(), "two runs differ: elements left unwritten, or a race"
    return results[0].view(out_np)


def check_case(name: str, seed: int, shape: tuple[int, ...] | None = None, offset_elems: int = 0) -> None:
    op, x, s, zp, attrs = build_case(name, seed=seed) if shape is None else build_case(name, seed, shape)
    g, node, want = qdq_graph(op, x, s, zp, attrs)
    ctx = lower_node(g, node)
    got = run_gpu(ctx.plan, bytes(ctx.weights), [x], offset_elems)
    assert_same_bits(got, want)


@pytest.mark.parametrize("name", CASES)
def test_qdq_cases(name: str) -> None:
    check_case(name, seed=11)


SWEEP = [(1,), (3,), (4,), (1027,), (8, 1027), (16, 3, 4096), (64, 257, 1024)]
SWEEP_CASES = ["q:float32:int8", "q:bfloat16:uint8", "q:float16:fp8", "dq:uint8:float16", "dq:int32:float32",
               "dq:fp8:bfloat16", "dq:int8:float32"]


@pytest.mark.parametrize("form", ["tensor", "axis0", "axis-1"])
@pytest.mark.parametrize("shape", SWEEP, ids=["x".join(map(str, s)) for s in SWEEP])
@pytest.mark.parametrize("case", SWEEP_CASES)
def test_size_sweep(case: str, shape: tuple[int, ...], form: str) -> None:
    """Vector path (per-tensor, or inner % 4 == 0), scalar path (axis -1: inner 1) and the n % 4 tails."""
    check_case(f"{case}:{form}", seed=len(shape) * 31 + shape[-1], shape=shape)


@needs_gpu
@pytest.mark.parametrize("case", ["q:float32:int8:tensor", "dq:uint8:float16:axis0", "q:bfloat16:fp8:tensor"])
def test_misaligned_input_takes_the_scalar_path(case: str) -> None:
    """An input one element into its buffer cannot be read four at a time; the launch must still be right."""
    check_case(case, seed=5, shape=(4, 1024), offset_elems=1)
