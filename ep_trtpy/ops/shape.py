"""Shape-producing ops: Shape, Size, ConstantOfShape, Range, Constant.

* Shape: int64 ``x.shape[start:end]`` (opset 15 ``start``/``end``, negative counting from the end, clamped to
  [0, rank]). Its inference always carries the value (it follows from the input shape alone).
* Size: int64 0-d number of elements (value always known).
* ConstantOfShape: a tensor of shape ``input`` (int64 1-D) filled with ``value`` (a one-element tensor attribute,
  default float32 0).
* Range: ``start + i * delta`` for ``i < max(ceil((limit - start) / delta), 0)``, in the inputs' dtype (integers
  exactly; floats computed in float64 and rounded once).
* Constant: the ``value`` / ``value_float(s)`` / ``value_int(s)`` attribute (value always known).
"""

from __future__ import annotations

import math

import numpy as np

from ep_trtpy.ops._common import as_ints, fail, in_name, need_value, numel, same_dtype
from ep_trtpy.ops.registry import Info, infer, reference
from graph_partitioner.ir import INT64, Node, dtype_name, elem_type, np_dtype


def _shape_range(node: Node, rank: int) -> tuple[int, int]:
    def clamp(v: int) -> int:
        v = v + rank if v < 0 else v
        return min(max(v, 0), rank)

    start = clamp(int(node.attr("start", 0)))
    end_attr = node.attr("end")
    end = rank if end_attr is None else clamp(int(end_attr))
    return start, end


@reference("Shape")
def shape_ref(node: Node, x: np.ndarray) -> np.ndarray:
    s, e = _shape_range(node, x.ndim)
    return np.array(x.shape[s:e], dtype=np.int64).reshape(-1)


@infer("Shape")
def shape_infer(node: Node, x: Info) -> Info:
    s, e = _shape_range(node, len(x.shape))
    v = np.array(x.shape[s:e], dtype=np.int64).reshape(-1)
    return Info(INT64, (len(v),), v)


@reference("Size")
def size_ref(node: Node, x: np.ndarray) -> np.ndarray:
    return np.array(x.size, dtype=np.int64)


@infer("Size")
def size_infer(node: Node, x: Info) -> Info:
    return Info(INT64, (), np.array(numel(x.shape), dtype=np.int64))


def _cos_fill(node: Node) -> np.ndarray:
    v = node.attr("value")
    if v is None:
        return np.zeros((), np.float32)
    v = np.asarray(v)
    if v.size != 1:
        raise fail(node, f"value attribute has {v.size} elements; exactly one expected")
    return v.reshape(())


def _cos_shape(node: Node, shape_value: np.ndarray) -> tuple[int, ...]:
    dims = as_ints(node, shape_value, f"shape {in_name(node, 0)}")
    if any(d < 0 for d in dims):
        raise fail(node, f"shape {dims} has a negative entry")
    return tuple(dims)


@reference("ConstantOfShape")
def constant_of_shape_ref(node: Node, shape: np.ndarray) -> np.ndarray:
    fill = _cos_fill(node)
    return np.full(_cos_shape(node, shape), fill, dtype=fill.dtype)


@infer("ConstantOfShape")
def constant_of_shape_infer(node: Node, shape: Info) -> Info:
    if shape.dtype != INT64:
        raise fail(node, f"shape {in_name(node, 0)} is {dtype_name(shape.dtype)}; int64 expected")
    dims = _cos_shape(node, need_value(node, shape, 0, "shape"))
    return Info(elem_type(_cos_fill(node).dtype), dims)


def _range_len(node: Node, start: float | int, limit: float | int, delta: float | int) -> int:
    if delta == 0:
        raise fail(node, "delta is 0")
    if isinstance(start, int) and isinstance(limit, int) and isinstance(delta, int):
        n = -((start - limit) // delta)  # ceil((limit - start) / delta) in exact integer arithmetic
    else:
        n = math.ceil((float(limit) - float(start)) / float(delta))
    return max(int(n), 0)


def _scalars(node: Node, arrays: list[np.ndarray]) -> list[float | int]:
    out: list[float | int] = []
    for i, a in enumerate(arrays):
        a = np.asarray(a)
        if a.size != 1:
            raise fail(node, f"{in_name(node, i)} has shape {list(a.shape)}; a scalar expected")
        v = a.reshape(()).item()
        out.append(int(v) if a.dtype.kind in "iu" else float(v))
    return out


@reference("Range")
def range_ref(node: Node, start: np.ndarray, limit: np.ndarray, delta: np.ndarray) -> np.ndarray:
    s, lim, d = _scalars(node, [start, limit, delta])
    n = _range_len(node, s, lim, d)
    dt = np.asarray(start).dtype
    if dt.kind in "iu":
        return (s + np.arange(n, dtype=np.int64) * d).astype(dt)
    return (np.float64(s) + np.arange(n, dtype=np.float64) * np.float64(d)).astype(dt)


@infer("Range")
def range_infer(node: Node, start: Info, limit: Info, delta: Info) -> Info:
    t = same_dtype(node, [start, limit, delta])
    vals = [need_value(node, x, i, name) for i, (x, name) in enumerate(((start, "start"), (limit, "limit"),
                                                                       (delta, "delta")))]
    s, lim, d = _scalars(node, vals)
    return Info(t, (_range_len(node, s, lim, d),))


def _constant_value(node: Node) -> np.ndarray:
    a = node.attrs
    if "value" in a:
        return np.asarray(a["value"])
    if "value_float" in a:
        return np.array(a["value_float"], dtype=np.float32)
    if "value_floats" in a:
        return np.array(a["value_floats"], dtype=np.float32).reshape(-1)
    if "value_int" in a:
        return np.array(a["value_int"], dtype=np.int64)
    if "value_ints" in a:
        return np.array(a["value_ints"], dtype=np.int64).reshape(-1)
    raise fail(node, "has none of the attributes value, value_float(s), value_int(s) (strings and sparse tensors "
                     "are not supported)")


@reference("Constant")
def constant_ref(node: Node) -> np.ndarray:
    return _constant_value(node)


@infer("Constant")
def constant_infer(node: Node) -> Info:
    v = _constant_value(node)
    try:
        t = elem_type(v.dtype)
        np_dtype(t)
    except ValueError:
        raise fail(node, f"value has the unsupported dtype {v.dtype}") from None
    return Info(t, tuple(int(d) for d in v.shape), v)



