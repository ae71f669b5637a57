"""fuse_attention: scaled-dot-product attention in its exporter spellings -> ep_trtpy::Attention.

Math: with the projections Q [B, Sq, H*D], K [B, Skv, H*D], V [B, Skv, H*Dv] and Q_h = heads of Q (likewise K_h, V_h)

    O = merge_heads(softmax(scale * Q_h K_h^T + mask) V_h)                      O [B, Sq, H*Dv]

where split_heads is Reshape [B, S, H, D] + Transpose [B, H, S, D] and merge_heads its inverse. The scale may be
spelt on Q, on K, on K^T or on the scores (Div by c or Mul by 1/c, or split as sqrt on Q and on K): it is the
product of every scalar factor met. An optional NaN guard after the softmax, ``Where(IsNaN(P), 0, P)`` (PyTorch's
SDPA export), makes a query row that may attend to nothing give zeros, which is how Attention defines that row.

Match (anchor: a Softmax whose input is reached from a MatMul and whose output feeds a MatMul):
* the scores path MatMul(Qop, Kop) -> {Reshape, Transpose, scalar Mul/Div, one Add of the mask} -> Softmax ->
  [NaN guard] -> {Reshape, Transpose} -> MatMul(P, Vop) -> {Transpose, Reshape} -> O. Every value on it is used
  only by the next node.
* Q, K and V are followed back from the MatMul operands through Reshape / Squeeze / Unsqueeze / Flatten /
  Transpose (and scalar Mul/Div for Q and K) to the projection. Which axis is which is tracked through those
  nodes (each tensor axis is a product of "atoms" of the projection's axes, split where a Reshape splits them),
  so the Einsum spelling after rewrite_einsum ([B*H, S, D] batches), K transposed as (0,2,3,1) of the split
  heads or (0,1,3,2) of [B, H, S, D], and any order of Reshape and Transpose are the same pattern. A projection
  qualifies when its elements are ordered [B, S, H, D] (the farthest such value back is taken).
* The mask is the other operand of the Add, added to scores laid out [B, H, Sq, Skv], broadcasting to them; the
  nodes that build it stay as they are.
* O is the farthest value forward whose elements are ordered [B, Sq, H, Dv].

Refusal (a sentence naming the value; nothing changes): softmax over an axis other than the keys; a Mul of the
scores by a tensor (a multiplicative mask); a mask that widens the scores; a scale applied after the mask; heads
not split from [B, S, H*D] as a Reshape to [B, S, H, D] does (e.g. [B, S, D, H]); scores or probabilities also
used outside the pattern; heads not merged back.

Rewrite: ``ep_trtpy::Attention(Q, K, V, mask?)`` with num_heads, scale and qkv_packed=0, reading the projections
(through a Reshape to [B, S, H*D] when they have another shape) and producing O (or a Reshape to O's shape); nodes
left without users (the head splits) are removed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ep_trtpy.builder.passes._patterns import (DOMAIN, add, add_const, const_scalar, consumers, is_op, opset,
                                               replace_nodes, static)
from ep_trtpy.builder.pipeline import PassContext
from graph_partitioner.ir import Graph, Node, Value

NAME = "fuse_attention"

RESHAPES = ("Reshape", "Squeeze", "Unsqueeze", "Flatten")
MAX_DEPTH = 24


class _Refuse(Exception):
    pass


# --------------------------------------------------------------------------------------- axis tracking --

class Atom:
    """An indivisible run of elements along some axis of a source tensor (split in two when a Reshape cuts it)."""

    __slots__ = ("size", "parts")

    def __init__(self, size: int) -> None:
        self.size = size
        self.parts: list[Atom] = []

    def leaves(self) -> list[Atom]:
        return [a for p in self.parts for a in p.leaves()] if self.parts else [self]


Layout = list[list[Atom]]  # per tensor axis, its atoms (outermost first)


def order(layout: Layout | list[Atom]) -> list[Atom]:
    """The atoms in row-major element order, split to the finest level and without extent-1 atoms."""
    flat = [a for g in layout for a in (g if isinstance(g, list) else [g])]
    return [x for a in flat for x in a.leaves() if x.size != 1]


def source_layout(shape: tuple[int, ...]) -> Layout:
    return [[Atom(n)] if n != 1 else [] for n in shape]


def reshaped(layout: Layout, shape: tuple[int, ...]) -> Layout | None:
    """The layout after a row-major reshape to `shape` (atoms split where needed), or None if an axis would cut an
    atom at a non-divisor."""
    seq, pos, out = order(layout), 0, []
    for n in shape:
        group: list[Atom] = []
        prod = 1
        while prod < n:
            if pos >= len(seq):
                return None
            a = seq[pos]
            if prod * a.size > n:
                if n % prod or a.size % (n // prod):
                    return None
                a.parts = [Atom(n // prod), Atom(a.size * prod // n)]
                seq[pos:pos + 1] = a.parts
                a = seq[pos]
            group.append(a)
            prod *= a.size
            pos += 1
        if prod != n:
            return None
        out.append(group)
    return out if pos == len(seq) else None


def step(layout: Layout, node: Node) -> Layout | None:
    """The layout of `node`'s output from the layout of its data input."""
    if is_op(node, *RESHAPES):
        return reshaped(layout, node.outputs[0].static_shape)
    if is_op(node, "Transpose"):
        perm = node.attr("perm") or list(range(len(layout)))[::-1]
        return [layout[int(p)] for p in perm]
    return layout  # a scalar Mul/Div


def numel(atoms: list[Atom]) -> int:
    return int(np.prod([a.size for a in atoms], dtype=np.int64))


# ------------------------------------------------------------------------------------ operand tracing --

def _scalar_factor(node: Node, v: Value) -> float | None:
    """The factor of a Mul/Div of v by a scalar constant (Div only as v / c), else None."""
    if is_op(node, "Mul"):
        other = node.input(1) if node.input(0) is v else node.input(0)
        return const_scalar(other)
    if is_op(node, "Div") and node.input(0) is v:
        c = const_scalar(node.input(1))
        return None if not c else 1.0 / c
    return None


@dataclass
class Operand:
    """One of Q, K, V: the values from its projection to the MatMul operand, with their layouts."""

    trail: list[tuple[Value, Layout, float]]  # (value, layout, scale applied after it), projection side first
    nodes: list[Node]


def trace_operand(v: Value, scaled: bool) -> Operand | None:
    """Follow an attention MatMul operand back through head-split nodes (and scalar factors when `scaled`)."""
    chain: list[Node] = []
    cur = v
    while len(chain) < MAX_DEPTH:
        n = cur.producer
        if n is None or not static(cur):
            break
        if is_op(n, *RESHAPES, "Transpose") and static(n.input(0)):
            chain.append(n)
            cur = n.input(0)  # type: ignore[assignment]
            continue
        if scaled and is_op(n, "Mul", "Div"):
            x = n.input(0) if const_scalar(n.input(1)) is not None else n.input(1)
            if x is not None and x.const is None and static(x) and _scalar_factor(n, x) is not None:
                chain.append(n)
                cur = x
                continue
        break
    if not static(cur):
        return None
    layout = source_layout(cur.static_shape)
    trail: list[tuple[Value, Layout, float]] = [(cur, layout, 1.0)]
    for n in reversed(chain):
        new = step(layout, n)
        if new is None:
            return None
        factor = _scalar_factor(n, trail[-1][0]) if is_op(n, "Mul", "Div") else 1.0
        trail = [(val, lay, s * float(factor)) for val, lay, s in trail]  # type: ignore[arg-type]
        layout = new
        trail.append((n.outputs[0], layout, 1.0))
    return Operand(trail, list(reversed(chain)))


def candidates(op: Operand, batch: list[Atom], seq: list[Atom], feat: list[Atom]
               ) -> list[tuple[int, int, Value, float]]:
    """(B, H, projection value, scale after it) for every value on the trail ordered [B, S, H, D], where the batch
    atoms split into B then H; projection side first."""
    out = []
    for value, layout, scale in op.trail:
        got = order(layout)
        for k in range(len(batch) + 1):
            if got == batch[:k] + seq + batch[k:] + feat:
                out.append((numel(batch[:k]), numel(batch[k:]), value, scale))
    return out


# --------------------------------------------------------------------------------------------- match --

@dataclass
class Match:
    q: Value
    k: Value
    v: Value
    mask: Value | None
    out: Value
    heads: int
    scale: float
    core: list[Node]
    shape: tuple[int, int, int]  # (B, Sq, Skv)


def _scores_path(graph: Graph, v: Value, depth: int = 0) -> list[tuple[Node, int]] | None:
    """From a MatMul to v through Reshape/Transpose/Mul/Div/Add, as (node, input index on the path) in forward
    order (the MatMul first, index -1); None when no MatMul is reached."""
    n = v.producer
    if n is None or depth > MAX_DEPTH:
        return None
    if is_op(n, "MatMul"):
        return [(n, -1)]
    if is_op(n, *RESHAPES, "Transpose", "Div"):
        options = [0]
    elif is_op(n, "Mul", "Add"):
        options = [0, 1]
    else:
        return None
    found = []
    for i in options:
        x = n.input(i)
        if x is not None and x.const is None and (path := _scores_path(graph, x, depth + 1)) is not None:
            found.append((i, path))
    if not found:
        return None
    found.sort(key=lambda f: len(consumers(n.input(f[0]))) != 1)  # type: ignore[arg-type]
    i, path = found[0]
    return path + [(n, i)]


def _nan_guard(graph: Graph, p: Value) -> list[Node]:
    """[IsNaN, Where] when P's only users are Where(IsNaN(P), 0, P), else []."""
    users = consumers(p)
    isnan = [u for u in users if is_op(u, "IsNaN")]
    where = [u for u in users if is_op(u, "Where")]
    if len(users) != 2 or len(isnan) != 1 or len(where) != 1 or graph.is_graph_output(p):
        return []
    i, w = isnan[0], where[0]
    if w.input(0) is not i.outputs[0] or consumers(i.outputs[0]) != [w] or w.input(2) is not p:
        return []
    return [i, w] if const_scalar(w.input(1)) == 0.0 else []


def _probs_path(graph: Graph, p: Value) -> tuple[list[Node], Value, Node] | None:
    """Nodes from P to the P.V MatMul (guard, Reshape, Transpose), the MatMul's left operand, and the MatMul."""
    nodes = _nan_guard(graph, p)
    cur = nodes[-1].outputs[0] if nodes else p
    while True:
        users = consumers(cur)
        if len(users) == 1 and not graph.is_graph_output(cur) and is_op(users[0], *RESHAPES, "Transpose") \
                and users[0].input(0) is cur and static(users[0].outputs[0]):
            nodes.append(users[0])
            cur = users[0].outputs[0]
            continue
        mms = [u for u in users if is_op(u, "MatMul") and u.input(0) is cur]
        if not mms:
            return None
        if len(users) != 1 or graph.is_graph_output(cur):
            others = ", ".join(f"'{u.name}'" for u in users if u is not mms[0]) or "a graph output"
            raise _Refuse(f"the attention probabilities '{cur.name}' are also used by {others}")
        return nodes, cur, mms[0]


def _softmax_axis(graph: Graph, sm: Node, rank: int) -> int:
    version = sm.since_version or opset(graph)
    axis = int(sm.attr("axis", -1 if version >= 13 else 1))
    return axis + rank if axis < 0 else axis


def _check_private(graph: Graph, core: list[Node], out: Value) -> None:
    """Every value made inside the pattern (but its result) is read only inside it."""
    ids = {id(n) for n in core}
    for n in core:
        for v in n.outputs:
            if v is out:
                continue
            outside = [u for u, _ in v.consumers if id(u) not in ids]
            if outside or graph.is_graph_output(v):
                who = f"'{outside[0].name}'" if outside else "a graph output"
                raise _Refuse(f"'{v.name}' inside the attention is also used by {who}; fusing would drop it")


def _pick(operands: list[Value], q: list, k: list, v: list, first_batch: int) -> tuple[int, int, list]:
    """The (B, H) every operand agrees on (preferring B = the first batch axis), with each operand's choice."""
    pairs = [(b, h) for b, h, _, _ in q if any((b, h) == (x[0], x[1]) for x in k) and
             any((b, h) == (x[0], x[1]) for x in v)]
    if not pairs:
        splits = ", ".join(f"{what} '{op.name}' as {sorted({(c[0], c[1]) for c in cs})}"
                           for what, op, cs in zip("QKV", operands, (q, k, v)))
        raise _Refuse(f"Q, K and V do not split into the same batch and heads (B, H): {splits}; the heads are not "
                      f"split from [B, S, H*D] projections by the expected Reshape [B, S, H, D] and Transpose")
    pairs.sort(key=lambda bh: bh[0] != first_batch)
    b, h = pairs[0]
    return b, h, [next(x for x in c if (x[0], x[1]) == (b, h)) for c in (q, k, v)]


def _walk_scores(path: list[tuple[Node, int]], atoms: dict[str, Atom], scale: float
                 ) -> tuple[Layout, float, Value | None]:
    """Follow the scores from the QK MatMul to the Softmax (atoms b, h, i, j): their layout at the Softmax, the
    scale (times the given one) and the mask."""
    mm1 = path[0][0]
    virtual = [[atoms[c]] if atoms[c].size != 1 else [] for c in "bhij"]
    layout = reshaped(virtual, mm1.outputs[0].static_shape)
    if layout is None:
        raise _Refuse(f"the scores '{mm1.outputs[0].name}' are not laid out [B, H, Sq, Skv]")
    mask, cur = None, mm1.outputs[0]
    for n, i in path[1:]:
        y = n.outputs[0]
        if is_op(n, "Mul", "Div"):
            f = _scalar_factor(n, cur)
            if f is None:
                other = n.input(1 - i) if is_op(n, "Mul") else n.input(1)
                raise _Refuse(f"'{getattr(other, 'name', '')}' multiplies the scores '{cur.name}' at '{n.name}' "
                              f"(a multiplicative mask, not an additive one)")
            if mask is not None:
                raise _Refuse(f"the scores are scaled at '{n.name}' after the mask '{mask.name}' is added")
            scale *= f
        elif is_op(n, "Add"):
            other = n.input(1 - i)
            assert other is not None
            if mask is not None:
                raise _Refuse(f"'{n.name}' adds a second term '{other.name}' to the scores after the mask "
                              f"'{mask.name}'")
            if y.static_shape != cur.static_shape or other.dtype != cur.dtype:
                raise _Refuse(f"the mask '{other.name}' {list(other.shape or ())} does not broadcast to the scores "
                              f"'{cur.name}' {list(cur.static_shape)}")
            if len(layout) != 4 or [order(g) for g in layout] != [order(g) for g in virtual]:
                raise _Refuse(f"the mask '{other.name}' is added to scores '{cur.name}' {list(cur.static_shape)} "
                              f"that are not laid out [B, H, Sq, Skv]")
            mask = other
        else:
            layout = step(layout, n)  # type: ignore[assignment]
            if layout is None:
                raise _Refuse(f"'{n.name}' reshapes the scores '{cur.name}' across their axes")
        cur = y
    return layout, scale, mask


def _merged_output(graph: Graph, o: Value, atoms: dict[str, Atom]) -> tuple[Value | None, list[Node]]:
    """The farthest value after the P.V product `o` (through single-use Reshape/Transpose) whose elements are
    ordered [B, Sq, H, Dv], and the nodes up to it; (None, []) when there is none."""
    out_virtual = [[atoms[c]] if atoms[c].size != 1 else [] for c in "bhie"]
    layout = reshaped(out_virtual, o.static_shape)
    want = order([atoms[c] for c in "bihe"])
    out, cur, nodes, tail = None, o, [], []
    while layout is not None:
        if order(layout) == want:
            out, nodes, tail = cur, nodes + tail, []
        users = consumers(cur)
        if len(users) != 1 or graph.is_graph_output(cur) or not is_op(users[0], *RESHAPES, "Transpose"):
            break
        layout = step(layout, users[0])
        tail.append(users[0])
        cur = users[0].outputs[0]
    return out, nodes


def match(graph: Graph, sm: Node) -> Match | None:
    """The attention around Softmax `sm`; None when it is not attention-like; _Refuse when it almost is."""
    x, p = sm.input(0), sm.outputs[0]
    if x is None or not static(x):
        return None
    path = _scores_path(graph, x)
    if path is None:
        return None
    found = _probs_path(graph, p)
    if found is None:
        return None
    p_nodes, p_op, mm2 = found
    mm1 = path[0][0]
    if not all(static(v) for v in [*mm1.inputs, *mm1.outputs, *mm2.inputs, *mm2.outputs]):
        raise _Refuse(f"the attention MatMuls '{mm1.name}' and '{mm2.name}' have no static shapes")
    qs, ks = mm1.input(0).static_shape, mm1.input(1).static_shape  # type: ignore[union-attr]
    vs = mm2.input(1).static_shape  # type: ignore[union-attr]
    if len(qs) < 3 or qs[:-2] != ks[:-2]:
        raise _Refuse(f"'{mm1.name}' multiplies {list(qs)} by {list(ks)}: the batch axes differ or are missing")
    qop = trace_operand(mm1.input(0), True)  # type: ignore[arg-type]
    kop = trace_operand(mm1.input(1), True)  # type: ignore[arg-type]
    vop = trace_operand(mm2.input(1), False)  # type: ignore[arg-type]
    if qop is None or kop is None or vop is None:
        raise _Refuse(f"the heads of the inputs of '{mm1.name}' / '{mm2.name}' cannot be followed back")
    ql, kl, vl = qop.trail[-1][1], kop.trail[-1][1], vop.trail[-1][1]
    qc = candidates(qop, order(ql[:-2]), order(ql[-2]), order(ql[-1]))
    kc = candidates(kop, order(kl[:-2]), order(kl[-1]), order(kl[-2]))
    vc = candidates(vop, order(vl[:-2]), order(vl[-2]), order(vl[-1]))
    operands: list[Value] = [mm1.inputs[0], mm1.inputs[1], mm2.inputs[1]]  # type: ignore[list-item]
    for what, c, op in zip("QKV", (qc, kc, vc), operands):
        if not c:
            raise _Refuse(f"{what} '{op.name}' {list(op.static_shape)} is not split into heads from a "
                          f"[B, S, H*D] projection by the expected Reshape [B, S, H, D] and Transpose")
    b, h, (qpick, kpick, vpick) = _pick(operands, qc, kc, vc, qs[0] if len(qs) > 3 else -1)
    sq, skv, dv = qs[-2], ks[-1], vs[-1]

    atoms = {n: Atom(s) for n, s in zip("bhije", (b, h, sq, skv, dv))}
    layout, scale, mask = _walk_scores(path, atoms, qpick[3] * kpick[3])
    if p_op.static_shape[:-2] != vs[:-2]:
        raise _Refuse(f"'{mm2.name}' multiplies {list(p_op.static_shape)} by {list(vs)}: the batch axes differ")
    axis = _softmax_axis(graph, sm, len(layout))
    if axis != len(layout) - 1 or order(layout[-1]) != order([atoms["j"]]):
        raise _Refuse(f"Softmax '{sm.name}' normalizes '{x.name}' {list(x.static_shape)} over axis {axis}, "
                      f"not over the keys")

    # the probabilities to the P.V MatMul, then the output to [B, Sq, H*Dv]
    for n in p_nodes:
        if not is_op(n, "IsNaN", "Where"):
            layout = step(layout, n)  # type: ignore[assignment]
            if layout is None:
                raise _Refuse(f"'{n.name}' reshapes the probabilities across their axes")
    if [order(layout[:-2]), order(layout[-2]), order(layout[-1])] != \
            [order([atoms["b"], atoms["h"]]), order([atoms["i"]]), order([atoms["j"]])]:
        raise _Refuse(f"the probabilities '{p_op.name}' do not meet V as [B, H, Sq, Skv]")
    core = [n for n, _ in path] + [sm] + p_nodes + [mm2]
    out, tail = _merged_output(graph, mm2.outputs[0], atoms)
    core += tail
    if out is None:
        raise _Refuse(f"the heads of '{mm2.outputs[0].name}' are not merged back into [B, Sq, H*Dv]")
    _check_private(graph, core, out)
    if mask is not None and any(mask.producer is n for n in core):
        raise _Refuse(f"the term '{mask.name}' added to the scores is computed inside the attention")
    return Match(qpick[2], kpick[2], vpick[2], mask, out, h, scale, core, (b, sq, skv))


# ------------------------------------------------------------------------------------------- rewrite --

def _as_rows(graph: Graph, v: Value, shape: tuple[int, int, int], before: Node) -> Value:
    """v as [B, S, H*D] (a Reshape when it has another shape)."""
    if v.static_shape == shape:
        return v
    s = add_const(graph, np.asarray(shape, dtype=np.int64), f"{v.name}_rows")
    return add(graph, "Reshape", [v, s], v.dtype, shape, before=before, name_hint=f"{v.name}_rows").outputs[0]


def rewrite(graph: Graph, m: Match, ctx: PassContext, name: str) -> Node:
    b, sq, skv = m.shape
    hd = [int(np.prod(v.static_shape)) // (b * s) for v, s in ((m.q, sq), (m.k, skv), (m.v, skv))]
    out_shape = (b, sq, int(np.prod(m.out.static_shape)) // (b * sq))
    result = m.out if m.out.static_shape == out_shape else \
        graph.add_value(f"{m.out.name}_rows", m.out.dtype, out_shape)
    attrs = {"num_heads": m.heads, "scale": float(m.scale), "qkv_packed": 0}
    node = replace_nodes(graph, m.core, "Attention", [m.q, m.k, m.v, m.mask], [result], attrs, domain=DOMAIN,
                         name=name)
    for i, (v, s, w) in enumerate(((m.q, sq, hd[0]), (m.k, skv, hd[1]), (m.v, skv, hd[2]))):
        graph.set_input(node, i, _as_rows(graph, v, (b, s, w), node))
    if result is not m.out:
        shape = add_const(graph, np.asarray(m.out.static_shape, dtype=np.int64), f"{m.out.name}_shape")
        pos = graph.nodes.index(node)
        after = graph.nodes[pos + 1] if pos + 1 < len(graph.nodes) else None
        graph.add_node("Reshape", [result, shape], [m.out], name=graph.fresh_node_name(f"{name}_merge"),
                       before=after)
    if m.mask is None:
        node.inputs = node.inputs[:3]
    ctx.record_fusion(node.name, m.core)
    return node


def run(graph: Graph, ctx: PassContext) -> bool:
    changed = False
    for sm in list(graph.nodes):
        if not is_op(sm, "Softmax") or sm not in graph.nodes:
            continue
        try:
            found = match(graph, sm)
        except _Refuse as e:
            ctx.refuse(f"attention at Softmax '{sm.name}' not fused: {e}")
            continue
        if found is None:
            continue
        node = rewrite(graph, found, ctx, graph.fresh_node_name(f"{sm.name}_Attention"))
        ctx.info("attention: '%s' with %d heads, scale %.6g, mask %s", node.name, found.heads, found.scale,
                 "none" if found.mask is None else f"'{found.mask.name}'")
        changed = True
    if changed:
        graph.toposort()
        graph.remove_unused()
    return changed
