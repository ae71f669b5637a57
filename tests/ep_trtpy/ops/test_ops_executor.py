"""run_graph / infer_graph on multi-node graphs, against onnxruntime; intermediates are freed after their last use."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from ops_harness import assert_close, graph_from_model, run_ort

from ep_trtpy.ops import executor
from ep_trtpy.ops.executor import infer_graph, run_graph
from ep_trtpy.ops.registry import OpError
from graph_partitioner.ir import FLOAT, INT64, Graph

RNG = np.random.default_rng(41)


def block_model(dynamic_batch: bool = True) -> tuple:
    """x [N, 3, 8, 8] -> Conv -> Relu -> GlobalAveragePool -> Reshape(Shape->Gather->Concat) -> MatMul -> Softmax,
    plus a second output (the Relu activation's shape arithmetic: Size)."""
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    fc = RNG.standard_normal((4, 5)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(fc, "fc"),
             numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Shape", ["g"], ["gs"], name="shape"),
        helper.make_node("Gather", ["gs", "zero"], ["n"], axis=0, name="gather"),
        helper.make_node("Concat", ["n", "minus1"], ["target"], axis=0, name="concat"),
        helper.make_node("Reshape", ["g", "target"], ["flat"], name="reshape"),
        helper.make_node("MatMul", ["flat", "fc"], ["logits"], name="matmul"),
        helper.make_node("Softmax", ["logits"], ["prob"], axis=-1, name="softmax"),
        helper.make_node("Size", ["r"], ["size"], name="size"),
    ]
    batch = "N" if dynamic_batch else 2
    g = helper.make_graph(nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
                          [helper.make_tensor_value_info("prob", TensorProto.FLOAT, None),
                           helper.make_tensor_value_info("size", TensorProto.INT64, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def test_run_graph_matches_onnxruntime() -> None:
    model = block_model()
    x = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
    want = run_ort(model, {"x": x})
    got = run_graph(graph_from_model(model), {"x": x})
    assert len(got) == 2
    assert_close(got[0], want[0], "prob", rtol=1e-5, atol=1e-6)
    assert_close(got[1], want[1], "size")


def test_infer_graph_fills_shapes_and_folds_shape_arithmetic() -> None:
    graph = graph_from_model(block_model())
    infos = infer_graph(graph, {"x": (3, 3, 8, 8)})
    v = graph.values
    assert v["c"].shape == (3, 4, 8, 8) and v["c"].dtype == FLOAT
    assert infos["target"].value is not None and infos["target"].value.tolist() == [3, -1]
    assert v["flat"].shape == (3, 4) and v["prob"].shape == (3, 5)
    assert infos["size"].dtype == INT64 and int(infos["size"].value) == 3 * 4 * 8 * 8
    assert infos["prob"].value is None  # depends on the runtime input
    # the static declared shape is used when no shape is given
    graph2 = graph_from_model(block_model(dynamic_batch=False))
    infer_graph(graph2)
    assert graph2.values["prob"].shape == (2, 5)


def test_infer_graph_errors_name_the_node_or_input() -> None:
    graph = graph_from_model(block_model())
    with pytest.raises(OpError, match="no concrete shape for input 'x'"):
        infer_graph(graph)
    graph.values["x"].shape = None  # rank unknown: the shape given is taken as is
    with pytest.raises(OpError, match="Conv node 'conv'.*channels"):
        infer_graph(graph, {"x": (1, 5, 8, 8)})
    with pytest.raises(OpError, match="not graph inputs"):
        infer_graph(graph_from_model(block_model()), {"x": (1, 3, 8, 8), "y": (1,)})


def test_run_graph_feed_errors() -> None:
    graph = graph_from_model(block_model())
    with pytest.raises(OpError, match="no feed for input 'x'"):
        run_graph(graph, {})
    with pytest.raises(OpError, match="feed for input 'x' is float64"):
        run_graph(graph, {"x": np.zeros((1, 3, 8, 8))})
    with pytest.raises(OpError, match="feed for input 'x' has shape"):
        run_graph(graph, {"x": np.zeros((1, 3, 8, 9), np.float32)})


def test_run_graph_frees_intermediates_after_last_use(monkeypatch: pytest.MonkeyPatch) -> None:
    graph = graph_from_model(block_model())
    last_use: dict[str, int] = {}
    for k, n in enumerate(graph.nodes):
        for v in n.inputs:
            if v is not None:
                last_use[v.name] = k
    produced: dict[str, weakref.ref] = {}
    viewed: set[int] = set()  # ids of arrays that a later output is a view of (kept alive by that view)
    step = {"k": 0}
    real = executor.run_reference
    outputs = {v.name for v in graph.outputs}

    def spy(node, args):  # type: ignore[no-untyped-def]
        gc.collect()
        for name, ref in produced.items():
            if name not in outputs and last_use.get(name, -1) < step["k"]:
                alive = ref()
                assert alive is None or id(alive) in viewed, \
                    f"'{name}' is still alive when node {step['k']} ({node.name}) runs"
        outs = real(node, args)
        for v, a in zip(node.outputs, outs):
            produced[v.name] = weakref.ref(a)
            base = a.base
            while base is not None:
                viewed.add(id(base))
                base = getattr(base, "base", None)
        step["k"] += 1
        return outs

    monkeypatch.setattr(executor, "run_reference", spy)
    run_graph(graph, {"x": RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)})
    assert step["k"] == len(graph.nodes)
    gc.collect()
    assert produced["c"]() is None  # Conv output: consumed by Relu only


def test_outputs_may_be_inputs_constants_or_repeated() -> None:
    g = Graph("g")
    x = g.add_value("x", FLOAT, (2,))
    g.inputs.append(x)
    c = g.add_constant(np.array([1.0, 2.0], np.float32), "c")
    n = g.add_node("Add", [x, c], 1, name="add")
    g.outputs = [n.outputs[0], x, c, n.outputs[0]]
    feed = np.array([3.0, 4.0], np.float32)
    out = run_graph(g, {"x": feed})
    assert [o.tolist() for o in out] == [[4.0, 6.0], [3.0, 4.0], [1.0, 2.0], [4.0, 6.0]]
    # outputs own their memory: writing into them changes neither the feed, the constant nor the other outputs
    for o in out[1:]:
        o[...] = -1
    assert feed.tolist() == [3.0, 4.0] and c.const.tolist() == [1.0, 2.0] and out[0].tolist() == [4.0, 6.0]
    infos = infer_graph(g)
    assert infos[n.outputs[0].name].shape == (2,)
