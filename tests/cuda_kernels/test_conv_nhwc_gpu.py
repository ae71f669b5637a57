"""GPU tests of the channels-last convolution ("conv", layout 1) and pooling ("pool_nhwc") kernels, run from a
hand-written layer (direct_plan.py) against float64 numpy references: every activation, bias and residual, the
depthwise kernel and the cuDNN graph-API plans, tuning levels 0 and 3, and the replay of a tactic name; the residual
before the activation and after it (ints' trailing post = 1: a CSP bottleneck's act(conv + B) + Z)."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from direct_plan import Input, Weight, run_layer
from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT16, np_dtype
from lib_kernel_helpers import GPU_SKIP_REASON, conv_ref, gpu_available

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason=GPU_SKIP_REASON)]

ACTS = {"none": 0, "relu": 1, "clip": 2, "sigmoid": 3, "silu": 4, "leaky_relu": 5, "hardswish": 6, "tanh": 7}


def act_ref(v: np.ndarray, act: str, alpha: float, beta: float) -> np.ndarray:
    if act == "relu":
        return np.maximum(v, 0)
    if act == "clip":
        return np.clip(v, alpha, beta)
    if act == "sigmoid":
        return 1 / (1 + np.exp(-v))
    if act == "silu":
        return v / (1 + np.exp(-v))
    if act == "leaky_relu":
        return np.where(v >= 0, v, alpha * v)
    if act == "hardswish":
        return v * np.clip(v + 3, 0, 6) / 6
    if act == "tanh":
        return np.tanh(v)
    return v


def _case(rng: np.random.Generator, dtype: int, n: int, c: int, h: int, w: int, k: int, r: int, stride: int, pad: int,
          group: int, bias: bool, residual: bool, act: str, alpha: float = 0.0, beta: float = 0.0,
          level: int = 3, tactic_name: str = "", tactic_state: bytes = b"", post: bool = False
          ) -> tuple[np.ndarray, np.ndarray, list]:
    npd = np_dtype(dtype)
    x = rng.uniform(-1, 1, (n, c, h, w)).astype(np.float32)
    wt = (rng.uniform(-1, 1, (k, c // group, r, r)) / math.sqrt(c // group * r * r)).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, k).astype(np.float32) if bias else None
    p = (h + 2 * pad - r) // stride + 1
    q = (w + 2 * pad - r) // stride + 1
    z = rng.uniform(-1, 1, (n, k, p, q)).astype(np.float32) if residual else None
    # round the operands to the kernel's dtype first, so the reference sees what the kernel sees
    x, wt = x.astype(npd).astype(np.float32), wt.astype(npd).astype(np.float32)
    ref = conv_ref(x, wt, None if b is None else b.astype(npd).astype(np.float32), [pad, pad], [pad, pad],
                   [stride, stride], [1, 1], group)
    if z is not None:
        z = z.astype(npd).astype(np.float32)
    ref = act_ref(ref if z is None or post else ref + z, act, alpha, beta)
    ref = (ref + z if z is not None and post else ref).transpose(0, 2, 3, 1)
    specs = [Input(x.transpose(0, 2, 3, 1).astype(npd).copy()), Weight(wt.transpose(0, 2, 3, 1).astype(npd).copy()),
             Weight(b.astype(npd)) if b is not None else None,
             Input(z.transpose(0, 2, 3, 1).astype(npd).copy()) if z is not None else None]
    ints = [2, group, ACTS[act], 1, 1 if dtype == FLOAT else 0, pad, pad, pad, pad, stride, stride, 1, 1]
    if post:
        ints.append(1)
    (y,), eng = run_layer("conv", specs, [(dtype, (n, p, q, k))], ints, [alpha, beta], tactic_name=tactic_name,
                          tuning_level=level, tactic_state=tactic_state)
    return y, ref, [eng, specs, ints]


def _check(y: np.ndarray, ref: np.ndarray, dtype: int, what: str) -> None:
    tol = {FLOAT16: 1e-2, BFLOAT16: 4e-2, FLOAT: 3e-3}[dtype]  # FLOAT: TF32 math
    scale = float(np.max(np.abs(ref))) or 1.0
    err = float(np.max(np.abs(y.astype(np.float64) - ref)))
    assert np.isfinite(y.astype(np.float64)).all(), f"{what}: non-finite outputs"
    assert err <= tol * scale, f"{what}: max |err| {err:.3g} > {tol} * {scale:.3g}"


CONV_CASES = [  # n, c, h, w, k, r, stride, pad, group, bias, residual, act, alpha, beta
    ("resnet_3x3_bias_relu", 2, 64, 14, 14, 64, 3, 1, 1, 1, True, False, "relu", 0, 0),
    ("resnet_1x1_residual_relu", 2, 64, 14, 14, 256, 1, 1, 0, 1, True, True, "relu", 0, 0),
    ("stem_7x7_s2", 1, 3, 32, 32, 64, 7, 2, 3, 1, True, False, "relu", 0, 0),
    ("mobilenet_1x1_relu6", 2, 32, 16, 16, 96, 1, 1, 0, 1, True, False, "clip", 0, 6),
    ("mobilenet_1x1_linear_residual", 2, 96, 8, 8, 96, 1, 1, 0, 1, True, True, "none", 0, 0),
    ("depthwise_3x3_relu6", 2, 144, 14, 14, 144, 3, 1, 1, 144, True, False, "clip", 0, 6),
    ("depthwise_3x3_s2_odd_c", 1, 37, 11, 9, 37, 3, 2, 1, 37, True, False, "relu", 0, 0),
    ("yolo_3x3_silu", 2, 32, 16, 16, 64, 3, 1, 1, 1, True, False, "silu", 0, 0),
    ("grouped_3x3_leaky", 1, 32, 10, 10, 32, 3, 1, 1, 4, True, False, "leaky_relu", 0.1, 0),
    ("hardswish", 1, 16, 8, 8, 32, 3, 1, 1, 1, True, False, "hardswish", 0, 0),
    ("sigmoid_no_bias", 1, 16, 8, 8, 16, 3, 1, 1, 1, False, False, "sigmoid", 0, 0),
    ("tanh_residual_no_bias", 1, 16, 8, 8, 16, 1, 1, 0, 1, False, True, "tanh", 0, 0),
]


@pytest.mark.parametrize("dtype", [FLOAT16, BFLOAT16, FLOAT], ids=["fp16", "bf16", "tf32"])
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: c[0])
def test_conv_nhwc(case: tuple, dtype: int) -> None:
    name, *args = case
    rng = np.random.default_rng(zlib.crc32(name.encode()) % 1000)
    y, ref, (eng, _, _) = _case(rng, dtype, *args)
    _check(y, ref, dtype, f"{name} {dtype}")
    assert eng.tactic_names()[0], "the chosen tactic is named"


@pytest.mark.parametrize("case", [CONV_CASES[1], CONV_CASES[5], CONV_CASES[3]], ids=lambda c: c[0])
def test_conv_nhwc_level0_and_named_tactic_replay(case: tuple) -> None:
    """Level 0 times nothing; the name chosen by a timed build rebuilds the same tactic without timing."""
    name, *args = case
    rng = np.random.default_rng(3)
    y0, ref, (eng0, _, _) = _case(rng, FLOAT16, *args, level=0)
    _check(y0, ref, FLOAT16, f"{name} level 0")
    assert eng0.layer_timings() == [[]], "level 0 times no candidate"
    y3, ref3, (eng3, _, _) = _case(np.random.default_rng(4), FLOAT16, *args, level=3)
    _check(y3, ref3, FLOAT16, f"{name} level 3")
    timings = eng3.layer_timings()[0]
    chosen = eng3.tactic_names()[0]
    if timings:  # identical layers of this process may reuse an earlier choice without timing
        finite = [t for t in timings if math.isfinite(t[1])]
        assert finite and chosen == min(finite, key=lambda t: t[1])[0]
    y4, ref4, (eng4, _, _) = _case(np.random.default_rng(5), FLOAT16, *args, level=3, tactic_name=chosen)
    _check(y4, ref4, FLOAT16, f"{name} replayed {chosen}")
    assert eng4.tactic_names()[0] == chosen and eng4.layer_timings() == [[]]


def _plan_counters() -> tuple[int, int]:
    from ep_trtpy import _kernels

    c = _kernels.counters()
    return c["plans_built"], c["plans_restored"]


# residual + ReLU and HardSwish (scalar operands) take runtime-compiled cuDNN plans; 3x3 + bias + ReLU a
# precompiled one
@pytest.mark.parametrize("case", [CONV_CASES[1], CONV_CASES[9], CONV_CASES[0]], ids=lambda c: c[0])
def test_conv_nhwc_tactic_state_restores_the_plan_without_building(case: tuple) -> None:
    """The bytes a build writes (a serialized cuDNN plan) set up the same tactic later without building a plan;
    damaged bytes fall back to building from the tactic name."""
    name, *args = case
    y1, ref1, (eng1, _, _) = _case(np.random.default_rng(6), FLOAT16, *args, level=3)
    _check(y1, ref1, FLOAT16, f"{name} built")
    chosen, state = eng1.tactic_names()[0], eng1.tactic_states()[0]
    assert chosen.split(":")[0] in ("fused", "bias", "conv") and len(state) > 64, (chosen, len(state))
    built, restored = _plan_counters()
    y2, ref2, (eng2, _, _) = _case(np.random.default_rng(7), FLOAT16, *args, level=3, tactic_name=chosen,
                                   tactic_state=state)
    _check(y2, ref2, FLOAT16, f"{name} restored {chosen}")
    assert _plan_counters() == (built, restored + 1), "restoring builds no plan"
    assert eng2.tactic_names()[0] == chosen and eng2.layer_timings() == [[]]
    assert eng2.tactic_states()[0] == state, "a restored plan hands back the bytes it came from"
    y3, ref3, (eng3, _, _) = _case(np.random.default_rng(8), FLOAT16, *args, level=3, tactic_name=chosen,
                                   tactic_state=b"not a cuDNN plan" + state[:40])
    _check(y3, ref3, FLOAT16, f"{name} damaged state")
    assert _plan_counters()[1] == restored + 1 and eng3.tactic_names()[0] == chosen


# ------------------------------------------------------------------------ residual after the activation --
POST_CASES = [  # n, c, h, w, k, r, stride, pad, group, bias, residual, act, alpha, beta; post = 1
    ("yolo_bottleneck_3x3_silu", 2, 16, 20, 20, 16, 3, 1, 1, 1, True, True, "silu", 0, 0),
    ("yolo_bottleneck_wide_silu", 2, 64, 10, 10, 64, 3, 1, 1, 1, True, True, "silu", 0, 0),
    ("strided_1x1_relu", 2, 32, 9, 9, 48, 1, 2, 0, 1, True, True, "relu", 0, 0),
    ("depthwise_3x3_relu6", 2, 144, 14, 14, 144, 3, 1, 1, 144, True, True, "clip", 0, 6),
    ("depthwise_odd_c_silu_no_bias", 1, 37, 11, 9, 37, 3, 2, 1, 37, False, True, "silu", 0, 0),
    ("grouped_hardswish", 1, 32, 8, 8, 32, 3, 1, 1, 4, True, True, "hardswish", 0, 0),
]


@pytest.mark.parametrize("dtype", [FLOAT16, BFLOAT16, FLOAT], ids=["fp16", "bf16", "tf32"])
@pytest.mark.parametrize("case", POST_CASES, ids=lambda c: c[0])
def test_conv_nhwc_post_act_residual(case: tuple, dtype: int) -> None:
    """act(conv + B) + Z from whichever tactic wins, and the numbers differ from act(conv + B + Z)."""
    name, *args = case
    rng = np.random.default_rng(zlib.crc32(name.encode()) % 1000)
    y, ref, (eng, _, _) = _case(rng, dtype, *args, post=True)
    _check(y, ref, dtype, f"{name} post {dtype}")
    _, pre_ref, _ = _case(np.random.default_rng(zlib.crc32(name.encode()) % 1000), dtype, *args, level=0)
    assert np.abs(pre_ref - ref).max() > 0.1 * np.abs(ref).max(), "the two positions must differ in this case"
    assert eng.tactic_names()[0], "the chosen tactic is named"


@pytest.mark.parametrize("case", POST_CASES[:2] + POST_CASES[3:4], ids=lambda c: c[0])
def test_conv_nhwc_post_act_every_timed_tactic_replays(case: tuple) -> None:
    """Every candidate the search times (depthwise, fused:, bias:, conv:) replayed by name gives act(conv + B) + Z;
    cuDNN offers a one-graph plan for conv + bias + activation + residual (the fusion this exists for)."""
    name, *args = case
    # level 2 times one candidate of each family, and no earlier test of this process built this signature
    _, _, (eng, _, _) = _case(np.random.default_rng(9), FLOAT16, *args, level=2, post=True)
    finite = [t[0] for t in eng.layer_timings()[0] if math.isfinite(t[1])]
    assert finite, f"{name}: no candidate ran: {eng.layer_timings()[0]}"
    families = {t.split(":")[0] for t in finite}
    assert families & {"fused", "depthwise"}, f"{name}: no fused post-activation candidate ran: {finite}"
    for tactic in finite:
        y, ref, (eng_t, _, _) = _case(np.random.default_rng(10), FLOAT16, *args, tactic_name=tactic, post=True)
        _check(y, ref, FLOAT16, f"{name} replayed {tactic}")
        assert eng_t.tactic_names()[0] == tactic


def test_conv_nhwc_post_act_restores_its_own_plan() -> None:
    """The serialized plan of a post-activation layer restores into the same numbers (the cuDNN graph of the
    residual after the activation, not the one before it)."""
    name, *args = POST_CASES[0]
    y1, ref1, (eng1, _, _) = _case(np.random.default_rng(11), FLOAT16, *args, level=3, post=True)
    _check(y1, ref1, FLOAT16, f"{name} built")
    chosen, state = eng1.tactic_names()[0], eng1.tactic_states()[0]
    y2, ref2, (eng2, _, _) = _case(np.random.default_rng(12), FLOAT16, *args, tactic_name=chosen, tactic_state=state,
                                   post=True)
    _check(y2, ref2, FLOAT16, f"{name} restored {chosen}")
    assert eng2.tactic_names()[0] == chosen


@pytest.mark.parametrize("dtype", [FLOAT16, FLOAT], ids=["fp16", "fp32"])
@pytest.mark.parametrize("average, count_pad, k, s, pad, c", [(False, False, 3, 2, 1, 64), (True, False, 3, 1, 1, 24),
                                                            (True, True, 2, 2, 0, 5), (False, False, 7, 7, 0, 128)])
def test_pool_nhwc(dtype: int, average: bool, count_pad: bool, k: int, s: int, pad: int, c: int) -> None:
    rng = np.random.default_rng(7)
    n, h, w = 2, 14, 13
    x = rng.uniform(-1, 1, (n, h, w, c)).astype(np_dtype(dtype))
    p, q = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
    xf = x.astype(np.float64)
    padv = 0.0 if average else -np.inf
    xp = np.pad(xf, [(0, 0), (pad, pad), (pad, pad), (0, 0)], constant_values=padv)
    ones = np.pad(np.ones((h, w)), [(pad, pad), (pad, pad)])
    ref = np.zeros((n, p, q, c))
    for i in range(p):
        for j in range(q):
            win = xp[:, i * s:i * s + k, j * s:j * s + k, :]
            if average:
                cnt = k * k if count_pad else ones[i * s:i * s + k, j * s:j * s + k].sum()
                ref[:, i, j, :] = win.sum(axis=(1, 2)) / cnt
            else:
                ref[:, i, j, :] = win.max(axis=(1, 2))
    ints = [int(average), int(count_pad), n, c, h, w, p, q, k, k, s, s, pad, pad, pad, pad, 1, 1]
    (y,), _ = run_layer("pool_nhwc", [Input(x)], [(dtype, (n, p, q, c))], ints)
    np.testing.assert_allclose(y.astype(np.float64), ref, rtol=2e-3 if dtype == FLOAT16 else 1e-6, atol=1e-3)


@pytest.mark.parametrize("case", [CONV_CASES[0], CONV_CASES[1]], ids=lambda c: c[0])
def test_conv_nhwc_float32_candidates_all_keep_tf32_precision(case: tuple) -> None:
    """Every candidate a float32 layer may be given (each timed at level 5, then forced by name) is within the TF32
    tolerance: cuDNN engines that read float32 inputs as float16/bfloat16 (numerical note DOWN_CONVERT_INPUTS)
    are left out of float32 graphs."""
    name, *args = case
    _, _, (eng, _, _) = _case(np.random.default_rng(7), FLOAT, *args, level=5)
    names = [n for n, t in eng.layer_timings()[0] if math.isfinite(t)]
    assert names, "level 5 timed no candidate"
    for tactic in names:
        y, ref, (forced, _, _) = _case(np.random.default_rng(8), FLOAT, *args, tactic_name=tactic)
        assert forced.tactic_names()[0] == tactic
        _check(y, ref, FLOAT, f"{name} float32 with {tactic}")
