"""GPU tests of the cuDNN kernels "conv" and "conv_transpose", built from one-node IR graphs through
lower -> build_engine -> run_engine and compared with float64 numpy references (checked against ORT's CPU provider
in test_references.py) or ORT's CPU provider directly (auto_pad / output_shape resolution).

Float32 must match to rtol 1e-4 (TF32 tensor-core math would fail the wide cases); float16 to 5e-3."""

from __future__ import annotations

import numpy as np
import pytest

from graph_partitioner.ir import FLOAT, FLOAT16

from lib_kernel_helpers import (CONV_CASES, CONV_TRANSPOSE_CASES, CONV_TRANSPOSE_ORT_ATTRS, CONV_TRANSPOSE_NUMPY_ONLY_CASES, GPU_SKIP_REASON,
                                STRICT_FP32, ConvCase, In, assert_close, conv_case_output_shape, conv_case_reference,
                                conv_ref, conv_transpose_case_reference, gpu_available, one_node_graph, ort_reference, rand,
                                run_on_gpu)

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason=GPU_SKIP_REASON)]

FP16_CONV = {"2d_basic", "groups", "depthwise", "bias_residual_relu", "1d_bias_relu_asym", "3d_asym_pads",
             "wide_k576"}
FP16_CONVT = {"2d_direct_op", "2d_asym_pads_crop", "groups", "wide_k"}


def _conv_graph_and_feeds(case: ConvCase, dtype: int, seed: int, weight_input: bool = False):  # noqa: ANN202
    rng = np.random.default_rng(seed)
    x = rand(rng, case.x, dtype)
    w = rand(rng, case.w, dtype)
    b = rand(rng, (case.w[0],), dtype) if case.bias else None
    y_shape = conv_case_output_shape(case)
    z = rand(rng, y_shape, dtype) if case.z else None
    fused = case.z or case.act
    specs = [In(dtype, case.x), In(dtype, case.w) if weight_input else w, b,
             In(dtype, y_shape) if z is not None else None]
    if not fused:
        specs = specs[:3]
    attrs = case.attrs()
    if fused:
        attrs["activation"] = case.act
    g = one_node_graph("FusedConv" if fused else "Conv", specs, [(dtype, y_shape)], attrs,
                       domain="ep_trtpy" if fused else "")
    feeds = [x] + ([w] if weight_input else []) + ([z] if z is not None else [])
    return g, feeds, conv_case_reference(case, x, w, b, z)


@pytest.mark.parametrize("case", CONV_CASES, ids=repr)
def test_conv_fp32(case: ConvCase) -> None:
    g, feeds, ref = _conv_graph_and_feeds(case, FLOAT, seed=10)
    (y,), plan, _ = run_on_gpu(g, feeds)
    assert_close(y, ref, FLOAT, f"conv {case.name} fp32", plan)
    assert 0 <= plan.layers[0].tactic < 8, "the chosen cudnnConvolutionFwdAlgo_t is written back into the plan"


@pytest.mark.parametrize("case", [c for c in CONV_CASES if c.name in FP16_CONV], ids=repr)
def test_conv_fp16(case: ConvCase) -> None:
    g, feeds, ref = _conv_graph_and_feeds(case, FLOAT16, seed=11)
    (y,), plan, _ = run_on_gpu(g, feeds)
    assert y.dtype == np.float16
    assert_close(y, ref, FLOAT16, f"conv {case.name} fp16", plan)


@pytest.mark.parametrize("case", [c for c in CONV_CASES if c.name in ("2d_basic", "bias_residual_relu", "groups")],
                         ids=repr)
def test_conv_runtime_weights(case: ConvCase) -> None:
    g, feeds, ref = _conv_graph_and_feeds(case, FLOAT, seed=12, weight_input=True)
    (y,), plan, _ = run_on_gpu(g, feeds)
    assert_close(y, ref, FLOAT, f"conv {case.name} with W as a runtime input", plan)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("shape, kernel, strides", [((1, 3, 10, 9), (2, 3, 4, 3), (2, 3)),
                                                   ((2, 2, 11), (3, 2, 4), (3,))])
def test_conv_auto_pad_matches_ort(auto_pad: str, shape: tuple, kernel: tuple, strides: tuple) -> None:
    rng = np.random.default_rng(13)
    x = rand(rng, shape, FLOAT)
    w = rand(rng, kernel, FLOAT)
    attrs = {"auto_pad": auto_pad, "strides": list(strides)}
    k = len(shape) - 2
    if auto_pad == "VALID":
        out_sp = [(shape[2 + i] - kernel[2 + i]) // strides[i] + 1 for i in range(k)]
    else:
        out_sp = [-(-shape[2 + i] // strides[i]) for i in range(k)]
    y_shape = (shape[0], kernel[0], *out_sp)
    ref = ort_reference("Conv", [("x", x, False), ("w", w, True)], y_shape, attrs)
    g = one_node_graph("Conv", [In(FLOAT, shape), w], [(FLOAT, y_shape)], attrs)
    (y,), plan, _ = run_on_gpu(g, [x])
    assert_close(y, ref, FLOAT, f"Conv auto_pad={auto_pad} vs ORT", plan)


def test_conv_given_and_stale_tactics() -> None:
    case = CONV_CASES[0]
    g, feeds, ref = _conv_graph_and_feeds(case, FLOAT, seed=14)
    from ep_trtpy.builder.lowering import lower
    from ep_trtpy.runtime import build_engine, run_engine

    import cupy as cp

    for tactic in (0, 1, 99):  # IMPLICIT_GEMM, IMPLICIT_PRECOMP_GEMM, and a stale value that must be re-chosen
        plan, weights = lower(g, STRICT_FP32)
        plan.layers[0].tactic = tactic
        engine = build_engine(plan, weights, 0)
        (y,) = run_engine(engine, [cp.asarray(a) for a in feeds])
        assert_close(cp.asnumpy(y), ref, FLOAT, f"conv with tactic {tactic}", plan)
        assert 0 <= plan.layers[0].tactic < 8
        if tactic < 8:
            assert plan.layers[0].tactic == tactic, "a valid given tactic is kept"


def test_conv_empty_input_channels_gives_bias_plus_residual() -> None:
    # C = 0: the convolution sums nothing, so Y = relu(B + Z).
    rng = np.random.default_rng(15)
    b = rand(rng, (3,), FLOAT)
    z = rand(rng, (2, 3, 4, 4), FLOAT)
    g = one_node_graph("FusedConv", [In(FLOAT, (2, 0, 4, 4)), np.zeros((3, 0, 1, 1), np.float32), b,
                                     In(FLOAT, (2, 3, 4, 4))], [(FLOAT, (2, 3, 4, 4))], {"activation": "Relu"},
                       domain="ep_trtpy")
    (y,), plan, _ = run_on_gpu(g, [np.zeros((2, 0, 4, 4), np.float32), z])
    ref = np.maximum(z.astype(np.float64) + b.reshape(1, 3, 1, 1), 0)
    assert_close(y, ref, FLOAT, "conv with C = 0", plan)


def test_conv_empty_batch() -> None:
    w = np.ones((4, 3, 3, 3), np.float32)
    g = one_node_graph("Conv", [In(FLOAT, (0, 3, 5, 5)), w], [(FLOAT, (0, 4, 3, 3))])
    (y,), _, _ = run_on_gpu(g, [np.zeros((0, 3, 5, 5), np.float32)])
    assert y.shape == (0, 4, 3, 3)


# ------------------------------------------------------------------------ residual after the activation --
POST_ACT_CASES = [  # NCHW: the legacy cuDNN path (Relu + bias: cuDNN's fused call, then our epilogue adds Z)
    ConvCase("2d_bias_relu", (2, 8, 9, 9), (8, 8, 3, 3), pads=(1, 1, 1, 1), bias=True, z=True, act="Relu"),
    ConvCase("2d_bias_silu", (2, 8, 9, 9), (8, 8, 3, 3), pads=(1, 1, 1, 1), bias=True, z=True, act="Silu"),
    ConvCase("2d_asym_relu_no_bias", (2, 4, 11, 10), (6, 4, 3, 2), pads=(0, 2, 3, 1), strides=(2, 3), z=True,
             act="Relu"),
    ConvCase("1d_bias_sigmoid", (2, 3, 17), (5, 3, 4), pads=(2, 1), strides=(2,), bias=True, z=True, act="Sigmoid"),
    ConvCase("3d_bias_tanh", (1, 2, 6, 7, 5), (3, 2, 3, 2, 3), pads=(1, 0, 1, 1, 1, 0), bias=True, z=True,
             act="Tanh"),
]


def _references(case: ConvCase, x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(act(conv + B) + Z, act(conv + B + Z)) in float64."""
    from ep_trtpy.ops.internal import apply_activation

    k = case.k
    y = conv_ref(x, w, b, case.pads[:k], case.pads[k:], case.strides, case.dilations, case.group)
    z64 = z.astype(np.float64)
    return apply_activation(y, case.act) + z64, apply_activation(y + z64, case.act)


@pytest.mark.parametrize("dtype", [FLOAT, FLOAT16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("case", POST_ACT_CASES, ids=repr)
def test_conv_nchw_post_act_residual(case: ConvCase, dtype: int) -> None:
    """FusedConv residual_position post_act through lower -> engine: act(conv + B) + Z, not act(conv + B + Z)."""
    rng = np.random.default_rng(16)
    x, w = rand(rng, case.x, dtype), rand(rng, case.w, dtype)
    b = rand(rng, (case.w[0],), dtype) if case.bias else None
    y_shape = conv_case_output_shape(case)
    z = rand(rng, y_shape, dtype)
    attrs = dict(case.attrs(), activation=case.act, residual_position="post_act")
    g = one_node_graph("FusedConv", [In(dtype, case.x), w, b, In(dtype, y_shape)], [(dtype, y_shape)], attrs,
                       domain="ep_trtpy")
    (y,), plan, _ = run_on_gpu(g, [x, z])
    assert plan.layers[0].ints[-1] == 1 and len(plan.layers[0].ints) == 6 + 4 * case.k
    ref, pre = _references(case, x, w, b, z)
    assert np.abs(pre - ref).max() > 0.1 * np.abs(ref).max(), "the two positions must differ in this case"
    assert_close(y, ref, dtype, f"conv {case.name} post_act", plan)


def test_conv_empty_input_channels_post_act_gives_act_of_bias_plus_residual() -> None:
    # C = 0: the convolution sums nothing, so Y = sigmoid(B) + Z.
    rng = np.random.default_rng(17)
    b = rand(rng, (3,), FLOAT)
    z = rand(rng, (2, 3, 4, 4), FLOAT)
    g = one_node_graph("FusedConv", [In(FLOAT, (2, 0, 4, 4)), np.zeros((3, 0, 1, 1), np.float32), b,
                                     In(FLOAT, (2, 3, 4, 4))], [(FLOAT, (2, 3, 4, 4))],
                       {"activation": "Sigmoid", "residual_position": "post_act"}, domain="ep_trtpy")
    (y,), plan, _ = run_on_gpu(g, [np.zeros((2, 0, 4, 4), np.float32), z])
    ref = 1 / (1 + np.exp(-b.astype(np.float64).reshape(1, 3, 1, 1))) + z.astype(np.float64)
    assert_close(y, ref, FLOAT, "post_act conv with C = 0", plan)


# ------------------------------------------------------------------------------------------- conv transpose --
def _convt_run(case: ConvCase, dtype: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rand(rng, case.x, dtype)
    w = rand(rng, case.w, dtype)
    b = rand(rng, (case.w[1] * case.group,), dtype) if case.bias else None
    ref = conv_transpose_case_reference(case, x, w, b)
    g = one_node_graph("ConvTranspose", [In(dtype, case.x), w, b], [(dtype, ref.shape)], case.attrs(True))
    (y,), plan, _ = run_on_gpu(g, [x])
    assert_close(y, ref, dtype, f"conv_transpose {case.name} {'fp32' if dtype == FLOAT else 'fp16'}", plan)
    assert 0 <= plan.layers[0].tactic < 6, "the chosen cudnnConvolutionBwdDataAlgo_t is written back"


@pytest.mark.parametrize("case", CONV_TRANSPOSE_CASES + CONV_TRANSPOSE_NUMPY_ONLY_CASES, ids=repr)
def test_conv_transpose_fp32(case: ConvCase) -> None:
    _convt_run(case, FLOAT, seed=20)


@pytest.mark.parametrize("case", [c for c in CONV_TRANSPOSE_CASES if c.name in FP16_CONVT], ids=repr)
def test_conv_transpose_fp16(case: ConvCase) -> None:
    _convt_run(case, FLOAT16, seed=21)


@pytest.mark.parametrize("attrs", CONV_TRANSPOSE_ORT_ATTRS)
def test_conv_transpose_output_shape_and_auto_pad_match_ort(attrs: dict) -> None:
    rng = np.random.default_rng(22)
    x = rand(rng, (1, 3, 5, 4), FLOAT)
    w = rand(rng, (3, 2, 3, 3), FLOAT)
    b = rand(rng, (2,), FLOAT)
    ref = ort_reference("ConvTranspose", [("x", x, False), ("w", w, True), ("b", b, True)], None, attrs)
    y_shape = ref.shape
    g = one_node_graph("ConvTranspose", [In(FLOAT, x.shape), w, b], [(FLOAT, y_shape)], attrs)
    (y,), plan, _ = run_on_gpu(g, [x])
    assert_close(y, ref, FLOAT, f"ConvTranspose {attrs} vs ORT", plan)
