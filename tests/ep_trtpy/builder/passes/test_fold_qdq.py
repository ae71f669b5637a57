"""fold_qdq: Q/DQ pairs around Conv / MatMul / Gemm -> QConv / QMatMul; data movement on int8 directly."""

from __future__ import annotations

import numpy as np
import pytest

from builder_testutil import GB, apply, ctx_for, feeds_for, ops, run
from ep_trtpy.quantize.numerics import quantize_weights
from graph_partitioner.ir import INT8, INT32

RNG = np.random.default_rng(0)


def _qdq(gb: GB, x, scale: float, zero: int = 0, name: str = "t"):
    s, z = gb.const(np.float32(scale), f"{name}_s"), gb.const(np.int8(zero), f"{name}_z")
    return gb.op("DequantizeLinear", [gb.op("QuantizeLinear", [x, s, z]), s, z])


def _weight(gb: GB, w: np.ndarray, axis: int, name: str = "w"):
    wq, scale = quantize_weights(w, axis)
    return gb.op("DequantizeLinear", [gb.const(wq, f"{name}_q"), gb.const(scale, f"{name}_s"),
                                      gb.const(np.zeros(scale.shape, np.int8), f"{name}_z")], {"axis": axis})


def _conv_chain(bias_scale_ok: bool = True, act: str | None = "Relu", out_q: bool = True):
    """x -> Q/DQ -> Conv(DQ(w), DQ(b int32)) -> act -> Q/DQ -> output."""
    gb = GB()
    x = gb.input("x", (2, 3, 6, 6))
    xs = 0.05
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3
    wq, ws = quantize_weights(w, 0)
    dw = gb.op("DequantizeLinear", [gb.const(wq, "wq"), gb.const(ws, "ws"), gb.const(np.zeros(4, np.int8), "wz")],
               {"axis": 0})
    bscale = (np.float32(xs) * ws) if bias_scale_ok else ws * np.float32(2.0)
    bq = RNG.integers(-300, 300, 4).astype(np.int32)
    db = gb.op("DequantizeLinear", [gb.const(bq, "bq"), gb.const(bscale.astype(np.float32), "bs")], {"axis": 0})
    y = gb.op("Conv", [_qdq(gb, x, xs, name="x"), dw, db], {"pads": [1, 1, 1, 1]}, name="conv")
    if act:
        y = gb.op(act, [y])
    if out_q:
        y = _qdq(gb, y, 0.04, -10, "y")
    return gb.output(y)


@pytest.mark.parametrize("bias_scale_ok", [True, False])
def test_conv_with_relu_and_output_q_becomes_one_qconv(bias_scale_ok):
    g = _conv_chain(bias_scale_ok)
    before = g.copy()
    apply(g, ["fold_qdq", "eliminate_dead_nodes"])
    assert ops(g) == ["QuantizeLinear", "QConv", "DequantizeLinear"]
    qc = g.nodes[1]
    assert qc.attrs["activation"] == "Relu" and qc.attrs["x_scale"] == pytest.approx(0.05)
    assert qc.attrs["y_zero_point"] == -10 and qc.attrs["y_type"] == INT8 and qc.outputs[0].dtype == INT8
    assert qc.inputs[0].dtype == INT8 and qc.inputs[1].const.dtype == np.int8
    assert qc.inputs[2].dtype == (INT32 if bias_scale_ok else 1)  # int32 only when its scale is x_scale * w_scale
    apply(before, [])
    feeds = feeds_for(before)
    (want,), (got,) = run(before, feeds), run(g, feeds)
    assert np.abs(got - want).max() <= 0.04 + 1e-6  # within one output step (mostly equal)
    assert np.mean(got == want) > 0.95


def test_a_float_reader_keeps_a_float32_output():
    g = _conv_chain(act=None, out_q=False)
    apply(g, ["fold_qdq", "eliminate_dead_nodes"])
    assert ops(g) == ["QuantizeLinear", "QConv"]
    assert "y_scale" not in g.nodes[1].attrs and g.nodes[1].outputs[0].dtype == 1


def test_int8_flows_between_layers_and_through_data_movement():
    gb = GB()
    x = gb.input("x", (2, 3, 8, 8))
    y = gb.op("Conv", [_qdq(gb, x, 0.05, name="x"), _weight(gb, RNG.standard_normal((4, 3, 3, 3)) * 0.3, 0, "w1")],
              {"pads": [1, 1, 1, 1]}, name="c1")
    y = _qdq(gb, gb.op("Relu", [y]), 0.03, -128, "r1")
    y = _qdq(gb, gb.op("MaxPool", [y], {"kernel_shape": [2, 2], "strides": [2, 2]}), 0.03, -128, "p")
    y = _qdq(gb, gb.op("Flatten", [y]), 0.03, -128, "f")
    y = gb.op("Gemm", [y, _weight(gb, RNG.standard_normal((5, 64)) * 0.1, 0, "wf")], {"transB": 1}, name="fc")
    g = gb.output(y)
    before = g.copy()
    apply(g, ["fold_qdq", "eliminate_dead_nodes"])
    assert ops(g) == ["QuantizeLinear", "QConv", "MaxPool", "Flatten", "QMatMul"]
    assert all(n.outputs[0].dtype == INT8 for n in g.nodes[:4])
    apply(before, [])
    feeds = feeds_for(before)
    np.testing.assert_allclose(run(g, feeds)[0], run(before, feeds)[0], rtol=1e-5, atol=1e-5)


def test_pass_through_needs_the_same_scale_on_both_sides():
    gb = GB()
    x = gb.input("x", (2, 6))
    y = _qdq(gb, gb.op("Transpose", [_qdq(gb, x, 0.1, name="a")], {"perm": [1, 0]}), 0.2, name="b")
    g = gb.output(y)
    apply(g, ["fold_qdq"])
    assert "Transpose" in ops(g) and g.nodes[ops(g).index("Transpose")].outputs[0].dtype == 1


@pytest.mark.parametrize("what", ["weight axis", "per-axis activation", "runtime bias"])
def test_refusals_leave_the_float_layer_and_say_why(what):
    gb = GB()
    x = gb.input("x", (3, 8))
    b = gb.input("b", (5,)) if what == "runtime bias" else None
    if what == "per-axis activation":
        s = gb.const(np.full(8, 0.1, np.float32), "xs")
        z = gb.const(np.zeros(8, np.int8), "xz")
        xin = gb.op("DequantizeLinear", [gb.op("QuantizeLinear", [x, s, z], {"axis": 1}), s, z], {"axis": 1})
    else:
        xin = _qdq(gb, x, 0.1, name="x")
    w = _weight(gb, RNG.standard_normal((8, 5)), 0 if what == "weight axis" else 1, "w")
    g = gb.output(gb.op("Gemm", [xin, w] + ([b] if b is not None else []), name="fc"))
    ctx = apply(g, ["fold_qdq"])
    assert "Gemm" in ops(g) and "QMatMul" not in ops(g)
    expected = {"weight axis": "quantizes the weight along axis 0, not along its output channels (axis 1)",
                "per-axis activation": "is not per-tensor", "runtime bias": "its bias 'b' is not a constant"}[what]
    assert any("Gemm 'fc' stays float" in r and expected in r for r in ctx.refusals), ctx.refusals


def test_attention_style_matmul_of_two_activations():
    gb = GB()
    a, b = gb.input("a", (2, 4, 8)), gb.input("b", (2, 8, 3))
    g = gb.output(gb.op("MatMul", [_qdq(gb, a, 0.05, name="a"), _qdq(gb, b, 0.07, 3, "b")], name="mm"))
    before = g.copy()
    apply(g, ["fold_qdq", "eliminate_dead_nodes"])
    assert ops(g) == ["QuantizeLinear", "QuantizeLinear", "QMatMul"]
    apply(before, [])
    feeds = feeds_for(before)
    np.testing.assert_allclose(run(g, feeds)[0], run(before, feeds)[0], rtol=1e-5, atol=1e-6)


def test_the_cuda_backend_leaves_qdq_models_alone():
    g = _conv_chain()
    apply(g, ["fold_qdq"], ctx_for(backend="cuda"))
    assert "Conv" in ops(g) and "QConv" not in ops(g)


def test_a_matmuls_bias_add_and_relu_fold_in():
    gb = GB()
    x = gb.input("x", (3, 8))
    y = gb.op("MatMul", [_qdq(gb, x, 0.05, name="x"), _weight(gb, RNG.standard_normal((8, 6)) * 0.3, 1, "w")],
              name="mm")
    y = gb.op("Relu", [gb.op("Add", [gb.const(RNG.standard_normal(6).astype(np.float32), "bias"), y])])
    g = gb.output(_qdq(gb, y, 0.02, -128, "y"))
    before = g.copy()
    apply(g, ["fold_qdq", "eliminate_dead_nodes"])
    assert ops(g) == ["QuantizeLinear", "QMatMul", "DequantizeLinear"]
    qm = g.nodes[1]
    assert len(qm.inputs) == 3 and qm.inputs[2].dtype == 1 and qm.attrs["activation"] == "Relu"
    apply(before, [])
    feeds = feeds_for(before)
    assert np.abs(run(g, feeds)[0] - run(before, feeds)[0]).max() <= 0.02 + 1e-6
