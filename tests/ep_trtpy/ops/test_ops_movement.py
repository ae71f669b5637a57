"""Data movement ops: our references against onnxruntime's CPU provider (shape operands constant, so that
inference can fold)."""

from __future__ import annotations

import numpy as np
import pytest
from ops_harness import Case, case, check

RNG = np.random.default_rng(9)
F32, F16 = np.float32, np.float16


def rnd(*shape: int, dtype: type = F32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def ints(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


X = rnd(2, 3, 4)
XI = RNG.integers(-50, 50, (2, 3, 4))
XB = RNG.random((2, 3, 4)) < 0.5
BIG, SMALL = 2 ** 63 - 1, -(2 ** 63)
CASES: list[Case] = [
    case("Reshape-zero-copies-minus-one-infers", "Reshape", [X, ints(4, 0, -1)], const=(1,)),
    case("Reshape-allowzero", "Reshape", [np.zeros((0, 3), F32), ints(3, 0)], {"allowzero": 1}, opset=14, const=(1,)),
    case("Reshape-to-0d", "Reshape", [rnd(1, 1), ints()], const=(1,)),
    case("Reshape-zero-size-minus-one", "Reshape", [np.zeros((2, 0, 3), F32), ints(0, -1, 3)], const=(1,)),
    case("Reshape-bool", "Reshape", [XB, ints(-1)], const=(1,)),
    case("Reshape-i8", "Reshape", [XI.astype(np.int8), ints(6, 4)], const=(1,)),
    case("Flatten-default", "Flatten", [X]),
    case("Flatten-axis0", "Flatten", [X], {"axis": 0}),
    case("Flatten-axis-rank", "Flatten", [X], {"axis": 3}),
    case("Flatten-negative-axis", "Flatten", [X], {"axis": -1}),
    case("Squeeze-input-axes", "Squeeze", [rnd(1, 3, 1, 2), ints(-2)], const=(1,)),
    case("Squeeze-all-ones", "Squeeze", [rnd(1, 3, 1, 2)]),
    case("Squeeze-opset11-attr", "Squeeze", [rnd(1, 3, 1, 2)], {"axes": [0, 2]}, opset=11),
    case("Squeeze-to-0d", "Squeeze", [rnd(1, 1)]),
    case("Unsqueeze-input-axes", "Unsqueeze", [X, ints(-1, 0)], const=(1,)),
    case("Unsqueeze-opset11-attr", "Unsqueeze", [X], {"axes": [1, 4]}, opset=11),
    case("Unsqueeze-0d", "Unsqueeze", [np.float32(3.0), ints(0)], const=(1,)),
    case("Unsqueeze-i64", "Unsqueeze", [XI, ints(2)], const=(1,)),
    case("Identity-f32", "Identity", [X]),
    case("Identity-0d-i64", "Identity", [np.int64(4)]),
    case("Dropout-one-output", "Dropout", [X]),
    case("Dropout-inference-mask", "Dropout", [X, np.float32(0.5), np.bool_(False)], n_outputs=2, const=(1, 2)),
    case("Dropout-opset12-mask", "Dropout", [X], n_outputs=2, opset=12),
    case("Dropout-opset10-mask", "Dropout", [X], {"ratio": 0.3}, n_outputs=2, opset=10),
    case("Dropout-opset7-mask", "Dropout", [X], n_outputs=2, opset=7),
    case("Transpose-default-reverses", "Transpose", [X]),
    case("Transpose-perm", "Transpose", [X], {"perm": [1, 2, 0]}),
    case("Transpose-f16", "Transpose", [X.astype(F16)], {"perm": [0, 2, 1]}),
    case("Transpose-bool", "Transpose", [XB], {"perm": [2, 0, 1]}),
    case("Concat-negative-axis-with-empty", "Concat", [X, rnd(2, 1, 4), np.zeros((2, 0, 4), F32)], {"axis": -2}),
    case("Concat-i64-1d", "Concat", [ints(1, 2), ints(3)], {"axis": 0}),
    case("Concat-single", "Concat", [X], {"axis": 2}),
    case("Concat-f16", "Concat", [X.astype(F16), X.astype(F16)], {"axis": 0}),
    case("Split-equal", "Split", [rnd(6, 4)], {"axis": 0}, n_outputs=3),
    case("Split-input-sizes", "Split", [rnd(6, 4), ints(1, 3)], {"axis": -1}, n_outputs=2, const=(1,)),
    case("Split-input-sizes-with-zero", "Split", [rnd(6, 4), ints(2, 0, 4)], {"axis": 0}, n_outputs=3, const=(1,)),
    case("Split-opset11-attr", "Split", [rnd(6, 4)], {"axis": 0, "split": [1, 5]}, n_outputs=2, opset=11),
    case("Split-opset18-num-outputs-uneven", "Split", [rnd(7, 4)], {"axis": 0, "num_outputs": 3}, n_outputs=3,
         opset=18),
    case("Split-opset18-num-outputs-even", "Split", [rnd(2, 6)], {"axis": 1, "num_outputs": 3}, n_outputs=3,
         opset=18),
    case("Slice-basic", "Slice", [X, ints(1, -3), ints(100, -1), ints(-1, 1)], const=(1, 2, 3)),
    case("Slice-negative-steps", "Slice", [X, ints(-1, 10), ints(-100, 0), ints(2, 1), ints(-2, -1)],
         const=(1, 2, 3, 4)),
    case("Slice-negative-step-1d", "Slice", [rnd(10), ints(8), ints(1), ints(0), ints(-3)], const=(1, 2, 3, 4)),
    case("Slice-empty-result", "Slice", [rnd(10), ints(5), ints(2)], const=(1, 2)),
    case("Slice-int64-max-end", "Slice", [rnd(10, 3), ints(2), ints(BIG), ints(0), ints(3)], const=(1, 2, 3, 4)),
    case("Slice-int64-min-end-reverse", "Slice", [rnd(10, 3), ints(-1), ints(SMALL), ints(0), ints(-1)],
         const=(1, 2, 3, 4)),
    case("Slice-i32-operands", "Slice", [X, np.array([0], np.int32), np.array([2], np.int32),
                                         np.array([2], np.int32)], const=(1, 2, 3)),
    case("Slice-opset9-attrs", "Slice", [X], {"starts": [1], "ends": [3], "axes": [2]}, opset=9),
    case("Slice-i64-data", "Slice", [XI, ints(0), ints(1), ints(1)], const=(1, 2, 3)),
    case("Gather-negative-indices", "Gather", [X, ints(-1, 0, 1)], {"axis": 1}),
    case("Gather-0d-index", "Gather", [X, np.int32(2)], {"axis": -1}),
    case("Gather-2d-indices", "Gather", [X, np.array([[0, 1], [1, 1]], np.int64)], {"axis": 0}),
    case("Gather-const-indices", "Gather", [X, ints(2, 0)], {"axis": 2}, const=(1,)),
    case("Gather-shape-vector", "Gather", [ints(5, 6, 7), ints(0, 2)], {"axis": 0}, const=(0, 1)),
    case("Gather-empty-indices", "Gather", [X, np.zeros((0,), np.int64)], {"axis": 1}),
    case("Gather-bool", "Gather", [XB, ints(1)], {"axis": 2}),
    case("GatherElements-axis1-negative", "GatherElements", [X, RNG.integers(-3, 3, (2, 5, 4))], {"axis": 1}),
    case("GatherElements-smaller-index-dims", "GatherElements", [X, RNG.integers(0, 4, (1, 2, 6)).astype(np.int32)],
         {"axis": -1}),
    case("GatherElements-const-i64-data", "GatherElements", [XI, RNG.integers(0, 2, (2, 3, 4))], {"axis": 0},
         const=(0, 1)),
    case("GatherElements-bool-1d", "GatherElements", [XB.reshape(-1), ints(3, -1, 0)]),
    case("GatherND-elements", "GatherND", [X, np.array([[[0, 2, 3]], [[1, -1, 0]]], np.int64)]),
    case("GatherND-rows", "GatherND", [X, np.array([[1, 0], [0, -2]], np.int64)]),
    case("GatherND-batch-dims", "GatherND", [X, np.array([[[2], [0]], [[-1], [1]]], np.int64)], {"batch_dims": 1}),
    case("GatherND-const-bool", "GatherND", [XB, np.array([[0, 1, 1], [1, 2, 3]], np.int64)], const=(0, 1)),
    case("Expand-bidirectional", "Expand", [rnd(3, 1), ints(2, 1, 4)], const=(1,)),
    case("Expand-keeps-larger-dims", "Expand", [rnd(3, 4), ints(1, 1)], const=(1,)),
    case("Expand-0d", "Expand", [np.float32(2.0), ints(2, 3)], const=(1,)),
    case("Expand-i64", "Expand", [ints(1, 2, 3), ints(2, 3)], const=(1,)),
    case("Tile", "Tile", [X, ints(1, 2, 3)], const=(1,)),
    case("Tile-zero-repeat", "Tile", [X, ints(1, 0, 1)], const=(1,)),
    case("Tile-i64", "Tile", [ints(1, 2), ints(3)], const=(1,)),
]
for mode in ("constant", "reflect", "edge", "wrap"):
    CASES.append(case(f"Pad-{mode}", "Pad", [X, ints(0, 1, 2, 1, 2, 1)], {"mode": mode}, const=(1,), opset=19))
    CASES.append(case(f"Pad-{mode}-f16", "Pad", [X.astype(F16), ints(1, 0, 1, 0, 2, 1)], {"mode": mode}, const=(1,),
                      opset=19))
CASES += [
    case("Pad-negative-crops", "Pad", [X, ints(0, -1, 2, 1, 2, -2)], {"mode": "constant"}, const=(1,)),
    case("Pad-constant-value", "Pad", [X, ints(0, 1, 2, 1, 2, 1), np.float32(3.5)], const=(1, 2)),
    case("Pad-runtime-constant-value", "Pad", [X, ints(0, 1, 0, 0, 1, 0), np.float32(-2.0)], const=(1,)),
    case("Pad-opset18-axes", "Pad", [X, ints(1, 2, 3, 4), np.float32(-1), ints(-1, 0)], const=(1, 2, 3), opset=18),
    case("Pad-opset2-attrs", "Pad", [X], {"pads": [0, 1, 2, 1, 2, 1], "value": 2.0}, opset=2),
    case("Pad-i64", "Pad", [ints(1, 2, 3), ints(1, 2)], const=(1,)),
    case("Pad-i32-value", "Pad", [XI.astype(np.int32), ints(0, 0, 1, 0, 0, 1), np.int32(-7)], const=(1, 2)),
    case("Pad-zero-size-input", "Pad", [np.zeros((0, 2), F32), ints(1, 1, 1, 1)], const=(1,)),
]


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_movement_against_onnxruntime(c: Case) -> None:
    check(c)
