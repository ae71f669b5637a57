"""Lowering of reductions: ReduceSum/Mean/Max/Min/Prod/L1/L2/SumSquare/LogSumExp, ArgMax, ArgMin (kernels in
cuda_kernels/runtime/kernels_reduce.cpp; GlobalAveragePool and GlobalMaxPool use ``reduce`` from pooling.py)::

    reduce          inputs [X] outputs [Y]   ints [op, outer, R, inner]
                    X read as [outer, R, inner], Y = [outer, inner]; op: 0 sum, 1 mean, 2 max, 3 min, 4 prod, 5 l1,
                    6 l2, 7 sumsquare, 8 logsumexp (int32/int64 data: sum, max, min, prod)
    argmax, argmin  inputs [X] outputs [Y int64]   ints [select_last, outer, R, inner]

The reduced axes (after dropping extent-1 dims) must be adjacent for the [outer, R, inner] form; otherwise the
input is first transposed into a temporary with the kept axes in front and the reduced ones last (R innermost,
which is the kernel's fastest case). Empty axes reduce everything unless noop_with_empty_axes, which reduces
nothing (R = 1: the element-wise transform of L1/L2/SumSquare/LogSumExp still applies, as in the ONNX reference).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ep_trtpy.builder.lowering import LowerCtx, LoweringError, lowering
from ep_trtpy.builder.lowering._util import (
    FLOATS,
    check_dtype,
    check_out_shape,
    const_input,
    foldable,
    ints_of,
    normalize_axis,
    numel,
    shape_of,
)
from ep_trtpy.builder.lowering.movement import emit_transpose
from graph_partitioner.ir import FLOAT, FLOAT16, INT32, INT64, Node

REDUCE_OPS = {"ReduceSum": 0, "ReduceMean": 1, "ReduceMax": 2, "ReduceMin": 3, "ReduceProd": 4, "ReduceL1": 5,
              "ReduceL2": 6, "ReduceSumSquare": 7, "ReduceLogSumExp": 8}
INT_OK = {"ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"}
_NUMPY = {"ReduceSum": np.sum, "ReduceMean": np.mean, "ReduceMax": np.max, "ReduceMin": np.min,
          "ReduceProd": np.prod}


def reduced_layout(shape: Sequence[int], axes: Sequence[int]) -> tuple[list[int] | None, int, int, int]:
    """(perm or None, outer, R, inner): perm (when not None) moves the kept axes in front and the reduced ones last,
    after which outer = prod(kept), R = prod(reduced), inner = 1."""
    red = sorted(set(axes))
    live = [d for d in range(len(shape)) if shape[d] != 1]
    live_red = [d for d in live if d in red]
    outer = numel([shape[d] for d in range(len(shape)) if d not in red])
    r = numel([shape[d] for d in red])
    if not live_red:
        return None, outer, r, 1
    pos = [live.index(d) for d in live_red]
    if pos == list(range(pos[0], pos[0] + len(pos))):  # adjacent among the non-trivial dims
        first, last = live_red[0], live_red[-1]
        o = numel([shape[d] for d in range(first) if d not in red])
        i = numel([shape[d] for d in range(last + 1, len(shape)) if d not in red])
        return None, o, r, i
    kept = [d for d in range(len(shape)) if d not in red]
    return kept + red, outer, r, 1


def _axes(ctx: LowerCtx, node: Node, rank: int) -> list[int] | None:
    """The reduced axes, or None for 'all'; [] with noop_with_empty_axes means 'none'."""
    if node.input(1) is not None:
        axes = ints_of(const_input(ctx, node, 1, "axes"))
    else:
        axes = node.attr("axes", None)
    axes = [] if axes is None else [normalize_axis(a, rank, node, "axes entry") for a in axes]
    if not axes:
        return [] if int(node.attr("noop_with_empty_axes", 0)) else None
    return sorted(set(axes))


def emit_reduce(ctx: LowerCtx, node: Node, x_tid: int, y_tid: int, shape: Sequence[int], axes: Sequence[int],
                op: int, dtype: int) -> None:
    """Emit (transpose +) reduce of tensor x_tid of `shape` over `axes` into y_tid."""
    perm, outer, r, inner = reduced_layout(shape, axes)
    src = x_tid
    if perm is not None:
        tmp = ctx.temp(dtype, [shape[p] for p in perm], f"{node.name}:transposed")
        if emit_transpose(ctx, x_tid, tmp, shape, perm, node.name):
            src = tmp
    ctx.emit("reduce", [src], [y_tid], ints=[op, outer, r, inner], name=node.name)


@lowering(*REDUCE_OPS)
def lower_reduce(ctx: LowerCtx, node: Node) -> None:
    """ReduceX(axes, keepdims, noop_with_empty_axes)."""
    x, y = node.inputs[0], node.outputs[0]
    assert x is not None
    xs = shape_of(x)
    rank = len(xs)
    float_only = node.op_type not in INT_OK
    check_dtype(node, x, FLOATS if float_only else FLOATS + (INT32, INT64), "input")
    axes = _axes(ctx, node, rank)
    keep = int(node.attr("keepdims", 1))
    red = list(range(rank)) if axes is None else axes
    expect = [1 if d in red else n for d, n in enumerate(xs)] if keep else [n for d, n in enumerate(xs)
                                                                             if d not in red]
    check_out_shape(node, y, expect)
    op = REDUCE_OPS[node.op_type]
    if not red and op in (0, 1, 2, 3, 4):
        ctx.alias(y, x)  # reducing over no axes is the identity
        return
    if node.op_type in _NUMPY and foldable(ctx, node):
        c = np.asarray(ctx.const_value(x))
        ctx.constant(y, _NUMPY[node.op_type](c, axis=tuple(red), keepdims=bool(keep)).astype(c.dtype))
        return
    emit_reduce(ctx, node, ctx.tensor(x), ctx.tensor(y), xs, red, op, x.dtype)  # type: ignore[arg-type]


@lowering("ArgMax", "ArgMin")
def lower_arg(ctx: LowerCtx, node: Node) -> None:
    """ArgMax/ArgMin(axis, keepdims, select_last_index) -> int64 indices."""
    x, y = node.inputs[0], node.outputs[0]
    assert x is not None
    xs = shape_of(x)
    check_dtype(node, x, (FLOAT, FLOAT16, INT32, INT64), "input")
    if y.dtype != INT64:
        raise LoweringError(f"node '{node.name}' ({node.op_type}): output '{y.name}' must be int64")
    axis = normalize_axis(node.attr("axis", 0), len(xs), node)
    keep = int(node.attr("keepdims", 1))
    expect = [1 if d == axis else n for d, n in enumerate(xs)] if keep else [n for d, n in enumerate(xs) if d != axis]
    check_out_shape(node, y, expect)
    if xs[axis] == 0 and numel(expect) > 0:
        raise LoweringError(f"node '{node.name}' ({node.op_type}): axis {axis} of '{x.name}' is empty")
    last = int(node.attr("select_last_index", 0))
    kernel = "argmax" if node.op_type == "ArgMax" else "argmin"
    ctx.emit(kernel, [ctx.tensor(x)], [ctx.tensor(y)], ints=[last, numel(xs[:axis]), xs[axis], numel(xs[axis + 1:])],
             name=node.name)
