"""merge_duplicates: compute each distinct expression once (common-subexpression elimination).

Math: a node is a pure function of its inputs and attributes, so two nodes with the same op, the same attributes
and the same inputs produce the same outputs; the second can read the first's outputs instead. Inputs count as the
same when they are the same value, or constants with equal dtype, shape and bytes (exporters write a fresh copy of
every small constant in each layer: HuggingFace's BERT builds its attention-mask ``Where(mask, 0, -inf)`` once per
layer from twelve pairs of equal scalars).

Match: nodes of the ONNX domain or ours whose attributes are plain data (numbers, strings, lists, arrays), whose
inputs are equal in the sense above, with outputs of equal dtype and shape.

Refusal (not merged, silently: nothing almost matched): ops with randomness (RandomNormal, RandomUniform, their
Like forms, Multinomial, Bernoulli, Dropout); Transpose and Quantize/DequantizeLinear, which later passes fold into
each consumer and a shared one would stop that; nodes with graph attributes; a duplicate whose output is a graph
output (graph outputs keep their own values).

Rewrite: every use of the duplicate's outputs reads the first node's outputs; the duplicate goes with
``eliminate_dead_nodes``. The first node keeps its name; the fusion record of the first node gains the
duplicate's original nodes, so ``ep-trtpy inspect`` still accounts for every node.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ep_trtpy.builder.pipeline import PassContext
from graph_partitioner.ir import Graph, Node, Value

NAME = "merge_duplicates"

NEVER = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                   "Bernoulli", "Dropout", "Transpose", "QuantizeLinear", "DequantizeLinear"})
CONST_BYTES = 1 << 16
"""Constants up to this many bytes are compared by content; larger ones only by identity (weights are distinct)."""


class _Unhashable(Exception):
    pass


def _attr_key(v: Any) -> Any:
    if isinstance(v, (bool, int, float, str, bytes)) or v is None:
        return (type(v).__name__, v)
    if isinstance(v, np.ndarray):
        return ("array", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, np.generic):
        return ("scalar", v.dtype.str, v.tobytes())
    if isinstance(v, (list, tuple)):
        return ("seq", tuple(_attr_key(x) for x in v))
    raise _Unhashable


def _value_key(v: Value | None, canon: dict[int, Value]) -> Any:
    if v is None:
        return None
    v = canon.get(id(v), v)
    if v.const is not None and v.producer is None and v.const.nbytes <= CONST_BYTES:
        c = np.ascontiguousarray(v.const)
        return ("const", v.dtype, tuple(c.shape), c.tobytes())
    return ("value", id(v))


def _node_key(node: Node, canon: dict[int, Value]) -> Any | None:
    if node.op_type in NEVER or node.domain not in ("", "ai.onnx", "ep_trtpy") or not node.outputs:
        return None
    try:
        attrs = tuple(sorted((k, _attr_key(a)) for k, a in node.attrs.items()))
    except _Unhashable:
        return None
    outs = tuple((o.dtype, o.shape) for o in node.outputs)
    return (node.domain, node.op_type, node.since_version, attrs, tuple(_value_key(v, canon) for v in node.inputs),
            outs)


def run(graph: Graph, ctx: PassContext) -> bool:
    seen: dict[Any, Node] = {}
    canon: dict[int, Value] = {}  # id(duplicate's output) -> the first node's output
    merged = 0
    for node in list(graph.nodes):
        key = _node_key(node, canon)
        if key is None:
            continue
        first = seen.get(key)
        if first is None:
            seen[key] = node
            continue
        if any(graph.is_graph_output(o) for o in node.outputs):
            continue
        for dup, keep in zip(node.outputs, first.outputs):
            canon[id(dup)] = keep
            graph.replace_all_uses(dup, keep)
        ctx.record_fusion(first.name, [first, node])
        merged += 1
    if merged:
        graph.remove_unused()
        ctx.info("merged %d duplicate nodes", merged)
    return merged > 0
