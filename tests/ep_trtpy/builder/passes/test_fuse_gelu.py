"""fuse_gelu: erf and tanh GELU spellings -> Gelu."""

import math

import numpy as np
import pytest

from builder_testutil import GB, apply, check_same, feeds_for, ops


def _c(gb, v, name):
    return gb.const(np.float32(v), name)


def erf_gelu(gb, x, spelling):
    if spelling == "div":  # PyTorch: x * 0.5 * (1 + erf(x / sqrt(2)))
        e = gb.op("Erf", [gb.op("Div", [x, _c(gb, 1.4142135, "s2")])])
        p = gb.op("Add", [e, _c(gb, 1.0, "one")])
        return gb.op("Mul", [gb.op("Mul", [x, p]), _c(gb, 0.5, "half")])
    if spelling == "mul_half_first":  # (x * 0.5) * (1 + erf(x * 0.7071))
        h = gb.op("Mul", [x, _c(gb, 0.5, "half")])
        e = gb.op("Erf", [gb.op("Mul", [_c(gb, 0.70710678, "is2"), x])])
        p = gb.op("Add", [_c(gb, 1.0, "one"), e])
        return gb.op("Mul", [h, p])
    # 0.5 * (1 + erf) first, then x
    e = gb.op("Erf", [gb.op("Div", [x, _c(gb, math.sqrt(2), "s2")])])
    p = gb.op("Add", [e, _c(gb, 1.0, "one")])
    return gb.op("Mul", [x, gb.op("Mul", [p, _c(gb, 0.5, "half")])])


def tanh_gelu(gb, x, cube):
    x3 = gb.op("Pow", [x, _c(gb, 3.0, "three")]) if cube == "pow" else gb.op("Mul", [gb.op("Mul", [x, x]), x])
    inner = gb.op("Add", [x, gb.op("Mul", [x3, _c(gb, 0.044715, "k")])])
    t = gb.op("Tanh", [gb.op("Mul", [inner, _c(gb, math.sqrt(2 / math.pi), "c")])])
    p = gb.op("Add", [t, _c(gb, 1.0, "one")])
    return gb.op("Mul", [gb.op("Mul", [_c(gb, 0.5, "half"), x]), p])


@pytest.mark.parametrize("spelling", ["div", "mul_half_first", "half_of_p_first"])
def test_erf_spellings(spelling):
    gb = GB()
    x = gb.op("Add", [gb.input("a", (2, 16)), gb.input("b", (2, 16))])
    g = gb.output(erf_gelu(gb, x, spelling))
    before = g.copy()
    ctx = apply(g, ["fuse_gelu", "eliminate_dead_nodes"])
    assert ops(g) == ["Add", "Gelu"] and g.nodes[1].attrs["approximate"] == "none"
    assert g.nodes[1].inputs[0] is g.nodes[0].outputs[0]
    assert len(ctx.origin(g.nodes[1].name)) == 5
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cube", ["pow", "mul"])
def test_tanh_spellings(cube):
    gb = GB()
    x = gb.input("x", (3, 8))
    g = gb.output(tanh_gelu(gb, x, cube))
    before = g.copy()
    apply(g, ["fuse_gelu", "eliminate_dead_nodes"])
    assert ops(g) == ["Gelu"] and g.nodes[0].attrs["approximate"] == "tanh"
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-6)


def test_gelu_times_something_keeps_the_extra_mul():
    gb = GB()
    x = gb.input("x", (2, 8))
    w = gb.input("w", (2, 8))
    g = gb.output(gb.op("Mul", [erf_gelu(gb, x, "div"), w]))
    before = g.copy()
    apply(g, ["fuse_gelu", "eliminate_dead_nodes"])
    assert ops(g) == ["Gelu", "Mul"]
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-6)


def test_refuses_wrong_constant():
    gb = GB()
    x = gb.input("x", (2, 8))
    e = gb.op("Erf", [gb.op("Div", [x, _c(gb, 2.0, "two")])])
    p = gb.op("Add", [e, _c(gb, 1.0, "one")])
    g = gb.output(gb.op("Mul", [gb.op("Mul", [x, p]), _c(gb, 0.5, "half")]))
    ctx = apply(g, ["fuse_gelu"])
    assert "Gelu" not in ops(g)
    assert any("x/sqrt(2)" in r for r in ctx.refusals)


def test_refuses_intermediate_used_elsewhere():
    gb = GB()
    x = gb.input("x", (2, 8))
    e = gb.op("Erf", [gb.op("Div", [x, _c(gb, 1.4142135, "s2")])])
    p = gb.op("Add", [e, _c(gb, 1.0, "one")])
    xp = gb.op("Mul", [x, p])
    g = gb.output(gb.op("Mul", [xp, _c(gb, 0.5, "half")]), xp)
    ctx = apply(g, ["fuse_gelu"])
    assert "Gelu" not in ops(g)
    assert any("GELU pattern" in r for r in ctx.refusals)
