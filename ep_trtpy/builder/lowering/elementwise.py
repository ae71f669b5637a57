"""Lowering of ``ep_trtpy::Pointwise`` and of every plain ONNX elementwise op (through
:func:`ep_trtpy.ops.pointwise_ops.program_for_node`, so lowering works whether or not the passes ran) onto the
native kernel ``pointwise`` (cuda_kernels/kernels/pointwise.cu); :func:`emit_pointwise` serves other families
(BatchNormalization, LayerNormalization's broadcast parameters).

Kernel ``pointwise`` parameter layout (mirrored by cuda_kernels/runtime/kernels_pointwise.cpp)::

    inputs   x_0 .. x_{n_in-1}      1..16 tensors (float32, float16, bfloat16, int32, int64, bool)
    outputs  y_0 .. y_{n_out-1}     1..8 tensors with the output's element count
    ints     [compute, nreg, ndim, n_code,
              dims[ndim],               collapsed output dims, outermost first
              strides[n_in][ndim],      element strides of each input over those dims (0 = broadcast)
              code[n_code][6]]          op, dst, nsrc, a, b, c
    floats   [imm0, imm1] per instruction

``compute`` is 0 for float32 and 1 for int64 arithmetic. ``op`` is an :data:`OPCODES` value reading ``nsrc``
registers ``a, b, c`` and writing ``dst``, or ``LOAD`` (200: register ``dst`` <- input ``a`` at the element,
converted to the compute type) or ``STORE`` (201: output ``b`` <- register ``a``, converted to its dtype).

The program is re-encoded here: registers are renamed to single-assignment values, dead code is dropped, inputs are
loaded right before their first use and outputs stored right after their last write, and registers are then
allocated by lifetime so that few are live at once; ``nreg`` (8, 16 or 32) is the smallest register file that
holds them. Output dims are collapsed (extent-1 dims dropped, neighbours merged where every input walks them as
one) so the kernel's index arithmetic is short and a same-shape or scalar-broadcast program becomes 1-D, which
takes the kernel's vectorized path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ep_trtpy.builder.lowering import LowerCtx, LoweringError, lowering
from ep_trtpy.builder.lowering._util import broadcast_strides, collapse, foldable, shape_of
from ep_trtpy.ops import pointwise_program as pp
from ep_trtpy.ops.pointwise_ops import ELEMENTWISE_OPS, program_for_node
from graph_partitioner.ir import Node, Value, dtype_name

KERNEL = "pointwise"
LOAD = 200
STORE = 201
MAX_CODE = 96
NREG_CHOICES = (8, 16, 32)


@dataclass
class Encoded:
    """A program in the kernel's native form."""

    nreg: int
    code: list[list[int]]  # [op, dst, nsrc, a, b, c]
    imms: list[float]  # 2 per instruction


def encode_program(program: pp.Program) -> Encoded:
    """Re-encode a validated program for the kernel (see the module docstring)."""
    program.validate()
    # 1. single assignment: every instruction defines a new value; inputs are values ("in", k)
    cur: dict[int, tuple] = {k: ("in", k) for k in range(program.n_inputs)}
    defs: list[tuple[str, list[tuple], list[float]]] = []  # (op, source values, immediates) of ("op", i)
    for ins in program.code:
        op, dst = ins[0], int(ins[1])
        n_src, n_imm = pp.OPS[op]
        srcs = [cur[int(r)] for r in ins[2:2 + n_src]]
        imms = [float(x) for x in ins[2 + n_src:2 + n_src + n_imm]]
        defs.append((op, srcs, imms))
        cur[dst] = ("op", len(defs) - 1)
    out_vals = [cur[int(r)] for r, _ in program.outputs]
    # 2. dead code: keep what the outputs reach
    live: set[int] = set()
    stack = [v for v in out_vals if v[0] == "op"]
    while stack:
        v = stack.pop()
        if v[1] in live:
            continue
        live.add(v[1])
        stack.extend(s for s in defs[v[1]][1] if s[0] == "op")
    # 3. schedule: lazy loads, ops in program order, each store right after its value's definition
    items: list[tuple] = []  # ("load", value) | ("op", value) | ("store", value, output index)
    loaded: set[int] = set()

    def define(item: tuple) -> None:
        items.append(item)
        for k, ov in enumerate(out_vals):
            if ov == item[1]:
                items.append(("store", ov, k))

    for i, (_op, srcs, _imm) in enumerate(defs):
        if i not in live:
            continue
        for s in srcs:
            if s[0] == "in" and s[1] not in loaded:
                loaded.add(s[1])
                define(("load", s))
        define(("op", ("op", i)))
    for ov in out_vals:
        if ov[0] == "in" and ov[1] not in loaded:
            loaded.add(ov[1])
            define(("load", ov))
    # 4. lifetimes: index of the last item reading each value
    last: dict[tuple, int] = {}
    for idx, it in enumerate(items):
        reads = defs[it[1][1]][1] if it[0] == "op" else ([it[1]] if it[0] == "store" else [])
        for s in reads:
            last[s] = idx
    # 5. allocation: lowest free register; sources that die at an instruction free their register first
    reg_of: dict[tuple, int] = {}
    free: list[int] = list(range(64))
    code: list[list[int]] = []
    imms: list[float] = []
    used = 0

    def take() -> int:
        nonlocal used
        free.sort()
        r = free.pop(0)
        used = max(used, r + 1)
        return r

    for idx, it in enumerate(items):
        if it[0] == "load":
            r = take()
            reg_of[it[1]] = r
            code.append([LOAD, r, 0, int(it[1][1]), 0, 0])
            imms += [0.0, 0.0]
            if last.get(it[1], -1) < idx:  # never read (only possible for a value stored nowhere)
                free.append(r)
        elif it[0] == "store":
            r = reg_of[it[1]]
            code.append([STORE, 0, 0, r, int(it[2]), 0])
            imms += [0.0, 0.0]
            if last.get(it[1]) == idx:
                free.append(r)
        else:
            op, srcs, imm = defs[it[1][1]]
            regs = [reg_of[s] for s in srcs]
            for s in dict.fromkeys(srcs):
                if last.get(s) == idx:
                    free.append(reg_of[s])
            r = take()
            reg_of[it[1]] = r
            code.append([pp.OPCODES[op], r, len(regs)] + regs + [0] * (3 - len(regs)))
            imm2 = (list(imm) + [0.0, 0.0])[:2]
            if op == "cast":
                imm2[0] = float(int(imm2[0]))
            imms += imm2
            if last.get(it[1], -1) < idx:  # a value nothing reads (cannot happen after dead-code removal)
                free.append(r)
    if len(code) > MAX_CODE:
        raise LoweringError(f"pointwise program needs {len(code)} native instructions (limit {MAX_CODE})")
    nreg = next((n for n in NREG_CHOICES if used <= n), None)
    if nreg is None:
        raise LoweringError(f"pointwise program needs {used} live registers (limit {NREG_CHOICES[-1]})")
    return Encoded(nreg, code, imms)


def emit_pointwise(ctx: LowerCtx, program: pp.Program, inputs: Sequence[int], in_shapes: Sequence[Sequence[int]],
                   outputs: Sequence[int], out_shape: Sequence[int], name: str = "") -> None:
    """Emit one ``pointwise`` layer: `inputs` (tensor ids) broadcast from `in_shapes` (their logical shapes,
    which may differ from the tensors' shapes by extent-1 dims) to `out_shape`."""
    enc = encode_program(program)
    if len(inputs) != program.n_inputs:
        raise LoweringError(f"pointwise program of '{name}' reads {program.n_inputs} inputs, {len(inputs)} given")
    strides = [broadcast_strides(s, out_shape, f"input {k} of '{name}'") for k, s in enumerate(in_shapes)]
    dims, cstrides = collapse(out_shape, strides)
    ints = [0 if program.compute == "float" else 1, enc.nreg, len(dims), len(enc.code)] + dims
    for s in cstrides:
        ints += s
    for row in enc.code:
        ints += row
    ctx.emit(KERNEL, list(inputs), list(outputs), ints=ints, floats=enc.imms, name=name,
             meta={"program": program.to_json()})


def _lower_program(ctx: LowerCtx, node: Node, program: pp.Program, in_values: Sequence[Value],
                   in_shapes: Sequence[Sequence[int]] | None = None) -> None:
    outs = list(node.outputs)
    if len(outs) != len(program.outputs):
        raise LoweringError(f"node '{node.name}' ({node.key}) has {len(outs)} outputs but its program stores "
                            f"{len(program.outputs)}")
    for v, (_, t) in zip(outs, program.outputs):
        if v.dtype != t:
            raise LoweringError(f"node '{node.name}' ({node.key}): output '{v.name}' is {dtype_name(v.dtype)} but "
                                f"the program stores {dtype_name(t)}")
    out_shape = shape_of(outs[0])
    for v in outs[1:]:
        if shape_of(v) != out_shape:
            raise LoweringError(f"node '{node.name}' ({node.key}): outputs have different shapes")
    shapes = [shape_of(v) for v in in_values] if in_shapes is None else [tuple(s) for s in in_shapes]
    try:
        np.broadcast_shapes(*shapes, out_shape)
    except ValueError:
        raise LoweringError(f"node '{node.name}' ({node.key}): input shapes {shapes} do not broadcast to the "
                            f"output shape {list(out_shape)}") from None
    if foldable(ctx, node):
        arrays = [np.asarray(ctx.const_value(v)).reshape(s) for v, s in zip(in_values, shapes)]
        results = pp.run(program, arrays)
        for v, arr in zip(outs, results):
            ctx.constant(v, np.broadcast_to(arr, out_shape))
        return
    try:
        emit_pointwise(ctx, program, [ctx.tensor(v) for v in in_values], shapes, [ctx.tensor(v) for v in outs],
                       out_shape, node.name)
    except ValueError as e:  # Program.validate / encoding limits
        if isinstance(e, LoweringError) and node.name in str(e):
            raise
        raise LoweringError(f"node '{node.name}' ({node.key}): {e}") from None


@lowering("ep_trtpy::Pointwise")
def lower_pointwise(ctx: LowerCtx, node: Node) -> None:
    """An ep_trtpy::Pointwise node (attribute ``program``, see pointwise_program.py)."""
    text = node.attr("program")
    if not isinstance(text, str):
        raise LoweringError(f"node '{node.name}' (ep_trtpy::Pointwise) has no 'program' attribute")
    if any(v is None for v in node.inputs):
        raise LoweringError(f"node '{node.name}' (ep_trtpy::Pointwise) has an absent input")
    try:
        program = pp.Program.from_json(text, len(node.inputs))
    except (ValueError, KeyError) as e:
        raise LoweringError(f"node '{node.name}' (ep_trtpy::Pointwise): {e}") from None
    _lower_program(ctx, node, program, [v for v in node.inputs if v is not None])


def lower_elementwise(ctx: LowerCtx, node: Node) -> None:
    """A plain ONNX elementwise node, through its one-node program."""
    got = program_for_node(node)
    if got is None:
        raise LoweringError(f"node '{node.name}' ({node.op_type}) has no pointwise program for its dtypes/attributes")
    program, idx = got
    values = [node.inputs[i] for i in idx]
    _lower_program(ctx, node, program, [v for v in values if v is not None])


for _op in sorted(ELEMENTWISE_OPS):
    lowering(_op)(lower_elementwise)
