"""fuse_add_layernorm: LayerNormalization(Add(x, r)) -> ep_trtpy::AddLayerNorm(x, r, scale, bias), one kernel.

Math: the residual block of a transformer normalizes a sum,
    S = x + r                                 (rounded to x's type, as the Add stores it)
    Y = LayerNormalization(S, scale, bias)    (axis, epsilon; statistics in float32)
which is ``AddLayerNorm(x, r, scale, bias) -> (Y)``, or ``-> (Y, S)`` when S has other readers (pre-LN blocks reuse
the sum as the next residual). The ``layernorm`` kernel reads x and r once and writes Y (and S) once: the sum never
makes a round trip through memory on its own.

Match: an ONNX LayerNormalization (as exporters write it at opset 17+, or as fuse_layernorm makes it from the
decomposed form) with stash_type 1 and its Mean / InvStdDev outputs unused, whose input is the output of an ONNX
Add of two values of one static shape and float dtype. The Add's output may have other consumers or be a graph
output: it becomes the fused node's second output S.

Refusal (a sentence naming the values): the Add broadcasts (its operands' shapes differ: the kernel takes x and r
element for element), the LayerNormalization's Mean or InvStdDev is read, stash_type is not 1.

Rewrite: one AddLayerNorm node replaces the Add and the LayerNormalization, producing the LayerNormalization's Y
(and the Add's output); nodes are re-sorted when a reader of the sum came before the LayerNormalization.
"""

from __future__ import annotations

from ep_trtpy.builder.passes._patterns import DOMAIN, consumers, is_op, replace_nodes, static
from ep_trtpy.builder.pipeline import PassContext
from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT16, Graph, Node, Value

NAME = "fuse_add_layernorm"

FLOAT_TYPES = (FLOAT, FLOAT16, BFLOAT16)


def _candidate(add: Node) -> bool:
    """An Add of two float values of static shapes: a sum a LayerNormalization may take with it."""
    x, r = add.input(0), add.input(1)
    return x is not None and r is not None and static(x) and static(r) and static(add.outputs[0]) \
        and x.dtype in FLOAT_TYPES and r.dtype == x.dtype


def _refusal(graph: Graph, add: Node, ln: Node) -> str | None:
    """Why LayerNormalization `ln` of the candidate Add `add` cannot become one AddLayerNorm (None: it can)."""
    x, r = add.inputs[0], add.inputs[1]
    assert x is not None and r is not None
    if x.static_shape != r.static_shape:
        return (f"Add '{add.name}' broadcasts '{x.name}' {list(x.static_shape)} and '{r.name}' "
                f"{list(r.static_shape)}; the fused kernel adds two tensors of one shape")
    if int(ln.attr("stash_type", 1)) != 1:
        return f"LayerNormalization '{ln.name}' has stash_type {ln.attr('stash_type')}; the kernel keeps float32"
    for extra in ln.outputs[1:]:
        if extra.consumers or graph.is_graph_output(extra):
            return f"LayerNormalization '{ln.name}' output '{extra.name}' (Mean/InvStdDev) is read"
    return None


def _fuse(graph: Graph, add: Node, ln: Node, ctx: PassContext) -> Node:
    x, r, s = add.inputs[0], add.inputs[1], add.outputs[0]
    assert x is not None and r is not None
    sum_read = graph.is_graph_output(s) or any(c is not ln for c in consumers(s))
    inputs: list[Value | None] = [x, r, ln.input(1), ln.input(2)]
    if inputs[-1] is None:
        inputs.pop()
    outputs = [ln.outputs[0]] + ([s] if sum_read else [])
    attrs = {"axis": int(ln.attr("axis", -1)), "epsilon": float(ln.attr("epsilon", 1e-5))}
    fused = replace_nodes(graph, [add, ln], "AddLayerNorm", inputs, outputs, attrs, domain=DOMAIN,
                          name=graph.fresh_node_name(f"{ln.name}_AddLayerNorm"))
    position = {id(n): i for i, n in enumerate(graph.nodes)}
    if sum_read and any(position.get(id(c), len(position)) < position[id(fused)] for c in consumers(s)):
        graph.toposort()
    ctx.record_fusion(fused.name, [add, ln])
    return fused


def run(graph: Graph, ctx: PassContext) -> bool:
    changed = False
    for ln in list(graph.nodes):
        if not is_op(ln, "LayerNormalization"):
            continue
        x = ln.input(0)
        add = x.producer if x is not None else None
        if add is None or not is_op(add, "Add") or not _candidate(add):
            continue
        why = _refusal(graph, add, ln)
        if why is not None:
            ctx.refuse(f"LayerNormalization '{ln.name}' keeps its Add: {why}")
            continue
        fused = _fuse(graph, add, ln, ctx)
        ctx.info("fused Add '%s' into LayerNormalization '%s' (%d outputs)", add.name, ln.name, len(fused.outputs))
        changed = True
    return changed
