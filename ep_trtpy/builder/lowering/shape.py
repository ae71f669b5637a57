"""Lowering of values known at build time when the passes did not fold them: Shape, Size, Constant, Range and
small ConstantOfShape become weights (and are recorded with :meth:`LowerCtx.constant`, so later lowerings can read
them as constants); a large ConstantOfShape runs the ``fill`` kernel instead of storing its bytes::

    fill   inputs []  outputs [Y]
           ints [value_bits]    every element of Y = the low element-size bytes of value_bits (little-endian)
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.builder.lowering import LowerCtx, LoweringError, lowering
from ep_trtpy.builder.lowering._util import SMALL_CONST, const_input, numel, shape_of
from ep_trtpy.builder.lowering.movement import value_bits
from graph_partitioner.ir import FLOAT, Node, elem_type, np_dtype


@lowering("Shape")
def lower_shape(ctx: LowerCtx, node: Node) -> None:
    """Shape(start, end): the input's static dims as int64."""
    x = node.inputs[0]
    assert x is not None
    dims = list(shape_of(x))
    rank = len(dims)
    start = int(node.attr("start", 0))
    end = node.attr("end", None)
    start = min(max(start + rank if start < 0 else start, 0), rank)
    stop = rank if end is None else int(end)
    stop = min(max(stop + rank if stop < 0 else stop, 0), rank)
    ctx.constant(node.outputs[0], np.array(dims[start:stop], dtype=np.int64))


@lowering("Size")
def lower_size(ctx: LowerCtx, node: Node) -> None:
    """Size: the input's element count as an int64 scalar."""
    x = node.inputs[0]
    assert x is not None
    ctx.constant(node.outputs[0], np.array(numel(shape_of(x)), dtype=np.int64))


@lowering("Constant")
def lower_constant(ctx: LowerCtx, node: Node) -> None:
    """Constant(value | value_float(s) | value_int(s))."""
    if "value" in node.attrs:
        arr = np.asarray(node.attrs["value"])
    elif "value_float" in node.attrs:
        arr = np.array(node.attrs["value_float"], dtype=np.float32)
    elif "value_floats" in node.attrs:
        arr = np.array(node.attrs["value_floats"], dtype=np.float32)
    elif "value_int" in node.attrs:
        arr = np.array(node.attrs["value_int"], dtype=np.int64)
    elif "value_ints" in node.attrs:
        arr = np.array(node.attrs["value_ints"], dtype=np.int64)
    else:
        raise LoweringError(f"node '{node.name}' (Constant) has no value attribute this lowering understands")
    ctx.constant(node.outputs[0], arr)


@lowering("ConstantOfShape")
def lower_constant_of_shape(ctx: LowerCtx, node: Node) -> None:
    """ConstantOfShape(value): a weight when small, else a ``fill`` layer."""
    y = node.outputs[0]
    shape = const_input(ctx, node, 0, "shape")
    ys = shape_of(y)
    if shape is not None and [int(d) for d in np.asarray(shape).reshape(-1)] != list(ys):
        raise LoweringError(f"node '{node.name}' (ConstantOfShape): shape input {np.asarray(shape).tolist()} differs "
                            f"from the output's shape {list(ys)}")
    value = node.attr("value", None)
    scalar = np.zeros(1, dtype=np.float32) if value is None else np.asarray(value).reshape(-1)[:1]
    dtype = y.dtype if y.dtype is not None else (FLOAT if value is None else elem_type(scalar.dtype))
    if numel(ys) <= SMALL_CONST:
        ctx.constant(y, np.full(ys, scalar[0] if scalar.size else 0, dtype=np_dtype(dtype)))
        return
    ctx.emit("fill", [], [ctx.tensor(y)], ints=[value_bits(scalar[0] if scalar.size else 0, dtype)],
             name=node.name)


@lowering("Range")
def lower_range(ctx: LowerCtx, node: Node) -> None:
    """Range(start, limit, delta) with build-time inputs: n = max(ceil((limit - start) / delta), 0) values."""
    start = const_input(ctx, node, 0, "start")
    limit = const_input(ctx, node, 1, "limit")
    delta = const_input(ctx, node, 2, "delta")
    y = node.outputs[0]
    assert start is not None and limit is not None and delta is not None and y.dtype is not None
    dt = np_dtype(y.dtype)
    s, lim, d = (np.asarray(a).reshape(()).astype(dt) for a in (start, limit, delta))
    if d == 0:
        raise LoweringError(f"node '{node.name}' (Range): delta is 0")
    n = max(int(np.ceil((float(lim) - float(s)) / float(d))), 0)
    vals = (s + np.arange(n, dtype=np.int64).astype(dt) * d).astype(dt) if n else np.zeros(0, dtype=dt)
    ctx.constant(y, vals)
