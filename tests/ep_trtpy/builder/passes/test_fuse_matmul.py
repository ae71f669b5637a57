"""fuse_matmul: MatMul/Gemm + bias + activation -> FusedMatMul."""

import numpy as np
import pytest

from builder_testutil import GB, apply, check_same, feeds_for, ops


def _w(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("act,expect", [("Relu", "Relu"), ("Gelu", "Gelu"), ("GeluTanh", "GeluTanh"), (None, "")])
def test_matmul_bias_activation(act, expect):
    gb = GB()
    x = gb.input("x", (2, 3, 8))
    y = gb.op("MatMul", [x, gb.const(_w((8, 5)), "w")])
    y = gb.op("Add", [gb.const(_w((5,), 1), "bias"), y])
    if act == "Relu":
        y = gb.op("Relu", [y])
    elif act:
        y = gb.op("Gelu", [y], {"approximate": "tanh" if act == "GeluTanh" else "none"})
    g = gb.output(y)
    before = g.copy()
    apply(g, ["fuse_matmul"])
    assert ops(g) == ["FusedMatMul"]
    n = g.nodes[0]
    assert n.attrs["activation"] == expect and len(n.inputs) == 3 and n.inputs[2].shape == (5,)
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("c_shape,absorbed", [((4,), True), ((1, 4), True), ((3, 4), False), (None, True)])
@pytest.mark.parametrize("trans", [(0, 0), (1, 1)])
def test_gemm(c_shape, absorbed, trans):
    gb = GB()
    ta, tb = trans
    a = gb.input("a", (6, 3) if ta else (3, 6))
    b = gb.const(_w((4, 6) if tb else (6, 4)), "b")
    ins = [a, b] + ([gb.const(_w(c_shape, 2), "c")] if c_shape else [])
    y = gb.op("Gemm", ins, {"alpha": 0.5, "beta": 2.0, "transA": ta, "transB": tb})
    g = gb.output(gb.op("Relu", [y]))
    before = g.copy()
    ctx = apply(g, ["fuse_matmul"])
    if absorbed:
        assert ops(g) == ["FusedMatMul"] and g.nodes[0].attrs["activation"] == "Relu"
    else:
        assert ops(g) == ["FusedMatMul", "Add", "Relu"]
        assert any("'c'" in r and "row vector" in r for r in ctx.refusals)
    n = g.nodes[0]
    assert (n.attrs["transA"], n.attrs["transB"], n.attrs["alpha"]) == (ta, tb, 0.5)
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


def test_gemm_runtime_c():
    gb = GB()
    a = gb.input("a", (3, 6))
    c = gb.input("c", (3, 4))
    g = gb.output(gb.op("Gemm", [a, gb.const(_w((6, 4)), "b"), c], {"beta": 3.0}))
    before = g.copy()
    apply(g, ["fuse_matmul"])
    assert ops(g) == ["Mul", "FusedMatMul", "Add"]
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sa,sb", [((8,), (2, 8, 5)), ((3, 8), (8,)), ((8,), (8,))])
def test_one_dimensional_operands(sa, sb):
    gb = GB()
    a, b = gb.input("a", sa), gb.input("b", sb)
    g = gb.output(gb.op("MatMul", [a, b]))
    before = g.copy()
    apply(g, ["fuse_matmul"])
    assert "MatMul" not in ops(g) and "FusedMatMul" in ops(g)
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


def test_refuses_non_row_bias():
    gb = GB()
    x = gb.input("x", (4, 8))
    y = gb.op("MatMul", [x, gb.const(_w((8, 5)), "w")])
    g = gb.output(gb.op("Add", [y, gb.const(_w((4, 1)), "colbias")]))
    before = g.copy()
    ctx = apply(g, ["fuse_matmul"])
    assert ops(g) == ["FusedMatMul", "Add"]
    assert any("'colbias'" in r for r in ctx.refusals)
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)
