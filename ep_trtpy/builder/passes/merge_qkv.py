"""merge_qkv: the Q, K and V projections of an Attention that read one input become one GEMM.

Math: for projections P_x = alpha * A @ op(W_x) + b_x (x = q, k, v) with the same A,

    concat(P_q, P_k, P_v, axis=-1) = alpha * A @ op(W_qkv) + concat(b_q, b_k, b_v)

where W_qkv concatenates the weights along their output axis (the last axis of W, or axis -2 with transB=1). That
concatenation is exactly ``ep_trtpy::Attention``'s packed input (qkv_packed=1).

Match: an Attention with qkv_packed=0 whose Q, K and V are outputs of three distinct ep_trtpy::FusedMatMul nodes
with the same A, the same transA/transB/alpha, no activation, constant 2-D weights of one shape and one dtype,
constant (or absent: zeros) biases, and no reader but this Attention (nor a graph output). The weights are
concatenated once at build time.

Refusal: a near miss (projections of the same A that differ in weight shape, activation, a non-constant weight or
bias, or another reader) is logged with the value; nothing changes.

Rewrite: one FusedMatMul producing [..., 3*H*D] and the Attention reading it as its first input, K and V absent,
qkv_packed=1.
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.builder.passes._patterns import DOMAIN, add_const, is_internal, new_value
from ep_trtpy.builder.pipeline import PassContext
from graph_partitioner.ir import Graph, Node, Value

NAME = "merge_qkv"


class _Refuse(Exception):
    pass


def _projections(graph: Graph, att: Node) -> list[Node] | None:
    """The three FusedMatMuls behind Q, K and V when they read one A; None when they do not look like it."""
    mms: list[Node] = []
    for i in range(3):
        v = att.input(i)
        if v is None or v.producer is None or not is_internal(v.producer, "FusedMatMul"):
            return None
        mms.append(v.producer)
    if len({id(m) for m in mms}) != 3 or len({id(m.input(0)) for m in mms}) != 1:
        return None
    first = mms[0]
    w0 = first.input(1)
    for m in mms:
        y = m.outputs[0]
        readers = [n for n, _ in y.consumers if n is not att]
        if readers or graph.is_graph_output(y):
            raise _Refuse(f"projection '{y.name}' is also read by "
                          f"{repr(readers[0].name) if readers else 'a graph output'}")
        for key, default in (("transA", 0), ("transB", 0), ("alpha", 1.0), ("activation", "")):
            if m.attr(key, default) != first.attr(key, default):
                raise _Refuse(f"'{m.name}' and '{first.name}' differ in {key}")
        if m.attr("activation", ""):
            raise _Refuse(f"'{m.name}' applies {m.attr('activation')}")
        w, b = m.input(1), m.input(2)
        if w is None or w.const is None or w.const.ndim != 2 or w0 is None or w0.const is None:
            raise _Refuse(f"the weight of '{m.name}' is not a constant matrix")
        if w.const.shape != w0.const.shape or w.dtype != w0.dtype:
            raise _Refuse(f"weights '{w.name}' {list(w.const.shape)} and '{w0.name}' {list(w0.const.shape)} differ "
                          f"in shape or dtype")
        if b is not None and b.const is None:
            raise _Refuse(f"the bias '{b.name}' of '{m.name}' is computed at run time")
    return mms


def _biases(consts: tuple[np.ndarray | None, ...], n: int, dtype: np.dtype) -> np.ndarray:
    """The packed bias: each projection's bias (zeros where it has none) broadcast to n, one after another."""
    return np.concatenate([np.zeros(n, dtype) if c is None else np.broadcast_to(np.asarray(c, dtype=dtype).reshape(-1),
                                                                                 (n,)) for c in consts])


def _merge(graph: Graph, att: Node, mms: list[Node], ctx: PassContext) -> Node:
    trans_b = int(mms[0].attr("transB", 0))
    weights = tuple(np.asarray(m.inputs[1].const) for m in mms)  # type: ignore[union-attr]
    axis = 0 if trans_b else 1
    w = ctx.derived(("concatenate", weights, axis), lambda: np.concatenate(weights, axis=axis))
    n, dtype = weights[0].shape[axis], weights[0].dtype
    inputs: list[Value | None] = [mms[0].input(0), add_const(graph, w, f"{att.name}_Wqkv")]
    if any(m.input(2) is not None for m in mms):
        consts = tuple(None if (b := m.input(2)) is None else b.const for m in mms)
        b = ctx.derived(("qkv_bias", consts, n, dtype), lambda: _biases(consts, n, dtype))
        inputs.append(add_const(graph, b, f"{att.name}_bqkv"))
    y0 = mms[0].outputs[0]
    out = new_value(graph, f"{att.name}_qkv", y0.dtype, (*y0.static_shape[:-1], 3 * y0.static_shape[-1]))
    attrs = {k: mms[0].attrs[k] for k in ("transA", "transB", "alpha", "activation") if k in mms[0].attrs}
    last = max(graph.nodes.index(m) for m in mms)
    fused = graph.add_node("FusedMatMul", inputs, [out], attrs, domain=DOMAIN,
                           name=graph.fresh_node_name(f"{att.name}_QKV"), before=graph.nodes[last])
    for i in range(3):
        graph.set_input(att, i, out if i == 0 else None)
    att.attrs["qkv_packed"] = 1
    for m in mms:
        graph.remove_node(m)
    ctx.record_fusion(fused.name, mms)
    return fused


def run(graph: Graph, ctx: PassContext) -> bool:
    changed = False
    for att in list(graph.nodes):
        if not is_internal(att, "Attention") or att.attr("qkv_packed", 0):
            continue
        try:
            mms = _projections(graph, att)
        except _Refuse as e:
            ctx.refuse(f"Q, K and V of '{att.name}' not merged: {e}")
            continue
        if mms is None:
            continue
        _merge(graph, att, mms, ctx)
        changed = True
    if changed:
        graph.toposort()
    return changed
