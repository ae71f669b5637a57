"""fuse_pointwise: chains merge into one program within the kernel's limits."""

import numpy as np

from builder_testutil import GB, apply, check_same, feeds_for, ops
from ep_trtpy.ops.pointwise_program import MAX_CODE, MAX_REGS, Program
from graph_partitioner.ir import FLOAT, INT32

PASSES = ["canonicalize_pointwise", "fuse_pointwise", "eliminate_dead_nodes"]


def _prog(node):
    return Program.from_json(node.attrs["program"], len(node.inputs))


def test_chain_merges_into_one_node():
    gb = GB()
    x, b = gb.input("x", (2, 3, 4)), gb.input("b", (4,))
    y = gb.op("Add", [x, b])
    y = gb.op("Mul", [y, gb.const(np.float32(0.5), "h")])
    y = gb.op("Sigmoid", [gb.op("Relu", [y])])
    y = gb.op("Sub", [y, x])
    g = gb.output(y)
    before = g.copy()
    ctx = apply(g, PASSES)
    assert ops(g) == ["Pointwise"]
    n = g.nodes[0]
    assert [v.name for v in n.inputs] == ["x", "b", "h"]  # x read once although used twice
    assert len(ctx.origin(n.name)) == 5
    apply(before, [])
    check_same(before, g, feeds_for(before))


def test_shared_intermediate_becomes_extra_output():
    gb = GB()
    x = gb.input("x", (3, 4))
    t = gb.op("Tanh", [x])
    y = gb.op("Exp", [t])
    s = gb.op("Softmax", [t], {"axis": -1})
    g = gb.output(y, s)
    before = g.copy()
    apply(g, PASSES)
    assert ops(g) == ["Pointwise", "Softmax"]
    n = g.nodes[0]
    assert len(n.outputs) == 2 and g.nodes[1].inputs[0] is n.outputs[1]
    apply(before, [])
    check_same(before, g, feeds_for(before))


def test_refuses_across_broadcast():
    gb = GB()
    x, b = gb.input("x", (5, 4)), gb.input("b", (1, 4))
    nb = gb.op("Neg", [b])
    g = gb.output(gb.op("Add", [x, nb]))
    before = g.copy()
    ctx = apply(g, PASSES)
    assert ops(g) == ["Pointwise", "Pointwise"]
    assert any(f"'{nb.name}'" in r and "broadcast" in r for r in ctx.refusals)
    apply(before, [])
    check_same(before, g, feeds_for(before))


def test_refuses_cycle_through_other_node():
    gb = GB()
    x = gb.input("x", (3, 4))
    p = gb.op("Exp", [x])
    s = gb.op("Softmax", [p], {"axis": -1})
    g = gb.output(gb.op("Add", [p, s]))
    before = g.copy()
    ctx = apply(g, PASSES)
    assert ops(g) == ["Pointwise", "Softmax", "Pointwise"]
    assert any("through other nodes" in r for r in ctx.refusals)
    apply(before, [])
    check_same(before, g, feeds_for(before))


def test_store_conversion_is_kept_when_fused():
    """Cast to int32 truncates on store; the merged program must still truncate."""
    gb = GB()
    x = gb.input("x", (16,))
    i = gb.op("Cast", [gb.op("Mul", [x, gb.const(np.float32(3.0), "k")])], {"to": INT32})
    y = gb.op("Cast", [i], {"to": FLOAT})
    g = gb.output(gb.op("Add", [y, gb.const(np.float32(0.25), "q")]))
    before = g.copy()
    apply(g, PASSES)
    assert ops(g) == ["Pointwise"]
    assert any(ins[0] == "cast" for ins in _prog(g.nodes[0]).code)
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=0, atol=0)


def test_long_chain_respects_limits():
    gb = GB()
    x = gb.input("x", (8,))
    y = x
    for k in range(3 * MAX_CODE):
        y = gb.op("Add" if k % 2 else "Mul", [y, gb.const(np.float32(1.0 + 1e-3 * k), f"c{k}")])
    g = gb.output(y)
    before = g.copy()
    ctx = apply(g, PASSES)
    assert 3 <= len(g.nodes) < 3 * MAX_CODE
    for n in g.nodes:
        prog = _prog(n)
        assert len(prog.code) <= MAX_CODE and prog.n_regs <= MAX_REGS and len(n.inputs) <= 16
    assert any("limit" in r for r in ctx.refusals)
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5)


def test_register_reuse_keeps_many_inputs_within_limits():
    gb = GB()
    xs = [gb.input(f"x{k}", (4,)) for k in range(12)]
    y = xs[0]
    for v in xs[1:]:
        y = gb.op("Max", [gb.op("Mul", [y, v]), v])
    g = gb.output(y)
    before = g.copy()
    apply(g, PASSES)
    assert ops(g) == ["Pointwise"]
    prog = _prog(g.nodes[0])
    assert prog.n_regs <= 14  # 12 inputs + little scratch: registers are reused
    apply(before, [])
    check_same(before, g, feeds_for(before))
