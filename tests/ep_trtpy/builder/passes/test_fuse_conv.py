"""fuse_conv: Conv + bias + residual + Relu -> FusedConv; auto_pad resolved."""

import numpy as np
import pytest

from builder_testutil import GB, apply, check_same, feeds_for, ops, run


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


def _conv_graph(opset: int = 17):
    gb = GB(opset=opset)
    x = gb.input("x", (2, 3, 6, 6))
    y = gb.op("Conv", [x, gb.const(_w((4, 3, 3, 3)), "w"), gb.const(_w((4,), 1), "b")], {"pads": [1, 1, 1, 1]})
    return gb, y


def _silu(gb, y, swap=False):
    s = gb.op("Sigmoid", [y])
    return gb.op("Mul", [s, y] if swap else [y, s])


def _clip6(gb, y, **bounds):
    """Clip-6 (bounds as attributes), as an opset-10 model's importer marks it."""
    out = gb.op("Clip", [y], bounds)
    out.producer.since_version = 6
    return out


def _hard_swish_gate(gb, y, alpha=1 / 6):
    return gb.op("Mul", [y, gb.op("HardSigmoid", [y], {"alpha": alpha, "beta": 0.5})])


# name -> (opset, builder of the activation after the conv, activation, act_alpha, act_beta)
SPELLINGS = {
    "relu": (17, lambda gb, y: gb.op("Relu", [y]), "Relu", None, None),
    "relu6-inputs": (17, lambda gb, y: gb.op("Clip", [y, gb.const(np.float32(0), "lo"),
                                                      gb.const(np.float32(6), "hi")]), "Clip", 0.0, 6.0),
    "relu6-attributes-opset10": (10, lambda gb, y: _clip6(gb, y, min=0.0, max=6.0), "Clip", 0.0, 6.0),
    "clip-max-only": (17, lambda gb, y: gb.op("Clip", [y, None, gb.const(np.float32(0.5), "hi")]), "Clip",
                      -float(np.finfo(np.float32).max), 0.5),
    "clip-min-only-attribute": (6, lambda gb, y: _clip6(gb, y, min=-0.25), "Clip", -0.25,
                                float(np.finfo(np.float32).max)),
    "leaky": (17, lambda gb, y: gb.op("LeakyRelu", [y], {"alpha": 0.2}), "LeakyRelu", 0.2, None),
    "leaky-default": (17, lambda gb, y: gb.op("LeakyRelu", [y]), "LeakyRelu", 0.01, None),
    "sigmoid": (17, lambda gb, y: gb.op("Sigmoid", [y]), "Sigmoid", None, None),
    "silu": (17, _silu, "Silu", None, None),
    "silu-swapped": (17, lambda gb, y: _silu(gb, y, swap=True), "Silu", None, None),
    "hardswish-op": (17, lambda gb, y: gb.op("HardSwish", [y]), "HardSwish", None, None),
    "hardswish-gate": (17, _hard_swish_gate, "HardSwish", None, None),
    "tanh": (17, lambda gb, y: gb.op("Tanh", [y]), "Tanh", None, None),
}


@pytest.mark.parametrize("name", sorted(SPELLINGS))
def test_activation_spellings_fuse(name):
    opset, make, act, alpha, beta = SPELLINGS[name]
    gb, y = _conv_graph(opset)
    g = gb.output(make(gb, y))
    before = g.copy()
    ctx = apply(g, ["fuse_conv"])
    assert ops(g) == ["FusedConv"], ctx.refusals
    n = g.nodes[0]
    assert n.attrs["activation"] == act
    assert n.attrs.get("act_alpha") == (None if alpha is None else pytest.approx(alpha))
    assert n.attrs.get("act_beta") == (None if beta is None else pytest.approx(beta))
    assert len(ctx.origin(n.name)) == len(before.nodes)
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


def test_residual_then_silu_fuses_both():
    gb, y = _conv_graph()
    r = gb.input("r", (2, 4, 6, 6))
    g = gb.output(_silu(gb, gb.op("Add", [y, r])))
    before = g.copy()
    apply(g, ["fuse_conv"])
    assert ops(g) == ["FusedConv"] and g.nodes[0].attrs["activation"] == "Silu"
    assert g.nodes[0].inputs[3] is g.inputs[1]
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


def test_clip_with_runtime_bound_is_refused():
    gb, y = _conv_graph()
    hi = gb.input("hi", ())
    g = gb.output(gb.op("Clip", [y, gb.const(np.float32(0), "lo"), hi]))
    before = g.copy()
    ctx = apply(g, ["fuse_conv"])
    assert ops(g) == ["FusedConv", "Clip"] and g.nodes[0].attrs["activation"] == ""
    assert any("max 'hi' is not a constant" in r for r in ctx.refusals), ctx.refusals
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


def test_clip_with_nan_bound_is_refused_and_infinite_bound_is_finite():
    gb, y = _conv_graph()
    g = gb.output(gb.op("Clip", [y, gb.const(np.float32(np.nan), "lo")]))
    ctx = apply(g, ["fuse_conv"])
    assert ops(g) == ["FusedConv", "Clip"] and any("a bound is NaN" in r for r in ctx.refusals)
    gb, y = _conv_graph()
    g = gb.output(gb.op("Clip", [y, gb.const(np.float32(0), "lo"), gb.const(np.float32(np.inf), "hi")]))
    apply(g, ["fuse_conv"])
    assert ops(g) == ["FusedConv"] and g.nodes[0].attrs["act_beta"] == float(np.finfo(np.float32).max)


def test_hard_sigmoid_gate_with_other_slope_is_refused():
    gb, y = _conv_graph()
    g = gb.output(_hard_swish_gate(gb, y, alpha=0.2))
    before = g.copy()
    ctx = apply(g, ["fuse_conv"])
    assert ops(g) == ["FusedConv", "HardSigmoid", "Mul"]
    assert any("is not HardSwish" in r and "alpha 0.2" in r for r in ctx.refusals), ctx.refusals
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


def test_sigmoid_gate_read_elsewhere_is_not_silu():
    gb, y = _conv_graph()
    s = gb.op("Sigmoid", [y])
    g = gb.output(gb.op("Mul", [y, s]), s)  # the gate is also an output: fusing would lose it
    before = g.copy()
    apply(g, ["fuse_conv"])
    assert ops(g) == ["FusedConv", "Sigmoid", "Mul"] and g.nodes[0].attrs["activation"] == ""
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


def test_mul_by_another_sigmoid_is_not_silu():
    gb, y = _conv_graph()
    other = gb.op("Sigmoid", [gb.input("u", (2, 4, 6, 6))])
    g = gb.output(gb.op("Mul", [y, other]))
    apply(g, ["fuse_conv"])
    assert ops(g) == ["Sigmoid", "FusedConv", "Mul"] or ops(g) == ["FusedConv", "Sigmoid", "Mul"]
    assert next(n for n in g.nodes if n.op_type == "FusedConv").attrs["activation"] == ""


# ------------------------------------------------------------------------------- residual after the activation --
def _shortcut(gb, act, r, swap=False):
    """Add(act, r), or Add(r, act) when swapped: the CSP bottleneck's x + SiLU(conv(...))."""
    return gb.op("Add", [r, act] if swap else [act, r])


@pytest.mark.parametrize("swap", [False, True], ids=["act-first", "residual-first"])
@pytest.mark.parametrize("spelling", ["silu", "relu", "clip-max-only"])
def test_residual_after_activation_fuses_post_act(spelling, swap):
    opset, make, act, _, _ = SPELLINGS[spelling]
    gb, y = _conv_graph(opset)
    r = gb.input("r", (2, 4, 6, 6))
    g = gb.output(_shortcut(gb, make(gb, y), r, swap))
    before = g.copy()
    ctx = apply(g, ["fuse_conv"])
    assert ops(g) == ["FusedConv"], ctx.refusals
    n = g.nodes[0]
    assert n.attrs["activation"] == act and n.attrs["residual_position"] == "post_act"
    assert n.inputs[3] is g.inputs[1] and n.outputs[0] is g.outputs[0]
    assert len(ctx.origin(n.name)) == len(before.nodes) and ctx.origin(n.name)[-1].startswith("Add")
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


def test_residual_before_activation_keeps_the_default_position():
    gb, y = _conv_graph()
    g = gb.output(gb.op("Relu", [gb.op("Add", [y, gb.input("r", (2, 4, 6, 6))])]))
    apply(g, ["fuse_conv"])
    assert ops(g) == ["FusedConv"] and "residual_position" not in g.nodes[0].attrs


@pytest.mark.parametrize("r_shape", [(1, 4, 6, 6), (4, 1, 1), (2, 4, 6, 1)])
def test_broadcasting_add_after_activation_is_refused(r_shape):
    gb, y = _conv_graph()
    g = gb.output(_shortcut(gb, _silu(gb, y), gb.input("r", r_shape)))
    before = g.copy()
    ctx = apply(g, ["fuse_conv"])
    assert ops(g) == ["FusedConv", "Add"] and "residual_position" not in g.nodes[0].attrs
    assert g.nodes[0].attrs["activation"] == "Silu" and len(g.nodes[0].inputs) == 3
    assert any("after the activation" in r and "'r'" in r and str(list(r_shape)) in r for r in ctx.refusals), \
        ctx.refusals
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("where", ["consumer", "graph-output"])
def test_activation_read_elsewhere_keeps_the_add(where):
    gb, y = _conv_graph()
    a = _silu(gb, y)
    s = _shortcut(gb, a, gb.input("r", (2, 4, 6, 6)))
    g = gb.output(s, gb.op("Neg", [a])) if where == "consumer" else gb.output(s, a)
    before = g.copy()
    apply(g, ["fuse_conv"])
    fused = next(n for n in g.nodes if n.op_type == "FusedConv")
    assert "Add" in ops(g) and fused.attrs["activation"] == "Silu" and "residual_position" not in fused.attrs
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


def test_second_residual_after_activation_is_refused():
    gb, y = _conv_graph()
    pre = gb.op("Add", [y, gb.input("r1", (2, 4, 6, 6))])
    g = gb.output(_shortcut(gb, gb.op("Relu", [pre]), gb.input("r2", (2, 4, 6, 6))))
    before = g.copy()
    ctx = apply(g, ["fuse_conv"])
    assert ops(g) == ["FusedConv", "Add"] and g.nodes[0].inputs[3] is g.inputs[1]
    assert any("'r1' before the activation already takes" in r for r in ctx.refusals), ctx.refusals
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


def test_yolo_bottleneck_shortcuts_fuse_and_the_numbers_agree():
    from ep_trtpy import models
    from graph_partitioner.onnx_io import graph_from_onnx

    g = graph_from_onnx(models.build("yolo", ci=True))
    feeds = models.make_feeds("yolo", batch=2, seed=5, ci=True)
    shapes = {k: v.shape for k, v in feeds.items()}
    before = g.copy()
    apply(before, [], shapes=shapes)
    adds = sum(1 for n in before.nodes if n.op_type == "Add")
    apply(g, ["fuse_conv"], shapes=shapes)
    post = [n for n in g.nodes if n.op_type == "FusedConv" and n.attrs.get("residual_position") == "post_act"]
    assert len(post) == 6 and all(n.attrs["activation"] == "Silu" for n in post)  # 1 + 2 + 2 + 1 bottlenecks
    assert sum(1 for n in g.nodes if n.op_type == "Add") == adds - 6
    # float32 throughout; the box decoding scales rounding differences up to the output's magnitude (boxes in
    # pixels): measured 6e-6 of max |y| with every conv fused before the activation only, 8e-6 with the shortcuts
    (want,), (got,) = run(before, feeds), run(g, feeds)
    scale = float(np.abs(want).max())
    assert got.shape == want.shape and float(np.abs(got.astype(np.float64) - want).max()) <= 3e-5 * scale
