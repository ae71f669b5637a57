"""The shape-computable analysis and what the partitioner does with it (build-time operands stay in the cluster)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from graph_partitioner.ir import BOOL, FLOAT, INT64, Graph, Value
from graph_partitioner.onnx_io import graph_to_onnx
from graph_partitioner.partition import partition
from graph_partitioner.shape_computable import ShapeComputable

ort = pytest.importorskip("onnxruntime")


def _typed(v: Value, dtype: int, shape: tuple) -> Value:
    v.dtype, v.shape = dtype, shape
    return v


def chain_graph(extra_runtime: bool = False, through_topk: bool = False) -> Graph:
    """y = Reshape(data, Concat(Unsqueeze(Gather(Shape(Relu(x)), 0)), [-1])) with data = Relu(x), or the values
    of a TopK on it (through_topk). extra_runtime: Concat also reads a runtime int64 input."""
    g = Graph("chain", {"": 17})
    x = g.add_value("x", FLOAT, ("N", 3, 4))
    g.inputs.append(x)
    a = _typed(g.add_node("Relu", [x], [g.add_value("a")], name="relu").outputs[0], FLOAT, ("N", 3, 4))
    s = _typed(g.add_node("Shape", [a], [g.add_value("s")], name="shape").outputs[0], INT64, (3,))
    d0 = _typed(g.add_node("Gather", [s, g.add_constant(np.array(0, np.int64), "zero")], [g.add_value("d0")],
                           attrs={"axis": 0}, name="gather").outputs[0], INT64, ())
    d0u = _typed(g.add_node("Unsqueeze", [d0, g.add_constant(np.array([0], np.int64), "ax0")], [g.add_value("d0u")],
                            name="unsqueeze").outputs[0], INT64, (1,))
    parts = [d0u, g.add_constant(np.array([-1], np.int64), "minus1")]
    if extra_runtime:
        rt = g.add_value("rt", INT64, (0,))
        g.inputs.append(rt)
        parts.append(rt)
    shape = _typed(g.add_node("Concat", parts, [g.add_value("newshape")], attrs={"axis": 0},
                              name="concat").outputs[0], INT64, (2,))
    data = a
    if through_topk:
        k = g.add_constant(np.array([4], np.int64), "k")
        tk = g.add_node("TopK", [a, k], [g.add_value("tv"), g.add_value("ti")], attrs={"axis": -1}, name="topk")
        data = _typed(tk.outputs[0], FLOAT, ("N", 3, 4))
        _typed(tk.outputs[1], INT64, ("N", 3, 4))
    y = _typed(g.add_node("Reshape", [data, shape], [g.add_value("y")], name="reshape").outputs[0], FLOAT,
               ("N", 12))
    g.outputs.append(y)
    return g


def test_chain_values_are_computable():
    g = chain_graph()
    sc = ShapeComputable(g)
    assert [v.name for v in sc.values()] == ["s", "d0", "d0u", "newshape"]
    assert sc(g.values["zero"]) and not sc(g.values["x"]) and not sc(g.values["a"]) and not sc(g.values["y"])
    result = partition(g)
    assert [[n.name for n in c] for c in result.clusters] == [
        ["relu", "shape", "gather", "unsqueeze", "concat", "reshape"]]
    assert result.reasons == {}


def test_chain_numbers_in_ort_match_numpy():
    """The chain means what the analysis assumes: the Reshape's shape follows from x's shape alone."""
    m = graph_to_onnx(chain_graph())
    onnx.checker.check_model(m, full_check=True)
    x = np.random.default_rng(0).standard_normal((5, 3, 4)).astype(np.float32)
    (y,) = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_array_equal(y, np.maximum(x, 0).reshape(5, -1))


def test_runtime_operand_breaks_the_chain():
    g = chain_graph(extra_runtime=True)
    sc = ShapeComputable(g)
    assert sc(g.values["d0u"]) and not sc(g.values["newshape"])
    result = partition(g)
    assert result.reasons == {"reshape": "Reshape shape input 'newshape' is not computable at build time (it must "
                                         "follow from constants and input shapes)"}


def test_shape_of_an_unsupported_op_output_is_computable():
    g = chain_graph(through_topk=True)
    assert ShapeComputable(g)(g.values["newshape"])
    g2 = Graph("g2", {"": 17})
    x = g2.add_value("x", FLOAT, (2,))
    g2.inputs.append(x)
    nz = _typed(g2.add_node("NonZero", [x], [g2.add_value("nz")]).outputs[0], INT64, (1, None))
    s = _typed(g2.add_node("Shape", [nz], [g2.add_value("s")]).outputs[0], INT64, (2,))
    cs = g2.add_node("CumSum", [s, g2.add_constant(np.array(0, np.int64))], [g2.add_value("cs")]).outputs[0]
    sc = ShapeComputable(g2)
    assert sc(s) and not sc(nz) and not sc(cs)  # CumSum is not a shape op


def test_chain_joins_its_consumer_not_the_producer_of_the_shaped_tensor():
    """relu -> topk (CPU) -> reshape, and relu -> shape -> ... -> reshape: the shape computation must be in
    reshape's cluster (its engine needs the value at build time), not in relu's."""
    g = chain_graph(through_topk=True)
    result = partition(g)
    assert [[n.name for n in c] for c in result.clusters] == [
        ["relu"], ["shape", "gather", "unsqueeze", "concat", "reshape"]]
    assert list(result.reasons) == ["topk"]


def test_build_time_operand_outside_the_cluster_refuses_the_consumer():
    g = chain_graph()
    result = partition(g, op_types_to_exclude=["Gather"])
    assert result.reasons["gather"] == "excluded by op_types_to_exclude"
    assert result.reasons["reshape"] == ("Reshape needs 'newshape' when its engine is built, but it is computed by "
                                         "'gather' (Gather), which is not claimed")
    claimed = {n.name for n in result.claimed}
    assert "reshape" not in claimed and "relu" in claimed


def gather_nd_graph(runtime_indices: bool = False) -> Graph:
    """y = GatherND(m, Unsqueeze(Range(0, Gather(Shape(m), 0), 1), [1])): the dynamo exporter's spelling of a row
    selection whose indices follow from the shape of m (or, with runtime_indices, a graph input)."""
    g = Graph("gnd", {"": 18})
    m = g.add_value("m", BOOL, ("N", 4))
    g.inputs.append(m)
    if runtime_indices:
        idx = g.add_value("idx", INT64, ("N", 1))
        g.inputs.append(idx)
    else:
        s = _typed(g.add_node("Shape", [m], [g.add_value("s")], name="shape").outputs[0], INT64, (2,))
        n = _typed(g.add_node("Gather", [s, g.add_constant(np.array(0, np.int64), "zero")], [g.add_value("n")],
                              attrs={"axis": 0}, name="gather").outputs[0], INT64, ())
        r = _typed(g.add_node("Range", [g.add_constant(np.array(0, np.int64), "lo"), n,
                                        g.add_constant(np.array(1, np.int64), "step")], [g.add_value("r")],
                              name="range").outputs[0], INT64, ("N",))
        idx = _typed(g.add_node("Unsqueeze", [r, g.add_constant(np.array([1], np.int64), "ax1")],
                                [g.add_value("idx")], name="unsqueeze").outputs[0], INT64, ("N", 1))
    y = _typed(g.add_node("GatherND", [m, idx], [g.add_value("y")], name="gather_nd").outputs[0], BOOL, ("N", 4))
    g.outputs.append(y)
    return g


def test_gather_nd_indices_from_shapes_are_computable_and_claimed_with_their_computation():
    g = gather_nd_graph()
    assert ShapeComputable(g)(g.values["idx"])
    result = partition(g)
    assert [[n.name for n in c] for c in result.clusters] == [["shape", "gather", "range", "unsqueeze", "gather_nd"]]
    assert result.reasons == {}


def test_gather_nd_with_runtime_indices_is_refused():
    result = partition(gather_nd_graph(runtime_indices=True))
    assert result.reasons == {"gather_nd": "GatherND indices input 'idx' is not computable at build time (it must "
                                           "follow from constants and input shapes)"}
