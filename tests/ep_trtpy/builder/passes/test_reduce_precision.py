"""reduce_precision: fp16 or bf16 compute, fp32 boundaries, variance kept in fp32; FP16 wins over BF16."""

import logging

import numpy as np
import pytest

from builder_testutil import GB, apply, check_same, feeds_for
from ep_trtpy.builder.pipeline import PassContext
from ep_trtpy.ops.pointwise_program import Program
from ep_trtpy.options import parse
from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT16

FP16 = parse({"fp16_enable": "1"})
BF16 = parse({"bf16_enable": "1"})


def _mlp():
    rng = np.random.default_rng(0)
    gb = GB()
    x = gb.input("x", (4, 16))
    y = gb.op("MatMul", [x, gb.const(rng.standard_normal((16, 8)).astype(np.float32) * 0.3, "w1")])
    y = gb.op("Relu", [gb.op("Add", [y, gb.const(rng.standard_normal(8).astype(np.float32), "b1")])])
    y = gb.op("Sigmoid", [y])
    s = gb.op("Softmax", [y], {"axis": -1})
    return gb.output(s, y)


def test_compute_in_fp16_boundaries_in_fp32():
    g = _mlp()
    before = g.copy()
    apply(g, ["fuse_matmul", "canonicalize_pointwise", "reduce_precision", "fuse_pointwise", "eliminate_dead_nodes"],
          PassContext(options=FP16))
    assert [v.dtype for v in g.outputs] == [FLOAT, FLOAT]
    mm = next(n for n in g.nodes if n.op_type == "FusedMatMul")
    assert all(v.dtype == FLOAT16 for v in mm.inputs) and mm.outputs[0].dtype == FLOAT16
    assert mm.inputs[1].const is not None and mm.inputs[1].const.dtype == np.float16
    sm = next(n for n in g.nodes if n.op_type == "Softmax")
    assert sm.inputs[0].dtype == FLOAT16
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=2e-2, atol=2e-3)


def test_disabled_is_a_no_op():
    g = _mlp()
    ctx = apply(g, ["canonicalize_pointwise", "reduce_precision"], PassContext(options=parse({})))
    assert not ctx.records[-1].changed
    assert all(v.dtype != FLOAT16 for v in g.values.values())


def test_variance_stays_fp32():
    """A variance the LayerNorm fusion could not take (axis 1) stays in float32; so does ReduceSumSquare."""
    gb = GB()
    x = gb.input("x", (2, 6, 4))
    h = gb.op("Mul", [x, gb.const(np.float32(30.0), "big")])
    m = gb.op("ReduceMean", [h], {"axes": [1]})
    d = gb.op("Sub", [h, m])
    sq = gb.op("Pow", [d, gb.const(np.float32(2.0), "two")])
    v = gb.op("ReduceMean", [sq], {"axes": [1]})
    sd = gb.op("Sqrt", [gb.op("Add", [v, gb.const(np.float32(1e-6), "eps")])])
    n = gb.op("Div", [d, sd])
    ss = gb.op("ReduceSumSquare", [h], {"axes": [2]})
    g = gb.output(n, ss)
    before = g.copy()
    apply(g, ["canonicalize_pointwise", "reduce_precision"], PassContext(options=FP16))
    by_out = {n.outputs[0].name: n for n in g.nodes}
    assert by_out[sq.name].outputs[0].dtype == FLOAT
    assert by_out[v.name].outputs[0].dtype == FLOAT and by_out[sd.name].outputs[0].dtype == FLOAT
    assert by_out[m.name].outputs[0].dtype == FLOAT16  # a plain mean is fine in fp16
    rss = next(n for n in g.nodes if n.op_type == "ReduceSumSquare")
    assert rss.inputs[0].dtype == FLOAT and rss.outputs[0].dtype == FLOAT
    prog = Program.from_json(by_out[h.name].attrs["program"], 2)
    assert prog.outputs[0][1] == FLOAT16
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=2e-2, atol=5e-2)


def test_bf16_compute_with_fp32_boundaries():
    g = _mlp()
    before = g.copy()
    apply(g, ["fuse_matmul", "canonicalize_pointwise", "reduce_precision", "fuse_pointwise", "eliminate_dead_nodes"],
          PassContext(options=BF16))
    assert [v.dtype for v in g.outputs] == [FLOAT, FLOAT]
    mm = next(n for n in g.nodes if n.op_type == "FusedMatMul")
    assert all(v.dtype == BFLOAT16 for v in mm.inputs) and mm.outputs[0].dtype == BFLOAT16
    assert mm.inputs[1].const is not None and mm.inputs[1].const.dtype.name == "bfloat16"
    assert next(n for n in g.nodes if n.op_type == "Softmax").inputs[0].dtype == BFLOAT16
    assert not any(v.dtype == FLOAT16 for v in g.values.values())
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=4e-2, atol=2e-2)


def test_fp16_wins_over_bf16():
    g = _mlp()
    apply(g, ["canonicalize_pointwise", "reduce_precision"], PassContext(options=parse({"fp16_enable": "1",
                                                                                        "bf16_enable": "1"})))
    dtypes = {v.dtype for v in g.values.values()}
    assert FLOAT16 in dtypes and BFLOAT16 not in dtypes


@pytest.mark.parametrize("opts, clamped", [(FP16, True), (BF16, False)], ids=["fp16", "bf16"])
def test_only_float16_clamps_large_weights(opts, clamped, caplog):
    gb = GB()
    x = gb.input("x", (2, 3))
    y = gb.op("MatMul", [x, gb.const(np.full((3, 2), 1e6, np.float32), "huge")])
    g = gb.output(y)
    with caplog.at_level(logging.WARNING, logger="ep_trtpy.builder"):
        apply(g, ["reduce_precision"], PassContext(options=opts))
    w = next(n for n in g.nodes if n.op_type == "MatMul").inputs[1].const.astype(np.float64)
    assert ("clamped" in caplog.text) == clamped
    if clamped:
        assert np.all(w == 65504.0)
    else:
        assert np.allclose(w, 1e6, rtol=1e-2)


def test_bf16_keeps_ops_without_bfloat16_kernels_in_fp32():
    """Resize, ConvTranspose and ArgMax have float16 but no bfloat16 kernels: they run in float32 between casts."""
    rng = np.random.default_rng(1)
    gb = GB()
    x = gb.input("x", (1, 2, 4, 4))
    h = gb.op("Relu", [x])
    r = gb.op("Resize", [h, None, gb.const(np.array([1, 1, 2, 2], np.float32), "scales")], {"mode": "nearest"})
    t = gb.op("ConvTranspose", [r, gb.const(rng.standard_normal((2, 3, 2, 2)).astype(np.float32), "wt")],
              {"strides": [2, 2]})
    s = gb.op("Sigmoid", [t])
    a = gb.op("ArgMax", [s], {"axis": 1})
    g = gb.output(s, a)
    before = g.copy()
    apply(g, ["canonicalize_pointwise", "reduce_precision"], PassContext(options=BF16))
    for op in ("Resize", "ConvTranspose", "ArgMax"):
        n = next(n for n in g.nodes if n.op_type == op)
        assert n.inputs[0].dtype == FLOAT, op
    assert next(n for n in g.nodes if n.op_type == "Resize").outputs[0].dtype == FLOAT
    relu = next(n for n in g.nodes if n.outputs[0].name == h.name)
    assert relu.outputs[0].dtype == BFLOAT16  # the rest runs in bfloat16
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=4e-2, atol=2e-2)


def test_bf16_variance_stays_fp32():
    gb = GB()
    x = gb.input("x", (2, 6, 4))
    m = gb.op("ReduceMean", [x], {"axes": [1]})
    d = gb.op("Sub", [x, m])
    v = gb.op("ReduceMean", [gb.op("Mul", [d, d])], {"axes": [1]})
    g = gb.output(gb.op("Div", [d, gb.op("Sqrt", [v])]))
    apply(g, ["canonicalize_pointwise", "reduce_precision"], PassContext(options=BF16))
    red = [n for n in g.nodes if n.op_type == "ReduceMean"]
    assert red[0].outputs[0].dtype == BFLOAT16 and red[1].outputs[0].dtype == FLOAT
