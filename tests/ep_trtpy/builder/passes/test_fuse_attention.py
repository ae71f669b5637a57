"""fuse_attention: the exporter spellings of scaled-dot-product attention become one ep_trtpy::Attention with the
same numbers (float32 tight, float16 within tolerance); look-alikes are refused with a sentence naming the value.
Whole models (our generated BERT, the HuggingFace exports) are in tests/ep_trtpy/builder/test_attention_models.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from builder_testutil import GB, apply, check_same, ctx_for, feeds_for, ops, run
from ep_trtpy.options import parse
from graph_partitioner.ir import FLOAT, INT64

B, S, HID, H = 2, 6, 16, 4
D = HID // H
TRUE_SCALE = 1 / math.sqrt(D)


def _proj(gb: GB, x, rng, name: str):  # noqa: ANN001, ANN202
    w = gb.const(rng.standard_normal((HID, HID)).astype(np.float32) * 0.5, f"W{name}")
    b = gb.const(rng.standard_normal(HID).astype(np.float32) * 0.1, f"b{name}")
    return gb.op("Add", [gb.op("MatMul", [x, w]), b])


def _split(gb: GB, t, perm, shape=(B, S, H, D)):  # noqa: ANN001, ANN202
    return gb.op("Transpose", [gb.op("Reshape", [t, gb.const(np.array(shape, np.int64), "shape")])], {"perm": perm})


def _scaled(gb: GB, t, factor: float, how: str):  # noqa: ANN001, ANN202
    if how == "div":
        return gb.op("Div", [t, gb.const(np.float32(1 / factor), "c")])
    return gb.op("Mul", [gb.const(np.float32(factor), "c"), t])


def _mask(gb: GB, kind: str):  # noqa: ANN202
    if kind == "none":
        return None
    am = gb.input("attention_mask", (B, S), INT64)
    u = gb.op("Unsqueeze", [gb.op("Unsqueeze", [am, gb.const(np.array([1], np.int64), "ax")]),
                            gb.const(np.array([2], np.int64), "ax")])
    if kind == "sub_mul":
        f = gb.op("Cast", [u], {"to": FLOAT})
        return gb.op("Mul", [gb.op("Sub", [gb.const(np.float32(1.0), "one"), f]),
                             gb.const(np.float32(-10000.0), "big")])
    cond = gb.op("Cast", [u], {"to": 9})
    return gb.op("Where", [cond, gb.const(np.float32(0.0), "zero"), gb.const(np.float32(-3.4028235e38), "min")])


def attention_graph(scale_on: str = "scores", scale_op: str = "div", k_form: str = "0231", mask: str = "sub_mul",
                    einsum: bool = False, nan_guard: bool = False, seed: int = 0) -> GB:
    """One BERT self-attention block in the chosen spelling; output [B, S, HID]."""
    rng = np.random.default_rng(seed)
    gb = GB()
    x = gb.input("x", (B, S, HID))
    q, k, v = (_proj(gb, x, rng, n) for n in "qkv")
    if scale_on == "q_proj":
        q = _scaled(gb, q, TRUE_SCALE, scale_op)
    qh = _split(gb, q, [0, 2, 1, 3])
    vh = _split(gb, v, [0, 2, 1, 3])
    if scale_on == "q":
        qh = _scaled(gb, qh, TRUE_SCALE, scale_op)
    if scale_on == "split":
        qh = _scaled(gb, qh, math.sqrt(TRUE_SCALE), scale_op)
    if einsum or k_form == "0132":
        kh = _split(gb, k, [0, 2, 1, 3])
        if scale_on == "k":
            kh = _scaled(gb, kh, TRUE_SCALE, scale_op)
        kt = kh if einsum else gb.op("Transpose", [kh], {"perm": [0, 1, 3, 2]})
    else:
        kt = _split(gb, k, [0, 2, 3, 1])
        if scale_on == "k":
            raise ValueError("scale on K before the transpose needs k_form='0132'")
    if scale_on in ("kt", "split") and not einsum:
        kt = _scaled(gb, kt, TRUE_SCALE if scale_on == "kt" else math.sqrt(TRUE_SCALE), scale_op)
    scores = gb.op("Einsum", [qh, kt], {"equation": "bhid,bhjd->bhij"}) if einsum else gb.op("MatMul", [qh, kt])
    if scale_on == "scores":
        scores = _scaled(gb, scores, TRUE_SCALE, scale_op)
    m = _mask(gb, mask)
    if m is not None:
        scores = gb.op("Add", [scores, m])
    p = gb.op("Softmax", [scores], {"axis": -1})
    if nan_guard:
        p = gb.op("Where", [gb.op("IsNaN", [p]), gb.const(np.float32(0), "zero"), p])
    o = gb.op("Einsum", [p, vh], {"equation": "bhij,bhjd->bhid"}) if einsum else gb.op("MatMul", [p, vh])
    o = gb.op("Reshape", [gb.op("Transpose", [o], {"perm": [0, 2, 1, 3]}),
                          gb.const(np.array([B, S, HID], np.int64), "merge")])
    gb.output(o)
    return gb


def feeds(graph, seed: int = 1) -> dict[str, np.ndarray]:  # noqa: ANN001
    out = feeds_for(graph, seed)  # x and any extra float inputs a test adds
    if any(v.name == "attention_mask" for v in graph.inputs):
        m = np.ones((B, S), np.int64)
        m[1, S - 2:] = 0
        out["attention_mask"] = m
    return out


def fused(gb: GB, passes=("fuse_attention",), ctx=None):  # noqa: ANN001, ANN202
    g = gb.g
    before = g.copy()
    apply(before, [])
    ctx = apply(g, ["rewrite_einsum", "eliminate_identities", *passes], ctx)
    return before, g, ctx


SPELLINGS = [
    dict(scale_on="scores", scale_op="div"),
    dict(scale_on="scores", scale_op="mul"),
    dict(scale_on="q", scale_op="mul"),
    dict(scale_on="q_proj", scale_op="div"),
    dict(scale_on="k", scale_op="div", k_form="0132"),
    dict(scale_on="kt", scale_op="mul"),
    dict(scale_on="split", scale_op="mul", nan_guard=True),
    dict(k_form="0132"),
    dict(mask="where"),
    dict(mask="none"),
    dict(mask="where", nan_guard=True),
    dict(einsum=True),
    dict(einsum=True, scale_on="k", mask="where"),
]


@pytest.mark.parametrize("spelling", SPELLINGS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_spelling_becomes_one_attention(spelling: dict) -> None:
    before, g, ctx = fused(attention_graph(**spelling))
    atts = [n for n in g.nodes if n.op_type == "Attention"]
    assert len(atts) == 1, (ops(g), ctx.refusals)
    att = atts[0]
    assert att.domain == "ep_trtpy" and att.attrs["num_heads"] == H and att.attrs["qkv_packed"] == 0
    assert abs(att.attrs["scale"] - TRUE_SCALE) < 1e-6
    assert "Softmax" not in ops(g) and "MatMul" in ops(g)  # the projections stay
    assert (att.input(3) is None) == (spelling.get("mask") == "none")
    assert all(att.input(i).shape == (B, S, HID) for i in range(3))
    assert len(ctx.origin(att.name)) >= 5
    check_same(before, g, feeds(before), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mask", ["sub_mul", "where"])
def test_float16_engine_numbers(mask: str) -> None:
    gb = attention_graph(mask=mask)
    before, g, ctx = fused(gb, ("fuse_attention", "canonicalize_pointwise", "reduce_precision"),
                           ctx_for(parse({"fp16_enable": "1"})))
    (att,) = [n for n in g.nodes if n.op_type == "Attention"]
    assert [v.dtype for v in att.inputs] == [10, 10, 10, 10] and att.outputs[0].dtype == 10
    f = feeds(before)
    want, got = run(before, f)[0], run(g, f)[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-2)


def test_constant_mask_clamps_to_the_float16_range_and_still_masks() -> None:
    gb = attention_graph(mask="none")
    g = gb.g
    (add_to,) = [n for n in g.nodes if n.op_type == "Softmax"]
    cmask = np.zeros((1, 1, S, S), np.float32)
    cmask[..., -1] = -3.4028235e38  # nobody attends to the last key
    s = add_to.input(0)
    node = g.add_node("Add", [s, g.add_value("cmask", const=cmask)], 1, before=add_to)
    g.set_input(add_to, 0, node.outputs[0])
    before, g, ctx = fused(gb, ("fuse_attention", "reduce_precision"), ctx_for(parse({"fp16_enable": "1"})))
    (att,) = [n for n in g.nodes if n.op_type == "Attention"]
    m = att.input(3)
    assert m.const is not None and m.const.dtype == np.float16 and m.const.min() == np.float16(-65504)
    f = feeds(before)
    np.testing.assert_allclose(run(g, f)[0], run(before, f)[0], rtol=2e-2, atol=2e-2)


def test_projection_used_elsewhere_keeps_its_nodes_and_numbers() -> None:
    gb = attention_graph()
    qh = [n for n in gb.g.nodes if n.op_type == "Transpose"][0].outputs[0]
    gb.g.outputs.append(qh)  # the split Q heads are also an output: they must still be computed
    before, g, ctx = fused(gb)
    assert ops(g).count("Attention") == 1 and "Transpose" in ops(g)
    check_same(before, g, feeds(before), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------- refusals --

def _refused(gb: GB, fragment: str, *names: str) -> None:
    before, g, ctx = fused(gb)
    assert "Attention" not in ops(g)
    hits = [r for r in ctx.refusals if fragment in r]
    assert hits, ctx.refusals
    assert all(f"'{n}'" in hits[0] for n in names), hits[0]
    check_same(before, g, feeds(before), rtol=1e-5, atol=1e-5)


def _node(gb: GB, op: str, k: int = 0):  # noqa: ANN202
    return [n for n in gb.g.nodes if n.op_type == op][k]


def test_refuses_softmax_over_another_axis() -> None:
    gb = attention_graph()
    sm = _node(gb, "Softmax")
    sm.attrs["axis"] = 2
    _refused(gb, "over axis 2, not over the keys", sm.name)


def test_refuses_a_multiplicative_mask() -> None:
    gb = attention_graph(mask="none")
    sm = _node(gb, "Softmax")
    keep = gb.input("keep", (B, 1, 1, S))
    mul = gb.g.add_node("Mul", [sm.input(0), keep], 1, before=sm)
    gb.g.set_input(sm, 0, mul.outputs[0])
    _refused(gb, "multiplicative mask", "keep")


def test_refuses_a_mask_that_widens_the_scores() -> None:
    gb = attention_graph(mask="none")
    sm = _node(gb, "Softmax")
    wide = gb.input("wide", (3, B, H, S, S))
    add = gb.g.add_node("Add", [sm.input(0), wide], 1, before=sm)
    gb.g.set_input(sm, 0, add.outputs[0])
    # (the rank-5 result no longer feeds the rank-4 P.V product: make V rank 5 as well)
    mm = [n for n in gb.g.nodes if n.op_type == "MatMul"][-1]
    vh = gb.g.add_node("Unsqueeze", [mm.input(1), gb.const(np.array([0], np.int64), "ax")], 1, before=mm)
    gb.g.set_input(mm, 1, vh.outputs[0])
    tr = _node(gb, "Transpose", 3)
    tr.attrs["perm"] = [0, 1, 3, 2, 4]
    rs = [n for n in gb.g.nodes if n.op_type == "Reshape"][-1]
    rs.inputs[1].const = np.array([3 * B, S, HID], np.int64)
    rs.inputs[1].shape = (3,)
    _refused(gb, "does not broadcast to the scores", "wide")


def test_refuses_heads_split_the_other_way() -> None:
    gb = attention_graph()
    first = _node(gb, "Reshape")  # Q's split: [B, S, D, H] then heads from the last axis
    first.inputs[1].const = np.array([B, S, D, H], np.int64)
    _node(gb, "Transpose").attrs["perm"] = [0, 3, 1, 2]
    q_heads = _node(gb, "Transpose").outputs[0].name
    _refused(gb, "not split from [B, S, H*D] projections by the expected Reshape", q_heads)


def test_refuses_probabilities_used_elsewhere() -> None:
    gb = attention_graph()
    p = _node(gb, "Softmax").outputs[0]
    gb.g.outputs.append(p)
    _refused(gb, "probabilities", p.name)


def test_refuses_scores_used_elsewhere() -> None:
    gb = attention_graph()
    s = _node(gb, "Div").outputs[0]
    gb.g.outputs.append(s)
    _refused(gb, "also used by a graph output", s.name)


def test_refuses_a_scale_after_the_mask() -> None:
    gb = attention_graph(scale_on="none")
    sm = _node(gb, "Softmax")
    mul = gb.g.add_node("Mul", [sm.input(0), gb.const(np.float32(TRUE_SCALE), "late")], 1, before=sm)
    gb.g.set_input(sm, 0, mul.outputs[0])
    _refused(gb, "after the mask", mul.name)


def test_refuses_scores_added_to_themselves() -> None:
    gb = attention_graph(mask="none")
    sm = _node(gb, "Softmax")
    s = sm.input(0)
    add = gb.g.add_node("Add", [s, s], 1, before=sm)
    gb.g.set_input(sm, 0, add.outputs[0])
    _refused(gb, "computed inside the attention", s.name)


def test_a_softmax_without_attention_around_it_is_left_alone_silently() -> None:
    gb = GB()
    x = gb.input("x", (B, HID))
    logits = gb.op("MatMul", [x, gb.const(np.ones((HID, 3), np.float32), "w")])
    gb.output(gb.op("Softmax", [logits], {"axis": -1}))
    _, g, ctx = fused(gb)
    assert ops(g) == ["MatMul", "Softmax"] and not ctx.refusals
