"""fuse_cast_transpose: a float cast next to a Transpose becomes one converting transpose.

Math: a cast converts each element on its own, and a transpose only moves elements, so for every perm P and
float dtype t

    Transpose(Cast(x, t), P) = Cast(Transpose(x, P), t) = ep_trtpy::CastTranspose(x; perm=P, to=t)

exactly (each element is rounded once either way). The engine's edges are the usual case: with fp16 the precision
pass casts a float32 input to float16 and the layout pass then transposes it to NHWC (and the reverse at an
output); fused, the bytes are read and written once instead of twice.

Match: a Transpose whose input is the only use of a cast, or a cast whose input is the only use of a Transpose
(the intermediate is no graph output). A cast is an ONNX Cast, or an ep_trtpy::Pointwise of one input and one
output whose program only moves that input to the output (the precision pass writes its casts that way), at the
input's shape. The conversion is float32 to float16 / bfloat16 or back (ops.internal.CAST_TRANSPOSE_DTYPES);
static shapes.

Refusal (a sentence naming the value): the intermediate value is read elsewhere or is a graph output; the
conversion is another one (float16 <-> bfloat16, integers).

Rewrite: one ep_trtpy::CastTranspose(x; perm, to) producing the pair's final value (its name kept); the pair's
nodes are removed.
"""

from __future__ import annotations

from ep_trtpy.builder.passes._patterns import DOMAIN, is_internal, is_op, replace_nodes, sole_consumer, static
from ep_trtpy.builder.pipeline import PassContext
from ep_trtpy.ops.internal import CAST_TRANSPOSE_DTYPES
from ep_trtpy.ops.pointwise_program import Program
from graph_partitioner.ir import Graph, Node, Value, dtype_name

NAME = "fuse_cast_transpose"


def is_cast(node: Node | None) -> bool:
    """An ONNX Cast, or a one-input one-output Pointwise whose output register holds the input unchanged."""
    if node is None or len(node.outputs) != 1 or node.input(0) is None:
        return False
    if is_op(node, "Cast"):
        return True
    if not is_internal(node, "Pointwise") or len(node.inputs) != 1:
        return False
    prog = Program.from_json(node.attr("program"), 1)
    if prog.compute != "float" or len(prog.outputs) != 1:
        return False
    same = {0}  # registers holding input 0 unchanged
    for ins in prog.code:
        if ins[0] == "mov" and ins[2] in same:
            same.add(ins[1])
        else:
            same.discard(ins[1])
    x, y = node.inputs[0], node.outputs[0]
    return prog.outputs[0][0] in same and x is not None and x.shape == y.shape


def _perm(t: Node, rank: int) -> list[int]:
    perm = t.attr("perm")
    return list(range(rank))[::-1] if perm is None else [int(p) for p in perm]


def _fuse(graph: Graph, first: Node, second: Node, ctx: PassContext) -> bool:
    """Fuse `first` (whose output only `second` reads) and `second`, one of them a Transpose, the other a cast."""
    x, mid, y = first.inputs[0], first.outputs[0], second.outputs[0]
    assert x is not None
    if not (static(x) and static(y)):
        return False
    if (x.dtype, y.dtype) not in CAST_TRANSPOSE_DTYPES:
        ctx.refuse(f"'{mid.name}' sits between a Transpose and a cast from {dtype_name(x.dtype)} to "
                   f"{dtype_name(y.dtype)}; the converting transpose makes float32 <-> float16 / bfloat16 only")
        return False
    if sole_consumer(graph, mid) is not second:
        ctx.refuse(f"'{mid.name}' between '{first.name}' and '{second.name}' is read elsewhere or is a graph "
                   f"output; the cast and the Transpose stay apart")
        return False
    t = first if is_op(first, "Transpose") else second
    perm = _perm(t, len(x.static_shape))
    name = graph.fresh_node_name(f"{t.name}_cast")
    replace_nodes(graph, [first, second], "CastTranspose", [x], [y], {"perm": perm, "to": int(y.dtype)},
                  domain=DOMAIN, name=name)
    ctx.record_fusion(name, [first, second])
    ctx.info("fused '%s' and '%s' into CastTranspose '%s' (%s -> %s)", first.name, second.name, name,
             dtype_name(x.dtype), dtype_name(y.dtype))
    return True


def _pair(node: Node) -> Node | None:
    """The node that `node` (a Transpose or a cast) follows in a cast/Transpose pair, if any."""
    v: Value | None = node.input(0)
    first = v.producer if v is not None else None
    if first is None or len(first.outputs) != 1:
        return None
    if is_op(node, "Transpose") and is_cast(first):
        return first
    if is_cast(node) and is_op(first, "Transpose"):
        return first
    return None


def run(graph: Graph, ctx: PassContext) -> bool:
    changed = False
    gone: set[int] = set()
    for node in list(graph.nodes):
        first = None if id(node) in gone else _pair(node)
        if first is not None and id(first) not in gone and _fuse(graph, first, node, ctx):
            gone.update((id(first), id(node)))
            changed = True
    return changed
