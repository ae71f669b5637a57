"""Support rules: for every op we may claim, a check that says yes or refuses with a sentence.

A rule is registered per op key (``"Conv"``, or ``"domain::Op"`` outside the ONNX domain)::

    @rule("Conv", dtypes=FLOAT_ONLY)
    def conv(node: Node, ctx: SupportContext) -> str | None:
        if node.attr("auto_pad", "NOTSET") not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
            return f"auto_pad={node.attr('auto_pad')!r} is not a valid value"
        return None                       # None: supported

The registry checks the dtypes of every input and output against ``dtypes`` before calling the function, so a
rule only says what is particular to its op. Every refusal is a full sentence naming the offending value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from graph_partitioner.ir import (BFLOAT16, BOOL, DOUBLE, FLOAT, FLOAT16, INT8, INT32, INT64, STRING, UINT8, Graph,
                                  Node, dtype_name)

FLOATS = frozenset({FLOAT, FLOAT16})
"""Float types our GPU kernels implement (FP32 and FP16)."""
INTS = frozenset({INT32, INT64})
NUMERIC = FLOATS | INTS
ANY_FIXED = FLOATS | INTS | frozenset({BOOL, INT8, UINT8})
"""For pure data movement (reshape, transpose, concat, gather, ...): any element of 1, 2, 4 or 8 bytes."""


@dataclass
class SupportContext:
    """What a rule may consult besides the node itself."""

    graph: Graph
    shape_computable: Callable[[object], bool] = field(default=lambda v: False)
    """True if a value can be computed at engine-build time from constants and input *shapes* (so a Reshape
    whose shape operand comes from Shape->Gather->Concat can be claimed and folded)."""


RuleFn = Callable[[Node, SupportContext], "str | None"]


@dataclass
class Rule:
    op: str
    fn: RuleFn
    dtypes: frozenset[int]
    exempt_inputs: frozenset[int]
    exempt_outputs: frozenset[int]
    doc: str


_RULES: dict[str, Rule] = {}


def rule(op: str, dtypes: frozenset[int] = NUMERIC, exempt_inputs: tuple[int, ...] = (),
         exempt_outputs: tuple[int, ...] = ()) -> Callable[[RuleFn], RuleFn]:
    """Register `fn` as the support rule of `op`.

    `dtypes` is checked against every input and output except the exempt ones (indices, shapes, axes, conditions,
    or outputs such as Shape's int64 and Equal's bool), which the rule checks itself when it matters.
    """

    def deco(fn: RuleFn) -> RuleFn:
        if op in _RULES:
            raise ValueError(f"support rule for {op} registered twice")
        _RULES[op] = Rule(op, fn, dtypes, frozenset(exempt_inputs), frozenset(exempt_outputs),
                          (fn.__doc__ or "").strip())
        return fn

    return deco


def rules() -> dict[str, Rule]:
    return dict(_RULES)


REFUSED_EVERYWHERE = frozenset({DOUBLE, BFLOAT16, STRING})
"""Element types no rule accepts, not even on exempt inputs/outputs: "<dtype> is not supported on the GPU path"."""

OWN_DOMAINS = frozenset({"", "ai.onnx", "ep_trtpy"})
"""Domains whose ops may have rules: ONNX's and our own internal ops'."""


def check(node: Node, ctx: SupportContext) -> str | None:
    """None if the node is supported, else the reason it is refused.

    Order: domain, rule existence, element types refused everywhere (bfloat16, float64, string: on every input
    and output, exempt ones included), the rule's dtype set on the non-exempt inputs and outputs, then the rule.
    """
    if node.domain not in OWN_DOMAINS:
        return (f"{node.key} is in domain '{node.domain}'; ep_trtpy claims only ONNX-domain ops (and its own "
                f"'ep_trtpy' ops)")
    r = _RULES.get(node.key)
    if r is None:
        return f"{node.key} has no GPU implementation in ep_trtpy"
    for what, vals in (("input", node.inputs), ("output", node.outputs)):
        for i, v in enumerate(vals):
            if v is not None and v.dtype in REFUSED_EVERYWHERE:
                name = dtype_name(v.dtype)
                return f"{what} {i} ('{v.name}') is {name}, and {name} is not supported on the GPU path"
    for what, vals, exempt in (("input", node.inputs, r.exempt_inputs), ("output", node.outputs, r.exempt_outputs)):
        for i, v in enumerate(vals):
            if v is None or v.dtype is None or i in exempt:
                continue
            if v.dtype not in r.dtypes:
                allowed = ", ".join(sorted(dtype_name(d) for d in r.dtypes))
                return f"{what} {i} ('{v.name}') is {dtype_name(v.dtype)}; {node.key} supports {allowed}"
    return r.fn(node, ctx)
