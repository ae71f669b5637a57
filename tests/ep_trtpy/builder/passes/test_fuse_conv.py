"""fuse_conv: Conv + bias + residual + Relu -> FusedConv; auto_pad resolved."""

import numpy as np
import pytest

from builder_testutil import GB, apply, check_same, feeds_for, ops


def _w(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_full_chain_fuses():
    gb = GB()
    x = gb.input("x", (1, 4, 5, 5))
    r = gb.input("r", (1, 6, 5, 5))
    y = gb.op("Conv", [x, gb.const(_w((6, 4, 3, 3)), "w"), gb.const(_w((6,), 1), "b")], {"pads": [1, 1, 1, 1]})
    y = gb.op("Add", [y, gb.const(_w((6, 1, 1), 2), "bias2")])
    y = gb.op("Add", [r, y])
    y = gb.op("Relu", [y])
    g = gb.output(y)
    before = g.copy()
    ctx = apply(g, ["fuse_conv"])
    assert ops(g) == ["FusedConv"]
    n = g.nodes[0]
    assert n.domain == "ep_trtpy" and n.attrs["activation"] == "Relu" and n.attrs["pads"] == [1, 1, 1, 1]
    assert n.inputs[3] is g.inputs[1] and n.inputs[2].shape == (6,)
    assert len(ctx.origin(n.name)) == 4
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("auto_pad,stride", [("SAME_UPPER", 2), ("SAME_LOWER", 2), ("VALID", 1), ("SAME_UPPER", 1)])
def test_auto_pad_resolved(auto_pad, stride):
    gb = GB()
    x = gb.input("x", (1, 2, 6, 7))
    y = gb.op("Conv", [x, gb.const(_w((3, 2, 4, 3)), "w")], {"auto_pad": auto_pad, "strides": [stride, stride]})
    g = gb.output(y)
    before = g.copy()
    apply(g, ["fuse_conv"])
    n = g.nodes[0]
    assert n.op_type == "FusedConv" and "auto_pad" not in n.attrs and n.attrs["activation"] == ""
    if auto_pad == "SAME_UPPER" and stride == 1:
        assert n.attrs["pads"] == [1, 1, 2, 1]  # kernel 4: 3 extra rows, the odd one at the end
    if auto_pad == "SAME_LOWER":
        assert sum(n.attrs["pads"]) > 0
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


def test_refuses_broadcasting_add_and_keeps_it():
    gb = GB()
    x = gb.input("x", (1, 2, 4, 4))
    y = gb.op("Conv", [x, gb.const(_w((3, 2, 1, 1)), "w")])
    z = gb.op("Add", [y, gb.const(_w((1, 3, 4, 1)), "odd")])  # not per channel, not the output's shape
    g = gb.output(gb.op("Relu", [z]))
    before = g.copy()
    ctx = apply(g, ["fuse_conv"])
    assert ops(g) == ["FusedConv", "Add", "Relu"]
    assert any("'odd'" in r and "per-channel" in r for r in ctx.refusals)
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


def test_conv_output_used_twice_is_not_extended():
    gb = GB()
    x = gb.input("x", (1, 2, 4, 4))
    y = gb.op("Conv", [x, gb.const(_w((3, 2, 1, 1)), "w")])
    g = gb.output(gb.op("Relu", [y]), y)
    before = g.copy()
    apply(g, ["fuse_conv"])
    assert ops(g) == ["FusedConv", "Relu"]
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)
