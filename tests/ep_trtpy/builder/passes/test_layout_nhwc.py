"""layout_nhwc: 2-D convolutions channels-last, Transposes only where a region meets the rest of the graph."""

import numpy as np
import pytest

import graph_runner
from builder_testutil import GB, apply, check_same, feeds_for, ops
from ep_trtpy import models
from ep_trtpy.builder.build import optimize_with_context
from ep_trtpy.builder.passes import layout_nhwc
from ep_trtpy.builder.passes.layout_nhwc import moves_bytes
from ep_trtpy.builder.pipeline import PassContext
from ep_trtpy.options import Options, parse
from graph_partitioner.ir import FLOAT, FLOAT16, Graph
from graph_partitioner.onnx_io import graph_from_onnx

F16 = np.float16
STRICT = Options(tf32_enable=False)
PASSES = ["fuse_conv", "canonicalize_pointwise", "layout_nhwc"]


def _w(shape, seed=0, dtype=F16):
    return (np.random.default_rng(seed).standard_normal(shape) * 0.3).astype(dtype)


def _c(gb, arr, name):
    return gb.const(arr, name, dtype=arr.dtype)


def _conv(gb, x, c_in, c_out, seed, k=3, act="Relu", dtype=F16, **attrs):
    attrs.setdefault("pads", [k // 2] * 4)
    y = gb.op("Conv", [x, _c(gb, _w((c_out, c_in, k, k), seed, dtype), f"w{seed}"),
                       _c(gb, _w((c_out,), seed + 100, dtype), f"b{seed}")], attrs)
    return gb.op(act, [y]) if act else y


def _chain(dtype_elem=FLOAT16, dtype=F16, n=3, shape=(2, 4, 8, 8)):
    gb = GB()
    x = gb.input("x", shape, dtype_elem)
    y = x
    for i in range(n):
        y = _conv(gb, y, shape[1] if i == 0 else 6, 6, i, dtype=dtype)
    return gb, y


def _transposes(g: Graph) -> list:
    """Transposes, and those that fuse_cast_transpose merged with an edge's float cast."""
    return [n for n in g.nodes if n.op_type in ("Transpose", "CastTranspose")]


def _run(g, ctx=None):
    before = g.copy()
    ctx = apply(g, PASSES, ctx)
    apply(before, [])
    return before, ctx


def test_conv_chain_in_float16_runs_channels_last_with_two_conversions():
    gb, y = _chain()
    g = gb.output(y)
    out_name = y.name
    before, ctx = _run(g)
    convs = [n for n in g.nodes if n.op_type == "FusedConv"]
    assert len(convs) == 3 and all(n.attrs["channels_last"] == 1 for n in convs)
    assert convs[0].inputs[1].shape == (6, 3, 3, 4)  # KRSC
    assert [t.attrs["perm"] for t in _transposes(g)] == [[0, 2, 3, 1], [0, 3, 1, 2]]
    assert _transposes(g)[0].inputs[0] is g.inputs[0] and g.outputs[0].producer is _transposes(g)[1]
    assert g.outputs[0].name == out_name and g.outputs[0].shape == (2, 6, 8, 8)
    assert convs[1].outputs[0].shape == (2, 8, 8, 6)
    check_same(before, g, feeds_for(before), rtol=2e-3, atol=2e-3)


def test_float32_follows_tf32_enable():
    gb, y = _chain(FLOAT, np.float32)
    g = gb.output(y)
    strict = g.copy()
    before, ctx = _run(strict, PassContext(options=STRICT))
    assert all(n.attrs.get("channels_last", 0) == 0 for n in strict.nodes) and not _transposes(strict)
    assert any("float32 without tf32_enable" in r for r in ctx.refusals), ctx.refusals
    check_same(before, strict, feeds_for(before))
    _run(g, PassContext(options=Options(tf32_enable=True)))
    assert [n.attrs.get("channels_last") for n in g.nodes if n.op_type == "FusedConv"] == [1, 1, 1]
    check_same(before, g, feeds_for(before))


def test_a_region_needing_as_many_conversions_as_convolutions_stays_nchw():
    gb, y = _chain(n=2)
    g = gb.output(y)
    before, ctx = _run(g)
    assert not _transposes(g) and all(n.attrs.get("channels_last", 0) == 0 for n in g.nodes)
    assert any("would need 2 layout conversions for 2 convolutions" in r for r in ctx.refusals), ctx.refusals
    check_same(before, g, feeds_for(before), rtol=2e-3, atol=2e-3)


def test_layout_agnostic_ops_stay_inside_the_region():
    gb = GB()
    x = gb.input("x", (2, 3, 12, 12), FLOAT16)
    a = _conv(gb, x, 3, 8, 1, act="", strides=[2, 2])                               # [2, 8, 6, 6]
    a = gb.op("Mul", [a, gb.op("Sigmoid", [a])])                                      # SiLU, fused
    s = gb.op("Mul", [a, _c(gb, _w((8, 1, 1), 2), "scale")])                       # per-channel constant
    s = gb.op("Add", [s, _c(gb, _w((6,), 3), "along_w")])                          # a constant along W
    p = gb.op("MaxPool", [s], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]})
    q = gb.op("AveragePool", [s], {"kernel_shape": [2, 2], "auto_pad": "SAME_UPPER"})
    c = gb.op("Concat", [p, q, _conv(gb, s, 8, 4, 4)], {"axis": 1})                 # [2, 20, 6, 6]
    u, v = gb.op("Split", [c, gb.const(np.array([12, 8], np.int64), "sizes")], {"axis": -3}, n_out=2)
    u = gb.op("Slice", [u, gb.const(np.array([1, 2], np.int64), "st"), gb.const(np.array([5, 99], np.int64), "en"),
                        gb.const(np.array([2, 3], np.int64), "ax")])                   # [2, 12, 4, 4]
    u = gb.op("Pad", [u, gb.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")])  # [2, 12, 6, 6]
    u = gb.op("Resize", [u, None, gb.const(np.array([1, 1, 2, 2], np.float32), "scales")], {"mode": "nearest"})
    v = gb.op("Resize", [v, None, gb.const(np.array([1, 1, 2, 2], np.float32), "scales2")], {"mode": "linear"})
    w = _conv(gb, gb.op("Concat", [u, v], {"axis": 1}), 20, 8, 5, act="LeakyRelu")  # [2, 8, 12, 12]
    mx = gb.op("GlobalMaxPool", [w])
    g = gb.output(gb.op("Flatten", [gb.op("GlobalAveragePool", [w])]), gb.op("Flatten", [mx]))
    before, ctx = _run(g)
    kinds = ops(g)
    assert kinds.count("Transpose") == 1 and _transposes(g)[0].inputs[0] is g.inputs[0]
    assert kinds.count("Pool") == 2 and "MaxPool" not in kinds and "AveragePool" not in kinds
    assert "ReduceMean" in kinds and "ReduceMax" in kinds and kinds.count("Reshape") == 2  # [N,1,1,C] -> [N,C,1,1]
    assert all(n.attrs["channels_last"] == 1 for n in g.nodes if n.op_type == "FusedConv")
    by_type = {n.op_type: n for n in g.nodes}
    assert by_type["Split"].attrs["axis"] == 3
    assert by_type["Slice"].inputs[3].const.tolist() == [1, 2]
    assert by_type["Pad"].inputs[1].const.tolist() == [0, 1, 1, 0, 0, 1, 1, 0]
    check_same(before, g, feeds_for(before), rtol=2e-3, atol=2e-3)


def test_reshape_of_a_spatial_map_is_a_boundary():
    gb, y = _chain()
    flat = gb.op("Reshape", [y, gb.const(np.array([0, 6, -1], np.int64), "shape")])
    g = gb.output(gb.op("Softmax", [flat], {"axis": -1}), y)
    before, _ = _run(g)
    t = _transposes(g)
    assert len(t) == 2 and t[1].attrs["perm"] == [0, 3, 1, 2]
    reshape = next(n for n in g.nodes if n.op_type == "Reshape")
    assert reshape.inputs[0] is t[1].outputs[0] and g.outputs[1] is t[1].outputs[0]  # one conversion, shared
    check_same(before, g, feeds_for(before), rtol=2e-3, atol=2e-3)


def test_channels_last_model_edges_cancel():
    gb = GB()
    x = gb.input("x", (2, 8, 8, 4), FLOAT16)  # an NHWC model: Transpose in, Transpose out
    y = gb.op("Transpose", [x], {"perm": [0, 3, 1, 2]})
    for i in range(3):
        y = _conv(gb, y, 4 if i == 0 else 6, 6, i)
    g = gb.output(gb.op("Transpose", [y], {"perm": [0, 2, 3, 1]}))
    before, _ = _run(g)
    assert ops(g) == ["FusedConv"] * 3
    assert g.nodes[0].inputs[0] is g.inputs[0] and g.outputs[0] is g.nodes[-1].outputs[0]
    check_same(before, g, feeds_for(before), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("shape, kernel", [((2, 4, 9), (3,)), ((1, 4, 5, 5, 5), (3, 3, 3))])
def test_1d_and_3d_convolutions_stay_nchw(shape, kernel):
    gb = GB()
    y = gb.input("x", shape, FLOAT16)
    for i in range(3):
        w = _w((4, 4) + kernel, i)
        y = gb.op("Relu", [gb.op("Conv", [y, _c(gb, w, f"w{i}")], {"pads": [1] * 2 * len(kernel)})])
    g = gb.output(y)
    before, ctx = _run(g)
    assert not _transposes(g) and all(n.attrs.get("channels_last", 0) == 0 for n in g.nodes)
    assert sum("is not a 2-D convolution" in r for r in ctx.refusals) == 3
    check_same(before, g, feeds_for(before), rtol=2e-3, atol=2e-3)


def test_runtime_weight_stays_nchw_and_is_named():
    gb, y = _chain()
    wv = gb.input("w_rt", (6, 6, 1, 1), FLOAT16)
    g = gb.output(gb.op("Conv", [y, wv]))
    before, ctx = _run(g)
    last = g.nodes[-1]
    assert last.op_type == "FusedConv" and last.attrs.get("channels_last", 0) == 0
    assert any("weight 'w_rt' is not a constant" in r for r in ctx.refusals), ctx.refusals
    assert last.inputs[0].producer.op_type == "Transpose"  # the region's edge
    check_same(before, g, feeds_for(before), rtol=2e-3, atol=2e-3)


def test_moves_bytes():
    assert moves_bytes((2, 3, 4, 5), (0, 2, 3, 1))
    assert not moves_bytes((2, 1, 1, 7), (0, 3, 1, 2))  # N x 1 x 1 x C
    assert not moves_bytes((2, 5, 6, 1), (0, 3, 1, 2))  # one channel
    assert moves_bytes((1, 5, 6, 2), (0, 3, 1, 2))


# ---------------------------------------------------------------------------------------------- models --
def _model(name):
    model = models.build(name, ci=True)
    feeds = models.make_feeds(name, batch=2, seed=3, ci=True)
    return graph_from_onnx(model), feeds


def _max_rel(a, e):
    e = e.astype(np.float64)
    return float(np.abs(a.astype(np.float64) - e).max() / max(np.abs(e).max(), 1e-30))


# conversions that move bytes: the input, and for YOLO the three head levels before their Reshape; YOLO's own
# DFL Transpose stays, and its 1-channel DFL convolution stays NCHW (its input would need a conversion)
EXPECTED = {"resnet50": (1, 0), "mobilenetv2": (1, 0), "yolo": (5, 1)}


# float16 against the float32 model, max |a - e| / max |e|: the reduced random YOLO's box decoding amplifies
# float16 rounding (measured 0.12 with and without this pass, the same bytes); the classifiers stay below 1e-3
FP16_TOLERANCE = {"resnet50": 5e-3, "mobilenetv2": 5e-3, "yolo": 0.2}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_architectures_in_float16_convert_layouts_only_at_their_edges(name, monkeypatch):
    g, feeds = _model(name)
    shapes = {k: v.shape for k, v in feeds.items()}
    opt, ctx = optimize_with_context(g, shapes, parse({"fp16_enable": "1"}))
    n_transposes, n_nchw_convs = EXPECTED[name]
    transposes = _transposes(opt)
    assert len(transposes) == n_transposes
    for t in transposes:
        src = t.inputs[0]
        while src.producer is not None and src.producer.op_type == "Pointwise":  # the fp16 cast of an input
            src = src.producer.inputs[0]
        readers = {c.op_type for c, _ in t.outputs[0].consumers}
        assert src in opt.inputs or readers == {"Reshape"} or "dfl" in t.name, (t.name, readers)
    convs = [n for n in opt.nodes if n.op_type == "FusedConv"]
    assert sum(1 for n in convs if not n.attrs.get("channels_last")) == n_nchw_convs
    got = graph_runner.run(opt, feeds)
    want = graph_runner.run(g, feeds)
    monkeypatch.setattr(layout_nhwc, "run", lambda graph, ctx: False)
    nchw, _ = optimize_with_context(g, shapes, parse({"fp16_enable": "1"}))
    assert not any(n.attrs.get("channels_last") for n in nchw.nodes)
    for a, e, same in zip(got, want, graph_runner.run(nchw, feeds)):
        assert a.shape == e.shape and a.dtype == e.dtype
        assert _max_rel(a, same) <= 1e-3, "the layout changed the float16 engine's numbers"
        assert _max_rel(a, e) <= FP16_TOLERANCE[name]
        a64, e64 = a.astype(np.float64).ravel(), e.astype(np.float64).ravel()
        assert float(a64 @ e64 / (np.linalg.norm(a64) * np.linalg.norm(e64))) >= 0.999


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_architectures_in_float32_go_channels_last_only_with_tf32(name):
    g, feeds = _model(name)
    shapes = {k: v.shape for k, v in feeds.items()}
    want = graph_runner.run(g, feeds)
    strict, _ = optimize_with_context(g, shapes, STRICT)
    assert not any(n.attrs.get("channels_last") for n in strict.nodes)
    assert len(_transposes(strict)) == len(_transposes(g))
    tf32, _ = optimize_with_context(g, shapes, Options(tf32_enable=True))
    assert sum(1 for n in tf32.nodes if n.attrs.get("channels_last")) > 10
    for opt in (strict, tf32):  # the references compute exact float32: the layout changes no number
        for a, e in zip(graph_runner.run(opt, feeds), want):
            assert _max_rel(a, e) <= 1e-4


def _i64(gb, values, name):
    return gb.const(np.array(values, np.int64), name)


def _versioned(value, since):
    value.producer.since_version = since  # as the ONNX importer marks an older opset's node
    return value


# name -> (graph opset, the op applied to a [2, 6, 8, 8] channels-last value)
SPELLINGS = {
    "slice-1-attributes": (9, lambda gb, y: _versioned(gb.op("Slice", [y], {"starts": [1, 2], "ends": [7, 6],
                                                                             "axes": [3, 2]}), 1)),
    "pad-2-attribute": (9, lambda gb, y: _versioned(gb.op("Pad", [y], {"pads": [0, 0, 1, 2, 0, 0, 0, 1]}), 2)),
    "pad-18-axes": (18, lambda gb, y: gb.op("Pad", [y, _i64(gb, [1, 0, 2, 1], "p"), None, _i64(gb, [-1, 2], "a")],
                                            {"mode": "edge"})),
    "resize-10": (10, lambda gb, y: _versioned(gb.op("Resize", [y, gb.const(np.array([1, 1, 2, 1], np.float32),
                                                                            "s")]), 10)),
    "resize-18-axes": (18, lambda gb, y: gb.op("Resize", [y, None, gb.const(np.array([2, 1.5], np.float32), "s")],
                                               {"axes": [2, -1], "mode": "linear"})),
    "global-pool-18": (18, lambda gb, y: gb.op("Mul", [gb.op("GlobalAveragePool", [y]), y])),
}


@pytest.mark.parametrize("name", sorted(SPELLINGS))
def test_opset_spellings_stay_inside_the_region(name):
    opset, make = SPELLINGS[name]
    gb = GB(opset=opset)
    y = gb.input("x", (2, 4, 8, 8), FLOAT16)
    for i in range(2):
        y = _conv(gb, y, 4 if i == 0 else 6, 6, i)
    y = make(gb, y)
    g = gb.output(_conv(gb, y, 6, 6, 7))
    before, ctx = _run(g)
    assert [t.attrs["perm"] for t in _transposes(g)] == [[0, 2, 3, 1], [0, 3, 1, 2]], ops(g)
    check_same(before, g, feeds_for(before), rtol=2e-3, atol=2e-3)
