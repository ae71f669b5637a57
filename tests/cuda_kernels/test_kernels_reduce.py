"""GPU tests of the ``reduce``, ``argmax`` and ``argmin`` kernels (cuda_kernels/kernels/reduce.cu): every op and
dtype over the three launch shapes (a warp per row for R <= 1024, a block per row above, 32 x 8 column blocks when
inner > 1), non-adjacent axes (transpose first), keepdims / noop_with_empty_axes, empty and zero-size tensors,
NaN propagation, ties and select_last_index. References: ONNX Runtime's CPU provider, or numpy where the kernels
document their own choice (NaN, empty reductions). See kernel_harness.py."""

from __future__ import annotations

import numpy as np
import pytest
from kernel_harness import Case, In, check_case, fp16_case, gpu_marks, ir_graph, node_case, rand

pytestmark = gpu_marks

FLOAT_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
             "ReduceSumSquare", "ReduceLogSumExp"]
INT_OPS = ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"]

# (shape, axes): warp rows, block rows (R > 1024), columns with several inner widths, all axes, non-adjacent axes
LAYOUTS = [
    ((7, 33), [1]),
    ((3, 1024), [-1]),
    ((2, 1025), [1]),
    ((3, 5000), [1]),
    ((1, 70000), [1]),
    ((4, 37, 1), [1]),
    ((4, 37, 31), [1]),
    ((2, 300, 33), [1]),
    ((2000, 5), [0]),
    ((3, 4, 5, 6), [0, 2]),
    ((3, 4, 5, 6), [1, 3]),
    ((3, 4, 5, 6), None),
    ((6,), [0]),
]


def _x(shape: tuple, op: str, dtype: type, seed: int) -> np.ndarray:
    if op == "ReduceProd":
        x = rand(shape, np.float32, seed, low=0.97, high=1.03)
    else:
        x = rand(shape, np.float32, seed, low=-2.0, high=2.0)
    return x.astype(dtype)


def _inputs(x: np.ndarray, axes: list[int] | None) -> list[In | None]:
    return [In("x", x)] + ([In("axes", np.array(axes, np.int64), const=True)] if axes is not None else [])


@pytest.mark.parametrize("shape,axes", LAYOUTS)
@pytest.mark.parametrize("op", FLOAT_OPS)
def test_reduce_float32(op: str, shape: tuple, axes: list[int] | None) -> None:
    x = _x(shape, op, np.float32, 1)
    check_case(node_case(op, _inputs(x, axes), {"keepdims": 1}), rtol=2e-5, atol=2e-4)


@pytest.mark.parametrize("shape,axes", [lay for lay in LAYOUTS[:9] if np.prod(lay[0]) < 60000])
@pytest.mark.parametrize("op", FLOAT_OPS)
def test_reduce_float16_accumulates_in_float32(op: str, shape: tuple, axes: list[int] | None) -> None:
    x = _x(shape, op, np.float32, 2)
    r = int(np.prod([shape[a] for a in axes])) if axes is not None else int(np.prod(shape))
    # the reference sums the same fp16 values in float32; an fp16 accumulator would be off by far more than this
    scale = np.sqrt(r) if op in ("ReduceSum", "ReduceL1", "ReduceSumSquare") else 1.0
    check_case(fp16_case(op, _inputs(x, axes), {"keepdims": 0}), rtol=3e-3, atol=3e-3 * scale)


@pytest.mark.parametrize("shape,axes", [((7, 33), [1]), ((2, 3000), [1]), ((4, 37, 31), [1]), ((3, 4, 5), [0, 2])])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("op", INT_OPS)
def test_reduce_int(op: str, dtype: type, shape: tuple, axes: list[int]) -> None:
    low, high = (-1, 2) if op == "ReduceProd" else (-1000, 1000)  # products of +-1: no overflow
    x = rand(shape, dtype, 3, low=low, high=high)
    check_case(node_case(op, _inputs(x, axes), {"keepdims": 1}), exact=True)


@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceL2", "ReduceLogSumExp"])
def test_reduce_attribute_forms(op: str, keepdims: int) -> None:
    x = rand((3, 4, 5), np.float32, 4)
    check_case(node_case(op, [In("x", x)], {"axes": [0, 1], "keepdims": keepdims}, opset=13 if op != "ReduceSum"
                         else 11), rtol=2e-5, atol=2e-5)
    check_case(node_case(op, [In("x", x)], {"keepdims": keepdims}), rtol=2e-5, atol=2e-5)  # all axes


@pytest.mark.parametrize("op", FLOAT_OPS)
def test_reduce_noop_with_empty_axes(op: str) -> None:
    x = _x((3, 5), op, np.float32, 5)
    check_case(node_case(op, [In("x", x), In("axes", np.zeros(0, np.int64), const=True)], {"noop_with_empty_axes": 1},
                         ref="onnx"), rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("op", FLOAT_OPS)
def test_reduce_empty_axis_gives_the_identity(op: str) -> None:
    x = np.zeros((3, 0, 4), np.float32)
    identity = {"ReduceSum": 0.0, "ReduceMean": 0.0, "ReduceMax": -np.inf, "ReduceMin": np.inf, "ReduceProd": 1.0,
                "ReduceL1": 0.0, "ReduceL2": 0.0, "ReduceSumSquare": 0.0, "ReduceLogSumExp": -np.inf}[op]
    inputs = _inputs(x, [1])
    expected = [np.full((3, 1, 4), identity, np.float32)]
    check_case(Case(ir_graph(op, inputs, {"keepdims": 1}, expected, 18), [x], expected, None), exact=True,
               kernels=["reduce"])


def test_reduce_zero_size_outer() -> None:
    x = np.zeros((0, 7), np.float32)
    check_case(node_case("ReduceSum", _inputs(x, [1])), exact=True)


@pytest.mark.parametrize("shape,axes", [((5, 40), [1]), ((2, 2000), [1]), ((3, 50, 40), [1])])
def test_reduce_max_min_propagate_nan(shape: tuple, axes: list[int]) -> None:
    """max/min propagate NaN (numpy's choice, documented in reduce.cu); ORT CPU may not, so numpy is the reference."""
    x = rand(shape, np.float32, 6)
    x[0].reshape(-1)[3] = np.nan
    for op, fn in (("ReduceMax", np.max), ("ReduceMin", np.min)):
        expected = [fn(x, axis=tuple(axes), keepdims=True)]
        inputs = _inputs(x, axes)
        check_case(Case(ir_graph(op, inputs, {"keepdims": 1}, expected, 18), [x], expected, None), exact=True)


def test_logsumexp_is_shift_stable_and_handles_infinities() -> None:
    x = np.array([[1000.0, 1000.5, 999.0], [-np.inf, -np.inf, -np.inf], [-np.inf, 0.0, 1.0], [np.inf, 1.0, 2.0]],
                 np.float32)
    expected = [np.array([[1000.0 + np.log(1 + np.exp(0.5) + np.exp(-1.0))], [-np.inf], [np.log(1 + np.e)],
                          [np.inf]], np.float32)]
    inputs = _inputs(x, [1])
    check_case(Case(ir_graph("ReduceLogSumExp", inputs, {"keepdims": 1}, expected, 18), [x], expected, None),
               rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 64, 56, 56), (2, 5, 11), (1, 2, 3, 4, 5), (0, 3, 4, 4)])
def test_global_pool(op: str, shape: tuple) -> None:
    x = rand(shape, np.float32, 7)
    check_case(node_case(op, [In("x", x)]), rtol=2e-5, atol=2e-5, kernels=["reduce"])
    if shape[0]:
        check_case(fp16_case(op, [In("x", x)]), rtol=3e-3, atol=3e-3, kernels=["reduce"])


def _arg_reference(x: np.ndarray, axis: int, keepdims: int, last: int, select_min: bool) -> np.ndarray:
    v = np.flip(x, axis) if last else x
    idx = np.argmin(v, axis=axis) if select_min else np.argmax(v, axis=axis)  # first NaN wins, as in numpy
    if last:
        idx = x.shape[axis] - 1 - idx
    return np.expand_dims(idx, axis).astype(np.int64) if keepdims else idx.astype(np.int64)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("shape,axis", [((7, 33), 1), ((3, 2000), -1), ((4, 37, 31), 1), ((2000, 3), 0),
                                        ((5,), 0), ((2, 3, 4), 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int32, np.int64])
@pytest.mark.parametrize("keepdims,last", [(1, 0), (0, 1)])
def test_argmax_argmin(op: str, shape: tuple, axis: int, dtype: type, keepdims: int, last: int) -> None:
    x = rand(shape, dtype, 8, low=-4, high=4)
    if np.dtype(dtype).kind == "f":
        x = np.round(x * 2).astype(dtype) / 2  # coarse values: plenty of ties
    expected = [_arg_reference(x, axis % len(shape), keepdims, last, op == "ArgMin")]
    inputs = [In("x", x)]
    attrs = {"axis": axis, "keepdims": keepdims, "select_last_index": last}
    check_case(Case(ir_graph(op, inputs, attrs, expected, 18), [x], expected, None), exact=True,
               kernels=[op.lower()])


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
def test_argmax_vs_ort(op: str) -> None:
    x = rand((6, 50, 9), np.float32, 9)
    for axis in (0, 1, 2):
        check_case(node_case(op, [In("x", x)], {"axis": axis, "keepdims": 0}), exact=True)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
def test_argmax_nan_wins(op: str) -> None:
    x = rand((4, 100), np.float32, 10)
    x[1, 17] = np.nan
    x[2, 5] = np.nan
    x[2, 90] = np.nan
    expected = [_arg_reference(x, 1, 1, 0, op == "ArgMin")]
    check_case(Case(ir_graph(op, [In("x", x)], {"axis": 1}, expected, 18), [x], expected, None), exact=True)
