"""The cases of README's "Numerics at the edges" (NaN, +-inf, windows larger than the input, empty reductions),
shared by the reference backend's test (tests/ep_trtpy/ops/test_ops_numerics.py) and the GPU kernels' test
(tests/cuda_kernels/test_numerics_gpu.py), so that both backends are held to one rule.

Each expected output is computed here from the written rule, with plain loops or numpy's NaN-propagating max/min
in float64, never by ep_trtpy's reference. ``ort`` says what ONNX Runtime's CPU provider gives for the case:
"same" (the reference test compares it too), "differs" (the rule departs from it on purpose, and the test checks
that it still does, so that the README's table stays true), "refuses" (ORT raises) or "" (an internal op ORT does
not know). Inputs are
float32 unless the case factory is given another float dtype; 16-bit cases compute the rule on the rounded inputs
and round the result once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

NAN, INF = np.nan, np.inf


@dataclass
class Arg:
    """A node input: a run-time input, or a constant (initializer) when const=True."""

    name: str
    array: np.ndarray
    const: bool = False


@dataclass
class NumCase:
    id: str
    op: str  # the registry key: "MaxPool", "ep_trtpy::Pool", ...
    inputs: list[Arg | None]
    expected: list[np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)
    opset: int = 18
    ort: str = "same"
    kernels: tuple[str, ...] | None = None  # what lowering must emit (guards against a case folded away)
    rtol: float = 1e-5
    atol: float = 1e-6

    @property
    def domain(self) -> str:
        return self.op.split("::")[0] if "::" in self.op else ""

    @property
    def op_type(self) -> str:
        return self.op.split("::")[-1]

    def __repr__(self) -> str:
        return self.id


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _round(x: np.ndarray, dtype: type) -> np.ndarray:
    return np.asarray(x, np.float64).astype(dtype)


def _out(y: np.ndarray, dtype: type) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(y).astype(dtype)


def plant(x: np.ndarray, spots: dict[tuple[int, ...], float]) -> np.ndarray:
    x = x.copy()
    for idx, v in spots.items():
        x[idx] = v
    return x


# ----------------------------------------------------------------------------------------------- the rules --

def max_rule(x: np.ndarray, axes: tuple[int, ...], select_min: bool = False) -> np.ndarray:
    """Max (min) over axes, keepdims: NaN if the set holds a NaN; -inf (+inf) for an empty set."""
    fn = np.min if select_min else np.max
    return fn(x.astype(np.float64), axis=axes, keepdims=True, initial=INF if select_min else -INF)


def arg_rule(x: np.ndarray, axis: int, select_min: bool, last: bool) -> np.ndarray:
    """Index of the first (last) NaN along axis, else of the first (last) extreme; keepdims."""
    def one(row: np.ndarray) -> int:
        order = range(len(row) - 1, -1, -1) if last else range(len(row))
        nans = [i for i in order if row[i] != row[i]]
        if nans:
            return nans[0]
        best = min(row) if select_min else max(row)
        return next(i for i in order if row[i] == best)
    return np.expand_dims(np.apply_along_axis(one, axis, x.astype(np.float64)), axis).astype(np.int64)


def softmax_rule(x: np.ndarray, axis: int, log: bool) -> np.ndarray:
    """Softmax (LogSoftmax) along axis; a row whose maximum is not finite (a NaN, a +inf, or -inf only) is NaN."""
    xm = np.moveaxis(x.astype(np.float64), axis, -1)
    out = np.empty_like(xm)
    for idx in np.ndindex(*xm.shape[:-1]):
        row = xm[idx]
        if np.isnan(row).any() or not np.isfinite(row.max()):
            out[idx] = NAN
            continue
        m = row.max()
        with np.errstate(divide="ignore"):
            z = row - m
            s = np.exp(z).sum()
            out[idx] = z - np.log(s) if log else np.exp(z) / s
    return np.moveaxis(out, -1, axis)


def pool_out(n: int, k: int, s: int, d: int, b: int, a: int, ceil: bool) -> int:
    """Output size of one pooled axis as ONNX Runtime's CPU provider computes it (division toward zero)."""
    span = n + b + a - ((k - 1) * d + 1)
    q = -(-span // s) if (ceil or span < 0) else span // s
    o = q + 1
    if ceil and (o - 1) * s >= n + b:
        o -= 1
    return o


def pool_rule(x: np.ndarray, mode: str, kernel: list[int], strides: list[int], pads: list[int],
              dilations: list[int], ceil: bool = False, count_include_pad: bool = False) -> np.ndarray:
    """MaxPool / AveragePool on [N, C, *spatial] by loops: max of the positions inside the input (NaN if one is
    NaN, -inf if there are none), average = sum / count (0 for no position; count_include_pad counts the positions
    inside the padded input, never a ceil_mode overhang)."""
    sp = x.shape[2:]
    r = len(sp)
    outs = [pool_out(sp[i], kernel[i], strides[i], dilations[i], pads[i], pads[r + i], ceil) for i in range(r)]
    y = np.zeros(x.shape[:2] + tuple(outs))
    xd = x.astype(np.float64)
    for o in np.ndindex(*outs):
        axes_pos = [[o[i] * strides[i] - pads[i] + j * dilations[i] for j in range(kernel[i])] for i in range(r)]
        inside = [p for p in itertools.product(*axes_pos) if all(0 <= p[i] < sp[i] for i in range(r))]
        padded = [p for p in itertools.product(*axes_pos) if all(-pads[i] <= p[i] < sp[i] + pads[r + i]
                                                                 for i in range(r))]
        vals = np.array([xd[(slice(None), slice(None)) + p] for p in inside]).reshape(len(inside), *x.shape[:2])
        if mode == "max":
            y[(slice(None), slice(None)) + o] = vals.max(axis=0, initial=-INF)
        else:
            cnt = len(padded) if count_include_pad else len(inside)
            y[(slice(None), slice(None)) + o] = vals.sum(axis=0) / cnt if cnt else 0.0
    return y


def layernorm_rule(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    xd = x.astype(np.float64)
    with np.errstate(invalid="ignore"):
        mean = xd.mean(axis=-1, keepdims=True)
        var = ((xd - mean) ** 2).mean(axis=-1, keepdims=True)
        return (xd - mean) / np.sqrt(var + eps) * scale + bias


def attention_rule(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray, h: int, scale: float) -> np.ndarray:
    """[B, S, H*D] projections: softmax rows by softmax_rule, except a row of -inf only, which gives zeros."""
    b, sq, _ = q.shape
    heads = [a.astype(np.float64).reshape(b, a.shape[1], h, -1).transpose(0, 2, 1, 3) for a in (q, k, v)]
    with np.errstate(invalid="ignore"):
        s = scale * heads[0] @ heads[1].transpose(0, 1, 3, 2) + mask.astype(np.float64)
    p = softmax_rule(s, -1, False)
    p[np.all(s == -INF, axis=-1)] = 0.0
    with np.errstate(invalid="ignore"):
        o = p @ heads[2]
    return o.transpose(0, 2, 1, 3).reshape(b, sq, -1)


# ------------------------------------------------------------------------------------------------- the cases --

def _axes(*a: int) -> Arg:
    return Arg("axes", np.array(a, np.int64), const=True)


def _rows(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Rows: a NaN first, a NaN in the middle, a NaN last, all NaN, +inf and -inf, -inf only, plain."""
    r = shape[1]
    x = _rng(seed).uniform(-3, 3, shape)
    spots = {(0, 0): NAN, (1, r // 2): NAN, (2, r - 1): NAN, (4, 1): INF, (4, 2): -INF}
    x = plant(x, spots)
    x[3] = NAN
    x[5] = -INF
    return x


def reduce_cases(dtype: type = np.float32) -> list[NumCase]:
    cases = []
    for name, shape, axis in (("rows", (7, 40), 1), ("long-rows", (7, 3000), 1), ("columns", (7, 40), 0)):
        x = _rows(shape, 1)
        if axis == 0:  # the same rows as columns of a [40, 7, 33] tensor, reduced over its first axis
            x = np.repeat(x.T[:, :, None], 33, axis=2)
        x = _round(x, dtype)
        for op in ("ReduceMax", "ReduceMin"):
            want = _out(max_rule(x, (axis,), op == "ReduceMin"), dtype)
            cases.append(NumCase(f"{op}-nan-{name}-{np.dtype(dtype).name}", op, [Arg("x", x), _axes(axis)], [want],
                                 {"keepdims": 1}, ort="differs", kernels=("reduce",)))
    x = _round(plant(_rng(2).uniform(-3, 3, (5, 33)), {(0, 4): NAN, (1, 7): INF, (3, 0): -INF}), dtype)
    x[2] = -INF
    xd = x.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        want = np.log(np.exp(xd).sum(axis=1, keepdims=True))
    cases.append(NumCase(f"ReduceLogSumExp-nan-inf-{np.dtype(dtype).name}", "ReduceLogSumExp",
                         [Arg("x", x), _axes(1)], [_out(want, dtype)], {"keepdims": 1}, kernels=("reduce",),
                         rtol=1e-3 if dtype != np.float32 else 1e-5, atol=1e-3 if dtype != np.float32 else 1e-5))
    e = np.zeros((3, 0, 4), dtype)
    for op, value in (("ReduceMean", 0.0), ("ReduceSum", 0.0), ("ReduceMax", -INF), ("ReduceMin", INF)):
        cases.append(NumCase(f"{op}-empty-axis-{np.dtype(dtype).name}", op, [Arg("x", e), _axes(1)],
                             [np.full((3, 1, 4), value, dtype)], {"keepdims": 1}, kernels=("reduce",)))
    return cases


def arg_cases(dtype: type = np.float32) -> list[NumCase]:
    cases = []
    x = _rng(3).integers(-3, 4, (6, 40)).astype(np.float64)  # small integers: ties
    x = plant(x, {(0, 0): NAN, (1, 17): NAN, (1, 30): NAN, (2, 39): NAN, (3, 5): INF, (4, 9): -INF})
    x[5] = NAN
    x = _round(x, dtype)
    for op, last, (name, arr, axis) in itertools.product(("ArgMax", "ArgMin"), (0, 1),
                                                          (("rows", x, 1), ("columns", np.ascontiguousarray(x.T), 0))):
        want = arg_rule(arr, axis, op == "ArgMin", bool(last))
        cases.append(NumCase(f"{op}-nan-{name}-last{last}-{np.dtype(dtype).name}", op, [Arg("x", arr)], [want],
                             {"axis": axis, "keepdims": 1, "select_last_index": last}, ort="differs",
                             kernels=(op.lower(),)))
    return cases


def _nan_image(shape: tuple[int, ...], seed: int) -> np.ndarray:
    x = _rng(seed).uniform(-3, 3, shape)
    n, c, h, w = shape
    x[0, 0, 0, 0] = NAN          # first in its windows
    x[0, 0, 2, 3] = NAN          # inside
    x[0, 1, h - 2:, w - 2:] = NAN  # a block: windows of NaN only
    x[n - 1, c - 1, 1, 1] = INF
    x[n - 1, c - 1, 3, 4] = -INF
    return x


def pool_cases(dtype: type = np.float32) -> list[NumCase]:
    dt = np.dtype(dtype).name
    cases = []
    x = _round(_nan_image((2, 3, 7, 6), 4), dtype)
    geo = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    for op, mode, ort in (("MaxPool", "max", "differs"), ("AveragePool", "average", "same")):
        want = pool_rule(x, mode, [3, 3], [2, 2], [1, 1, 1, 1], [1, 1])
        cases.append(NumCase(f"{op}-nan-inf-{dt}", op, [Arg("x", x)], [_out(want, dtype)], dict(geo), opset=19,
                             ort=ort, kernels=("pool",), rtol=1e-5 if dtype == np.float32 else 2e-3, atol=1e-5))
    want = max_rule(x, (2, 3))
    cases.append(NumCase(f"GlobalMaxPool-nan-{dt}", "GlobalMaxPool", [Arg("x", x)], [_out(want, dtype)],
                         ort="differs", kernels=("reduce",)))
    e = np.zeros((2, 3, 0, 4), dtype)  # global pools of nothing: -inf and 0, as ReduceMax and ReduceMean
    for op, value in (("GlobalMaxPool", -INF), ("GlobalAveragePool", 0.0)):
        cases.append(NumCase(f"{op}-empty-spatial-{dt}", op, [Arg("x", e)], [np.full((2, 3, 1, 1), value, dtype)],
                             ort="refuses", kernels=("reduce",)))
    # windows of padding only (dilation 3 steps over the single element): max -inf (ORT: -3.4e38), average 0
    one = _round(np.array([[[2.5]]]), dtype)
    pad_only = {"kernel_shape": [2], "strides": [2], "dilations": [3], "pads": [1, 1]}
    for op, mode, ort in (("MaxPool", "max", "differs"), ("AveragePool", "average", "same")):
        want = pool_rule(one, mode, [2], [2], [1, 1], [3])
        cases.append(NumCase(f"{op}-padding-only-window-{dt}", op, [Arg("x", one)], [_out(want, dtype)],
                             dict(pad_only), opset=19, ort=ort, kernels=("pool",)))
    # windows larger than the input: an empty output, or one window holding what the input has (as ORT)
    small = _round(np.array([[[[1.5]]], [[[NAN]]]]), dtype)  # [2, 1, 1, 1]
    for op, mode in (("MaxPool", "max"), ("AveragePool", "average")):
        for name, kernel, strides, ceil, cip in (("empty", [2, 2], [1, 1], 0, 0), ("empty-ceil", [2, 2], [1, 1], 1, 0),
                                                  ("one-window", [2, 2], [2, 2], 0, 0),
                                                  ("one-window-count-pad", [2, 3], [2, 3], 0, 1)):
            if mode == "max" and cip:
                continue
            attrs: dict[str, Any] = {"kernel_shape": kernel, "strides": strides, "ceil_mode": ceil}
            if cip:
                attrs["count_include_pad"] = 1
            want = pool_rule(small, mode, kernel, strides, [0, 0, 0, 0], [1, 1], bool(ceil), bool(cip))
            ort = "differs" if mode == "max" and want.size else "same"  # ORT drops the NaN of the second image
            cases.append(NumCase(f"{op}-window-larger-than-input-{name}-{dt}", op, [Arg("x", small)],
                                 [_out(want, dtype)], attrs, opset=19, ort=ort,
                                 kernels=("pool",) if want.size else None))
    return cases


def elementwise_cases(dtype: type = np.float32) -> list[NumCase]:
    dt = np.dtype(dtype).name
    a = _round(np.array([NAN, 1.0, NAN, INF, -INF, -2.0, 0.5, -0.0]), dtype)
    b = _round(np.array([2.0, NAN, NAN, 1.0, 3.0, -INF, INF, 0.0]), dtype)
    ad, bd = a.astype(np.float64), b.astype(np.float64)
    lo, hi = _round(np.array(-1.0), dtype), _round(np.array(1.0), dtype)
    with np.errstate(invalid="ignore"):
        hs = ad * np.minimum(np.maximum(ad / 6 + 0.5, 0), 1)
    cases = [
        NumCase(f"Max-nan-{dt}", "Max", [Arg("a", a), Arg("b", b)], [_out(np.maximum(ad, bd), dtype)]),
        NumCase(f"Min-nan-{dt}", "Min", [Arg("a", a), Arg("b", b)], [_out(np.minimum(ad, bd), dtype)]),
        NumCase(f"Relu-nan-{dt}", "Relu", [Arg("a", a)], [_out(np.maximum(ad, 0), dtype)]),
        NumCase(f"Clip-nan-{dt}", "Clip", [Arg("a", a), Arg("lo", lo, True), Arg("hi", hi, True)],
                [_out(np.minimum(np.maximum(ad, -1), 1), dtype)]),
        NumCase(f"Clip-runtime-bounds-nan-{dt}", "Clip", [Arg("a", a), Arg("lo", lo), Arg("hi", hi)],
                [_out(np.minimum(np.maximum(ad, -1), 1), dtype)]),
        NumCase(f"HardSwish-nan-inf-{dt}", "HardSwish", [Arg("a", a)], [_out(hs, dtype)]),
        NumCase(f"ThresholdedRelu-nan-{dt}", "ThresholdedRelu", [Arg("a", a)],
                [_out(np.where(ad > 1.0, ad, 0.0), dtype)]),
    ]
    for c in cases:
        c.kernels = ("pointwise",)
    return cases


def _softmax_rows(r: int, seed: int) -> np.ndarray:
    """Rows: NaN, +inf, two +inf, -inf entries, -inf only, +inf with -inf, plain, NaN with -inf."""
    x = _rng(seed).uniform(-5, 5, (8, r))
    x = plant(x, {(0, r // 3): NAN, (1, r - 1): INF, (2, 0): INF, (2, r // 2): INF, (3, 1): -INF, (3, r - 2): -INF,
                  (5, 0): INF, (5, 1): -INF, (7, 2): NAN, (7, 3): -INF})
    x[4] = -INF
    return x


def softmax_cases(dtype: type = np.float32) -> list[NumCase]:
    dt = np.dtype(dtype).name
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 3e-3, "atol": 5e-3}
    cases = []
    for op in ("Softmax", "LogSoftmax"):
        for name, x, axis in (("rows", _softmax_rows(37, 5), 1), ("long-rows", _softmax_rows(3000, 6), 1),
                              ("columns", np.ascontiguousarray(_softmax_rows(37, 7).T[:, :, None].repeat(3, 2)), 0)):
            x = _round(x, dtype)
            want = softmax_rule(x, axis, op == "LogSoftmax")
            cases.append(NumCase(f"{op}-nan-inf-{name}-{dt}", op, [Arg("x", x)], [_out(want, dtype)],
                                 {"axis": axis}, opset=13, kernels=("softmax",), **tol))
    x = _round(plant(_rng(8).uniform(-2, 2, (4, 64)), {(0, 5): NAN, (1, 9): INF, (2, 63): -INF}), dtype)
    scale = _round(_rng(9).uniform(0.5, 1.5, 64), dtype)
    bias = _round(_rng(10).uniform(-1, 1, 64), dtype)
    want = layernorm_rule(x, scale.astype(np.float64), bias.astype(np.float64), 1e-5)
    cases.append(NumCase(f"LayerNormalization-nan-inf-{dt}", "LayerNormalization",
                         [Arg("x", x), Arg("scale", scale, True), Arg("bias", bias, True)], [_out(want, dtype)],
                         {"axis": -1, "epsilon": 1e-5}, opset=17, kernels=("layernorm",),
                         rtol=1e-4 if dtype == np.float32 else 5e-3, atol=1e-4 if dtype == np.float32 else 5e-3))
    return cases


def internal_cases(dtype: type = np.float32) -> list[NumCase]:
    """ep_trtpy::Pool (channels-last), ep_trtpy::Attention and the activations of FusedConv / FusedMatMul (their
    float32 tolerances admit TF32 products, which engines use by default)."""
    dt = np.dtype(dtype).name
    cases = []
    x = _round(_nan_image((2, 8, 7, 6), 11), dtype)
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    for mode, kernel, strides, pads, ceil, cip in (("max", [3, 3], [2, 2], [1, 1, 1, 1], 0, 0),
                                                    ("average", [3, 3], [2, 2], [1, 1, 1, 1], 1, 1),
                                                    ("max", [2, 2], [3, 3], [1, 1, 1, 1], 0, 0)):
        want = pool_rule(x, mode, kernel, strides, pads, [1, 1], bool(ceil), bool(cip)).transpose(0, 2, 3, 1)
        attrs = {"mode": mode, "kernel_shape": kernel, "strides": strides, "pads": pads, "dilations": [1, 1],
                 "ceil_mode": ceil, "count_include_pad": cip, "channels_last": 1}
        cases.append(NumCase(f"Pool-nhwc-{mode}-k{kernel[0]}s{strides[0]}-ceil{ceil}-{dt}", "ep_trtpy::Pool",
                             [Arg("x", nhwc)], [_out(want, dtype)], attrs, ort="", kernels=("pool_nhwc",),
                             rtol=1e-5 if dtype == np.float32 else 2e-3, atol=1e-5))
    b, s, h, d = 2, 6, 2, 8
    rng = _rng(12)
    q, k, v = (_round(rng.uniform(-1, 1, (b, s, h * d)), dtype) for _ in range(3))
    q[0, 1, :d] = NAN  # query 1 of head 0: a NaN row
    mask = _round(rng.uniform(-1, 0, (b, 1, s, s)), dtype)
    mask[0, 0, 2, 3] = INF   # a +inf logit: NaN rows (both heads share the mask)
    mask[1, 0, 4, :] = -INF  # a fully masked query: zeros
    mask[1, 0, 5, :3] = -INF
    want = attention_rule(q, k, v, mask, h, 0.25)
    cases.append(NumCase(f"Attention-nan-inf-masked-{dt}", "ep_trtpy::Attention",
                         [Arg("q", q), Arg("k", k), Arg("v", v), Arg("mask", mask)], [_out(want, dtype)],
                         {"num_heads": h, "scale": 0.25}, ort="", kernels=("attention",),
                         rtol=3e-3 if dtype == np.float32 else 2e-2, atol=3e-3 if dtype == np.float32 else 2e-2))
    xc = _round(plant(rng.uniform(-1, 1, (1, 4, 5, 5)), {(0, 0, 2, 2): NAN, (0, 2, 0, 0): INF}), dtype)
    w = _round(rng.uniform(-0.5, 0.5, (4, 1, 3, 3)), dtype)  # depthwise: a NaN reaches only its own channel
    bias = _round(rng.uniform(-0.2, 0.2, 4), dtype)  # with a bias, cuDNN fuses the NCHW ReLU itself
    for act, alpha, beta, fn in (("Relu", 0.0, 0.0, lambda y: np.maximum(y, 0)),
                                 ("Clip", -0.5, 0.5, lambda y: np.minimum(np.maximum(y, -0.5), 0.5))):
        conv = _depthwise(xc.astype(np.float64), w.astype(np.float64)) + bias.astype(np.float64).reshape(1, 4, 1, 1)
        with np.errstate(invalid="ignore"):
            want = fn(conv)
        for layout in ("nchw", "nhwc"):  # NCHW: cuDNN's fused activation; NHWC depthwise: our kernel
            attrs = {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1],
                     "group": 4, "activation": act, "act_alpha": alpha, "act_beta": beta,
                     "channels_last": int(layout == "nhwc")}
            ins, y = [Arg("x", xc), Arg("w", w, True), Arg("b", bias, True)], want
            if layout == "nhwc":
                ins = [Arg("x", np.ascontiguousarray(xc.transpose(0, 2, 3, 1))),
                       Arg("w", np.ascontiguousarray(w.transpose(0, 2, 3, 1)), True), Arg("b", bias, True)]
                y = want.transpose(0, 2, 3, 1)
            cases.append(NumCase(f"FusedConv-{layout}-{act}-nan-{dt}", "ep_trtpy::FusedConv", ins, [_out(y, dtype)],
                                 attrs, ort="", kernels=("conv",), rtol=3e-3 if dtype == np.float32 else 5e-3,
                                 atol=3e-3 if dtype == np.float32 else 5e-3))
    a = _round(plant(rng.uniform(-1, 1, (8, 16)), {(1, 3): NAN, (2, 0): INF}), dtype)
    bm = _round(rng.uniform(-1, 1, (16, 8)), dtype)
    with np.errstate(invalid="ignore"):
        want = np.maximum(a.astype(np.float64) @ bm.astype(np.float64), 0)
    cases.append(NumCase(f"FusedMatMul-Relu-nan-{dt}", "ep_trtpy::FusedMatMul", [Arg("a", a), Arg("b", bm, True)],
                         [_out(want, dtype)], {"activation": "Relu"}, ort="", kernels=("gemm",),
                         rtol=1e-3 if dtype == np.float32 else 5e-3, atol=1e-3 if dtype == np.float32 else 5e-3))
    rbias = _round(rng.uniform(-0.2, 0.2, (8, 1)), dtype)  # a bias per row: our epilogue kernel applies the Relu
    with np.errstate(invalid="ignore"):
        want = np.maximum(a.astype(np.float64) @ bm.astype(np.float64) + rbias.astype(np.float64), 0)
    cases.append(NumCase(f"FusedMatMul-Relu-rowbias-nan-{dt}", "ep_trtpy::FusedMatMul",
                         [Arg("a", a), Arg("b", bm, True), Arg("bias", rbias, True)], [_out(want, dtype)],
                         {"activation": "Relu"}, ort="", kernels=("gemm",),
                         rtol=1e-3 if dtype == np.float32 else 5e-3, atol=1e-3 if dtype == np.float32 else 5e-3))
    return cases


def _depthwise(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """3x3 depthwise convolution, pads 1, stride 1, in float64 with NaN * 0 kept (loops, no BLAS)."""
    n, c, hh, ww = x.shape
    xp = np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)])
    y = np.zeros(x.shape)
    with np.errstate(invalid="ignore"):
        for r in range(3):
            for s in range(3):
                y += xp[:, :, r:r + hh, s:s + ww] * w[:, 0, r, s].reshape(1, c, 1, 1)
    return y


FACTORIES: list[Callable[..., list[NumCase]]] = [reduce_cases, arg_cases, pool_cases, elementwise_cases,
                                                  softmax_cases]


def onnx_cases(dtype: type = np.float32) -> list[NumCase]:
    """Every case of a standard ONNX op."""
    return [c for f in FACTORIES for c in f(dtype)]
