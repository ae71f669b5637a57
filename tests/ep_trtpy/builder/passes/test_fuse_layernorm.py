"""fuse_layernorm: decomposed LayerNorm spellings -> LayerNormalization."""

import numpy as np
import pytest

from builder_testutil import GB, apply, check_same, feeds_for, ops


def _layernorm(gb, x, *, square="pow", divide="div", gamma=True, beta=True, axes=(-1,), opset18=False,
               gamma_shape=(8,), eps=1e-5):
    def rmean(v):
        if opset18:
            return gb.op("ReduceMean", [v, gb.const(np.array(axes, np.int64), "axes")])
        return gb.op("ReduceMean", [v], {"axes": list(axes)})

    m = rmean(x)
    d = gb.op("Sub", [x, m])
    sq = gb.op("Pow", [d, gb.const(np.float32(2.0), "two")]) if square == "pow" else gb.op("Mul", [d, d])
    v = rmean(sq)
    ve = gb.op("Add", [gb.const(np.float32(eps), "eps"), v])
    sd = gb.op("Sqrt", [ve])
    if divide == "div":
        n = gb.op("Div", [d, sd])
    else:
        n = gb.op("Mul", [gb.op("Reciprocal", [sd]), d])
    rng = np.random.default_rng(0)
    if gamma:
        n = gb.op("Mul", [n, gb.const(rng.uniform(0.5, 1.5, gamma_shape).astype(np.float32), "gamma")])
    if beta:
        n = gb.op("Add", [gb.const(rng.standard_normal(gamma_shape).astype(np.float32), "beta"), n])
    return n


@pytest.mark.parametrize("square,divide,gamma,beta,opset18", [
    ("pow", "div", True, True, False),
    ("mul", "recip", True, True, True),
    ("pow", "recip", False, False, False),
    ("mul", "div", True, False, True),
])
def test_spellings_fuse(square, divide, gamma, beta, opset18):
    gb = GB(opset=18 if opset18 else 17)
    x = gb.input("x", (2, 3, 8))
    g = gb.output(_layernorm(gb, x, square=square, divide=divide, gamma=gamma, beta=beta, opset18=opset18))
    before = g.copy()
    ctx = apply(g, ["fuse_layernorm", "eliminate_dead_nodes"])
    assert ops(g) == ["LayerNormalization"]
    ln = g.nodes[0]
    assert ln.attrs["axis"] == 2 and abs(ln.attrs["epsilon"] - 1e-5) < 1e-12
    assert len(ctx.origin(ln.name)) >= 7
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-4, atol=1e-4)


def test_two_trailing_axes_and_broadcast_gamma():
    gb = GB()
    x = gb.input("x", (2, 4, 8))
    g = gb.output(_layernorm(gb, x, axes=(-2, -1), gamma_shape=(1, 4, 8)))
    before = g.copy()
    apply(g, ["fuse_layernorm", "eliminate_dead_nodes"])
    assert ops(g) == ["LayerNormalization"] and g.nodes[0].attrs["axis"] == 1
    assert g.nodes[0].inputs[1].shape == (4, 8)
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-4, atol=1e-4)


def test_refuses_non_trailing_axes():
    gb = GB()
    x = gb.input("x", (2, 3, 8))
    g = gb.output(_layernorm(gb, x, axes=(1,), gamma=False, beta=False))
    before = g.copy()
    ctx = apply(g, ["fuse_layernorm"])
    assert "LayerNormalization" not in ops(g)
    assert any("not the trailing axes" in r and "'x'" in r for r in ctx.refusals)
    apply(before, [])
    check_same(before, g, feeds_for(before))


def test_refuses_when_deviation_used_elsewhere():
    gb = GB()
    x = gb.input("x", (2, 8))
    ln = _layernorm(gb, x, gamma=False, beta=False)
    d = next(n for n in gb.g.nodes if n.op_type == "Sub").outputs[0]
    g = gb.output(ln, gb.op("Relu", [d]))
    ctx = apply(g, ["fuse_layernorm"])
    assert "LayerNormalization" not in ops(g)
    assert any(f"'{d.name}'" in r for r in ctx.refusals)


def test_gamma_that_broadcasts_stays_separate():
    gb = GB()
    x = gb.input("x", (2, 3, 8))
    g = gb.output(_layernorm(gb, x, gamma_shape=(3, 1), beta=False))  # scales along axis 1, not a gamma
    before = g.copy()
    ctx = apply(g, ["fuse_layernorm", "eliminate_dead_nodes"])
    assert ops(g) == ["LayerNormalization", "Mul"]
    assert any("not a fitting gamma" in r for r in ctx.refusals)
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-4, atol=1e-4)
