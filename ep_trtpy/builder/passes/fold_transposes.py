"""fold_transposes: a Transpose that only feeds a GEMM becomes the GEMM's transA / transB.

Math: let swap be the permutation that exchanges the last two axes of a rank-r tensor (the others stay). op(A) of
a FusedMatMul with transA=1 is swap(A), so

    FusedMatMul(Transpose(A, swap), B; transA=t) = FusedMatMul(A, B; transA=1-t)          (and the same for B)

More generally a Transpose whose perm P sends the input's last axis to the second-to-last place (P[-2] = r-1) is
swap after Q = P with its last two entries exchanged: Transpose(A, P) = swap(Transpose(A, Q)). Q keeps the last
axis last, so the Transpose that stays copies whole contiguous rows (cheap), and cuBLASLt reads the swap for free.
Example: the K^T of attention, [B, S, H, D] -> [B, H, D, S] (perm [0, 2, 3, 1], the one Transpose ORT merges the
exporters' two into) becomes perm [0, 2, 1, 3] with transB=1.

Match: input A or B of an ep_trtpy::FusedMatMul produced by an ONNX Transpose (rank >= 2, static shape) with
P[-2] = r-1, whose output has no other reader (and is not a graph output or the GEMM's other operand). When Q is
the identity the Transpose disappears; else it keeps perm Q.

Refusal (a sentence naming the Transpose): its output is read elsewhere, or its perm does not bring the input's
last axis to the second-to-last place (the GEMM cannot read that layout as a transposed matrix).

Rewrite: the FusedMatMul's transA / transB toggles; the Transpose is removed, or its perm and output shape change.
"""

from __future__ import annotations

from ep_trtpy.builder.passes._patterns import consumers, is_internal, is_op, static
from ep_trtpy.builder.pipeline import PassContext
from graph_partitioner.ir import Graph, Node

NAME = "fold_transposes"

OPERANDS = ((0, "A", "transA"), (1, "B", "transB"))


def _perm(t: Node, rank: int) -> list[int]:
    perm = t.attr("perm")
    return list(range(rank))[::-1] if perm is None else [int(p) for p in perm]


def _fold(graph: Graph, mm: Node, k: int, what: str, flag: str, ctx: PassContext) -> bool:
    v = mm.input(k)
    t = v.producer if v is not None else None
    if v is None or t is None or not is_op(t, "Transpose") or not static(t.input(0)) or not static(v):
        return False
    x = t.inputs[0]
    assert x is not None
    rank = len(x.static_shape)
    perm = _perm(t, rank)
    if rank < 2 or perm[-2] != rank - 1:
        ctx.refuse(f"Transpose '{t.name}' (perm {perm}) feeds {what} of FusedMatMul '{mm.name}' but does not bring "
                   f"the last axis of '{x.name}' second-to-last; the GEMM cannot read it as a transposed matrix")
        return False
    other = mm.input(1 - k)
    if consumers(v) != [mm] or graph.is_graph_output(v) or other is v:
        ctx.refuse(f"Transpose '{t.name}' feeding {what} of FusedMatMul '{mm.name}' is also read elsewhere; kept")
        return False
    rest = perm[:-2] + [perm[-1], perm[-2]]
    mm.attrs[flag] = 1 - int(mm.attr(flag, 0))
    if rest == list(range(rank)):
        graph.set_input(mm, k, x)
        graph.remove_node(t)
        ctx.record_fusion(mm.name, [mm, t])
        ctx.info("folded Transpose '%s' into %s of '%s'", t.name, flag, mm.name)
    else:
        t.attrs["perm"] = rest
        v.shape = tuple(x.static_shape[p] for p in rest)
        ctx.info("Transpose '%s' keeps perm %s; the swap of its last two axes is %s of '%s'", t.name, rest, flag,
                 mm.name)
    return True


def run(graph: Graph, ctx: PassContext) -> bool:
    changed = False
    for mm in list(graph.nodes):
        if is_internal(mm, "FusedMatMul"):
            for k, what, flag in OPERANDS:
                changed |= _fold(graph, mm, k, what, flag, ctx)
    return changed
