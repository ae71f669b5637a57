"""GPU tests of the data movement kernels (cuda_kernels/kernels/copy.cu, transpose.cu, pad.cu, gather.cu):
Transpose (the tiled batched last-two-dims swap with ragged tiles, generic permutations up to 8 dims, element
sizes 1/2/4/8; converting float32 <-> float16 / bfloat16 for ep_trtpy::CastTranspose), Slice (negative steps),
Concat and Split (copy_batch: one launch, per-segment word sizes, more than 32 inputs), Expand, Tile, Gather
(int32/int64 indices, negative, out-of-range -> zeros), Pad (constant/reflect/edge, negative pads),
ConstantOfShape (fill), zero-size tensors. Data movement must be bit-exact. See kernel_harness.py."""

from __future__ import annotations

import numpy as np
import pytest
from kernel_harness import Case, In, check_case, gpu_marks, ir_graph, node_case, rand
from lowering_testutil import cast_transpose_case

from graph_partitioner.ir import BFLOAT16, np_dtype

pytestmark = gpu_marks

DTYPES = [np.float32, np.float16, np.int64, np.bool_, np.int8]


@pytest.mark.parametrize("shape", [(1, 1), (31, 33), (32, 32), (33, 31), (100, 7), (7, 100), (1, 1000), (517, 259),
                                   (8, 33, 65), (64, 3, 49), (2, 1, 1),
                                   # a narrow dim (<= 8): one thread per element of the wide dim
                                   (5, 3, 4099), (3, 4097, 3), (2, 8, 1001), (2, 1001, 8), (9, 1000)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_transpose_last_two_dims_tiled(shape: tuple, dtype: type) -> None:
    perm = list(range(len(shape) - 2)) + [len(shape) - 1, len(shape) - 2]
    x = rand(shape, dtype, 1, low=-100, high=100)
    plan = check_case(node_case("Transpose", [In("x", x)], {"perm": perm}), exact=True)
    if 1 not in shape[-2:]:
        assert [lay.kernel for lay in plan.layers] == ["transpose"]


@pytest.mark.parametrize("shape,perm", [((2, 3, 4, 5), [0, 2, 3, 1]), ((2, 3, 4, 5), [0, 3, 1, 2]),
                                        ((2, 3, 4, 5), [3, 2, 1, 0]), ((4, 5, 6), [1, 0, 2]), ((4, 5, 6), [2, 0, 1]),
                                        ((2, 3, 2, 3, 2, 3, 2, 3), [7, 6, 5, 4, 3, 2, 1, 0]),
                                        ((1, 64, 56, 56), [0, 2, 3, 1]), ((1, 56, 56, 64), [0, 3, 1, 2]),
                                        ((2, 0, 3), [2, 1, 0]), ((), [])])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.bool_])
def test_transpose_permutations(shape: tuple, perm: list[int], dtype: type) -> None:
    x = rand(shape, dtype, 2, low=-100, high=100)
    check_case(node_case("Transpose", [In("x", x)], {"perm": perm} if perm else {}), exact=True)


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([1], [3], [0], [1]),
    ([0, 1], [2, 100], [1, 2], [1, 2]),
    ([-1], [-100], [2], [-1]),
    ([5, 0, 2], [0, 6, 1], [2, 0, 1], [-2, 2, -1]),
    ([1], [1], [1], [1]),
    ([2], [-1], [-2], [1]),
    ([0, 0, 0], [10, 10, 10], [0, 1, 2], [3, 2, 2]),
])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_, np.float16])
def test_slice(starts: list[int], ends: list[int], axes: list[int], steps: list[int], dtype: type) -> None:
    x = rand((4, 5, 7), dtype, 3, low=-50, high=50)
    ins = [In("x", x)] + [In(n, np.array(v, np.int64), const=True)
                          for n, v in (("starts", starts), ("ends", ends), ("axes", axes), ("steps", steps))]
    check_case(node_case("Slice", ins), exact=True)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.bool_])
def test_concat(axis: int, dtype: type) -> None:
    base = (3, 4, 5)
    sizes = [2, 1, 0, 3]
    arrays = []
    for k, s in enumerate(sizes):
        shape = list(base)
        shape[axis] = s
        arrays.append(rand(tuple(shape), dtype, 10 + k, low=-50, high=50))
    ins = [In(f"x{k}", a, const=(k == 1)) for k, a in enumerate(arrays)]
    plan = check_case(node_case("Concat", ins, {"axis": axis}), exact=True)
    assert [lay.kernel for lay in plan.layers] == ["copy_batch"]
    assert plan.layers[0].ints[0] == 3  # the empty input is no segment


@pytest.mark.parametrize("axis,split", [(0, [1, 3]), (1, [2, 2, 2]), (2, [5, 0, 2]), (-1, [1, 6])])
def test_split(axis: int, split: list[int]) -> None:
    shape = [4, 6, 7]
    total = sum(split)
    shape[axis] = total
    x = np.ascontiguousarray(rand(tuple(shape), np.float32, 21))
    check_case(node_case("Split", [In("x", x), In("s", np.array(split, np.int64), const=True)], {"axis": axis},
                         n_out=len(split)), exact=True)


@pytest.mark.parametrize("shape,perm", [((4, 3, 40, 40), [0, 2, 3, 1]), ((4, 40, 40, 3), [0, 3, 1, 2]),
                                        ((2, 64, 9, 9), [0, 2, 3, 1]), ((33, 65), [1, 0]), ((2, 3, 4, 5), [3, 1, 0, 2]),
                                        ((1, 3, 1, 4), [2, 0, 1, 3])])
@pytest.mark.parametrize("src,to", [(np.float32, np.float16), (np.float16, np.float32),
                                    (np.float32, np_dtype(BFLOAT16)), (np_dtype(BFLOAT16), np.float32)])
def test_converting_transpose(shape: tuple, perm: list[int], src: type, to: type) -> None:
    """A Cast fused into a transpose: the narrow-dim path (3 channels), the tiled path, the generic permutation and
    a conversion without movement, each reading one float dtype and writing another."""
    x = (rand(shape, np.float32, 60) * 1000).astype(src)
    plan = check_case(cast_transpose_case(x, perm, to), exact=True)
    assert [lay.kernel for lay in plan.layers] == ["transpose"]


@pytest.mark.parametrize("channels", [[64, 3, 32, 5], [8, 8], [1, 2, 1, 2, 7], [256, 128]])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.int8])
def test_concat_channels_last(channels: list[int], dtype: type) -> None:
    """NHWC channel concat: every input is a segment of rows whose word size (16/8/4/2/1 bytes) it sets alone."""
    arrays = [rand((2, 5, 6, c), dtype, 30 + k, low=-50, high=50) for k, c in enumerate(channels)]
    plan = check_case(node_case("Concat", [In(f"x{k}", a) for k, a in enumerate(arrays)], {"axis": 3}), exact=True)
    assert [lay.kernel for lay in plan.layers] == ["copy_batch"]


@pytest.mark.parametrize("split", [[16, 3, 45], [32, 32], [5, 1, 2]])
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_split_channels_last(split: list[int], dtype: type) -> None:
    x = rand((3, 4, 5, sum(split)), dtype, 40)
    plan = check_case(node_case("Split", [In("x", x), In("s", np.array(split, np.int64), const=True)], {"axis": 3},
                                n_out=len(split)), exact=True)
    assert [lay.kernel for lay in plan.layers] == ["copy_batch"]


def test_concat_of_40_inputs() -> None:
    arrays = [rand((3, 1, 4), np.float32, 50 + k) for k in range(40)]
    plan = check_case(node_case("Concat", [In(f"x{k}", a) for k, a in enumerate(arrays)], {"axis": 1}), exact=True)
    assert [lay.kernel for lay in plan.layers] == ["copy_batch", "copy_batch"]


@pytest.mark.parametrize("xs,shape", [((3, 1), (2, 3, 4)), ((1,), (5,)), ((2, 1, 3), (2, 4, 3)), ((1, 1), (7, 9)),
                                      ((4, 1, 1), (4, 300, 2)), ((1, 5), (0, 5))])
@pytest.mark.parametrize("dtype", [np.int32, np.float16, np.bool_])
def test_expand(xs: tuple, shape: tuple, dtype: type) -> None:
    check_case(node_case("Expand", [In("x", rand(xs, dtype, 22, low=-50, high=50)),
                                    In("s", np.array(shape, np.int64), const=True)]), exact=True)


@pytest.mark.parametrize("xs,reps", [((2, 3), (2, 1)), ((2, 3), (1, 3)), ((1, 2, 3), (2, 2, 2)), ((3,), (4,)),
                                     ((2, 1, 2, 1, 2, 1), (2, 2, 2, 2, 2, 2)), ((2, 3), (0, 2))])
def test_tile(xs: tuple, reps: tuple) -> None:
    check_case(node_case("Tile", [In("x", rand(xs, np.float32, 23)), In("r", np.array(reps, np.int64), const=True)]),
               exact=True)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("idx_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.bool_])
def test_gather(axis: int, idx_dtype: type, dtype: type) -> None:
    data = rand((5, 6, 7), dtype, 24, low=-50, high=50)
    n = data.shape[axis]
    idx = np.array([[0, -1, 2], [n - 1, -n, 1]], idx_dtype)
    check_case(node_case("Gather", [In("d", data), In("i", idx)], {"axis": axis}), exact=True, kernels=["gather"])


def test_gather_embedding_lookup() -> None:
    table = rand((1000, 64), np.float32, 25)
    ids = np.random.default_rng(0).integers(-1000, 1000, size=(4, 128)).astype(np.int64)
    check_case(node_case("Gather", [In("t", table, const=True), In("ids", ids)], {"axis": 0}), exact=True,
               kernels=["gather"])


def test_gather_out_of_range_runtime_index_writes_zeros() -> None:
    """ONNX makes it an error; a kernel cannot raise one, so gather.cu documents zeros."""
    data = rand((4, 3), np.float32, 26)
    idx = np.array([1, 4, -5, -1, 100], np.int64)
    expected = [np.stack([data[1], np.zeros(3, np.float32), np.zeros(3, np.float32), data[3],
                          np.zeros(3, np.float32)])]
    ins = [In("d", data), In("i", idx)]
    check_case(Case(ir_graph("Gather", ins, {"axis": 0}, expected, 13), [data, idx], expected, None), exact=True)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("pads", [[0, 1, 2, 0, 2, 1], [1, 0, 0, 1, 0, 0], [0, 0, 3, 0, 0, 3], [0, -1, 1, 0, 1, -1],
                                  [2, 3, 4, 2, 3, 4]])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.int8])
def test_pad(mode: str, pads: list[int], dtype: type) -> None:
    x = rand((3, 4, 5), dtype, 27, low=-50, high=50)
    ins = [In("x", x), In("p", np.array(pads, np.int64), const=True)]
    if mode == "constant":
        ins.append(In("v", np.array(1.5 if np.dtype(dtype).kind == "f" else 7, dtype), const=True))
    check_case(node_case("Pad", ins, {"mode": mode}), exact=True, kernels=["pad"])


def test_pad_nchw_spatial_and_axes() -> None:
    x = rand((2, 16, 9, 11), np.float32, 28)
    check_case(node_case("Pad", [In("x", x), In("p", np.array([0, 0, 1, 2, 0, 0, 3, 1], np.int64), const=True)],
                         {"mode": "reflect"}), exact=True, kernels=["pad"])
    check_case(node_case("Pad", [In("x", x), In("p", np.array([1, 2, 1, 0], np.int64), const=True), None,
                                 In("a", np.array([1, 3], np.int64), const=True)], {"mode": "constant"}), exact=True,
               kernels=["pad"])


@pytest.mark.parametrize("value,dtype", [(np.array([2.5], np.float16), np.float16), (np.array([-7], np.int64),
                                                                                      np.int64),
                                         (np.array([True]), np.bool_), (np.array([0.125], np.float32), np.float32)])
def test_constant_of_shape_fill(value: np.ndarray, dtype: type) -> None:
    shape = np.array([3, 100, 50], np.int64)
    plan = check_case(node_case("ConstantOfShape", [In("s", shape, const=True)], {"value": value}), exact=True,
                      kernels=["fill"])
    assert plan.tensors[plan.layers[0].outputs[0]].dtype == {np.float16: 10, np.int64: 7, np.bool_: 9,
                                                             np.float32: 1}[dtype]
