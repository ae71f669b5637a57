"""Lowering of ``ep_trtpy::Attention`` onto the ``attention`` kernel (cuda_kernels, layout in perf-design.md)::

    attention  inputs [Q, K, V, M or -1]   outputs [O] contiguous [B, Sq, H*Dv]
               ints [B, H, Sq, Skv, D, Dv, q_row, k_row, v_row, m_sb, m_sh, m_sq, m_sk, math (, varying)]
               floats [scale]
               O = softmax(scale * Q K^T + M) V per batch b and head h (over the key axis)
               Q (b, i, h, e) is element b*Sq*q_row + i*q_row + h*D + e of the Q tensor,
               K (b, j, h, e) element b*Skv*k_row + j*k_row + h*D + e, V (b, j, h, e) b*Skv*v_row + j*v_row + h*Dv + e
               M (b, h, i, j) element b*m_sb + h*m_sh + i*m_sq + j*m_sk (0 strides broadcast); Q's dtype or float32
               Q, K, V and O one dtype: float32, float16 or bfloat16
               math: 1 lets the float32 path's GEMMs use TF32 (float32 data with tf32_enable), else 0
               varying: 1 in an engine specialized from a family's (lowered against its weights, one of many
               shapes of one program): the cuDNN graph is built for dynamic shapes, so every attention layer
               of that topology, in this engine and the later ones, reuses one compiled kernel (cuDNN's kernel
               cache) instead of compiling its own for each new batch and sequence length
               a query row whose every logit is -inf gives zeros (flash-attention convention; SDPA's NaN guard)

Unpacked inputs are the op's own [B, S, H*D] tensors (rows of H*D and H*Dv elements). A packed [B, S, 3*H*D] input
becomes three views of the one tensor at byte offsets 0, H*D*es and 2*H*D*es with q_row = k_row = v_row = 3*H*D;
each view is one-dimensional and spans from its offset to the last element the kernel reads
((B*S - 1) * 3*H*D + H*D elements), so a bounds check on the view holds. The mask's strides are its contiguous
strides right-aligned to [B, H, Sq, Skv], 0 wherever it broadcasts (extent 1).

The kernel may refuse nothing that this lowering emits; its workspace (batched GEMMs and the mask-softmax for
float32 or shapes cuDNN refuses) is chosen by the native prepare.
"""

from __future__ import annotations

from ep_trtpy.builder.lowering import LowerCtx, LoweringError, lowering
from ep_trtpy.builder.lowering._util import check_dtype, check_out_shape, contiguous_strides, itemsize, shape_of
from ep_trtpy.ops.attention import KEY, check_mask, geometry
from ep_trtpy.ops.registry import OpError
from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT16, Node

DTYPES = (FLOAT, FLOAT16, BFLOAT16)


def mask_strides(shape: tuple[int, ...]) -> list[int]:
    """[m_sb, m_sh, m_sq, m_sk] of a contiguous mask read at [B, H, Sq, Skv] indices (right-aligned, 0 where the
    mask's extent is 1 or the axis is missing)."""
    full = (1,) * (4 - len(shape)) + tuple(shape)
    cs = contiguous_strides(full)
    return [0 if n == 1 else s for n, s in zip(full, cs)]


@lowering(KEY)
def lower_attention(ctx: LowerCtx, node: Node) -> None:
    q, k, v, m = (node.input(i) for i in range(4))
    out = node.outputs[0]
    assert q is not None
    check_dtype(node, q, DTYPES, "Q")
    try:
        b, h, sq, skv, d, dv = geometry(node, shape_of(q), None if k is None else shape_of(k),
                                        None if v is None else shape_of(v))
        if m is not None:
            check_mask(node, shape_of(m), (b, h, sq, skv))
    except OpError as e:
        raise LoweringError(str(e)) from None
    check_out_shape(node, out, (b, sq, h * dv))
    if k is None or v is None:  # packed QKV: three views of one tensor
        es, row = itemsize(q.dtype), 3 * h * d  # type: ignore[arg-type]
        src = ctx.tensor(q)
        span = (b * sq - 1) * row + h * d
        qkv = [ctx.view(src, q.dtype, [span], part * h * d * es, f"{node.name}:{name}")  # type: ignore[arg-type]
               for part, name in enumerate("QKV")]
        rows = [row, row, row]
    else:
        for x, what in ((k, "K"), (v, "V")):
            if x.dtype != q.dtype:
                raise LoweringError(f"node '{node.name}' (Attention): {what} '{x.name}' has another dtype than Q")
        qkv = [ctx.tensor(q), ctx.tensor(k), ctx.tensor(v)]
        rows = [h * d, h * d, h * dv]
    if m is not None:
        check_dtype(node, m, (q.dtype, FLOAT), "mask")  # type: ignore[arg-type]
        mask, strides = ctx.tensor(m), mask_strides(shape_of(m))
    else:
        mask, strides = -1, [0, 0, 0, 0]
    math = int(q.dtype == FLOAT and ctx.options.tf32_enable)
    varying = [1] if ctx.base is not None else []  # a specialization: shapes vary across the program's engines
    ctx.emit("attention", qkv + [mask], [ctx.tensor(out)], ints=[b, h, sq, skv, d, dv, *rows, *strides, math, *varying],
             floats=[float(node.attr("scale", 1.0))], name=node.name)
