"""Reductions (ReduceSum ... ReduceLogSumExp) and ArgMax/ArgMin: reference and inference.

Reduce ops: ``y = R_{axes}(x)`` with

    ReduceSum  sum x          ReduceMean  sum x / n      ReduceMax / ReduceMin  max / min x
    ReduceProd prod x         ReduceL1    sum |x|        ReduceL2   sqrt(sum x^2)
    ReduceSumSquare  sum x^2  ReduceLogSumExp  m + log(sum exp(x - m)), m = max x (0 where m is -inf)

Axes come from input 1 when present (ReduceSum opset >= 13, all others opset >= 18) and otherwise from the
``axes`` attribute; no axes (absent or empty) means all axes, unless ``noop_with_empty_axes=1``: then nothing is
reduced and each element is its own set (the identity for Sum/Mean/Max/Min/Prod/LogSumExp, but |x| for L1/L2 and
x^2 for SumSquare, as onnxruntime computes it). ``keepdims`` (default 1) keeps reduced axes as 1. An empty
reduction gives the identity element (0 for sums, 1 for Prod, -inf / the type's minimum for Max, +inf / maximum
for Min, -inf for LogSumExp); an empty Mean gives 0 like onnxruntime (ONNX leaves it undefined). ReduceMax and
ReduceMin also take bool (opset 20: any / all).

float16 is accumulated in float32 and rounded once. Integer ReduceMean truncates toward zero; integer L1/L2/
SumSquare/LogSumExp are computed in float64 and truncated.

ArgMax / ArgMin: int64 index of the first (``select_last_index=0``) or last extreme along ``axis`` (default 0),
``keepdims`` (default 1).

NaN and infinities (README's "Numerics at the edges", shared with the GPU kernels): ReduceMax and ReduceMin give
NaN when the reduced set holds a NaN, and ArgMax and ArgMin point at the first NaN (the last with
``select_last_index=1``), as numpy and PyTorch do (ONNX Runtime's CPU provider keeps or points at a NaN only when
it comes first). The sums follow IEEE arithmetic (NaN in, NaN out; inf - inf is NaN);
ReduceLogSumExp gives +inf for a set holding +inf and -inf for a set of -inf only.
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.ops._common import as_ints, compute_np, fail, in_name, is_numeric, norm_axes, norm_axis, numel
from ep_trtpy.ops.registry import Info, infer, reference
from graph_partitioner.ir import BOOL, INT64, Node, dtype_name

REDUCE_OPS = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceSumSquare", "ReduceLogSumExp")


def reduce_axes(node: Node, rank: int, axes_value: np.ndarray | None) -> list[int]:
    """Sorted normalized axes to reduce; [] (each element reduced alone: the identity for Sum/Mean/Max/Min/Prod,
    |x| for L1 and L2, x^2 for SumSquare) when noop_with_empty_axes=1 and no axes are given."""
    if axes_value is not None:
        axes = as_ints(node, axes_value, f"axes {in_name(node, 1)}")
    else:
        a = node.attr("axes")
        axes = [] if a is None else [int(v) for v in a]
    if not axes:
        if int(node.attr("noop_with_empty_axes", 0)):
            return []
        return list(range(rank))
    return sorted(norm_axes(node, axes, rank))


def _reduced_shape(shape: tuple[int, ...], axes: list[int], keepdims: bool) -> tuple[int, ...]:
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _int_mean(s: np.ndarray, n: int) -> np.ndarray:
    q = np.abs(s) // n
    return np.where(s < 0, -q, q)


def _reduce(op: str, x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """The reduction in the compute type of x (float32 for float16 data, float64 for non-sum integer math)."""
    n = numel([x.shape[a] for a in axes])
    is_int = x.dtype.kind in "iub"
    with np.errstate(all="ignore"):
        if op == "ReduceSum":
            return np.sum(x, axis=axes, keepdims=keepdims, dtype=x.dtype if not x.dtype == np.bool_ else None)
        if op == "ReduceProd":
            return np.prod(x, axis=axes, keepdims=keepdims)
        if op == "ReduceMean":
            if is_int:
                return _int_mean(np.sum(x.astype(np.int64), axis=axes, keepdims=keepdims), max(n, 1))
            return np.sum(x, axis=axes, keepdims=keepdims) / x.dtype.type(n) if n else \
                np.zeros(_reduced_shape(x.shape, list(axes), keepdims), x.dtype)
        if op in ("ReduceMax", "ReduceMin"):
            if n == 0:
                if x.dtype.kind == "f":
                    fillv = -np.inf if op == "ReduceMax" else np.inf
                elif x.dtype == np.bool_:
                    fillv = op == "ReduceMin"
                else:
                    info = np.iinfo(x.dtype)
                    fillv = info.min if op == "ReduceMax" else info.max
                return np.full(_reduced_shape(x.shape, list(axes), keepdims), fillv, x.dtype)
            return (np.max if op == "ReduceMax" else np.min)(x, axis=axes, keepdims=keepdims)
        xf = x.astype(np.float64) if is_int else x
        if op == "ReduceL1":
            return np.sum(np.abs(xf), axis=axes, keepdims=keepdims)
        if op == "ReduceL2":
            return np.sqrt(np.sum(xf * xf, axis=axes, keepdims=keepdims))
        if op == "ReduceSumSquare":
            return np.sum(xf * xf, axis=axes, keepdims=keepdims)
        if op == "ReduceLogSumExp":
            if n == 0:
                return np.full(_reduced_shape(x.shape, list(axes), keepdims), -np.inf, xf.dtype)
            m = np.max(xf, axis=axes, keepdims=True)
            m = np.where(np.isfinite(m), m, 0).astype(xf.dtype)
            s = np.log(np.sum(np.exp(xf - m), axis=axes, keepdims=True)) + m
            return s if keepdims else np.squeeze(s, axis=axes)
    raise AssertionError(op)


@reference(*REDUCE_OPS)
def reduce_ref(node: Node, x: np.ndarray, axes: np.ndarray | None = None) -> np.ndarray:
    axes_l = reduce_axes(node, x.ndim, axes)
    keep = bool(int(node.attr("keepdims", 1)))
    y = _reduce(node.op_type, compute_np(x), tuple(axes_l), keep)
    y = np.asarray(y)
    if x.dtype.kind in "iu" and y.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            y = np.trunc(y)
    return np.asarray(y.astype(x.dtype)).reshape(_reduced_shape(x.shape, axes_l, keep))


@infer(*REDUCE_OPS)
def reduce_infer(node: Node, x: Info, axes: Info | None = None) -> Info:
    if x.dtype == BOOL and node.op_type not in ("ReduceMax", "ReduceMin"):  # bool Max/Min: opset 20
        raise fail(node, f"{in_name(node, 0)} is bool; {node.op_type} needs a numeric type")
    if axes is not None and axes.value is None:
        raise fail(node, f"axes {in_name(node, 1)} is not known at build time (it must be computable from "
                         "constants and input shapes)")
    axes_l = reduce_axes(node, len(x.shape), None if axes is None else axes.value)
    return Info(x.dtype, _reduced_shape(x.shape, axes_l, bool(int(node.attr("keepdims", 1)))))


def _arg_axis(node: Node, rank: int) -> int:
    return norm_axis(node, int(node.attr("axis", 0)), max(rank, 1))


@reference("ArgMax", "ArgMin")
def arg_ref(node: Node, x: np.ndarray) -> np.ndarray:
    axis = _arg_axis(node, x.ndim)
    keep = bool(int(node.attr("keepdims", 1)))
    last = bool(int(node.attr("select_last_index", 0)))
    if x.ndim == 0:
        x = x.reshape(1)
    if x.shape[axis] == 0:
        raise fail(node, f"cannot take {node.op_type} over axis {axis} of size 0 ({in_name(node, 0)})")
    fn = np.argmax if node.op_type == "ArgMax" else np.argmin
    xc = compute_np(x)
    if last:
        idx = x.shape[axis] - 1 - fn(np.flip(xc, axis=axis), axis=axis)
    else:
        idx = fn(xc, axis=axis)
    idx = idx.astype(np.int64)
    return np.expand_dims(idx, axis) if keep else idx


@infer("ArgMax", "ArgMin")
def arg_infer(node: Node, x: Info) -> Info:
    if x.dtype == BOOL or not is_numeric(x.dtype):
        raise fail(node, f"{in_name(node, 0)} is {dtype_name(x.dtype)}; {node.op_type} needs a numeric type")
    shape = x.shape if x.shape else (1,)
    axis = _arg_axis(node, len(x.shape))
    if shape[axis] == 0:
        raise fail(node, f"cannot take {node.op_type} over axis {axis} of size 0 ({in_name(node, 0)})")
    keep = bool(int(node.attr("keepdims", 1)))
    return Info(INT64, _reduced_shape(shape, [axis], keep))
