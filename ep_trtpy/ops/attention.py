"""``ep_trtpy::Attention``: scaled-dot-product attention over projections that still hold every head.

Inputs (Q, K, V, mask?) and attributes ``num_heads`` (H), ``scale`` (float) and ``qkv_packed`` (0 or 1)::

    Q [B, Sq, H*D]    K [B, Skv, H*D]    V [B, Skv, H*Dv]    mask broadcastable to [B, H, Sq, Skv]
    Q_h = Q[:, :, h*D:(h+1)*D], K_h, V_h likewise (the heads are consecutive slices of the last axis)
    O[:, :, h*Dv:(h+1)*Dv] = softmax(scale * Q_h K_h^T + mask[:, h]) V_h             O [B, Sq, H*Dv]

The softmax runs over the key axis. A row whose every logit is -inf (a query that may attend to nothing) gives
zeros, as flash-attention kernels do and as the NaN guard of PyTorch's SDPA export spells it. A row holding a NaN
or a +inf logit (from Q, K or the mask) gives NaN probabilities, so that query's output is NaN: the Softmax rule
of README's "Numerics at the edges", except for the fully masked row. (A Softmax that fuse_attention absorbs
without the NaN guard therefore gives zeros, not NaN, for a fully masked query.)

With ``qkv_packed=1`` the first input is one [B, S, 3*H*D] tensor, concat(Q, K, V) on the last axis (Sq = Skv = S,
Dv = D), and K and V are absent. The mask is an additive float tensor (numpy broadcasting, right-aligned) of Q's
dtype or float32.

Precision: 16-bit inputs compute in float32, float32 inputs in float64 (as the other linear-algebra references),
and the result is rounded once to Q's dtype.
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.ops._common import fail, in_name, is_float
from ep_trtpy.ops.registry import Info, infer, reference
from graph_partitioner.ir import FLOAT, Node, dtype_name

DOMAIN = "ep_trtpy"
KEY = f"{DOMAIN}::Attention"


def heads(node: Node) -> int:
    h = node.attr("num_heads")
    if not isinstance(h, (int, np.integer)) or int(h) < 1:
        raise fail(node, f"num_heads={h!r} must be a positive integer")
    return int(h)


def packed(node: Node) -> bool:
    p = node.attr("qkv_packed", 0)
    if p not in (0, 1):
        raise fail(node, f"qkv_packed={p!r} must be 0 or 1")
    return bool(p)


def geometry(node: Node, q: tuple[int, ...], k: tuple[int, ...] | None, v: tuple[int, ...] | None
             ) -> tuple[int, int, int, int, int, int]:
    """(B, H, Sq, Skv, D, Dv) from the shapes of Q, K, V (K and V None when packed); OpError naming the value."""
    h = heads(node)
    if packed(node):
        if k is not None or v is not None:
            raise fail(node, "has K or V inputs but qkv_packed=1 (the first input holds Q, K and V)")
        if len(q) != 3 or q[2] % (3 * h):
            raise fail(node, f"packed QKV {in_name(node, 0)} has shape {list(q)}; [B, S, 3*{h}*D] expected")
        return q[0], h, q[1], q[1], q[2] // (3 * h), q[2] // (3 * h)
    if k is None or v is None:
        raise fail(node, "lacks its K or V input (qkv_packed=0)")
    for i, s in enumerate((q, k, v)):
        if len(s) != 3 or s[2] % h:
            raise fail(node, f"{in_name(node, i)} has shape {list(s)}; [B, S, {h}*D] expected (num_heads={h})")
    if k[0] != q[0] or v[0] != q[0]:
        raise fail(node, f"batch sizes differ: Q {list(q)}, K {list(k)}, V {list(v)}")
    if k[2] != q[2]:
        raise fail(node, f"K {in_name(node, 1)} {list(k)} has another head width than Q {list(q)}")
    if v[1] != k[1]:
        raise fail(node, f"V {in_name(node, 2)} {list(v)} has another sequence length than K {list(k)}")
    return q[0], h, q[1], k[1], q[2] // h, v[2] // h


def check_mask(node: Node, shape: tuple[int, ...], dims: tuple[int, int, int, int]) -> None:
    """The mask must broadcast to [B, H, Sq, Skv] without changing it."""
    ok = len(shape) <= 4 and all(m in (1, t) for m, t in zip(reversed(shape), reversed(dims)))
    if not ok:
        raise fail(node, f"mask {in_name(node, 3)} of shape {list(shape)} does not broadcast to "
                         f"[B, H, Sq, Skv] = {list(dims)}")


def softmax_rows(s: np.ndarray) -> np.ndarray:
    """Softmax over the last axis; rows that are all -inf give zeros."""
    m = s.max(axis=-1, keepdims=True)
    dead = np.isneginf(m)
    e = np.exp(s - np.where(dead, 0, m))
    total = e.sum(axis=-1, keepdims=True)
    return np.where(dead, 0, e / np.where(dead, 1, total))


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None, h: int, scale: float,
              ct: type) -> np.ndarray:
    """The math on [B, S, H*D] arrays in compute type `ct`; returns [B, Sq, H*Dv] in `ct`."""
    b, sq, _ = q.shape
    skv = k.shape[1]
    qh = q.astype(ct).reshape(b, sq, h, -1).transpose(0, 2, 1, 3)
    kh = k.astype(ct).reshape(b, skv, h, -1).transpose(0, 2, 1, 3)
    vh = v.astype(ct).reshape(b, skv, h, -1).transpose(0, 2, 1, 3)
    with np.errstate(invalid="ignore", over="ignore"):
        s = ct(scale) * np.matmul(qh, np.swapaxes(kh, -1, -2))
        if mask is not None:
            s = s + mask.astype(ct)
        p = softmax_rows(s)
    o = np.matmul(p, vh)
    return o.transpose(0, 2, 1, 3).reshape(b, sq, -1)


@reference(KEY)
def attention_ref(node: Node, q: np.ndarray, k: np.ndarray | None = None, v: np.ndarray | None = None,
                  mask: np.ndarray | None = None) -> np.ndarray:
    bb, h, sq, skv, d, _ = geometry(node, q.shape, None if k is None else k.shape, None if v is None else v.shape)
    if packed(node):
        q, k, v = q[..., :h * d], q[..., h * d:2 * h * d], q[..., 2 * h * d:]
    if mask is not None:
        check_mask(node, mask.shape, (bb, h, sq, skv))
    ct = np.float64 if q.dtype == np.float32 or q.dtype == np.float64 else np.float32
    out = attention(q, k, v, mask, h, float(node.attr("scale", 1.0)), ct)  # type: ignore[arg-type]
    return out.astype(q.dtype)


@infer(KEY)
def attention_infer(node: Node, q: Info, k: Info | None = None, v: Info | None = None,
                    mask: Info | None = None) -> Info:
    if not is_float(q.dtype):
        raise fail(node, f"Q {in_name(node, 0)} is {dtype_name(q.dtype)}; Attention needs a float type")
    for i, x in ((1, k), (2, v)):
        if x is not None and x.dtype != q.dtype:
            raise fail(node, f"{in_name(node, i)} is {dtype_name(x.dtype)} but Q is {dtype_name(q.dtype)}")
    if not isinstance(node.attr("scale", 1.0), (float, int)):
        raise fail(node, f"scale={node.attr('scale')!r} must be a number")
    b, h, sq, skv, _, dv = geometry(node, q.shape, None if k is None else k.shape, None if v is None else v.shape)
    if mask is not None:
        if mask.dtype not in (q.dtype, FLOAT):
            raise fail(node, f"mask {in_name(node, 3)} is {dtype_name(mask.dtype)}; Q's dtype "
                             f"({dtype_name(q.dtype)}) or float32 expected")
        check_mask(node, mask.shape, (b, h, sq, skv))
    return Info(q.dtype, (b, sq, h * dv))
