"""eliminate_dead_nodes: unused chains go; graph inputs stay."""

from builder_testutil import GB, apply, check_same, feeds_for, ops


def test_removes_dead_chain_keeps_unused_input():
    gb = GB()
    x = gb.input("x", (3,))
    gb.input("unused", (2,))
    dead = gb.op("Exp", [x])
    gb.op("Neg", [dead])
    y = gb.op("Relu", [x])
    g = gb.output(y)
    before = g.copy()
    ctx = apply(g, ["eliminate_dead_nodes"])
    assert ops(g) == ["Relu"]
    assert [v.name for v in g.inputs] == ["x", "unused"]
    assert ctx.records[-1].changed
    apply(before, [])
    check_same(before, g, feeds_for(before))


def test_nothing_to_remove_reports_no_change():
    gb = GB()
    x = gb.input("x", (3,))
    g = gb.output(gb.op("Relu", [x]))
    ctx = apply(g, ["eliminate_dead_nodes"])
    assert not ctx.records[-1].changed and ops(g) == ["Relu"]
