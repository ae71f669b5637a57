"""Data movement: Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout (inference), Transpose, Concat, Split,
Slice, Gather, GatherElements, GatherND, Expand, Tile, Pad. Reference and inference share one "plan" function per
op, computed from shapes and the (build-time known) shape operands, so the two cannot disagree.

Semantics (ONNX, with the opset differences handled):

* Reshape: ``0`` copies the input dimension (unless ``allowzero=1``, where it means 0), one ``-1`` is inferred.
* Flatten: ``[prod(shape[:axis]), prod(shape[axis:])]``, axis in [-r, r].
* Squeeze / Unsqueeze: axes from input 1 (opset >= 13) or the attribute; Squeeze without axes drops every 1.
  Unsqueeze's axes index the output.
* Dropout: the identity in inference (``training_mode`` absent or false); the optional mask is all true from
  opset 12 and, as onnxruntime computes it, all false before (bool; of the data's type before opset 10).
* Split: sizes from input 1 (opset >= 13) or the ``split`` attribute; else ``num_outputs`` (opset 18: chunks of
  ceil(d / n), the last one smaller); else equal parts.
* Slice: starts/ends/axes/steps from inputs (opset >= 10) or attributes; negative starts/ends count from the end,
  then they are clamped to [0, d] (step > 0) or [-1, d - 1] (step < 0).
* Gather: ``take(data, indices, axis)`` with negative indices counting from the end.
* GatherElements: ``Y[c] = data[c with c[axis] = indices[c]]`` over the indices' coordinates c (same rank as the
  data; negative indices count from the end). GatherND (``batch_dims`` b): each index tuple of length k picks the
  slice ``data[b.., i_1, .., i_k]``; Y is ``indices.shape[:-1] + data.shape[b + k:]``.
* Expand: bidirectional broadcast of the input with ``shape``. Tile: ``repeats`` per axis.
* Pad: pads ``[b_1 .. b_n, e_1 .. e_n]`` over ``axes`` (opset 18, default all); negative pads crop; modes
  constant (``constant_value``, default 0), reflect (mirror without the edge), edge, wrap.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ep_trtpy.ops._common import (as_ints, broadcast, fail, in_name, need_value, norm_axes, norm_axis, numel, opset,
                                  same_dtype)
from ep_trtpy.ops.registry import Info, infer, reference
from graph_partitioner.ir import BOOL, INT32, INT64, Node, dtype_name, elem_type, np_dtype

# ---------------------------------------------------------------------------------------------- Reshape --


def reshape_target(node: Node, in_shape: Sequence[int], spec: Sequence[int]) -> tuple[int, ...]:
    """The output shape of Reshape(in_shape, spec)."""
    allowzero = bool(int(node.attr("allowzero", 0)))
    out: list[int] = []
    infer_at = -1
    for i, d in enumerate(spec):
        if d == -1:
            if infer_at >= 0:
                raise fail(node, f"shape {list(spec)} has more than one -1")
            infer_at = i
            out.append(1)
        elif d == 0 and not allowzero:
            if i >= len(in_shape):
                raise fail(node, f"shape {list(spec)} copies dimension {i} (0) but the input has rank {len(in_shape)}")
            out.append(int(in_shape[i]))
        elif d < 0:
            raise fail(node, f"shape {list(spec)} has the invalid entry {d}")
        else:
            out.append(int(d))
    total = numel(in_shape)
    if infer_at >= 0:
        if allowzero and 0 in spec:
            raise fail(node, f"shape {list(spec)} has both -1 and 0 with allowzero=1")
        rest = numel(out)
        if rest == 0 or total % rest:
            raise fail(node, f"cannot reshape {list(in_shape)} ({total} elements) to {list(spec)}")
        out[infer_at] = total // rest
    if numel(out) != total:
        raise fail(node, f"cannot reshape {list(in_shape)} ({total} elements) to {list(spec)} ({out})")
    return tuple(out)


def _reshape_spec(node: Node, shape_value: np.ndarray | None) -> list[int]:
    if shape_value is not None:
        return as_ints(node, shape_value, f"shape {in_name(node, 1)}")
    if node.attr("shape") is not None:  # Reshape-1
        return [int(v) for v in node.attr("shape")]
    raise fail(node, "has no shape input")


@reference("Reshape")
def reshape_ref(node: Node, x: np.ndarray, shape: np.ndarray | None = None) -> np.ndarray:
    return x.reshape(reshape_target(node, x.shape, _reshape_spec(node, shape)))


@infer("Reshape")
def reshape_infer(node: Node, x: Info, shape: Info | None = None) -> Info:
    val = need_value(node, shape, 1, "shape") if shape is not None else None
    return Info(x.dtype, reshape_target(node, x.shape, _reshape_spec(node, val)))


# ---------------------------------------------------------------------------------------------- Flatten --

def flatten_shape(node: Node, shape: Sequence[int]) -> tuple[int, int]:
    r = len(shape)
    axis = int(node.attr("axis", 1))
    if not -r <= axis <= r:
        raise fail(node, f"axis={axis} is out of range for rank {r}")
    if axis < 0:
        axis += r
    return numel(shape[:axis]), numel(shape[axis:])


@reference("Flatten")
def flatten_ref(node: Node, x: np.ndarray) -> np.ndarray:
    return x.reshape(flatten_shape(node, x.shape))


@infer("Flatten")
def flatten_infer(node: Node, x: Info) -> Info:
    return Info(x.dtype, flatten_shape(node, x.shape))


# ---------------------------------------------------------------------------------- Squeeze, Unsqueeze --

def _axes_operand(node: Node, value: np.ndarray | None) -> list[int] | None:
    if value is not None:
        return as_ints(node, value, f"axes {in_name(node, 1)}")
    a = node.attr("axes")
    return None if a is None else [int(v) for v in a]


def squeeze_shape(node: Node, shape: Sequence[int], axes_value: np.ndarray | None) -> tuple[int, ...]:
    axes = _axes_operand(node, axes_value)
    if axes is None:
        return tuple(d for d in shape if d != 1)
    ax = norm_axes(node, axes, len(shape))
    for a in ax:
        if shape[a] != 1:
            raise fail(node, f"cannot squeeze axis {a} of size {shape[a]} (input shape {list(shape)})")
    return tuple(d for i, d in enumerate(shape) if i not in ax)


def unsqueeze_shape(node: Node, shape: Sequence[int], axes_value: np.ndarray | None) -> tuple[int, ...]:
    axes = _axes_operand(node, axes_value)
    if axes is None:
        raise fail(node, "has no axes")
    r = len(shape) + len(axes)
    ax = set(norm_axes(node, axes, r))
    it = iter(shape)
    return tuple(1 if i in ax else int(next(it)) for i in range(r))


@reference("Squeeze")
def squeeze_ref(node: Node, x: np.ndarray, axes: np.ndarray | None = None) -> np.ndarray:
    return x.reshape(squeeze_shape(node, x.shape, axes))


@infer("Squeeze")
def squeeze_infer(node: Node, x: Info, axes: Info | None = None) -> Info:
    val = need_value(node, axes, 1, "axes") if axes is not None else None
    return Info(x.dtype, squeeze_shape(node, x.shape, val))


@reference("Unsqueeze")
def unsqueeze_ref(node: Node, x: np.ndarray, axes: np.ndarray | None = None) -> np.ndarray:
    return x.reshape(unsqueeze_shape(node, x.shape, axes))


@infer("Unsqueeze")
def unsqueeze_infer(node: Node, x: Info, axes: Info | None = None) -> Info:
    val = need_value(node, axes, 1, "axes") if axes is not None else None
    return Info(x.dtype, unsqueeze_shape(node, x.shape, val))


# ------------------------------------------------------------------------------------ Identity, Dropout --

@reference("Identity")
def identity_ref(node: Node, x: np.ndarray) -> np.ndarray:
    return x


@infer("Identity")
def identity_infer(node: Node, x: Info) -> Info:
    return Info(x.dtype, x.shape)


def _dropout_check(node: Node, ratio: np.ndarray | None, training: np.ndarray | None) -> None:
    if training is not None and bool(np.asarray(training).reshape(-1)[0]):
        raise fail(node, "training_mode is true; only inference Dropout is supported")
    if opset(node) < 7 and node.attr("is_test") is not None and not int(node.attr("is_test", 0)):
        raise fail(node, "is_test=0 (training) is not supported")


def _mask_dtype(node: Node, x_dtype: int) -> int:
    return BOOL if opset(node) >= 10 else x_dtype


@reference("Dropout")
def dropout_ref(node: Node, x: np.ndarray, ratio: np.ndarray | None = None, training: np.ndarray | None = None
                ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    _dropout_check(node, ratio, training)
    if len(node.outputs) < 2:
        return x
    fill = np.ones if opset(node) >= 12 else np.zeros
    return x, fill(x.shape, np_dtype(_mask_dtype(node, elem_type(x.dtype))))


@infer("Dropout")
def dropout_infer(node: Node, x: Info, ratio: Info | None = None, training: Info | None = None
                  ) -> Info | list[Info]:
    tv = need_value(node, training, 2, "training_mode") if training is not None else None
    _dropout_check(node, None, tv)
    y = Info(x.dtype, x.shape)
    if len(node.outputs) < 2:
        return y
    return [y, Info(_mask_dtype(node, x.dtype), x.shape)]


# -------------------------------------------------------------------------------------------- Transpose --

def _perm(node: Node, rank: int) -> list[int]:
    p = node.attr("perm")
    if p is None:
        return list(reversed(range(rank)))
    p = [int(v) for v in p]
    if sorted(p) != list(range(rank)):
        raise fail(node, f"perm={p} is not a permutation of the {rank} axes")
    return p


@reference("Transpose")
def transpose_ref(node: Node, x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(x, _perm(node, x.ndim)))


@infer("Transpose")
def transpose_infer(node: Node, x: Info) -> Info:
    return Info(x.dtype, tuple(x.shape[i] for i in _perm(node, len(x.shape))))


# ----------------------------------------------------------------------------------------------- Concat --

def concat_shape(node: Node, shapes: Sequence[Sequence[int]]) -> tuple[int, tuple[int, ...]]:
    """(normalized axis, output shape)."""
    if not shapes:
        raise fail(node, "has no inputs")
    r = len(shapes[0])
    if r == 0:
        raise fail(node, "cannot concatenate 0-d tensors")
    if node.attr("axis") is None:
        raise fail(node, "has no axis attribute")
    axis = norm_axis(node, int(node.attr("axis")), r)
    out = list(shapes[0])
    for i, s in enumerate(shapes[1:], start=1):
        if len(s) != r or any(s[a] != out[a] for a in range(r) if a != axis):
            raise fail(node, f"{in_name(node, i)} has shape {list(s)}, which does not fit {list(shapes[0])} "
                             f"along axis {axis}")
        out[axis] += s[axis]
    return axis, tuple(out)


@reference("Concat")
def concat_ref(node: Node, *xs: np.ndarray) -> np.ndarray:
    axis, _ = concat_shape(node, [x.shape for x in xs])
    return np.concatenate(xs, axis=axis)


@infer("Concat")
def concat_infer(node: Node, *xs: Info) -> Info:
    t = same_dtype(node, list(xs))
    return Info(t, concat_shape(node, [x.shape for x in xs])[1])


# ------------------------------------------------------------------------------------------------ Split --

def split_sizes(node: Node, shape: Sequence[int], split_value: np.ndarray | None) -> tuple[int, list[int]]:
    """(normalized axis, output sizes along it)."""
    if not shape:
        raise fail(node, "cannot split a 0-d tensor")
    axis = norm_axis(node, int(node.attr("axis", 0)), len(shape))
    d = int(shape[axis])
    n = len(node.outputs)
    if split_value is not None:
        sizes = as_ints(node, split_value, f"split {in_name(node, 1)}")
    elif node.attr("split") is not None:
        sizes = [int(v) for v in node.attr("split")]
    elif node.attr("num_outputs") is not None:
        k = int(node.attr("num_outputs"))
        if k <= 0 or k != n:
            raise fail(node, f"num_outputs={k} but the node has {n} outputs")
        chunk = -(-d // k)
        sizes = [chunk] * (k - 1) + [d - chunk * (k - 1)]
        if sizes[-1] < 0:
            raise fail(node, f"axis {axis} of size {d} cannot be split into {k} chunks of {chunk}")
        return axis, sizes
    else:
        if n <= 0 or d % n:
            raise fail(node, f"axis {axis} of size {d} cannot be split into {n} equal parts")
        return axis, [d // n] * n
    if len(sizes) != n or sum(sizes) != d or any(s < 0 for s in sizes):
        raise fail(node, f"split {sizes} does not cover axis {axis} of size {d} with {n} outputs")
    return axis, sizes


@reference("Split")
def split_ref(node: Node, x: np.ndarray, split: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    axis, sizes = split_sizes(node, x.shape, split)
    cuts = np.cumsum(sizes)[:-1]
    return tuple(np.split(x, cuts, axis=axis))


@infer("Split")
def split_infer(node: Node, x: Info, split: Info | None = None) -> list[Info]:
    val = need_value(node, split, 1, "split") if split is not None else None
    axis, sizes = split_sizes(node, x.shape, val)
    return [Info(x.dtype, tuple(s if i == axis else d for i, d in enumerate(x.shape))) for s in sizes]


# ------------------------------------------------------------------------------------------------ Slice --

def slice_plan(node: Node, shape: Sequence[int], starts: Sequence[int], ends: Sequence[int],
               axes: Sequence[int] | None, steps: Sequence[int] | None) -> tuple[slice, ...]:
    """Python slices (one per input axis) implementing ONNX Slice's clamping rules."""
    r = len(shape)
    if len(starts) != len(ends):
        raise fail(node, f"starts {list(starts)} and ends {list(ends)} differ in length")
    axes = list(range(len(starts))) if axes is None else list(axes)
    steps = [1] * len(starts) if steps is None else list(steps)
    if len(axes) != len(starts) or len(steps) != len(starts):
        raise fail(node, f"starts, ends, axes {axes} and steps {steps} differ in length")
    sl = [slice(None)] * r
    for a, s, e, st in zip(norm_axes(node, axes, r), starts, ends, steps):
        d = int(shape[a])
        if st == 0:
            raise fail(node, f"step 0 on axis {a}")
        s = s + d if s < 0 else s
        e = e + d if e < 0 else e
        if st > 0:
            s, e = min(max(s, 0), d), min(max(e, 0), d)
            sl[a] = slice(s, e, st)
        else:
            s, e = min(max(s, 0), d - 1), min(max(e, -1), d - 1)
            sl[a] = slice(s, e if e >= 0 else None, st)
    return tuple(sl)


def _slice_operands(node: Node, vals: Sequence[np.ndarray | None]
                    ) -> tuple[list[int], list[int], list[int] | None, list[int] | None]:
    if opset(node) < 10 and node.attr("starts") is not None:
        axes = node.attr("axes")
        return ([int(v) for v in node.attr("starts")], [int(v) for v in node.attr("ends")],
                None if axes is None else [int(v) for v in axes], None)
    names = ("starts", "ends", "axes", "steps")
    got = [None if v is None else as_ints(node, v, f"{names[k]} {in_name(node, k + 1)}") for k, v in enumerate(vals)]
    got += [None] * (4 - len(got))
    if got[0] is None or got[1] is None:
        raise fail(node, "needs starts and ends")
    return got[0], got[1], got[2], got[3]


def _sliced_shape(shape: Sequence[int], sl: tuple[slice, ...]) -> tuple[int, ...]:
    return tuple(len(range(*s.indices(int(d)))) for s, d in zip(sl, shape))


@reference("Slice")
def slice_ref(node: Node, x: np.ndarray, *operands: np.ndarray | None) -> np.ndarray:
    starts, ends, axes, steps = _slice_operands(node, operands)
    return np.ascontiguousarray(x[slice_plan(node, x.shape, starts, ends, axes, steps)])


@infer("Slice")
def slice_infer(node: Node, x: Info, *operands: Info | None) -> Info:
    names = ("starts", "ends", "axes", "steps")
    vals = [None if o is None else need_value(node, o, k + 1, names[k]) for k, o in enumerate(operands)]
    starts, ends, axes, steps = _slice_operands(node, vals)
    return Info(x.dtype, _sliced_shape(x.shape, slice_plan(node, x.shape, starts, ends, axes, steps)))


# ----------------------------------------------------------------------------------------------- Gather --

@reference("Gather")
def gather_ref(node: Node, x: np.ndarray, indices: np.ndarray) -> np.ndarray:
    axis = norm_axis(node, int(node.attr("axis", 0)), x.ndim)
    d = x.shape[axis]
    idx = indices.astype(np.int64)
    if idx.size and (idx.min() < -d or idx.max() >= d):
        raise fail(node, f"indices {in_name(node, 1)} hold values outside [-{d}, {d - 1}] for axis {axis}")
    idx = np.where(idx < 0, idx + d, idx)
    return np.take(x, idx, axis=axis)


@infer("Gather")
def gather_infer(node: Node, x: Info, indices: Info) -> Info:
    if indices.dtype not in (INT32, INT64):
        raise fail(node, f"indices {in_name(node, 1)} are {dtype_name(indices.dtype)}; int32 or int64 expected")
    if not x.shape:
        raise fail(node, f"cannot gather from 0-d {in_name(node, 0)}")
    axis = norm_axis(node, int(node.attr("axis", 0)), len(x.shape))
    if indices.value is not None and indices.value.size:
        d = x.shape[axis]
        if indices.value.min() < -d or indices.value.max() >= d:
            raise fail(node, f"indices {in_name(node, 1)} hold values outside [-{d}, {d - 1}] for axis {axis}")
    return Info(x.dtype, tuple(x.shape[:axis]) + tuple(indices.shape) + tuple(x.shape[axis + 1:]))


def _index_check(node: Node, idx: np.ndarray, extent: int | Sequence[int], what: str) -> np.ndarray:
    """int64 indices with negative ones wrapped once; an OpError when one is outside [-extent, extent)."""
    idx = idx.astype(np.int64)
    ext = np.asarray(extent, dtype=np.int64)
    if idx.size and (np.any(idx < -ext) or np.any(idx >= ext)):
        raise fail(node, f"{what} hold values outside [-d, d) of the dims {np.atleast_1d(ext).tolist()} they index")
    return np.where(idx < 0, idx + ext, idx)


def _gather_elements_axis(node: Node, data: Sequence[int], indices: Sequence[int]) -> int:
    if len(data) != len(indices) or not data:
        raise fail(node, f"data {list(data)} and indices {list(indices)} must have the same rank (at least 1)")
    axis = norm_axis(node, int(node.attr("axis", 0)), len(data))
    if any(i > d for k, (d, i) in enumerate(zip(data, indices)) if k != axis):
        raise fail(node, f"indices {list(indices)} exceed data {list(data)} on a dim other than axis {axis}")
    return axis


@reference("GatherElements")
def gather_elements_ref(node: Node, x: np.ndarray, indices: np.ndarray) -> np.ndarray:
    axis = _gather_elements_axis(node, x.shape, indices.shape)
    coords = list(np.indices(indices.shape, sparse=True))
    coords[axis] = _index_check(node, indices, x.shape[axis], f"indices {in_name(node, 1)}")
    return x[tuple(coords)]


@infer("GatherElements")
def gather_elements_infer(node: Node, x: Info, indices: Info) -> Info:
    if indices.dtype not in (INT32, INT64):
        raise fail(node, f"indices {in_name(node, 1)} are {dtype_name(indices.dtype)}; int32 or int64 expected")
    _gather_elements_axis(node, x.shape, indices.shape)
    return Info(x.dtype, tuple(indices.shape))


def gather_nd_rows(node: Node, data: Sequence[int], indices: np.ndarray) -> tuple[np.ndarray, tuple[int, ...], int]:
    """GatherND as a gather of rows: data viewed as [rows, inner] with inner = prod(data[b + k:]); returns the row
    of every index tuple (batch offset included, int64, in the order of Y), Y's shape and inner."""
    b, shape = int(node.attr("batch_dims", 0)), gather_nd_shape(node, data, indices.shape)
    k = indices.shape[-1]
    dims = tuple(data[b:b + k])
    tuples = _index_check(node, indices.reshape(numel(data[:b]), -1, k), dims, f"indices {in_name(node, 1)}")
    rows = np.ravel_multi_index(tuple(np.moveaxis(tuples, -1, 0)), dims)
    rows = rows + (np.arange(numel(data[:b]), dtype=np.int64) * numel(dims)).reshape(-1, 1)
    return rows.reshape(-1).astype(np.int64), shape, numel(data[b + k:])


def gather_nd_shape(node: Node, data: Sequence[int], indices: Sequence[int]) -> tuple[int, ...]:
    b = int(node.attr("batch_dims", 0))
    k = indices[-1] if indices else -1
    if not indices or not 0 <= b < min(len(data), len(indices)) or not 1 <= k <= len(data) - b:
        raise fail(node, f"data {list(data)}, indices {list(indices)} and batch_dims={b} do not fit (rank(indices) "
                         f"and rank(data) > batch_dims, 1 <= indices.shape[-1] <= rank(data) - batch_dims)")
    if tuple(data[:b]) != tuple(indices[:b]):
        raise fail(node, f"the batch dims of data {list(data)} and indices {list(indices)} differ")
    return tuple(indices[:-1]) + tuple(data[b + k:])


@reference("GatherND")
def gather_nd_ref(node: Node, x: np.ndarray, indices: np.ndarray) -> np.ndarray:
    rows, shape, inner = gather_nd_rows(node, x.shape, indices)
    return x.reshape(x.size // inner if inner else 0, inner)[rows].reshape(shape)


@infer("GatherND")
def gather_nd_infer(node: Node, x: Info, indices: Info) -> Info:
    if indices.dtype != INT64:
        raise fail(node, f"indices {in_name(node, 1)} are {dtype_name(indices.dtype)}; int64 expected")
    return Info(x.dtype, gather_nd_shape(node, x.shape, indices.shape))


# ------------------------------------------------------------------------------------------ Expand, Tile --

def _expand_shape(node: Node, shape: Sequence[int], spec: np.ndarray) -> tuple[int, ...]:
    target = as_ints(node, spec, f"shape {in_name(node, 1)}")
    if any(d < 0 for d in target):
        raise fail(node, f"shape {target} has a negative entry")
    return broadcast(node, shape, target)


@reference("Expand")
def expand_ref(node: Node, x: np.ndarray, shape: np.ndarray) -> np.ndarray:
    return np.array(np.broadcast_to(x, _expand_shape(node, x.shape, shape)))


@infer("Expand")
def expand_infer(node: Node, x: Info, shape: Info) -> Info:
    return Info(x.dtype, _expand_shape(node, x.shape, need_value(node, shape, 1, "shape")))


def _repeats(node: Node, rank: int, value: np.ndarray) -> list[int]:
    reps = as_ints(node, value, f"repeats {in_name(node, 1)}")
    if len(reps) != rank or any(r < 0 for r in reps):
        raise fail(node, f"repeats {reps} must hold {rank} non-negative entries")
    return reps


@reference("Tile")
def tile_ref(node: Node, x: np.ndarray, repeats: np.ndarray) -> np.ndarray:
    return np.tile(x, _repeats(node, x.ndim, repeats)) if x.ndim else x.copy()


@infer("Tile")
def tile_infer(node: Node, x: Info, repeats: Info) -> Info:
    reps = _repeats(node, len(x.shape), need_value(node, repeats, 1, "repeats"))
    return Info(x.dtype, tuple(d * r for d, r in zip(x.shape, reps)))


# -------------------------------------------------------------------------------------------------- Pad --

PAD_MODES = ("constant", "reflect", "edge", "wrap")


def pad_plan(node: Node, shape: Sequence[int], pads_value: np.ndarray | None, axes_value: np.ndarray | None
             ) -> tuple[list[int], list[int]]:
    """(begin, end) pads per input axis (negative = crop)."""
    r = len(shape)
    mode = node.attr("mode", "constant")
    if mode not in PAD_MODES:
        raise fail(node, f"mode={mode!r} is not one of {', '.join(PAD_MODES)}")
    if pads_value is not None:
        pads = as_ints(node, pads_value, f"pads {in_name(node, 1)}")
    elif node.attr("pads") is not None:
        pads = [int(v) for v in node.attr("pads")]
    else:
        raise fail(node, "has no pads")
    axes = list(range(r)) if axes_value is None else norm_axes(node, as_ints(node, axes_value, "axes"), r)
    if len(pads) != 2 * len(axes):
        raise fail(node, f"pads {pads} has {len(pads)} entries; {2 * len(axes)} expected for axes {axes}")
    begin, end = [0] * r, [0] * r
    for k, a in enumerate(axes):
        begin[a], end[a] = pads[k], pads[k + len(axes)]
    for a in range(r):
        if shape[a] + begin[a] + end[a] < 0:
            raise fail(node, f"pads {begin[a]}+{end[a]} crop more than axis {a} of size {shape[a]}")
        if mode != "constant" and (begin[a] > 0 or end[a] > 0) and shape[a] + min(begin[a], 0) + min(end[a], 0) == 0:
            raise fail(node, f"mode {mode!r} cannot pad axis {a}, which is empty")
    return begin, end


@reference("Pad")
def pad_ref(node: Node, x: np.ndarray, pads: np.ndarray | None = None, value: np.ndarray | None = None,
            axes: np.ndarray | None = None) -> np.ndarray:
    begin, end = pad_plan(node, x.shape, pads, axes)
    crop = tuple(slice(-b if b < 0 else 0, d + e if e < 0 else d) for b, e, d in zip(begin, end, x.shape))
    xc = x[crop]
    width = [(max(b, 0), max(e, 0)) for b, e in zip(begin, end)]
    mode = node.attr("mode", "constant")
    if mode == "constant":
        if value is not None and np.asarray(value).size:
            cv = np.asarray(value).reshape(-1)[0]
        else:
            cv = node.attr("value", 0.0) if value is None else 0
        return np.pad(xc, width, mode="constant", constant_values=np.asarray(cv).astype(x.dtype))
    return np.pad(xc, width, mode=mode)


@infer("Pad")
def pad_infer(node: Node, x: Info, pads: Info | None = None, value: Info | None = None,
              axes: Info | None = None) -> Info:
    pv = need_value(node, pads, 1, "pads") if pads is not None else None
    av = need_value(node, axes, 3, "axes") if axes is not None else None
    if value is not None and value.dtype != x.dtype:
        raise fail(node, f"constant_value {in_name(node, 2)} is {dtype_name(value.dtype)} but the data is "
                         f"{dtype_name(x.dtype)}")
    begin, end = pad_plan(node, x.shape, pv, av)
    return Info(x.dtype, tuple(d + b + e for d, b, e in zip(x.shape, begin, end)))
