"""Support rules: attention (ep_trtpy::Attention, made by the fuse_attention pass; reference in
ep_trtpy/ops/attention.py, lowering in ep_trtpy/builder/lowering/attention.py)."""

from __future__ import annotations

from graph_partitioner.ir import Node
from graph_partitioner.support import common
from graph_partitioner.support.registry import FLOATS, SupportContext, rule


@rule("ep_trtpy::Attention", dtypes=FLOATS)
def attention(node: Node, ctx: SupportContext) -> str | None:
    """O = softmax(scale * Q_h K_h^T + mask) V_h per head; Q/K/V [B, S, H*D] (or packed QKV), additive mask."""
    h = node.attr("num_heads")
    if not isinstance(h, int) or h < 1:
        return f"ep_trtpy::Attention num_heads={h!r} is not a positive integer"
    if why := common.flag(node, "qkv_packed"):
        return why
    n_qkv = sum(1 for v in node.inputs[:3] if v is not None)
    if n_qkv != (1 if node.attr("qkv_packed", 0) else 3):
        return f"ep_trtpy::Attention has {n_qkv} of its Q, K, V inputs with qkv_packed={node.attr('qkv_packed', 0)}"
    return None
