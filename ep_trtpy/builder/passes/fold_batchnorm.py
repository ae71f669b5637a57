"""fold_batchnorm: BatchNormalization (inference) folded into the Conv before it, or rewritten to x*scale+shift.

Math: BN(x)_c = gamma_c (x_c - mean_c) / sqrt(var_c + eps) + beta_c = s_c x_c + t_c with
s = gamma / sqrt(var + eps) and t = beta - mean * s (per channel c = axis 1).

* After Conv with constant W (and constant or absent B): output channel o is sum(W[o] * x) + B[o], so
  BN(Conv(x)) = Conv'(x) with W'[o] = s_o W[o] and B'[o] = s_o B[o] + t_o.
* After ConvTranspose with constant W of shape [C_in, C_out/group, k...]: output channel o = g*C_out/group + j
  is fed by W[g*C_in/group : (g+1)*C_in/group, j], so those slices are scaled by s_o and B' = s B + t likewise.
* Otherwise: y = x * s + t with s and t reshaped to [C, 1, ..., 1] (Mul and Add nodes, which become one fused
  pointwise kernel); with non-constant statistics s and t are computed by small nodes on [C] vectors.

Match: BatchNormalization with a single used output (inference mode).

Refusal: BN in training mode or with used running-statistics outputs (left alone, with the reason); a Conv
before it whose output is used elsewhere, whose weights are not constants, or which is a graph output (then BN is
rewritten to x*s+t instead, and the reason names the value).

Rewrite: the Conv/ConvTranspose gets new constant W and B and produces BN's output value; or Mul/Add nodes.
Arithmetic is done in float64 and rounded once to the weights' dtype.
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.builder.passes._patterns import add, add_const, is_op, replace_nodes, reshape, set_output, sole_consumer
from ep_trtpy.builder.pipeline import PassContext
from ep_trtpy.builder.weight_reuse import operand
from graph_partitioner.ir import Graph, Node, np_dtype

NAME = "fold_batchnorm"


def _consts(node: Node) -> list[np.ndarray] | None:
    vals = [node.input(i) for i in range(1, 5)]
    if any(v is None or v.const is None for v in vals):
        return None
    return [np.asarray(v.const, dtype=np.float64).reshape(-1) for v in vals]  # type: ignore[union-attr]


def _fold_into_conv(graph: Graph, bn: Node, conv: Node, s: np.ndarray, t: np.ndarray, ctx: PassContext) -> bool:
    w_v, b_v = conv.input(1), conv.input(2)
    y = conv.outputs[0]
    if sole_consumer(graph, y) is not bn:
        ctx.refuse(f"BatchNormalization '{bn.name}' is not folded into {conv.op_type} '{conv.name}': "
                   f"'{y.name}' is used elsewhere")
        return False
    if w_v is None or w_v.const is None or (b_v is not None and b_v.const is None):
        ctx.refuse(f"BatchNormalization '{bn.name}' is not folded into {conv.op_type} '{conv.name}': its weight "
                   f"'{(w_v.name if w_v is not None else '?')}' or bias is not a constant")
        return False
    w = np.asarray(w_v.const)
    c_out = s.size
    b = np.zeros(c_out) if b_v is None else np.asarray(b_v.const, dtype=np.float64).reshape(-1)
    group = int(conv.attr("group", 1))
    if conv.op_type == "Conv":
        if w.shape[0] != c_out:
            ctx.refuse(f"BatchNormalization '{bn.name}' has {c_out} channels but Conv '{conv.name}' has {w.shape[0]}")
            return False
        scale = s.reshape((-1,) + (1,) * (w.ndim - 1))
    else:  # ConvTranspose: W [C_in, C_out/group, k...]
        cog = w.shape[1]
        if cog * group != c_out:
            ctx.refuse(f"BatchNormalization '{bn.name}' has {c_out} channels but ConvTranspose '{conv.name}' has "
                       f"{cog * group}")
            return False
        cig = w.shape[0] // group
        scale = np.stack([s[(ci // cig) * cog:(ci // cig + 1) * cog] for ci in range(w.shape[0])])
        scale = scale.reshape(scale.shape + (1,) * (w.ndim - 2))
    b2 = b * s + t
    wdt = np_dtype(w_v.dtype) if w_v.dtype is not None else np.float32
    w2 = ctx.derived(("bn_scale", w, operand(scale), wdt), lambda: (w.astype(np.float64) * scale).astype(wdt))
    new_w = add_const(graph, w2, f"{w_v.name}_bnfold")
    new_b = add_const(graph, ctx.interned(b2.astype(wdt)), f"{bn.name}_bias")
    graph.set_input(conv, 1, new_w)
    graph.set_input(conv, 2, new_b)
    out = bn.outputs[0]
    graph.remove_node(bn)
    set_output(conv, 0, out)  # the conv now produces BN's output value
    ctx.record_fusion(conv.name, [conv, bn])
    return True


def _rewrite_affine(graph: Graph, bn: Node, ctx: PassContext) -> None:
    x, y = bn.input(0), bn.outputs[0]
    assert x is not None and x.shape is not None
    rank = len(x.shape)
    c = int(x.shape[1]) if rank >= 2 else int(x.shape[0])
    bshape = (c,) + (1,) * max(rank - 2, 0)
    consts = _consts(bn)
    eps = float(bn.attr("epsilon", 1e-5))
    xdt = np_dtype(x.dtype) if x.dtype is not None else np.float32
    if consts is not None:
        gamma, beta, mean, var = consts
        s = gamma / np.sqrt(var + eps)
        t = beta - mean * s
        s_v = add_const(graph, ctx.interned(s.reshape(bshape).astype(xdt)), f"{bn.name}_scale")
        t_v = add_const(graph, ctx.interned(t.reshape(bshape).astype(xdt)), f"{bn.name}_shift")
    else:
        g, b, m, v = (bn.input(i) for i in range(1, 5))
        vec = (c,)
        eps_v = add_const(graph, np.asarray(eps, dtype=xdt), f"{bn.name}_eps")
        ve = add(graph, "Add", [v, eps_v], x.dtype, vec, before=bn).outputs[0]
        sd = add(graph, "Sqrt", [ve], x.dtype, vec, before=bn).outputs[0]
        s1 = add(graph, "Div", [g, sd], x.dtype, vec, before=bn).outputs[0]
        ms = add(graph, "Mul", [m, s1], x.dtype, vec, before=bn).outputs[0]
        t1 = add(graph, "Sub", [b, ms], x.dtype, vec, before=bn).outputs[0]
        s_v = reshape(graph, s1, bshape, before=bn, hint=f"{bn.name}_scale")
        t_v = reshape(graph, t1, bshape, before=bn, hint=f"{bn.name}_shift")
    mul = add(graph, "Mul", [x, s_v], x.dtype, x.shape, before=bn, name_hint=f"{bn.name}_mul")  # type: ignore[arg-type]
    new = replace_nodes(graph, [bn], "Add", [mul.outputs[0], t_v], [y], name=graph.fresh_node_name(f"{bn.name}_add"))
    ctx.record_fusion(mul.name, [bn])
    ctx.record_fusion(new.name, [bn])


def run(graph: Graph, ctx: PassContext) -> bool:
    changed = False
    for bn in list(graph.nodes):
        if not is_op(bn, "BatchNormalization"):
            continue
        if int(bn.attr("training_mode", 0)) or any(v.consumers or graph.is_graph_output(v) for v in bn.outputs[1:]):
            ctx.refuse(f"BatchNormalization '{bn.name}' is in training mode or its statistics outputs are used; "
                       f"left as is")
            continue
        x = bn.input(0)
        if x is None or x.shape is None:
            continue
        prod = x.producer
        consts = _consts(bn)
        if consts is not None and is_op(prod, "Conv", "ConvTranspose"):
            gamma, beta, mean, var = consts
            s = gamma / np.sqrt(var + float(bn.attr("epsilon", 1e-5)))
            t = beta - mean * s
            if _fold_into_conv(graph, bn, prod, s, t, ctx):  # type: ignore[arg-type]
                changed = True
                continue
        _rewrite_affine(graph, bn, ctx)
        changed = True
    return changed
