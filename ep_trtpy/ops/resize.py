"""Resize (opsets 10, 11, 13, 18, 19): modes nearest and linear (n-linear over any number of axes), and its
deprecated form Upsample (opsets 7 and 9), which is Resize-10 with the scales as an attribute (7) or input (9).

Output size per axis: ``sizes`` when given (opset 18 ``keep_aspect_ratio_policy`` not_larger / not_smaller scales
every listed axis by the min / max of ``sizes / in`` and rounds half up), else ``floor(in * scale)`` computed in
float32 as onnxruntime does. The scale used by the coordinate transform is the given scale, or ``out / in`` when
sizes are given (the common ratio with a keep_aspect_ratio_policy). Opset 18 ``axes`` lists the axes the
scales/sizes refer to (the others are kept). align_corners uses the integer output length, as onnxruntime does
(the ONNX reference implementation uses ``in * scale`` when scales are given).

Coordinate transformation (``x`` output index, ``s`` scale, ``L`` / ``L'`` input / output length), in float32
like onnxruntime (half_pixel_symmetric: the offset in float32, the rest in float64, rounded to float32 once):

    half_pixel            (x + 0.5) / s - 0.5
    half_pixel_symmetric  L / 2 * (1 - L' / (s * L)) + (x + 0.5) / s - 0.5
    pytorch_half_pixel    (x + 0.5) / s - 0.5 if L' > 1 else 0
    align_corners         x * (L - 1) / (L' - 1)  (0 if L' == 1)
    asymmetric            x / s
    tf_half_pixel_for_nn  (x + 0.5) / s

Opset 10 is asymmetric, with nearest rounding down (up when downsampling) like onnxruntime's Upsample.

nearest: ``round_prefer_floor`` (default; ties down), ``round_prefer_ceil``, ``floor``, ``ceil``; the index is
clamped to [0, L - 1]. linear: the source coordinate is clamped to [0, L - 1] and the two neighbours are blended,
one axis after the other (float32 compute, one rounding at the end). Not supported (OpError): cubic,
tf_crop_and_resize, antialias=1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ep_trtpy.ops._common import fail, in_name, is_float, norm_axes, opset
from ep_trtpy.ops.registry import Info, infer, reference
from graph_partitioner.ir import FLOAT, Node, dtype_name

COORD_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
               "tf_half_pixel_for_nn")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _old(node: Node) -> bool:
    """Resize-10 semantics (inputs X, scales; asymmetric; opset 10's nearest rounding): Resize before opset 11
    and Upsample."""
    return node.op_type == "Upsample" or opset(node) < 11


def _operands(node: Node, vals: Sequence[np.ndarray | None]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(scales, sizes) from the node's inputs, by opset (10: X, scales; 11+: X, roi, scales, sizes)."""
    vals = list(vals) + [None] * 3
    if _old(node):
        return vals[0], None
    scales, sizes = vals[1], vals[2]
    if scales is not None and np.asarray(scales).size == 0:
        scales = None
    if sizes is not None and np.asarray(sizes).size == 0:
        sizes = None
    return scales, sizes


def _check_attrs(node: Node) -> tuple[str, str, str]:
    mode = node.attr("mode", "nearest")
    if mode not in ("nearest", "linear"):
        raise fail(node, f"mode={mode!r} is not supported (nearest and linear are)")
    coord = "asymmetric" if _old(node) else node.attr("coordinate_transformation_mode", "half_pixel")
    if coord not in COORD_MODES:
        raise fail(node, f"coordinate_transformation_mode={coord!r} is not supported")
    near = node.attr("nearest_mode", "round_prefer_floor")
    if near not in NEAREST_MODES:
        raise fail(node, f"nearest_mode={near!r} is not one of {', '.join(NEAREST_MODES)}")
    if int(node.attr("antialias", 0)):
        raise fail(node, "antialias=1 is not supported")
    return mode, coord, near


def resize_plan(node: Node, in_shape: Sequence[int], scales_v: np.ndarray | None, sizes_v: np.ndarray | None
                ) -> tuple[tuple[int, ...], list[float]]:
    """(output shape, per-axis float32 scale used by the coordinate transform)."""
    r = len(in_shape)
    axes_attr = node.attr("axes")
    axes = list(range(r)) if axes_attr is None else norm_axes(node, [int(a) for a in axes_attr], r)
    out = [int(d) for d in in_shape]
    scales = [1.0] * r
    if (scales_v is None) == (sizes_v is None):
        raise fail(node, "needs exactly one of scales and sizes")
    if scales_v is not None:
        sc = np.asarray(scales_v, dtype=np.float32).reshape(-1)
        if sc.size != len(axes):
            raise fail(node, f"scales {sc.tolist()} has {sc.size} entries; {len(axes)} expected")
        if np.any(sc <= 0):
            raise fail(node, f"scales {sc.tolist()} must be positive")
        for a, s in zip(axes, sc):
            out[a] = int(np.floor(np.float32(s) * np.float32(in_shape[a])))
            scales[a] = float(s)
        return tuple(out), scales
    sz = np.asarray(sizes_v).reshape(-1)
    if sz.size != len(axes) or sz.dtype.kind not in "iu":
        raise fail(node, f"sizes {sz.tolist()} must hold {len(axes)} integers")
    policy = node.attr("keep_aspect_ratio_policy", "stretch")
    if policy == "stretch":
        for a, s in zip(axes, sz):
            out[a] = int(s)
    elif policy in ("not_larger", "not_smaller"):
        ratios = [np.float32(s) / np.float32(in_shape[a]) for a, s in zip(axes, sz)]
        k = min(ratios) if policy == "not_larger" else max(ratios)
        for a in axes:
            out[a] = int(np.floor(np.float32(k) * np.float32(in_shape[a]) + np.float32(0.5)))
            scales[a] = float(k)
        return tuple(out), scales
    else:
        raise fail(node, f"keep_aspect_ratio_policy={policy!r} is not stretch, not_larger or not_smaller")
    for a in axes:
        if in_shape[a] == 0:
            raise fail(node, f"cannot resize axis {a} of size 0 to {out[a]}")
        scales[a] = float(np.float32(out[a]) / np.float32(in_shape[a]))
    return tuple(out), scales


def source_coords(coord: str, n_out: int, n_in: int, scale: float) -> np.ndarray:
    """Source coordinate (float32) of each output index along one axis."""
    x = np.arange(n_out, dtype=np.float32)
    s = np.float32(scale)
    half = np.float32(0.5)
    if coord == "half_pixel":
        return (x + half) / s - half
    if coord == "half_pixel_symmetric":  # the offset in float32, the rest in float64, rounded once
        adj = np.float32(n_out) / (s * np.float32(n_in))
        offset = np.float32(np.float32(n_in) / np.float32(2) * (np.float32(1) - adj))
        return (np.float64(offset) + (x.astype(np.float64) + 0.5) / np.float64(s) - 0.5).astype(np.float32)
    if coord == "pytorch_half_pixel":
        return (x + half) / s - half if n_out > 1 else np.zeros(n_out, np.float32)
    if coord == "align_corners":
        if n_out == 1:
            return np.zeros(1, np.float32)
        return x * np.float32(n_in - 1) / np.float32(n_out - 1)
    if coord == "asymmetric":
        return x / s
    if coord == "tf_half_pixel_for_nn":
        return (x + half) / s
    raise AssertionError(coord)


def nearest_index(near: str, src: np.ndarray, n_in: int, downsample: bool, old: bool) -> np.ndarray:
    if old:  # opset 10: truncate, or ceil when downsampling
        idx = np.ceil(src) if downsample else np.floor(src)
    elif near == "round_prefer_floor":
        idx = np.ceil(src - np.float32(0.5))
    elif near == "round_prefer_ceil":
        idx = np.floor(src + np.float32(0.5))
    elif near == "floor":
        idx = np.floor(src)
    else:
        idx = np.ceil(src)
    return np.clip(idx, 0, max(n_in - 1, 0)).astype(np.int64)


@reference("Resize")
def resize_ref(node: Node, x: np.ndarray, *operands: np.ndarray | None) -> np.ndarray:
    mode, coord, near = _check_attrs(node)
    scales_v, sizes_v = _operands(node, operands)
    out, scales = resize_plan(node, x.shape, scales_v, sizes_v)
    y = x if mode == "nearest" else x.astype(np.float64 if x.dtype == np.float64 else np.float32)
    for a in range(x.ndim):
        n_in, n_out = x.shape[a], out[a]
        if n_in == n_out and scales[a] == 1.0:
            continue
        if n_out == 0 or y.size == 0:
            shape = list(y.shape)
            shape[a] = n_out
            y = np.zeros(shape, y.dtype)
            continue
        src = source_coords(coord, n_out, n_in, scales[a])
        if mode == "nearest":
            y = np.take(y, nearest_index(near, src, n_in, scales[a] < 1.0, _old(node)), axis=a)
            continue
        src = np.clip(src, 0, n_in - 1)
        i0 = np.floor(src).astype(np.int64)
        i1 = np.minimum(i0 + 1, n_in - 1)
        w = (src - i0.astype(np.float32)).astype(y.dtype)
        wshape = [1] * y.ndim
        wshape[a] = n_out
        w = w.reshape(wshape)
        y = np.take(y, i0, axis=a) * (1 - w) + np.take(y, i1, axis=a) * w
    if x.dtype.kind in "iu" and y.dtype.kind == "f":
        y = np.rint(y)
    return np.ascontiguousarray(y.astype(x.dtype, copy=False))


@infer("Resize")
def resize_infer(node: Node, x: Info, *operands: Info | None) -> Info:
    mode, _, _ = _check_attrs(node)
    if mode == "linear" and not is_float(x.dtype):
        raise fail(node, f"{in_name(node, 0)} is {dtype_name(x.dtype)}; linear Resize needs a float type")
    first = 1 if _old(node) else 2  # index of the scales input
    vals: list[np.ndarray | None] = []
    for k, o in enumerate(operands):
        if o is None or (not _old(node) and k == 0):  # roi is only used by tf_crop_and_resize
            vals.append(None)
            continue
        if o.value is None and o.shape != (0,):
            what = "scales" if k + 1 == first else "sizes"
            raise fail(node, f"{what} ({in_name(node, k + 1)}) is not known at build time (it must be computable "
                             "from constants and input shapes)")
        vals.append(o.value if o.value is not None else np.zeros((0,), np.float32))
    scales_v, sizes_v = _operands(node, vals)
    out, _ = resize_plan(node, x.shape, scales_v, sizes_v)
    return Info(x.dtype, out)


def _upsample_scales(node: Node) -> np.ndarray:
    """Upsample-7's scales attribute (Upsample-9 takes them as input 1)."""
    scales = node.attr("scales")
    if scales is None:
        raise fail(node, "has neither a scales input nor a scales attribute")
    return np.asarray(scales, np.float32)


def _at_least_one(node: Node, scales: np.ndarray) -> np.ndarray:
    if np.any(np.asarray(scales) < 1):
        raise fail(node, f"scales {np.asarray(scales).tolist()} must all be >= 1 (Upsample only enlarges)")
    return scales


@reference("Upsample")
def upsample_ref(node: Node, x: np.ndarray, scales: np.ndarray | None = None) -> np.ndarray:
    return resize_ref(node, x, _at_least_one(node, _upsample_scales(node) if scales is None else scales))


@infer("Upsample")
def upsample_infer(node: Node, x: Info, scales: Info | None = None) -> Info:
    if scales is None:
        value = _upsample_scales(node)
        scales = Info(FLOAT, value.shape, value)
    if scales.value is not None:
        _at_least_one(node, scales.value)
    return resize_infer(node, x, scales)
