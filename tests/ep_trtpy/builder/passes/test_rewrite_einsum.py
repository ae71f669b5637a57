"""rewrite_einsum: Einsum -> Transpose/Reshape/MatMul/ReduceSum."""

import pytest

from builder_testutil import GB, apply, check_same, feeds_for, ops
from ep_trtpy.builder.passes.infer_shapes import ShapeError


@pytest.mark.parametrize("eq,sa,sb", [
    ("bhqd,bhkd->bhqk", (2, 3, 4, 5), (2, 3, 6, 5)),
    ("bhqk,bhkd->bhqd", (2, 3, 4, 6), (2, 3, 6, 5)),
    ("ij,jk", (3, 4), (4, 5)),
    ("bij,jk->bik", (2, 3, 4), (4, 5)),
    ("abc,cd->dba", (2, 3, 4), (4, 5)),
    ("ij,kj->ik", (3, 4), (5, 4)),
    ("ijx,kj->ik", (3, 4, 2), (5, 4)),  # x summed on one operand only
    ("i,j->ij", (3,), (4,)),
])
def test_two_operand_equations(eq, sa, sb):
    gb = GB(opset=13)
    a, b = gb.input("a", sa), gb.input("b", sb)
    g = gb.output(gb.op("Einsum", [a, b], {"equation": eq}))
    before = g.copy()
    apply(g, ["rewrite_einsum", "eliminate_identities", "eliminate_dead_nodes"])
    assert "Einsum" not in ops(g) and "MatMul" in ops(g)
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("opset", [12, 13])
def test_one_operand(opset):
    gb = GB(opset=opset)
    a = gb.input("a", (2, 3, 4))
    g = gb.output(gb.op("Einsum", [a], {"equation": "abc->ca"}))
    before = g.copy()
    apply(g, ["rewrite_einsum", "eliminate_identities", "eliminate_dead_nodes"])
    assert ops(g) == ["ReduceSum", "Transpose"]
    assert ("axes" in g.nodes[0].attrs) == (opset < 13)
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("eq,why", [("ii->i", "repeats a letter"), ("...ij,jk->...ik", "ellipsis")])
def test_refusals(eq, why):
    gb = GB()
    a = gb.input("a", (3, 3))
    ins = [a] if eq.count(",") == 0 else [a, gb.input("b", (3, 3))]
    g = gb.output(gb.op("Einsum", ins, {"equation": eq}))
    try:
        ctx = apply(g, ["rewrite_einsum"])
    except ShapeError:  # an op inference may refuse an ellipsis itself; the pass is what this test is about
        pytest.skip("the Einsum inference refuses this equation")
    assert ops(g) == ["Einsum"]
    assert any(why in r for r in ctx.refusals)
