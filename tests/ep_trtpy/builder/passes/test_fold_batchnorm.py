"""fold_batchnorm: into Conv / ConvTranspose weights, or x*scale+shift."""

import numpy as np
import pytest

from builder_testutil import GB, apply, check_same, feeds_for, ops


def _bn_params(gb, c, rng, name="bn"):
    return [gb.const(rng.uniform(0.5, 1.5, c).astype(np.float32), f"{name}_g"),
            gb.const(rng.standard_normal(c).astype(np.float32), f"{name}_b"),
            gb.const(rng.standard_normal(c).astype(np.float32), f"{name}_m"),
            gb.const(rng.uniform(0.5, 2.0, c).astype(np.float32), f"{name}_v")]


@pytest.mark.parametrize("with_bias", [False, True])
def test_folds_into_conv(with_bias):
    rng = np.random.default_rng(1)
    gb = GB()
    x = gb.input("x", (1, 4, 6, 6))
    w = gb.const(rng.standard_normal((6, 2, 3, 3)).astype(np.float32), "w")
    ins = [x, w] + ([gb.const(rng.standard_normal(6).astype(np.float32), "b")] if with_bias else [])
    y = gb.op("Conv", ins, {"pads": [1, 1, 1, 1], "group": 2})
    z = gb.op("BatchNormalization", [y] + _bn_params(gb, 6, rng), {"epsilon": 1e-3})
    g = gb.output(z)
    before = g.copy()
    ctx = apply(g, ["fold_batchnorm", "eliminate_dead_nodes"])
    assert ops(g) == ["Conv"] and len(g.nodes[0].inputs) == 3
    assert g.nodes[0].outputs[0] is g.outputs[0]
    assert set(ctx.origin(g.nodes[0].name)) == {before.nodes[0].name, before.nodes[1].name}
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-4, atol=1e-4)


def test_folds_into_conv_transpose():
    rng = np.random.default_rng(2)
    gb = GB()
    x = gb.input("x", (1, 4, 3, 3))
    w = gb.const(rng.standard_normal((4, 3, 2, 2)).astype(np.float32), "w")  # C_in 4, C_out/group 3, group 2
    y = gb.op("ConvTranspose", [x, w], {"strides": [2, 2], "group": 2})
    z = gb.op("BatchNormalization", [y] + _bn_params(gb, 6, rng))
    g = gb.output(z)
    before = g.copy()
    apply(g, ["fold_batchnorm"])
    assert ops(g) == ["ConvTranspose"]
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-4, atol=1e-4)


def test_conv_with_other_uses_refused_and_rewritten_affine():
    rng = np.random.default_rng(3)
    gb = GB()
    x = gb.input("x", (2, 3, 4, 4))
    y = gb.op("Conv", [x, gb.const(rng.standard_normal((3, 3, 1, 1)).astype(np.float32), "w")])
    z = gb.op("BatchNormalization", [y] + _bn_params(gb, 3, rng))
    g = gb.output(z, y)
    before = g.copy()
    ctx = apply(g, ["fold_batchnorm"])
    assert ops(g) == ["Conv", "Mul", "Add"]
    assert any("is not folded into Conv" in r and y.name in r for r in ctx.refusals)
    apply(before, [])
    check_same(before, g, feeds_for(before), rtol=1e-5, atol=1e-5)


def test_runtime_statistics_rewritten():
    gb = GB()
    x = gb.input("x", (2, 3, 5))
    params = [gb.input(n, (3,)) for n in ("g", "b", "m")]
    var = gb.op("Abs", [gb.input("v", (3,))])
    z = gb.op("BatchNormalization", [x] + params + [var])
    g = gb.output(z)
    before = g.copy()
    apply(g, ["fold_batchnorm"])
    assert "BatchNormalization" not in ops(g)
    apply(before, [])
    f = feeds_for(before)
    f["v"] = np.abs(f["v"]) + 0.5
    check_same(before, g, f, rtol=1e-5, atol=1e-5)
