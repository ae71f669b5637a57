"""CPU tests of the lowerings onto our own kernels other than pointwise: every op family lowered from a single-node
graph, the emitted layers checked for their parameter layout, then executed by the numpy emulator of the kernels
(kernel_emulator.py) and compared with onnx's reference evaluator. No GPU involved: the CUDA code itself is
covered by tests/cuda_kernels/."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from kernel_emulator import execute
from lowering_testutil import In, cast_transpose_case, node_case, rand

from ep_trtpy.builder.lowering import LoweringError, lower
from ep_trtpy.builder.lowering.movement import collapse_transpose, value_bits
from ep_trtpy.builder.lowering.pooling import pool_geometry
from ep_trtpy.builder.lowering.reduce import reduced_layout
from graph_partitioner.ir import BFLOAT16, Graph, np_dtype


def run_case(case, rtol: float = 1e-5, atol: float = 1e-5, exact: bool = False):  # noqa: ANN001, ANN201
    plan, weights = lower(case.graph)
    got = execute(plan, weights, case.feeds)
    for g, w in zip(got, case.expected):
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
        if exact:
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol, atol=atol)
    return plan


def kernels(plan) -> list[str]:  # noqa: ANN001
    return [lay.kernel for lay in plan.layers]


# ------------------------------------------------------------------------------------------------ reductions --
REDUCE = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
          "ReduceSumSquare", "ReduceLogSumExp"]


@pytest.mark.parametrize("op", REDUCE)
@pytest.mark.parametrize("axes,keepdims", [([1], 1), ([2], 0), ([0, 2], 1), ([-1, 1], 0), (None, 0), ([0], 1)])
def test_reduce(op: str, axes: list[int] | None, keepdims: int) -> None:
    x = rand((3, 4, 5), np.float32, 1, low=0.5 if op == "ReduceProd" else -2, high=1.5 if op == "ReduceProd" else 2)
    ins = [In("x", x)] + ([In("axes", np.array(axes, np.int64), const=True)] if axes is not None else [])
    plan = run_case(node_case(op, ins, {"keepdims": keepdims}))
    assert kernels(plan)[-1] in ("reduce", "memcpy")


def test_reduce_layouts() -> None:
    assert reduced_layout((3, 4, 5), [1]) == (None, 3, 4, 5)
    assert reduced_layout((3, 4, 5), [1, 2]) == (None, 3, 20, 1)
    assert reduced_layout((3, 4, 5), [0, 2]) == ([1, 0, 2], 4, 15, 1)
    assert reduced_layout((3, 1, 5), [0, 2]) == (None, 1, 15, 1)  # adjacent once the extent-1 dim is ignored
    assert reduced_layout((3, 4, 5), []) == (None, 60, 1, 1)


def test_reduce_non_adjacent_axes_transposes_first() -> None:
    x = rand((3, 4, 5, 2), np.float32, 2)
    plan = run_case(node_case("ReduceSum", [In("x", x), In("axes", np.array([0, 2], np.int64), const=True)]))
    assert kernels(plan) == ["transpose", "reduce"]
    assert plan.layers[1].ints == [0, 8, 15, 1]


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_reduce_int(op: str, dtype: type) -> None:
    x = rand((4, 6), dtype, 3, low=-4, high=4)
    run_case(node_case(op, [In("x", x), In("axes", np.array([1], np.int64), const=True)]), exact=True)


def test_reduce_noop_with_empty_axes_and_attr_axes() -> None:
    x = rand((3, 4), np.float32, 4)
    plan = run_case(node_case("ReduceSumSquare", [In("x", x), In("axes", np.zeros(0, np.int64), const=True)],
                              {"noop_with_empty_axes": 1}))
    assert plan.layers[0].ints == [7, 12, 1, 1]
    plan = run_case(node_case("ReduceMax", [In("x", x)], {"axes": [0], "keepdims": 0}, opset=13))
    assert plan.layers[0].ints == [2, 1, 3, 4]


def test_reduce_empty_axis_gives_identity() -> None:
    x = np.zeros((2, 0, 3), np.float32)
    for op in ("ReduceSum", "ReduceProd", "ReduceLogSumExp"):
        run_case(node_case(op, [In("x", x), In("axes", np.array([1], np.int64), const=True)]))


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool(op: str) -> None:
    plan = run_case(node_case(op, [In("x", rand((2, 3, 4, 5), np.float32, 5))]))
    assert plan.layers[0].ints == [1 if op == "GlobalAveragePool" else 2, 6, 20, 1]


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis,keepdims,last", [(0, 1, 0), (1, 0, 1), (-1, 1, 0), (2, 0, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_argmax(op: str, axis: int, keepdims: int, last: int, dtype: type) -> None:
    x = rand((3, 4, 5), dtype, 6, low=-3, high=3)  # ints in a small range: ties
    plan = run_case(node_case(op, [In("x", x)], {"axis": axis, "keepdims": keepdims, "select_last_index": last}),
                    exact=True)
    assert kernels(plan) == [op.lower()]
    assert plan.layers[0].ints[0] == last


# ------------------------------------------------------------------------------------------ softmax, layernorm --
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis,opset", [(-1, 13), (1, 13), (0, 13), (1, 11), (2, 11), (0, 11)])
def test_softmax(op: str, axis: int, opset: int) -> None:
    x = rand((3, 4, 5), np.float32, 7)
    plan = run_case(node_case(op, [In("x", x)], {"axis": axis}, opset=opset))
    ints = plan.layers[0].ints
    if opset < 13:
        assert ints[3] == 1 and ints[1] * ints[2] == 60
    else:
        assert ints[2] == x.shape[axis]


@pytest.mark.parametrize("axis", [-1, 1, 0])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("scale_shape", ["full", "broadcast"])
def test_layernorm(axis: int, bias: bool, scale_shape: str) -> None:
    x = rand((2, 3, 8), np.float32, 8)
    norm = x.shape[axis:] if axis >= 0 else x.shape[axis:]
    sshape = norm if scale_shape == "full" else (1,) * (len(norm) - 1) + norm[-1:]
    ins = [In("x", x), In("scale", rand(sshape, np.float32, 9), const=True)]
    if bias:
        ins.append(In("b", rand(sshape, np.float32, 10), const=True))
    plan = run_case(node_case("LayerNormalization", ins, {"axis": axis, "epsilon": 1e-3}, opset=17), rtol=1e-4,
                    atol=1e-5)
    assert kernels(plan) == ["layernorm"]
    rows, cols = plan.layers[0].ints
    assert rows * cols == x.size and cols == int(np.prod(norm))


def test_layernorm_runtime_broadcast_scale() -> None:
    x = rand((4, 6), np.float32, 11)
    plan = run_case(node_case("LayerNormalization", [In("x", x), In("scale", rand((1,), np.float32, 12))],
                              opset=17), rtol=1e-4, atol=1e-5)
    assert kernels(plan) == ["pointwise", "layernorm"]


def test_layernorm_refuses_used_mean() -> None:
    case = node_case("LayerNormalization", [In("x", rand((2, 4))), In("s", rand((4,)), const=True)], n_out=2,
                     opset=17)
    with pytest.raises(LoweringError, match="Mean/InvStdDev"):
        lower(case.graph)


# ---------------------------------------------------------------------------------------------- data movement --
@pytest.mark.parametrize("shape,perm", [((2, 3, 4), [0, 2, 1]), ((2, 3, 4, 5), [0, 2, 3, 1]), ((3, 4), [1, 0]),
                                        ((2, 3, 4, 5), [3, 1, 0, 2]), ((1, 3, 1, 4), [2, 0, 1, 3]),
                                        ((2, 1, 3), [1, 0, 2])])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.bool_])
def test_transpose(shape: tuple, perm: list[int], dtype: type) -> None:
    plan = run_case(node_case("Transpose", [In("x", rand(shape, dtype, 13))], {"perm": perm}), exact=True)
    cd, cp = collapse_transpose(shape, perm)
    assert kernels(plan) == (["memcpy"] if cp == list(range(len(cp))) else ["transpose"])


@pytest.mark.parametrize("shape,perm", [((2, 3, 5, 7), [0, 2, 3, 1]), ((2, 6, 5, 3), [0, 3, 1, 2]),
                                        ((3, 4), [1, 0]), ((2, 3, 4, 5), [3, 1, 0, 2]), ((1, 3, 1, 4), [2, 0, 1, 3])])
@pytest.mark.parametrize("src,to", [(np.float32, np.float16), (np.float16, np.float32),
                                    (np.float32, np_dtype(BFLOAT16)), (np_dtype(BFLOAT16), np.float32)])
def test_cast_transpose_is_one_converting_transpose(shape: tuple, perm: list[int], src: type, to: type) -> None:
    x = rand(shape, np.float32, 17).astype(src)
    plan = run_case(cast_transpose_case(x, perm, np.dtype(to)), exact=True)
    assert kernels(plan) == ["transpose"]
    cd, cp = collapse_transpose(shape, perm)
    assert plan.layers[0].ints == ([1, int(np.prod(shape)), 0] if cp == list(range(len(cp))) else
                                   [len(cd)] + cd + cp)


def test_cast_transpose_refuses_a_conversion_the_kernel_does_not_make() -> None:
    x = rand((2, 3), np.float32, 18).astype(np.float16)
    case = cast_transpose_case(x, [1, 0], np.dtype(np.float16))
    case.graph.nodes[0].outputs[0].dtype = BFLOAT16
    with pytest.raises(LoweringError, match="is not a conversion the transpose kernel makes"):
        lower(case.graph)


def test_transpose_collapse() -> None:
    assert collapse_transpose((2, 3, 4, 5), [0, 2, 3, 1]) == ([2, 3, 20], [0, 2, 1])
    assert collapse_transpose((1, 3, 1, 4), [2, 0, 1, 3]) == ([12], [0])
    assert collapse_transpose((6, 7), [1, 0]) == ([6, 7], [1, 0])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(axis: int) -> None:
    a, b, c = rand((2, 3, 4), np.float32, 1), rand((2, 3, 4), np.float32, 2), rand((2, 3, 4), np.float32, 3)
    shapes = [list(a.shape) for _ in range(3)]
    shapes[1][axis] = 2
    shapes[2][axis] = 0
    b, c = b[tuple(slice(0, s) for s in shapes[1])], c[tuple(slice(0, s) for s in shapes[2])]
    plan = run_case(node_case("Concat", [In("a", a), In("b", np.ascontiguousarray(b), const=True),
                                         In("c", np.ascontiguousarray(c))], {"axis": axis}), exact=True)
    assert kernels(plan) == ["copy_batch"]
    assert plan.layers[0].ints[0] == 2  # the empty input is no segment


def test_concat_of_many_inputs_is_one_layer_per_32() -> None:
    xs = [In(f"x{k}", rand((2, 1, 3), np.float32, 40 + k)) for k in range(35)]
    plan = run_case(node_case("Concat", xs, {"axis": 1}), exact=True)
    assert kernels(plan) == ["copy_batch", "copy_batch"]
    assert [lay.ints[0] for lay in plan.layers] == [32, 3]
    assert [len(lay.inputs) for lay in plan.layers] == [32, 3]


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_split(axis: int) -> None:
    x = rand((4, 6, 8), np.float32, 14)
    sizes = np.array({0: [1, 3], 1: [2, 4], 2: [5, 3]}[axis], np.int64)
    plan = run_case(node_case("Split", [In("x", x), In("split", sizes, const=True)], {"axis": axis}, n_out=2),
                    exact=True)
    if axis == 0:  # contiguous slabs are views (copied into the graph-output buffers by memcpy)
        assert set(kernels(plan)) == {"memcpy"}
    else:
        assert kernels(plan) == ["copy_batch"]
        assert len(plan.layers[0].outputs) == 2


def test_split_with_an_unused_output_copies_the_rest_in_one_layer() -> None:
    x = rand((4, 9, 2), np.float32, 16)
    case = node_case("Split", [In("x", x), In("split", np.array([2, 3, 4], np.int64), const=True)], {"axis": 1},
                     n_out=3)
    case.graph.outputs = [case.graph.outputs[0], case.graph.outputs[2]]
    case.expected = [case.expected[0], case.expected[2]]
    plan = run_case(case, exact=True)
    assert kernels(plan) == ["copy_batch"]
    assert plan.layers[0].ints[0] == 2


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([1], [3], [0], [1]),
    ([0, 1], [2, 100], [1, 2], [1, 2]),
    ([-1], [-100], [2], [-1]),
    ([4, 0], [0, 5], [2, 0], [-2, 2]),
    ([1], [1], [1], [1]),
    ([2], [-1], [-2], [1]),
])
def test_slice(starts: list[int], ends: list[int], axes: list[int], steps: list[int]) -> None:
    x = rand((3, 4, 6), np.float32, 15)
    ins = [In("x", x)] + [In(n, np.array(v, np.int64), const=True)
                          for n, v in (("starts", starts), ("ends", ends), ("axes", axes), ("steps", steps))]
    run_case(node_case("Slice", ins), exact=True)


def test_slice_of_leading_axis_is_a_view() -> None:
    x = rand((5, 4), np.float32, 16)
    case = node_case("Slice", [In("x", x), In("s", np.array([1], np.int64), const=True),
                               In("e", np.array([3], np.int64), const=True)])
    g = case.graph
    # consume the slice with Relu so that it is not itself a graph output
    y = g.outputs[0]
    z = g.add_value("z", y.dtype, y.shape)
    g.add_node("Relu", [y], [z], name="relu")
    g.outputs = [z]
    plan, weights = lower(g)
    assert kernels(plan) == ["pointwise"]
    view = [t for t in plan.tensors if t.kind == "alias"]
    assert len(view) == 1 and view[0].offset == 4 * 4
    np.testing.assert_array_equal(execute(plan, weights, case.feeds)[0], np.maximum(x[1:3], 0))


@pytest.mark.parametrize("xs,shape", [((3, 1), (2, 3, 4)), ((1,), (5,)), ((2, 1, 3), (2, 4, 3)), ((4,), (4,))])
def test_expand(xs: tuple, shape: tuple) -> None:
    plan = run_case(node_case("Expand", [In("x", rand(xs, np.int32, 17)), In("s", np.array(shape, np.int64),
                                                                          const=True)]), exact=True)
    assert kernels(plan) == (["memcpy"] if xs == shape else ["copy"])


@pytest.mark.parametrize("xs,reps", [((2, 3), (2, 1)), ((2, 3), (1, 3)), ((1, 2, 3), (2, 2, 2)), ((3,), (4,))])
def test_tile(xs: tuple, reps: tuple) -> None:
    run_case(node_case("Tile", [In("x", rand(xs, np.float16, 18)), In("r", np.array(reps, np.int64), const=True)]),
             exact=True)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("idx_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("const_idx", [True, False])
def test_gather(axis: int, idx_dtype: type, const_idx: bool) -> None:
    data = rand((4, 5, 6), np.float32, 19)
    n = data.shape[axis]
    idx = np.array([[0, -1], [n - 1, 2]], idx_dtype)
    plan = run_case(node_case("Gather", [In("d", data), In("i", idx, const=const_idx)], {"axis": axis}), exact=True)
    assert kernels(plan) == ["gather"]


def test_gather_scalar_constant_index_is_a_copy_or_view() -> None:
    data = rand((4, 5, 6), np.float32, 20)
    plan = run_case(node_case("Gather", [In("d", data), In("i", np.array(-2, np.int64), const=True)], {"axis": 1}),
                    exact=True)
    assert kernels(plan) == ["copy"]
    plan = run_case(node_case("Gather", [In("d", data), In("i", np.array(3, np.int64), const=True)], {"axis": 0}),
                    exact=True)
    assert kernels(plan) == ["memcpy"]


def test_gather_constant_index_out_of_range_is_refused() -> None:
    data = rand((4, 5), np.float32, 21)
    g = Graph("g", {"": 17})
    d = g.add_value("d", 1, (4, 5))
    g.inputs.append(d)
    y = g.add_value("y", 1, (5,))
    g.add_node("Gather", [d, g.add_constant(np.array(7, np.int64))], [y], name="bad_gather")
    g.outputs = [y]
    with pytest.raises(LoweringError, match="bad_gather.*out of range"):
        lower(g)
    del data


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("pads", [[0, 1, 2, 0, 2, 1], [1, 0, 0, 1, 0, 0], [0, 0, 2, 0, 0, 3], [0, -1, 1, 0, 1, -1]])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64])
def test_pad(mode: str, pads: list[int], dtype: type) -> None:
    x = rand((2, 4, 5), dtype, 22)
    ins = [In("x", x), In("p", np.array(pads, np.int64), const=True)]
    if mode == "constant":
        ins.append(In("v", np.array(1.5 if dtype != np.int64 else 7, dtype), const=True))
    run_case(node_case("Pad", ins, {"mode": mode}), exact=True)


def test_pad_axes_and_value_bits() -> None:
    x = rand((2, 3, 4), np.float32, 23)
    run_case(node_case("Pad", [In("x", x), In("p", np.array([1, 2, 0, 1], np.int64), const=True), None,
                               In("a", np.array([0, 2], np.int64), const=True)], {"mode": "constant"}), exact=True)
    assert value_bits(1.5, 1) == int(np.frombuffer(np.float32(1.5).tobytes() + b"\0" * 4, "<i8")[0])
    assert value_bits(-1, 7) == -1
    assert value_bits(True, 9) == 1


# ------------------------------------------------------------------------------------------------------ resize --
@pytest.mark.parametrize("coord", ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                                   "half_pixel_symmetric"])
@pytest.mark.parametrize("mode,nearest", [("nearest", "round_prefer_floor"), ("nearest", "round_prefer_ceil"),
                                          ("nearest", "floor"), ("nearest", "ceil"), ("linear", None)])
@pytest.mark.parametrize("scales", [[1, 1, 2, 3], [1, 1, 0.5, 0.75], [1, 1, 1.7, 0.6]])
def test_resize_scales(coord: str, mode: str, nearest: str | None, scales: list[float]) -> None:
    x = rand((1, 2, 4, 8), np.float32, 24)
    attrs = {"mode": mode, "coordinate_transformation_mode": coord}
    if nearest:
        attrs["nearest_mode"] = nearest
    ins = [In("x", x), None, In("scales", np.array(scales, np.float32), const=True)]
    run_case(node_case("Resize", ins, attrs, opset=19), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sizes", [[1, 2, 7, 5], [1, 2, 8, 16], [1, 2, 1, 3], [1, 3, 4, 8]])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_sizes(sizes: list[int], mode: str) -> None:
    x = rand((1, sizes[1], 4, 8), np.float32, 25)
    ins = [In("x", x), None, None, In("sizes", np.array(sizes, np.int64), const=True)]
    plan = run_case(node_case("Resize", ins, {"mode": mode}, opset=19), rtol=1e-5, atol=1e-5)
    rank = 4
    resized = plan.layers[0].ints[4 + 2 * rank:4 + 3 * rank]
    assert resized[:2] == [0, 0]


@pytest.mark.parametrize("scales", [[1, 1, 2, 3], [1, 1, 0.5, 0.6], [1, 1, 1.5, 0.75]])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_opset10(scales: list[float], mode: str) -> None:
    x = rand((1, 2, 5, 7), np.float32, 34)
    plan = run_case(node_case("Resize", [In("x", x), In("s", np.array(scales, np.float32), const=True)],
                              {"mode": mode}, opset=10), rtol=1e-5, atol=1e-5)
    assert plan.layers[0].ints[1:3] == [3, 4]  # asymmetric, opset-10 rounding


@pytest.mark.parametrize("opset,scales,mode", [(9, [1, 1, 2, 3], "nearest"), (9, [1, 1, 1.5, 2.25], "linear"),
                                              (7, [1, 1, 2, 2], "nearest")])
def test_upsample(opset: int, scales: list[float], mode: str) -> None:
    """Upsample (scales input in opset 9, attribute in 7) lowers to the resize kernel as Resize-10 does."""
    x = rand((1, 2, 5, 7), np.float32, 35)
    ins = [In("x", x)] + ([In("s", np.array(scales, np.float32), const=True)] if opset == 9 else [])
    attrs = {"mode": mode} | ({"scales": [float(v) for v in scales]} if opset == 7 else {})
    plan = run_case(node_case("Upsample", ins, attrs, opset=opset), rtol=1e-5, atol=1e-5)
    assert [lay.kernel for lay in plan.layers] == ["resize"] and plan.layers[0].ints[1:3] == [3, 4]


def test_resize_trilinear() -> None:
    x = rand((1, 1, 3, 4, 5), np.float32, 26)
    ins = [In("x", x), None, In("scales", np.array([1, 1, 2, 1.5, 0.8], np.float32), const=True)]
    run_case(node_case("Resize", ins, {"mode": "linear"}, opset=19), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("attrs,reason", [({"mode": "cubic"}, "cubic"), ({"mode": "linear", "antialias": 1},
                                                                         "antialias"),
                                          ({"coordinate_transformation_mode": "tf_crop_and_resize"}, "tf_crop")])
def test_resize_refusals(attrs: dict, reason: str) -> None:
    x = rand((1, 1, 4, 4), np.float32, 27)
    roi = In("roi", np.array([0, 0, 0, 0, 1, 1, 1, 1], np.float32), const=True)
    case = node_case("Resize", [In("x", x), roi, In("s", np.array([1, 1, 2, 2], np.float32), const=True)], attrs,
                     opset=19)
    with pytest.raises(LoweringError, match=reason):
        lower(case.graph)


# -------------------------------------------------------------------------------------------------------- pool --
def test_pool_geometry_ceil_rule() -> None:
    # size 5, kernel 2, stride 2, pad 1 each side: ceil gives 4 windows but the last starts in the right padding
    out, pb, pe = pool_geometry([5], [2], [2], [1, 1], [1], 1, "NOTSET")
    assert out == [3] and pb == [1] and pe == [1]
    out, pb, pe = pool_geometry([7], [3], [2], [0, 0], [1], 1, "NOTSET")
    assert out == [3]
    out, pb, pe = pool_geometry([7], [3], [2], [0, 0], [1], 0, "SAME_UPPER")
    assert out == [4] and (pb, pe) == ([1], [1])
    out, pb, pe = pool_geometry([8], [3], [2], [0, 0], [1], 0, "SAME_LOWER")
    assert out == [4] and (pb, pe) == ([1], [0])
    out, pb, pe = pool_geometry([8], [3], [2], [0, 0], [2], 0, "VALID")
    assert out == [2]


def test_pool_geometry_agrees_with_the_reference_where_the_window_outgrows_the_input() -> None:
    """Windows larger than the padded input give 0 or 1 outputs (division toward zero, as ORT's CPU provider) in
    the lowering as in ops/_spatial.py, for every geometry the reference accepts."""
    from ep_trtpy.ops._spatial import window_geometry
    from ep_trtpy.ops.registry import OpError
    from graph_partitioner.ir import Node

    outgrown = set()
    for n, k, s, d, b, a, ceil, auto in itertools.product(range(4), range(1, 5), range(1, 4), (1, 2), range(3),
                                                         range(3), (0, 1), ("NOTSET", "VALID")):
        pads = [b, a] if auto == "NOTSET" else [0, 0]
        node = Node("MaxPool", "p", "", {"auto_pad": auto, "pads": pads})
        try:
            _, _, want = window_geometry(node, [n], [k], [s], [d], bool(ceil), pooling=True)
        except OpError:
            continue
        out, _, _ = pool_geometry([n], [k], [s], pads, [d], ceil, auto)
        assert out == want, f"in {n} kernel {k} stride {s} dilation {d} pads {pads} ceil {ceil} {auto}"
        if n + sum(pads) < (k - 1) * d + 1:
            outgrown.add(want[0])
    assert outgrown == {0, 1}


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [3, 3]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [2, 3], "strides": [2, 1], "pads": [0, 1, 1, 0], "ceil_mode": 1},
    {"kernel_shape": [3, 2], "auto_pad": "SAME_UPPER", "strides": [2, 2]},
    {"kernel_shape": [3, 2], "auto_pad": "SAME_LOWER"},
    {"kernel_shape": [2, 2], "auto_pad": "VALID", "strides": [2, 2]},
    {"kernel_shape": [2, 2], "dilations": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1},
    {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1, "count_include_pad": 1},
])
def test_pool_2d(op: str, attrs: dict) -> None:
    if op == "MaxPool" and "count_include_pad" in attrs:
        attrs = {k: v for k, v in attrs.items() if k != "count_include_pad"}
    x = rand((2, 3, 7, 8), np.float32, 28)
    plan = run_case(node_case(op, [In("x", x)], attrs, opset=19), rtol=1e-5, atol=1e-6)
    assert kernels(plan) == ["pool"]


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_1d_3d(op: str) -> None:
    run_case(node_case(op, [In("x", rand((2, 3, 9), np.float32, 29))],
                       {"kernel_shape": [3], "strides": [2], "pads": [1, 0]}, opset=19))
    run_case(node_case(op, [In("x", rand((1, 2, 4, 5, 6), np.float32, 30))],
                       {"kernel_shape": [2, 3, 2], "strides": [1, 2, 2], "pads": [0, 1, 1, 1, 0, 0]}, opset=19))


# ------------------------------------------------------------------------------------------ constants, views --
def test_shape_chain_folds_to_no_kernels() -> None:
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape: only the reshape's view (copied to the output) is left."""
    g = Graph("chain", {"": 17})
    x = g.add_value("x", 1, (2, 3, 4))
    g.inputs.append(x)
    s = g.add_value("s", 7, (3,))
    g.add_node("Shape", [x], [s], name="shape")
    d0 = g.add_value("d0", 7, ())
    g.add_node("Gather", [s, g.add_constant(np.array(0, np.int64))], [d0], name="gather")
    u = g.add_value("u", 7, (1,))
    g.add_node("Unsqueeze", [d0, g.add_constant(np.array([0], np.int64))], [u], name="unsq")
    shp = g.add_value("shp", 7, (2,))
    g.add_node("Concat", [u, g.add_constant(np.array([-1], np.int64))], [shp], attrs={"axis": 0}, name="cat")
    y = g.add_value("y", 1, (2, 12))
    g.add_node("Reshape", [x, shp], [y], name="reshape")
    g.outputs = [y, s]
    plan, weights = lower(g)
    assert kernels(plan) == ["memcpy", "memcpy"]
    xin = rand((2, 3, 4), np.float32, 31)
    got = execute(plan, weights, [xin])
    np.testing.assert_array_equal(got[0], xin.reshape(2, 12))
    assert got[1].tolist() == [2, 3, 4]


@pytest.mark.parametrize("shape", [(3, 4), (64, 100)])
def test_constant_of_shape(shape: tuple) -> None:
    value = np.array([2.5], np.float16)
    plan = run_case(node_case("ConstantOfShape", [In("s", np.array(shape, np.int64), const=True)],
                              {"value": value}), exact=True)
    assert kernels(plan) == (["fill"] if np.prod(shape) > 4096 else ["memcpy"])


def test_range_size_constant() -> None:
    run_case(node_case("Range", [In("a", np.array(2, np.int64), const=True), In("b", np.array(11, np.int64),
                                                                                const=True),
                                 In("c", np.array(3, np.int64), const=True)]), exact=True)
    run_case(node_case("Range", [In("a", np.array(1.0, np.float32), const=True),
                                 In("b", np.array(-2.0, np.float32), const=True),
                                 In("c", np.array(-0.5, np.float32), const=True)]))
    run_case(node_case("Size", [In("x", rand((3, 5), np.float32, 32))]), exact=True)
    run_case(node_case("Constant", [], {"value_ints": [1, 2, 3]}), exact=True)


@pytest.mark.parametrize("op,extra,attrs", [
    ("Reshape", [("s", np.array([4, -1], np.int64))], {}),
    ("Flatten", [], {"axis": 2}),
    ("Squeeze", [("a", np.array([1], np.int64))], {}),
    ("Unsqueeze", [("a", np.array([0, 3], np.int64))], {}),
    ("Identity", [], {}),
    ("Dropout", [], {}),
])
def test_views(op: str, extra: list, attrs: dict) -> None:
    x = rand((2, 1, 6), np.float32, 33)
    plan = run_case(node_case(op, [In("x", x)] + [In(n, a, const=True) for n, a in extra], attrs), exact=True)
    assert kernels(plan) == ["memcpy"]  # a view, copied only because it is the graph output
