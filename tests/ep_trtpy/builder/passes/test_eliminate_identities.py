"""eliminate_identities: identity-like nodes vanish, positional graph outputs stay right."""

import numpy as np

from builder_testutil import GB, apply, check_same, feeds_for, ops
from ep_trtpy.builder.pipeline import PassContext, run_pass
from graph_partitioner.ir import FLOAT, FLOAT16


def test_removes_identity_like_nodes():
    gb = GB()
    x = gb.input("x", (2, 1, 3))
    a = gb.op("Identity", [x])
    b = gb.op("Dropout", [a], {})
    c = gb.op("Cast", [b], {"to": FLOAT})
    d = gb.op("Reshape", [c, gb.const(np.array([2, 1, 3], np.int64), "s")])
    e = gb.op("Transpose", [d], {"perm": [1, 0, 2]})  # moves a size-1 axis only: shape changes
    f = gb.op("Transpose", [d], {"perm": [0, 1, 2]})
    h = gb.op("Expand", [f, gb.const(np.array([2, 1, 3], np.int64), "s2")])
    y = gb.op("Relu", [h])
    g = gb.output(y, e)
    before = g.copy()
    apply(g, ["eliminate_identities", "eliminate_dead_nodes"])
    assert ops(g) == ["Transpose", "Relu"]
    assert g.nodes[1].inputs[0] is g.inputs[0]
    apply(before, [])
    check_same(before, g, feeds_for(before))


def test_graph_output_slots_stay_positional():
    gb = GB()
    x = gb.input("x", (4,))
    y = gb.op("Relu", [x])
    i1 = gb.op("Identity", [y])
    i2 = gb.op("Identity", [x])
    g = gb.output(i2, i1, y)
    before = g.copy()
    apply(g, ["eliminate_identities", "eliminate_dead_nodes"])
    assert ops(g) == ["Relu"]
    assert g.outputs[0] is g.inputs[0] and g.outputs[1] is g.outputs[2]
    apply(before, [])
    check_same(before, g, feeds_for(before))


def test_refuses_dropout_with_used_mask_and_real_casts():
    gb = GB()
    x = gb.input("x", (4,))
    y, mask = gb.op("Dropout", [x], n_out=2)
    c = gb.op("Cast", [y], {"to": FLOAT16})
    g = gb.output(c, mask)
    ctx = apply(g, ["eliminate_identities"])
    assert ops(g) == ["Dropout", "Cast"]
    assert any("mask output" in r and mask.name in r for r in ctx.refusals)


def test_refuses_dropout_in_training_mode():
    """(Shape inference already refuses training Dropout; the pass must not rely on that.)"""
    gb = GB()
    x = gb.input("x", (4,))
    y = gb.op("Dropout", [x, gb.const(np.float32(0.5), "r"), gb.const(np.array(True), "tm")])
    y.dtype, y.shape = FLOAT, (4,)
    g = gb.output(y)
    ctx = PassContext()
    run_pass("eliminate_identities", g, ctx)
    assert ops(g) == ["Dropout"]
    assert any("training_mode 'tm'" in r for r in ctx.refusals)
