"""ep_trtpy.quantize.numerics against independent definitions: ONNX QuantizeLinear's round half to even and
saturation, DequantizeLinear, FP8 E4M3 (every bit pattern decoded by hand), per-channel symmetric weight scales."""

from __future__ import annotations

import numpy as np
import pytest

from ep_trtpy.quantize import numerics as nq
from graph_partitioner.ir import FLOAT8E4M3FN, INT8, UINT8, dtype_name, elem_type, np_dtype


def _e4m3_values() -> tuple[np.ndarray, np.ndarray]:
    """(bit pattern, value) of every finite non-negative float8e4m3fn, decoded from its bits."""
    bits, values = [], []
    for b in range(0x7F):  # 0x7F is NaN
        e, m = b >> 3, b & 7
        v = (m / 8) * 2.0 ** -6 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7)
        bits.append(b)
        values.append(v)
    return np.array(bits), np.array(values)


def _fp8_by_hand(x: float) -> float:
    """Nearest E4M3 value, ties to the even bit pattern, saturated to +-448."""
    bits, values = _e4m3_values()
    a = min(abs(x), 448.0)
    d = np.abs(values - a)
    best = np.flatnonzero(d == d.min())
    pick = best[0] if len(best) == 1 else next(i for i in best if bits[i] % 2 == 0)
    return float(np.copysign(values[pick], x))


def test_the_ir_knows_fp8():
    assert np_dtype(FLOAT8E4M3FN).name == "float8_e4m3fn"
    assert elem_type(np_dtype(FLOAT8E4M3FN)) == FLOAT8E4M3FN and dtype_name(FLOAT8E4M3FN) == "float8e4m3fn"


def test_fp8_rounding_matches_the_bit_level_definition():
    rng = np.random.default_rng(0)
    _, values = _e4m3_values()
    mids = (values[1:] + values[:-1]) / 2  # exact ties between neighbours
    xs = np.concatenate([rng.normal(scale=30, size=300), rng.uniform(-600, 600, 100), mids, -mids, values,
                         [0.0, 1e-9, 447.9, 448.0, 464.0, 1e6, -1e6]]).astype(np.float32)
    got = nq.to_fp8(xs).astype(np.float64)
    want = np.array([_fp8_by_hand(float(x)) for x in xs])
    assert np.array_equal(got, want)
    assert np.isnan(nq.to_fp8(np.array([np.nan], np.float32)).astype(np.float32)).all()


def test_int8_quantize_rounds_half_to_even_and_saturates():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 127.5, 300.0, -300.0, np.nan], np.float32)
    q = nq.quantize(x, 1.0, 0, INT8)
    assert q.dtype == np.int8
    assert q.tolist() == [0, 2, 2, 0, -2, -2, 126, 127, 127, -128, 0]
    u = nq.quantize(np.array([-1.0, 0.25, 0.75, 1000.0], np.float32), 0.5, 10, UINT8)
    assert u.dtype == np.uint8 and u.tolist() == [8, 10, 12, 255]  # 0.25/0.5 = 0.5 -> 0 (even), 0.75/0.5 -> 2


def test_quantize_divides_in_float32_like_onnx():
    rng = np.random.default_rng(1)
    x = rng.normal(size=1000).astype(np.float32)
    s = np.float32(0.0173)
    want = np.clip(np.rint(x / s).astype(np.int64) + 3, -128, 127)  # float32 / float32, then round
    assert np.array_equal(nq.quantize(x, s, 3, INT8).astype(np.int64), want)


def test_per_axis_quantize_and_dequantize():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3, 2)).astype(np.float32)
    scale = np.array([0.01, 0.02, 0.05], np.float32)
    zero = np.array([0, 5, -3])
    q = nq.quantize(x, scale, zero, INT8, axis=1)
    for c in range(3):
        assert np.array_equal(q[:, c], nq.quantize(x[:, c], scale[c], int(zero[c]), INT8))
    d = nq.dequantize(q, scale, zero, axis=1)
    want = ((q.astype(np.int64) - zero.reshape(1, 3, 1)).astype(np.float32) * scale.reshape(1, 3, 1))
    assert d.dtype == np.float32 and np.array_equal(d, want)


def test_dequantize_int32_bias_is_exact_before_the_scale():
    b = np.array([2 ** 30, -(2 ** 30) - 7], np.int32)
    d = nq.dequantize(b, np.float32(1e-6), None)
    assert np.array_equal(d, (b.astype(np.float32) * np.float32(1e-6)))


def test_symmetric_and_channel_scales():
    assert nq.symmetric_scale(12.7) == pytest.approx(0.1, rel=1e-7)
    assert nq.symmetric_scale(448.0, FLOAT8E4M3FN) == 1.0
    assert nq.symmetric_scale(0.0) == 1.0
    with pytest.raises(ValueError, match="amax inf"):
        nq.symmetric_scale(float("inf"))
    w = np.array([[1.0, -2.54, 0.5], [0.0, 0.0, 0.0], [0.3, 0.1, -0.2]], np.float32)
    s = nq.channel_scales(w, 0)
    assert s.tolist() == pytest.approx([2.54 / 127, 1.0, 0.3 / 127], rel=1e-6)
    wq, s2 = nq.quantize_weights(w, 0)
    assert np.array_equal(s, s2) and wq[0].tolist() == [50, -127, 25] and wq[1].tolist() == [0, 0, 0]
    assert np.abs(nq.dequantize(wq, s, 0, axis=0) - w).max() <= s.max() / 2 + 1e-7


def test_fake_quantize_fp8_keeps_representable_values():
    _, values = _e4m3_values()
    v = np.concatenate([values, -values]).astype(np.float32)
    assert np.array_equal(nq.fake_quantize(v, 1.0, 0, FLOAT8E4M3FN), v)


def test_int32_range_check_names_the_node():
    nq.int_range_check(np.array([2.0 ** 31 - 1]), "QConv 'c'")
    with pytest.raises(ValueError, match="QConv 'c': the int32 accumulator overflows"):
        nq.int_range_check(np.array([2.0 ** 31]), "QConv 'c'")
