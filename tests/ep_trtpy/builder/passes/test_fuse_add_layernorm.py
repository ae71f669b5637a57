"""fuse_add_layernorm: LayerNormalization(Add(x, r)) -> ep_trtpy::AddLayerNorm, with the sum as a second output
when something else reads it."""

import numpy as np
import pytest

from builder_testutil import GB, apply, check_same, feeds_for, ops
from graph_partitioner.ir import FLOAT16


def _params(gb: GB, d: int, bias: bool = True) -> list:
    rng = np.random.default_rng(3)
    out = [gb.const(rng.uniform(0.5, 1.5, d).astype(np.float32), "gamma")]
    return out + ([gb.const(rng.standard_normal(d).astype(np.float32), "beta")] if bias else [])


@pytest.mark.parametrize("bias", [True, False])
def test_post_ln_residual_fuses_into_one_node(bias: bool) -> None:
    gb = GB()
    x, r = gb.input("x", (2, 5, 16)), gb.input("r", (2, 5, 16))
    s = gb.op("Add", [x, r])
    g = gb.output(gb.op("LayerNormalization", [s, *_params(gb, 16, bias)], {"axis": -1, "epsilon": 1e-6}))
    before = g.copy()
    ctx = apply(g, ["fuse_add_layernorm"])
    assert ops(g) == ["AddLayerNorm"]
    n = g.nodes[0]
    assert n.domain == "ep_trtpy" and [v.name for v in n.inputs[:2]] == ["x", "r"] and len(n.inputs) == 3 + bias
    assert n.attrs == {"axis": -1, "epsilon": 1e-6} and len(n.outputs) == 1
    assert len(ctx.origin(n.name)) == 2
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


def test_pre_ln_sum_read_elsewhere_becomes_the_second_output() -> None:
    """h = x + r feeds the LayerNorm and the next residual Add (and is a graph output): it stays, as output S."""
    gb = GB()
    x, r = gb.input("x", (3, 8)), gb.input("r", (3, 8))
    h = gb.op("Add", [r, x])
    early = gb.op("Relu", [h])  # a reader placed before the LayerNorm: the pass must re-sort
    y = gb.op("LayerNormalization", [h, *_params(gb, 8)], {"axis": 1})
    out = gb.op("Add", [gb.op("MatMul", [y, gb.const(np.eye(8, dtype=np.float32), "w")]), h])
    g = gb.output(out, h, early)
    before = g.copy()
    apply(g, ["fuse_add_layernorm"])
    fused = next(n for n in g.nodes if n.op_type == "AddLayerNorm")
    assert [v.name for v in fused.outputs] == [y.name, h.name]
    order = [n.op_type for n in g.nodes]
    assert order.index("AddLayerNorm") < order.index("Relu")
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


def test_after_fuse_layernorm_the_decomposed_form_fuses_too() -> None:
    gb = GB()
    x, r = gb.input("x", (2, 4, 8)), gb.input("r", (2, 4, 8))
    s = gb.op("Add", [x, r])
    mean = gb.op("ReduceMean", [s], {"axes": [-1]})
    d = gb.op("Sub", [s, mean])
    var = gb.op("ReduceMean", [gb.op("Mul", [d, d])], {"axes": [-1]})
    n = gb.op("Div", [d, gb.op("Sqrt", [gb.op("Add", [var, gb.const(np.float32(1e-5), "eps")])])])
    g = gb.output(gb.op("Add", [gb.op("Mul", [n, _params(gb, 8)[0]]), _params(gb, 8)[1]]))
    before = g.copy()
    apply(g, ["fuse_layernorm", "eliminate_dead_nodes", "fuse_add_layernorm"])
    assert ops(g) == ["AddLayerNorm"]
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-4, atol=1e-4)


def test_broadcast_residual_is_refused_with_a_sentence() -> None:
    """BERT's embeddings add a [1, S, D] position table: the kernel does not broadcast R."""
    gb = GB()
    x = gb.input("x", (2, 5, 8))
    pos = gb.const(np.random.default_rng(1).standard_normal((1, 5, 8)).astype(np.float32), "pos")
    g = gb.output(gb.op("LayerNormalization", [gb.op("Add", [x, pos]), *_params(gb, 8)]))
    ctx = apply(g, ["fuse_add_layernorm"])
    assert ops(g) == ["Add", "LayerNormalization"]
    assert any("broadcasts 'x' [2, 5, 8] and 'pos' [1, 5, 8]" in r for r in ctx.refusals), ctx.refusals


def test_used_mean_output_is_refused() -> None:
    gb = GB()
    x, r = gb.input("x", (2, 8)), gb.input("r", (2, 8))
    y, mean, inv = gb.op("LayerNormalization", [gb.op("Add", [x, r]), *_params(gb, 8)], n_out=3)
    g = gb.output(y, mean)
    ctx = apply(g, ["fuse_add_layernorm"])
    assert "AddLayerNorm" not in ops(g)
    assert any("(Mean/InvStdDev) is read" in r for r in ctx.refusals)
    del inv


def test_float16_sum_is_rounded_as_the_add_stores_it() -> None:
    gb = GB()
    x, r = gb.input("x", (4, 32), FLOAT16), gb.input("r", (4, 32), FLOAT16)
    gamma = gb.const(np.ones(32, np.float16), "gamma")
    s = gb.op("Add", [x, r])
    g = gb.output(gb.op("LayerNormalization", [s, gamma], {"axis": -1}), s)
    before = g.copy()
    apply(g, ["fuse_add_layernorm"])
    assert ops(g) == ["AddLayerNorm"] and len(g.nodes[0].outputs) == 2
    apply(before, [])
    feeds = {k: (v * 100).astype(np.float16) for k, v in feeds_for(before).items()}
    check_same(before, g, feeds, rtol=0, atol=0)
