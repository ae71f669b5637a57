"""CPU tests of the ``conv`` (NCHW and NHWC, every activation, the math flag) and ``pool_nhwc`` lowerings: the
emitted parameter layout, then the plan executed by the kernel emulator and compared with the numpy references of
the same graph (ep_trtpy::FusedConv / ep_trtpy::Pool, themselves checked against ONNX Runtime in
tests/ep_trtpy/ops/test_ops_internal.py)."""

from __future__ import annotations

import numpy as np
import pytest
from kernel_emulator import execute

from ep_trtpy.builder.lowering import LoweringError, lower
from ep_trtpy.ops import executor
from ep_trtpy.ops.internal import CONV_ACTIVATIONS
from ep_trtpy.ops.registry import Info, run_infer
from ep_trtpy.options import Options
from graph_partitioner.ir import FLOAT16, Graph, elem_type

STRICT, TF32 = Options(tf32_enable=False), Options(tf32_enable=True)
NHWC = (0, 2, 3, 1)
ACT_PARAMS = {"Clip": {"act_alpha": -0.5, "act_beta": 0.75}, "LeakyRelu": {"act_alpha": 0.125}}


def conv_graph(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, z_shape: tuple[int, ...] | None,
               attrs: dict, y_shape: tuple[int, ...]) -> Graph:
    g = Graph("conv", {"": 17, "ep_trtpy": 1})
    dt = elem_type(x.dtype)
    xv = g.add_value("x", dt, x.shape)
    g.inputs.append(xv)
    ins = [xv, g.add_value("w", const=w), None if b is None else g.add_value("b", const=b)]
    if z_shape is not None:
        zv = g.add_value("z", dt, z_shape)
        g.inputs.append(zv)
        ins.append(zv)
    y = g.add_value("y", dt, y_shape)
    g.add_node("FusedConv", ins, [y], attrs=attrs, name="conv", domain="ep_trtpy")
    g.outputs.append(y)
    return g


def reference(g: Graph, feeds: list[np.ndarray]) -> list[np.ndarray]:
    out = executor.run_graph(g, {v.name: a for v, a in zip(g.inputs, feeds)})
    return [np.asarray(out[v.name]) for v in g.outputs] if isinstance(out, dict) else [np.asarray(o) for o in out]


def conv_case(act: str, channels_last: int, dtype: type, residual: bool = True, seed: int = 0,
              position: str = "pre_act") -> tuple[Graph, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 4, 7, 6)).astype(dtype)
    w = (rng.standard_normal((6, 2, 3, 3)) * 0.5).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    y_shape = (2, 6, 4, 5)  # pads [1, 0, 1, 1], strides [2, 1]: H (7+1+1-3)//2+1 = 4, W 6+0+1-3+1 = 5
    z = rng.standard_normal(y_shape).astype(dtype)
    attrs = dict(kernel_shape=[3, 3], pads=[1, 0, 1, 1], strides=[2, 1], group=2, activation=act,
                 channels_last=channels_last, **ACT_PARAMS.get(act, {}))
    if position != "pre_act":
        attrs["residual_position"] = position
    if channels_last:
        x, w, z, y_shape = (x.transpose(NHWC).copy(), w.transpose(NHWC).copy(), z.transpose(NHWC).copy(),
                            tuple(y_shape[p] for p in NHWC))
    g = conv_graph(x, w, b, y_shape if residual else None, attrs, y_shape)
    return g, [x, z] if residual else [x]


@pytest.mark.parametrize("act", CONV_ACTIVATIONS)
@pytest.mark.parametrize("channels_last", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_conv_activation_layouts_through_the_emulator(act: str, channels_last: int, dtype: type) -> None:
    g, feeds = conv_case(act, channels_last, dtype)
    plan, weights = lower(g, STRICT)
    (lay,) = plan.layers
    code = CONV_ACTIVATIONS.index(act)
    params = ACT_PARAMS.get(act, {})
    assert lay.kernel == "conv" and lay.ints == [2, 2, code, channels_last, 0, 1, 0, 1, 1, 2, 1, 1, 1]  # pads b, e
    assert lay.floats == [params.get("act_alpha", 0.0), params.get("act_beta", 0.0)]
    assert lay.meta["layout"] == ("NHWC" if channels_last else "NCHW") and lay.meta["activation"] == act
    w_spec = plan.tensors[lay.inputs[1]]
    assert w_spec.shape == ((6, 3, 3, 2) if channels_last else (6, 2, 3, 3))  # KRSC / KCRS
    got = execute(plan, weights, feeds)[0]
    want = reference(g, feeds)[0]
    assert got.dtype == want.dtype and got.shape == want.shape
    tol = 1e-5 if dtype is np.float32 else 2e-3
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol, atol=tol)


@pytest.mark.parametrize("act", CONV_ACTIVATIONS)
@pytest.mark.parametrize("channels_last", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_conv_post_act_residual_through_the_emulator(act: str, channels_last: int, dtype: type) -> None:
    """residual_position post_act: one trailing int 1 (none without an activation, where the two positions are
    one sum), and the emulated plan equals the reference act(conv + B) + Z."""
    g, feeds = conv_case(act, channels_last, dtype, position="post_act")
    plan, weights = lower(g, STRICT)
    (lay,) = plan.layers
    code = CONV_ACTIVATIONS.index(act)
    assert lay.ints == [2, 2, code, channels_last, 0, 1, 0, 1, 1, 2, 1, 1, 1] + ([1] if act else [])
    assert lay.meta["residual"] is True and lay.meta["residual_position"] == "post_act"
    got = execute(plan, weights, feeds)[0]
    want = reference(g, feeds)[0]
    assert got.dtype == want.dtype and got.shape == want.shape
    tol = 1e-5 if dtype is np.float32 else 2e-3
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol, atol=tol)
    if act in ("Relu", "Sigmoid", "Tanh"):  # the position changes the numbers
        pre_g, _ = conv_case(act, channels_last, dtype)
        assert not np.allclose(reference(pre_g, feeds)[0].astype(np.float64), want.astype(np.float64), atol=0.1)


def test_conv_residual_position_lowering_refusal() -> None:
    g, _ = conv_case("Relu", 0, np.float32)
    g.nodes[0].attrs["residual_position"] = "after"
    with pytest.raises(LoweringError, match="residual_position 'after' is not one of 'pre_act', 'post_act'"):
        lower(g)


def test_math_flag_is_tf32_for_float32_only_when_enabled() -> None:
    g, feeds = conv_case("Silu", 1, np.float32, seed=1)
    strict, tf32 = lower(g, STRICT), lower(g, TF32)
    assert strict[0].layers[0].ints[4] == 0 and tf32[0].layers[0].ints[4] == 1
    assert lower(g)[0].layers[0].ints[4] == 1, "an options object without tf32_enable means TF32 on"
    want = reference(g, feeds)[0].astype(np.float64)
    exact = execute(*strict, feeds)[0].astype(np.float64)
    rounded = execute(*tf32, feeds)[0].astype(np.float64)
    scale = np.abs(want).max()
    assert np.abs(exact - want).max() <= 1e-6 * scale
    # TF32 keeps 10 mantissa bits: errors of a few 1e-4 relative, never near float32's
    assert 1e-6 * scale < np.abs(rounded - want).max() <= 2e-3 * scale
    g16, feeds16 = conv_case("Relu", 1, np.float16)
    assert lower(g16, TF32)[0].layers[0].ints[4] == 0, "16-bit data ignores TF32"


@pytest.mark.parametrize("shape_x, shape_w, attrs, y_shape", [
    ((2, 3, 9), (4, 3, 3), dict(pads=[2, 0], dilations=[2]), (2, 4, 7)),
    ((1, 4, 5, 4, 6), (4, 1, 3, 1, 3), dict(pads=[1, 0, 1, 1, 0, 1], group=4, strides=[2, 1, 2]), (1, 4, 3, 4, 3)),
])
def test_conv_1d_and_3d_stay_nchw_through_the_emulator(shape_x: tuple, shape_w: tuple, attrs: dict,
                                                       y_shape: tuple) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape_x).astype(np.float32)
    w = rng.standard_normal(shape_w).astype(np.float32)
    g = conv_graph(x, w, None, None, dict(attrs, activation="HardSwish"), y_shape)
    plan, weights = lower(g, STRICT)
    assert plan.layers[0].ints[3] == 0
    np.testing.assert_allclose(execute(plan, weights, [x])[0], reference(g, [x])[0], rtol=1e-5, atol=1e-5)


def test_conv_lowering_refusals() -> None:
    x = np.zeros((1, 2, 4, 4, 4), np.float32)
    g = conv_graph(x, np.zeros((3, 2, 1, 1, 1), np.float32), None, None, {"channels_last": 1}, (1, 3, 4, 4, 4))
    with pytest.raises(LoweringError, match="channels_last needs a 2-D convolution"):
        lower(g)
    g, _ = conv_case("Clip", 0, np.float32)
    g.nodes[0].attrs["act_beta"] = float("inf")
    with pytest.raises(LoweringError, match=r"Clip bounds \[-0.5, inf\] must be finite"):
        lower(g)


# --------------------------------------------------------------------------------------------- pool_nhwc --
POOLS = [
    ("max-3x3-s2-p1", "max", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("max-ceil-dilated", "max", dict(kernel_shape=[2, 3], strides=[2, 1], pads=[0, 1, 1, 0], dilations=[1, 2],
                                     ceil_mode=1)),
    ("avg-5x5-same", "average", dict(kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2])),
    ("avg-include-pad-ceil", "average", dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1],
                                             count_include_pad=1, ceil_mode=1)),
]


@pytest.mark.parametrize("name, mode, attrs", POOLS, ids=[p[0] for p in POOLS])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_pool_nhwc_through_the_emulator(name: str, mode: str, attrs: dict, dtype: type) -> None:
    x = np.random.default_rng(3).standard_normal((2, 7, 6, 3)).astype(dtype)
    g = Graph("pool", {"": 17, "ep_trtpy": 1})
    xv = g.add_value("x", elem_type(x.dtype), x.shape)
    y = g.add_value("y")
    g.inputs.append(xv)
    node = g.add_node("Pool", [xv], [y], dict(attrs, mode=mode, channels_last=1), name="pool", domain="ep_trtpy")
    g.outputs.append(y)
    (info,) = run_infer(node, [Info(xv.dtype, x.shape)])  # the references' window geometry (ops/_spatial.py)
    y.dtype, y.shape = info.dtype, info.shape
    y_shape = info.shape
    plan, weights = lower(g)
    (lay,) = plan.layers
    pads = attrs["pads"]
    assert lay.kernel == "pool_nhwc" and lay.meta["layout"] == "NHWC"
    assert lay.ints == [int(mode == "average"), attrs.get("count_include_pad", 0), 2, 3, 7, 6, *y_shape[1:3],
                        *attrs["kernel_shape"], *attrs["strides"], pads[0], pads[1], pads[2], pads[3],
                        *attrs.get("dilations", [1, 1])]
    got = execute(plan, weights, [x])[0]
    want = reference(g, [x])[0]
    assert got.dtype == want.dtype == x.dtype
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-3, atol=1e-3)


def test_pool_nhwc_rejects_a_wrong_output_shape() -> None:
    g = Graph("pool", {"": 17, "ep_trtpy": 1})
    xv = g.add_value("x", FLOAT16, (1, 4, 4, 2))
    y = g.add_value("y", FLOAT16, (1, 4, 4, 2))
    g.inputs.append(xv)
    g.add_node("Pool", [xv], [y], dict(mode="max", channels_last=1, kernel_shape=[2, 2], strides=[2, 2]),
               name="pool", domain="ep_trtpy")
    g.outputs.append(y)
    with pytest.raises(LoweringError, match=r"output 'y' \[1, 4, 4, 2\] differs from the computed \[1, 2, 2, 2\]"):
        lower(g)


# ------------------------------------------------------------------------------------------- whole models --
@pytest.mark.parametrize("name", ["resnet50", "mobilenetv2", "yolo"])
def test_float16_architectures_lower_channels_last_and_run_through_the_emulator(name: str) -> None:
    from ep_trtpy import models
    from ep_trtpy.builder.build import optimize
    from ep_trtpy.options import parse
    from graph_partitioner.onnx_io import graph_from_onnx

    feeds = models.make_feeds(name, batch=2, seed=4, ci=True)
    g = optimize(graph_from_onnx(models.build(name, ci=True)), {k: v.shape for k, v in feeds.items()},
                 parse({"fp16_enable": "1"}))
    plan, weights = lower(g)
    layouts = [lay.meta["layout"] for lay in plan.layers if lay.kernel in ("conv", "pool", "pool_nhwc")]
    assert layouts.count("NHWC") > 10 and layouts.count("NCHW") == (1 if name == "yolo" else 0)  # YOLO's DFL
    assert all(lay.ints[3] == 1 for lay in plan.layers if lay.kernel == "conv" and lay.meta["layout"] == "NHWC")
    post = [lay for lay in plan.layers if lay.kernel == "conv" and lay.meta.get("residual_position") == "post_act"]
    assert len(post) == (6 if name == "yolo" else 0)  # YOLO's CSP bottleneck shortcuts: x + SiLU(conv(...))
    ins = [feeds[v.name] for v in g.inputs]
    for got, ref in zip(execute(plan, weights, ins), reference(g, ins)):
        assert got.shape == ref.shape and got.dtype == ref.dtype
        scale = max(float(np.abs(ref).max()), 1e-6)
        assert float(np.abs(got.astype(np.float64) - ref).max()) <= 1e-2 * scale
