"""fold_transposes: Transposes that only feed a FusedMatMul become its transA / transB."""

import numpy as np
import pytest

from builder_testutil import GB, apply, check_same, feeds_for, ops


def _matmul(gb: GB, a, b, **attrs):  # noqa: ANN001, ANN202
    attrs = {"transA": 0, "transB": 0, "alpha": 1.0, "activation": "", **attrs}
    return gb.op("FusedMatMul", [a, b], attrs, domain="ep_trtpy")


@pytest.mark.parametrize("operand", [0, 1])
@pytest.mark.parametrize("already", [0, 1])
def test_swap_of_the_last_two_axes_becomes_the_trans_flag(operand: int, already: int) -> None:
    gb = GB()
    a = gb.input("a", (2, 3, 6, 4) if operand == 0 and not already else (2, 3, 4, 6))
    b = gb.input("b", (2, 3, 5, 6) if operand == 1 and not already else (2, 3, 6, 5))
    flag = ("transA", "transB")[operand]
    ins = [a, b]
    ins[operand] = gb.op("Transpose", [ins[operand]], {"perm": [0, 1, 3, 2]})
    g = gb.output(_matmul(gb, *ins, **{flag: already}))
    before = g.copy()
    ctx = apply(g, ["fold_transposes"])
    assert ops(g) == ["FusedMatMul"]
    mm = g.nodes[0]
    assert mm.attrs[flag] == 1 - already and mm.inputs[operand].name == ("a", "b")[operand]
    assert len(ctx.origin(mm.name)) == 2
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


def test_rank2_transpose_without_perm_is_folded() -> None:
    gb = GB()
    w = gb.input("w", (5, 8))
    g = gb.output(_matmul(gb, gb.input("x", (3, 8)), gb.op("Transpose", [w])))
    before = g.copy()
    apply(g, ["fold_transposes"])
    assert ops(g) == ["FusedMatMul"] and g.nodes[0].attrs["transB"] == 1
    apply(before, [])
    check_same(before, g, feeds_for(before))


def test_attention_key_transpose_keeps_the_row_moving_part() -> None:
    """K [B, S, H, D] -> K^T [B, H, D, S] (perm [0, 2, 3, 1]): the Transpose keeps [0, 2, 1, 3] (whole rows of D
    move) and the GEMM reads the last swap as transB."""
    gb = GB()
    q = gb.input("q", (2, 4, 7, 8))
    k = gb.input("k", (2, 7, 4, 8))
    kt = gb.op("Transpose", [k], {"perm": [0, 2, 3, 1]})
    g = gb.output(_matmul(gb, q, kt))
    before = g.copy()
    apply(g, ["fold_transposes"])
    assert ops(g) == ["Transpose", "FusedMatMul"]
    t, mm = g.nodes
    assert t.attrs["perm"] == [0, 2, 1, 3] and t.outputs[0].shape == (2, 4, 7, 8) and mm.attrs["transB"] == 1
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


def test_transpose_read_elsewhere_is_refused() -> None:
    gb = GB()
    at = gb.op("Transpose", [gb.input("a", (6, 4))], {"perm": [1, 0]})
    g = gb.output(_matmul(gb, at, gb.input("b", (6, 5))), gb.op("Relu", [at]))
    ctx = apply(g, ["fold_transposes"])
    assert ops(g) == ["Transpose", "FusedMatMul", "Relu"] and g.nodes[1].attrs["transA"] == 0
    assert any("also read elsewhere" in r and f"'{g.nodes[0].name}'" in r for r in ctx.refusals)


def test_transpose_that_keeps_the_last_axis_is_refused() -> None:
    """perm [0, 2, 1, 3] (heads split) is not a matrix transpose: the GEMM cannot absorb it."""
    gb = GB()
    v = gb.op("Transpose", [gb.input("v", (2, 7, 4, 8))], {"perm": [0, 2, 1, 3]})
    g = gb.output(_matmul(gb, gb.input("p", (2, 4, 7, 7)), v))
    ctx = apply(g, ["fold_transposes"])
    assert ops(g) == ["Transpose", "FusedMatMul"] and g.nodes[1].attrs["transB"] == 0
    assert any("perm [0, 2, 1, 3]" in r and "cannot read it as a transposed matrix" in r for r in ctx.refusals)


def test_same_transposed_value_on_both_operands_is_refused() -> None:
    gb = GB()
    xt = gb.op("Transpose", [gb.input("x", (4, 4))], {"perm": [1, 0]})
    g = gb.output(_matmul(gb, xt, xt))
    ctx = apply(g, ["fold_transposes"])
    assert ops(g) == ["Transpose", "FusedMatMul"]
    assert len(ctx.refusals) == 2
