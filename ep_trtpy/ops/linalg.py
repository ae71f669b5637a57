"""Linear algebra: Conv, ConvTranspose, Gemm, MatMul, Einsum (reference and inference).

Float data (float16, float32, float64) is computed in float64 (products and sums) and rounded once to the output
type, so the reference is more exact than any float32 implementation it judges; integer MatMul and Gemm accumulate
in int64.

Conv (1-D/2-D/3-D), X [N, C, *in], W [M, C/group, *k], B [M] optional::

    Y[n, m, o] = B[m] + sum_{c in group(m), j} Xpad[n, c, o * stride + j * dilation] * W[m, c, j]

computed as im2col (a strided window view copied to [N, group, C/group * K, P]) times W [group, M/group, C/group
* K]. Pads and output sizes follow :mod:`ep_trtpy.ops._spatial` (explicit pads or auto_pad).

ConvTranspose, X [N, C, *in], W [C, M/group, *k], B [M] optional: every input pixel scatters W into the output::

    Full[n, m, i * stride + j * dilation] += X[n, c, i] * W[c, m, j],   Y = Full[..., pad_begin : pad_begin + out]

with ``out = full - pad_begin - pad_end``, ``full = stride * (in - 1) + output_padding + (k - 1) * dilation + 1``
(VALID: no pads). With ``output_shape`` (or auto_pad SAME_*, which means ``out = min(in * stride, full)``) the
total padding ``full - out`` is split in half, the odd one at the end for SAME_UPPER and at the beginning
otherwise (the ONNX rule, as onnxruntime 1.31 computes it); a negative total (a larger output) adds zeros at the
end.

Gemm: ``Y = alpha * A' @ B' + beta * C`` (A' = A^T if transA, B' = B^T if transB; C unidirectionally broadcast to
[M, N], optional). MatMul: numpy matmul (1-D operands promoted and the added axis removed; batch axes broadcast).
Einsum: numpy einsum semantics of ``equation`` (explicit ``->`` or implicit output, ellipsis broadcast).
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Sequence

import numpy as np

from ep_trtpy.ops._common import (broadcast, fail, in_name, is_float_np, is_numeric, need_float, numel, same_dtype,
                                  spatial_attr, unidirectional)
from ep_trtpy.ops._spatial import conv_params, pad_spatial, window_geometry, windows
from ep_trtpy.ops.registry import Info, infer, reference
from graph_partitioner.ir import BOOL, Node, dtype_name

# ------------------------------------------------------------------------------------------------- Conv --


def _conv_check(node: Node, x_shape: Sequence[int], w_shape: Sequence[int]) -> tuple[int, int]:
    """(n_spatial, group) after checking ranks and channel counts."""
    if len(x_shape) < 3 or len(w_shape) != len(x_shape):
        raise fail(node, f"X {in_name(node, 0)} of shape {list(x_shape)} and W {in_name(node, 1)} of shape "
                         f"{list(w_shape)} must both have rank 3, 4 or 5")
    group = int(node.attr("group", 1))
    if group <= 0:
        raise fail(node, f"group={group} must be positive")
    return len(x_shape) - 2, group


def conv_plan(node: Node, x_shape: Sequence[int], w_shape: Sequence[int]
              ) -> tuple[list[int], list[int], list[int], list[int], list[int], list[int], int]:
    """Conv: (kernel, strides, dilations, pads_begin, pads_end, out_spatial, group), checked."""
    n_sp, group = _conv_check(node, x_shape, w_shape)
    c, m = int(x_shape[1]), int(w_shape[0])
    if c % group or m % group or int(w_shape[1]) * group != c:
        raise fail(node, f"X has {c} channels and W has shape {list(w_shape)}, which do not fit group={group}")
    kernel, strides, dils = conv_params(node, n_sp, w_shape[2:])
    begin, end, out = window_geometry(node, x_shape[2:], kernel, strides, dils)
    return kernel, strides, dils, begin, end, out, group


def conv2(x: np.ndarray, w: np.ndarray, kernel: Sequence[int], strides: Sequence[int], dils: Sequence[int],
          begin: Sequence[int], end: Sequence[int], out: Sequence[int], group: int) -> np.ndarray:
    """The convolution sum (no bias) in the compute type of x and w (already float32/float64)."""
    n, c = x.shape[:2]
    m = w.shape[0]
    cg, mg = c // group, m // group
    k = numel(kernel)
    p = numel(out)
    ct = np.result_type(x.dtype, w.dtype)
    if n * m * p == 0:
        return np.zeros((n, m, *out), ct)
    if all(v == 1 for v in kernel) and all(v == 1 for v in strides) and not any(begin) and not any(end):
        cols = x.reshape(n, group, cg, p)
    else:
        xp = pad_spatial(x, begin, end)
        win = windows(xp, kernel, strides, dils, out)  # [N, C, *out, *k]
        n_sp = len(kernel)
        perm = (0, 1) + tuple(range(2 + n_sp, 2 + 2 * n_sp)) + tuple(range(2, 2 + n_sp))
        cols = np.ascontiguousarray(win.transpose(perm)).reshape(n, group, cg * k, p)
    wg = w.reshape(group, mg, cg * k).astype(ct, copy=False)
    if group == 1:
        y = np.matmul(wg[0], cols[:, 0])  # [N, M, P]
    else:
        y = np.matmul(wg[None], cols)  # [N, G, Mg, P]
    return y.reshape(n, m, *out)


def _bias_shape(m: int, n_sp: int) -> tuple[int, ...]:
    return (1, m) + (1,) * n_sp


def _cfloat(*arrays: np.ndarray | None) -> type:
    """The float compute dtype: float64 always (see the module docstring)."""
    del arrays
    return np.float64


@reference("Conv")
def conv_ref(node: Node, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    kernel, strides, dils, begin, end, out, group = conv_plan(node, x.shape, w.shape)
    ct = _cfloat(x, w, b)
    y = conv2(x.astype(ct, copy=False), w.astype(ct, copy=False), kernel, strides, dils, begin, end, out, group)
    if b is not None:
        y = y + b.astype(ct).reshape(_bias_shape(w.shape[0], len(kernel)))
    return y.astype(x.dtype, copy=False)


@infer("Conv")
def conv_infer(node: Node, x: Info, w: Info, b: Info | None = None) -> Info:
    need_float(node, x)
    same_dtype(node, [x, w, b])
    kernel, strides, dils, begin, end, out, group = conv_plan(node, x.shape, w.shape)
    if b is not None and tuple(b.shape) != (w.shape[0],):
        raise fail(node, f"B {in_name(node, 2)} has shape {list(b.shape)}; [{w.shape[0]}] expected")
    return Info(x.dtype, (x.shape[0], w.shape[0], *out))


# ---------------------------------------------------------------------------------------- ConvTranspose --


def conv_transpose_plan(node: Node, x_shape: Sequence[int], w_shape: Sequence[int]
                        ) -> tuple[list[int], list[int], list[int], list[int], list[int], list[int], int]:
    """ConvTranspose: (kernel, strides, dilations, pads_begin, pads_end, out_spatial, group), checked."""
    n_sp, group = _conv_check(node, x_shape, w_shape)
    c = int(x_shape[1])
    if c % group or int(w_shape[0]) != c:
        raise fail(node, f"X has {c} channels and W has shape {list(w_shape)}, which do not fit group={group}")
    kernel, strides, dils = conv_params(node, n_sp, w_shape[2:])
    out_pad = spatial_attr(node, "output_padding", n_sp, 0)
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise fail(node, f"auto_pad={auto_pad!r} is not NOTSET, VALID, SAME_UPPER or SAME_LOWER")
    if any(s <= 0 for s in strides) or any(d <= 0 for d in dils):
        raise fail(node, f"strides {strides} and dilations {dils} must be positive")
    in_sp = [int(d) for d in x_shape[2:]]
    full = [strides[i] * (in_sp[i] - 1) + out_pad[i] + (kernel[i] - 1) * dils[i] + 1 for i in range(n_sp)]
    out_shape = node.attr("output_shape")
    if out_shape is not None:
        out_shape = [int(v) for v in out_shape]
        if len(out_shape) == n_sp + 2:
            out_shape = out_shape[2:]
        if len(out_shape) != n_sp:
            raise fail(node, f"output_shape={out_shape} does not have {n_sp} spatial entries")
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):  # in * stride, but never more than the full result
        out_shape = [min(in_sp[i] * strides[i], full[i]) for i in range(n_sp)]
    if out_shape is not None:
        begin, end = [], []
        for i in range(n_sp):
            total = full[i] - out_shape[i]
            if total < 0:  # a larger output than the full result: zeros at the end
                b = 0
            else:
                b = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            begin.append(b)
            end.append(total - b)
        out = list(out_shape)
    else:
        pads = [0] * (2 * n_sp) if auto_pad == "VALID" else [int(p) for p in node.attr("pads", [0] * (2 * n_sp))]
        if len(pads) != 2 * n_sp:
            raise fail(node, f"pads={pads} has {len(pads)} entries; {2 * n_sp} expected")
        begin, end = pads[:n_sp], pads[n_sp:]
        out = [full[i] - begin[i] - end[i] for i in range(n_sp)]
    if any(o < 0 for o in out):
        raise fail(node, f"output spatial shape {out} is negative (input {in_sp}, pads {begin}+{end})")
    return kernel, strides, dils, begin, end, out, group


def conv_transpose2(x: np.ndarray, w: np.ndarray, kernel: Sequence[int], strides: Sequence[int],
                    dils: Sequence[int], begin: Sequence[int], out: Sequence[int], group: int) -> np.ndarray:
    """The transposed convolution (no bias) in the compute type of x and w."""
    n, c = x.shape[:2]
    in_sp = x.shape[2:]
    n_sp = len(kernel)
    mg = w.shape[1]
    m = mg * group
    cg = c // group
    k = numel(kernel)
    ct = np.result_type(x.dtype, w.dtype)
    span = [(in_sp[i] - 1) * strides[i] + (kernel[i] - 1) * dils[i] + 1 if in_sp[i] else 0 for i in range(n_sp)]
    size = [max(span[i], begin[i] + out[i], 0) for i in range(n_sp)]
    full = np.zeros((n, m, *size), ct)
    if x.size and w.size:
        xg = x.reshape(n, group, cg, numel(in_sp))
        wg = w.reshape(group, cg, mg * k).transpose(0, 2, 1)  # [G, Mg*K, Cg]
        cols = np.matmul(wg[None], xg).reshape(n, m, *kernel, *in_sp)  # [N, M, *k, *in]
        for j in itertools.product(*[range(kk) for kk in kernel]):
            sl = tuple(slice(j[i] * dils[i], j[i] * dils[i] + (in_sp[i] - 1) * strides[i] + 1, strides[i])
                       for i in range(n_sp))
            full[(slice(None), slice(None)) + sl] += cols[(slice(None), slice(None)) + tuple(j)]
    crop = tuple(slice(begin[i], begin[i] + out[i]) for i in range(n_sp))
    return full[(slice(None), slice(None)) + crop]


@reference("ConvTranspose")
def conv_transpose_ref(node: Node, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    kernel, strides, dils, begin, end, out, group = conv_transpose_plan(node, x.shape, w.shape)
    ct = _cfloat(x, w, b)
    y = conv_transpose2(x.astype(ct, copy=False), w.astype(ct, copy=False), kernel, strides, dils, begin, out,
                        group)
    if b is not None:
        y = y + b.astype(ct).reshape(_bias_shape(y.shape[1], len(kernel)))
    return np.ascontiguousarray(y).astype(x.dtype, copy=False)


@infer("ConvTranspose")
def conv_transpose_infer(node: Node, x: Info, w: Info, b: Info | None = None) -> Info:
    need_float(node, x)
    same_dtype(node, [x, w, b])
    kernel, strides, dils, begin, end, out, group = conv_transpose_plan(node, x.shape, w.shape)
    m = w.shape[1] * group
    if b is not None and tuple(b.shape) != (m,):
        raise fail(node, f"B {in_name(node, 2)} has shape {list(b.shape)}; [{m}] expected")
    return Info(x.dtype, (x.shape[0], m, *out))


# ------------------------------------------------------------------------------------------ Gemm, MatMul --


def _acc_dtype(*arrays: np.ndarray | None) -> type:
    """Accumulation dtype: float64 for float inputs, int64 for integers."""
    if any(is_float_np(a.dtype) for a in arrays if a is not None):
        return _cfloat(*arrays)
    return np.int64


def _to_out(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.dtype(dtype).kind in "iu" and y.dtype.kind == "f":
        y = np.trunc(y)
    return np.asarray(y.astype(dtype, copy=False))


def _gemm_dims(node: Node, a: Sequence[int], b: Sequence[int]) -> tuple[int, int, int]:
    if len(a) != 2 or len(b) != 2:
        raise fail(node, f"A {in_name(node, 0)} {list(a)} and B {in_name(node, 1)} {list(b)} must be 2-D")
    m, ka = (a[1], a[0]) if int(node.attr("transA", 0)) else (a[0], a[1])
    kb, n = (b[1], b[0]) if int(node.attr("transB", 0)) else (b[0], b[1])
    if ka != kb:
        raise fail(node, f"A' is [{m}, {ka}] and B' is [{kb}, {n}]: inner dimensions differ")
    return int(m), int(ka), int(n)


@reference("Gemm")
def gemm_ref(node: Node, a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
    _gemm_dims(node, a.shape, b.shape)
    ct = _acc_dtype(a, b, c)
    fa = a.T if int(node.attr("transA", 0)) else a
    fb = b.T if int(node.attr("transB", 0)) else b
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    y = np.matmul(fa.astype(ct), fb.astype(ct))
    if alpha != 1.0:
        y = y * (ct(alpha) if ct is not np.int64 else alpha)
    if c is not None and beta != 0.0:
        cc = c.astype(ct)
        y = y + (cc if beta == 1.0 else cc * (ct(beta) if ct is not np.int64 else beta))
    return _to_out(np.broadcast_to(y, y.shape), a.dtype)


@infer("Gemm")
def gemm_infer(node: Node, a: Info, b: Info, c: Info | None = None) -> Info:
    same_dtype(node, [a, b, c])
    if a.dtype == BOOL:
        raise fail(node, "Gemm needs numeric inputs")
    m, _, n = _gemm_dims(node, a.shape, b.shape)
    if c is not None:
        unidirectional(node, (m, n), c.shape, f"C {in_name(node, 2)}")
    return Info(a.dtype, (m, n))


def matmul_shape(node: Node, a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """numpy matmul output shape (1-D operands promoted and the promoted axis removed)."""
    if len(a) == 0 or len(b) == 0:
        raise fail(node, f"MatMul operands must have rank >= 1 (got {list(a)} and {list(b)})")
    a2 = (1, *a) if len(a) == 1 else tuple(a)
    b2 = (*b, 1) if len(b) == 1 else tuple(b)
    if a2[-1] != b2[-2]:
        raise fail(node, f"{in_name(node, 0)} {list(a)} and {in_name(node, 1)} {list(b)}: inner dimensions "
                         f"{a2[-1]} and {b2[-2]} differ")
    batch = broadcast(node, a2[:-2], b2[:-2])
    out = batch + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return tuple(int(d) for d in out)


@reference("MatMul")
def matmul_ref(node: Node, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    matmul_shape(node, a.shape, b.shape)
    ct = _acc_dtype(a, b)
    return _to_out(np.matmul(a.astype(ct, copy=False), b.astype(ct, copy=False)), a.dtype)


@infer("MatMul")
def matmul_infer(node: Node, a: Info, b: Info) -> Info:
    same_dtype(node, [a, b])
    if a.dtype == BOOL:
        raise fail(node, "MatMul needs numeric inputs")
    return Info(a.dtype, matmul_shape(node, a.shape, b.shape))


# ----------------------------------------------------------------------------------------------- Einsum --


def _parse_einsum(node: Node, shapes: Sequence[Sequence[int]]) -> tuple[str, tuple[int, ...]]:
    """(normalized equation with an explicit output, output shape); OpError on a malformed equation."""
    eq = str(node.attr("equation", "")).replace(" ", "")
    if "->" in eq:
        lhs, rhs = eq.split("->", 1)
    else:
        lhs, rhs = eq, None
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise fail(node, f"equation {eq!r} has {len(terms)} operands but the node has {len(shapes)} inputs")
    sizes: dict[str, int] = {}
    counts: dict[str, int] = {}
    ell_shapes = []
    for t, shp in zip(terms, shapes):
        letters = t.replace("...", "")
        if any(ch not in string.ascii_letters for ch in letters) or t.count("...") > 1:
            raise fail(node, f"equation {eq!r}: term {t!r} is malformed")
        n_ell = len(shp) - len(letters)
        if n_ell < 0 or (n_ell > 0 and "..." not in t):
            raise fail(node, f"equation {eq!r}: term {t!r} does not match operand rank {len(shp)}")
        pos = t.find("...")
        dims = list(shp)
        if pos >= 0:
            ell_shapes.append(tuple(dims[pos:pos + n_ell]))
            del dims[pos:pos + n_ell]
        for ch, d in zip(letters, dims):
            if ch in sizes and sizes[ch] != d:
                raise fail(node, f"equation {eq!r}: index {ch!r} has sizes {sizes[ch]} and {d}")
            sizes[ch] = d
            counts[ch] = counts.get(ch, 0) + 1
    ell = broadcast(node, *ell_shapes) if ell_shapes else ()
    if rhs is None:
        rhs = ("..." if ell_shapes else "") + "".join(sorted(ch for ch, n in counts.items() if n == 1))
    out: list[int] = []
    r = rhs
    if r.count("...") > 1 or any(ch not in string.ascii_letters for ch in r.replace("...", "")):
        raise fail(node, f"equation {eq!r}: output {rhs!r} is malformed")
    i = 0
    while i < len(r):
        if r.startswith("...", i):
            out.extend(ell)
            i += 3
            continue
        if r[i] not in sizes:
            raise fail(node, f"equation {eq!r}: output index {r[i]!r} does not appear in any operand")
        out.append(sizes[r[i]])
        i += 1
    return f"{lhs}->{rhs}", tuple(int(d) for d in out)


@reference("Einsum")
def einsum_ref(node: Node, *xs: np.ndarray) -> np.ndarray:
    eq, _ = _parse_einsum(node, [x.shape for x in xs])
    ct = _acc_dtype(*xs)
    y = np.einsum(eq, *[x.astype(ct, copy=False) for x in xs], optimize=len(xs) > 2)
    return _to_out(np.asarray(y), xs[0].dtype)


@infer("Einsum")
def einsum_infer(node: Node, *xs: Info) -> Info:
    same_dtype(node, list(xs))
    if xs[0].dtype == BOOL or not is_numeric(xs[0].dtype):
        raise fail(node, f"Einsum needs numeric inputs, got {dtype_name(xs[0].dtype)}")
    _, shape = _parse_einsum(node, [x.shape for x in xs])
    return Info(xs[0].dtype, shape)

