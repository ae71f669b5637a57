"""GPU tests of the tiled depthwise convolution ("conv" layout 1, tactic "depthwise:tiled", kernels/depthwise_tiled.cu)
forced by its tactic name, against the float64 ONNX reference: odd C and C that allows no 16-byte vector, strides
1-3, asymmetric pads, 3x3 / 5x5 / rectangular / dilated windows, every activation with bias and residual, the
three float types, NaN and inf inputs; the tuner times it beside "depthwise", and a window too large for its
shared memory refuses it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from direct_plan import Input, Weight, run_layer
from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT16, np_dtype
from lib_kernel_helpers import GPU_SKIP_REASON, conv_ref, gpu_available
from test_conv_nhwc_gpu import ACTS, act_ref

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason=GPU_SKIP_REASON)]

TILED = "depthwise:tiled"


def _run(rng: np.random.Generator, dtype: int, n: int, c: int, h: int, w: int, kernel: tuple[int, int],
         strides: tuple[int, int] = (1, 1), pads: tuple[int, int, int, int] = (1, 1, 1, 1),
         dilations: tuple[int, int] = (1, 1), bias: bool = True, residual: bool = False, act: str = "none",
         alpha: float = 0.0, beta: float = 0.0, tactic_name: str = TILED, level: int = 3, weight_input: bool = False,
         planted: dict | None = None, post: bool = False) -> tuple[np.ndarray, np.ndarray, object]:
    """One depthwise layer (pads: begin h, begin w, end h, end w; post: the residual after the activation);
    returns (Y, float64 reference, engine)."""
    npd = np_dtype(dtype)
    r, s = kernel
    x = rng.uniform(-1, 1, (n, c, h, w)).astype(npd).astype(np.float64)
    for idx, v in (planted or {}).items():
        x[idx] = v
    wt = (rng.uniform(-1, 1, (c, 1, r, s)) / math.sqrt(r * s)).astype(npd).astype(np.float64)
    b = rng.uniform(-0.5, 0.5, c).astype(npd).astype(np.float64) if bias else None
    with np.errstate(invalid="ignore"):
        ref = conv_ref(x, wt, b, pads[:2], pads[2:], strides, dilations, c)
    p, q = ref.shape[2:]
    z = rng.uniform(-1, 1, (n, c, p, q)).astype(npd).astype(np.float64) if residual else None
    if z is not None and not post:
        ref = ref + z
    with np.errstate(invalid="ignore", over="ignore"):
        ref = act_ref(ref, act, alpha, beta)
    if z is not None and post:
        ref = ref + z
    ref = ref.transpose(0, 2, 3, 1)
    w_nhwc = wt.transpose(0, 2, 3, 1).astype(npd).copy()
    specs = [Input(x.transpose(0, 2, 3, 1).astype(npd).copy()), Input(w_nhwc) if weight_input else Weight(w_nhwc),
             Weight(b.astype(npd)) if b is not None else None,
             Input(z.transpose(0, 2, 3, 1).astype(npd).copy()) if z is not None else None]
    ints = [2, c, ACTS[act], 1, 1 if dtype == FLOAT else 0, pads[0], pads[1], pads[2], pads[3], *strides, *dilations]
    if post:
        ints.append(1)
    (y,), eng = run_layer("conv", specs, [(dtype, (n, p, q, c))], ints, [alpha, beta], tactic_name=tactic_name,
                          tuning_level=level)
    return y, ref, eng


def _check(y: np.ndarray, ref: np.ndarray, dtype: int, what: str) -> None:
    tol = {FLOAT16: 1e-2, BFLOAT16: 4e-2, FLOAT: 1e-5}[dtype]  # float32: exact float32 math in this kernel
    yf = y.astype(np.float64)
    assert (np.isnan(yf) == np.isnan(ref)).all(), f"{what}: NaN at different outputs"
    assert (np.isposinf(yf) == np.isposinf(ref)).all() and (np.isneginf(yf) == np.isneginf(ref)).all(), \
        f"{what}: infinities at different outputs"
    finite = np.isfinite(ref)
    scale = float(np.max(np.abs(ref[finite]), initial=0.0)) or 1.0
    err = float(np.max(np.abs(yf[finite] - ref[finite]), initial=0.0))
    assert err <= tol * scale, f"{what}: max |err| {err:.3g} > {tol} * {scale:.3g}"


SHAPES = {  # n, c, h, w, kernel, strides, pads (bh, bw, eh, ew), dilations
    "mobilenet_3x3_c144": (2, 144, 14, 14, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    "c32_tall_tiles": (1, 32, 30, 29, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    "odd_c37_s2": (1, 37, 11, 9, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    "c12_no_vector_5x5": (2, 12, 10, 11, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1)),
    "c24_s2_asym_pads": (2, 24, 9, 8, (3, 3), (2, 2), (0, 1, 1, 0), (1, 1)),
    "c64_5x5_s2": (1, 64, 13, 17, (5, 5), (2, 2), (2, 2, 2, 2), (1, 1)),
    "c960_7x7_slices": (2, 960, 7, 7, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    "c96_s2_even_input": (1, 96, 16, 16, (3, 3), (2, 2), (0, 0, 1, 1), (1, 1)),
    "dilated_generic": (1, 16, 12, 13, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2)),
    "stride3_generic": (1, 40, 14, 14, (3, 3), (3, 3), (1, 0, 0, 1), (1, 1)),
    "rect_1x3_generic": (2, 8, 6, 20, (1, 3), (1, 1), (0, 1, 0, 1), (1, 1)),
    "c3_no_pad": (1, 3, 5, 6, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1)),
}


@pytest.mark.parametrize("dtype", [FLOAT16, BFLOAT16, FLOAT], ids=["fp16", "bf16", "fp32"])
@pytest.mark.parametrize("name", list(SHAPES))
def test_tiled_shapes(name: str, dtype: int) -> None:
    n, c, h, w, kernel, strides, pads, dil = SHAPES[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    y, ref, eng = _run(rng, dtype, n, c, h, w, kernel, strides, pads, dil, act="clip", alpha=-0.5, beta=0.75,
                       residual=name.startswith("c960"))
    assert eng.tactic_names()[0] == TILED, eng.tactic_names()
    _check(y, ref, dtype, f"{name} {dtype}")


@pytest.mark.parametrize("residual", [False, True], ids=["bias", "bias_residual"])
@pytest.mark.parametrize("act, alpha, beta", [("none", 0, 0), ("relu", 0, 0), ("clip", 0, 6), ("sigmoid", 0, 0),
                                              ("silu", 0, 0), ("leaky_relu", 0.1, 0), ("hardswish", 0, 0),
                                              ("tanh", 0, 0)])
def test_tiled_epilogues(act: str, alpha: float, beta: float, residual: bool) -> None:
    y, ref, eng = _run(np.random.default_rng(11), FLOAT16, 2, 48, 12, 10, (3, 3), act=act, alpha=alpha, beta=beta,
                       residual=residual)
    assert eng.tactic_names()[0] == TILED
    _check(y, ref, FLOAT16, f"{act} residual={residual}")


@pytest.mark.parametrize("act", ["relu", "clip", "silu"])
@pytest.mark.parametrize("dtype", [FLOAT16, FLOAT], ids=["fp16", "fp32"])
def test_tiled_residual_after_activation(act: str, dtype: int) -> None:
    """post = 1: Y = act(conv + B) + Z (a CSP bottleneck's shortcut), on a register-blocked and a generic window."""
    for kernel, dil in (((3, 3), (1, 1)), ((3, 3), (2, 2))):
        y, ref, eng = _run(np.random.default_rng(17), dtype, 2, 24, 11, 10, kernel, pads=(2, 2, 2, 2), dilations=dil,
                           residual=True, act=act, alpha=0.0, beta=0.5, post=True)
        assert eng.tactic_names()[0] == TILED
        _check(y, ref, dtype, f"post {act} dilation {dil}")


def test_tiled_without_bias_and_weights_as_input() -> None:
    """No bias, and weights that are an engine input (reordered into the workspace on every run)."""
    y, ref, eng = _run(np.random.default_rng(12), FLOAT16, 2, 40, 9, 9, (3, 3), (2, 2), (1, 0, 1, 0), bias=False,
                       residual=True, act="relu", weight_input=True)
    assert eng.tactic_names()[0] == TILED
    _check(y, ref, FLOAT16, "no bias, weight input")


@pytest.mark.parametrize("act", ["none", "relu", "clip"])
def test_tiled_nan_and_inf_reach_only_their_windows(act: str) -> None:
    """A NaN or inf input reaches exactly the outputs whose windows hold it (ReLU and Clip keep NaN); padding is
    zeros times a finite weight, so it adds nothing."""
    planted = {(0, 3, 2, 2): np.nan, (1, 17, 0, 5): np.inf, (0, 40, 7, 0): -np.inf}
    y, ref, eng = _run(np.random.default_rng(13), FLOAT16, 2, 48, 8, 9, (3, 3), act=act, alpha=0.0, beta=6.0,
                       planted=planted)
    assert eng.tactic_names()[0] == TILED
    assert np.isnan(ref).any(), "the case plants NaN outputs"
    # Clip bounds the infinities (to 0 and 6 here); the other activations keep some of them
    assert np.isinf(ref).any() != (act == "clip"), "the case plants inf outputs (bounded by Clip)"
    _check(y, ref, FLOAT16, f"NaN/inf {act}")


def test_tuner_times_both_depthwise_variants() -> None:
    """Without a tactic name the tuner times "depthwise" and "depthwise:tiled" and keeps the faster; level 0 times
    nothing and takes "depthwise" (the first candidate)."""
    y, ref, eng = _run(np.random.default_rng(14), FLOAT16, 3, 88, 17, 15, (3, 3), act="clip", beta=6.0,
                       tactic_name="")
    _check(y, ref, FLOAT16, "tuned")
    timings = dict(eng.layer_timings()[0])
    assert math.isfinite(timings["depthwise"]) and math.isfinite(timings[TILED]), timings
    finite = {k: v for k, v in timings.items() if math.isfinite(v)}
    assert eng.tactic_names()[0] == min(finite, key=finite.get)
    y0, ref0, eng0 = _run(np.random.default_rng(15), FLOAT16, 3, 88, 17, 13, (3, 3), tactic_name="", level=0)
    _check(y0, ref0, FLOAT16, "level 0")
    assert eng0.tactic_names()[0] == "depthwise" and eng0.layer_timings() == [[]]


def test_window_too_large_for_shared_memory_refuses_the_tiled_variant() -> None:
    """Dilation 8 over 64 channels: the smallest tile's window (17 x 20 pixels x 64 channels) exceeds 48 KiB, so
    the name "depthwise:tiled" names no candidate; the tuner picks another tactic and never times this one."""
    y, ref, eng = _run(np.random.default_rng(16), FLOAT16, 1, 64, 20, 22, (3, 3), pads=(0, 0, 0, 0),
                       dilations=(8, 8), act="relu")
    _check(y, ref, FLOAT16, "refused")
    assert eng.tactic_names()[0] != TILED
    assert TILED not in dict(eng.layer_timings()[0])
