"""Shared helpers of the lowering modules: static shapes, strides, broadcasting, dim collapsing, constants."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ep_trtpy.builder.lowering import LowerCtx, LoweringError
from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT16, Node, Value, dtype_name, np_dtype

FLOATS = (FLOAT, FLOAT16, BFLOAT16)
"""The float dtypes of the kernels with 16-bit paths (gemm, conv, layernorm, softmax, pointwise, reduce, pool)."""


def shape_of(v: Value) -> tuple[int, ...]:
    """The static shape of `v` (LoweringError naming the value otherwise)."""
    if v.shape is None or not all(isinstance(d, int) for d in v.shape):
        raise LoweringError(f"value '{v.name}' has no static shape ({v!r}); cannot lower")
    return tuple(int(d) for d in v.shape)


def numel(shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def itemsize(dtype: int) -> int:
    return int(np_dtype(dtype).itemsize)


def contiguous_strides(shape: Sequence[int]) -> list[int]:
    """Row-major element strides."""
    strides = [1] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * max(int(shape[d + 1]), 1)
    return strides


def broadcast_strides(in_shape: Sequence[int], out_shape: Sequence[int], what: str = "operand") -> list[int]:
    """Element strides of a contiguous tensor of `in_shape` read at the indices of `out_shape` under numpy
    broadcasting (right-aligned; 0 where the input dim is 1 or missing)."""
    if len(in_shape) > len(out_shape):
        raise LoweringError(f"{what} of shape {list(in_shape)} has more dims than the output {list(out_shape)}")
    pad = len(out_shape) - len(in_shape)
    cs = contiguous_strides(in_shape)
    out = [0] * len(out_shape)
    for d, n in enumerate(in_shape):
        od = int(out_shape[pad + d])
        if n == od:
            out[pad + d] = cs[d] if n != 1 else 0
        elif n == 1:
            out[pad + d] = 0
        else:
            raise LoweringError(f"{what} of shape {list(in_shape)} does not broadcast to {list(out_shape)}")
    return out


def collapse(dims: Sequence[int], strides: Sequence[Sequence[int]]) -> tuple[list[int], list[list[int]]]:
    """Drop dims of extent 1 and merge neighbours d, d+1 wherever every stride list satisfies
    s[d] == s[d+1] * dims[d+1] (so one index walks both). Returns (dims, strides), at least one dim (an extent-0
    shape collapses to [0])."""
    dims = [int(d) for d in dims]
    if any(d == 0 for d in dims):
        return [0], [[0] for _ in strides]
    keep = [d for d in range(len(dims)) if dims[d] != 1]
    cd: list[int] = []
    cs: list[list[int]] = [[] for _ in strides]
    for d in keep:
        if cd and all(cs[k][-1] == int(strides[k][d]) * dims[d] for k in range(len(strides))):
            cd[-1] *= dims[d]
            for k in range(len(strides)):
                cs[k][-1] = int(strides[k][d])
            continue
        cd.append(dims[d])
        for k in range(len(strides)):
            cs[k].append(int(strides[k][d]))
    if not cd:
        return [1], [[0] for _ in strides]
    return cd, cs


def normalize_axis(axis: int, rank: int, node: Node, what: str = "axis") -> int:
    a = int(axis)
    if not -max(rank, 1) <= a < max(rank, 1):
        raise LoweringError(f"node '{node.name}' ({node.op_type}): {what} {axis} is out of range for rank {rank}")
    return a + rank if a < 0 else a


def const_input(ctx: LowerCtx, node: Node, i: int, what: str) -> np.ndarray | None:
    """The build-time value of input i (None when the input is absent); LoweringError if it is present but not a
    constant."""
    v = node.input(i)
    if v is None:
        return None
    c = ctx.const_value(v)
    if c is None and v.shape is not None and 0 in v.shape and v.dtype is not None:
        return np.zeros(tuple(int(d) for d in v.shape), dtype=np_dtype(v.dtype))  # an empty tensor is known
    if c is None:
        raise LoweringError(f"node '{node.name}' ({node.op_type}): input {i} ({what}, '{v.name}') must be known at "
                            f"build time (a constant or shape-computable), but it is computed at run time")
    return np.asarray(c)


def ints_of(arr: np.ndarray | None) -> list[int] | None:
    return None if arr is None else [int(x) for x in np.asarray(arr).reshape(-1)]


def same_dtype(node: Node, a: Value, b: Value) -> None:
    if a.dtype != b.dtype:
        raise LoweringError(f"node '{node.name}' ({node.op_type}): '{a.name}' is {dtype_name(a.dtype)} but "
                            f"'{b.name}' is {dtype_name(b.dtype)}")


def check_dtype(node: Node, v: Value, allowed: Sequence[int], what: str) -> None:
    if v.dtype not in allowed:
        names = ", ".join(dtype_name(t) for t in allowed)
        raise LoweringError(f"node '{node.name}' ({node.op_type}): {what} '{v.name}' is {dtype_name(v.dtype)}; "
                            f"the GPU kernel takes {names}")


def check_out_shape(node: Node, v: Value, expected: Sequence[int]) -> None:
    got = shape_of(v)
    if tuple(got) != tuple(int(x) for x in expected):
        raise LoweringError(f"node '{node.name}' ({node.op_type}): output '{v.name}' has shape {list(got)} but the "
                            f"op's attributes give {list(expected)}")


SMALL_CONST = 4096
"""Outputs up to this many elements are folded into weights when every input is known at build time."""


def foldable(ctx: LowerCtx, node: Node) -> bool:
    """True when every present input is a build-time constant and every output is small."""
    if any(v is not None and ctx.const_value(v) is None for v in node.inputs):
        return False
    for o in node.outputs:
        if o.shape is None or not all(isinstance(d, int) for d in o.shape) or numel(o.shape) > SMALL_CONST:
            return False
    return True


def op_version(ctx: LowerCtx, node: Node) -> int:
    """The node's opset version (its schema's since_version when known, else the graph's default opset)."""
    if node.since_version is not None:
        return int(node.since_version)
    return int(ctx.graph.opsets.get(node.domain or "", ctx.graph.opsets.get("", 17)))
