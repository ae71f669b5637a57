"""Shape, Size, ConstantOfShape, Range, Constant: our references against onnxruntime's CPU provider, and the
inference values that make shape arithmetic fold."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from ops_harness import Case, case, check, ir_node

from ep_trtpy.ops.registry import Info, run_infer
from graph_partitioner.ir import FLOAT, INT64

X = np.zeros((2, 3, 4), np.float32)


def ints(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


def tensor(t: int, vals: list) -> object:
    return helper.make_tensor("value", t, [1], vals)


CASES: list[Case] = [
    case("Shape", "Shape", [X]),
    case("Shape-0d", "Shape", [np.float32(1.0)]),
    case("Shape-zero-size", "Shape", [np.zeros((0, 5), np.int64)]),
    case("Shape-opset15-start", "Shape", [X], {"start": -2}, opset=15),
    case("Shape-opset15-start-end", "Shape", [X], {"start": 1, "end": -1}, opset=15),
    case("Shape-opset15-clamped", "Shape", [X], {"start": -10, "end": 10}, opset=15),
    case("Shape-opset15-empty", "Shape", [X], {"start": 2, "end": 1}, opset=15),
    case("Size", "Size", [X]),
    case("Size-zero", "Size", [np.zeros((0, 3), np.float32)]),
    case("Size-0d", "Size", [np.int32(3)]),
    case("ConstantOfShape-default-float-zero", "ConstantOfShape", [ints(2, 3)], const=(0,)),
    case("ConstantOfShape-int64", "ConstantOfShape", [ints(2, 3)], {"value": tensor(TensorProto.INT64, [7])},
         const=(0,)),
    case("ConstantOfShape-f16-0d", "ConstantOfShape", [np.zeros((0,), np.int64)],
         {"value": tensor(TensorProto.FLOAT16, [1.5])}, const=(0,)),
    case("ConstantOfShape-bool-zero-size", "ConstantOfShape", [ints(0, 4)], {"value": tensor(TensorProto.BOOL, [1])},
         const=(0,)),
    case("Range-i64", "Range", [np.int64(1), np.int64(10), np.int64(3)], const=(0, 1, 2)),
    case("Range-i32-negative-delta", "Range", [np.int32(10), np.int32(1), np.int32(-3)], const=(0, 1, 2)),
    case("Range-f32", "Range", [np.float32(0.5), np.float32(10.1), np.float32(0.7)], const=(0, 1, 2)),
    case("Range-empty", "Range", [np.float32(5), np.float32(1), np.float32(1)], const=(0, 1, 2)),
    case("Range-i64-large", "Range", [np.int64(2 ** 40), np.int64(2 ** 40 + 7), np.int64(2)], const=(0, 1, 2)),
    case("Constant-tensor", "Constant", [], {"value": helper.make_tensor("v", TensorProto.FLOAT, [2], [1, 2])}),
    case("Constant-value-float", "Constant", [], {"value_float": 2.5}),
    case("Constant-value-ints", "Constant", [], {"value_ints": [1, 2]}),
    case("Constant-value-int", "Constant", [], {"value_int": 7}),
    case("Constant-value-floats", "Constant", [], {"value_floats": [0.5, -1.0]}),
]


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_shape_ops_against_onnxruntime(c: Case) -> None:
    check(c)


def test_shape_and_size_values_come_from_shapes_alone() -> None:
    x = Info(FLOAT, (2, 3, 4))  # no value
    node = ir_node(helper.make_node("Shape", ["x"], ["y"], start=1), [X], (), 15)
    (s,) = run_infer(node, [x])
    assert s.dtype == INT64 and s.value is not None and s.value.tolist() == [3, 4]
    node = ir_node(helper.make_node("Size", ["x"], ["y"]), [X], (), 13)
    (n,) = run_infer(node, [x])
    assert n.shape == () and int(n.value) == 24


def test_range_float_is_start_plus_i_delta() -> None:
    """ONNX defines Range as start + i * delta (onnxruntime accumulates, which drifts for long ranges): we follow
    the definition, computed in float64 and rounded once."""
    from ep_trtpy.ops.registry import run_reference

    start, limit, delta = np.float32(0.1), np.float32(1000.1), np.float32(0.3)
    node = ir_node(helper.make_node("Range", ["a", "b", "c"], ["y"]), [start, limit, delta], (), 11)
    got = run_reference(node, [start, limit, delta])[0]
    want = (np.float64(start) + np.arange(len(got)) * np.float64(delta)).astype(np.float32)
    assert len(got) == int(np.ceil((np.float64(limit) - np.float64(start)) / np.float64(delta)))
    np.testing.assert_array_equal(got, want)
