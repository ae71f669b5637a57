"""Lowering of data movement: Transpose, ep_trtpy::CastTranspose, Concat, Split, Slice, Expand, Tile, Gather,
GatherElements, GatherND, Pad, and the pure views Reshape, Flatten, Squeeze, Unsqueeze, Identity and inference
Dropout. Kernels (cuda_kernels/runtime/kernels_movement.cpp)::

    copy       inputs [X] outputs [Y]
               ints [ndim (0..12), dims[ndim], in_offset, in_strides[ndim], out_offset, out_strides[ndim]]
               Y[out_offset + sum c_d*out_strides_d] = X[in_offset + sum c_d*in_strides_d] for every index c of
               dims (element units; input strides may be negative or 0); only those elements of Y are written
    copy_batch inputs [X_0 ..] outputs [Y_0 ..]
               ints [nseg (1..32), nseg x (src, dst, rows, row_elems, src_offset, src_stride, dst_offset, dst_stride)]
               Y_dst[dst_offset + r*dst_stride + i] = X_src[src_offset + r*src_stride + i] for r < rows,
               i < row_elems (elements; src/dst index the layer's inputs/outputs): a whole Concat or Split in
               one launch
    transpose  inputs [X] outputs [Y]
               ints [ndim (0..8), in_dims[ndim], perm[ndim]]          Y dim d = X dim perm[d]; X float32 and Y
               float16 / bfloat16 or the reverse converts each element (ep_trtpy::CastTranspose)
    pad        inputs [X] outputs [Y]
               ints [mode, ndim (0..8), in_dims[ndim], out_dims[ndim], pads_begin[ndim], value_bits]
               mode 0 constant, 1 reflect, 2 edge; value_bits: the constant's bytes as an integer
    gather     inputs [data, indices] outputs [Y]
               ints [outer, axis, inner]   data [outer, axis, inner] -> Y [outer, n_idx, inner]; an index outside
               [-axis, axis) writes zeros (ONNX calls it an error; constant indices are checked here instead)
    gather_elements  inputs [data, indices (int32/int64)] outputs [Y] (indices' shape, data's dtype)
               ints [rank (1..8), axis, data_dims[rank], index_dims[rank]]
               Y[c] = data[c with c[axis] = indices[c]] for every index c of index_dims (an index dim may be smaller
               than the data's); a negative index wraps once; one still outside the axis writes zero

Every layout is collapsed before it is emitted (extent-1 dims dropped, neighbours that one index walks on both
sides merged), so the kernels' index arithmetic stays short. Whatever is a contiguous byte range of its input
(Split and Slice along the outermost non-trivial axis, identity permutations, Expand or Pad that change
nothing) becomes a view and costs nothing. Nodes whose inputs are all known at build time and whose
outputs are small are evaluated here with numpy (shape arithmetic that the passes did not fold).

The views emit no layer (``LowerCtx.alias``; a ``memcpy`` only where the output must fill a graph-output buffer).
When their input is known at build time (a constant, or a Shape/Gather/Concat... chain that the passes did not
fold), the output is recorded as a build-time constant too (``LowerCtx.constant``), so later lowerings that need
constant operands (Slice starts, Pad pads, Resize sizes, ...) still find them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ep_trtpy.builder.lowering import LowerCtx, LoweringError, lowering
from ep_trtpy.builder.lowering._util import (
    SMALL_CONST,
    broadcast_strides,
    check_out_shape,
    collapse,
    const_input,
    contiguous_strides,
    foldable,
    ints_of,
    itemsize,
    normalize_axis,
    numel,
    shape_of,
)
from ep_trtpy.ops.internal import CAST_TRANSPOSE_DTYPES
from ep_trtpy.ops.movement import gather_elements_ref, gather_nd_rows
from ep_trtpy.ops.registry import OpError
from graph_partitioner.ir import INT32, INT64, Node, Value, dtype_name, np_dtype

MAX_COPY_DIMS = 12
MAX_DIMS = 8


def value_bits(value: float | int | bool | np.ndarray, dtype: int) -> int:
    """The bytes of one element of `dtype` holding `value`, as a signed 64-bit integer (little-endian)."""
    arr = np.asarray(value).astype(np_dtype(dtype)).reshape(1)
    raw = arr.tobytes() + b"\0" * (8 - arr.itemsize)
    return int(np.frombuffer(raw, dtype="<i8")[0])


def emit_copy(ctx: LowerCtx, src: int, dst: int, dims: Sequence[int], in_off: int, in_strides: Sequence[int],
              out_off: int, out_strides: Sequence[int], name: str) -> None:
    """Emit a ``copy`` layer after collapsing its dims."""
    cd, (cin, cout) = collapse(dims, [in_strides, out_strides])
    if len(cd) > MAX_COPY_DIMS:
        raise LoweringError(f"node '{name}': the copy needs {len(cd)} dims after collapsing (limit {MAX_COPY_DIMS})")
    ints = [len(cd)] + cd + [int(in_off)] + cin + [int(out_off)] + cout
    ctx.emit("copy", [src], [dst], ints=ints, name=name)


MAX_SEGMENTS = 32


def emit_copy_batch(ctx: LowerCtx, srcs: Sequence[int], dsts: Sequence[int], segments: Sequence[Sequence[int]],
                    name: str) -> None:
    """Emit ``copy_batch`` layers for row segments (src, dst, rows, row_elems, src_offset, src_stride,
    dst_offset, dst_stride), MAX_SEGMENTS to a layer; src/dst index `srcs`/`dsts` (tensor ids)."""
    for first in range(0, len(segments), MAX_SEGMENTS):
        part = segments[first:first + MAX_SEGMENTS]
        used_in = sorted({g[0] for g in part})
        used_out = sorted({g[1] for g in part})
        ints = [len(part)]
        for src, dst, *rest in part:
            ints += [used_in.index(src), used_out.index(dst)] + [int(v) for v in rest]
        ctx.emit("copy_batch", [srcs[k] for k in used_in], [dsts[k] for k in used_out], ints=ints, name=name)


def _contiguous_range(dims: Sequence[int], in_strides: Sequence[int]) -> bool:
    """True when reading `dims` with `in_strides` walks consecutive elements (a contiguous output is a view)."""
    cd, (cs,) = collapse(dims, [in_strides])
    return len(cd) == 1 and (cs[0] == 1 or cd[0] <= 1)


def _view_or_copy(ctx: LowerCtx, node: Node, x: Value, y: Value, dims: Sequence[int], in_off: int,
                  in_strides: Sequence[int]) -> None:
    """y (contiguous, of shape dims) = the elements of x read with in_off/in_strides: a view when they form a
    contiguous range of x, else a copy."""
    if numel(dims) > 0 and _contiguous_range(dims, in_strides):
        ctx.alias(y, x, byte_offset=int(in_off) * itemsize(x.dtype))  # type: ignore[arg-type]
        return
    emit_copy(ctx, ctx.tensor(x), ctx.tensor(y), dims, in_off, in_strides, 0, contiguous_strides(dims), node.name)


def _fold(ctx: LowerCtx, node: Node, fn) -> bool:  # noqa: ANN001
    """Evaluate the node with numpy when every input is known and the outputs are small."""
    if not foldable(ctx, node):
        return False
    results = fn()
    if not isinstance(results, (list, tuple)):
        results = [results]
    for v, arr in zip(node.outputs, results):
        ctx.constant(v, np.asarray(arr).reshape(shape_of(v)))
    return True


# ------------------------------------------------------------------------------------------------- transpose --
def collapse_transpose(dims: Sequence[int], perm: Sequence[int]) -> tuple[list[int], list[int]]:
    """Drop extent-1 dims and merge input dims that stay adjacent and in order in the output."""
    keep = [d for d in range(len(dims)) if dims[d] != 1]
    pos = {d: i for i, d in enumerate(keep)}
    p2 = [pos[p] for p in perm if p in pos]
    d2 = [int(dims[d]) for d in keep]
    groups: list[list[int]] = []
    for p in p2:
        if groups and groups[-1][-1] + 1 == p:
            groups[-1].append(p)
        else:
            groups.append([p])
    order = sorted(range(len(groups)), key=lambda g: groups[g][0])
    in_dims = [int(np.prod([d2[d] for d in groups[g]])) for g in order]
    new_perm = [order.index(k) for k in range(len(groups))]
    return in_dims, new_perm


def emit_transpose(ctx: LowerCtx, src: int, dst: int, dims: Sequence[int], perm: Sequence[int], name: str) -> bool:
    """Emit a ``transpose`` layer; returns False (emitting nothing) when the permutation moves no data."""
    cd, cp = collapse_transpose(dims, perm)
    if cp == list(range(len(cp))):
        return False
    if len(cd) > MAX_DIMS:
        raise LoweringError(f"node '{name}': transpose of {len(cd)} dims after collapsing (limit {MAX_DIMS})")
    ctx.emit("transpose", [src], [dst], ints=[len(cd)] + cd + cp, name=name)
    return True


@lowering("Transpose")
def lower_transpose(ctx: LowerCtx, node: Node) -> None:
    """Transpose(perm) (default: reverse the dims)."""
    x, y = node.inputs[0], node.outputs[0]
    assert x is not None
    xs = shape_of(x)
    perm = [int(p) for p in node.attr("perm", list(range(len(xs)))[::-1])]
    if sorted(perm) != list(range(len(xs))):
        raise LoweringError(f"node '{node.name}' (Transpose): perm {perm} is not a permutation of {len(xs)} dims")
    if _fold(ctx, node, lambda: np.transpose(np.asarray(ctx.const_value(x)), perm)):
        return
    cd, cp = collapse_transpose(xs, perm)
    if cp == list(range(len(cp))):
        ctx.alias(y, x)
        return
    emit_transpose(ctx, ctx.tensor(x), ctx.tensor(y), xs, perm, node.name)


@lowering("ep_trtpy::CastTranspose")
def lower_cast_transpose(ctx: LowerCtx, node: Node) -> None:
    """Cast(Transpose(x)): one ``transpose`` layer whose input and output dtypes differ (the kernel converts at
    the store); a permutation that moves nothing is a one-dim transpose, which converts only."""
    x, y = node.inputs[0], node.outputs[0]
    assert x is not None
    if (x.dtype, y.dtype) not in CAST_TRANSPOSE_DTYPES:
        raise LoweringError(f"node '{node.name}' (CastTranspose): '{x.name}' {dtype_name(x.dtype)} to '{y.name}' "
                            f"{dtype_name(y.dtype)} is not a conversion the transpose kernel makes")
    xs = shape_of(x)
    perm = [int(p) for p in node.attr("perm", [])]
    if sorted(perm) != list(range(len(xs))):
        raise LoweringError(f"node '{node.name}' (CastTranspose): perm {perm} is not a permutation of {len(xs)} dims")
    cd, cp = collapse_transpose(xs, perm)
    if cp == list(range(len(cp))):
        cd, cp = [numel(xs)], [0]
    if len(cd) > MAX_DIMS:
        raise LoweringError(f"node '{node.name}': transpose of {len(cd)} dims after collapsing (limit {MAX_DIMS})")
    ctx.emit("transpose", [ctx.tensor(x)], [ctx.tensor(y)], ints=[len(cd)] + cd + cp, name=node.name)


# ---------------------------------------------------------------------------------------------- concat/split --
@lowering("Concat")
def lower_concat(ctx: LowerCtx, node: Node) -> None:
    """Concat(axis): every non-empty input is a segment of rows (outer rows of its slab) in one copy_batch."""
    y = node.outputs[0]
    ys = shape_of(y)
    axis = normalize_axis(node.attr("axis", 0), len(ys), node)
    ins = [v for v in node.inputs if v is not None]
    if _fold(ctx, node, lambda: np.concatenate([np.asarray(ctx.const_value(v)) for v in ins], axis=axis)):
        return
    outer = numel(ys[:axis])
    inner = numel(ys[axis + 1:])
    total = ys[axis]
    srcs: list[int] = []
    segments: list[list[int]] = []
    off = 0
    for v in ins:
        vs = shape_of(v)
        if len(vs) != len(ys):
            raise LoweringError(f"node '{node.name}' (Concat): input '{v.name}' has rank {len(vs)}, the output "
                                f"{len(ys)}")
        a = vs[axis]
        if numel(vs) > 0:
            segments.append([len(srcs), 0, outer, a * inner, 0, a * inner, off * inner, total * inner])
            srcs.append(ctx.tensor(v))
        off += a
    if off != total:
        raise LoweringError(f"node '{node.name}' (Concat): inputs add up to {off} along axis {axis}, the output has "
                            f"{total}")
    if segments:
        emit_copy_batch(ctx, srcs, [ctx.tensor(y)], segments, node.name)


@lowering("Split")
def lower_split(ctx: LowerCtx, node: Node) -> None:
    """Split(axis): each output is a view of its slab when the slab is contiguous (nothing outside the axis
    varies); the others are segments of rows of one copy_batch. Output extents come from the outputs' shapes."""
    x = node.inputs[0]
    assert x is not None
    xs = shape_of(x)
    axis = normalize_axis(node.attr("axis", 0), len(xs), node)
    outer = numel(xs[:axis])
    inner = numel(xs[axis + 1:])
    total = xs[axis]
    dsts: list[int] = []
    segments: list[list[int]] = []
    off = 0
    for y in node.outputs:
        ys = shape_of(y)
        s = ys[axis]
        dims = list(xs)
        dims[axis] = s
        if list(ys) != dims:
            raise LoweringError(f"node '{node.name}' (Split): output '{y.name}' {list(ys)} is not a slab of "
                                f"{list(xs)} along axis {axis}")
        if y.consumers or ctx.graph.is_graph_output(y):
            if numel(ys) == 0 or _contiguous_range([outer, s * inner], [total * inner, 1]):
                _view_or_copy(ctx, node, x, y, [outer, s * inner], off * inner, [total * inner, 1])
            else:
                segments.append([0, len(dsts), outer, s * inner, off * inner, total * inner, 0, s * inner])
                dsts.append(ctx.tensor(y))
        off += s
    if off != total:
        raise LoweringError(f"node '{node.name}' (Split): outputs add up to {off} along axis {axis}, the input has "
                            f"{total}")
    if segments:
        emit_copy_batch(ctx, [ctx.tensor(x)], dsts, segments, node.name)


# ----------------------------------------------------------------------------------------------------- slice --
def slice_params(shape: Sequence[int], starts: Sequence[int], ends: Sequence[int], axes: Sequence[int] | None,
                 steps: Sequence[int] | None, node: Node) -> tuple[list[int], list[int], list[int]]:
    """ONNX Slice -> (start, step, count) per dim, with the spec's clamping."""
    rank = len(shape)
    axes = list(range(len(starts))) if axes is None else list(axes)
    steps = [1] * len(starts) if steps is None else list(steps)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise LoweringError(f"node '{node.name}' (Slice): starts/ends/axes/steps have different lengths")
    start = [0] * rank
    step = [1] * rank
    count = [int(d) for d in shape]
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = normalize_axis(a, rank, node, "axes entry")
        dim = int(shape[a])
        if st == 0:
            raise LoweringError(f"node '{node.name}' (Slice): step 0 on axis {a}")
        s, e = int(s), int(e)
        if s < 0:
            s += dim
        if e < 0:
            e += dim
        if st > 0:
            s = min(max(s, 0), dim)
            e = min(max(e, 0), dim)
        else:
            s = min(max(s, 0), dim - 1)
            e = min(max(e, -1), dim - 1)
        n = max(0, -(-(e - s) // st)) if st > 0 else max(0, -(-(s - e) // -st))
        start[a], step[a], count[a] = s, int(st), n
    return start, step, count


@lowering("Slice")
def lower_slice(ctx: LowerCtx, node: Node) -> None:
    """Slice (starts/ends/axes/steps as inputs, or attributes before opset 10): a strided copy, or a view when
    the selected elements are a contiguous range."""
    x, y = node.inputs[0], node.outputs[0]
    assert x is not None
    xs = shape_of(x)
    if node.input(1) is not None:
        starts = ints_of(const_input(ctx, node, 1, "starts"))
        ends = ints_of(const_input(ctx, node, 2, "ends"))
        axes = ints_of(const_input(ctx, node, 3, "axes"))
        steps = ints_of(const_input(ctx, node, 4, "steps"))
    else:
        starts, ends = node.attr("starts"), node.attr("ends")
        axes, steps = node.attr("axes"), None
    if starts is None or ends is None:
        raise LoweringError(f"node '{node.name}' (Slice) has no starts/ends")
    start, step, count = slice_params(xs, starts, ends, axes, steps, node)
    if list(shape_of(y)) != count:
        raise LoweringError(f"node '{node.name}' (Slice): output '{y.name}' {list(shape_of(y))} does not match the "
                            f"sliced extents {count}")

    def ref() -> np.ndarray:
        arr = np.asarray(ctx.const_value(x))
        return arr[np.ix_(*[np.arange(n, dtype=np.int64) * st + s for s, st, n in zip(start, step, count)])]

    if _fold(ctx, node, ref):
        return
    cs = contiguous_strides(xs)
    in_off = sum(s * c for s, c in zip(start, cs))
    in_strides = [st * c for st, c in zip(step, cs)]
    _view_or_copy(ctx, node, x, y, count, in_off, in_strides)


# -------------------------------------------------------------------------------------------- expand / tile --
@lowering("Expand")
def lower_expand(ctx: LowerCtx, node: Node) -> None:
    """Expand: numpy broadcasting of the input to the output's shape (a copy with stride-0 dims)."""
    x, y = node.inputs[0], node.outputs[0]
    assert x is not None
    xs, ys = shape_of(x), shape_of(y)
    if _fold(ctx, node, lambda: np.broadcast_to(np.asarray(ctx.const_value(x)), ys)):
        return
    strides = broadcast_strides(xs, ys, f"input '{x.name}' of '{node.name}'")
    _view_or_copy(ctx, node, x, y, ys, 0, strides)


@lowering("Tile")
def lower_tile(ctx: LowerCtx, node: Node) -> None:
    """Tile(repeats): the output viewed as [r0, d0, r1, d1, ...] reads the input with stride 0 on the r dims."""
    x, y = node.inputs[0], node.outputs[0]
    assert x is not None
    xs, ys = shape_of(x), shape_of(y)
    if len(xs) != len(ys) or any(d == 0 and o != 0 for d, o in zip(xs, ys)) or any(
            d and o % d for d, o in zip(xs, ys)):
        raise LoweringError(f"node '{node.name}' (Tile): output {list(ys)} is not a tiling of {list(xs)}")
    reps = [o // d if d else 0 for d, o in zip(xs, ys)]
    if _fold(ctx, node, lambda: np.tile(np.asarray(ctx.const_value(x)), reps)):
        return
    cs = contiguous_strides(xs)
    dims: list[int] = []
    strides: list[int] = []
    for r, d, c in zip(reps, xs, cs):
        dims += [r, d]
        strides += [0, c]
    _view_or_copy(ctx, node, x, y, dims, 0, strides)


# ---------------------------------------------------------------------------------------------------- gather --
@lowering("Gather")
def lower_gather(ctx: LowerCtx, node: Node) -> None:
    """Gather(axis). Constant indices are range-checked here; a single constant index is a strided copy (or a
    view), others run the gather kernel."""
    data, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
    assert data is not None and idx is not None
    ds = shape_of(data)
    axis = normalize_axis(node.attr("axis", 0), len(ds), node)
    if idx.dtype not in (INT32, INT64):
        raise LoweringError(f"node '{node.name}' (Gather): indices '{idx.name}' must be int32 or int64")
    outer, n_axis, inner = numel(ds[:axis]), ds[axis], numel(ds[axis + 1:])
    ci = ctx.const_value(idx)
    if ci is not None:
        flat = np.asarray(ci, dtype=np.int64).reshape(-1)
        bad = flat[(flat < -n_axis) | (flat >= n_axis)]
        if bad.size:
            raise LoweringError(f"node '{node.name}' (Gather): index {int(bad[0])} is out of range for axis {axis} "
                                f"of extent {n_axis}")
        flat = np.where(flat < 0, flat + n_axis, flat)
        if _fold(ctx, node, lambda: np.take(np.asarray(ctx.const_value(data)), flat.reshape(np.shape(ci)), axis)):
            return
        if flat.size == 1:
            _view_or_copy(ctx, node, data, y, [outer, inner], int(flat[0]) * inner, [n_axis * inner, 1])
            return
    ctx.emit("gather", [ctx.tensor(data), ctx.tensor(idx)], [ctx.tensor(y)], ints=[outer, n_axis, inner],
             name=node.name)


MAX_GATHER_RANK = 8


@lowering("GatherElements")
def lower_gather_elements(ctx: LowerCtx, node: Node) -> None:
    """GatherElements(axis) on the ``gather_elements`` kernel. Constant indices are range-checked here; with constant
    data too (and a small result) the node is evaluated with numpy."""
    data, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
    assert data is not None and idx is not None
    ds, ids = shape_of(data), shape_of(idx)
    if idx.dtype not in (INT32, INT64):
        raise LoweringError(f"node '{node.name}' (GatherElements): indices '{idx.name}' must be int32 or int64")
    if len(ds) != len(ids) or not 1 <= len(ds) <= MAX_GATHER_RANK:
        raise LoweringError(f"node '{node.name}' (GatherElements): data {list(ds)} and indices {list(ids)} must have "
                            f"one rank in 1..{MAX_GATHER_RANK}")
    axis = normalize_axis(node.attr("axis", 0), len(ds), node)
    if any(i > d for k, (d, i) in enumerate(zip(ds, ids)) if k != axis):
        raise LoweringError(f"node '{node.name}' (GatherElements): indices {list(ids)} exceed data {list(ds)} on a "
                            f"dim other than axis {axis}")
    ci = ctx.const_value(idx)
    if ci is not None:
        flat = np.asarray(ci, dtype=np.int64).reshape(-1)
        bad = flat[(flat < -ds[axis]) | (flat >= ds[axis])]
        if bad.size:
            raise LoweringError(f"node '{node.name}' (GatherElements): index {int(bad[0])} is out of range for axis "
                                f"{axis} of extent {ds[axis]}")
        if _fold(ctx, node, lambda: gather_elements_ref(node, np.asarray(ctx.const_value(data)), np.asarray(ci))):
            return
    ctx.emit("gather_elements", [ctx.tensor(data), ctx.tensor(idx)], [ctx.tensor(y)],
             ints=[len(ds), axis, *ds, *ids], name=node.name)


@lowering("GatherND")
def lower_gather_nd(ctx: LowerCtx, node: Node) -> None:
    """GatherND(batch_dims) with indices known at build time: every index tuple becomes the row it picks of the
    data viewed as [rows, inner], and the ``gather`` kernel copies those rows (ints [1, rows, inner])."""
    data, y = node.inputs[0], node.outputs[0]
    assert data is not None
    ci = const_input(ctx, node, 1, "indices")
    assert ci is not None
    try:
        rows, shape, inner = gather_nd_rows(node, shape_of(data), np.asarray(ci))
    except OpError as e:
        raise LoweringError(str(e)) from None
    check_out_shape(node, y, shape)
    cd = ctx.const_value(data)
    if _fold(ctx, node, lambda: np.asarray(cd).reshape(-1, inner)[rows].reshape(shape)):
        return
    if rows.size == 1:
        _view_or_copy(ctx, node, data, y, [1, inner], int(rows[0]) * inner, [inner, 1])
        return
    ctx.emit("gather", [ctx.tensor(data), ctx.weight(rows, f"{node.name}:rows")], [ctx.tensor(y)],
             ints=[1, numel(shape_of(data)) // inner if inner else 0, inner], name=node.name)


# ------------------------------------------------------------------------------------------------------- pad --
PAD_MODES = {"constant": 0, "reflect": 1, "edge": 2}


def collapse_pad(in_dims: Sequence[int], pb: Sequence[int], pe: Sequence[int], mode: int
                 ) -> tuple[list[int], list[int], list[int]]:
    """Merge a dim into its outer neighbour when it is unpadded and (constant mode, or the neighbour is unpadded
    too): the merged dim's padding is then whole rows."""
    out_in: list[int] = []
    out_pb: list[int] = []
    out_pe: list[int] = []
    for n, b, e in zip(in_dims, pb, pe):
        if out_in and b == 0 and e == 0 and (mode == 0 or (out_pb[-1] == 0 and out_pe[-1] == 0)):
            out_in[-1] *= int(n)
            out_pb[-1] *= int(n)
            out_pe[-1] *= int(n)
            continue
        out_in.append(int(n))
        out_pb.append(int(b))
        out_pe.append(int(e))
    return out_in, out_pb, out_pe


@lowering("Pad")
def lower_pad(ctx: LowerCtx, node: Node) -> None:
    """Pad: modes constant, reflect, edge; pads (and axes) from the inputs (opset >= 11) or attributes."""
    x, y = node.inputs[0], node.outputs[0]
    assert x is not None
    xs, ys = shape_of(x), shape_of(y)
    rank = len(xs)
    mode_name = node.attr("mode", "constant")
    if isinstance(mode_name, bytes):
        mode_name = mode_name.decode()
    if mode_name not in PAD_MODES:
        raise LoweringError(f"node '{node.name}' (Pad): mode {mode_name!r} is not supported (constant, reflect, edge)")
    mode = PAD_MODES[mode_name]
    if node.input(1) is not None:
        pads = ints_of(const_input(ctx, node, 1, "pads"))
        cv = const_input(ctx, node, 2, "constant_value")
        value = 0 if cv is None or np.asarray(cv).size == 0 else np.asarray(cv).reshape(-1)[0]
        axes = ints_of(const_input(ctx, node, 3, "axes"))
    else:
        pads = [int(p) for p in node.attr("pads", [])]
        value = node.attr("value", 0.0)
        axes = None
    assert pads is not None
    axes = list(range(rank)) if axes is None else [normalize_axis(a, rank, node, "axes entry") for a in axes]
    if len(pads) != 2 * len(axes):
        raise LoweringError(f"node '{node.name}' (Pad): {len(pads)} pads for {len(axes)} axes")
    pb, pe = [0] * rank, [0] * rank
    for k, a in enumerate(axes):
        pb[a], pe[a] = int(pads[k]), int(pads[len(axes) + k])
    expect = [n + b + e for n, b, e in zip(xs, pb, pe)]
    if list(ys) != expect:
        raise LoweringError(f"node '{node.name}' (Pad): output '{y.name}' {list(ys)} does not match the padded "
                            f"shape {expect}")
    if all(b == 0 for b in pb) and all(e == 0 for e in pe):
        ctx.alias(y, x)
        return
    if mode != 0 and any(n == 0 and (b > 0 or e > 0) for n, b, e in zip(xs, pb, pe)):
        raise LoweringError(f"node '{node.name}' (Pad): {mode_name} padding of an empty dim")
    ci, cb, ce = collapse_pad(xs, pb, pe, mode)
    co = [n + b + e for n, b, e in zip(ci, cb, ce)]
    if len(ci) > MAX_DIMS:
        raise LoweringError(f"node '{node.name}' (Pad): {len(ci)} dims after collapsing (limit {MAX_DIMS})")
    ints = [mode, len(ci)] + ci + co + cb + [value_bits(value, x.dtype)]  # type: ignore[arg-type]
    ctx.emit("pad", [ctx.tensor(x)], [ctx.tensor(y)], ints=ints, name=node.name)


# ----------------------------------------------------------------------------------------------------- views --
@lowering("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")
def lower_view(ctx: LowerCtx, node: Node) -> None:
    """Same bytes, new shape: a view of the input (a copy only when the output must be a graph-output buffer)."""
    x, y = node.inputs[0], node.outputs[0]
    if x is None:
        raise LoweringError(f"node '{node.name}' ({node.op_type}) has no data input")
    if numel(shape_of(x)) != numel(shape_of(y)):
        raise LoweringError(f"node '{node.name}' ({node.op_type}): input '{x.name}' {list(shape_of(x))} and output "
                            f"'{y.name}' {list(shape_of(y))} differ in element count")
    c = ctx.const_value(x)
    if c is not None:
        arr = np.asarray(c).reshape(shape_of(y))
        if arr.size <= SMALL_CONST:
            ctx.constant(y, arr)
            return
        ctx.consts[id(y)] = arr
    ctx.alias(y, x)


@lowering("Dropout")
def lower_dropout(ctx: LowerCtx, node: Node) -> None:
    """Inference Dropout is the identity (the mask output must be unused)."""
    if len(node.outputs) > 1 and (node.outputs[1].consumers or ctx.graph.is_graph_output(node.outputs[1])):
        raise LoweringError(f"node '{node.name}' (Dropout): the mask output is used; only inference is lowered")
    training = const_input(ctx, node, 2, "training_mode")
    if training is not None and bool(np.asarray(training).reshape(-1)[0]):
        raise LoweringError(f"node '{node.name}' (Dropout): training_mode is true; only inference is lowered")
    x, y = node.inputs[0], node.outputs[0]
    assert x is not None
    ctx.alias(y, x)
