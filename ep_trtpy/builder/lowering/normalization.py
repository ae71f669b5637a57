"""Lowering of the normalizations: LayerNormalization (opset 17) and ep_trtpy::AddLayerNorm onto the
``layernorm`` kernel, Softmax and LogSoftmax onto the ``softmax`` kernel (both in
cuda_kernels/runtime/kernels_norm.cpp), inference BatchNormalization onto the ``pointwise`` kernel::

    layernorm  inputs [X, scale, bias or -1, R or -1]   outputs [Y] or [Y, S]   ints [rows, cols]   floats [epsilon]
               X read as [rows, cols] with cols = prod(X.shape[axis:]); scale and bias hold cols elements; R (the
               residual) has X's dtype and element count; float32, float16 or bfloat16, one dtype
               Z = X, or Z = X + R rounded to X's dtype (written to S when S is given: it needs R)
               Y = (Z - mean) / sqrt(var + epsilon) * scale + bias per row (float32 arithmetic, two passes)
    softmax    inputs [X] outputs [Y]   ints [log, outer, R, inner]
               X read as [outer, R, inner]; normalizes over R; log: 0 = Softmax, 1 = LogSoftmax

LayerNormalization: scale and bias may broadcast to X.shape[axis:]: constants are materialized to that shape as
weights (in X's dtype), run-time tensors are broadcast into a temporary by a ``pointwise`` copy. The Mean and
InvStdDev outputs are refused when used.

Softmax opset >= 13: over the single axis `axis` (default -1): outer = prod(dims before), R = dims[axis], inner =
prod(dims after). Opset < 13: the input is coerced to 2-D at `axis` (default 1) and normalized over the second
dim: outer = prod(dims[:axis]), R = prod(dims[axis:]), inner = 1 (a reshape, no data moves).
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.builder.lowering import LowerCtx, LoweringError, lowering
from ep_trtpy.builder.lowering._util import (
    FLOATS,
    check_dtype,
    check_out_shape,
    normalize_axis,
    numel,
    op_version,
    shape_of,
)
from ep_trtpy.builder.lowering.elementwise import emit_pointwise
from ep_trtpy.ops import pointwise_program as pp
from graph_partitioner.ir import Node, Value, np_dtype


def _param(ctx: LowerCtx, node: Node, v: Value, norm_shape: tuple[int, ...], dtype: int, what: str) -> int:
    """Tensor id of a scale/bias holding exactly prod(norm_shape) elements of `dtype`."""
    vs = shape_of(v)
    try:
        np.broadcast_shapes(vs, norm_shape)
    except ValueError:
        raise LoweringError(f"node '{node.name}' ({node.key}): {what} '{v.name}' {list(vs)} does not broadcast "
                            f"to the normalized shape {list(norm_shape)}") from None
    if np.broadcast_shapes(vs, norm_shape) != norm_shape:
        raise LoweringError(f"node '{node.name}' ({node.key}): {what} '{v.name}' {list(vs)} is larger than "
                            f"the normalized shape {list(norm_shape)}")
    c = ctx.const_value(v)
    if c is not None:
        if tuple(vs) == norm_shape and v.dtype == dtype:
            return ctx.tensor(v)
        arr = np.broadcast_to(np.asarray(c).reshape(vs), norm_shape).astype(np_dtype(dtype))
        return ctx.weight(arr, f"{node.name}:{what}", dtype=dtype)
    if numel(vs) == numel(norm_shape) and v.dtype == dtype:
        return ctx.tensor(v)
    tmp = ctx.temp(dtype, norm_shape, f"{node.name}:{what}")
    prog = pp.Program(1, "float", [["mov", 1, 0]], [(1, dtype)])
    emit_pointwise(ctx, prog, [ctx.tensor(v)], [vs], [tmp], norm_shape, node.name)
    return tmp


def _emit_layernorm(ctx: LowerCtx, node: Node, x: Value, r: Value | None, scale: Value | None, bias: Value | None,
                    outputs: list[Value]) -> None:
    """One ``layernorm`` layer: Y (= outputs[0]) of X (+ R), and S = X + R when outputs has a second value."""
    xs = shape_of(x)
    check_dtype(node, x, FLOATS, "input")
    if not xs:
        raise LoweringError(f"node '{node.name}' ({node.key}): input '{x.name}' is a scalar")
    for out in outputs:
        check_out_shape(node, out, xs)
    if r is not None and (shape_of(r) != xs or r.dtype != x.dtype):
        raise LoweringError(f"node '{node.name}' ({node.key}): residual '{r.name}' must have the shape and dtype of "
                            f"'{x.name}' {list(xs)}")
    if scale is None:
        raise LoweringError(f"node '{node.name}' ({node.key}) has no Scale input")
    axis = normalize_axis(node.attr("axis", -1), len(xs), node)
    norm_shape = tuple(xs[axis:])
    rows, cols = numel(xs[:axis]), numel(norm_shape)
    ins = [ctx.tensor(x), _param(ctx, node, scale, norm_shape, x.dtype, "scale"),  # type: ignore[arg-type]
           -1 if bias is None else _param(ctx, node, bias, norm_shape, x.dtype, "bias")]  # type: ignore[arg-type]
    if r is not None:
        ins.append(ctx.tensor(r))
    elif ins[-1] == -1:
        ins.pop()
    ctx.emit("layernorm", ins, [ctx.tensor(v) for v in outputs], ints=[rows, cols],
             floats=[float(node.attr("epsilon", 1e-5))], name=node.name,
             meta={"op": node.key, "residual": r is not None})


@lowering("LayerNormalization")
def lower_layernorm(ctx: LowerCtx, node: Node) -> None:
    """LayerNormalization(axis, epsilon, stash_type=1)."""
    x = node.inputs[0]
    assert x is not None
    if int(node.attr("stash_type", 1)) != 1:
        raise LoweringError(f"node '{node.name}' (LayerNormalization): stash_type must be 1 (float32)")
    for extra in node.outputs[1:]:
        if extra.consumers or ctx.graph.is_graph_output(extra):
            raise LoweringError(f"node '{node.name}' (LayerNormalization): output '{extra.name}' (Mean/InvStdDev) is "
                                f"used; only Y is computed on the GPU")
    _emit_layernorm(ctx, node, x, None, node.input(1), node.input(2), node.outputs[:1])


@lowering("ep_trtpy::AddLayerNorm")
def lower_add_layernorm(ctx: LowerCtx, node: Node) -> None:
    """ep_trtpy::AddLayerNorm(X, R, scale, bias?) -> (Y) or (Y, S = X + R): the residual rides in the kernel."""
    x, r = node.input(0), node.input(1)
    if x is None or r is None:
        raise LoweringError(f"node '{node.name}' ({node.key}) needs X and R")
    if len(node.outputs) not in (1, 2):
        raise LoweringError(f"node '{node.name}' ({node.key}) has {len(node.outputs)} outputs; Y and optionally S")
    _emit_layernorm(ctx, node, x, r, node.input(2), node.input(3), list(node.outputs))


@lowering("Softmax", "LogSoftmax")
def lower_softmax(ctx: LowerCtx, node: Node) -> None:
    """Softmax / LogSoftmax (either opset semantics)."""
    x, y = node.inputs[0], node.outputs[0]
    assert x is not None
    xs = shape_of(x)
    check_dtype(node, x, FLOATS, "input")
    check_out_shape(node, y, xs)
    log = 1 if node.op_type == "LogSoftmax" else 0
    rank = len(xs)
    if op_version(ctx, node) < 13:
        axis = normalize_axis(node.attr("axis", 1), max(rank, 1), node) if rank else 0
        outer, r, inner = numel(xs[:axis]), numel(xs[axis:]), 1
    elif rank == 0:
        outer, r, inner = 1, 1, 1
    else:
        axis = normalize_axis(node.attr("axis", -1), rank, node)
        outer, r, inner = numel(xs[:axis]), xs[axis], numel(xs[axis + 1:])
    ctx.emit("softmax", [ctx.tensor(x)], [ctx.tensor(y)], ints=[log, outer, r, inner], name=node.name)


@lowering("BatchNormalization")
def lower_batchnorm(ctx: LowerCtx, node: Node) -> None:
    """Inference BatchNormalization: y = (x - mean) / sqrt(var + epsilon) * scale + B over axis 1. With constant
    statistics this is y = x * a + b with a, b folded per channel (weights); otherwise the full formula runs in
    one pointwise program."""
    if len(node.outputs) != 1 or int(node.attr("training_mode", 0)):
        raise LoweringError(f"node '{node.name}' (BatchNormalization): only inference (one output) is lowered")
    x, y = node.inputs[0], node.outputs[0]
    if x is None or x.dtype not in FLOATS:
        raise LoweringError(f"node '{node.name}' (BatchNormalization): X must be float32, float16 or bfloat16")
    xs = shape_of(x)
    if len(xs) < 2:
        raise LoweringError(f"node '{node.name}' (BatchNormalization): X must have rank >= 2")
    c = xs[1]
    chan = (c,) + (1,) * (len(xs) - 2)
    eps = float(node.attr("epsilon", 1e-5))
    params = node.inputs[1:5]
    if len(params) != 4 or any(v is None for v in params):
        raise LoweringError(f"node '{node.name}' (BatchNormalization): scale, B, mean and var are required")
    consts = [ctx.const_value(v) for v in params]
    out_t = y.dtype
    if all(a is not None for a in consts):
        scale, bias, mean, var = (np.asarray(a, dtype=np.float64).reshape(-1) for a in consts)
        a = scale / np.sqrt(var + eps)
        b = bias - mean * a
        ta = ctx.weight(a.astype(np.float32).reshape(chan), f"{node.name}:a")
        tb = ctx.weight(b.astype(np.float32).reshape(chan), f"{node.name}:b")
        prog = pp.Program(3, "float", [["mul", 3, 0, 1], ["add", 4, 3, 2]], [(4, out_t)])
        emit_pointwise(ctx, prog, [ctx.tensor(x), ta, tb], [xs, chan, chan], [ctx.tensor(y)], xs, node.name)
        return
    prog = pp.Program(5, "float", [
        ["sub", 5, 0, 3], ["const", 6, eps], ["add", 7, 4, 6], ["sqrt", 8, 7], ["div", 9, 5, 8],
        ["mul", 10, 9, 1], ["add", 11, 10, 2]], [(11, out_t)])
    ins = [ctx.tensor(x)] + [ctx.tensor(v) for v in params]  # type: ignore[arg-type]
    emit_pointwise(ctx, prog, ins, [xs] + [chan] * 4, [ctx.tensor(y)], xs, node.name)
