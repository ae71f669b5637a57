"""fuse_matmul: MatMul / Gemm [+ bias of shape [N]] [+ Relu | Gelu] -> ep_trtpy::FusedMatMul.

Math: ``FusedMatMul(A, B, bias) = act(alpha * op(A) @ op(B) + bias)``, op = transpose of the last two dims when
transA/transB is 1, numpy matmul broadcasting of batch dims, bias [N] added to every row (ops_spec.md).

Match: every MatMul and Gemm with static shapes (each becomes a FusedMatMul), with this epilogue:
* ``MatMul(A, B)`` (ranks >= 2) is FusedMatMul(A, B) with alpha 1. A 1-D operand is first reshaped to a matrix
  ([K] -> [1, K] for A, [K] -> [K, 1] for B) and the result reshaped back, as numpy matmul defines.
* ``Gemm(A, B, C) = alpha * op(A) @ op(B) + beta * C``: transA/transB/alpha carry over; a constant C that is a
  row vector (shapes [N], [1, N], [1], []) becomes bias = beta * C; any other C stays an Add of beta * C after
  the FusedMatMul (a constant folded, a runtime C through a Mul when beta != 1); beta = 0 drops C.
* Then, while the result has one consumer and is not a graph output: an Add of a constant broadcast along the
  rows (shape [..., 1, N] with ones before, or a scalar) is added to the bias; a following Relu, or Gelu
  (approximate none -> "Gelu", tanh -> "GeluTanh") becomes the activation and ends the chain.

Refusal: an Add whose other operand is not a row-vector constant (named), or a MatMul without static shapes; the
MatMul still becomes a FusedMatMul without that epilogue.

Rewrite: a FusedMatMul node producing the last absorbed value (or the intermediate feeding Gemm's C-term Add).
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.builder.passes._patterns import (DOMAIN, add, add_const, broadcast_shape, is_op,
                                               new_value, other_input, replace_nodes, reshape, sole_consumer, static)
from ep_trtpy.builder.pipeline import PassContext
from graph_partitioner.ir import Graph, Node, Value, np_dtype

NAME = "fuse_matmul"

ACTIVATIONS = {("Relu", ""): "Relu", ("Gelu", "none"): "Gelu", ("Gelu", "tanh"): "GeluTanh"}


def _row_vector(c: Value, y: Value) -> np.ndarray | None:
    """c as an [N] vector if it is a constant broadcast along the rows of y [..., M, N], else None."""
    if c.const is None or c.dtype != y.dtype:
        return None
    ys, cs = y.static_shape, tuple(c.static_shape)
    if len(cs) > len(ys) or not ys:
        return None
    full = (1,) * (len(ys) - len(cs)) + cs
    if full[-1] not in (ys[-1], 1) or any(d != 1 for d in full[:-1]):
        return None
    return np.broadcast_to(np.asarray(c.const, dtype=np.float64).reshape(-1), (ys[-1],)).copy()


def _epilogue(graph: Graph, start: Value, bias: np.ndarray | None, ctx: PassContext, what: str
              ) -> tuple[list[Node], Value, np.ndarray | None, str]:
    nodes: list[Node] = []
    act = ""
    cur = start
    while True:
        nxt = sole_consumer(graph, cur)
        if nxt is None:
            break
        if is_op(nxt, "Add"):
            other = other_input(nxt, cur)
            vec = None if other is None or other is cur else _row_vector(other, cur)
            if vec is None:
                if other is not None and other is not cur:
                    ctx.refuse(f"Add '{nxt.name}' after {what} is not fused: its operand '{other.name}' "
                               f"{list(other.shape or ())} is not a constant row vector of length "
                               f"{cur.static_shape[-1]}")
                break
            bias = vec if bias is None else bias + vec
        elif is_op(nxt, "Relu", "Gelu"):
            key = (nxt.op_type, "" if nxt.op_type == "Relu" else str(nxt.attr("approximate", "none")))
            if key not in ACTIVATIONS:
                break
            act = ACTIVATIONS[key]
        else:
            break
        nodes.append(nxt)
        cur = nxt.outputs[0]
        if act:
            break
    return nodes, cur, bias, act


def _emit(graph: Graph, nodes: list[Node], a: Value, b: Value, out: Value, bias: np.ndarray | None, attrs: dict,
          ctx: PassContext, name: str) -> Node:
    ins: list[Value | None] = [a, b]
    if bias is not None:
        odt = np_dtype(out.dtype)  # type: ignore[arg-type]
        ins.append(add_const(graph, ctx.interned(bias.astype(odt)), f"{name}_bias"))
    fused = replace_nodes(graph, nodes, "FusedMatMul", ins, [out], attrs, domain=DOMAIN,
                          name=graph.fresh_node_name(f"{name}_FusedMatMul") if len(nodes) > 1 else name)
    ctx.record_fusion(fused.name, nodes)
    return fused


def _matmul(graph: Graph, mm: Node, ctx: PassContext) -> None:
    a, b, y = mm.input(0), mm.input(1), mm.outputs[0]
    assert a is not None and b is not None
    attrs = {"transA": 0, "transB": 0, "alpha": 1.0}
    if len(a.static_shape) >= 2 and len(b.static_shape) >= 2:
        nodes, out, bias, act = _epilogue(graph, y, None, ctx, f"MatMul '{mm.name}'")
        _emit(graph, [mm] + nodes, a, b, out, bias, dict(attrs, activation=act), ctx, mm.name)
        return
    # numpy's 1-D rules through reshapes
    a2 = reshape(graph, a, [1, a.static_shape[0]], mm, f"{mm.name}_a") if len(a.static_shape) == 1 else a
    b2 = reshape(graph, b, [b.static_shape[0], 1], mm, f"{mm.name}_b") if len(b.static_shape) == 1 else b
    batch = broadcast_shape(a2.static_shape[:-2], b2.static_shape[:-2])
    mid = new_value(graph, f"{mm.name}_2d", y.dtype, batch + (a2.static_shape[-2], b2.static_shape[-1]))
    fused = graph.add_node("FusedMatMul", [a2, b2], [mid], dict(attrs, activation=""), domain=DOMAIN,
                           name=graph.fresh_node_name(f"{mm.name}_FusedMatMul"), before=mm)
    shape = add_const(graph, np.asarray(y.static_shape, dtype=np.int64), f"{mm.name}_shape")
    r = replace_nodes(graph, [mm], "Reshape", [mid, shape], [y], name=graph.fresh_node_name(f"{mm.name}_Reshape"))
    ctx.record_fusion(fused.name, [mm])
    ctx.record_fusion(r.name, [mm])


def _gemm(graph: Graph, g: Node, ctx: PassContext) -> None:
    a, b, c, y = g.input(0), g.input(1), g.input(2), g.outputs[0]
    assert a is not None and b is not None
    alpha, beta = float(g.attr("alpha", 1.0)), float(g.attr("beta", 1.0))
    attrs = {"transA": int(g.attr("transA", 0)), "transB": int(g.attr("transB", 0)), "alpha": alpha}
    if c is None or beta == 0.0:
        nodes, out, bias, act = _epilogue(graph, y, None, ctx, f"Gemm '{g.name}'")
        _emit(graph, [g] + nodes, a, b, out, bias, dict(attrs, activation=act), ctx, g.name)
        return
    vec = _row_vector(c, y)
    if vec is not None:
        nodes, out, bias, act = _epilogue(graph, y, beta * vec, ctx, f"Gemm '{g.name}'")
        _emit(graph, [g] + nodes, a, b, out, bias, dict(attrs, activation=act), ctx, g.name)
        return
    ctx.refuse(f"Gemm '{g.name}': C '{c.name}' {list(c.shape or ())} is not a constant row vector; its term stays "
               f"an Add after the FusedMatMul")
    mid = new_value(graph, f"{g.name}_ab", y.dtype, y.static_shape)
    if beta == 1.0:
        cb = c
    elif c.const is not None:
        scaled = np.asarray(c.const, dtype=np.float64) * beta
        cb = add_const(graph, ctx.interned(scaled.astype(np.asarray(c.const).dtype)), f"{g.name}_betaC")
    else:
        bv = add_const(graph, np.asarray(beta, dtype=np_dtype(c.dtype)), f"{g.name}_beta")  # type: ignore[arg-type]
        cb = add(graph, "Mul", [c, bv], c.dtype, c.static_shape, before=g, name_hint=f"{g.name}_betaC").outputs[0]
    fused = graph.add_node("FusedMatMul", [a, b], [mid], dict(attrs, activation=""), domain=DOMAIN,
                           name=graph.fresh_node_name(f"{g.name}_FusedMatMul"), before=g)
    addn = replace_nodes(graph, [g], "Add", [mid, cb], [y], name=graph.fresh_node_name(f"{g.name}_C"))
    ctx.record_fusion(fused.name, [g])
    ctx.record_fusion(addn.name, [g])


def run(graph: Graph, ctx: PassContext) -> bool:
    changed = False
    for node in list(graph.nodes):
        if not is_op(node, "MatMul", "Gemm"):
            continue
        if not all(static(v) for v in [node.input(0), node.input(1), node.outputs[0]]):
            ctx.refuse(f"{node.op_type} '{node.name}' has no static shapes; left as is")
            continue
        if node.op_type == "MatMul":
            _matmul(graph, node, ctx)
        else:
            _gemm(graph, node, ctx)
        changed = True
    return changed

