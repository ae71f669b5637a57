"""Helpers shared by the op modules: error sentences, axis normalization, opset lookup, float16 handling.

Conventions used by every reference and inference function in this package:

* ``node.since_version`` selects the ONNX semantics where they changed between opsets; ``None`` (a node made by a
  pass) means the newest semantics. Where an old attribute and a newer input carry the same thing (Reduce axes,
  Split split, Squeeze axes, Pad pads, Clip min/max), the input is used when present, else the attribute.
* float16 (and bfloat16) data is computed in float32 and cast back once at the end (round to nearest even);
  reductions and normalizations accumulate in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ep_trtpy.ops.registry import Info, OpError
from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT16, Node, dtype_name, elem_type, np_dtype

LATEST = 10_000
"""The opset assumed for a node whose ``since_version`` is unknown (newest semantics)."""


def where(node: Node) -> str:
    """'<op> node '<name>'' for error sentences."""
    return f"{node.key} node '{node.name}'"


def fail(node: Node, msg: str) -> OpError:
    """An OpError whose sentence starts with the node."""
    return OpError(f"{where(node)}: {msg}")


def in_name(node: Node, i: int) -> str:
    v = node.input(i)
    return f"input {i}" if v is None else f"input {i} ('{v.name}')"


def out_name(node: Node, i: int) -> str:
    return f"output {i} ('{node.outputs[i].name}')" if i < len(node.outputs) else f"output {i}"


def opset(node: Node) -> int:
    return LATEST if node.since_version is None else int(node.since_version)


def norm_axis(node: Node, axis: int, rank: int, what: str = "axis") -> int:
    """`axis` in [-rank, rank) mapped to [0, rank); OpError otherwise."""
    a = int(axis)
    if not -rank <= a < rank:
        raise fail(node, f"{what}={a} is out of range for rank {rank}")
    return a + rank if a < 0 else a


def norm_axes(node: Node, axes: Sequence[int], rank: int, what: str = "axes") -> list[int]:
    """Normalized axes, checked for range and duplicates (order kept)."""
    out = [norm_axis(node, a, rank, what) for a in axes]
    if len(set(out)) != len(out):
        raise fail(node, f"{what}={list(axes)} repeats an axis")
    return out


def is_float(dtype: int) -> bool:
    return dtype in (FLOAT, FLOAT16, BFLOAT16) or np_dtype(dtype).kind == "f"


def is_numeric(dtype: int) -> bool:
    """A float or integer ONNX type (not bool, not string)."""
    return is_float(dtype) or np_dtype(dtype).kind in "iu"


def is_float_np(dtype: Any) -> bool:
    """A numpy float dtype, bfloat16 included (ml_dtypes gives it kind 'V', not 'f')."""
    dt = np.dtype(dtype)
    return dt.kind == "f" or dt.name == "bfloat16"


def compute_np(x: np.ndarray) -> np.ndarray:
    """float16/bfloat16 -> float32 (the compute type); anything else unchanged."""
    if x.dtype == np.float16 or x.dtype.name == "bfloat16":
        return x.astype(np.float32)
    return x


def cast_back(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The result in the op's output dtype (float32 -> float16 rounds to nearest even)."""
    return y if y.dtype == dtype else y.astype(dtype)


def as_ints(node: Node, arr: Any, what: str) -> list[int]:
    """A 0-d or 1-d integer array (an axes/shape/pads operand) as a list of Python ints."""
    a = np.asarray(arr)
    if a.ndim > 1:
        raise fail(node, f"{what} must be 0-d or 1-d, got shape {list(a.shape)}")
    if a.dtype.kind not in "iub":
        raise fail(node, f"{what} must be an integer tensor, got {a.dtype}")
    return [int(v) for v in a.reshape(-1)]


def need_value(node: Node, info: Info | None, i: int, what: str) -> np.ndarray:
    """The value of input `i` at build time (shape, axes, pads...), or an OpError saying it is not known."""
    if info is None:
        raise fail(node, f"{what} ({in_name(node, i)}) is absent")
    if info.value is None:
        raise fail(node, f"{what} ({in_name(node, i)}) is not known at build time (it must be computable from "
                         f"constants and input shapes)")
    return info.value


def broadcast(node: Node, *shapes: Sequence[int]) -> tuple[int, ...]:
    """numpy (multidirectional) broadcast of `shapes`, or an OpError naming them."""
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*[tuple(s) for s in shapes]))
    except ValueError:
        raise fail(node, "input shapes " + ", ".join(str(list(s)) for s in shapes) +
                   " do not broadcast") from None


def unidirectional(node: Node, target: Sequence[int], shape: Sequence[int], what: str) -> None:
    """Check that `shape` broadcasts to `target` without changing it (ONNX unidirectional broadcasting)."""
    try:
        ok = tuple(np.broadcast_shapes(tuple(target), tuple(shape))) == tuple(target)
    except ValueError:
        ok = False
    if not ok:
        raise fail(node, f"{what} of shape {list(shape)} does not broadcast to {list(target)}")


def same_dtype(node: Node, infos: Sequence[Info | None], idx: Sequence[int] | None = None) -> int:
    """The common dtype of the given inputs (all present ones by default), or an OpError naming the mismatch."""
    idx = range(len(infos)) if idx is None else idx
    got: list[tuple[int, Info]] = [(i, x) for i in idx if i < len(infos) and (x := infos[i]) is not None]
    if not got:
        raise fail(node, "has no inputs")
    first, t = got[0][0], got[0][1].dtype
    for i, inf in got[1:]:
        if inf.dtype != t:
            raise fail(node, f"{in_name(node, i)} is {dtype_name(inf.dtype)} but {in_name(node, first)} is "
                             f"{dtype_name(t)}")
    return t


def need_float(node: Node, info: Info, i: int = 0) -> None:
    if not is_float(info.dtype):
        raise fail(node, f"{in_name(node, i)} is {dtype_name(info.dtype)}; {node.op_type} needs a float type")


def info_of(arr: np.ndarray, with_value: bool = True) -> Info:
    """Info of a concrete array (value attached when asked)."""
    a = np.asarray(arr)
    return Info(elem_type(a.dtype), tuple(int(d) for d in a.shape), a if with_value else None)


def numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def spatial_attr(node: Node, name: str, n: int, default: int) -> list[int]:
    """A per-spatial-axis int list attribute (strides, dilations, kernel_shape) of length n."""
    v = node.attr(name)
    if v is None:
        return [default] * n
    v = [int(x) for x in v]
    if len(v) != n:
        raise fail(node, f"{name}={v} has {len(v)} entries but the input has {n} spatial axes")
    return v
