"""Reductions, ArgMax/ArgMin, global pools: our references against onnxruntime's CPU provider."""

from __future__ import annotations

import numpy as np
import pytest
from ops_harness import Case, case, check

RNG = np.random.default_rng(77)
F32, F16, I32, I64 = np.float32, np.float16, np.int32, np.int64
REDUCE = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare",
          "ReduceLogSumExp")


def axes(*v: int) -> np.ndarray:
    return np.array(v, I64)


X = RNG.uniform(-2, 2, (2, 3, 4)).astype(F32)
CASES: list[Case] = []
for op in REDUCE:
    tol = dict(rtol=1e-5, atol=1e-5)
    # axes as an attribute (ReduceSum < 13, the others < 18)
    CASES.append(case(f"{op}-attr-axes-keepdims0", op, [X], {"axes": [-1, 0], "keepdims": 0}, opset=11, **tol))
    CASES.append(case(f"{op}-attr-all-axes", op, [X], {}, opset=11, **tol))
    # axes as an input
    CASES.append(case(f"{op}-input-axes", op, [X, axes(1)], {}, opset=18, const=(1,), **tol))
    CASES.append(case(f"{op}-input-negative-axes-keepdims0", op, [X, axes(-1, -3)], {"keepdims": 0}, opset=18,
                      const=(1,), **tol))
    CASES.append(case(f"{op}-input-empty-axes-reduces-all", op, [X, axes()], {}, opset=18, const=(1,), **tol))
    CASES.append(case(f"{op}-noop-with-empty-axes", op, [X, axes()], {"noop_with_empty_axes": 1}, opset=18,
                      const=(1,), **tol))
    CASES.append(case(f"{op}-no-axes-input", op, [X], {"keepdims": 0}, opset=18, **tol))
    CASES.append(case(f"{op}-f16", op, [X.astype(F16), axes(2)], {}, opset=18, const=(1,)))
    CASES.append(case(f"{op}-0d", op, [np.float32(1.5)], {}, opset=18, **tol))
    CASES.append(case(f"{op}-zero-size-reduced", op, [np.zeros((2, 0, 3), F32), axes(1)], {}, opset=18, const=(1,)))
    CASES.append(case(f"{op}-zero-size-kept", op, [np.zeros((0, 3), F32), axes(1)], {}, opset=18, const=(1,)))
CASES.append(case("ReduceSum-opset13-input-axes", "ReduceSum", [X, axes(0, 2)], {"keepdims": 0}, opset=13, const=(1,)))
CASES.append(case("ReduceMean-opset13-attr-axes", "ReduceMean", [X], {"axes": [1]}, opset=13))
INTS = RNG.integers(-5, 6, (3, 4))
for op in ("ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"):
    for dt in (I32, I64):
        CASES.append(case(f"{op}-{np.dtype(dt).name}", op, [INTS.astype(dt), axes(1)], {"keepdims": 0}, opset=18,
                          const=(1,)))
for op in ("ArgMax", "ArgMin"):
    ties = np.array([[1, 3, 3, 0], [2, 0, 0, 2], [5, 5, 5, 5]], F32)
    for last in (0, 1):
        CASES.append(case(f"{op}-ties-last{last}", op, [ties], {"axis": -1, "select_last_index": last}))
        CASES.append(case(f"{op}-axis0-keepdims0-last{last}", op, [ties], {"axis": 0, "keepdims": 0,
                                                                          "select_last_index": last}))
    CASES.append(case(f"{op}-i32", op, [INTS.astype(I32)], {"axis": 1}))
    CASES.append(case(f"{op}-i64", op, [INTS.astype(I64)], {"axis": -2, "keepdims": 0}))
    CASES.append(case(f"{op}-f16", op, [X.astype(F16)], {"axis": 1}))
    CASES.append(case(f"{op}-opset11", op, [X], {"axis": 2}, opset=11))
    CASES.append(case(f"{op}-zero-size-kept", op, [np.zeros((0, 3), F32)], {"axis": 1}))


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_reduce_against_onnxruntime(c: Case) -> None:
    check(c)


def test_bool_reduce_max_min_against_numpy() -> None:
    """Opset 20 allows bool ReduceMax/ReduceMin (any / all); onnxruntime 1.31's CPU provider lacks them."""
    from onnx import helper
    from ops_harness import ir_node

    from ep_trtpy.ops.registry import run_reference

    x = RNG.random((3, 4)) < 0.3
    for op, fn, empty in (("ReduceMax", np.any, False), ("ReduceMin", np.all, True)):
        node = ir_node(helper.make_node(op, ["x", "axes"], ["y"], keepdims=0), [x, axes(1)], (1,), 20)
        np.testing.assert_array_equal(run_reference(node, [x, axes(1)])[0], fn(x, axis=1))
        e = np.zeros((2, 0), bool)
        np.testing.assert_array_equal(run_reference(node, [e, axes(1)])[0], np.full(2, empty))
