"""Helpers shared by the support rules: opset-dependent forms, axes, used optional outputs, attribute checks.

Every helper that can refuse returns ``str | None`` (a full sentence, or None when fine), so a rule reads as a
sequence of ``if (why := helper(...)): return why``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from graph_partitioner.ir import Node, Value, dtype_name
from graph_partitioner.support.registry import SupportContext

MAX_POINTWISE_INPUTS = 16
"""Inputs one ep_trtpy::Pointwise kernel reads (ep_trtpy/ops/pointwise_program.py MAX_INPUTS; a test keeps them
equal). Variadic elementwise ops with more inputs are refused."""


def version(node: Node, ctx: SupportContext) -> int:
    """The op version deciding the node's form: its schema's since_version, else the graph's opset for its domain.

    Comparing either against the version where a form changed (e.g. 13 for Squeeze's axes input) gives the same
    answer, because forms change only where a new schema version starts.
    """
    if node.since_version:
        return int(node.since_version)
    return int(ctx.graph.opsets.get(node.domain if node.domain != "ai.onnx" else "", 17))


def rank(v: Value | None) -> int | None:
    return None if v is None or v.shape is None else len(v.shape)


def is_used(v: Value | None, ctx: SupportContext) -> bool:
    """True if the value exists and is read by a node or is a graph output."""
    return v is not None and (bool(v.consumers) or ctx.graph.is_graph_output(v))


def unused_output(node: Node, i: int, ctx: SupportContext, what: str, only: str) -> str | None:
    """Refuse when optional output i is used. `what` names the output ("Mean"), `only` what is supported."""
    v = node.outputs[i] if i < len(node.outputs) else None
    if not is_used(v, ctx):
        return None
    assert v is not None
    users = [n.name for n, _ in v.consumers][:3]
    where = f"read by {', '.join(repr(u) for u in users)}" if users else "a graph output"
    return f"{node.key} output {i} ({what}, '{v.name}') is {where}; {only}"


def attr_in(node: Node, name: str, default: Any, allowed: Sequence[Any],
            supported_text: str | None = None) -> str | None:
    """Refuse when attribute `name` (or its default) is not one of `allowed`."""
    val = node.attr(name, default)
    if val in allowed:
        return None
    text = supported_text or ("supported: " + ", ".join(repr(a) for a in allowed))
    return f"{node.key} {name}={val!r} is not supported ({text})"


def flag(node: Node, name: str, default: int = 0) -> str | None:
    """Refuse when a 0/1 attribute holds anything else."""
    val = node.attr(name, default)
    if val in (0, 1):
        return None
    return f"{node.key} attribute {name}={val!r} is not valid (it must be 0 or 1)"


def check_axis(node: Node, axis: Any, r: int | None, what: str = "axis", allow_end: bool = False) -> str | None:
    """Refuse an axis out of [-r, r-1] (or [-r, r] with allow_end, as Flatten allows) when the rank is known."""
    if not isinstance(axis, (int, np.integer)):
        return f"{node.key} {what}={axis!r} is not an integer"
    if r is None:
        return None
    hi = r if allow_end else r - 1
    if not -r <= int(axis) <= hi:
        return f"{node.key} {what}={int(axis)} is out of range for a rank-{r} input"
    return None


def check_axes(node: Node, axes: Iterable[Any], r: int | None, what: str = "axes") -> str | None:
    """Refuse axes out of range (known rank) or repeated."""
    axes = [int(a) if isinstance(a, (int, np.integer)) else a for a in axes]
    for a in axes:
        if not isinstance(a, int):
            return f"{node.key} {what}={axes} holds {a!r}, which is not an integer"
        if r is not None and not -r <= a < r:
            return f"{node.key} {what}={axes} holds axis {a}, out of range for a rank-{r} input"
    if r is not None:
        normalized = [int(a) % r if r else int(a) for a in axes]
        if len(set(normalized)) != len(normalized):
            return f"{node.key} {what}={axes} names an axis twice"
    return None


def computable_input(node: Node, i: int, ctx: SupportContext, what: str) -> str | None:
    """Refuse when present input i is not shape-computable (its value is needed when the engine is built)."""
    v = node.input(i)
    if v is None or ctx.shape_computable(v):
        return None
    return (f"{node.key} {what} input '{v.name}' is not computable at build time (it must follow from constants "
            f"and input shapes)")


def const_input(node: Node, i: int, what: str) -> str | None:
    """Refuse when present input i is not a constant."""
    v = node.input(i)
    if v is None or v.const is not None:
        return None
    return f"{node.key} {what} input '{v.name}' must be a constant"


def const_array(v: Value | None) -> np.ndarray | None:
    return None if v is None else v.const


def is_empty_input(v: Value | None) -> bool:
    """True for an absent input, or one known to hold zero elements (an empty tensor standing for 'none')."""
    if v is None:
        return True
    if v.const is not None:
        return v.const.size == 0
    return v.shape is not None and any(d == 0 for d in v.shape)


def dtype_in(node: Node, v: Value | None, allowed: Iterable[int], what: str) -> str | None:
    """Refuse when a value's (known) dtype is not in `allowed` (for inputs/outputs exempt from the rule's set)."""
    allowed = frozenset(allowed)
    if v is None or v.dtype is None or v.dtype in allowed:
        return None
    names = ", ".join(sorted(dtype_name(d) for d in allowed))
    return f"{node.key} {what} '{v.name}' is {dtype_name(v.dtype)}; it must be {names}"


def ints_attr(node: Node, name: str, length: int | None, minimum: int | None = None) -> str | None:
    """Refuse a present ints attribute of the wrong length (when `length` is known) or below `minimum`."""
    val = node.attr(name)
    if val is None:
        return None
    if not isinstance(val, list) or not all(isinstance(x, (int, np.integer)) for x in val):
        return f"{node.key} attribute {name}={val!r} is not a list of integers"
    if length is not None and len(val) != length:
        return f"{node.key} {name}={val} has {len(val)} entries; {length} expected"
    if minimum is not None and any(x < minimum for x in val):
        return f"{node.key} {name}={val} has an entry below {minimum}"
    return None
