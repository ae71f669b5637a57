"""CPU tests of the ``ep_trtpy::QMatMul`` lowering (builder/lowering/quantize.py: lower_qmatmul -> ``qgemm``): the
plan of each node runs through the plan emulator (qgemm_emulator.py follows the documented parameter layout) and
must equal the reference backend (ep_trtpy/ops/quantize.py) bit for bit for quantized outputs and within one
accumulator step for float outputs. The GPU side of the same cases: tests/cuda_kernels/test_qgemm_gpu.py."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from kernel_emulator import execute
from lowering_testutil import In, ir_graph

from ep_trtpy.builder.lowering import LowerCtx, LoweringError, lower
from ep_trtpy.builder.lowering.quantize import PENDING, lower_qmatmul
from ep_trtpy.ops.quantize import qmatmul_ref
from ep_trtpy.quantize.numerics import to_fp8
from graph_partitioner.ir import Graph, Node

def _fp8_dtype() -> np.dtype:
    import ml_dtypes

    return np.dtype(ml_dtypes.float8_e4m3fn)


def q_data(rng: np.random.Generator, shape: tuple[int, ...], kind: str) -> np.ndarray:
    """Random quantized values: int8 / uint8 over their whole range, fp8 from normal floats."""
    if kind == "int8":
        return rng.integers(-128, 128, size=shape).astype(np.int8)
    if kind == "uint8":
        return rng.integers(0, 256, size=shape).astype(np.uint8)
    return to_fp8(rng.normal(0.0, 8.0, size=shape)).astype(_fp8_dtype())


def qmatmul_graph(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None, attrs: dict[str, Any],
                  a_const: bool = False, b_const: bool = True) -> tuple[Graph, Node, np.ndarray]:
    """A one-node QMatMul graph whose output type and shape come from the reference, and that reference."""
    probe = Graph("probe", {"": 17, "ep_trtpy": 1})
    node = probe.add_node("QMatMul", [], [], attrs=dict(attrs), name="qmm", domain="ep_trtpy")
    want = qmatmul_ref(node, a, b, bias)
    ins = [In("a", a, const=a_const), In("b", b, const=b_const)] + ([In("bias", bias, const=True)]
                                                                     if bias is not None else [])
    g = ir_graph("QMatMul", ins, attrs, [want], 17, domain="ep_trtpy")
    return g, g.nodes[0], want


def run_lowered(g: Graph, node: Node, feeds: list[np.ndarray]) -> tuple[np.ndarray, LowerCtx]:
    ctx = LowerCtx(g)
    lower_qmatmul(ctx, node)
    ctx.finish()
    return execute(ctx.plan, bytes(ctx.weights), feeds)[0], ctx


def assert_matches(got: np.ndarray, want: np.ndarray, attrs: dict[str, Any]) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, want.shape, got.dtype, want.dtype)
    if "y_scale" in attrs:  # quantized output: bit for bit
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
        return
    step = float(np.max(np.float32(attrs["a_scale"]) * np.asarray(attrs["b_scale"], np.float32)))
    step *= abs(float(attrs.get("alpha", 1.0)))
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=0, atol=step)


CASES = {
    # name: (A kind, A shape, B kind, B shape, bias kind, attrs)
    "int8_per_tensor": ("int8", (7, 32), "int8", (32, 16), None, {"a_scale": 0.02, "b_scale": [0.01]}),
    "int8_per_column_bias_i32": ("int8", (5, 48), "int8", (48, 24), "int32",
                                 {"a_scale": 0.05, "b_scale": "per_column"}),
    "int8_bias_f32_relu_requant_int8": ("int8", (9, 32), "int8", (32, 20), "float32",
                                        {"a_scale": 0.03, "b_scale": "per_column", "activation": "Relu",
                                         "y_scale": 0.25, "y_zero_point": -3, "y_type": 3}),
    "uint8_a_zero_point_requant_uint8": ("uint8", (6, 40), "int8", (40, 12), "int32",
                                         {"a_scale": 0.04, "a_zero_point": 131, "b_scale": "per_column",
                                          "y_scale": 0.5, "y_zero_point": 128, "y_type": 2}),
    "int8_a_zero_point_trans_alpha": ("int8", (24, 5), "int8", (10, 24), None,
                                      {"a_scale": 0.1, "a_zero_point": -7, "b_scale": [0.02], "transA": 1,
                                       "transB": 1, "alpha": 0.5}),
    "uint8_b_zero_point_gelu": ("int8", (4, 16), "uint8", (16, 8), "float32",
                                {"a_scale": 0.01, "b_scale": "per_column", "b_zero_point": "128",
                                 "activation": "Gelu"}),
    "batched_a_folded_into_rows": ("int8", (2, 3, 4, 16), "int8", (16, 8), "int32",
                                   {"a_scale": 0.02, "b_scale": "per_column", "activation": "GeluTanh"}),
    "fp8_float_out": ("fp8", (8, 32), "fp8", (32, 16), "float32", {"a_scale": 0.5, "b_scale": "per_column"}),
    "fp8_requant_fp8": ("fp8", (3, 16), "fp8", (16, 16), None,
                        {"a_scale": 0.25, "b_scale": [0.125], "y_scale": 2.0, "y_type": 17, "activation": "Relu"}),
}


def build_case(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
    a_kind, a_shape, b_kind, b_shape, bias_kind, attrs = CASES[name]
    rng = np.random.default_rng(seed)
    attrs = dict(attrs)
    a, b = q_data(rng, a_shape, a_kind), q_data(rng, b_shape, b_kind)
    n = b_shape[0] if attrs.get("transB") else b_shape[1]
    if attrs["b_scale"] == "per_column":
        attrs["b_scale"] = [float(s) for s in rng.uniform(0.005, 0.05, size=n).astype(np.float32)]
    if attrs.get("b_zero_point") == "128":
        attrs["b_zero_point"] = [128] * len(attrs["b_scale"])
    bias = None
    if bias_kind == "int32":
        bias = rng.integers(-5000, 5000, size=n).astype(np.int32)
    elif bias_kind == "float32":
        bias = rng.uniform(-2, 2, size=n).astype(np.float32)
    return a, b, bias, attrs


@pytest.mark.parametrize("name", list(CASES))
def test_qmatmul_plan_matches_reference(name: str) -> None:
    a, b, bias, attrs = build_case(name)
    g, node, want = qmatmul_graph(a, b, bias, attrs)
    got, ctx = run_lowered(g, node, [a])
    assert_matches(got, want, attrs)
    kernels = [lay.kernel for lay in ctx.plan.layers]
    assert kernels[-1] == "qgemm" and kernels.count("qgemm") == 1
    assert ("transpose" in kernels) == bool(attrs.get("transA")), kernels


def test_zero_point_terms_are_needed() -> None:
    """A plan that dropped the folded a_zero_point term (bias_i32) would be wrong: the check can fail."""
    a, b, bias, attrs = build_case("uint8_a_zero_point_requant_uint8")
    g, node, want = qmatmul_graph(a, b, bias, attrs)
    ctx = LowerCtx(g)
    lower_qmatmul(ctx, node)
    ctx.finish()
    layer = ctx.plan.layers[-1]
    assert layer.inputs[3] >= 0
    layer.inputs[3] = -1
    got = execute(ctx.plan, bytes(ctx.weights), [a])[0]
    assert not np.array_equal(got, want)


def test_weights_are_packed_n_by_k() -> None:
    a, b, bias, attrs = build_case("int8_per_column_bias_i32")
    g, node, _ = qmatmul_graph(a, b, bias, attrs)
    ctx = LowerCtx(g)
    lower_qmatmul(ctx, node)
    layer = ctx.plan.layers[-1]
    assert layer.ints == [5, 24, 48, 0, 0] and layer.floats == [1.0, 0.0]
    t = ctx.plan.tensors[layer.inputs[1]]
    assert t.shape == (24, 48) and t.kind == "weight"
    packed = np.frombuffer(bytes(ctx.weights), np.int8, count=24 * 48, offset=t.offset).reshape(24, 48)
    np.testing.assert_array_equal(packed, b.T)


@pytest.mark.parametrize("change, message", [
    ("runtime_b", "is not a constant"),
    ("b_zero_point", "outside int8"),
    ("mixed_fp8", "FP8 needs both"),
    ("float_out_without_y_scale", "float32 or float16 expected"),
])
def test_refusals_name_the_reason(change: str, message: str) -> None:
    rng = np.random.default_rng(3)
    a, b = q_data(rng, (4, 16), "int8"), q_data(rng, (16, 8), "int8")
    attrs: dict[str, Any] = {"a_scale": 0.1, "b_scale": [0.1]}
    if change == "b_zero_point":
        attrs["b_zero_point"] = [100]
    if change == "mixed_fp8":
        a = q_data(rng, (4, 16), "fp8")
    g, node, _ = qmatmul_graph(a, b, None, attrs, b_const=change != "runtime_b")
    if change == "float_out_without_y_scale":
        node.outputs[0].dtype = 3  # int8, with no y_scale to requantize by
    with pytest.raises(LoweringError, match=message):
        lower_qmatmul(LowerCtx(g), node)


def test_qmatmul_is_still_refused_on_the_gpu() -> None:
    """Until the H200 has run tests/cuda_kernels/test_qgemm_gpu.py, QMatMul stays in PENDING and lower() refuses it
    (the next GPU session drops the PENDING entry and flips this test)."""
    assert "ep_trtpy::QMatMul" in PENDING
    a, b, bias, attrs = build_case("int8_per_tensor")
    g, _, _ = qmatmul_graph(a, b, bias, attrs)
    with pytest.raises(LoweringError, match="no GPU kernel"):
        lower(g)
