"""GPU tests of the "small_c" conv tactic (kernels/conv_small_c.cu: direct NHWC convolution for C_in 1..4, group
1), forced by tactic name on a hand-written layer (direct_plan.py) against float64 numpy references: C_in 1..4,
C_out 16..128 (one or several channel slices), 3x3 to 7x7 windows, strides 1 and 2, dilation, asymmetric pads,
every epilogue, float16/bfloat16/float32; its refusals (the search then picks another tactic); misaligned operands;
NaN propagation; and that the timed search offers it beside cuDNN."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import pytest

from direct_plan import Input, View, Weight, run_layer
from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT16, np_dtype
from lib_kernel_helpers import GPU_SKIP_REASON, conv_ref, gpu_available
from test_conv_nhwc_gpu import ACTS, act_ref

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason=GPU_SKIP_REASON)]

# float32 is exact float32 arithmetic here (no TF32), hence its tight bound
TOL = {FLOAT16: 2e-3, BFLOAT16: 1e-2, FLOAT: 1e-4}


@dataclass(frozen=True)
class Case:
    name: str
    n: int
    c: int
    h: int
    w: int
    k: int
    kernel: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    dil: tuple[int, int] = (1, 1)
    group: int = 1
    bias: bool = True
    residual: bool = False
    act: str = "none"
    alpha: float = 0.0
    beta: float = 0.0
    post: bool = False  # the residual after the activation

    def out_hw(self) -> tuple[int, int]:
        p = (self.h + self.pads[0] + self.pads[2] - self.dil[0] * (self.kernel[0] - 1) - 1) // self.strides[0] + 1
        q = (self.w + self.pads[1] + self.pads[3] - self.dil[1] * (self.kernel[1] - 1) - 1) // self.strides[1] + 1
        return p, q


CASES = [
    Case("yolo_stem_3x3_s2_silu", 2, 3, 32, 32, 16, (3, 3), (2, 2), (1, 1, 1, 1), act="silu"),
    Case("mobilenet_stem_asym_relu6", 2, 3, 30, 30, 32, (3, 3), (2, 2), (0, 0, 1, 1), act="clip", beta=6.0),
    Case("resnet_stem_7x7_s2_relu", 1, 3, 40, 38, 64, (7, 7), (2, 2), (3, 3, 3, 3), act="relu"),
    Case("gray_c1_k24_leaky_no_bias", 2, 1, 17, 23, 24, (3, 3), (1, 1), (1, 0, 2, 1), bias=False, act="leaky_relu",
         alpha=0.1),
    Case("rgba_c4_7x7_residual_hardswish", 1, 4, 20, 21, 32, (7, 7), (1, 1), (3, 2, 3, 4), residual=True,
         act="hardswish"),
    Case("c2_dilated_sigmoid", 1, 2, 19, 19, 16, (3, 3), (1, 1), (2, 2, 2, 2), dil=(2, 2), act="sigmoid"),
    Case("tanh_residual_no_bias", 1, 3, 16, 16, 16, (3, 3), (1, 1), (1, 1, 1, 1), bias=False, residual=True,
         act="tanh"),
    Case("k40_five_groups_s2_rect", 1, 3, 15, 26, 40, (3, 5), (2, 1), (1, 2, 0, 2)),
    Case("c3_residual_after_silu", 2, 3, 13, 14, 16, (3, 3), (2, 2), (1, 1, 1, 1), residual=True, act="silu",
         post=True),
    Case("k128_c4_7x7_slices", 1, 4, 12, 12, 128, (7, 7), (2, 2), (3, 3, 3, 3), act="relu"),
    Case("wide_rows_c3", 1, 3, 6, 1000, 16, (3, 3), (1, 1), (1, 1, 1, 1), act="relu"),  # fp32: > 48 KB smem
]


def _arrays(case: Case, dtype: int, rng: np.random.Generator) -> dict:
    """Operands rounded to `dtype` (as float32, NCHW) and the float64 reference in NHWC."""
    npd = np_dtype(dtype)
    cg = case.c // case.group
    x = rng.uniform(-1, 1, (case.n, case.c, case.h, case.w)).astype(npd).astype(np.float32)
    fan_in = cg * case.kernel[0] * case.kernel[1]
    wt = (rng.uniform(-1, 1, (case.k, cg, *case.kernel)) / math.sqrt(fan_in)).astype(npd).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, case.k).astype(npd).astype(np.float32) if case.bias else None
    p, q = case.out_hw()
    z = rng.uniform(-1, 1, (case.n, case.k, p, q)).astype(npd).astype(np.float32) if case.residual else None
    return {"x": x, "w": wt, "b": b, "z": z}


def _reference(case: Case, a: dict) -> np.ndarray:
    ref = conv_ref(a["x"], a["w"], a["b"], case.pads[:2], case.pads[2:], case.strides, case.dil, case.group)
    if a["z"] is not None and not case.post:
        ref = ref + a["z"]
    ref = act_ref(ref, case.act, case.alpha, case.beta)
    if a["z"] is not None and case.post:
        ref = ref + a["z"]
    return ref.transpose(0, 2, 3, 1)


def _ints(case: Case, dtype: int) -> list[int]:
    ints = [2, case.group, ACTS[case.act], 1, 1 if dtype == FLOAT else 0, *case.pads, *case.strides, *case.dil]
    return ints + [1] if case.post else ints


def _run(case: Case, dtype: int, a: dict, tactic_name: str = "small_c", level: int = 3,
         misalign: bool = False) -> tuple[np.ndarray, object]:
    """Runs the layer; with `misalign`, X and Z are views 2 elements past a 16-byte boundary."""
    npd = np_dtype(dtype)
    x = a["x"].transpose(0, 2, 3, 1).astype(npd).copy()
    z = None if a["z"] is None else a["z"].transpose(0, 2, 3, 1).astype(npd).copy()
    w = Weight(a["w"].transpose(0, 2, 3, 1).astype(npd).copy())
    b = Weight(a["b"].astype(npd)) if a["b"] is not None else None
    if not misalign:
        specs = [Input(x), w, b, Input(z) if z is not None else None]
    else:
        shift = 2 * np.dtype(npd).itemsize
        specs = [Input(np.concatenate([np.zeros(2, npd), x.ravel()])), View(0, shift, x.shape), w, b]
        if z is not None:
            specs += [Input(np.concatenate([np.zeros(2, npd), z.ravel()])), View(4, shift, z.shape)]
        else:
            specs.append(None)
    p, q = case.out_hw()
    (y,), eng = run_layer("conv", specs, [(dtype, (case.n, p, q, case.k))], _ints(case, dtype),
                          [case.alpha, case.beta], tactic_name=tactic_name, tuning_level=level)
    return y, eng


def _check(y: np.ndarray, ref: np.ndarray, dtype: int, what: str) -> None:
    scale = float(np.max(np.abs(ref))) or 1.0
    err = float(np.max(np.abs(y.astype(np.float64) - ref)))
    assert np.isfinite(y.astype(np.float64)).all(), f"{what}: non-finite outputs"
    assert err <= TOL[dtype] * scale, f"{what}: max |err| {err:.3g} > {TOL[dtype]} * {scale:.3g}"


@pytest.mark.parametrize("dtype", [FLOAT16, BFLOAT16, FLOAT], ids=["fp16", "bf16", "fp32"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_small_c_forced_matches_reference(case: Case, dtype: int) -> None:
    a = _arrays(case, dtype, np.random.default_rng(zlib.crc32(case.name.encode()) % 1000))
    y, eng = _run(case, dtype, a)
    assert eng.tactic_names()[0] == "small_c", f"{case.name}: ran {eng.tactic_names()[0]}"
    assert eng.layer_timings() == [[]], "a named tactic is not timed"
    _check(y, _reference(case, a), dtype, f"{case.name} {dtype}")


@pytest.mark.parametrize("dtype", [FLOAT16, FLOAT], ids=["fp16", "fp32"])
@pytest.mark.parametrize("case", [CASES[0], CASES[4], CASES[8]], ids=lambda c: c.name)
def test_small_c_misaligned_operands(case: Case, dtype: int) -> None:
    """X and Z off a 16-byte boundary take the element-wise copy and epilogue paths."""
    a = _arrays(case, dtype, np.random.default_rng(11))
    y, eng = _run(case, dtype, a, misalign=True)
    assert eng.tactic_names()[0] == "small_c"
    _check(y, _reference(case, a), dtype, f"{case.name} misaligned")


REFUSED = [
    Case("c8_too_many_inputs", 1, 8, 10, 10, 16, (3, 3), (1, 1), (1, 1, 1, 1)),
    Case("grouped", 1, 4, 10, 10, 16, (3, 3), (1, 1), (1, 1, 1, 1), group=2),
    Case("k12_not_multiple_of_8", 1, 3, 10, 10, 12, (3, 3), (1, 1), (1, 1, 1, 1)),
    Case("9x9_window", 1, 3, 20, 20, 16, (9, 9), (1, 1), (4, 4, 4, 4)),
    Case("stride_5", 1, 3, 21, 21, 16, (3, 3), (5, 5)),
    Case("rows_too_wide_for_shared_memory", 1, 3, 4, 5000, 16, (3, 3), (1, 1), (1, 1, 1, 1)),
]


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: c.name)
def test_small_c_refuses_what_it_cannot_run(case: Case) -> None:
    """Asked for by name where it does not apply, the layer searches the other tactics and stays correct."""
    a = _arrays(case, FLOAT16, np.random.default_rng(5))
    y, eng = _run(case, FLOAT16, a)
    names = [t[0] for t in eng.layer_timings()[0]]
    assert eng.tactic_names()[0] != "small_c" and "small_c" not in names, (eng.tactic_names(), names)
    _check(y, _reference(case, a), FLOAT16, f"{case.name} fallback")


@pytest.mark.parametrize("act", ["relu", "clip"])
def test_small_c_propagates_nan(act: str) -> None:
    """A NaN input pixel makes NaN exactly the outputs whose window covers it (ReLU and Clip keep NaN)."""
    case = Case("nan", 1, 3, 9, 9, 16, (3, 3), (2, 2), (1, 1, 1, 1), act=act, beta=6.0)
    a = _arrays(case, FLOAT16, np.random.default_rng(2))
    a["x"][0, 1, 4, 5] = np.nan
    y, eng = _run(case, FLOAT16, a)
    assert eng.tactic_names()[0] == "small_c"
    ref = _reference(case, a)
    nan = np.isnan(ref)
    assert nan.any() and not nan.all()
    np.testing.assert_array_equal(np.isnan(y.astype(np.float64)), nan)
    _check(np.where(nan, 0, y), np.where(nan, 0, ref), FLOAT16, "nan case, finite part")


@pytest.mark.parametrize("case", [CASES[0], CASES[1]], ids=lambda c: c.name)
def test_small_c_is_timed_beside_cudnn(case: Case) -> None:
    """The timed search (level 3) offers small_c among the cuDNN plans and keeps the fastest."""
    from dataclasses import replace

    case = replace(case, name=case.name + "_timed", n=3)  # a shape no earlier test memoized
    a = _arrays(case, FLOAT16, np.random.default_rng(9))
    y, eng = _run(case, FLOAT16, a, tactic_name="", level=3)
    timings = eng.layer_timings()[0]
    names = [t[0] for t in timings]
    assert "small_c" in names and any(n.split(":")[0] in ("fused", "bias", "conv") for n in names), names
    finite = [t for t in timings if math.isfinite(t[1])]
    assert math.isfinite(dict(timings)["small_c"]), timings
    assert eng.tactic_names()[0] == min(finite, key=lambda t: t[1])[0]
    _check(y, _reference(case, a), FLOAT16, f"{case.name} timed")
