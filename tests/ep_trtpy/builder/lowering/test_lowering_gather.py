"""GatherElements (the ``gather_elements`` kernel) and GatherND (rows of the ``gather`` kernel) lowered from one node,
checked for their parameter layout and run by the kernel emulator against ONNX Runtime's CPU provider."""

from __future__ import annotations

import numpy as np
import pytest
from kernel_emulator import execute, run_gather_elements
from lowering_testutil import In, node_case, rand

from ep_trtpy.builder.lowering import LoweringError, lower
from graph_partitioner.ir import BOOL, FLOAT, INT64, Graph


def run_case(case) -> list:  # noqa: ANN001
    plan, weights = lower(case.graph)
    got = execute(plan, weights, case.feeds)
    for g, w in zip(got, case.expected):
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
        np.testing.assert_array_equal(g, w)
    return plan


def kernels(plan) -> list[str]:  # noqa: ANN001
    return [lay.kernel for lay in plan.layers]


def index(shape: tuple[int, ...], extent: int, dtype: type = np.int64, seed: int = 0) -> np.ndarray:
    """Indices in [-extent, extent): negative ones included."""
    return np.random.default_rng(seed).integers(-extent, extent, shape).astype(dtype)


# ----------------------------------------------------------------------------------------------- GatherElements --
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("idx_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("const_idx", [False, True])
def test_gather_elements_runs_the_kernel(axis: int, idx_dtype: type, const_idx: bool) -> None:
    data = rand((3, 4, 5), np.float32, 1)
    ishape = [2, 3, 4]  # smaller than the data on every dim but the axis, larger on the axis
    ishape[axis] = data.shape[axis] + 2
    idx = index(tuple(ishape), data.shape[axis], idx_dtype, seed=2)
    plan = run_case(node_case("GatherElements", [In("d", data), In("i", idx, const=const_idx)], {"axis": axis}))
    assert kernels(plan) == ["gather_elements"]
    a = axis % 3
    assert plan.layers[0].ints == [3, a, 3, 4, 5, *ishape]


@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.bool_, np.int8])
def test_gather_elements_moves_any_element_size(dtype: type) -> None:
    data = rand((6, 2), dtype, 3)
    plan = run_case(node_case("GatherElements", [In("d", data), In("i", index((9, 2), 6, seed=4))]))
    assert kernels(plan) == ["gather_elements"]


def test_gather_elements_of_constants_folds_into_a_weight() -> None:
    """The HF position-id path: GatherElements(Expand(arange), Slice(arange)) is known when the engine is built."""
    data = np.arange(16, dtype=np.int64).reshape(1, 16)
    plan = run_case(node_case("GatherElements", [In("d", data, const=True), In("i", index((1, 8), 16), const=True)],
                              {"axis": 1}))
    assert kernels(plan) == ["memcpy"]  # the folded weight copied to the output


def _one_node(op: str, data_shape: tuple[int, ...], idx: np.ndarray, out_shape: tuple[int, ...], **attrs) -> Graph:
    g = Graph("g", {"": 18})
    d = g.add_value("d", FLOAT, data_shape)
    g.inputs.append(d)
    y = g.add_value("y", FLOAT, out_shape)
    g.add_node(op, [d, g.add_constant(idx, "idx")], [y], attrs=attrs, name=f"bad_{op.lower()}")
    g.outputs = [y]
    return g


def test_gather_elements_constant_index_out_of_range_is_refused() -> None:
    g = _one_node("GatherElements", (4, 5), np.array([[0, 5]], np.int64), (1, 2), axis=1)
    with pytest.raises(LoweringError, match=r"bad_gatherelements.*index 5 is out of range for axis 1 of extent 5"):
        lower(g)


def test_emulated_gather_elements_writes_zero_for_an_index_outside_the_axis() -> None:
    """The kernel's documented behaviour for runtime indices that ONNX calls an error (as ``gather``'s)."""
    y = np.full(4, 7.0, np.float32)
    run_gather_elements([2, 1, 2, 3, 2, 2], np.arange(6, dtype=np.float32), np.array([0, -1, 3, -4]), y)
    assert y.tolist() == [0.0, 2.0, 0.0, 0.0]


# ----------------------------------------------------------------------------------------------------- GatherND --
@pytest.mark.parametrize("batch_dims,idx", [
    (0, np.array([[[0, 2, 3]], [[1, -1, 0]], [[0, 0, -5]]])),  # whole tuples: one element each
    (0, np.array([[1, 0], [0, -2], [1, 2]])),  # rows of 5
    (1, np.array([[[2], [0]], [[-1], [1]]])),  # batch_dims 1: the batch index is implied
])
def test_gather_nd_with_constant_indices_gathers_rows(batch_dims: int, idx: np.ndarray) -> None:
    data = rand((2, 3, 5), np.float32, 5)
    plan = run_case(node_case("GatherND", [In("d", data), In("i", idx.astype(np.int64), const=True)],
                              {"batch_dims": batch_dims}))
    assert kernels(plan) == ["gather"]
    inner = 5 ** (3 - batch_dims - idx.shape[-1])
    assert plan.layers[0].ints == [1, 30 // inner, inner]


def test_gather_nd_of_the_dynamo_mask_spelling() -> None:
    """attention_mask (bool [B, S]) GatherND'ed with constant [B, 1, 1, S, 2] indices, as torch's dynamo exporter
    writes mask[:, None, None, :]."""
    mask = np.ones((2, 6), bool)
    mask[1, 4:] = False
    b, s = np.meshgrid(np.arange(2), np.arange(6), indexing="ij")
    idx = np.stack([b, s], -1).reshape(2, 1, 1, 6, 2).astype(np.int64)
    plan = run_case(node_case("GatherND", [In("m", mask), In("i", idx, const=True)]))
    assert kernels(plan) == ["gather"] and plan.tensors[plan.layers[0].outputs[0]].dtype == BOOL


def test_gather_nd_single_row_is_a_view() -> None:
    data = rand((4, 3), np.float32, 6)
    plan = run_case(node_case("GatherND", [In("d", data), In("i", np.array([2], np.int64), const=True)]))
    assert kernels(plan) == ["memcpy"]  # a view of row 2, copied into the output buffer


def test_gather_nd_runtime_indices_and_out_of_range_are_refused() -> None:
    g = _one_node("GatherND", (4, 5), np.array([[1, 5]], np.int64), (1,))
    with pytest.raises(LoweringError, match=r"bad_gathernd.*outside \[-d, d\) of the dims \[4, 5\]"):
        lower(g)
    g = Graph("g", {"": 18})
    d, i, y = g.add_value("d", FLOAT, (4, 5)), g.add_value("i", INT64, (3, 1)), g.add_value("y", FLOAT, (3, 5))
    g.inputs += [d, i]
    g.add_node("GatherND", [d, i], [y], name="runtime_gathernd")
    g.outputs = [y]
    with pytest.raises(LoweringError, match=r"runtime_gathernd.*indices.*must be known at build time"):
        lower(g)
