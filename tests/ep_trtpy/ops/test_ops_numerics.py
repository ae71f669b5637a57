"""README's "Numerics at the edges" on the reference backend: NaN and +-inf per op (numerics_cases.py, whose
expected outputs come from the written rule), ONNX Runtime's CPU provider where the table says it agrees (and that
it still departs where the table says so), pool output sizes for windows larger than the input against ORT over a
grid of geometries, and shapes with empty dimensions for which ORT's CPU provider returns an output. The same
cases run through the CUDA kernels in tests/cuda_kernels/test_numerics_gpu.py."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numerics_cases import NumCase, internal_cases, onnx_cases, pool_out, pool_rule
from onnx import helper, numpy_helper
from ops_harness import case, check, ir_node, run_ort

from ep_trtpy.ops import registry
from ep_trtpy.ops.registry import OpError
from graph_partitioner.ir import INT64, elem_type

CASES = onnx_cases() + internal_cases() + onnx_cases(np.float16) + internal_cases(np.float16)


def _proto(c: NumCase):  # noqa: ANN202
    names = ["" if a is None else a.name for a in c.inputs]
    return helper.make_node(c.op_type, names, [f"y{k}" for k in range(len(c.expected))], name="node",
                            domain=c.domain or None, **c.attrs)


def reference(c: NumCase) -> list[np.ndarray]:
    arrays = [None if a is None else a.array for a in c.inputs]
    consts = tuple(i for i, a in enumerate(c.inputs) if a is not None and a.const)
    node = ir_node(_proto(c), arrays, consts, c.opset, [elem_type(e.dtype) for e in c.expected])
    if c.domain:
        node.since_version = None
    return registry.run_reference(node, [None if a is None else a.copy() for a in arrays])


def ort_cpu(c: NumCase) -> list[np.ndarray]:
    g_inputs = [helper.make_tensor_value_info(a.name, elem_type(a.array.dtype), list(a.array.shape))
                for a in c.inputs if a is not None and not a.const]
    inits = [numpy_helper.from_array(a.array, a.name) for a in c.inputs if a is not None and a.const]
    outs = [helper.make_tensor_value_info(f"y{k}", elem_type(e.dtype), None) for k, e in enumerate(c.expected)]
    graph = helper.make_graph([_proto(c)], "numerics", g_inputs, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", c.opset)], ir_version=10)
    return run_ort(model, {a.name: a.array for a in c.inputs if a is not None and not a.const})


def agrees(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> bool:
    """Same dtype and shape, NaN exactly where expected, infinities equal, finite values within tolerance."""
    if got.dtype != want.dtype or got.shape != want.shape:
        return False
    g, w = got.astype(np.float64), want.astype(np.float64)
    if not np.array_equal(np.isnan(g), np.isnan(w)):
        return False
    fin = np.isfinite(w)
    return bool(np.array_equal(g[~fin & ~np.isnan(w)], w[~fin & ~np.isnan(w)]) and
                np.allclose(g[fin], w[fin], rtol=rtol, atol=atol))


def assert_rule(got: list[np.ndarray], c: NumCase, who: str) -> None:
    assert len(got) == len(c.expected), f"{c.id}: {who} gave {len(got)} outputs"
    for k, (g, w) in enumerate(zip(got, c.expected)):
        assert agrees(np.asarray(g), w, c.rtol, c.atol), (
            f"{c.id} output {k}: {who} gave {np.asarray(g).dtype}{list(np.shape(g))}\n{np.asarray(g)!r}\n"
            f"the rule gives {w.dtype}{list(w.shape)}\n{w!r}")


@pytest.mark.parametrize("c", CASES, ids=repr)
def test_reference_follows_the_rule(c: NumCase) -> None:
    assert_rule(reference(c), c, "the reference")


@pytest.mark.parametrize("c", [c for c in onnx_cases() if c.ort], ids=repr)
def test_onnxruntime_cpu_agrees_or_departs_as_the_table_says(c: NumCase) -> None:
    if c.ort == "refuses":
        with pytest.raises(Exception, match="Invalid input shape"):
            ort_cpu(c)
        return
    got = ort_cpu(c)
    if c.ort == "same":
        assert_rule(got, c, "ONNX Runtime's CPU provider")
    else:
        assert not all(agrees(g, w, c.rtol, c.atol) for g, w in zip(got, c.expected)), (
            f"{c.id}: ONNX Runtime's CPU provider now follows the rule; mark the case 'same' and update README's "
            "table")


def test_max_pool_indices_point_at_the_first_nan_and_never_at_padding() -> None:
    x = np.array([[[-np.inf, -np.inf, 3.0, np.nan, 1.0, np.nan]]], np.float32)
    proto = helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[3], pads=[1, 1])
    y, idx = registry.run_reference(ir_node(proto, [x], (), 17, [elem_type(x.dtype), INT64]), [x])
    np.testing.assert_array_equal(y, pool_rule(x, "max", [3], [1], [1, 1], [1]).astype(np.float32))
    for o in range(6):  # the window's positions inside the input; the first NaN, else the first maximum
        inside = [p for p in range(o - 1, o + 2) if 0 <= p < 6]
        nans = [p for p in inside if np.isnan(x[0, 0, p])]
        want = nans[0] if nans else next(p for p in inside if x[0, 0, p] == y[0, 0, o])
        assert idx[0, 0, o] == want, f"window {o}: index {idx[0, 0, o]}, expected {want}"


# ------------------------------------------------------------------------- windows larger than the input --

GEOMETRIES = [(k, s, d, b, a, ceil) for k, s, d, b, a, ceil in itertools.product((1, 2, 3, 4), (1, 2, 3), (1, 2),
                                                                                 (0, 1), (0, 1, 2), (0, 1))
              if b < k and a < k]


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_geometry_matches_onnxruntime_where_the_window_outgrows_the_input(op: str, n: int) -> None:
    """Every geometry ORT's CPU provider accepts for an input of n elements: same output shape and values (one
    model per n, one node per geometry); the geometries it refuses (a negative size) are refused by ours too."""
    x = np.random.default_rng(n).permutation(np.arange(1, n + 1, dtype=np.float32)).reshape(1, 1, n)
    ok, refused, nodes = [], [], []
    for i, (k, s, d, b, a, ceil) in enumerate(GEOMETRIES):
        attrs = {"kernel_shape": [k], "strides": [s], "dilations": [d], "pads": [b, a], "ceil_mode": ceil}
        if op == "AveragePool":
            attrs["count_include_pad"] = i % 2
        (refused if pool_out(n, k, s, d, b, a, bool(ceil)) < 0 else ok).append(attrs)
    for i, attrs in enumerate(ok):
        nodes.append(helper.make_node(op, ["x"], [f"y{i}"], name=f"p{i}", **attrs))
    graph = helper.make_graph(nodes, "grid", [helper.make_tensor_value_info("x", 1, ["N", "C", "L"])],
                              [helper.make_tensor_value_info(f"y{i}", 1, None) for i in range(len(ok))])
    want = run_ort(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=10), {"x": x})
    outgrown = [w.shape[2] for attrs, w in zip(ok, want)
                if n + sum(attrs["pads"]) < (attrs["kernel_shape"][0] - 1) * attrs["dilations"][0] + 1]
    assert 0 in outgrown and 1 in outgrown, "the grid should hold windows larger than the input giving 0 and 1"
    for attrs, w in zip(ok, want):
        node = ir_node(helper.make_node(op, ["x"], ["y"], **attrs), [x], (), 19)
        (got,) = registry.run_reference(node, [x])
        assert got.shape == w.shape, f"{op} {attrs} on {n} elements: shape {got.shape}, ORT {w.shape}"
        w = np.where(w == np.finfo(np.float32).min, -np.inf, w)  # a window of padding only: ORT's lowest(), our -inf
        np.testing.assert_allclose(got, w, rtol=1e-6, err_msg=f"{op} {attrs} on {n} elements")
    assert refused, "the grid should hold geometries whose output size is negative"
    for attrs in refused:
        with pytest.raises(OpError, match="is larger than spatial axis 0"):
            registry.run_reference(ir_node(helper.make_node(op, ["x"], ["y"], **attrs), [x], (), 19), [x])


def test_convolution_larger_than_its_input_stays_an_error() -> None:
    """ORT's CPU provider refuses it too (Conv has no empty-output rule)."""
    x, w = np.ones((1, 1, 1, 1), np.float32), np.ones((1, 1, 2, 2), np.float32)
    with pytest.raises(OpError, match="window of 2 .* is larger than spatial axis 0 of size 1"):
        check(case("conv", "Conv", [x, w], {}))


# ------------------------------------------------------------------------------ empty dimensions vs ORT --

Z, O, F32 = np.zeros, np.ones, np.float32


def _i(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


EMPTY = [
    case("MaxPool-zero-batch", "MaxPool", [Z((0, 1, 4, 4), F32)], {"kernel_shape": [2, 2]}),
    case("AveragePool-zero-batch", "AveragePool", [Z((0, 2, 3, 3), F32)], {"kernel_shape": [2, 2]}),
    case("GlobalMaxPool-zero-batch", "GlobalMaxPool", [Z((0, 2, 3, 4), F32)], {}),
    case("MaxPool-3d-window-larger", "MaxPool", [O((1, 2, 1, 3, 3), F32)], {"kernel_shape": [2, 2, 2]}),
    case("Conv-zero-batch", "Conv", [Z((0, 1, 4, 4), F32), O((2, 1, 2, 2), F32)], {}, const=(1,)),
    # onnxruntime 1.30's CPU Conv leaves this output uninitialized (1.79e38 seen; 1.32 gives zeros): sums over no
    # channels are 0
    case("Conv-zero-in-channels", "Conv", [Z((1, 0, 4, 4), F32), O((2, 0, 2, 2), F32)], {}, const=(1,),
         expected=[np.zeros((1, 2, 3, 3), np.float32)]),
    case("Conv-zero-out-channels", "Conv", [Z((1, 1, 4, 4), F32), O((0, 1, 2, 2), F32)], {}, const=(1,)),
    case("ConvTranspose-zero-batch", "ConvTranspose", [Z((0, 1, 4, 4), F32), O((1, 2, 2, 2), F32)], {}, const=(1,)),
    case("ConvTranspose-zero-height", "ConvTranspose", [Z((1, 1, 0, 4), F32), O((1, 2, 2, 2), F32)], {},
         const=(1,)),
    case("Slice-empty-range", "Slice", [O((4, 5), F32), _i(3), _i(1), _i(0)], {}, const=(1, 2, 3)),
    case("Slice-zero-dim", "Slice", [Z((0, 5), F32), _i(1), _i(3), _i(1)], {}, const=(1, 2, 3)),
    case("Slice-start-past-end", "Slice", [O((4, 5), F32), _i(10), _i(20), _i(1)], {}, const=(1, 2, 3)),
    case("Resize-zero-batch", "Resize", [Z((0, 1, 2, 2), F32), None, np.array([1, 1, 2, 2], F32)],
         {"mode": "nearest"}, opset=18, const=(2,)),
    case("Resize-zero-height", "Resize", [Z((1, 1, 0, 2), F32), None, np.array([1, 1, 2, 2], F32)],
         {"mode": "linear"}, opset=18, const=(2,)),
    case("Resize-scale-to-zero", "Resize", [O((1, 1, 2, 2), F32), None, np.array([1, 1, 0.4, 1], F32)],
         {"mode": "nearest"}, opset=18, const=(2,)),
    case("ReduceSum-all-of-empty", "ReduceSum", [Z((0, 3), F32)], {"keepdims": 0}, opset=18),
    case("ReduceMean-all-of-empty", "ReduceMean", [Z((0, 3), F32)], {"keepdims": 0}, opset=18),
    case("ReduceMax-empty-axis", "ReduceMax", [Z((0, 3), F32), _i(0)], {}, opset=18, const=(1,)),
    case("ReduceProd-int-empty-axis", "ReduceProd", [np.zeros((0, 3), np.int64), _i(0)], {}, opset=18, const=(1,)),
    case("ReduceMin-int-empty-axis", "ReduceMin", [np.zeros((0, 3), np.int32), _i(0)], {}, opset=18, const=(1,)),
    case("ReduceL1-empty-axis", "ReduceL1", [Z((2, 0), F32), _i(1)], {}, opset=18, const=(1,)),
    case("ArgMax-zero-rows", "ArgMax", [Z((0, 3), F32)], {"axis": 1}),
    case("Softmax-zero-columns", "Softmax", [Z((2, 0), F32)], {}, opset=13),
    case("MatMul-zero-k", "MatMul", [Z((2, 0), F32), Z((0, 3), F32)], {}),
    case("Gemm-zero-k", "Gemm", [Z((2, 0), F32), Z((0, 3), F32)], {}),
    case("Concat-with-empty", "Concat", [Z((2, 0), F32), O((2, 3), F32)], {"axis": 1}),
    case("Pad-empty", "Pad", [Z((0, 3), F32), _i(1, 1, 1, 1)], {"mode": "constant"}, opset=18, const=(1,)),
    case("Gather-empty-indices", "Gather", [O((3, 4), F32), np.zeros((0,), np.int64)], {"axis": 0}),
    case("Split-zero-width", "Split", [Z((2, 0), F32), _i(0, 0)], {"axis": 1}, opset=18, const=(1,), n_outputs=2),
    case("Transpose-empty", "Transpose", [Z((0, 3), F32)], {"perm": [1, 0]}),
    case("Expand-to-zero", "Expand", [O((1, 3), F32), _i(0, 3)], {}, const=(1,)),
    case("Tile-zero-times", "Tile", [O((2, 3), F32), _i(0, 1)], {}, const=(1,)),
]


@pytest.mark.parametrize("c", EMPTY, ids=repr)
def test_empty_dimensions_give_what_onnxruntime_cpu_gives(c) -> None:  # noqa: ANN001
    outs = check(c)
    assert any(o.size == 0 for o in outs) or any(a is not None and a.size == 0 for a in c.inputs)
