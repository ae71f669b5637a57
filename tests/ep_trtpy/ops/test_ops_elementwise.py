"""Elementwise ops: our references (pointwise programs) against onnxruntime's CPU provider."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto
from ops_harness import Case, case, check

RNG = np.random.default_rng(1234)
F32, F16, I32, I64, BOOL = np.float32, np.float16, np.int32, np.int64, np.bool_


def rnd(shape: tuple[int, ...], dtype: type = F32, lo: float = -3.0, hi: float = 3.0) -> np.ndarray:
    if np.dtype(dtype) == np.bool_:
        return RNG.random(shape) < 0.5
    if np.dtype(dtype).kind in "iu":
        return RNG.integers(int(lo), int(hi) + 1, size=shape).astype(dtype)
    return RNG.uniform(lo, hi, size=shape).astype(dtype)


def nonzero(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    a = rnd(shape, dtype, -9, 9)
    return np.where(a == 0, np.ones_like(a), a)


CASES: list[Case] = []
TRANSCENDENTAL = dict(rtol=2e-5, atol=2e-6)


def add(c: Case) -> None:
    CASES.append(c)


# ----------------------------------------------------------------------------------------------- binary --
for op in ("Add", "Sub", "Mul", "Div"):
    add(case(f"{op}-f32-broadcast", op, [rnd((2, 3, 4)), nonzero((3, 1), F32)]))
    add(case(f"{op}-f16", op, [rnd((5, 4), F16), nonzero((4,), F16)]))
    add(case(f"{op}-i64-negative", op, [rnd((3, 4), I64, -20, 20), nonzero((4,), I64)]))
    add(case(f"{op}-i32-0d", op, [np.int32(-7), nonzero((3,), I32)]))
    add(case(f"{op}-f32-zero-size", op, [rnd((0, 3)), rnd((1, 3))]))
    add(case(f"{op}-f32-scalars", op, [np.float32(1.5), np.float32(-2.0)]))
add(case("Add-f64", "Add", [rnd((3,), np.float64), rnd((2, 1), np.float64)]))
add(case("Add-u8-wraps", "Add", [np.array([200, 3], np.uint8), np.array([100, 3], np.uint8)]))
add(case("Div-i32-truncates", "Div", [np.array([7, -7, 7, -7, 0], I32), np.array([2, 2, -2, -2, 3], I32)]))
for op in ("Min", "Max", "Sum", "Mean"):
    add(case(f"{op}-f32-3-inputs", op, [rnd((2, 3)), rnd((3,)), rnd((2, 1))]))
    add(case(f"{op}-f32-1-input", op, [rnd((4,))]))
    add(case(f"{op}-f16", op, [rnd((2, 3), F16), rnd((2, 3), F16)]))
for op in ("Min", "Max"):
    add(case(f"{op}-i64", op, [rnd((2, 3), I64, -9, 9), rnd((3,), I64, -9, 9)]))
    add(case(f"{op}-i32", op, [rnd((4,), I32, -9, 9), rnd((4,), I32, -9, 9)]))
for fmod in (0, 1):
    add(case(f"Mod-fmod{fmod}-i64", "Mod", [rnd((3, 5), I64, -20, 20), nonzero((5,), I64)], {"fmod": fmod}))
    add(case(f"Mod-fmod{fmod}-i32", "Mod", [rnd((6,), I32, -20, 20), nonzero((6,), I32)], {"fmod": fmod}))
add(case("Mod-fmod1-f32", "Mod", [rnd((3, 4), F32, -10, 10), nonzero((4,), F32)], {"fmod": 1}))
add(case("Mod-fmod1-f16", "Mod", [rnd((3, 4), F16, -10, 10), nonzero((4,), F16)], {"fmod": 1}))
for op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"):
    a = rnd((3, 4), F32).round()
    add(case(f"{op}-f32-broadcast", op, [a, a[1]]))
    add(case(f"{op}-i64", op, [rnd((3, 4), I64, -2, 2), rnd((4,), I64, -2, 2)]))
    add(case(f"{op}-f16", op, [a.astype(F16), a[::-1].astype(F16)]))
    add(case(f"{op}-i32-0d", op, [np.int32(1), rnd((5,), I32, 0, 2)]))
add(case("Equal-bool", "Equal", [rnd((6,), BOOL), rnd((6,), BOOL)]))
for op in ("And", "Or", "Xor"):
    add(case(f"{op}-broadcast", op, [rnd((2, 3), BOOL), rnd((3,), BOOL)]))
    add(case(f"{op}-0d", op, [np.bool_(True), rnd((4,), BOOL)]))
add(case("Not", "Not", [rnd((3, 4), BOOL)]))
add(case("Not-zero-size", "Not", [np.zeros((0, 2), BOOL)]))
add(case("Pow-f32", "Pow", [rnd((3, 4), F32, 0.1, 3), rnd((4,), F32, -2, 2)], **TRANSCENDENTAL))
add(case("Pow-f32-int-exponent", "Pow", [rnd((3, 4), F32, -3, 3), np.array([0, 1, 2, 3], I64)]))
add(case("Pow-f16", "Pow", [rnd((6,), F16, 0.5, 2), rnd((6,), F16, -2, 2)]))
add(case("Pow-i64", "Pow", [rnd((5,), I64, -4, 4), np.array([0, 1, 2, 3, 2], I64)]))
add(case("Pow-i32", "Pow", [rnd((5,), I32, -4, 4), np.array([0, 1, 2, 3, 2], I32)]))
add(case("PRelu-channel-slope", "PRelu", [rnd((2, 3, 4)), rnd((3, 1))]))
add(case("PRelu-f16", "PRelu", [rnd((2, 3), F16), rnd((3,), F16)], opset=16))
add(case("PRelu-scalar-slope", "PRelu", [rnd((5,)), np.array([0.25], F32)]))

# ------------------------------------------------------------------------------------------------ unary --
UNARY_DOMAIN = {"Log": (0.05, 5.0), "Sqrt": (0.0, 5.0), "Reciprocal": (0.2, 4.0)}
for op in ("Neg", "Abs", "Sign", "Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Log", "Sqrt", "Reciprocal", "Floor", "Ceil",
           "Round", "Sin", "Cos", "Softplus", "Softsign", "HardSwish"):
    lo, hi = UNARY_DOMAIN.get(op, (-4.0, 4.0))
    tol = {} if op in ("Neg", "Abs", "Sign", "Relu", "Floor", "Ceil", "Round") else TRANSCENDENTAL
    add(case(f"{op}-f32", op, [rnd((3, 5), F32, lo, hi)], **tol))
    add(case(f"{op}-f16", op, [rnd((7,), F16, lo, hi)]))
    add(case(f"{op}-0d", op, [np.float32((lo + hi) / 2 + 0.3)], **tol))
    add(case(f"{op}-zero-size", op, [np.zeros((2, 0), F32)]))
for op in ("Neg", "Abs", "Sign", "Relu"):
    if op != "Relu":  # onnxruntime's CPU provider has no int64 Relu (see test_int64_relu_and_bool_where)
        add(case(f"{op}-i64", op, [rnd((9,), I64, -5, 5)]))
    add(case(f"{op}-i32", op, [rnd((9,), I32, -5, 5)]))
add(case("Round-halves-to-even", "Round", [np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 2.4999], F32)]))
add(case("Sign-zero", "Sign", [np.array([-0.0, 0.0, 3.0, -2.0], F32)]))
add(case("Softplus-large", "Softplus", [np.array([-30.0, -5.0, 0.0, 19.0, 21.0, 50.0], F32)], **TRANSCENDENTAL))
add(case("Sigmoid-extremes", "Sigmoid", [np.array([-100.0, -20.0, 0.0, 20.0, 100.0], F32)], **TRANSCENDENTAL))
add(case("Exp-f64", "Exp", [rnd((4,), np.float64)]))
SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -1.0, 3.5], F32)
add(case("IsNaN-f32", "IsNaN", [SPECIAL]))
add(case("IsNaN-f16", "IsNaN", [SPECIAL.astype(F16)], opset=20))
for pos, neg in ((1, 1), (1, 0), (0, 1), (0, 0)):
    add(case(f"IsInf-pos{pos}-neg{neg}", "IsInf", [SPECIAL], {"detect_positive": pos, "detect_negative": neg}))
add(case("IsInf-f16", "IsInf", [SPECIAL.astype(F16)], opset=20))

# --------------------------------------------------------------------------------------- with attributes --
ATTR_OPS = {
    "LeakyRelu": [{}, {"alpha": 0.3}],
    "Elu": [{}, {"alpha": 0.5}],
    "Selu": [{}, {"alpha": 1.5, "gamma": 2.0}],
    "Celu": [{}, {"alpha": 2.0}],
    "ThresholdedRelu": [{}, {"alpha": 0.5}],
    "HardSigmoid": [{}, {"alpha": 0.3, "beta": 0.4}],
}
for op, variants in ATTR_OPS.items():
    for attrs in variants:
        tag = "default" if not attrs else "-".join(f"{a}{v}" for a, v in attrs.items())
        add(case(f"{op}-f32-{tag}", op, [rnd((3, 6))], attrs, **TRANSCENDENTAL))
    if op != "Celu":  # onnxruntime has float32 Celu only
        add(case(f"{op}-f16", op, [rnd((8,), F16)], variants[-1]))
for approx in ("none", "tanh"):
    add(case(f"Gelu-{approx}-f32", "Gelu", [rnd((4, 5), F32, -5, 5)], {"approximate": approx}, opset=20,
             **TRANSCENDENTAL))
    add(case(f"Gelu-{approx}-f16", "Gelu", [rnd((9,), F16, -5, 5)], {"approximate": approx}, opset=20))

# --------------------------------------------------------------------------------------- Clip, Where, Cast --
x = rnd((3, 4))
add(case("Clip-const-bounds", "Clip", [x, np.float32(-0.5), np.float32(1.0)], const=(1, 2)))
add(case("Clip-runtime-bounds", "Clip", [x, np.float32(-0.5), np.float32(1.0)]))
add(case("Clip-min-only", "Clip", [x, np.float32(0.2)], const=(1,)))
add(case("Clip-max-only", "Clip", [x, None, np.float32(0.2)], const=(2,)))
add(case("Clip-no-bounds", "Clip", [x]))
add(case("Clip-i64-max-only", "Clip", [rnd((6,), I64, -9, 9), None, np.int64(2)], const=(2,)))
add(case("Clip-i64-min-only", "Clip", [rnd((6,), I64, -9, 9), np.int64(-2)], const=(1,)))
add(case("Clip-i32-runtime", "Clip", [rnd((6,), I32, -9, 9), np.int32(-2), np.int32(3)]))
add(case("Clip-f16", "Clip", [x.astype(F16), np.float16(-1), np.float16(0.5)], const=(1, 2)))
add(case("Clip-0d", "Clip", [np.float32(4.0), np.float32(-1), np.float32(1)]))
add(case("Clip-opset6-attrs", "Clip", [x], {"min": -0.25, "max": 0.75}, opset=6))
add(case("Clip-opset6-default", "Clip", [x], {"max": 0.5}, opset=6))
add(case("Where-broadcast", "Where", [rnd((3, 1), BOOL), rnd((3, 4)), rnd((4,))]))
add(case("Where-i64", "Where", [rnd((5,), BOOL), rnd((5,), I64), np.int64(-1)]))
add(case("Where-f16", "Where", [rnd((2, 3), BOOL), rnd((2, 3), F16), rnd((3,), F16)]))
add(case("Where-zero-size", "Where", [rnd((0, 3), BOOL), rnd((1, 3)), rnd((3,))]))

CAST_TYPES = {F32: TensorProto.FLOAT, F16: TensorProto.FLOAT16, I32: TensorProto.INT32, I64: TensorProto.INT64,
              BOOL: TensorProto.BOOL}
CAST_SRC = {F32: np.array([-2.7, -0.5, 0.0, 0.4, 1.5, 3.9, 65504.0, 1e-8], F32),
            F16: np.array([-2.7, -0.5, 0.0, 0.4, 1.5, 3.9, 1000.0, 1e-4], F16),
            I32: np.array([-100000, -3, 0, 1, 7, 2049, 65504, 123456], I32),
            I64: np.array([-(2 ** 40), -3, 0, 1, 7, 2049, 65504, 2 ** 40], I64),
            BOOL: np.array([True, False, True, True, False, False, True, False])}
for src, arr in CAST_SRC.items():
    for dst, to in CAST_TYPES.items():
        if src is F16 and dst is I64:
            continue
        if src in (I32, I64) and dst is F16:
            arr = np.clip(arr, -2048, 2048).astype(src)  # exactly representable, so both roundings agree
        add(case(f"Cast-{np.dtype(src).name}-to-{np.dtype(dst).name}", "Cast", [arr], {"to": to}))
add(case("Cast-f32-to-f64", "Cast", [CAST_SRC[F32]], {"to": TensorProto.DOUBLE}))
add(case("Cast-u8-to-f32", "Cast", [np.array([0, 7, 255], np.uint8)], {"to": TensorProto.FLOAT}))
add(case("Cast-f32-to-f16-rounding", "Cast", [np.array([1.0 + 2 ** -11, 1.0 + 3 * 2 ** -11, 70000.0], F32)],
         {"to": TensorProto.FLOAT16}))
add(case("Cast-0d", "Cast", [np.float32(2.5)], {"to": TensorProto.INT64}))


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_elementwise_against_onnxruntime(c: Case) -> None:
    check(c)


def test_int64_relu_and_bool_where() -> None:
    """Dtypes onnxruntime's CPU provider lacks: compared with numpy expressions instead."""
    from onnx import helper
    from ops_harness import ir_node

    from ep_trtpy.ops.registry import run_reference

    x = np.array([-(2 ** 40), -1, 0, 5, 2 ** 40], I64)
    node = ir_node(helper.make_node("Relu", ["x"], ["y"]), [x], (), 14)
    np.testing.assert_array_equal(run_reference(node, [x])[0], np.maximum(x, 0))
    c, a, b = rnd((6,), BOOL), rnd((6,), BOOL), rnd((1,), BOOL)
    node = ir_node(helper.make_node("Where", ["c", "a", "b"], ["y"]), [c, a, b], (), 16)
    got = run_reference(node, [c, a, b])[0]
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, np.where(c, a, b))
