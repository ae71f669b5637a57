"""infer_shapes: binding, propagation, shape arithmetic folding, refusals."""

import numpy as np
import pytest

from builder_testutil import GB, apply, check_same, feeds_for, ops
from ep_trtpy.builder.passes.infer_shapes import ShapeError
from graph_partitioner.ir import FLOAT, INT64


def _shape_reshape_graph():
    gb = GB()
    x = gb.input("x", (2, "S", 8))
    s = gb.op("Shape", [x])
    g0 = gb.op("Gather", [s, gb.const(np.array([0], np.int64), "i")], {"axis": 0})
    shape = gb.op("Concat", [g0, gb.const(np.array([-1], np.int64), "m1")], {"axis": 0})
    r = gb.op("Reshape", [x, shape])
    y = gb.op("Relu", [r])
    return gb.output(y)


def test_binds_shapes_and_folds_shape_arithmetic():
    g = _shape_reshape_graph()
    before = g.copy()
    apply(g, [], shapes={"x": (2, 3, 8)})
    assert g.inputs[0].shape == (2, 3, 8)
    assert ops(g) == ["Reshape", "Relu"]  # Shape -> Gather -> Concat became a constant
    assert g.nodes[0].inputs[1].const.tolist() == [2, -1]
    assert g.outputs[0].shape == (2, 24) and g.outputs[0].dtype == FLOAT
    for v in g.values.values():
        assert v.dtype is not None and all(isinstance(d, int) for d in v.shape)
    apply(before, [], shapes={"x": (2, 3, 8)})
    check_same(before, g, feeds_for(before))


def test_refuses_contradicting_static_dim():
    g = _shape_reshape_graph()
    with pytest.raises(ShapeError, match="input 'x' has static dimension 0 = 2"):
        apply(g, [], shapes={"x": (3, 3, 8)})


def test_refuses_missing_dynamic_shape_and_unknown_name():
    with pytest.raises(ShapeError, match="'x' has the dynamic shape"):
        apply(_shape_reshape_graph(), [])
    with pytest.raises(ShapeError, match="'nope', which is not an input"):
        apply(_shape_reshape_graph(), [], shapes={"x": (2, 3, 8), "nope": (1,)})


def test_refuses_declared_shape_contradiction():
    gb = GB()
    x = gb.input("x", (2, 3))
    y = gb.op("Relu", [x])
    y.shape = (2, 4)  # the model declares something else
    g = gb.output(y)
    with pytest.raises(ShapeError, match="declared \\[2,4\\] but infers to \\[2,3\\]"):
        apply(g, [])


def test_int64_values_keep_dtype():
    gb = GB()
    x = gb.input("x", (4,), INT64)
    y = gb.op("Add", [x, gb.const(np.array(1, np.int64), "one")])
    g = gb.output(y)
    apply(g, [])
    assert g.outputs[0].dtype == INT64 and g.outputs[0].shape == (4,)
