"""rewrite_einsum: Einsum as Transpose / Reshape / ReduceSum / MatMul.

Math: for ``A_{ia} B_{ib} -> O`` every index letter is one of
  batch (in A, B and O), contracted (in A and B, not O), A-free (A and O only), B-free (B and O only),
  A-summed (A only), B-summed (B only).
Summed letters are reduced first (ReduceSum), then
  A' = reshape(transpose(A, [batch, A-free, contracted]), [Nb, Na, K]),
  B' = reshape(transpose(B, [batch, contracted, B-free]), [Nb, K, Nb']),
  O' = A' @ B' = sum_k A'[b, i, k] B'[b, k, j], reshaped to [batch..., A-free..., B-free...] and transposed to the
order the output spells. One operand: ReduceSum over the letters absent from the output, then a Transpose.
Reshapes and Transposes that turn out to be identities are removed by eliminate_identities.

Match: Einsum with one or two operands, explicit ``->`` or implicit output (letters used once, alphabetical), no
ellipsis, no letter repeated within one operand, static shapes.

Refusal: ellipsis, a letter repeated within an operand (trace/diagonal), three or more operands, mismatched
sizes of one letter; the reason names the node.

Rewrite: the nodes above, in the graph's opset (ReduceSum's axes as input from opset 13).
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.builder.passes._patterns import add, is_op, reduce_sum, replace_nodes, reshape, transpose
from ep_trtpy.builder.pipeline import PassContext
from graph_partitioner.ir import Graph, Node, Value

NAME = "rewrite_einsum"


class _Refuse(Exception):
    pass


def parse_equation(eq: str, n_operands: int) -> tuple[list[str], str]:
    """(operand terms, output term) of an einsum equation; raises _Refuse with the reason."""
    eq = eq.replace(" ", "")
    if "..." in eq:
        raise _Refuse("its equation uses an ellipsis ('...')")
    if "->" in eq:
        lhs, out = eq.split("->", 1)
    else:
        lhs, out = eq, None
    terms = lhs.split(",")
    if len(terms) != n_operands:
        raise _Refuse(f"its equation has {len(terms)} operands but the node has {n_operands} inputs")
    for t in terms:
        if not t.isalpha() and t != "":
            raise _Refuse(f"operand term '{t}' has characters other than letters")
        if len(set(t)) != len(t):
            raise _Refuse(f"operand term '{t}' repeats a letter (a trace or diagonal)")
    if out is None:
        counts: dict[str, int] = {}
        for t in terms:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        out = "".join(sorted(c for c, k in counts.items() if k == 1))
    if len(set(out)) != len(out) or any(c not in "".join(terms) for c in out):
        raise _Refuse(f"output term '{out}' repeats a letter or names one no operand has")
    return terms, out


def _sizes(terms: list[str], values: list[Value]) -> dict[str, int]:
    size: dict[str, int] = {}
    for t, v in zip(terms, values):
        shape = v.static_shape
        if len(shape) != len(t):
            raise _Refuse(f"operand '{v.name}' has rank {len(shape)} but its term '{t}' has {len(t)} letters")
        for c, d in zip(t, shape):
            if size.setdefault(c, d) != d:
                raise _Refuse(f"letter '{c}' has size {size[c]} in one operand and {d} in '{v.name}'")
    return size


def _sum_out(graph: Graph, x: Value, term: str, keep: str, before: Node, hint: str) -> tuple[Value, str]:
    """Reduce the letters of `term` not in `keep`."""
    axes = [i for i, c in enumerate(term) if c not in keep]
    if not axes:
        return x, term
    return reduce_sum(graph, x, axes, 0, before, hint), "".join(c for c in term if c in keep)


def _rewrite(graph: Graph, node: Node) -> None:
    ins = [v for v in node.inputs if v is not None]
    terms, out = parse_equation(str(node.attr("equation", "")), len(ins))
    size = _sizes(terms, ins)
    y = node.outputs[0]
    h = f"{node.name}_"
    if len(ins) == 1:
        x, t = _sum_out(graph, ins[0], terms[0], out, node, h)
        perm = [t.index(c) for c in out]
        res = transpose(graph, x, perm, node, h) if perm != list(range(len(perm))) else x
        replace_nodes(graph, [node], "Identity", [res], [y], name=graph.fresh_node_name(f"{h}result"))
        return
    (ta, tb), (a, b) = terms, ins
    a, ta = _sum_out(graph, a, ta, tb + out, node, h + "a")
    b, tb = _sum_out(graph, b, tb, ta + out, node, h + "b")
    batch = [c for c in ta if c in tb and c in out]
    contracted = [c for c in ta if c in tb and c not in out]
    a_free = [c for c in ta if c not in tb]
    b_free = [c for c in tb if c not in ta]
    nb = int(np.prod([size[c] for c in batch], dtype=np.int64))
    na = int(np.prod([size[c] for c in a_free], dtype=np.int64))
    nk = int(np.prod([size[c] for c in contracted], dtype=np.int64))
    nn = int(np.prod([size[c] for c in b_free], dtype=np.int64))
    a2 = transpose(graph, a, [ta.index(c) for c in batch + a_free + contracted], node, h + "a")
    a2 = reshape(graph, a2, [nb, na, nk], node, h + "a")
    b2 = transpose(graph, b, [tb.index(c) for c in batch + contracted + b_free], node, h + "b")
    b2 = reshape(graph, b2, [nb, nk, nn], node, h + "b")
    mm = add(graph, "MatMul", [a2, b2], y.dtype, [nb, na, nn], before=node, name_hint=f"{h}MatMul").outputs[0]
    order = batch + a_free + b_free
    r = reshape(graph, mm, [size[c] for c in order], node, h + "o")
    perm = [order.index(c) for c in out]
    res = transpose(graph, r, perm, node, h + "o")
    replace_nodes(graph, [node], "Identity", [res], [y], name=graph.fresh_node_name(f"{h}result"))


def run(graph: Graph, ctx: PassContext) -> bool:
    changed = False
    for node in list(graph.nodes):
        if not is_op(node, "Einsum"):
            continue
        before = {id(n) for n in graph.nodes}
        try:
            _rewrite(graph, node)
        except _Refuse as e:
            ctx.refuse(f"Einsum '{node.name}' is not rewritten: {e}")
            continue
        for n in graph.nodes:
            if id(n) not in before:
                ctx.record_fusion(n.name, [node])
        changed = True
    return changed
