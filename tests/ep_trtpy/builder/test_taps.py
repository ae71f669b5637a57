"""Taps (ep_trtpy/builder/taps.py): the values an engine materializes, read without changing the engine. The cuda
path (tap_plan) runs through the numpy emulator of our kernels, compared with the reference backend's run of the
same optimized graph (tap_graph)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from ep_trtpy.builder.build import build, optimize
from ep_trtpy.builder.lowering import lower
from ep_trtpy.builder.taps import TapError, read_taps, tap_graph, tap_plan
from ep_trtpy.ops.executor import run_graph
from ep_trtpy.options import Options
from graph_partitioner.onnx_io import graph_from_onnx

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lowering"))
from kernel_emulator import execute  # noqa: E402


def conv_split_model() -> object:
    """conv -> relu -> conv + residual -> conv -> maxpool -> flatten -> gemm -> split (views at a byte offset) ->
    sigmoid, tanh. Three convolutions and two layout conversions: in FP16 the convolutions run channels-last."""
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((8, 4, 3, 3)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((8, 8, 3, 3)) * 0.2).astype(np.float32)
    w3 = (rng.standard_normal((8, 8, 1, 1)) * 0.3).astype(np.float32)
    wg = (rng.standard_normal((128, 6)) * 0.2).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Add", ["c2", "r1"], ["s"], name="residual"),
             helper.make_node("Conv", ["s", "w3"], ["c3"], name="conv3"),
             helper.make_node("MaxPool", ["c3"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "wg"], ["g"], name="gemm"),
             helper.make_node("Split", ["g"], ["g0", "g1"], axis=0, num_outputs=2, name="split"),
             helper.make_node("Sigmoid", ["g0"], ["y0"], name="sig0"),
             helper.make_node("Tanh", ["g1"], ["y1"], name="tanh1")]
    g = helper.make_graph(nodes, "taps", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4, 8, 8])],
                          [helper.make_tensor_value_info("y0", TensorProto.FLOAT, None),
                           helper.make_tensor_value_info("y1", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
                           numpy_helper.from_array(w3, "w3"), numpy_helper.from_array(wg, "wg")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)


def optimized(options: Options):  # noqa: ANN201
    graph = graph_from_onnx(conv_split_model())
    return optimize(graph, {"x": (4, 4, 8, 8)}, options)


def materialized(g) -> list[str]:  # noqa: ANN001
    return [v.name for n in g.nodes for v in n.outputs if v.consumers or g.is_graph_output(v)]


def test_tap_graph_adds_outputs_and_keeps_the_nodes() -> None:
    g = optimized(Options(tf32_enable=False))
    names = materialized(g)
    tapped = tap_graph(g, names)
    assert [n.name for n in tapped.nodes] == [n.name for n in g.nodes]
    assert [v.name for v in tapped.outputs] == [v.name for v in g.outputs] + names
    assert len(g.outputs) == 2  # the engine's own graph is untouched
    x = np.random.default_rng(1).standard_normal((4, 4, 8, 8)).astype(np.float32)
    outs = run_graph(tapped, {"x": x})
    r1 = outs[2 + names.index("r1")] if "r1" in names else None
    assert r1 is not None, names  # conv1 + relu1 is one layer whose output is the ONNX value r1
    w1 = numpy_helper.to_array(conv_split_model().graph.initializer[0])
    from ep_trtpy.ops.registry import run_reference
    from graph_partitioner.ir import Graph

    conv = Graph("c", {"": 17}).add_node("Conv", [], 1, attrs={"pads": [1, 1, 1, 1]})
    np.testing.assert_allclose(r1, np.maximum(run_reference(conv, [x, w1])[0], 0), rtol=1e-5, atol=1e-5)
    with pytest.raises(TapError, match="'c1' is not computed"):
        tap_graph(g, ["c1"])  # fused into conv1's layer


@pytest.mark.parametrize("options", [Options(tf32_enable=False), Options(fp16_enable=True)], ids=["fp32", "fp16"])
def test_tap_plan_reads_every_materialized_value(options: Options) -> None:
    g = optimized(options)
    plan, weights = lower(g, options)
    names = [n for n in materialized(g) if any(t.name == n for t in plan.tensors)]
    tapped, taps = tap_plan(plan, names)
    # the launch list is the engine's: same kernels, parameters and tactics; only homes of tapped tensors change
    assert [(a.kernel, a.ints, a.floats, a.inputs, a.outputs) for a in tapped.layers] == \
        [(b.kernel, b.ints, b.floats, b.inputs, b.outputs) for b in plan.layers]
    assert tapped.n_outputs > plan.n_outputs and plan.n_outputs == 2
    assert {t.home for t in taps} >= {"output"}
    views = [t for t in taps if t.offset > 0]
    assert views, "the Split's second half is a view at a byte offset of the GEMM output"
    x = np.random.default_rng(2).standard_normal((4, 4, 8, 8)).astype(np.float32)
    outs = execute(tapped, weights, [x])
    got = read_taps(taps, [x], outs, weights)
    want = dict(zip(names, run_graph(tap_graph(g, names), {"x": x})[2:]))
    tol = 1e-4 if options.fp16_enable is False else 2e-2
    for n in names:
        assert got[n].dtype == want[n].dtype and got[n].shape == want[n].shape, n
        np.testing.assert_allclose(got[n].astype(np.float64), want[n].astype(np.float64), rtol=tol, atol=tol,
                                   err_msg=n)
    # the untapped engine still computes its outputs the same way
    base = execute(plan, weights, [x])
    for a, b in zip(base, outs[:2]):
        np.testing.assert_array_equal(a, b)


def test_tap_plan_keeps_tactics_and_leaves_the_plan_alone() -> None:
    g = optimized(Options(fp16_enable=True))
    plan, _ = lower(g, Options(fp16_enable=True))
    for i, lay in enumerate(plan.layers):
        lay.tactic, lay.tactic_name, lay.tactic_state = i, f"t{i}", bytes([i % 256])
    before = [(t.kind, t.index, t.offset) for t in plan.tensors]
    name = next(t.name for t in plan.tensors if t.kind == "activation" and t.name in materialized(g))
    tapped, (tap,) = tap_plan(plan, [name])
    assert [(t.kind, t.index, t.offset) for t in plan.tensors] == before
    assert [(lay.tactic, lay.tactic_name, lay.tactic_state) for lay in tapped.layers] == \
        [(lay.tactic, lay.tactic_name, lay.tactic_state) for lay in plan.layers]
    spec = next(t for t in tapped.tensors if t.name == name)
    assert (spec.kind, spec.index, tap.home, tap.index) == ("output", 2, "output", 2)
    assert tapped.arena_bytes <= plan.arena_bytes
    with pytest.raises(TapError, match="'nope' has no tensor"):
        tap_plan(plan, ["nope"])


def test_build_records_channels_last_values() -> None:
    graph = graph_from_onnx(conv_split_model())
    nhwc = build(graph, {"x": (4, 4, 8, 8)}, Options(fp16_enable=True), "reference")
    assert {"r1", "s", "c3", "p"} <= set(nhwc.channels_last)
    by_name = nhwc.graph.values
    assert by_name["r1"].shape == (4, 8, 8, 8) and by_name["p"].shape == (4, 4, 4, 8)  # NHWC in the engine
    strict = build(graph, {"x": (4, 4, 8, 8)}, Options(tf32_enable=False), "reference")
    assert strict.channels_last == []  # float32 without TF32 stays NCHW
