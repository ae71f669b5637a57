"""CPU tests of the QuantizeLinear / DequantizeLinear lowerings (builder/lowering/quantize.py: lower_quantize_linear,
lower_dequantize_linear -> ``qdq``): each node's plan runs through the plan emulator (qdq_emulator.py follows the
documented parameter layout) and must equal the reference backend (ep_trtpy/ops/quantize.py) bit for bit, NaN
payloads aside. The values sit on rounding ties, beyond saturation and at NaN / +-inf. The GPU side of the same
cases: tests/cuda_kernels/test_qdq_gpu.py."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from kernel_emulator import execute
from lowering_testutil import In, ir_graph

from ep_trtpy.builder.lowering import LowerCtx, LoweringError, lower
from ep_trtpy.builder.lowering.quantize import _READY, PENDING, lower_dequantize_linear, lower_quantize_linear
from ep_trtpy.ops.quantize import dequantize_linear_ref, quantize_linear_ref
from ep_trtpy.quantize.numerics import along
from graph_partitioner.ir import FLOAT8E4M3FN, Graph, Node, np_dtype

FP8 = np_dtype(FLOAT8E4M3FN)
SHAPE = (3, 5, 7)
AXES = {"tensor": None, "scalar": None, "axis1": 1, "axis-1": -1, "axis0": 0}
FLOATS = ["float32", "float16", "bfloat16"]


def np_type(name: str) -> np.dtype:
    import ml_dtypes

    return {"bfloat16": np.dtype(ml_dtypes.bfloat16), "fp8": FP8}.get(name) or np.dtype(name)


def scales(rng: np.random.Generator, n: int) -> np.ndarray:
    """Powers of two (ties stay ties after x = r * scale) mixed with arbitrary float32 scales."""
    pow2 = 2.0 ** rng.integers(-3, 3, size=n)
    return np.where(rng.random(n) < 0.5, pow2, rng.uniform(0.01, 0.3, size=n)).astype(np.float32)


def fp8_midpoints(rng: np.random.Generator, n: int) -> np.ndarray:
    """Values halfway between two neighbouring finite float8e4m3fn values (round-to-even decides them)."""
    codes = rng.integers(0, 0x7E, size=n).astype(np.uint8)
    lo = codes.view(FP8).astype(np.float64)
    hi = (codes + 1).view(FP8).astype(np.float64)
    return (lo + hi) / 2 * np.where(rng.random(n) < 0.5, -1.0, 1.0)


def quantize_inputs(rng: np.random.Generator, x_type: str, q_type: str, axis: int | None,
                    shape: tuple[int, ...] = SHAPE) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """x, scale and zero point of a QuantizeLinear whose x / scale lands on ties, beyond the range and on NaN/inf."""
    channels = 1 if axis is None else shape[axis]
    s = scales(rng, channels)
    s_elem = np.broadcast_to(along(s, len(shape), axis), shape)
    n = int(np.prod(shape))
    if q_type == "fp8":
        pick = rng.random(n)
        r = np.where(pick < 0.4, fp8_midpoints(rng, n), rng.normal(0, 100, n))
        r = np.where(pick > 0.9, rng.uniform(-2000, 2000, n), r)  # beyond +-448
        zp = np.zeros(channels, FP8)
    else:
        frac = rng.choice([0.0, 0.5, -0.5, 1.5, 0.25, 0.4999, 0.5001], size=n)
        r = rng.integers(-300, 300, size=n) + frac
        lo, hi = (-20, 20) if q_type == "int8" else (100, 150)
        zp = rng.integers(lo, hi, size=channels).astype(q_type)
    x = (r.reshape(shape) * s_elem).astype(np_type(x_type))
    flat = x.reshape(-1)
    special = np.array([np.nan, np.inf, -np.inf, 6e4, -6e4, -0.0])[:n]
    flat[:special.size] = special.astype(x.dtype)
    if axis is None:
        s, zp = s.reshape(()), zp.reshape(())
    return x, s, zp


def dequantize_inputs(rng: np.random.Generator, x_type: str, s_type: str, axis: int | None,
                      shape: tuple[int, ...] = SHAPE) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """x over the whole range of its type (FP8: every code, NaN included), a scale, a zero point."""
    channels = 1 if axis is None else shape[axis]
    n = int(np.prod(shape))
    if x_type == "fp8":
        x = rng.integers(0, 256, size=n).astype(np.uint8)
        x[:4] = np.array([0x7F, 0xFF, 0x7E, 0xFE], np.uint8)[:n]  # NaN, -NaN, +-448
        x = x.view(FP8)
        zp = np.zeros(channels, FP8)
    elif x_type == "int32":
        x = rng.integers(-2**31, 2**31, size=n, dtype=np.int64).astype(np.int32)
        x[:2] = np.array([-2**31, 2**31 - 1], np.int32)[:n]
        zp = rng.integers(-10**6, 10**6, size=channels).astype(np.int32)
    else:
        info = np.iinfo(x_type)
        x = rng.integers(info.min, info.max + 1, size=n).astype(x_type)
        zp = rng.integers(info.min, info.max + 1, size=channels).astype(x_type)
    s = (rng.uniform(0.001, 0.5, size=channels) * np.where(rng.random(channels) < 0.2, 1e-4, 1.0))
    s = s.astype(np_type(s_type))
    if axis is None:
        s, zp = s.reshape(()), zp.reshape(())
    return x.reshape(shape), s, zp


def qdq_graph(op: str, x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None, attrs: dict[str, Any],
              scale_const: bool = True, zp_const: bool = True) -> tuple[Graph, Node, np.ndarray]:
    """A one-node Q/DQ graph whose output type and shape come from the reference, and that reference."""
    probe = Graph("probe", {"": 21})
    node = probe.add_node(op, [], [], attrs=dict(attrs), name="probe")
    ref = quantize_linear_ref if op == "QuantizeLinear" else dequantize_linear_ref
    with np.errstate(over="ignore"):  # int32 data with a float16 scale overflows to inf, as it may
        want = ref(node, x, scale, zp)
    ins = [In("x", x), In("scale", scale, const=scale_const)]
    if zp is not None:
        ins.append(In("zero_point", zp, const=zp_const))
    g = ir_graph(op, ins, attrs, [want], 21)
    return g, g.nodes[0], want


def lower_node(g: Graph, node: Node) -> LowerCtx:
    ctx = LowerCtx(g)
    (lower_quantize_linear if node.op_type == "QuantizeLinear" else lower_dequantize_linear)(ctx, node)
    ctx.finish()
    return ctx


def assert_same_bits(got: np.ndarray, want: np.ndarray) -> None:
    """Equal bit patterns, except that any NaN matches any NaN."""
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, want.shape, got.dtype, want.dtype)
    bits = np.dtype(f"u{want.dtype.itemsize}")
    same = got.view(bits) == want.view(bits)
    if want.dtype.kind not in "iu":
        same |= np.isnan(got.astype(np.float32)) & np.isnan(want.astype(np.float32))
    bad = np.flatnonzero(~same)
    assert bad.size == 0, (f"{bad.size} of {want.size} outputs differ, first at {bad[0]}: got "
                           f"{got.reshape(-1)[bad[0]]!r}, expected {want.reshape(-1)[bad[0]]!r}")


def build_case(name: str, seed: int = 0,
               shape: tuple[int, ...] = SHAPE) -> tuple[str, np.ndarray, np.ndarray, np.ndarray | None, dict]:
    """(op, x, scale, zero point, attrs) of a case named '<q|dq>:<x type>:<scale or output type>:<axis form>'."""
    kind, a, b, form = name.split(":")
    rng = np.random.default_rng(seed)
    axis = AXES[form]
    attrs: dict[str, Any] = {} if axis is None else {"axis": axis}
    if kind == "q":
        x, s, zp = quantize_inputs(rng, a, b, axis, shape)
        if form == "scalar":  # one-element vectors instead of scalars; FP8 by output_dtype without a zero point
            s = s.reshape(1)
            zp = None if b == "fp8" else zp.reshape(1)
            if b == "fp8":
                attrs["output_dtype"] = FLOAT8E4M3FN
        return "QuantizeLinear", x, s, zp, attrs
    x, s, zp = dequantize_inputs(rng, a, b, axis, shape)
    if form == "scalar":
        s, zp = s.reshape(1), None
    return "DequantizeLinear", x, s, zp, attrs


CASES = ([f"q:{x}:{q}:{form}" for x in FLOATS for q in ("int8", "uint8", "fp8") for form in AXES]
         + [f"dq:{x}:{s}:{form}" for x in ("int8", "uint8", "int32", "fp8") for s in FLOATS for form in AXES])


@pytest.mark.parametrize("name", CASES)
def test_qdq_plan_matches_reference(name: str) -> None:
    op, x, s, zp, attrs = build_case(name)
    g, node, want = qdq_graph(op, x, s, zp, attrs)
    ctx = lower_node(g, node)
    assert [lay.kernel for lay in ctx.plan.layers] == ["qdq"]
    got = execute(ctx.plan, bytes(ctx.weights), [x])[0]
    assert_same_bits(got, want)


@pytest.mark.parametrize("form, ints", [("tensor", [0, 1, 1, 105]), ("axis1", [0, 3, 5, 7]),
                                        ("axis-1", [0, 15, 7, 1]), ("axis0", [0, 1, 3, 35])])
def test_axis_becomes_outer_channels_inner(form: str, ints: list[int]) -> None:
    op, x, s, zp, attrs = build_case(f"q:float32:int8:{form}")
    g, node, _ = qdq_graph(op, x, s, zp, attrs)
    layer = lower_node(g, node).plan.layers[0]
    assert layer.ints == ints and layer.floats == []


def test_unquantized_uint8_default_has_no_zero_point_input() -> None:
    """No zero point: uint8 output (ONNX's default) and no zero-point weight."""
    rng = np.random.default_rng(4)
    x = rng.uniform(-10, 300, size=(4, 9)).astype(np.float32)
    s = np.float32(0.75)
    g, node, want = qdq_graph("QuantizeLinear", x, np.asarray(s), None, {})
    ctx = lower_node(g, node)
    assert want.dtype == np.uint8 and ctx.plan.layers[0].inputs[2] == -1
    assert_same_bits(execute(ctx.plan, bytes(ctx.weights), [x])[0], want)


@pytest.mark.parametrize("tamper", ["drop_zero_point", "per_tensor_channel_map"])
def test_plan_parameters_are_needed(tamper: str) -> None:
    """A plan that lost its zero point, or read the per-axis scales along the wrong axis, must not match: the check
    can fail."""
    op, x, s, zp, attrs = build_case("dq:int8:float32:axis1", seed=2)
    g, node, want = qdq_graph(op, x, s, zp, attrs)
    ctx = lower_node(g, node)
    layer = ctx.plan.layers[0]
    if tamper == "drop_zero_point":
        assert layer.inputs[2] >= 0
        layer.inputs[2] = -1
    else:
        layer.ints = [1, 1, 5, 21]  # 105 elements as [1, 5, 21]: channel (i / 21) % 5 instead of (i / 7) % 5
    got = execute(ctx.plan, bytes(ctx.weights), [x])[0]
    assert not np.array_equal(got, want)


def test_empty_tensor_emits_no_layer() -> None:
    x = np.zeros((0, 4), np.float32)
    g, node, want = qdq_graph("QuantizeLinear", x, np.asarray(np.float32(0.5)), np.asarray(np.int8(3)), {})
    ctx = lower_node(g, node)
    assert ctx.plan.layers == [] and execute(ctx.plan, bytes(ctx.weights), [x])[0].shape == want.shape == (0, 4)


@pytest.mark.parametrize("change, message", [
    ("runtime_scale", "scale 'scale' is not a constant"),
    ("runtime_zero_point", "zero point 'zero_point' is not a constant"),
    ("block_size", "block_size=2"),
    ("float64_input", "quantizes float64"),
])
def test_refusals_name_the_reason(change: str, message: str) -> None:
    rng = np.random.default_rng(7)
    x = rng.uniform(-4, 4, size=(4, 6)).astype(np.float64 if change == "float64_input" else np.float32)
    s, zp = np.asarray(np.float32(0.1)), np.asarray(np.int8(0))
    g, node, _ = qdq_graph("QuantizeLinear", x, s, zp, {}, scale_const=change != "runtime_scale",
                           zp_const=change != "runtime_zero_point")
    if change == "block_size":
        node.attrs["block_size"] = 2
    with pytest.raises(LoweringError, match=message):
        lower_quantize_linear(LowerCtx(g), node)


def test_qdq_is_still_refused_on_the_gpu() -> None:
    """Until the H200 has run tests/cuda_kernels/test_qdq_gpu.py, Q/DQ stay in PENDING and lower() refuses them
    (the next GPU session drops the PENDING entries and flips this test); their lowerings wait in _READY."""
    for key in ("QuantizeLinear", "DequantizeLinear"):
        assert key in PENDING and key in _READY
    for name in ("q:float32:int8:axis1", "dq:uint8:float16:tensor"):
        op, x, s, zp, attrs = build_case(name)
        g, _, _ = qdq_graph(op, x, s, zp, attrs)
        with pytest.raises(LoweringError, match="left to the CPU provider"):
            lower(g)
