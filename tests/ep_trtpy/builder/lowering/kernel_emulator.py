"""A numpy emulator of an engine plan that uses our own kernels (the CPU stand-in for the native executor).

It honours the plan's memory layout exactly (inputs, outputs, the weights blob, one arena with the planned offsets,
views at byte offsets), decodes every layer's ints/floats as the native prepare() does, and executes the kernel's
documented semantics with numpy. It checks the lowering (parameter encodings, collapsing, register allocation,
views and the memory plan) on machines without a GPU; it says nothing about the CUDA code itself, which the GPU
tests in tests/cuda_kernels/ cover.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ep_trtpy.engine.plan import Plan
from ep_trtpy.ops import pointwise_program as pp
from graph_partitioner.ir import BFLOAT16, BOOL, FLOAT, FLOAT16, INT32, INT64, np_dtype

OPNAMES = {v: k for k, v in pp.OPCODES.items()}
LOAD, STORE = 200, 201
POISON = 0xA5


class Memory:
    """Byte buffers for every home of a plan, and typed flat views of tensors."""

    def __init__(self, plan: Plan, weights: bytes, inputs: Sequence[np.ndarray]):
        self.plan = plan
        self.weights = bytearray(weights)
        self.arena = bytearray([POISON]) * max(plan.arena_bytes, 1)
        self.inputs = [bytearray(np.ascontiguousarray(x).tobytes()) + bytearray(8) for x in inputs]
        self.outputs: dict[int, bytearray] = {}
        for t in plan.tensors:
            if t.kind == "output":
                self.outputs[t.index] = bytearray([POISON]) * max(t.nbytes, 1)

    def _home(self, tid: int) -> tuple[bytearray, int]:
        t = self.plan.tensors[tid]
        if t.kind == "alias":
            buf, off = self._home(t.index)
            return buf, off + t.offset
        if t.kind == "input":
            return self.inputs[t.index], 0
        if t.kind == "output":
            return self.outputs[t.index], 0
        if t.kind == "weight":
            return self.weights, t.offset
        return self.arena, t.offset

    def flat(self, tid: int) -> np.ndarray:
        """A writable flat numpy view of the tensor's bytes."""
        t = self.plan.tensors[tid]
        buf, off = self._home(tid)
        dt = np_dtype(t.dtype)
        n = int(np.prod(t.shape, dtype=np.int64)) if t.shape else 1
        if off + n * dt.itemsize > len(buf):
            raise AssertionError(f"tensor {t.name} ({tid}) reaches past its buffer")
        return np.frombuffer(memoryview(buf)[off:off + n * dt.itemsize], dtype=dt)

    def output(self, k: int) -> np.ndarray:
        for t in self.plan.tensors:
            if t.kind == "output" and t.index == k:
                return self.flat(t.id).copy().reshape(t.shape)
        raise KeyError(k)


def _coords(dims: Sequence[int]) -> list[np.ndarray]:
    n = int(np.prod(dims, dtype=np.int64)) if dims else 1
    if not dims:
        return []
    return [c.astype(np.int64) for c in np.unravel_index(np.arange(n, dtype=np.int64), tuple(int(d) for d in dims))]


def run_pointwise(ints: list[int], floats: list[float], ins: list[np.ndarray], outs: list[np.ndarray],
                  out_dtypes: list[int]) -> None:
    compute, nreg, ndim, ncode = ints[:4]
    assert nreg in (8, 16, 32), nreg
    p = 4
    dims = ints[p:p + ndim]
    p += ndim
    strides = []
    for _ in ins:
        strides.append(ints[p:p + ndim])
        p += ndim
    code = [ints[p + 6 * k:p + 6 * k + 6] for k in range(ncode)]
    assert p + 6 * ncode == len(ints)
    assert len(floats) == 2 * ncode
    ct = np.float32 if compute == 0 else np.int64
    coords = _coords(dims)
    n = int(np.prod(dims, dtype=np.int64)) if dims else 1
    regs: list[np.ndarray | None] = [None] * nreg
    with np.errstate(all="ignore"):
        for pc, (op, dst, nsrc, a, b, c) in enumerate(code):
            if op == LOAD:
                off = np.zeros(n, dtype=np.int64)
                for d in range(ndim):
                    off += coords[d] * strides[a][d]
                v = ins[a][off]
                if ct is np.int64 and v.dtype.kind == "f":
                    v = np.trunc(v)
                regs[dst] = v.astype(ct)
            elif op == STORE:
                v = regs[a]
                assert v is not None, f"store of unset register {a}"
                v = np.broadcast_to(v, (n,))
                t = out_dtypes[b]
                if t == BOOL:
                    outs[b][:] = v != 0
                elif t in (INT32, INT64) and ct is np.float32:
                    outs[b][:] = np.trunc(v).astype(np_dtype(t))
                else:
                    outs[b][:] = v.astype(np_dtype(t))
            else:
                name = OPNAMES[op]
                n_src, n_imm = pp.OPS[name]
                assert nsrc == n_src, (name, nsrc)
                srcs = [regs[r] for r in (a, b, c)[:nsrc]]
                assert all(s is not None for s in srcs), f"{name} reads an unset register"
                imm: list = list(floats[2 * pc:2 * pc + n_imm])
                regs[dst] = np.broadcast_to(np.asarray(pp._apply(name, srcs, imm, ct)), (n,)).astype(ct)


def run_copy(ints: list[int], x: np.ndarray, y: np.ndarray) -> None:
    ndim = ints[0]
    dims = ints[1:1 + ndim]
    in_off = ints[1 + ndim]
    in_s = ints[2 + ndim:2 + 2 * ndim]
    out_off = ints[2 + 2 * ndim]
    out_s = ints[3 + 2 * ndim:3 + 3 * ndim]
    assert len(ints) == 3 + 3 * ndim
    co = _coords(dims)
    n = int(np.prod(dims, dtype=np.int64)) if dims else 1
    src = np.full(n, in_off, dtype=np.int64)
    dst = np.full(n, out_off, dtype=np.int64)
    for d in range(ndim):
        src += co[d] * in_s[d]
        dst += co[d] * out_s[d]
    if n:
        assert src.min() >= 0 and src.max() < x.size and dst.min() >= 0 and dst.max() < y.size
        y[dst] = x[src]


def run_copy_batch(ints: list[int], xs: list[np.ndarray], ys: list[np.ndarray]) -> None:
    nseg = ints[0]
    assert 1 <= nseg <= 32 and len(ints) == 1 + 8 * nseg, ints[:1]
    assert len({x.itemsize for x in xs + ys}) == 1, "copy_batch tensors must share one element size"
    written = [np.zeros(y.size, dtype=bool) for y in ys]
    for k in range(nseg):
        src, dst, rows, row, s_off, s_stride, d_off, d_stride = ints[1 + 8 * k:9 + 8 * k]
        assert min(rows, row, s_off, s_stride, d_off, d_stride) >= 0
        if rows == 0 or row == 0:
            continue
        r = np.arange(rows, dtype=np.int64)[:, None]
        i = np.arange(row, dtype=np.int64)[None, :]
        si, di = (s_off + r * s_stride + i).reshape(-1), (d_off + r * d_stride + i).reshape(-1)
        assert si.max() < xs[src].size and di.max() < ys[dst].size, f"segment {k} leaves its tensors"
        assert not written[dst][di].any() and len(np.unique(di)) == di.size, f"segment {k} writes an element twice"
        written[dst][di] = True
        ys[dst][di] = xs[src].view(ys[dst].dtype)[si]


def run_transpose(ints: list[int], x: np.ndarray, y: np.ndarray) -> None:
    ndim = ints[0]
    dims = ints[1:1 + ndim]
    perm = ints[1 + ndim:1 + 2 * ndim]
    assert len(ints) == 1 + 2 * ndim and sorted(perm) == list(range(ndim))
    if x.itemsize != y.itemsize:  # the converting transpose: float32 <-> float16 / bfloat16, round to nearest even
        assert {x.dtype, y.dtype} in ({np.dtype(np.float32), np_dtype(FLOAT16)},
                                      {np.dtype(np.float32), np_dtype(BFLOAT16)}), (x.dtype, y.dtype)
    y[:] = np.transpose(x.reshape(dims), perm).reshape(-1)


def _as_acc(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) if x.dtype.kind == "f" else x.astype(np.int64)


def run_reduce(ints: list[int], x: np.ndarray, y: np.ndarray) -> None:
    op, outer, r, inner = ints
    v = _as_acc(x.reshape(outer, r, inner))
    with np.errstate(all="ignore"):
        if op == 0:
            res = v.sum(axis=1)
        elif op == 1:
            res = v.sum(axis=1) / np.float32(max(r, 1))  # the mean of nothing is 0
        elif op == 2:
            res = v.max(axis=1, initial=-np.inf if v.dtype.kind == "f" else np.iinfo(x.dtype).min)
        elif op == 3:
            res = v.min(axis=1, initial=np.inf if v.dtype.kind == "f" else np.iinfo(x.dtype).max)
        elif op == 4:
            res = v.prod(axis=1)
        elif op == 5:
            res = np.abs(v).sum(axis=1)
        elif op == 6:
            res = np.sqrt((v * v).sum(axis=1))
        elif op == 7:
            res = (v * v).sum(axis=1)
        else:
            m = v.max(axis=1, keepdims=True, initial=-np.inf)
            shift = np.where(np.isinf(m), np.float32(0), m)
            res = (shift + np.log(np.exp(v - shift).sum(axis=1, keepdims=True)))[:, 0, :]
    y[:] = res.astype(y.dtype).reshape(-1)


def run_arg(ints: list[int], x: np.ndarray, y: np.ndarray, select_min: bool) -> None:
    last, outer, r, inner = ints
    v = x.reshape(outer, r, inner).astype(np.float64 if x.dtype.kind == "f" else np.int64)
    if last:
        v = v[:, ::-1, :]
    idx = v.argmin(axis=1) if select_min else v.argmax(axis=1)
    if last:
        idx = r - 1 - idx
    y[:] = idx.reshape(-1)


def run_softmax(ints: list[int], x: np.ndarray, y: np.ndarray) -> None:
    log, outer, r, inner = ints
    v = x.reshape(outer, r, inner).astype(np.float32)
    m = v.max(axis=1, keepdims=True)  # not finite (NaN, +inf, -inf only): the row is NaN, through v - m
    with np.errstate(invalid="ignore", divide="ignore"):
        e = np.exp(v - m)
        s = e.sum(axis=1, keepdims=True)
        res = (v - m) - np.log(s) if log else e / s
    y[:] = res.astype(y.dtype).reshape(-1)


def run_layernorm(ints: list[int], floats: list[float], x: np.ndarray, scale: np.ndarray, bias: np.ndarray | None,
                  y: np.ndarray, r: np.ndarray | None = None, s: np.ndarray | None = None) -> None:
    """``layernorm`` of X, or of X + R rounded to X's dtype (written to S when given)."""
    rows, cols = ints
    assert s is None or r is not None, "the sum output needs the residual input"
    if r is not None:
        assert r.dtype == x.dtype and r.size == x.size
        x = (x.astype(np.float32) + r.astype(np.float32)).astype(x.dtype)
        if s is not None:
            s[:] = x
    v = x.reshape(rows, cols).astype(np.float32)
    mean = v.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):  # an infinity in the row: inf - inf, a NaN row
        var = ((v - mean) ** 2).mean(axis=1, keepdims=True)
        res = (v - mean) / np.sqrt(var + np.float32(floats[0])) * scale.astype(np.float32)
    if bias is not None:
        res = res + bias.astype(np.float32)
    y[:] = res.astype(y.dtype).reshape(-1)


def run_pad(ints: list[int], x: np.ndarray, y: np.ndarray) -> None:
    mode, ndim = ints[0], ints[1]
    in_dims = ints[2:2 + ndim]
    out_dims = ints[2 + ndim:2 + 2 * ndim]
    pb = ints[2 + 2 * ndim:2 + 3 * ndim]
    bits = ints[2 + 3 * ndim]
    assert len(ints) == 3 + 3 * ndim
    value = np.frombuffer(np.int64(bits).tobytes()[:y.itemsize], dtype=y.dtype)[0]
    co = _coords(out_dims)
    n = int(np.prod(out_dims, dtype=np.int64)) if ndim else 1
    src = np.zeros(n, dtype=np.int64)
    inside = np.ones(n, dtype=bool)
    stride = 1
    for d in range(ndim - 1, -1, -1):
        i = co[d] - pb[d]
        nd = in_dims[d]
        out = (i < 0) | (i >= nd)
        if mode == 1:
            if nd == 1:
                i = np.zeros_like(i)
            else:
                period = 2 * (nd - 1)
                i = np.mod(i, period)
                i = np.where(i >= nd, period - i, i)
        elif mode == 2:
            i = np.clip(i, 0, nd - 1)
        else:
            inside &= ~out
            i = np.where(out, 0, i)
        src += i * stride
        stride *= nd
    y[:] = np.where(inside, x[np.where(inside, src, 0)] if x.size else value, value)


def run_gather(ints: list[int], data: np.ndarray, idx: np.ndarray, y: np.ndarray) -> None:
    outer, axis, inner = ints
    d = data.reshape(outer, axis, inner)
    i = idx.astype(np.int64).reshape(-1)
    i = np.where(i < 0, i + axis, i)
    ok = (i >= 0) & (i < axis)
    res = d[:, np.where(ok, i, 0), :]
    res[:, ~ok, :] = 0
    y[:] = res.reshape(-1)


def run_gather_elements(ints: list[int], data: np.ndarray, idx: np.ndarray, y: np.ndarray) -> None:
    """``gather_elements``: Y[c] = data[c with c[axis] = idx[c]]; a negative index wraps once, one outside gives 0."""
    rank, axis = ints[:2]
    ddims, idims = ints[2:2 + rank], ints[2 + rank:2 + 2 * rank]
    assert len(ints) == 2 + 2 * rank and 1 <= rank <= 8 and 0 <= axis < rank
    assert all(i <= d for k, (d, i) in enumerate(zip(ddims, idims)) if k != axis)
    co = _coords(idims)
    i = idx.astype(np.int64)
    i = np.where(i < 0, i + ddims[axis], i)
    ok = (i >= 0) & (i < ddims[axis])
    co[axis] = np.where(ok, i, 0)
    src = np.ravel_multi_index(tuple(co), tuple(ddims)) if y.size else np.zeros(0, np.int64)
    y[:] = np.where(ok, data[src], np.zeros(1, y.dtype))


def _orig(mode: int, x: np.ndarray, scale: np.float32, out_len: int, in_len: int) -> np.ndarray:
    f = np.float32
    x = x.astype(f)
    if mode == 1:
        return (x + f(0.5)) / scale - f(0.5) if out_len > 1 else np.zeros_like(x)
    if mode == 2:
        return np.zeros_like(x) if out_len == 1 else x * f(in_len - 1) / f(out_len - 1)
    if mode == 3:
        return x / scale
    if mode == 4:
        adjustment = f(out_len) / (scale * f(in_len))
        offset = f(in_len) / f(2) * (f(1) - adjustment)
        return (offset.astype(np.float64) + (x.astype(np.float64) + 0.5) / np.float64(scale) - 0.5).astype(f)
    return (x + f(0.5)) / scale - f(0.5)


def _nearest(mode: int, x: np.ndarray, scale: np.float32) -> np.ndarray:
    away = np.where(x >= 0, np.floor(x + np.float32(0.5)), np.ceil(x - np.float32(0.5)))  # round half away
    if mode == 1:
        return away.astype(np.int64)
    if mode == 2:
        return np.floor(x).astype(np.int64)
    if mode == 3:
        return np.ceil(x).astype(np.int64)
    if mode == 4:
        return (np.ceil(x) if scale < 1 else np.trunc(x)).astype(np.int64)
    half = x == (np.trunc(x) + np.float32(0.5))
    return np.where(half, np.floor(x), away).astype(np.int64)


def run_resize(ints: list[int], floats: list[float], x: np.ndarray, y: np.ndarray) -> None:
    linear, coord, nearest, ndim = ints[:4]
    in_dims = ints[4:4 + ndim]
    out_dims = ints[4 + ndim:4 + 2 * ndim]
    resized = ints[4 + 2 * ndim:4 + 3 * ndim]
    assert len(ints) == 4 + 3 * ndim and len(floats) == ndim
    xin = x.reshape(in_dims).astype(np.float32)
    per_dim = []
    for d in range(ndim):
        c = np.arange(out_dims[d])
        if not resized[d]:
            per_dim.append((c, c, np.ones(len(c), np.float32), np.zeros(len(c), np.float32)))
            continue
        xo = _orig(coord, c, np.float32(floats[d]), out_dims[d], in_dims[d])
        if not linear:
            j = np.clip(_nearest(nearest, xo, np.float32(floats[d])), 0, in_dims[d] - 1)
            per_dim.append((j, j, np.ones(len(c), np.float32), np.zeros(len(c), np.float32)))
        else:
            xc = np.clip(xo, np.float32(0), np.float32(in_dims[d] - 1))
            lo = np.minimum(xc.astype(np.int64), in_dims[d] - 1)
            hi = np.minimum(lo + 1, in_dims[d] - 1)
            w0 = np.where(lo == hi, np.float32(1), np.abs(xc - hi.astype(np.float32)))
            w1 = np.where(lo == hi, np.float32(0), np.abs(xc - lo.astype(np.float32)))
            per_dim.append((lo, hi, w0.astype(np.float32), w1.astype(np.float32)))
    res = np.zeros(out_dims, dtype=np.float32)
    for corner in range(1 << ndim):
        idx = []
        w = np.ones(out_dims, dtype=np.float32)
        for d in range(ndim):
            lo, hi, w0, w1 = per_dim[d]
            bit = (corner >> d) & 1
            shape = [1] * ndim
            shape[d] = out_dims[d]
            idx.append((hi if bit else lo).reshape(shape))
            w = w * (w1 if bit else w0).reshape(shape)
        if not w.any():
            continue
        res += w * xin[tuple(idx)]
    y[:] = res.astype(y.dtype).reshape(-1)


def run_pool(ints: list[int], x: np.ndarray, y: np.ndarray) -> None:
    average, cip, nc = ints[:3]
    f = [ints[3 + 3 * k:6 + 3 * k] for k in range(8)]
    in_sp, out_sp, kernel, stride, pb, pe, dil = f[0], f[1], f[2], f[3], f[4], f[5], f[6]
    assert len(ints) == 3 + 3 * 7
    if nc == 0 or y.size == 0:
        return
    xin = x.reshape([nc] + in_sp).astype(np.float32)
    res = np.zeros([nc] + out_sp, dtype=np.float32)
    for o in np.ndindex(*out_sp):
        start = [o[d] * stride[d] - pb[d] for d in range(3)]
        end = [start[d] + kernel[d] * dil[d] for d in range(3)]
        if average:
            end = [min(end[d], in_sp[d] + pe[d]) for d in range(3)]
        pos = [[i for i in range(start[d], end[d], dil[d]) if 0 <= i < in_sp[d]] for d in range(3)]
        vals = xin[:, pos[0]][:, :, pos[1]][:, :, :, pos[2]].reshape(nc, -1)
        if average:
            cnt = vals.shape[1]
            if cnt == 0:
                out = np.zeros(nc, np.float32)
            elif cip:
                div = 1
                for d in range(3):
                    div *= 1 + (end[d] - start[d] - 1) // dil[d]
                out = vals.sum(axis=1) / np.float32(div)
            else:
                out = vals.sum(axis=1) / np.float32(cnt)
        else:
            out = vals.max(axis=1) if vals.shape[1] else np.full(nc, -np.inf, np.float32)  # NaN propagates
        res[(slice(None),) + o] = out
    y[:] = res.astype(y.dtype).reshape(-1)


def _tf32(a: np.ndarray) -> np.ndarray:
    """float32 values rounded to TF32 (10 explicit mantissa bits, round to nearest even), as tensor cores read them."""
    bits = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0xFFF + ((bits >> 13) & 1)) & 0xFFFFE000
    return bits.astype(np.uint32).view(np.float32)


def run_conv(ints: list[int], floats: list[float], x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
             z: np.ndarray | None, y: np.ndarray, shapes: list[tuple[int, ...]]) -> None:
    """``conv``: act(conv(X, W) + B + Z), or act(conv(X, W) + B) + Z with the trailing post-activation int, NCHW
    or NHWC, with the numpy convolution of the references."""
    from ep_trtpy.ops.internal import CONV_ACTIVATIONS, NCHW_OF_NHWC, NHWC_OF_NCHW, apply_activation
    from ep_trtpy.ops.linalg import conv2

    k, group, act, layout, tf32 = ints[:5]
    pb, pe = ints[5:5 + k], ints[5 + k:5 + 2 * k]
    strides, dils = ints[5 + 2 * k:5 + 3 * k], ints[5 + 3 * k:5 + 4 * k]
    assert len(ints) in (5 + 4 * k, 6 + 4 * k) and len(floats) == 2 and layout in (0, 1) and tf32 in (0, 1)
    post = len(ints) == 6 + 4 * k
    assert not post or ints[-1] == 1, f"the post-activation residual flag is {ints[-1]}, not 1"
    assert layout == 0 or k == 2, "NHWC is 2-D only"
    xs, ws, ys = shapes
    xa, wa = x.reshape(xs), w.reshape(ws)
    if tf32 and x.dtype == np.float32:
        xa, wa = _tf32(xa), _tf32(wa)
    za = None if z is None else z.reshape(ys)
    if layout == 1:
        xa, wa = xa.transpose(NCHW_OF_NHWC), wa.transpose(NCHW_OF_NHWC)
        za = None if za is None else za.transpose(NCHW_OF_NHWC)
    out = [(d + b0 + e0 - dl * (kk - 1) - 1) // s + 1
           for d, kk, s, dl, b0, e0 in zip(xa.shape[2:], wa.shape[2:], strides, dils, pb, pe)]
    acc = conv2(xa.astype(np.float64), wa.astype(np.float64), list(wa.shape[2:]), strides, dils, pb, pe, out, group)
    if b is not None:
        acc = acc + b.astype(np.float64).reshape((1, -1) + (1,) * k)
    if za is not None and not post:
        acc = acc + za.astype(np.float64)
    res = apply_activation(acc, CONV_ACTIVATIONS[act], floats[0], floats[1])
    if za is not None and post:
        res = res + za.astype(np.float64)
    if layout == 1:
        res = res.transpose(NHWC_OF_NCHW)
    assert res.shape == tuple(ys), (res.shape, ys)
    y[:] = res.astype(y.dtype).reshape(-1)


def run_pool_nhwc(ints: list[int], x: np.ndarray, y: np.ndarray) -> None:
    """``pool_nhwc``, as ``pool`` on the NCHW transpose (one axis of extent 1 in front)."""
    assert len(ints) == 18
    average, cip, n, c, h, w, p, q, kh, kw, sh, sw, pbh, pbw, peh, pew, dh, dw = ints
    nchw = np.ascontiguousarray(x.reshape(n, h, w, c).transpose(0, 3, 1, 2)).reshape(-1)
    out = np.zeros(n * c * p * q, y.dtype)
    run_pool([average, cip, n * c, 1, h, w, 1, p, q, 1, kh, kw, 1, sh, sw, 0, pbh, pbw, 0, peh, pew, 1, dh, dw],
             nchw, out)
    y[:] = out.reshape(n, c, p, q).transpose(0, 2, 3, 1).reshape(-1)


def run_gemm(ints: list[int], floats: list[float], a: np.ndarray, b: np.ndarray, c: np.ndarray | None,
             y: np.ndarray) -> None:
    """``gemm``: Y[i] = act(alpha * op(A[i]) @ op(B[i]) + beta * C[i]) over the batch, strided as documented."""
    from ep_trtpy.ops.internal import apply_activation

    assert len(ints) in (12, 13), ints
    m, n, k, batch, ta, tb, sa, sb, act, c_sb, c_sr, c_sc = ints[:12]
    tf32 = ints[12] if len(ints) == 13 else 0
    assert tf32 in (0, 1)
    if tf32 and a.dtype == np.float32:  # tensor cores read float32 operands as TF32
        a, b = _tf32(a), _tf32(b)
    alpha, beta = floats
    f = np.float64
    for i in range(batch):
        am = a[i * sa:i * sa + m * k].astype(f).reshape((k, m) if ta else (m, k))
        bm = b[i * sb:i * sb + k * n].astype(f).reshape((n, k) if tb else (k, n))
        r = alpha * ((am.T if ta else am) @ (bm.T if tb else bm))
        if c is not None:
            rows, cols = np.arange(m).reshape(-1, 1), np.arange(n).reshape(1, -1)
            r = r + beta * c[i * c_sb + rows * c_sr + cols * c_sc].astype(f)
        y[i * m * n:(i + 1) * m * n] = apply_activation(r, ("", "Relu", "Gelu", "GeluTanh")[act]
                                                        ).astype(y.dtype).reshape(-1)


def run_attention(ints: list[int], floats: list[float], q: np.ndarray, k: np.ndarray, v: np.ndarray,
                  m: np.ndarray | None, o: np.ndarray) -> None:
    """``attention``: O = softmax(scale * Q K^T + M) V read through the layout's row pitches and mask strides;
    float32 math (GEMM operands rounded to TF32 when math=1), rows that are all -inf give zeros."""
    b, h, sq, skv, d, dv, q_row, k_row, v_row, m_sb, m_sh, m_sq, m_sk = ints[:13]
    tf32 = ints[13] if len(ints) > 13 else 0
    assert len(ints) in (13, 14, 15) and tf32 in (0, 1) and ints[14:] in ([], [1])  # varying: how cuDNN builds
    (scale,) = floats
    mm = (lambda x: _tf32(x)) if tf32 and q.dtype == np.float32 else (lambda x: x)

    def gather(x: np.ndarray, s: int, row: int, width: int) -> np.ndarray:  # [b, h, s, width]
        bi, si, hi, ei = np.ix_(range(b), range(s), range(h), range(width))
        idx = bi * s * row + si * row + hi * width + ei
        assert idx.max() < x.size, "the layout reads past the tensor"
        return x[idx].astype(np.float32).transpose(0, 2, 1, 3)

    qh, kh, vh = gather(q, sq, q_row, d), gather(k, skv, k_row, d), gather(v, skv, v_row, dv)
    with np.errstate(invalid="ignore", over="ignore"):
        s = np.float32(scale) * np.matmul(mm(qh), mm(kh.transpose(0, 1, 3, 2)))
        if m is not None:
            bi, hi, ii, ji = np.ix_(range(b), range(h), range(sq), range(skv))
            idx = bi * m_sb + hi * m_sh + ii * m_sq + ji * m_sk
            assert idx.max() < m.size, "the mask strides read past the mask"
            s = s + m[idx].astype(np.float32)
        mx = s.max(axis=-1, keepdims=True)
        dead = np.isneginf(mx)
        e = np.exp(s - np.where(dead, np.float32(0), mx))
        p = np.where(dead, np.float32(0), e / np.where(dead, np.float32(1), e.sum(axis=-1, keepdims=True)))
    y = np.matmul(mm(p), mm(vh)).transpose(0, 2, 1, 3).reshape(-1)
    o[:] = y.astype(o.dtype)


def execute(plan: Plan, weights: bytes, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run the plan on host arrays; returns the outputs (shaped)."""
    mem = Memory(plan, weights, inputs)
    for layer in plan.layers:
        ins = [mem.flat(t) if t >= 0 else None for t in layer.inputs]
        outs = [mem.flat(t) for t in layer.outputs]
        k = layer.kernel
        if k == "pointwise":
            run_pointwise(layer.ints, layer.floats, ins, outs, [plan.tensors[t].dtype for t in layer.outputs])
        elif k == "memcpy":
            nbytes = layer.ints[0]
            outs[0].view(np.uint8)[:nbytes] = ins[0].view(np.uint8)[:nbytes]
        elif k == "copy":
            run_copy(layer.ints, ins[0], outs[0])
        elif k == "copy_batch":
            run_copy_batch(layer.ints, ins, outs)
        elif k == "fill":
            bits = layer.ints[0]
            outs[0][:] = np.frombuffer(np.int64(bits).tobytes()[:outs[0].itemsize], dtype=outs[0].dtype)[0]
        elif k == "transpose":
            run_transpose(layer.ints, ins[0], outs[0])
        elif k == "reduce":
            run_reduce(layer.ints, ins[0], outs[0])
        elif k in ("argmax", "argmin"):
            run_arg(layer.ints, ins[0], outs[0], k == "argmin")
        elif k == "softmax":
            run_softmax(layer.ints, ins[0], outs[0])
        elif k == "layernorm":
            run_layernorm(layer.ints, layer.floats, ins[0], ins[1], ins[2] if len(ins) > 2 else None, outs[0],
                          ins[3] if len(ins) > 3 else None, outs[1] if len(outs) > 1 else None)
        elif k == "pad":
            run_pad(layer.ints, ins[0], outs[0])
        elif k == "gather":
            run_gather(layer.ints, ins[0], ins[1], outs[0])
        elif k == "gather_elements":
            run_gather_elements(layer.ints, ins[0], ins[1], outs[0])
        elif k == "resize":
            run_resize(layer.ints, layer.floats, ins[0], outs[0])
        elif k == "pool":
            run_pool(layer.ints, ins[0], outs[0])
        elif k == "pool_nhwc":
            run_pool_nhwc(layer.ints, ins[0], outs[0])
        elif k == "conv":
            shapes = [plan.tensors[t].shape for t in (layer.inputs[0], layer.inputs[1], layer.outputs[0])]
            run_conv(layer.ints, layer.floats, ins[0], ins[1], ins[2], ins[3], outs[0], shapes)
        elif k == "gemm":
            run_gemm(layer.ints, layer.floats, ins[0], ins[1], ins[2] if len(ins) > 2 else None, outs[0])
        elif k == "attention":
            run_attention(layer.ints, layer.floats, ins[0], ins[1], ins[2], ins[3], outs[0])
        elif k == "qgemm":
            from qgemm_emulator import run_qgemm

            run_qgemm(layer.ints, layer.floats, ins, outs[0], plan.tensors[layer.outputs[0]].dtype)
        elif k == "qdq":
            from qdq_emulator import run_qdq

            run_qdq(layer.ints, layer.floats, ins, outs[0], plan.tensors[layer.inputs[0]].dtype,
                    plan.tensors[layer.outputs[0]].dtype)
        else:
            raise AssertionError(f"the emulator has no kernel {k!r}")
    return [mem.output(k) for k in range(plan.n_outputs)]


__all__ = ["execute", "FLOAT", "FLOAT16"]
