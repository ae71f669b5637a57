"""fuse_conv: Conv [+ per-channel bias] [+ residual] [+ Relu] -> ep_trtpy::FusedConv.

Math: ``FusedConv(X, W, B, Z) = act(conv(X, W) + B + Z)`` with B of shape [C_out] broadcast over the channel
axis and Z of the output's shape (ops_spec.md). Since addition commutes, the chain
    y = conv(X, W) [+ B0] ; y = y + c ; y = y + Z ; y = Relu(y)
in any order of the two Adds equals FusedConv(X, W, B0 + c, Z, activation="Relu").

Match: a Conv with static shapes; then, while its current result has exactly one consumer and is not a graph
output, absorb
  * Add of a constant c whose shape, right-aligned to the output [N, C, *spatial], is C on the channel axis and 1
    elsewhere (a per-channel bias; added to B), unless an activation was already absorbed;
  * Add of a value Z (not a constant bias) with exactly the output's shape and dtype, once;
  * Relu, once (ends the chain).
Every remaining Conv also becomes a FusedConv (activation ""), so lowering only sees FusedConv.

auto_pad is resolved from the static shapes into explicit ``pads`` [begin..., end...]:
  VALID: 0; SAME_UPPER / SAME_LOWER: total = max(0, (ceil(in/s) - 1) * s + (k - 1) * d + 1 - in), the extra
  odd unit at the end (UPPER) or the beginning (LOWER).

Refusal: an Add after the Conv whose other operand is neither a per-channel constant nor of the output's shape
(the sentence names it); a Conv without static shapes.

Rewrite: one FusedConv node producing the last absorbed value, attrs kernel_shape, strides, pads, dilations,
group, activation.
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.builder.passes._patterns import add as add_node
from ep_trtpy.builder.passes._patterns import (DOMAIN, add_const, is_op, other_input, replace_nodes, sole_consumer,
                                               static)
from ep_trtpy.builder.pipeline import PassContext
from graph_partitioner.ir import Graph, Node, Value, np_dtype

NAME = "fuse_conv"


def explicit_pads(node: Node, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> dict[str, list[int]]:
    """kernel_shape, strides, dilations and explicit pads of a Conv, with auto_pad resolved."""
    nsp = len(x_shape) - 2
    k = [int(v) for v in node.attr("kernel_shape", list(w_shape[2:]))]
    s = [int(v) for v in node.attr("strides", [1] * nsp)]
    d = [int(v) for v in node.attr("dilations", [1] * nsp)]
    auto = node.attr("auto_pad", "NOTSET")
    if isinstance(auto, bytes):
        auto = auto.decode()
    if auto in ("NOTSET", ""):
        pads = [int(v) for v in node.attr("pads", [0] * (2 * nsp))]
    elif auto == "VALID":
        pads = [0] * (2 * nsp)
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(nsp):
            n = x_shape[2 + i]
            out = -(-n // s[i])
            total = max(0, (out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - n)
            small, big = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else big)
            end.append(big if auto == "SAME_UPPER" else small)
        pads = begin + end
    else:
        raise ValueError(f"Conv '{node.name}': auto_pad {auto!r} is not a valid value")
    return {"kernel_shape": k, "strides": s, "dilations": d, "pads": pads}


def _per_channel(c: Value, y: Value) -> np.ndarray | None:
    """c as a [C] vector if it is a constant per-channel bias for y [N, C, ...], else None."""
    if c.const is None or c.dtype != y.dtype:
        return None
    yshape = y.static_shape
    cs = tuple(c.static_shape)
    if len(cs) > len(yshape) or len(yshape) < 2:
        return None
    full = (1,) * (len(yshape) - len(cs)) + cs
    if full[1] not in (yshape[1], 1) or any(d != 1 for i, d in enumerate(full) if i != 1):
        return None
    return np.broadcast_to(np.asarray(c.const).reshape(-1), (yshape[1],)).astype(np.float64)


def _fuse(graph: Graph, conv: Node, ctx: PassContext) -> Node:
    x, w, b = conv.input(0), conv.input(1), conv.input(2)
    y = conv.outputs[0]
    attrs = explicit_pads(conv, x.static_shape, w.static_shape)  # type: ignore[union-attr]
    attrs["group"] = int(conv.attr("group", 1))
    nodes = [conv]
    bias: np.ndarray | None = None
    z: Value | None = None
    act = ""
    cur = y
    while True:
        nxt = sole_consumer(graph, cur)
        if nxt is None:
            break
        if is_op(nxt, "Add") and not act:
            other = other_input(nxt, cur)
            if other is None or other is cur:
                break
            vec = _per_channel(other, y)
            if vec is not None:
                bias = vec if bias is None else bias + vec
            elif z is None and other.dtype == y.dtype and other.shape == y.shape:
                z = other
            else:
                ctx.refuse(f"Add '{nxt.name}' after Conv '{conv.name}' is not fused: its operand '{other.name}' "
                           f"{list(other.shape or ())} is neither a per-channel constant bias nor a residual of "
                           f"the output's shape {list(y.shape or ())}")
                break
        elif is_op(nxt, "Relu") and not act:
            act = "Relu"
        else:
            break
        nodes.append(nxt)
        cur = nxt.outputs[0]
    attrs["activation"] = act
    if bias is not None:
        c_out = y.static_shape[1]
        base = np.zeros(c_out) if b is None else np.asarray(b.const, dtype=np.float64).reshape(-1) \
            if b.const is not None else None
        if base is None:
            # runtime B plus a constant bias: keep the sum in the graph as B + c
            cvals = add_const(graph, bias.astype(np_dtype(y.dtype)), f"{conv.name}_bias2")  # type: ignore[arg-type]
            assert b is not None
            b = add_node(graph, "Add", [b, cvals], b.dtype, (c_out,), before=conv).outputs[0]
        else:
            b = add_const(graph, (base + bias).astype(np_dtype(y.dtype)), f"{conv.name}_bias")  # type: ignore[arg-type]
    inputs: list[Value | None] = [x, w, b, z]
    while inputs and inputs[-1] is None:
        inputs.pop()
    fused = replace_nodes(graph, nodes, "FusedConv", inputs, [cur], attrs, domain=DOMAIN,
                          name=graph.fresh_node_name(f"{conv.name}_FusedConv") if len(nodes) > 1 else conv.name)
    ctx.record_fusion(fused.name, nodes)
    return fused


def run(graph: Graph, ctx: PassContext) -> bool:
    changed = False
    for conv in list(graph.nodes):
        if not is_op(conv, "Conv"):
            continue
        if not (static(conv.input(0)) and static(conv.input(1)) and static(conv.outputs[0])):
            ctx.refuse(f"Conv '{conv.name}' has no static shapes; left as Conv")
            continue
        _fuse(graph, conv, ctx)
        changed = True
    return changed
