"""fuse_cast_transpose: a float cast beside a Transpose becomes one ep_trtpy::CastTranspose."""

import numpy as np
import pytest

import graph_runner
from builder_testutil import GB, apply, feeds_for, ops
from ep_trtpy import models
from ep_trtpy.builder.build import optimize_with_context
from ep_trtpy.ops.pointwise_program import Program
from ep_trtpy.options import parse
from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT16, INT32
from graph_partitioner.onnx_io import graph_from_onnx

PERM = [0, 2, 3, 1]


def _cast(gb: GB, x, to: int, pointwise: bool):  # noqa: ANN001, ANN202
    if not pointwise:
        return gb.op("Cast", [x], {"to": to})
    prog = Program(1, "float", [["mov", 1, 0]], [(1, to)])
    return gb.op("Pointwise", [x], {"program": prog.to_json()}, domain="ep_trtpy")


def _exact(before, after, feeds) -> None:  # noqa: ANN001
    for a, b in zip(graph_runner.run(before, feeds), graph_runner.run(after, feeds)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a.astype(np.float64), b.astype(np.float64))


@pytest.mark.parametrize("pointwise", [False, True])
@pytest.mark.parametrize("to", [FLOAT16, BFLOAT16])
def test_transpose_of_a_cast_input(to: int, pointwise: bool) -> None:
    gb = GB()
    x = gb.input("x", (2, 3, 5, 7))
    y = gb.op("Transpose", [_cast(gb, x, to, pointwise)], {"perm": PERM})
    g = gb.output(gb.op("Relu", [y]))
    before = g.copy()
    apply(before, [])
    ctx = apply(g, ["fuse_cast_transpose"])
    assert ops(g) == ["CastTranspose", "Relu"]
    node = g.nodes[0]
    assert node.inputs[0].name == "x" and node.attrs == {"perm": PERM, "to": to}
    assert node.outputs[0].dtype == to and node.outputs[0].shape == (2, 5, 7, 3)
    assert len(ctx.origin(node.name)) == 2
    _exact(before, g, feeds_for(before))


@pytest.mark.parametrize("pointwise", [False, True])
@pytest.mark.parametrize("low", [FLOAT16, BFLOAT16])
def test_cast_of_a_transpose_output_keeps_the_graph_output(low: int, pointwise: bool) -> None:
    gb = GB()
    x = gb.input("x", (2, 4, 6, 3), low)
    y = _cast(gb, gb.op("Transpose", [x], {"perm": [0, 3, 1, 2]}), FLOAT, pointwise)
    g = gb.output(y)
    before = g.copy()
    apply(before, [])
    apply(g, ["fuse_cast_transpose"])
    assert ops(g) == ["CastTranspose"]
    assert g.outputs[0] is y and y.producer is g.nodes[0] and y.dtype == FLOAT and y.shape == (2, 3, 4, 6)
    _exact(before, g, feeds_for(before))


def test_default_perm_is_reversed() -> None:
    gb = GB()
    x = gb.input("x", (3, 4, 5), FLOAT16)
    g = gb.output(gb.op("Cast", [gb.op("Transpose", [x])], {"to": FLOAT}))
    before = g.copy()
    apply(before, [])
    apply(g, ["fuse_cast_transpose"])
    assert ops(g) == ["CastTranspose"] and g.nodes[0].attrs["perm"] == [2, 1, 0]
    _exact(before, g, feeds_for(before))


def test_intermediate_read_elsewhere_is_refused() -> None:
    gb = GB()
    x = gb.input("x", (2, 3, 4, 5))
    h = gb.op("Cast", [x], {"to": FLOAT16})
    g = gb.output(gb.op("Transpose", [h], {"perm": PERM}), gb.op("Relu", [h]))
    ctx = apply(g, ["fuse_cast_transpose"])
    assert ops(g) == ["Cast", "Transpose", "Relu"]
    assert any(h.name in r and "read elsewhere" in r for r in ctx.refusals), ctx.refusals


def test_intermediate_graph_output_is_refused() -> None:
    gb = GB()
    x = gb.input("x", (2, 3, 4, 5), FLOAT16)
    t = gb.op("Transpose", [x], {"perm": PERM})
    g = gb.output(gb.op("Cast", [t], {"to": FLOAT}), t)
    ctx = apply(g, ["fuse_cast_transpose"])
    assert ops(g) == ["Transpose", "Cast"] and ctx.refusals


@pytest.mark.parametrize("src,to", [(FLOAT16, BFLOAT16), (FLOAT, INT32), (FLOAT16, FLOAT16)])
def test_other_conversions_are_refused(src: int, to: int) -> None:
    gb = GB()
    x = gb.input("x", (2, 3, 4, 5), src)
    g = gb.output(gb.op("Cast", [gb.op("Transpose", [x], {"perm": PERM})], {"to": to}))
    ctx = apply(g, ["fuse_cast_transpose"])
    assert ops(g) == ["Transpose", "Cast"]
    assert any("float32 <-> float16 / bfloat16" in r for r in ctx.refusals), ctx.refusals


def test_pointwise_that_computes_is_no_cast() -> None:
    gb = GB()
    x = gb.input("x", (2, 3, 4, 5))
    prog = Program(1, "float", [["relu", 1, 0]], [(1, FLOAT16)])
    h = gb.op("Pointwise", [x], {"program": prog.to_json()}, domain="ep_trtpy")
    g = gb.output(gb.op("Transpose", [h], {"perm": PERM}))
    apply(g, ["fuse_cast_transpose"])
    assert ops(g) == ["Pointwise", "Transpose"]


def test_fp16_classifier_input_is_one_converting_transpose() -> None:
    """The engine's float32 image becomes float16 NHWC in one layer (was: a Pointwise cast, then a Transpose)."""
    g = graph_from_onnx(models.build("resnet50", ci=True))
    feeds = models.make_feeds("resnet50", batch=2, seed=3, ci=True)
    opt, _ = optimize_with_context(g, {k: v.shape for k, v in feeds.items()}, parse({"fp16_enable": "1"}))
    first = [n for n in opt.nodes if any(v is not None and v in opt.inputs for v in n.inputs)]
    assert [n.op_type for n in first] == ["CastTranspose"]
    assert "Transpose" not in ops(opt)
    assert first[0].inputs[0].dtype == FLOAT and first[0].outputs[0].dtype == FLOAT16
    for a, e in zip(graph_runner.run(opt, feeds), graph_runner.run(g, feeds)):
        assert a.dtype == e.dtype and a.shape == e.shape
        assert np.abs(a.astype(np.float64) - e).max() <= 5e-3 * np.abs(e).max()
