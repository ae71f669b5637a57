"""Support rules: shape and constant ops (Shape, Size, ConstantOfShape, Range, Constant), all folded at build
time when their inputs allow."""

from __future__ import annotations

import numpy as np

from graph_partitioner.ir import INT64, Node, dtype_name, elem_type
from graph_partitioner.onnx_io import OpaqueAttr
from graph_partitioner.support import common
from graph_partitioner.support.registry import ANY_FIXED, NUMERIC, SupportContext, rule


@rule("Shape", dtypes=ANY_FIXED, exempt_outputs=(0,))
def shape(node: Node, ctx: SupportContext) -> str | None:
    """start/end (opset 15+); output int64, known when the engine is built."""
    if why := common.dtype_in(node, node.outputs[0] if node.outputs else None, {INT64}, "output"):
        return why
    for name in ("start", "end"):
        if name in node.attrs and not isinstance(node.attrs[name], int):
            return f"Shape attribute {name}={node.attrs[name]!r} is not an integer"
    return None


@rule("Size", dtypes=ANY_FIXED, exempt_outputs=(0,))
def size(node: Node, ctx: SupportContext) -> str | None:
    """Output int64 scalar, known when the engine is built."""
    return common.dtype_in(node, node.outputs[0] if node.outputs else None, {INT64}, "output")


def _array_dtype_reason(node: Node, arr: np.ndarray, what: str) -> str | None:
    try:
        elem = elem_type(arr.dtype)
    except ValueError:
        return f"{node.key} {what} has numpy dtype {arr.dtype}, which has no ONNX element type"
    if elem not in ANY_FIXED:
        name = dtype_name(elem)
        return f"{node.key} {what} is {name}, and {name} is not supported on the GPU path"
    return None


@rule("ConstantOfShape", dtypes=ANY_FIXED, exempt_inputs=(0,))
def constant_of_shape(node: Node, ctx: SupportContext) -> str | None:
    """shape input computable at build time; value attribute (one element; default float32 0)."""
    if node.input(0) is None:
        return "ConstantOfShape has no shape input"
    if why := common.computable_input(node, 0, ctx, "shape"):
        return why
    value = node.attr("value")
    if value is None:
        return None
    if not isinstance(value, np.ndarray):
        return f"ConstantOfShape value attribute is a {type(value).__name__}, not a tensor"
    if value.size != 1:
        return f"ConstantOfShape value attribute has {value.size} elements; exactly one is needed"
    return _array_dtype_reason(node, value, "value attribute")


@rule("Range", dtypes=NUMERIC)
def range_(node: Node, ctx: SupportContext) -> str | None:
    """start, limit, delta computable at build time (the output length depends on their values)."""
    for i, what in ((0, "start"), (1, "limit"), (2, "delta")):
        if node.input(i) is None:
            return f"Range has no {what} input"
        if why := common.computable_input(node, i, ctx, what):
            return why
    return None


CONSTANT_FORMS = ("value", "value_float", "value_floats", "value_int", "value_ints")


@rule("Constant", dtypes=ANY_FIXED)
def constant(node: Node, ctx: SupportContext) -> str | None:
    """value, value_float(s) or value_int(s) (sparse_value and strings refused)."""
    present = [k for k in node.attrs if k.startswith("value") or k == "sparse_value"]
    if "sparse_value" in present:
        return "Constant with a sparse_value attribute is not supported (dense value attributes are)"
    if any(isinstance(node.attrs[k], OpaqueAttr) for k in present):
        return "Constant value has no numeric form here (e.g. a string tensor), so it cannot be claimed"
    if any(k in ("value_string", "value_strings") for k in present):
        return "Constant value_string(s) produces a string tensor, and string is not supported on the GPU path"
    forms = [k for k in present if k in CONSTANT_FORMS]
    if len(forms) != 1:
        return f"Constant needs exactly one value attribute, got {present or 'none'}"
    value = node.attrs[forms[0]]
    if isinstance(value, np.ndarray):
        return _array_dtype_reason(node, value, "value")
    return None
