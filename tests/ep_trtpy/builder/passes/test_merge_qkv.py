"""merge_qkv: the three projections of an Attention that read one input become one FusedMatMul on concatenated
weights and the Attention reads it packed; near misses are refused with the value named; numbers unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from builder_testutil import GB, apply, check_same, ops
from test_fuse_attention import B, HID, S, attention_graph, feeds

PASSES = ["rewrite_einsum", "eliminate_identities", "fuse_attention", "fuse_matmul", "merge_qkv"]


def _build(gb):  # noqa: ANN001, ANN202
    g = gb.g
    before = g.copy()
    apply(before, [])
    ctx = apply(g, PASSES)
    return before, g, ctx


@pytest.mark.parametrize("mask", ["sub_mul", "none"])
def test_three_projections_become_one(mask: str) -> None:
    before, g, ctx = _build(attention_graph(mask=mask))
    (att,) = [n for n in g.nodes if n.op_type == "Attention"]
    assert att.attrs["qkv_packed"] == 1 and att.input(1) is None and att.input(2) is None
    qkv = att.input(0)
    assert qkv.shape == (B, S, 3 * HID) and qkv.producer.op_type == "FusedMatMul"
    w, b = qkv.producer.input(1), qkv.producer.input(2)
    assert w.const.shape == (HID, 3 * HID) and b.const.shape == (3 * HID,)
    assert ops(g).count("FusedMatMul") == 1
    assert len(ctx.origin(qkv.producer.name)) >= 6  # three MatMuls and their bias Adds
    check_same(before, g, feeds(before), rtol=1e-5, atol=1e-5)


def test_transposed_weights_and_a_missing_bias() -> None:
    rng = np.random.default_rng(3)
    gb = GB()
    x = gb.input("x", (B, S, HID))
    projections = []
    for name in "qkv":
        ins = [x, gb.const(rng.standard_normal((HID, HID)).astype(np.float32), f"W{name}")]
        if name != "k":
            ins.append(gb.const(rng.standard_normal(HID).astype(np.float32), f"b{name}"))
        projections.append(gb.op("FusedMatMul", ins, {"transA": 0, "transB": 1, "alpha": 1.0, "activation": ""},
                                 domain="ep_trtpy"))
    gb.output(gb.op("Attention", projections, {"num_heads": 4, "scale": 0.5, "qkv_packed": 0}, domain="ep_trtpy"))
    g = gb.g
    before = g.copy()
    apply(before, [])
    apply(g, ["merge_qkv"])
    assert ops(g) == ["FusedMatMul", "Attention"]
    fused = g.nodes[0]
    assert fused.attrs["transB"] == 1 and fused.input(1).const.shape == (3 * HID, HID)
    assert np.all(fused.input(2).const[HID:2 * HID] == 0)  # K's absent bias
    check_same(before, g, feeds(before), rtol=1e-5, atol=1e-5)


def _refused(gb, edit, fragment: str) -> None:  # noqa: ANN001
    g = gb.g
    ctx = apply(g, PASSES[:-1])
    edit(g)
    from ep_trtpy.builder.pipeline import run_pass
    assert not run_pass("merge_qkv", g, ctx)
    (att,) = [n for n in g.nodes if n.op_type == "Attention"]
    assert att.attrs["qkv_packed"] == 0
    assert any(fragment in r for r in ctx.refusals), ctx.refusals


def _proj(g, k: int):  # noqa: ANN001, ANN202
    return [n for n in g.nodes if n.op_type == "FusedMatMul"][k]


def test_refuses_a_projection_with_another_reader() -> None:
    def edit(g):  # noqa: ANN001, ANN202
        g.outputs.append(_proj(g, 1).outputs[0])

    _refused(attention_graph(), edit, "is also read by a graph output")


def test_refuses_an_activation() -> None:
    def edit(g):  # noqa: ANN001, ANN202
        _proj(g, 2).attrs["activation"] = "Relu"

    _refused(attention_graph(), edit, "differ in activation")


def test_refuses_a_runtime_weight() -> None:
    def edit(g):  # noqa: ANN001, ANN202
        w = g.add_value("w_rt", 1, (HID, HID))
        g.inputs.append(w)
        g.set_input(_proj(g, 0), 1, w)

    _refused(attention_graph(), edit, "is not a constant matrix")


def test_projections_of_different_inputs_are_left_alone() -> None:
    def edit(g):  # noqa: ANN001, ANN202
        x2 = g.add_value("x2", 1, (B, S, HID))
        g.inputs.append(x2)
        g.set_input(_proj(g, 2), 0, x2)

    gb = attention_graph()
    g = gb.g
    ctx = apply(g, PASSES[:-1])
    edit(g)
    from ep_trtpy.builder.pipeline import run_pass
    assert not run_pass("merge_qkv", g, ctx) and not ctx.refusals
