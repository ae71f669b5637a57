"""The quantization family: QuantizeLinear / DequantizeLinear against ORT's CPU provider; ep_trtpy::QConv and
QMatMul against integer arithmetic written out by hand (exact), ORT's QLinearConv / QLinearMatMul (within one
step), and FP8 products computed in float64."""

from __future__ import annotations

import numpy as np
import pytest

from ep_trtpy.ops.registry import Info, OpError, run_infer, run_reference
from ep_trtpy.quantize.numerics import quantize, to_fp8
from graph_partitioner.ir import FLOAT, FLOAT8E4M3FN, INT8, INT32, Node, Value, np_dtype
from ops_harness import case, check, make_model, run_ort

RNG = np.random.default_rng(0)
F8 = np_dtype(FLOAT8E4M3FN)


def _x(*shape: int, scale: float = 3.0) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


@pytest.mark.parametrize("c", [
    case("q-int8-scalar", "QuantizeLinear", [_x(2, 3, 4), np.float32(0.05), np.int8(3)], const=(1, 2)),
    case("q-uint8-default-zp", "QuantizeLinear", [_x(6, 5), np.float32(0.02)], const=(1,)),
    case("q-per-axis", "QuantizeLinear", [_x(2, 3, 4), np.array([0.01, 0.03, 0.05], np.float32),
                                          np.array([0, -4, 9], np.int8)], {"axis": 1}, const=(1, 2), opset=13),
    case("q-per-axis-negative", "QuantizeLinear", [_x(4, 3), np.array([0.02, 0.05, 0.1], np.float32),
                                                   np.array([0, 1, 2], np.uint8)], {"axis": -1}, const=(1, 2)),
    case("q-ties", "QuantizeLinear", [np.array([0.5, 1.5, -2.5, 253.5, -300.0], np.float32), np.float32(1.0),
                                      np.int8(0)], const=(1, 2)),
    case("dq-int8", "DequantizeLinear", [RNG.integers(-128, 128, (3, 4)).astype(np.int8), np.float32(0.07),
                                         np.int8(-5)], const=(1, 2)),
    case("dq-int32-bias", "DequantizeLinear", [RNG.integers(-2 ** 20, 2 ** 20, 8).astype(np.int32),
                                               (RNG.random(8) * 1e-4).astype(np.float32)], {"axis": 0},
         const=(1,), opset=13),
    case("dq-per-axis-uint8", "DequantizeLinear", [RNG.integers(0, 256, (2, 3, 2)).astype(np.uint8),
                                                   np.array([0.1, 0.2, 0.3], np.float32),
                                                   np.array([128, 0, 255], np.uint8)], {"axis": 1}, const=(1, 2)),
    case("dq-fp8", "DequantizeLinear", [to_fp8(_x(3, 4, scale=100)), np.float32(0.25), np.zeros((), F8)],
         const=(0, 1, 2), opset=19),
], ids=repr)
def test_quantize_and_dequantize_match_ort(c):
    check(c)


def test_fp8_quantize_matches_ort():
    """ORT's Python binding hands float8 outputs back as their bits (uint8)."""
    c = case("q-fp8", "QuantizeLinear", [_x(4, 5, scale=200), np.float32(0.5), np.zeros((), F8)], const=(1, 2),
             opset=19)
    (want,) = run_ort(make_model(c, [FLOAT8E4M3FN]), {"x0": c.inputs[0]})
    node = _node("QuantizeLinear", {}, c.inputs)
    node.domain = ""
    (got,) = run_reference(node, c.inputs)
    assert got.dtype == F8 and np.array_equal(got.view(np.uint8), want.view(np.uint8))


def _node(op: str, attrs: dict, inputs: list[np.ndarray | None]) -> Node:
    n = Node(op, f"{op.lower()}_0", "ep_trtpy", attrs)
    for i, a in enumerate(inputs):
        n.inputs.append(None if a is None else Value(f"in{i}", const=a))
    n.outputs.append(Value("y"))
    return n


def _conv_by_loops(x: np.ndarray, zx: int, w: np.ndarray, zw: np.ndarray, pads: int, stride: int) -> np.ndarray:
    """The integer convolution sum, one multiply-add at a time (padding holds the zero point)."""
    n, c, hh, ww = x.shape
    m, _, r, s = w.shape
    xp = np.full((n, c, hh + 2 * pads, ww + 2 * pads), zx, np.int64)
    xp[:, :, pads:pads + hh, pads:pads + ww] = x
    oh, ow = (hh + 2 * pads - r) // stride + 1, (ww + 2 * pads - s) // stride + 1
    acc = np.zeros((n, m, oh, ow), np.int64)
    for b in range(n):
        for k in range(m):
            for i in range(oh):
                for j in range(ow):
                    win = xp[b, :, i * stride:i * stride + r, j * stride:j * stride + s].astype(np.int64) - zx
                    acc[b, k, i, j] = int(np.sum(win * (w[k].astype(np.int64) - zw[k])))
    return acc


def test_qconv_is_exact_integer_arithmetic():
    x = RNG.integers(-128, 128, (2, 3, 5, 5)).astype(np.int8)
    w = RNG.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    zw = np.zeros(4, np.int64)
    bias = RNG.integers(-500, 500, 4).astype(np.int32)
    x_scale, w_scale = 0.02, np.array([0.003, 0.001, 0.004, 0.002], np.float32)
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "dilations": [1, 1], "group": 1,
             "x_scale": x_scale, "x_zero_point": 7, "w_scale": w_scale.tolist(), "w_zero_point": [0] * 4,
             "y_scale": 0.05, "y_zero_point": -3, "y_type": INT8, "activation": "Relu"}
    (y,) = run_reference(_node("QConv", attrs, [x, w, bias]), [x, w, bias])
    acc = _conv_by_loops(x, 7, w, zw, 1, 2) + bias.reshape(1, 4, 1, 1)
    m = (np.float32(x_scale) * w_scale).reshape(1, 4, 1, 1)
    yf = np.maximum(acc.astype(np.float32) * m, np.float32(0))
    assert y.dtype == np.int8 and np.array_equal(y, quantize(yf, np.float32(0.05), -3, INT8))
    del attrs["y_scale"]
    (yfloat,) = run_reference(_node("QConv", attrs, [x, w, bias]), [x, w, bias])
    assert yfloat.dtype == np.float32 and np.array_equal(yfloat, yf)
    assert run_infer(_node("QConv", attrs, [x, w, bias]), [Info(INT8, x.shape), Info(INT8, w.shape),
                                                          Info(INT32, (4,))])[0] == Info(FLOAT, (2, 4, 3, 3))


def test_qconv_matches_ort_qlinearconv_within_one_step():
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    x = RNG.integers(-128, 128, (1, 8, 7, 7)).astype(np.int8)
    w = RNG.integers(-127, 128, (6, 4, 3, 3)).astype(np.int8)
    sx, zx, sy, zy = np.float32(0.03), np.int8(-2), np.float32(0.4), np.int8(5)
    sw = (RNG.random(6) * 0.01 + 0.001).astype(np.float32)
    node = h.make_node("QLinearConv", ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy"], ["y"], pads=[1, 1, 1, 1],
                       group=2)
    inits = [nh.from_array(a, n) for a, n in ((sx, "sx"), (zx, "zx"), (w, "w"), (sw, "sw"),
                                               (np.zeros(6, np.int8), "zw"), (sy, "sy"), (zy, "zy"))]
    g = h.make_graph([node], "g", [h.make_tensor_value_info("x", T.INT8, x.shape)],
                     [h.make_tensor_value_info("y", T.INT8, None)], inits)
    (want,) = run_ort(h.make_model(g, opset_imports=[h.make_opsetid("", 13)], ir_version=8), {"x": x})
    attrs = {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "group": 2,
             "x_scale": float(sx), "x_zero_point": int(zx), "w_scale": sw.tolist(), "w_zero_point": [0] * 6,
             "y_scale": float(sy), "y_zero_point": int(zy), "y_type": INT8}
    (got,) = run_reference(_node("QConv", attrs, [x, w]), [x, w])
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    assert diff.max() <= 1 and np.mean(diff == 0) > 0.95


def test_qmatmul_per_column_scales_transb_and_int32_bias_are_exact():
    a = RNG.integers(0, 256, (2, 3, 5)).astype(np.uint8)
    b = RNG.integers(-127, 128, (4, 5)).astype(np.int8)  # [N, K] with transB
    bias = RNG.integers(-900, 900, 4).astype(np.int32)
    sb = np.array([0.01, 0.02, 0.005, 0.03], np.float32)
    attrs = {"transA": 0, "transB": 1, "alpha": 1.0, "a_scale": 0.1, "a_zero_point": 128, "b_scale": sb.tolist(),
             "b_zero_point": [0] * 4, "activation": ""}
    (y,) = run_reference(_node("QMatMul", attrs, [a, b, bias]), [a, b, bias])
    acc = (a.astype(np.int64) - 128) @ b.astype(np.int64).T + bias
    assert np.array_equal(y, acc.astype(np.float32) * (np.float32(0.1) * sb))


def test_qmatmul_matches_ort_qlinearmatmul_within_one_step():
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    a = RNG.integers(-128, 128, (3, 16)).astype(np.int8)
    b = RNG.integers(-127, 128, (16, 5)).astype(np.int8)
    vals = {"sa": np.float32(0.05), "za": np.int8(1), "b": b, "sb": np.float32(0.02), "zb": np.int8(0),
            "sy": np.float32(0.3), "zy": np.int8(-1)}
    node = h.make_node("QLinearMatMul", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], ["y"])
    g = h.make_graph([node], "g", [h.make_tensor_value_info("a", T.INT8, a.shape)],
                     [h.make_tensor_value_info("y", T.INT8, None)], [nh.from_array(v, k) for k, v in vals.items()])
    (want,) = run_ort(h.make_model(g, opset_imports=[h.make_opsetid("", 13)], ir_version=8), {"a": a})
    attrs = {"a_scale": 0.05, "a_zero_point": 1, "b_scale": [0.02], "b_zero_point": [0], "y_scale": 0.3,
             "y_zero_point": -1, "y_type": INT8}
    (got,) = run_reference(_node("QMatMul", attrs, [a, b]), [a, b])
    assert np.abs(got.astype(np.int32) - want.astype(np.int32)).max() <= 1


def test_fp8_qmatmul_sums_exact_products_and_rounds_its_output_to_e4m3():
    a = to_fp8(_x(3, 8, scale=20))
    b = to_fp8(_x(8, 4, scale=20))
    attrs = {"a_scale": 0.5, "b_scale": [0.25], "y_scale": 2.0, "y_type": FLOAT8E4M3FN}
    (y,) = run_reference(_node("QMatMul", attrs, [a, b]), [a, b])
    acc = (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32)
    assert y.dtype == F8 and np.array_equal(y.astype(np.float32),
                                            to_fp8(acc * np.float32(0.125) / np.float32(2.0)).astype(np.float32))


@pytest.mark.parametrize("op, attrs, inputs, message", [
    ("QConv", {"w_scale": [1.0]}, [np.zeros((1, 1, 3, 3), np.int8), np.zeros((1, 1, 1, 1), np.int8)],
     r"QConv node 'qconv_0': has no x_scale attribute"),
    ("QConv", {"x_scale": 1.0, "w_scale": [1.0, 1.0]}, [np.zeros((1, 1, 3, 3), np.int8),
                                                          np.zeros((3, 1, 1, 1), np.int8)],
     r"w_scale has 2 entries for 3 output channels"),
    ("QMatMul", {"a_scale": 1.0, "b_scale": [1.0]}, [np.zeros((2, 2), np.float32), np.zeros((2, 2), np.int8)],
     r"input 0 \('in0'\) is float32; a quantized type \(int8, uint8, float8e4m3fn\) expected"),
    ("QMatMul", {"a_scale": 1.0, "b_scale": [1.0], "activation": "Tanh"},
     [np.zeros((2, 2), np.int8), np.zeros((2, 2), np.int8)], r"activation='Tanh' is not one of"),
])
def test_quantized_layer_errors_name_the_node_and_value(op, attrs, inputs, message):
    node = _node(op, attrs, inputs)
    with pytest.raises(OpError, match=message):
        run_reference(node, inputs)


def test_blocked_quantization_is_refused():
    c = case("blocked", "QuantizeLinear", [_x(4, 4), np.full((4, 2), 0.1, np.float32)], {"block_size": 2},
             const=(1,), opset=21)
    node = _node("QuantizeLinear", c.attrs, c.inputs)
    node.domain = ""
    with pytest.raises(OpError, match=r"block_size=2 \(blocked quantization\) is not supported"):
        run_reference(node, c.inputs)
    assert make_model(c, [INT8]) is not None
