"""Elementwise ONNX ops (Add ... Xor, Cast, Clip, Where): reference and inference.

The reference of every op here is the pointwise program that :func:`ep_trtpy.ops.pointwise_ops.program_for_node`
maps the node to, evaluated by :func:`ep_trtpy.ops.pointwise_program.run`, so ``ep_trtpy::Pointwise`` is the
single source of the semantics (float32 compute for float16/float32 data with one rounding on store, int64
compute for integers with C-style truncating Div, NaN-propagating Min/Max, Mod with fmod=0 taking the divisor's
sign). Two extensions keep the reference total over what ONNX allows:

* dtypes the GPU path refuses (float64, 8/16-bit and unsigned integers) evaluate the same program in float64 or
  int64 compute (:func:`pointwise_program.run`'s ``compute_dtype``);
* Clip before opset 11 (min/max attributes) is the program ``clip x, min, max`` built here.

Inference: numpy broadcasting of all inputs (PRelu's slope broadcasts unidirectionally to X; Clip's bounds must
hold one element), output dtype bool for comparisons, logic, IsNaN and IsInf, Cast's ``to``, else input 0's.
"""

from __future__ import annotations

import math

import numpy as np

from ep_trtpy.ops import pointwise_ops, pointwise_program
from ep_trtpy.ops._common import broadcast, fail, in_name, is_float, numel, opset, same_dtype, unidirectional
from ep_trtpy.ops.pointwise_program import Program
from ep_trtpy.ops.registry import Info, infer, reference
from graph_partitioner.ir import (BFLOAT16, BOOL, DOUBLE, FLOAT, FLOAT8E4M3FN, FLOAT16, INT32, INT64, STRING, Node, Value, dtype_name,
                                  elem_type, np_dtype)

ELEMENTWISE = sorted(pointwise_ops.ELEMENTWISE_OPS)

_COMPARE = frozenset({"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"})
_LOGIC = frozenset({"And", "Or", "Xor", "Not"})
_BOOL_OUT = _COMPARE | _LOGIC | {"IsNaN", "IsInf"}
_SAME_TYPE = frozenset({"Add", "Sub", "Mul", "Div", "Min", "Max", "Sum", "Mean", "Mod", "PRelu"}) | _COMPARE | _LOGIC
FLOAT_ONLY = pointwise_ops.FLOAT_ONLY_OPS | {"Pow"}
"""Ops whose first input must be a float type: those whose program op needs float compute (Pow: the base may
also be an integer, see below)."""

_IO = frozenset({FLOAT, FLOAT16, INT32, INT64, BOOL})


def _proxy(t: int) -> int:
    """The GPU-path dtype standing in for `t` when mapping to a program (float64 -> float32, ints -> int64)."""
    if t in _IO:
        return t
    if t in (DOUBLE, BFLOAT16):
        return FLOAT
    return INT64


def _infer(node: Node, infos: list[Info | None]) -> Info:
    op = node.op_type
    present = [(i, x) for i, x in enumerate(infos) if x is not None]
    if not present:
        raise fail(node, "has no inputs")
    x0 = infos[0]
    if x0 is None:
        raise fail(node, f"{in_name(node, 0)} is absent")
    if op in _SAME_TYPE:
        same_dtype(node, infos)
    if op in _LOGIC:
        for i, x in present:
            if x.dtype != BOOL:
                raise fail(node, f"{in_name(node, i)} is {dtype_name(x.dtype)}; {op} needs bool")
    if op == "Pow":
        if x0.dtype == BOOL or infos[1] is None or infos[1].dtype == BOOL:
            raise fail(node, "Pow needs numeric base and exponent")
    elif op in FLOAT_ONLY and not is_float(x0.dtype):
        raise fail(node, f"{in_name(node, 0)} is {dtype_name(x0.dtype)}; {op} needs a float type")
    if op == "Where":
        if len(infos) != 3 or any(x is None for x in infos):
            raise fail(node, "Where needs 3 inputs (condition, X, Y)")
        if x0.dtype != BOOL:
            raise fail(node, f"condition {in_name(node, 0)} is {dtype_name(x0.dtype)}; Where needs bool")
        same_dtype(node, infos, [1, 2])
    if op == "Clip":
        same_dtype(node, infos)
        for i in (1, 2):
            b = infos[i] if i < len(infos) else None
            if b is not None and numel(b.shape) != 1:
                raise fail(node, f"bound {in_name(node, i)} has shape {list(b.shape)}; Clip needs a scalar")
        shape = x0.shape
    elif op == "PRelu":
        if len(infos) < 2 or infos[1] is None:
            raise fail(node, "PRelu needs a slope input")
        unidirectional(node, x0.shape, infos[1].shape, f"slope {in_name(node, 1)}")
        shape = x0.shape
    else:
        shape = broadcast(node, *[x.shape for _, x in present])
    if op in _BOOL_OUT:
        dtype = BOOL
    elif op == "Cast":
        to = node.attr("to")
        if to is None:
            raise fail(node, "Cast has no 'to' attribute")
        try:
            if {STRING, FLOAT8E4M3FN} & {int(to), x0.dtype}:  # FP8 is for quantized layers only
                raise ValueError("string or float8")
            np_dtype(int(to))
        except ValueError:
            raise fail(node, f"Cast from {dtype_name(x0.dtype)} to {dtype_name(int(to))} is not supported") from None
        dtype = int(to)
    elif op == "Where":
        dtype = infos[1].dtype  # type: ignore[union-attr]
    else:
        dtype = x0.dtype
    if op == "Gelu" and node.attr("approximate", "none") not in ("none", "tanh"):
        raise fail(node, f"approximate={node.attr('approximate')!r} is not 'none' or 'tanh'")
    return Info(dtype, shape)


def _shadow(node: Node, arrays: list[np.ndarray | None], out_dtype: int) -> Node:
    """A copy of `node` whose values carry the GPU-path proxy dtypes of the actual arrays (and the constants the
    original node had), so that program_for_node sees what the canonicalization pass would see."""
    s = Node(node.op_type, node.name, node.domain, dict(node.attrs), node.since_version)
    for i, a in enumerate(arrays):
        if a is None:
            s.inputs.append(None)
            continue
        orig = node.input(i)
        v = Value(orig.name if orig is not None else f"in{i}", _proxy(elem_type(a.dtype)))
        if orig is not None and orig.const is not None:
            v.const = np.asarray(a)
        s.inputs.append(v)
    s.outputs.append(Value("out", _proxy(out_dtype)))
    return s


def _program(node: Node, arrays: list[np.ndarray | None], out_dtype: int) -> tuple[Program, list[int]]:
    if node.op_type == "Clip" and opset(node) < 11:
        lo = float(node.attr("min", -math.inf))
        hi = float(node.attr("max", math.inf))
        return Program(1, "float" if is_float(out_dtype) else "int64", [["clip", 1, 0, lo, hi]],
                       [(1, out_dtype)]), [0]
    mapped = pointwise_ops.program_for_node(_shadow(node, arrays, out_dtype))
    if mapped is None:
        types = ", ".join(dtype_name(elem_type(a.dtype)) for a in arrays if a is not None)
        raise fail(node, f"{node.op_type} has no pointwise program for input dtypes ({types})")
    prog, idx = mapped
    return Program(prog.n_inputs, prog.compute, prog.code, [(r, out_dtype) for r, _ in prog.outputs]), idx


@reference(*ELEMENTWISE)
def elementwise_ref(node: Node, *inputs: np.ndarray | None) -> np.ndarray:
    """The node's pointwise program evaluated with numpy (float64/int64 compute for non-GPU dtypes)."""
    arrays = [None if a is None else np.asarray(a) for a in inputs]
    infos = [None if a is None else Info(elem_type(a.dtype), tuple(a.shape)) for a in arrays]
    out = _infer(node, infos)
    prog, idx = _program(node, arrays, out.dtype)
    wide = any(a is not None and elem_type(a.dtype) not in _IO for a in arrays) or out.dtype not in _IO
    ct = None
    if wide:
        ct = np.float64 if prog.compute == "float" else np.int64
    y = pointwise_program.run(prog, [arrays[i] for i in idx], compute_dtype=ct)[0]
    return y.reshape(out.shape) if y.shape != out.shape else y


@infer(*ELEMENTWISE)
def elementwise_infer(node: Node, *infos: Info | None) -> Info:
    return _infer(node, list(infos))
