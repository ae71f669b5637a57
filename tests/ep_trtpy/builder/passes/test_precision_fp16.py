"""precision_fp16: fp16 compute, fp32 boundaries, variance kept in fp32."""

import numpy as np

from builder_testutil import GB, apply, check_same, feeds_for
from ep_trtpy.builder.pipeline import PassContext
from ep_trtpy.ops.pointwise_program import Program
from ep_trtpy.options import parse
from graph_partitioner.ir import FLOAT, FLOAT16

FP16 = parse({"fp16_enable": "1"})


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
    apply(g, ["fuse_matmul", "canonicalize_pointwise", "precision_fp16", "fuse_pointwise", "eliminate_dead_nodes"],
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
    ctx = apply(g, ["canonicalize_pointwise", "precision_fp16"], PassContext(options=parse({})))
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
    apply(g, ["canonicalize_pointwise", "precision_fp16"], PassContext(options=FP16))
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
