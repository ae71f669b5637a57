"""ONNX elementwise ops as pointwise programs (see pointwise_program.py for the program semantics).

:func:`program_for_node` turns one elementwise node (Add, Relu, Clip, Cast, ...) into a one-node
:class:`~ep_trtpy.ops.pointwise_program.Program`. The canonicalization pass uses it to rewrite every elementwise
node into an ``ep_trtpy::Pointwise`` node, the fusion pass then merges chains of those, and lowering only ever
sees ``Pointwise``. :data:`ELEMENTWISE_OPS` is the set of op types this covers.

Constant scalar operands of ops with immediates (Clip's min/max) become immediates; everything else is a
register. dtypes must already be known on the node's values.
"""

from __future__ import annotations

import math

import numpy as np

from ep_trtpy.ops.pointwise_program import INT_OPS, Program
from graph_partitioner.ir import BOOL, FLOAT, FLOAT16, FLOAT_TYPES, INT32, INT64, Node

_UNARY = {
    "Neg": "neg", "Abs": "abs", "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Erf": "erf", "Exp": "exp",
    "Log": "log", "Sqrt": "sqrt", "Reciprocal": "reciprocal", "Floor": "floor", "Ceil": "ceil", "Round": "round",
    "Sign": "sign", "Sin": "sin", "Cos": "cos", "Not": "not", "Softplus": "softplus", "Softsign": "softsign",
    "HardSwish": "hard_swish", "IsNaN": "isnan",
}
_BINARY = {
    "Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "Equal": "eq", "Less": "lt",
    "Greater": "gt", "LessOrEqual": "le", "GreaterOrEqual": "ge", "And": "and", "Or": "or", "Xor": "xor",
    "PRelu": "prelu",
}
_VARIADIC = {"Sum": "add", "Max": "max", "Min": "min", "Mean": "add"}
_ONE_IMM = {"LeakyRelu": ("leaky_relu", 0.01), "Elu": ("elu", 1.0), "ThresholdedRelu": ("thresholded_relu", 1.0),
            "Celu": ("celu", 1.0)}

ELEMENTWISE_OPS = frozenset(set(_UNARY) | set(_BINARY) | set(_VARIADIC) | set(_ONE_IMM) | {
    "Clip", "Cast", "Where", "Mod", "HardSigmoid", "Selu", "Gelu", "IsInf"})
_SINGLE = {**_UNARY, **{op: name for op, (name, _) in _ONE_IMM.items()}, "HardSigmoid": "hard_sigmoid",
           "Selu": "selu", "Gelu": "gelu", "IsInf": "isinf"}
FLOAT_ONLY_OPS = frozenset(op for op, name in _SINGLE.items() if name not in INT_OPS)
"""Elementwise ops whose program op needs float compute (pointwise_program.INT_OPS lacks it)."""
IO_TYPES = frozenset({FLOAT, FLOAT16, INT32, INT64, BOOL})


def _compute_type(node: Node) -> str:
    types = [v.dtype for v in list(node.inputs) + list(node.outputs) if v is not None]
    return "float" if any(t in FLOAT_TYPES for t in types) else "int64"


def _scalar_const(node: Node, i: int) -> float | None:
    v = node.input(i)
    if v is None or v.const is None or v.const.size != 1:
        return None
    return float(v.const.reshape(()))


def program_for_node(node: Node) -> tuple[Program, list[int]] | None:
    """(program, indices of the node inputs the program reads, in register order), or None if the node is not
    an elementwise op this module maps (or an operand is of an unsupported dtype)."""
    op = node.op_type
    if node.domain not in ("", "ai.onnx") or op not in ELEMENTWISE_OPS:
        return None
    if any(v is not None and v.dtype not in IO_TYPES for v in list(node.inputs) + list(node.outputs)):
        return None
    out_t = node.outputs[0].dtype
    ct = _compute_type(node)
    present = [i for i, v in enumerate(node.inputs) if v is not None]
    n = len(present)

    def prog(code: list[list], reg: int, inputs: list[int] | None = None) -> tuple[Program, list[int]]:
        ins = present if inputs is None else inputs
        return Program(len(ins), ct, code, [(reg, out_t)]), ins

    if op in _UNARY:
        if ct == "int64" and op in FLOAT_ONLY_OPS:
            return None
        return prog([[_UNARY[op], 1, 0]], 1)
    if op in _BINARY:
        return prog([[_BINARY[op], 2, 0, 1]], 2)
    if op in _VARIADIC:
        if n == 1:
            return prog([["mov", 1, 0]], 1)
        code, acc = [], 0
        for k in range(1, n):
            code.append([_VARIADIC[op], n + k - 1, acc, k])
            acc = n + k - 1
        if op == "Mean":
            code.append(["const", acc + 1, float(n)])
            code.append(["div", acc + 2, acc, acc + 1])
            acc += 2
        return prog(code, acc)
    if op in _ONE_IMM:
        name, default = _ONE_IMM[op]
        return prog([[name, 1, 0, float(node.attr("alpha", default))]], 1)
    if op == "HardSigmoid":
        return prog([["hard_sigmoid", 1, 0, float(node.attr("alpha", 0.2)), float(node.attr("beta", 0.5))]], 1)
    if op == "Selu":
        return prog([["selu", 1, 0, float(node.attr("alpha", 1.67326319217681884765625)),
                      float(node.attr("gamma", 1.05070102214813232421875))]], 1)
    if op == "Gelu":
        approx = node.attr("approximate", "none")
        if approx not in ("none", "tanh"):
            return None
        return prog([["gelu" if approx == "none" else "gelu_tanh", 1, 0]], 1)
    if op == "Mod":
        return prog([["mod", 2, 0, 1, float(node.attr("fmod", 0))]], 2)
    if op == "Where":
        return prog([["where", 3, 0, 1, 2]], 3)
    if op == "Cast":
        return prog([["mov", 1, 0]], 1)
    if op == "IsInf":
        pos, neg = int(node.attr("detect_positive", 1)), int(node.attr("detect_negative", 1))
        if pos and neg:
            return prog([["isinf", 1, 0]], 1)
        cmp = "gt" if pos else "lt"
        if not pos and not neg:
            return prog([["const", 1, 0.0]], 1, [0])
        return prog([["isinf", 1, 0], ["const", 2, 0.0], [cmp, 3, 0, 2], ["and", 4, 1, 3]], 4)
    if op == "Clip" and node.since_version is not None and node.since_version < 11:  # bounds are attributes
        big = float(np.iinfo(np.int64).max) if ct == "int64" else math.inf
        return prog([["clip", 1, 0, float(node.attr("min", -big)), float(node.attr("max", big))]], 1, [0])
    if op == "Clip":
        lo_const, hi_const = _scalar_const(node, 1), _scalar_const(node, 2)
        has_lo, has_hi = node.input(1) is not None, node.input(2) is not None
        if (not has_lo or lo_const is not None) and (not has_hi or hi_const is not None):
            if ct == "int64":
                big = float(np.iinfo(np.int64).max)
                lo = lo_const if has_lo else -big
                hi = hi_const if has_hi else big
            else:
                lo = lo_const if has_lo else -math.inf
                hi = hi_const if has_hi else math.inf
            return prog([["clip", 1, 0, lo, hi]], 1, [0])
        # runtime bounds: max then min with registers
        code, regs, acc = [], [0], 0
        nxt = 1 + (1 if has_lo else 0) + (1 if has_hi else 0)
        inputs = [0]
        if has_lo:
            inputs.append(1)
            code.append(["max", nxt, acc, len(inputs) - 1])
            acc, nxt = nxt, nxt + 1
        if has_hi:
            inputs.append(2)
            code.append(["min", nxt, acc, len(inputs) - 1])
            acc, nxt = nxt, nxt + 1
        del regs
        return prog(code, acc, inputs)
    return None
