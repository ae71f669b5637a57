"""fuse_layernorm: the decomposed layer normalization exporters emit -> LayerNormalization.

Math: over the normalized axes R = [axis, ..., rank-1],
    mean = E_R[x],  d = x - mean,  var = E_R[d^2],  y = d / sqrt(var + eps) * gamma + beta
which is ``LayerNormalization(x, gamma, beta, axis, epsilon=eps)`` (stash_type 1: statistics in float32).

Match (each intermediate used only inside the pattern):
    mean = ReduceMean(x, axes=R, keepdims=1)
    d    = Sub(x, mean)                              (one Sub, or two identical Subs)
    sq   = Pow(d, 2) | Mul(d, d)
    var  = ReduceMean(sq, axes=R, keepdims=1)
    ve   = Add(var, eps)                             (eps a constant scalar, either operand order)
    std  = Sqrt(ve)
    n    = Div(d, std) | Mul(d, Reciprocal(std))
    [y   = Mul(n, gamma)] [y = Add(y, beta)]         (gamma/beta: constants, or runtime values of x's dtype
                                                      with exactly the normalized shape)
R must be the trailing axes of x. gamma/beta must not broadcast n to a bigger shape and must be 1 on the
non-normalized axes (a constant gamma of shape [1, 1, D] becomes a scale of shape [D]).

Refusal (with a sentence naming the value): reduced axes that are not trailing, an eps that is not a constant
scalar, an intermediate used outside the pattern, keepdims=0; a gamma/beta that does not fit stays a separate
Mul/Add after the fused LayerNormalization.

Rewrite: one LayerNormalization producing the pattern's last value; gamma defaults to ones(normalized shape).
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.builder.passes._patterns import (add_const, const_scalar, consumers, contiguous, is_op, norm_axes,
                                               other_input, reduce_axes, replace_nodes, sole_consumer)
from ep_trtpy.builder.pipeline import PassContext
from graph_partitioner.ir import Graph, Node, Value, np_dtype

NAME = "fuse_layernorm"


class _Refuse(Exception):
    pass


def _axes(node: Node, rank: int) -> list[int] | None:
    if int(node.attr("keepdims", 1)) != 1:
        return None
    axes = reduce_axes(node)
    if axes is None:
        return None
    if not axes:
        if int(node.attr("noop_with_empty_axes", 0)):
            return None
        return list(range(rank))
    return norm_axes(axes, rank)


def _is_square_of(node: Node, d: Value) -> bool:
    if is_op(node, "Pow") and node.input(0) is d:
        return const_scalar(node.input(1)) == 2.0
    return is_op(node, "Mul") and node.input(0) is d and node.input(1) is d


def _only(graph: Graph, v: Value, what: str, op_types: tuple[str, ...]) -> Node:
    n = sole_consumer(graph, v)
    if n is None or not is_op(n, *op_types):
        raise _Refuse(f"'{v.name}' ({what}) is used outside the pattern or not by {'/'.join(op_types)}")
    return n


def _affine_param(graph: Graph, node: Node, n: Value, x: Value, axis: int) -> np.ndarray | Value | None:
    """The gamma/beta operand of `node` (Mul or Add with n) as a normalized-shape array or runtime value."""
    p = other_input(node, n)
    rank = len(x.static_shape)
    norm_shape = tuple(x.static_shape[axis:])
    if p is None or p is n or p.dtype != x.dtype or p.shape is None:
        return None
    shape = tuple(p.static_shape)
    if len(shape) > rank:
        return None
    full = (1,) * (rank - len(shape)) + shape
    if any(d != 1 for d in full[:axis]):
        return None
    trailing = full[axis:]
    try:
        if tuple(np.broadcast_shapes(trailing, norm_shape)) != norm_shape:
            return None
    except ValueError:
        return None
    if p.const is not None:
        return contiguous(np.broadcast_to(np.asarray(p.const).reshape(trailing), norm_shape))
    return p if shape == norm_shape else None


def _match(graph: Graph, m1: Node, ctx: PassContext) -> tuple[list[Node], dict] | None:
    x = m1.input(0)
    if x is None or x.shape is None:
        return None
    rank = len(x.static_shape)
    axes = _axes(m1, rank)
    mean = m1.outputs[0]
    subs = [n for n in consumers(mean) if is_op(n, "Sub") and n.input(0) is x and n.input(1) is mean]
    if not subs:
        return None
    ds = [s.outputs[0] for s in subs]
    sq_node = next((n for d in ds for n in consumers(d) if _is_square_of(n, d)), None)
    if sq_node is None:
        return None
    # From here on it is clearly a LayerNorm attempt: refusals are worth reporting.
    if axes is None or axes != list(range(rank - len(axes), rank)):
        raise _Refuse(f"ReduceMean '{m1.name}' over '{x.name}' reduces axes {reduce_axes(m1)} (keepdims "
                      f"{m1.attr('keepdims', 1)}), not the trailing axes of a rank-{rank} tensor")
    if any(n not in subs for n in consumers(mean)) or graph.is_graph_output(mean):
        raise _Refuse(f"the mean '{mean.name}' is used outside the pattern")
    var_node = _only(graph, sq_node.outputs[0], "the squared deviation", ("ReduceMean",))
    if _axes(var_node, rank) != axes:
        raise _Refuse(f"the variance ReduceMean '{var_node.name}' reduces other axes than the mean '{m1.name}'")
    add_eps = _only(graph, var_node.outputs[0], "the variance", ("Add",))
    eps = const_scalar(other_input(add_eps, var_node.outputs[0]))
    if eps is None:
        raise _Refuse(f"the epsilon added by '{add_eps.name}' is not a constant scalar")
    sqrt = _only(graph, add_eps.outputs[0], "variance + eps", ("Sqrt",))
    std = sqrt.outputs[0]
    div = _only(graph, std, "the standard deviation", ("Div", "Reciprocal"))
    nodes = [m1, *subs, sq_node, var_node, add_eps, sqrt, div]
    if is_op(div, "Reciprocal"):
        mul = _only(graph, div.outputs[0], "1/std", ("Mul",))
        d_used = other_input(mul, div.outputs[0])
        nodes.append(mul)
        norm = mul
    else:
        if div.input(1) is not std:
            raise _Refuse(f"'{std.name}' is the numerator of '{div.name}', not the divisor")
        d_used = div.input(0)
        norm = div
    if d_used not in ds:
        raise _Refuse(f"'{norm.name}' does not normalize x - mean")
    for d in ds:
        for c in consumers(d):
            if c is not sq_node and c is not norm:
                raise _Refuse(f"the deviation '{d.name}' is also used by '{c.name}'")
        if graph.is_graph_output(d):
            raise _Refuse(f"the deviation '{d.name}' is a graph output")
    axis = axes[0] if axes else 0
    out = norm.outputs[0]
    scale: np.ndarray | Value | None = None
    bias: np.ndarray | Value | None = None
    nxt = sole_consumer(graph, out)
    if is_op(nxt, "Mul"):
        scale = _affine_param(graph, nxt, out, x, axis)  # type: ignore[arg-type]
        if scale is None:
            ctx.refuse(f"Mul '{nxt.name}' after the LayerNorm of '{x.name}' is not a fitting gamma; kept separate")
        else:
            nodes.append(nxt)  # type: ignore[arg-type]
            out = nxt.outputs[0]  # type: ignore[union-attr]
            nxt = sole_consumer(graph, out)
    if is_op(nxt, "Add"):
        bias = _affine_param(graph, nxt, out, x, axis)  # type: ignore[arg-type]
        if bias is None:
            ctx.refuse(f"Add '{nxt.name}' after the LayerNorm of '{x.name}' is not a fitting beta; kept separate")
        else:
            nodes.append(nxt)  # type: ignore[arg-type]
            out = nxt.outputs[0]  # type: ignore[union-attr]
    return nodes, {"x": x, "axis": axis, "eps": eps, "scale": scale, "bias": bias, "out": out}


def run(graph: Graph, ctx: PassContext) -> bool:
    changed = False
    removed: set[int] = set()
    for m1 in list(graph.nodes):
        if not is_op(m1, "ReduceMean") or id(m1) in removed:
            continue
        try:
            found = _match(graph, m1, ctx)
        except _Refuse as e:
            ctx.refuse(f"LayerNorm pattern at '{m1.name}' not fused: {e}")
            continue
        if found is None:
            continue
        nodes, p = found
        x: Value = p["x"]
        norm_shape = x.static_shape[p["axis"]:]
        dt = np_dtype(x.dtype)  # type: ignore[arg-type]
        scale = p["scale"]
        if scale is None:
            scale = np.ones(norm_shape, dtype=dt)
        scale_v = scale if isinstance(scale, Value) else add_const(graph, ctx.interned(np.asarray(scale, dtype=dt)),
                                                                   f"{m1.name}_gamma")
        bias = p["bias"]
        bias_v = None if bias is None else bias if isinstance(bias, Value) else \
            add_const(graph, ctx.interned(np.asarray(bias, dtype=dt)), f"{m1.name}_beta")
        ins = [x, scale_v] + ([bias_v] if bias_v is not None else [])
        ln = replace_nodes(graph, nodes, "LayerNormalization", ins, [p["out"]],
                           {"axis": int(p["axis"]), "epsilon": float(p["eps"])},
                           name=graph.fresh_node_name(f"{m1.name}_LayerNorm"))
        ctx.record_fusion(ln.name, nodes)
        removed.update(id(n) for n in nodes)
        ctx.info("fused LayerNorm over '%s' (axis %d, eps %g) from %d nodes", x.name, p["axis"], p["eps"],
                 len(nodes))
        changed = True
    return changed
