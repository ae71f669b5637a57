"""fuse_conv: Conv [+ per-channel bias] [+ residual] [+ activation] [+ residual] -> ep_trtpy::FusedConv.

Math: ``FusedConv(X, W, B, Z) = act(conv(X, W) + B + Z)`` with B of shape [C_out] broadcast over the channel
axis and Z of the output's shape (ops_spec.md). Since addition commutes, the chain
    y = conv(X, W) [+ B0] ; y = y + c ; y = y + Z ; y = act(y)
in any order of the two Adds equals FusedConv(X, W, B0 + c, Z, activation=act). A residual added after the
activation (a CSP / YOLO bottleneck's shortcut, ``x + SiLU(conv(...))``)
    y = act(conv(X, W) [+ B0] [+ c]) + Z
equals FusedConv(X, W, B0 + c, Z, activation=act, residual_position="post_act"). The activations and their
spellings (x is the value the chain has reached):

    activation   matched as                                           act_alpha, act_beta
    Relu         Relu(x)
    Clip         Clip(x, min, max) (ReLU6 is Clip 0..6): min/max are   min, max (a missing bound is -+FLT_MAX,
                 attributes below opset 11, constant inputs from 11    the largest finite float32)
    LeakyRelu    LeakyRelu(x, alpha)                                   alpha
    Sigmoid      Sigmoid(x)
    Silu         Mul(x, Sigmoid(x)), either operand order
    HardSwish    HardSwish(x), or Mul(x, HardSigmoid(x, alpha=1/6, beta=0.5))
    Tanh         Tanh(x)

Match: a Conv with static shapes; then, while its current result is not a graph output, absorb
  * Add of a constant c whose shape, right-aligned to the output [N, C, *spatial], is C on the channel axis and 1
    elsewhere (a per-channel bias; added to B), when the result has one consumer and no activation was absorbed;
  * Add of a value Z (not a constant bias) with exactly the output's shape and dtype, once, likewise;
  * one activation of the table above: a single consumer, or for Silu / the HardSigmoid form of HardSwish exactly
    the two consumers Sigmoid (HardSigmoid) and Mul, the gate read by that Mul only;
  * after the activation, when no residual was absorbed before it: one Add (either operand order) of a value Z
    with exactly the output's shape and dtype, the activation's result having that Add as its single consumer
    (residual_position "post_act"; ends the chain).
Every remaining Conv also becomes a FusedConv (activation ""), so lowering only sees FusedConv.

auto_pad is resolved from the static shapes into explicit ``pads`` [begin..., end...]:
  VALID: 0; SAME_UPPER / SAME_LOWER: total = max(0, (ceil(in/s) - 1) * s + (k - 1) * d + 1 - in), the extra
  odd unit at the end (UPPER) or the beginning (LOWER).

Refusal: an Add after the Conv whose other operand is neither a per-channel constant nor of the output's shape;
an Add after the activation whose other operand is not of the output's shape and dtype (a broadcast), or that
follows a residual already absorbed before the activation;
a Clip whose min or max is not a constant (or is NaN); a HardSigmoid gate whose alpha/beta are not 1/6 and 0.5 (each sentence
names the value); a Conv without static shapes.

Rewrite: one FusedConv node producing the last absorbed value, attrs kernel_shape, strides, pads, dilations,
group, activation, act_alpha, act_beta, and residual_position "post_act" for a residual after the activation
(absent otherwise: "pre_act" is the default, so the layers of older engines and timing caches are unchanged).
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.builder.passes._patterns import add as add_node
from ep_trtpy.builder.passes._patterns import (DOMAIN, add_const, close, const_scalar, consumers, is_op,
                                               other_input, replace_nodes, sole_consumer, static)
from ep_trtpy.builder.pipeline import PassContext
from graph_partitioner.ir import Graph, Node, Value, np_dtype

NAME = "fuse_conv"

FLT_MAX = float(np.finfo(np.float32).max)
"""Stands for a missing Clip bound: the kernel takes finite bounds only, and no float32 value lies beyond it."""
SINGLE = {"Relu": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "LeakyRelu": "LeakyRelu", "HardSwish": "HardSwish",
          "Clip": "Clip"}
"""Activations spelled as one node reading the conv chain's value."""

Activation = tuple[str, float, float, list[Node], Value]
"""(activation, act_alpha, act_beta, the nodes it consists of, its output)."""


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


def _clip_bound(node: Node, i: int, attr: str, default: float, conv: Node, ctx: PassContext) -> float | None:
    """Clip's min (i=1, attr 'min') or max (2, 'max'): a constant input (opset >= 11), else the attribute (opset
    < 11), else `default`; None (refused) for a runtime input."""
    v = node.input(i)
    if v is not None:
        value = const_scalar(v)
        if value is None:
            ctx.refuse(f"Clip '{node.name}' after Conv '{conv.name}' is not fused: its {attr} '{v.name}' is not a "
                       "constant scalar")
        return value
    return float(node.attr(attr, default))


def _gated(graph: Graph, x: Value, gate_op: str) -> tuple[Node, Node] | None:
    """(gate, Mul) when x's only two consumers are gate_op(x) and Mul(x, gate_op(x)) (either order), the gate
    being read by that Mul only."""
    c = consumers(x)
    if len(c) != 2 or graph.is_graph_output(x):
        return None
    gate = next((n for n in c if is_op(n, gate_op) and n.input(0) is x), None)
    mul = next((n for n in c if is_op(n, "Mul")), None)
    if gate is None or mul is None or gate is mul or sole_consumer(graph, gate.outputs[0]) is not mul:
        return None
    return (gate, mul) if {id(mul.input(0)), id(mul.input(1))} == {id(x), id(gate.outputs[0])} else None


def _activation(graph: Graph, x: Value, conv: Node, ctx: PassContext) -> Activation | None:
    """The activation of the table in the module docstring applied to x, if one is."""
    for gate_op, act in (("Sigmoid", "Silu"), ("HardSigmoid", "HardSwish")):
        found = _gated(graph, x, gate_op)
        if found is None:
            continue
        gate, mul = found
        alpha, beta = float(gate.attr("alpha", 0.2)), float(gate.attr("beta", 0.5))
        if gate_op == "HardSigmoid" and not (close(alpha, 1 / 6, 1e-5) and close(beta, 0.5, 1e-5)):
            ctx.refuse(f"Mul '{mul.name}' of '{x.name}' and HardSigmoid '{gate.name}' (alpha {alpha:g}, beta "
                       f"{beta:g}) is not HardSwish (alpha 1/6, beta 0.5); not fused into Conv '{conv.name}'")
            return None
        return act, 0.0, 0.0, [gate, mul], mul.outputs[0]
    nxt = sole_consumer(graph, x)
    if nxt is None or not is_op(nxt, *SINGLE) or nxt.input(0) is not x:
        return None
    alpha = beta = 0.0
    if is_op(nxt, "LeakyRelu"):
        alpha = float(nxt.attr("alpha", 0.01))
    elif is_op(nxt, "Clip"):
        lo, hi = _clip_bound(nxt, 1, "min", -FLT_MAX, conv, ctx), _clip_bound(nxt, 2, "max", FLT_MAX, conv, ctx)
        if lo is None or hi is None:
            return None
        if np.isnan(lo) or np.isnan(hi):
            ctx.refuse(f"Clip '{nxt.name}' after Conv '{conv.name}' is not fused: a bound is NaN")
            return None
        alpha, beta = max(lo, -FLT_MAX), min(hi, FLT_MAX)
    return SINGLE[nxt.op_type], alpha, beta, [nxt], nxt.outputs[0]


def _post_act_residual(graph: Graph, a: Value, y: Value, conv: Node, ctx: PassContext,
                       pre: Value | None) -> tuple[Node, Value] | None:
    """(Add, Z) when the activation's result `a` flows only into Add(a, Z) or Add(Z, a) with Z of the conv
    output y's exact shape and dtype, and no residual `pre` was absorbed before the activation."""
    nxt = sole_consumer(graph, a)
    if nxt is None or not is_op(nxt, "Add"):
        return None
    other = other_input(nxt, a)
    if other is None or other is a:
        return None
    if other.dtype != y.dtype or other.shape != y.shape:
        ctx.refuse(f"Add '{nxt.name}' after the activation of Conv '{conv.name}' is not fused: its operand "
                   f"'{other.name}' {list(other.shape or ())} is not of the output's shape {list(y.shape or ())} "
                   "and dtype")
        return None
    if pre is not None:
        ctx.refuse(f"Add '{nxt.name}' after the activation of Conv '{conv.name}' is not fused: the residual "
                   f"'{pre.name}' before the activation already takes the FusedConv's Z")
        return None
    return nxt, other


def _fuse(graph: Graph, conv: Node, ctx: PassContext) -> Node:
    x, w, b = conv.input(0), conv.input(1), conv.input(2)
    y = conv.outputs[0]
    attrs = explicit_pads(conv, x.static_shape, w.static_shape)  # type: ignore[union-attr]
    attrs["group"] = int(conv.attr("group", 1))
    nodes = [conv]
    bias: np.ndarray | None = None
    z: Value | None = None
    act, alpha, beta = "", 0.0, 0.0
    post = False
    cur = y
    while True:
        found = _activation(graph, cur, conv, ctx)
        if found is not None:
            act, alpha, beta, act_nodes, cur = found
            nodes.extend(act_nodes)
            shortcut = _post_act_residual(graph, cur, y, conv, ctx, z)
            if shortcut is not None:
                add, z = shortcut
                post = True
                nodes.append(add)
                cur = add.outputs[0]
            break
        nxt = sole_consumer(graph, cur)
        if nxt is None or not is_op(nxt, "Add"):
            break
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
        nodes.append(nxt)
        cur = nxt.outputs[0]
    attrs["activation"] = act
    if act in ("Clip", "LeakyRelu"):
        attrs["act_alpha"] = alpha
    if act == "Clip":
        attrs["act_beta"] = beta
    if post:
        attrs["residual_position"] = "post_act"
    if bias is not None:
        c_out = y.static_shape[1]
        base = np.zeros(c_out) if b is None else np.asarray(b.const, dtype=np.float64).reshape(-1) \
            if b.const is not None else None
        ydt = np_dtype(y.dtype)  # type: ignore[arg-type]
        if base is None:
            # runtime B plus a constant bias: keep the sum in the graph as B + c
            cvals = add_const(graph, ctx.interned(bias.astype(ydt)), f"{conv.name}_bias2")
            assert b is not None
            b = add_node(graph, "Add", [b, cvals], b.dtype, (c_out,), before=conv).outputs[0]
        else:
            b = add_const(graph, ctx.interned((base + bias).astype(ydt)), f"{conv.name}_bias")
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
