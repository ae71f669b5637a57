"""GPU tests of the cuBLASLt kernel "gemm" through MatMul / ep_trtpy::FusedMatMul / Gemm graphs and hand-made
plans, against float64 numpy references. Float32 at rtol 1e-4 (TF32 would fail the K=4096 case), float16 at 5e-3."""

from __future__ import annotations

import numpy as np
import pytest

from graph_partitioner.ir import FLOAT, FLOAT16

from lib_kernel_helpers import (GPU_SKIP_REASON, STRICT_FP32, In, assert_close, gelu_ref, gelu_tanh_ref, gpu_available,
                                one_node_graph, rand, run_on_gpu)

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason=GPU_SKIP_REASON)]

ACTS = {"": lambda v: v, "Relu": lambda v: np.maximum(v, 0.0), "Gelu": gelu_ref, "GeluTanh": gelu_tanh_ref}


def _mm_ref(a: np.ndarray, b: np.ndarray, trans_a: bool = False, trans_b: bool = False) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if trans_a:
        a64 = np.swapaxes(a64, -1, -2)
    if trans_b:
        b64 = np.swapaxes(b64, -1, -2)
    return np.matmul(a64, b64)


@pytest.mark.parametrize("dtype", [FLOAT, FLOAT16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("m, k, n", [(37, 19, 23), (1, 64, 1), (128, 256, 64), (5, 1, 3)])
def test_matmul_2d(dtype: int, m: int, k: int, n: int) -> None:
    rng = np.random.default_rng(30)
    a, b = rand(rng, (m, k), dtype), rand(rng, (k, n), dtype)
    g = one_node_graph("MatMul", [In(dtype, (m, k)), In(dtype, (k, n))], [(dtype, (m, n))])
    (y,), plan, _ = run_on_gpu(g, [a, b])
    assert_close(y, _mm_ref(a, b), dtype, f"MatMul {m}x{k}x{n}", plan)
    assert plan.layers[0].tactic >= 0


def test_matmul_fp32_is_not_tf32() -> None:
    # K = 4096: TF32 (10-bit mantissa) inputs give errors ~1e-3 of the output scale; FP32 FMA stays below 1e-5.
    rng = np.random.default_rng(31)
    a, b = rand(rng, (64, 4096), FLOAT), rand(rng, (4096, 64), FLOAT)
    g = one_node_graph("MatMul", [In(FLOAT, a.shape), b], [(FLOAT, (64, 64))])
    (y,), plan, _ = run_on_gpu(g, [a])
    assert_close(y, _mm_ref(a, b), FLOAT, "fp32 GEMM with K=4096 (would fail under TF32)", plan)


@pytest.mark.parametrize("dtype", [FLOAT, FLOAT16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("act", list(ACTS), ids=lambda a: a or "none")
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("trans_a, trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_fused_matmul(dtype: int, act: str, bias: bool, trans_a: int, trans_b: int) -> None:
    rng = np.random.default_rng(32)
    m, k, n, alpha = 33, 40, 24, 0.75
    a = rand(rng, (k, m) if trans_a else (m, k), dtype)
    b = rand(rng, (n, k) if trans_b else (k, n), dtype)
    c = rand(rng, (n,), dtype) if bias else None
    g = one_node_graph("FusedMatMul", [In(dtype, a.shape), b, c], [(dtype, (m, n))],
                       {"transA": trans_a, "transB": trans_b, "alpha": alpha, "activation": act}, domain="ep_trtpy")
    (y,), plan, _ = run_on_gpu(g, [a])
    ref = alpha * _mm_ref(a, b, bool(trans_a), bool(trans_b))
    if c is not None:
        ref = ref + c.astype(np.float64)
    assert_close(y, ACTS[act](ref), dtype, f"FusedMatMul tA={trans_a} tB={trans_b} bias={bias} act={act!r}", plan)


@pytest.mark.parametrize("a_shape, b_shape", [
    ((2, 3, 8, 5), (5, 7)),            # shared weight: folded into 48 rows
    ((2, 3, 8, 5), (2, 3, 5, 7)),      # full batch: one strided-batched GEMM
    ((2, 3, 8, 5), (3, 5, 7)),         # B broadcast over the outer dim: unrolled
    ((2, 1, 8, 5), (1, 3, 5, 7)),      # both broadcast
    ((1, 8, 5), (4, 5, 7)),            # A broadcast: stride 0
    ((3, 1, 4, 6, 5), (2, 1, 5, 7)),   # three batch dims, mixed
    ((5,), (2, 5, 7)),                 # vector @ batch
    ((2, 8, 5), (5,)),                 # batch @ vector
    ((5,), (5,)),                      # dot product
])
@pytest.mark.parametrize("dtype", [FLOAT, FLOAT16], ids=["fp32", "fp16"])
def test_matmul_batch_broadcasting(a_shape: tuple, b_shape: tuple, dtype: int) -> None:
    rng = np.random.default_rng(33)
    a, b = rand(rng, a_shape, dtype), rand(rng, b_shape, dtype)
    ref = np.matmul(a.astype(np.float64), b.astype(np.float64))
    g = one_node_graph("MatMul", [In(dtype, a_shape), In(dtype, b_shape)], [(dtype, ref.shape)])
    (y,), plan, _ = run_on_gpu(g, [a, b])
    assert_close(y, ref, dtype, f"MatMul {a_shape} @ {b_shape}", plan)


def test_fused_matmul_bias_with_batch_fold_and_gelu() -> None:
    # the BERT pattern: [batch, seq, hidden] @ W[hidden, 4*hidden] + b, erf GELU
    rng = np.random.default_rng(34)
    x, w, b = rand(rng, (2, 16, 32), FLOAT), rand(rng, (32, 128), FLOAT), rand(rng, (128,), FLOAT)
    g = one_node_graph("FusedMatMul", [In(FLOAT, x.shape), w, b], [(FLOAT, (2, 16, 128))], {"activation": "Gelu"},
                       domain="ep_trtpy")
    (y,), plan, _ = run_on_gpu(g, [x])
    assert plan.layers[0].ints[:4] == [32, 128, 32, 1], "batch folded into rows"
    assert_close(y, gelu_ref(_mm_ref(x, w) + b.astype(np.float64)), FLOAT, "x @ W + b, GELU", plan)


@pytest.mark.parametrize("c_kind", ["none", "const_row", "const_1xN", "const_col", "const_scalar", "const_full",
                                    "runtime_full", "runtime_row", "runtime_col", "runtime_scalar"])
@pytest.mark.parametrize("dtype", [FLOAT, FLOAT16], ids=["fp32", "fp16"])
def test_gemm_c_variants(c_kind: str, dtype: int) -> None:
    rng = np.random.default_rng(35)
    m, k, n, alpha, beta = 9, 12, 10, 1.5, -0.5
    a, b = rand(rng, (k, m), dtype), rand(rng, (n, k), dtype)  # transA = transB = 1
    shapes = {"none": None, "const_row": (n,), "const_1xN": (1, n), "const_col": (m, 1), "const_scalar": (),
              "const_full": (m, n), "runtime_full": (m, n), "runtime_row": (n,), "runtime_col": (m, 1),
              "runtime_scalar": (1,)}
    shape = shapes[c_kind]
    c = None if shape is None else rand(rng, shape, dtype)
    runtime = c_kind.startswith("runtime")
    specs = [In(dtype, a.shape), b] + ([] if c is None else [In(dtype, c.shape) if runtime else c])
    g = one_node_graph("Gemm", specs, [(dtype, (m, n))], {"transA": 1, "transB": 1, "alpha": alpha, "beta": beta})
    (y,), plan, _ = run_on_gpu(g, [a] + ([c] if runtime else []))
    ref = alpha * _mm_ref(a, b, True, True)
    if c is not None:
        ref = ref + beta * c.astype(np.float64)
    assert_close(y, ref, dtype, f"Gemm with C {c_kind}", plan)


@pytest.mark.parametrize("bias", [False, True])
def test_matmul_k_zero(bias: bool) -> None:
    # K = 0: the product is all zeros, so Y = relu(bias) broadcast over the rows.
    c = np.linspace(-1, 1, 4).astype(np.float32) if bias else None
    g = one_node_graph("FusedMatMul", [In(FLOAT, (3, 0)), In(FLOAT, (0, 4)), c], [(FLOAT, (3, 4))],
                       {"activation": "Relu"}, domain="ep_trtpy")
    (y,), plan, _ = run_on_gpu(g, [np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32)])
    ref = np.zeros((3, 4)) + (np.maximum(c, 0) if c is not None else 0)
    assert_close(y, ref, FLOAT, "K = 0", plan)


def test_matmul_empty_rows() -> None:
    g = one_node_graph("MatMul", [In(FLOAT, (0, 5)), In(FLOAT, (5, 3))], [(FLOAT, (0, 3))])
    (y,), _, _ = run_on_gpu(g, [np.zeros((0, 5), np.float32), np.ones((5, 3), np.float32)])
    assert y.shape == (0, 3)


@pytest.mark.parametrize("act, c_mode", [(0, "none"), (1, "bias"), (2, "bias"), (0, "full")])
def test_gemm_misaligned_operands_use_the_fallback_plan(act: int, c_mode: str) -> None:
    """Views at 4-byte offsets (not 16-byte aligned) must run the element-aligned fallback plan and give the same
    numbers, with the epilogue in our kernel."""
    import cupy as cp

    from ep_trtpy.engine.plan import LayerSpec, Plan, TensorSpec
    from ep_trtpy.runtime import build_engine, run_engine

    rng = np.random.default_rng(36)
    m, k, n = 17, 33, 20
    flat = rand(rng, (1 + m * k,), FLOAT)
    w = rand(rng, (k, n), FLOAT)
    c = rand(rng, (n,), FLOAT) if c_mode == "bias" else rand(rng, (m, n), FLOAT) if c_mode == "full" else None
    weights = bytearray(w.tobytes())
    tensors = [TensorSpec(0, "x", FLOAT, (1 + m * k,), "input", 0, 0, 4 * (1 + m * k)),
               TensorSpec(1, "w", FLOAT, (k, n), "weight", -1, 0, 4 * k * n),
               TensorSpec(2, "y_big", FLOAT, (1 + m * n,), "output", 0, 0, 4 * (1 + m * n)),
               TensorSpec(3, "a_view", FLOAT, (m * k,), "alias", 0, 4, 4 * m * k),
               TensorSpec(4, "y_view", FLOAT, (m * n,), "alias", 2, 4, 4 * m * n)]
    inputs = [3, 1]
    c_strides = [0, 0, 0]
    if c is not None:
        off = (len(weights) + 255) // 256 * 256
        weights.extend(b"\0" * (off - len(weights)))
        weights.extend(c.tobytes())
        tensors.append(TensorSpec(5, "c", FLOAT, c.shape, "weight", -1, off, c.nbytes))
        inputs.append(5)
        c_strides = [0, 0, 1] if c_mode == "bias" else [0, n, 1]
    layer = LayerSpec("gemm", inputs, [4], ints=[m, n, k, 1, 0, 0, 0, 0, act, *c_strides], floats=[1.0, 1.0],
                      name="misaligned")
    plan = Plan(tensors, [layer], n_inputs=1, n_outputs=1, arena_bytes=0, weights_bytes=len(weights))
    engine = build_engine(plan, bytes(weights), 0)
    (y_big,) = run_engine(engine, [cp.asarray(flat)])
    y = cp.asnumpy(y_big)[1:].reshape(m, n)
    ref = _mm_ref(flat[1:].reshape(m, k), w)
    if c is not None:
        ref = ref + c.astype(np.float64)
    ref = {0: lambda v: v, 1: lambda v: np.maximum(v, 0), 2: gelu_ref}[act](ref)
    assert_close(y, ref, FLOAT, f"misaligned gemm act={act} C={c_mode}", plan)


def test_gemm_given_and_stale_tactics() -> None:
    import cupy as cp

    from ep_trtpy.builder.lowering import lower
    from ep_trtpy.runtime import build_engine, run_engine

    rng = np.random.default_rng(37)
    a, b = rand(rng, (64, 48), FLOAT), rand(rng, (48, 40), FLOAT)
    g = one_node_graph("MatMul", [In(FLOAT, a.shape), b], [(FLOAT, (64, 40))])
    for tactic in (-1, 0, 1, 1000):
        plan, weights = lower(g, STRICT_FP32)  # strict float32: the checks are to 1e-4
        plan.layers[0].tactic = tactic
        engine = build_engine(plan, weights, 0)
        (y,) = run_engine(engine, [cp.asarray(a)])
        assert_close(cp.asnumpy(y), _mm_ref(a, b), FLOAT, f"gemm with tactic {tactic}", plan)
        assert 0 <= plan.layers[0].tactic < 8
        if tactic in (0,):
            assert plan.layers[0].tactic == 0, "a valid given tactic is kept"
