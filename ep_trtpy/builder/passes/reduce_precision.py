"""reduce_precision: with fp16_enable or bf16_enable, float32 compute of the engine runs in float16 or bfloat16.

Math: every float32 activation and weight inside the engine is replaced by its nearest 16-bit value (round to
nearest even) of the reduced type: float16 with fp16_enable, bfloat16 with bf16_enable; with both, float16 wins
(its 11-bit significand is the more precise where values fit; bf16_enable is then ignored). float16 weights beyond
+-65504 are clamped, with a warning naming them; bfloat16 has float32's range, so nothing is clamped. The engine's
inputs and outputs keep their dtypes: values cross the boundary through Pointwise casts. Kernels of
LayerNormalization, Softmax and reductions accumulate in float32, so they run in 16 bits safely. Variance-like
computations do not: a sum of squares of activations overflows float16 and loses all precision in either type.
They stay float32:

* ReduceSumSquare and ReduceL2 (input cast to float32, output float32);
* a ReduceMean / ReduceSum whose input is a square computed by a Pointwise node (``pow(d, 2)`` or ``d * d``
  that fuse_layernorm did not absorb): the square's output and the reduction stay float32, and so do the
  Pointwise nodes that continue the reduced result at the reduced shape (``var + eps``, ``sqrt``), which are tiny;
* quantization (QuantizeLinear, DequantizeLinear) and the quantized layers (ep_trtpy::QConv, QMatMul): their
  scales, biases and float outputs stay float32 (their int8 and FP8 values are not float32 anyway);
* with bfloat16, the ops whose GPU kernels have no bfloat16 path (:data:`NO_BF16_KERNEL`: Resize, ConvTranspose,
  ArgMax, ArgMin) run in float32 between casts.

Pointwise nodes load any dtype and compute in float32, so they need no input casts: their float32 outputs simply
become 16-bit (the program's output dtypes are updated), except outputs that are graph outputs, which stay
float32. Their constant operands stay float32 (an eps of 1e-12 must not flush to zero; they are small).
Every other node gets 16-bit inputs (constants converted once, runtime float32 values through one shared cast)
and produces 16-bit values; Resize's roi/scales inputs stay float32.

Match: the option ``fp16_enable`` or ``bf16_enable``; float32 values only (float16/bfloat16 models, ints and bools
are untouched).

Refusal: none needed; pinned float32 computations are logged with the value they keep in float32.

Rewrite: dtype changes on values, converted constants, Pointwise cast nodes at the boundaries.
"""

from __future__ import annotations

import logging

import numpy as np

from ep_trtpy.builder.passes._patterns import DOMAIN, add_const, const_scalar, is_internal, is_op, rename
from ep_trtpy.builder.pipeline import PassContext
from ep_trtpy.ops.pointwise_program import Program
from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT16, Graph, Node, Value, np_dtype

NAME = "reduce_precision"

log = logging.getLogger("ep_trtpy.builder")

FP16_MAX = 65504.0
SUFFIX = {FLOAT: "fp32", FLOAT16: "fp16", BFLOAT16: "bf16"}
VARIANCE_REDUCTIONS = ("ReduceSumSquare", "ReduceL2")
SUM_REDUCTIONS = ("ReduceMean", "ReduceSum")
NO_BF16_KERNEL = ("Resize", "Upsample", "ConvTranspose", "ArgMax", "ArgMin")
"""Ops whose native kernels take float32 and float16 but not bfloat16 (perf-design.md lists the bf16 kernels)."""
KEEP_FP32_INPUTS = frozenset({("Resize", 1), ("Resize", 2), ("Upsample", 1)})
DTYPE_BLIND = ("Shape", "Size")  # read only the input's shape
QUANTIZED = ("QuantizeLinear", "DequantizeLinear", "ep_trtpy::QConv", "ep_trtpy::QMatMul")
"""Quantization and quantized layers keep float32 (scales, biases, float outputs); casts meet them."""


def _program(node: Node) -> Program:
    return Program.from_json(str(node.attr("program")), len(node.inputs))


def _is_square(node: Node) -> bool:
    """A single-instruction Pointwise computing pow(a, 2) or a * a."""
    if not is_internal(node, "Pointwise"):
        return False
    prog = _program(node)
    if len(prog.code) != 1:
        return False
    ins = prog.code[0]
    if ins[0] == "pow" and ins[3] < len(node.inputs):
        return const_scalar(node.inputs[ins[3]]) == 2.0
    if ins[0] == "mul":
        a, b = ins[2], ins[3]
        return a == b or (a < len(node.inputs) and b < len(node.inputs) and node.inputs[a] is node.inputs[b])
    return False


def pinned_nodes(graph: Graph) -> dict[int, str]:
    """id(node) -> reason, for the nodes that keep float32."""
    pinned: dict[int, str] = {}
    reduced: list[Node] = []
    for n in graph.nodes:
        if n.key in QUANTIZED:
            pinned[id(n)] = f"{n.key} '{n.name}' computes with float32 scales"
        elif is_op(n, *VARIANCE_REDUCTIONS):
            pinned[id(n)] = f"{n.op_type} '{n.name}' sums squares"
            reduced.append(n)
        elif is_op(n, *SUM_REDUCTIONS) and n.input(0) is not None and n.input(0).producer is not None \
                and _is_square(n.input(0).producer):  # type: ignore[union-attr, arg-type]
            sq = n.input(0).producer  # type: ignore[union-attr]
            pinned[id(sq)] = f"'{sq.outputs[0].name}' is a square that '{n.name}' reduces"  # type: ignore[union-attr]
            pinned[id(n)] = f"{n.op_type} '{n.name}' reduces a square (a variance)"
            reduced.append(n)
    # the tiny continuation of a pinned reduction at its own shape (var + eps, sqrt, ...)
    stack = list(reduced)
    while stack:
        r = stack.pop()
        shape = r.outputs[0].shape
        for v in r.outputs:
            for c, _ in v.consumers:
                if is_internal(c, "Pointwise") and id(c) not in pinned and c.outputs[0].shape == shape:
                    pinned[id(c)] = f"'{c.outputs[0].name}' continues the float32 reduction '{r.name}'"
                    stack.append(c)
    return pinned


def _to_low(const: np.ndarray, low: int, name: str) -> np.ndarray:
    """`const` in the 16-bit type `low` (float16: clamped to its range, with a warning naming the value)."""
    arr = np.asarray(const, dtype=np.float32)
    if low == FLOAT16:
        big = np.abs(arr[np.isfinite(arr)]).max(initial=0.0)
        if big > FP16_MAX:
            log.warning("fp16: constant '%s' has values up to %g, beyond the float16 range; clamped to +-65504",
                        name, big)
            arr = np.clip(arr, -FP16_MAX, FP16_MAX)
    return arr.astype(np_dtype(low))


class _Converter:
    def __init__(self, graph: Graph, low: int, ctx: PassContext) -> None:
        self.graph = graph
        self.low = low  # FLOAT16 or BFLOAT16
        self.ctx = ctx
        self.half: dict[int, Value] = {}
        self.full: dict[int, Value] = {}
        self.converted: set[int] = set()  # values this pass turned from float32 into the low type

    def _cast(self, v: Value, to: int, before: Node | None) -> Value:
        g = self.graph
        out = g.add_value(f"{v.name}_{SUFFIX[to]}", to, v.shape)
        prog = Program(1, "float", [["mov", 1, 0]], [(1, to)])
        g.add_node("Pointwise", [v], [out], {"program": prog.to_json()}, domain=DOMAIN,
                   name=g.fresh_node_name(f"Cast_{v.name}_to_{SUFFIX[to]}"), before=before)
        return out

    def to_low(self, v: Value, before: Node) -> Value:
        if id(v) not in self.half:
            if (c := v.const) is not None:
                low = self.ctx.derived(("to_low", c, self.low), lambda: _to_low(c, self.low, v.name))
                self.half[id(v)] = add_const(self.graph, low, f"{v.name}_{SUFFIX[self.low]}")
            else:
                self.half[id(v)] = self._cast(v, self.low, before)
        return self.half[id(v)]

    def to_full(self, v: Value, before: Node) -> Value:
        if id(v) not in self.full:
            self.full[id(v)] = self._cast(v, FLOAT, before)
        return self.full[id(v)]


def _set_pointwise_outputs(node: Node, keep: set[int], low: int) -> None:
    prog = _program(node)
    outs = []
    for (r, t), v in zip(prog.outputs, node.outputs):
        if t == FLOAT and id(v) not in keep:
            t = low
            v.dtype = low
        outs.append((r, t))
    prog.outputs = outs
    node.attrs["program"] = prog.to_json()


def run(graph: Graph, ctx: PassContext) -> bool:
    low = ctx.reduced_precision
    if low is None:
        return False
    pinned = pinned_nodes(graph)
    if low == BFLOAT16:
        for n in graph.nodes:
            if is_op(n, *NO_BF16_KERNEL):
                pinned[id(n)] = f"{n.op_type} '{n.name}' has no bfloat16 kernel"
    for reason in pinned.values():
        ctx.info("%s: kept float32: %s", SUFFIX[low], reason)
    conv = _Converter(graph, low, ctx)
    out_ids = {id(v) for v in graph.outputs}
    original = list(graph.outputs)
    original_dtypes = [v.dtype for v in graph.outputs]
    changed = False
    for node in list(graph.nodes):  # a snapshot: the casts this loop inserts are not revisited
        reduce = id(node) not in pinned
        if is_internal(node, "Pointwise"):
            if reduce and any(v.dtype == FLOAT and id(v) not in out_ids for v in node.outputs):
                before = [v.dtype for v in node.outputs]
                _set_pointwise_outputs(node, out_ids, low)
                conv.converted.update(id(v) for v, b in zip(node.outputs, before) if b != v.dtype)
                changed = True
            continue
        if is_op(node, *DTYPE_BLIND):
            continue
        for i, v in enumerate(list(node.inputs)):
            if v is None or (node.op_type, i) in KEEP_FP32_INPUTS:
                continue
            if reduce and v.dtype == FLOAT:
                graph.set_input(node, i, conv.to_low(v, node))
                changed = True
            elif not reduce and v.dtype == low and id(v) in conv.converted:
                graph.set_input(node, i, conv.to_full(v, node))
                changed = True
        if reduce:
            for v in node.outputs:
                if v.dtype == FLOAT:
                    v.dtype = low
                    conv.converted.add(id(v))
                    changed = True
            if is_op(node, "ConstantOfShape") and node.outputs[0].dtype == low and "value" in node.attrs:
                node.attrs["value"] = np.asarray(node.attrs["value"]).astype(np_dtype(low))
    # graph outputs keep their dtype
    fixed: dict[int, Value] = {}
    for k, (v, dt) in enumerate(zip(original, original_dtypes)):
        if dt == FLOAT and v.dtype == low:
            if id(v) not in fixed:
                name = v.name
                rename(graph, v, f"{name}_{SUFFIX[low]}")
                out = graph.add_value(name, FLOAT, v.shape)
                prog = Program(1, "float", [["mov", 1, 0]], [(1, FLOAT)])
                graph.add_node("Pointwise", [v], [out], {"program": prog.to_json()}, domain=DOMAIN,
                               name=graph.fresh_node_name(f"Cast_{name}_to_fp32"))
                fixed[id(v)] = out
            graph.outputs[k] = fixed[id(v)]
            changed = True
    return changed
