"""canonicalize_pointwise: elementwise nodes -> ep_trtpy::Pointwise."""

import numpy as np

from builder_testutil import GB, apply, check_same, feeds_for, ops
from ep_trtpy.ops.pointwise_program import Program
from graph_partitioner.ir import DOUBLE, INT32


def test_elementwise_become_pointwise():
    gb = GB()
    x = gb.input("x", (2, 3))
    y = gb.op("Clip", [gb.op("Add", [x, gb.const(np.ones(3, np.float32), "one")]), gb.const(np.float32(0), "lo"),
                       gb.const(np.float32(1.5), "hi")])
    i = gb.op("Cast", [y], {"to": INT32})
    m = gb.op("MatMul", [y, gb.const(np.ones((3, 2), np.float32), "w")])
    g = gb.output(i, m)
    before = g.copy()
    ctx = apply(g, ["canonicalize_pointwise"])
    assert ops(g) == ["Pointwise", "Pointwise", "Pointwise", "MatMul"]
    clip = g.nodes[1]
    assert len(clip.inputs) == 1  # constant bounds became immediates
    prog = Program.from_json(clip.attrs["program"], 1)
    assert prog.code[0][0] == "clip"
    assert ctx.origin(clip.name) == [before.nodes[1].name]
    apply(before, [])
    check_same(before, g, feeds_for(before))


def test_unsupported_dtype_stays_onnx():
    gb = GB()
    x = gb.input("x", (3,), DOUBLE)
    g = gb.output(gb.op("Relu", [x]))
    ctx = apply(g, ["canonicalize_pointwise"])
    assert ops(g) == ["Relu"]
    assert any("'x' is float64" in r for r in ctx.refusals)


def test_clip_6_bounds_come_from_attributes():
    gb = GB(opset=10)
    x = gb.input("x", (2, 5))
    y = gb.op("Clip", [x], {"min": -0.5, "max": 0.25})
    y.producer.since_version = 6  # as the ONNX importer marks an opset-10 model's Clip
    g = gb.output(y)
    before = g.copy()
    apply(g, ["canonicalize_pointwise"])
    assert ops(g) == ["Pointwise"]
    assert Program.from_json(g.nodes[0].attrs["program"], 1).code[0][3:] == [-0.5, 0.25]
    apply(before, [])
    check_same(before, g, feeds_for(before))
    assert np.abs(feeds_for(before)["x"]).max() > 0.5  # the bounds matter for these numbers
