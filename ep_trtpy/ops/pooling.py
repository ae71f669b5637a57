"""Pooling: MaxPool, AveragePool (1-D/2-D/3-D) and GlobalAveragePool, GlobalMaxPool.

Window geometry (pads, auto_pad, strides, dilations, ceil_mode) is :mod:`ep_trtpy.ops._spatial`'s. For output
position ``o`` on an axis, the window reads input positions ``o * stride - pad_begin + j * dilation``, j < k. A
window larger than the padded input gives what ONNX Runtime's CPU provider gives: an empty output, or one window
holding what the input has (``_spatial.window_geometry``, ``pooling=True``).

MaxPool: ``Y = max`` over the window's positions inside the input (padding never wins). The optional second output
Indices (int64) is the flat index of the first maximum in the window's row-major order, into X viewed as
``[N, C, *spatial]`` row-major (``storage_order=0``) or with the spatial axes in column-major order
(``storage_order=1``); padding is not counted.

AveragePool: ``Y = sum / count`` where the sum is over positions inside the input and ``count`` is the number of
window positions inside the input (``count_include_pad=0``) or inside the padded input ``[-pad_begin, n +
pad_end)`` (``count_include_pad=1``); the part of a ceil_mode window beyond the end padding never counts.

GlobalAveragePool / GlobalMaxPool: mean / max over all spatial axes, kept as size 1.

NaN and infinities (the rule of README's "Numerics at the edges", shared with the GPU kernels): a NaN in a max
window makes that output NaN (numpy's max; ONNX Runtime's CPU provider keeps a NaN only when it comes first) and
Indices points at the first NaN; a max window with no position inside the input (only padding) gives -inf, the
maximum of nothing (ONNX Runtime's CPU provider gives -3.4e38), and an average window with none gives 0. An empty
spatial extent gives -inf (GlobalMaxPool) and 0 (GlobalAveragePool), as the Reduce ops do. Averages follow IEEE
arithmetic (a NaN or inf - inf in the window gives NaN).

float16 is computed in float32 (sums and means) and rounded once.
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.ops._common import compute_np, fail, in_name, is_numeric, need_float, numel
from ep_trtpy.ops._spatial import conv_params, overhang, pad_spatial, window_geometry, windows
from ep_trtpy.ops.registry import Info, infer, reference
from graph_partitioner.ir import INT64, Node, dtype_name


def pool_plan(node: Node, x_shape: tuple[int, ...]
              ) -> tuple[list[int], list[int], list[int], list[int], list[int], list[int]]:
    """(kernel, strides, dilations, pads_begin, pads_end, out_spatial) of a MaxPool/AveragePool node."""
    if len(x_shape) < 3:
        raise fail(node, f"{in_name(node, 0)} has shape {list(x_shape)}; {node.op_type} needs rank >= 3")
    n_sp = len(x_shape) - 2
    kernel, strides, dils = conv_params(node, n_sp)
    ceil_mode = bool(int(node.attr("ceil_mode", 0)))
    begin, end, out = window_geometry(node, x_shape[2:], kernel, strides, dils, ceil_mode, pooling=True)
    return kernel, strides, dils, begin, end, out


def _lowest(dtype: np.dtype) -> float | int:
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _padded_windows(node: Node, x: np.ndarray, fill: float | int) -> tuple[np.ndarray, list[int], list[int],
                                                                            list[int], list[int], list[int]]:
    """Window view [N, C, *out, K] of x padded with `fill` (pads plus any ceil_mode overhang)."""
    kernel, strides, dils, begin, end, out = pool_plan(node, x.shape)
    extra = overhang(x.shape[2:], begin, end, kernel, strides, dils, out)
    xp = pad_spatial(x, begin, [e + a for e, a in zip(end, extra)], fill)
    win = windows(xp, kernel, strides, dils, out)
    return win.reshape(*win.shape[:2 + len(out)], numel(kernel)), kernel, strides, dils, begin, out


@reference("MaxPool")
def max_pool_ref(node: Node, x: np.ndarray) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    xc = compute_np(x)
    win, kernel, strides, dils, begin, out = _padded_windows(node, xc, _lowest(xc.dtype))
    if win.shape[-1] == 0 or win.size == 0:
        return _maybe_indices(node, np.zeros(win.shape[:-1], x.dtype), np.zeros(win.shape[:-1], np.int64))
    m = win.max(axis=-1)
    if len(node.outputs) < 2:
        return m.astype(x.dtype)
    return m.astype(x.dtype), _max_indices(node, x.shape, win, m, kernel, strides, dils, begin, out)


def _maybe_indices(node: Node, y: np.ndarray, indices: np.ndarray) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    return y if len(node.outputs) < 2 else (y, indices)


def _inside(x_sp: tuple[int, ...], kernel: list[int], strides: list[int], dils: list[int], begin: list[int],
            out: list[int]) -> np.ndarray:
    """[*out, K] bool: which window positions lie inside the input (not padding)."""
    n_sp = len(kernel)
    inside = np.ones(tuple(out) + tuple(kernel), bool)
    for i in range(n_sp):
        pos = (np.arange(out[i]).reshape(-1, 1) * strides[i] - begin[i] +
               np.arange(kernel[i]).reshape(1, -1) * dils[i])
        ok = (pos >= 0) & (pos < x_sp[i])
        shape = [1] * (2 * n_sp)
        shape[i], shape[n_sp + i] = out[i], kernel[i]
        inside &= ok.reshape(shape)
    return inside.reshape(tuple(out) + (numel(kernel),))


def _max_indices(node: Node, x_shape: tuple[int, ...], win: np.ndarray, m: np.ndarray, kernel: list[int],
                 strides: list[int], dils: list[int], begin: list[int], out: list[int]) -> np.ndarray:
    n_sp = len(kernel)
    with np.errstate(invalid="ignore"):
        hit = (win == m[..., None]) | (np.isnan(win) & np.isnan(m)[..., None])
    hit &= _inside(x_shape[2:], kernel, strides, dils, begin, out)  # a -inf maximum is not a -inf pad
    j = np.argmax(hit, axis=-1)  # [N, C, *out] flat kernel offset of the first maximum (or first NaN)
    offs = np.unravel_index(j, kernel)
    sp = x_shape[2:]
    column_major = int(node.attr("storage_order", 0)) == 1
    flat = np.zeros(j.shape, np.int64)
    mult = 1
    order = range(n_sp) if column_major else reversed(range(n_sp))
    for i in order:
        o = np.arange(out[i]).reshape((1, 1) + tuple(-1 if a == i else 1 for a in range(n_sp)))
        pos = o * strides[i] - begin[i] + offs[i] * dils[i]
        flat += pos.astype(np.int64) * mult
        mult *= sp[i]
    n, c = x_shape[:2]
    plane = numel(sp)
    nc = (np.arange(n).reshape(-1, 1) * c + np.arange(c).reshape(1, -1)).reshape((n, c) + (1,) * n_sp)
    return flat + nc.astype(np.int64) * plane


@infer("MaxPool")
def max_pool_infer(node: Node, x: Info) -> Info | list[Info]:
    if not is_numeric(x.dtype):
        raise fail(node, f"{in_name(node, 0)} is {dtype_name(x.dtype)}; MaxPool needs a numeric type")
    *_, out = pool_plan(node, x.shape)
    y = Info(x.dtype, (x.shape[0], x.shape[1], *out))
    if len(node.outputs) < 2:
        return y
    return [y, Info(INT64, y.shape)]


def _counts(in_sp: tuple[int, ...], kernel: list[int], strides: list[int], dils: list[int], begin: list[int],
            end: list[int], out: list[int], include_pad: bool) -> np.ndarray:
    """Per output position, how many window positions count (a product of per-axis counts)."""
    total = np.ones((1,) * len(out), np.float64)
    for i in range(len(out)):
        o = np.arange(out[i]).reshape(-1, 1)
        pos = o * strides[i] - begin[i] + np.arange(kernel[i]).reshape(1, -1) * dils[i]
        lo, hi = (-begin[i], in_sp[i] + end[i]) if include_pad else (0, in_sp[i])
        cnt = ((pos >= lo) & (pos < hi)).sum(axis=1).astype(np.float64)
        total = total * cnt.reshape(tuple(-1 if a == i else 1 for a in range(len(out))))
    return total


@reference("AveragePool")
def average_pool_ref(node: Node, x: np.ndarray) -> np.ndarray:
    xc = x.astype(np.float32) if x.dtype != np.float64 else x
    kernel, strides, dils, begin, end, out = pool_plan(node, x.shape)
    win, *_ = _padded_windows(node, xc, 0)
    s = win.sum(axis=-1) if win.size else np.zeros(win.shape[:-1], xc.dtype)
    cnt = _counts(x.shape[2:], kernel, strides, dils, begin, end, out,
                  bool(int(node.attr("count_include_pad", 0))))
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.where(cnt > 0, s / np.maximum(cnt, 1).astype(xc.dtype), 0)  # a window of padding only: 0
    return y.astype(x.dtype)


@infer("AveragePool")
def average_pool_infer(node: Node, x: Info) -> Info:
    need_float(node, x)
    *_, out = pool_plan(node, x.shape)
    return Info(x.dtype, (x.shape[0], x.shape[1], *out))


@reference("GlobalAveragePool", "GlobalMaxPool")
def global_pool_ref(node: Node, x: np.ndarray) -> np.ndarray:
    axes = tuple(range(2, x.ndim))
    xc = compute_np(x)
    if x.size == 0:  # the mean and max of nothing: 0 and -inf, as ReduceMean and ReduceMax give
        fill = 0.0 if node.op_type == "GlobalAveragePool" else -np.inf
        return np.full(_global_shape(x.shape), fill, x.dtype)
    if node.op_type == "GlobalAveragePool":
        y = np.mean(xc, axis=axes, keepdims=True)
    else:
        y = np.max(xc, axis=axes, keepdims=True)
    return y.astype(x.dtype)


def _global_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(shape[:2]) + (1,) * (len(shape) - 2)


@infer("GlobalAveragePool", "GlobalMaxPool")
def global_pool_infer(node: Node, x: Info) -> Info:
    need_float(node, x)
    if len(x.shape) < 3:
        raise fail(node, f"{in_name(node, 0)} has shape {list(x.shape)}; {node.op_type} needs rank >= 3")
    return Info(x.dtype, _global_shape(x.shape))
