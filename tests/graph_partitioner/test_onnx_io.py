"""ONNX protobuf <-> IR: round trips pass the checker and compute the same numbers in ORT's CPU provider."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from graph_partitioner.ir import FLOAT, INT64, Graph
from graph_partitioner.onnx_io import OpaqueAttr, graph_from_onnx, graph_to_onnx

ort = pytest.importorskip("onnxruntime")


def _model(value_info: bool = False) -> onnx.ModelProto:
    """x[N,4] -> MatMul(W) -> Add(Constant) -> LayerNormalization -> Transpose -> Split(3 outputs, 2nd unused);
    Dropout with an absent mask; an unnamed node; attributes of every plain kind."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 6)).astype(np.float32)
    nodes = [
        h.make_node("MatMul", ["x", "W"], ["mm"], name="matmul"),
        h.make_node("Constant", [], ["cb"], name="const_b", value=nh.from_array(np.arange(6, dtype=np.float32))),
        h.make_node("Add", ["mm", "cb"], ["ad"]),  # unnamed
        h.make_node("LayerNormalization", ["ad", "gamma"], ["ln"], name="ln", axis=-1, epsilon=1e-5),
        h.make_node("Dropout", ["ln"], ["dr"], name="dropout"),
        h.make_node("Transpose", ["dr"], ["tr"], name="transpose", perm=[1, 0]),
        h.make_node("Split", ["tr", "split_sizes"], ["s0", "s1", "s2"], name="split", axis=0),
        h.make_node("Cast", ["s2"], ["c2"], name="cast", to=T.FLOAT16),
        h.make_node("Resize", ["c2", "", "scales"], ["rs"], name="resize", mode="nearest",
                    coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
    ]
    graph = h.make_graph(
        nodes, "roundtrip", [h.make_tensor_value_info("x", T.FLOAT, ["N", 4])],
        [h.make_tensor_value_info("s0", T.FLOAT, [2, "N"]), h.make_tensor_value_info("rs", T.FLOAT16, [3, None])],
        initializer=[nh.from_array(w, "W"), nh.from_array(np.linspace(0.5, 1.5, 6).astype(np.float32), "gamma"),
                     nh.from_array(np.array([2, 1, 3], np.int64), "split_sizes"),
                     nh.from_array(np.array([1.0, 2.0], np.float32), "scales")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    if value_info:
        model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model)
    return model


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def test_round_trip_checker_and_numbers(tmp_path):
    model = _model()
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    g = graph_from_onnx(str(path))
    assert g.model_path == str(path)
    out = graph_to_onnx(g)
    onnx.checker.check_model(out, full_check=True)
    feeds = {"x": np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)}
    before, after = _run(model, feeds), _run(out, feeds)
    assert [o.dtype for o in before] == [o.dtype for o in after]
    for a, b in zip(before, after):
        np.testing.assert_allclose(b.astype(np.float32), a.astype(np.float32), rtol=1e-6, atol=1e-6)


def test_from_onnx_values_attributes_and_names():
    g = graph_from_onnx(_model())
    assert g.opsets == {"": 17}
    assert [v.name for v in g.inputs] == ["x"] and g.inputs[0].shape == ("N", 4)
    assert g.inputs[0].dtype == FLOAT
    # shape inference ran (no value_info in the model): intermediate values have dtypes and shapes
    assert g.values["mm"].dtype == FLOAT and g.values["mm"].shape == ("N", 6)
    assert g.values["c2"].dtype == T.FLOAT16
    # initializers are constants; the Constant node stays a node and its output carries the array
    assert g.values["W"].const.shape == (4, 6) and g.values["W"].producer is None
    const_node = g.node_by_name("const_b")
    assert const_node.op_type == "Constant" and isinstance(const_node.attrs["value"], np.ndarray)
    np.testing.assert_array_equal(g.values["cb"].const, np.arange(6, dtype=np.float32))
    # attributes as plain Python values
    ln = g.node_by_name("ln")
    assert ln.attrs == {"axis": -1, "epsilon": pytest.approx(1e-5)} and isinstance(ln.attrs["axis"], int)
    assert g.node_by_name("transpose").attrs["perm"] == [1, 0]
    assert g.node_by_name("resize").attrs["mode"] == "nearest"
    assert g.node_by_name("cast").attrs["to"] == T.FLOAT16
    # an absent optional input in the middle stays None
    assert g.node_by_name("resize").inputs[1] is None
    # unnamed node got a unique name; since_version resolved from the schema
    add = g.nodes[2]
    assert add.op_type == "Add" and add.name == "Add_2"
    assert ln.since_version == 17 and add.since_version == 14
    assert [n.index for n in g.nodes] == list(range(len(g.nodes)))


def test_trailing_absent_inputs_and_outputs_are_dropped():
    """(ORT 1.31's CPU LayerNormalization crashes on an explicit trailing "" input, so dropping them matters.)"""
    model = _model()
    for n in model.graph.node:
        if n.op_type == "LayerNormalization":
            n.input.append("")
            n.output.extend(["", "inv_std"])
        if n.op_type == "Dropout":
            n.output.append("")
    g = graph_from_onnx(model)
    ln = g.node_by_name("ln")
    assert len(ln.inputs) == 2
    assert [v.name for v in ln.outputs] == ["ln", "ln__absent_output1", "inv_std"]
    assert len(g.node_by_name("dropout").outputs) == 1
    out = graph_to_onnx(g)
    onnx.checker.check_model(out, full_check=True)
    feeds = {"x": np.ones((2, 4), np.float32)}
    np.testing.assert_allclose(_run(out, feeds)[0], _run(_model(), feeds)[0], rtol=1e-6, atol=1e-6)


def test_from_onnx_with_value_info_skips_nothing():
    g = graph_from_onnx(_model(value_info=True))
    assert g.values["ln"].shape == ("N", 6)


def test_initializer_listed_as_input_is_a_constant():
    model = _model()
    model.graph.input.append(h.make_tensor_value_info("W", T.FLOAT, [4, 6]))
    g = graph_from_onnx(model)
    assert [v.name for v in g.inputs] == ["x"] and g.values["W"].const is not None


def test_graph_attribute_is_opaque_and_round_trips():
    then_g = h.make_graph([h.make_node("Identity", ["a"], ["t"])], "then", [],
                          [h.make_tensor_value_info("t", T.FLOAT, [2])])
    else_g = h.make_graph([h.make_node("Neg", ["a"], ["e"])], "else", [],
                          [h.make_tensor_value_info("e", T.FLOAT, [2])])
    nodes = [h.make_node("Relu", ["x"], ["a"], name="relu"),
             h.make_node("If", ["cond"], ["y"], name="if", then_branch=then_g, else_branch=else_g)]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [2]),
                                      h.make_tensor_value_info("cond", T.BOOL, [])],
                         [h.make_tensor_value_info("y", T.FLOAT, [2])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    g = graph_from_onnx(model)
    attr = g.node_by_name("if").attrs["then_branch"]
    assert isinstance(attr, OpaqueAttr) and attr.kind == "graph"
    out = graph_to_onnx(g)
    onnx.checker.check_model(out, full_check=True)
    x = np.array([1.0, -2.0], np.float32)
    for cond in (True, False):
        feeds = {"x": x, "cond": np.array(cond)}
        np.testing.assert_array_equal(_run(out, feeds)[0], _run(model, feeds)[0])


def test_to_onnx_internal_domain_and_duplicate_outputs():
    g = Graph("t", {"": 17})
    x = g.add_value("x", FLOAT, (2, 3))
    g.inputs.append(x)
    pw = g.add_node("Pointwise", [x], 1, attrs={"program": "{}"}, domain="ep_trtpy", name="pw")
    pw.outputs[0].dtype, pw.outputs[0].shape = FLOAT, (2, 3)
    idx = g.add_constant(np.array([1, 0], np.int64), "idx")
    ga = g.add_node("Gather", [pw.outputs[0], idx], 1, attrs={"axis": 0}, name="gather")
    ga.outputs[0].dtype, ga.outputs[0].shape = FLOAT, (2, 3)
    g.outputs += [ga.outputs[0], ga.outputs[0]]
    m = graph_to_onnx(g)
    assert {o.domain: o.version for o in m.opset_import} == {"": 17, "ep_trtpy": 1}
    assert [i.name for i in m.graph.initializer] == ["idx"]
    assert len({o.name for o in m.graph.output}) == 2
    onnx.checker.check_model(m, full_check=True)


def test_to_onnx_plain_graph_runs_in_ort():
    """A graph built in the IR (not from ONNX) exports to a model ORT runs with numpy's answer."""
    g = Graph("t", {"": 17})
    x = g.add_value("x", FLOAT, ("B", 3))
    g.inputs.append(x)
    shape = g.add_node("Shape", [x], 1, name="shape").outputs[0]
    shape.dtype, shape.shape = INT64, (2,)
    r = g.add_node("Reshape", [x, g.add_constant(np.array([-1], np.int64), "flat")], 1, name="reshape").outputs[0]
    r.dtype, r.shape = FLOAT, (None,)
    s = g.add_node("ReduceSum", [r, g.add_constant(np.array([0], np.int64), "axes")], 1,
                   attrs={"keepdims": 0}, name="sum").outputs[0]
    s.dtype, s.shape = FLOAT, ()
    g.outputs += [s, shape]
    m = graph_to_onnx(g)
    onnx.checker.check_model(m, full_check=True)
    xv = np.arange(6, dtype=np.float32).reshape(2, 3)
    total, shp = _run(m, {"x": xv})
    assert total == pytest.approx(15.0) and shp.tolist() == [2, 3]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        graph_from_onnx(str(tmp_path / "nope.onnx"))


def test_float8_initializer_and_constant_load_and_are_refused():
    """Element types numpy has no plain twin for keep their ONNX type; the rules refuse them with a reason."""
    from graph_partitioner.partition import partition

    w8 = h.make_tensor("w8", T.FLOAT8E4M3FN, [2], [1.0, 2.0])
    c8 = h.make_tensor("c8", T.FLOAT8E4M3FN, [2], [1.0, 2.0])
    nodes = [h.make_node("Cast", ["w8"], ["w"], to=T.FLOAT, name="cast_w"),
             h.make_node("Constant", [], ["k"], value=c8, name="const"),
             h.make_node("Cast", ["k"], ["kf"], to=T.FLOAT, name="cast_k"),
             h.make_node("Add", ["w", "kf"], ["y"], name="add")]
    graph = h.make_graph(nodes, "f8", [], [h.make_tensor_value_info("y", T.FLOAT, [2])], initializer=[w8])
    g = graph_from_onnx(h.make_model(graph, opset_imports=[h.make_opsetid("", 19)]))
    assert g.values["w8"].dtype == T.FLOAT8E4M3FN and g.values["w8"].const is not None
    result = partition(g)
    assert [n.name for n in result.claimed] == ["add"]
    why = result.reasons["cast_w"]
    assert why.startswith("input 0 ('w8') is ") and "; Cast supports bool, float16, float32, int32, int64" in why
