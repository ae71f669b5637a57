"""fuse_pointwise: merge producer -> consumer chains of ep_trtpy::Pointwise nodes into one program.

Math: if P computes p = f(a...) and C computes y = g(p, b...) elementwise over the same index space (P's output
shape equals C's output shape), then y[i] = g(f(a[.](i)), b[.](i)) can be evaluated in registers by one program,
and p need not be written to memory unless someone else reads it. P's store-and-reload of p converts it to its
stored dtype; where that changes the value's meaning (integer truncation, bool as != 0) the merged program
reproduces it with a ``cast`` instruction. A float16 intermediate is not rounded: inside a fused kernel it stays in
float32, which is at least as accurate (as TensorRT's fused kernels do), and the reference and GPU backends run the
same merged program.

Match: a Pointwise C reading an output of a Pointwise P, where
  * P's outputs have C's output shape (no fusion across a broadcast, which would change the iteration space),
  * P and C use the same compute type ("float" or "int64"),
  * merging creates no cycle (no other path from P to C),
  * the merged program fits the kernel: MAX_INPUTS inputs, MAX_OUTPUTS outputs, MAX_CODE instructions and
    MAX_REGS registers after register allocation.
An output of P that is used elsewhere (or is a graph output) becomes an extra output of the merged node.

Refusal: any of the conditions above, with a sentence naming the value and the limit.

Rewrite: one Pointwise node (at C's place) whose program is the composition, with dead instructions removed,
duplicate inputs shared, inputs that only fed removed code dropped (unless they decide the broadcast shape), and
registers re-allocated by liveness (a register is reused as soon as its last reader has run).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ep_trtpy.builder.passes._patterns import DOMAIN, is_internal, replace_nodes
from ep_trtpy.builder.pipeline import PassContext
from ep_trtpy.ops.pointwise_program import MAX_CODE, MAX_INPUTS, MAX_OUTPUTS, MAX_REGS, OPS, Program
from graph_partitioner.ir import FLOAT, FLOAT16, INT64, Graph, Node, Value, dtype_name

NAME = "fuse_pointwise"


class _Refuse(Exception):
    pass


@dataclass
class Instr:
    op: str
    dst: int
    srcs: list[int]
    imms: list


@dataclass
class SSA:
    """A program with single-assignment ids: inputs are ids 0..len(inputs)-1, each instruction defines a new id."""

    compute: str
    inputs: list[Value] = field(default_factory=list)
    code: list[Instr] = field(default_factory=list)
    outputs: list[tuple[int, int, Value]] = field(default_factory=list)  # (id, dtype, value)
    next_id: int = 0

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def input_id(self, v: Value) -> int:
        for k, u in enumerate(self.inputs):
            if u is v:
                return self._input_ids[k]
        self.inputs.append(v)
        i = self.new_id()
        self._input_ids.append(i)
        return i

    def __post_init__(self) -> None:
        self._input_ids: list[int] = []


def program_of(node: Node) -> Program:
    n_in = len(node.inputs)
    return Program.from_json(str(node.attr("program")), n_in)


def _append(dst: SSA, node: Node, prog: Program, env: dict[int, int]) -> dict[int, int]:
    """Append node's program to dst. `env` maps value ids (id(Value)) already computed in dst to dst ids;
    returns the dst ids of the node's outputs by id(Value)."""
    reg: dict[int, int] = {}
    for r, v in enumerate(node.inputs):
        assert v is not None
        reg[r] = env[id(v)] if id(v) in env else dst.input_id(v)
    for ins in prog.code:
        op = ins[0]
        n_src, _ = OPS[op]
        srcs = [reg[r] for r in ins[2:2 + n_src]]
        d = dst.new_id()
        dst.code.append(Instr(op, d, srcs, list(ins[2 + n_src:])))
        reg[ins[1]] = d
    return {id(v): reg[r] for (r, _t), v in zip(prog.outputs, node.outputs)}


def _stored(dst: SSA, src_id: int, dtype: int) -> int:
    """The id of a value after the store/load round trip through `dtype` (a cast where the type changes the value's
    meaning; float16 intermediates stay float32)."""
    if dtype in (FLOAT, FLOAT16) and dst.compute == "float":
        return src_id
    if dst.compute == "int64" and dtype == INT64:  # exact
        return src_id
    d = dst.new_id()
    dst.code.append(Instr("cast", d, [src_id], [int(dtype)]))
    return d


def merge(graph: Graph, p: Node, c: Node) -> tuple[Program, list[Value], list[Value]]:
    """The merged program of P feeding C, its inputs and its outputs."""
    pp, pc = program_of(p), program_of(c)
    if pp.compute != pc.compute:
        raise _Refuse(f"'{p.name}' computes in {pp.compute} and '{c.name}' in {pc.compute}")
    ssa = SSA(pc.compute)
    p_out = _append(ssa, p, pp, {})
    env: dict[int, int] = {}
    for (r, t), v in zip(pp.outputs, p.outputs):
        if any(n is c for n, _ in v.consumers):
            env[id(v)] = _stored(ssa, p_out[id(v)], t)
    c_out = _append(ssa, c, pc, env)
    for (_r, t), v in zip(pc.outputs, c.outputs):
        ssa.outputs.append((c_out[id(v)], t, v))
    for (_r, t), v in zip(pp.outputs, p.outputs):
        if graph.is_graph_output(v) or any(n is not c for n, _ in v.consumers):
            ssa.outputs.append((p_out[id(v)], t, v))
    shape = c.outputs[0].shape
    return allocate(ssa, tuple(shape) if shape is not None else None)


def allocate(ssa: SSA, shape: tuple[int, ...] | None) -> tuple[Program, list[Value], list[Value]]:
    """Dead-code elimination, input pruning and linear-scan register allocation."""
    live = {i for i, _, _ in ssa.outputs}
    kept: list[Instr] = []
    for ins in reversed(ssa.code):
        if ins.dst in live:
            kept.append(ins)
            live.update(ins.srcs)
    kept.reverse()
    in_ids = list(ssa._input_ids)
    inputs = list(ssa.inputs)
    # drop inputs nothing reads, as long as the remaining ones still broadcast to the output shape
    for k in reversed(range(len(inputs))):
        if in_ids[k] in live or len(inputs) == 1:
            continue
        rest = [v.shape for j, v in enumerate(inputs) if j != k]
        if shape is not None and all(s is not None for s in rest) and \
                tuple(np.broadcast_shapes(*[tuple(s) for s in rest])) == shape:  # type: ignore[misc]
            del inputs[k], in_ids[k]
    if len(inputs) > MAX_INPUTS:
        raise _Refuse(f"the merged program would read {len(inputs)} inputs (limit {MAX_INPUTS})")
    if len(ssa.outputs) > MAX_OUTPUTS:
        raise _Refuse(f"the merged program would write {len(ssa.outputs)} outputs (limit {MAX_OUTPUTS})")
    if len(kept) > MAX_CODE:
        raise _Refuse(f"the merged program would need {len(kept)} instructions (limit {MAX_CODE})")
    end = len(kept)
    last: dict[int, int] = {}
    for i, ins in enumerate(kept):
        for s in ins.srcs:
            last[s] = i
    for i, _, _ in ssa.outputs:
        last[i] = end
    reg: dict[int, int] = {}
    free: set[int] = set()
    for k, i in enumerate(in_ids):
        reg[i] = k
        if i not in last:
            free.add(k)
    top = len(in_ids)
    code: list[list] = []
    for idx, ins in enumerate(kept):
        srcs = [reg[s] for s in ins.srcs]
        for s in set(ins.srcs):
            if last.get(s) == idx:
                free.add(reg[s])
        if free:
            d = min(free)
            free.discard(d)
        else:
            d = top
            top += 1
        reg[ins.dst] = d
        if ins.dst not in last:  # defined but never read (cannot happen after DCE)
            free.add(d)
        code.append([ins.op, d, *srcs, *ins.imms])
    if top > MAX_REGS:
        raise _Refuse(f"the merged program would need {top} registers (limit {MAX_REGS})")
    prog = Program(len(in_ids), ssa.compute, code, [(reg[i], t) for i, t, _ in ssa.outputs])
    prog.validate()
    return prog, inputs, [v for _, _, v in ssa.outputs]


def _depends_on(graph: Graph, values: list[Value], p: Node, pos: dict[int, int]) -> bool:
    """True if any of `values` is computed (transitively) from an output of p."""
    stack = [v.producer for v in values if v.producer is not None]
    seen: set[int] = set()
    lo = pos[id(p)]
    while stack:
        n = stack.pop()
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        if n is p:
            return True
        if pos.get(id(n), -1) <= lo:
            continue
        stack.extend(v.producer for v in n.inputs if v is not None and v.producer is not None)
    return False


def _try_merge(graph: Graph, c: Node, ctx: PassContext) -> Node | None:
    pos = {id(n): i for i, n in enumerate(graph.nodes)}
    for v in c.inputs:
        p = v.producer if v is not None else None
        if not is_internal(p, "Pointwise") or p is c:
            continue
        assert p is not None and v is not None
        if any(o.shape != c.outputs[0].shape for o in p.outputs):
            ctx.refuse(f"'{v.name}' {list(v.shape or ())} from '{p.name}' is broadcast by '{c.name}' to "
                       f"{list(c.outputs[0].shape or ())}; not fused across a broadcast")
            continue
        others = [u for u in c.inputs if u is not None and u.producer is not p]
        if _depends_on(graph, others, p, pos):
            ctx.refuse(f"'{p.name}' and '{c.name}' are not fused: '{c.name}' also depends on '{p.name}' through "
                       f"other nodes")
            continue
        try:
            prog, ins, outs = merge(graph, p, c)
        except _Refuse as e:
            ctx.refuse(f"'{p.name}' is not fused into '{c.name}': {e}")
            continue
        extra_early = any(pos.get(id(n), 0) < pos[id(c)] for o in outs for n, _ in o.consumers if n is not c)
        merged = replace_nodes(graph, [p, c], "Pointwise", ins, outs, {"program": prog.to_json()}, domain=DOMAIN,
                               name=c.name)
        if extra_early:
            graph.toposort()
        ctx.record_fusion(merged.name, [p, c])
        return merged
    return None


def run(graph: Graph, ctx: PassContext) -> bool:
    changed = False
    i = 0
    while i < len(graph.nodes):
        node = graph.nodes[i]
        if is_internal(node, "Pointwise"):
            merged = _try_merge(graph, node, ctx)
            while merged is not None:
                changed = True
                node = merged
                merged = _try_merge(graph, node, ctx)
            i = next(k for k, n in enumerate(graph.nodes) if n is node)
        i += 1
    return changed


def describe(node: Node) -> str:
    """A one-line summary of a Pointwise node's program (for logs and inspect)."""
    prog = program_of(node)
    ops = [ins[0] for ins in prog.code]
    outs = ", ".join(dtype_name(t) for _, t in prog.outputs)
    return f"{len(prog.code)} ops [{' '.join(ops)}] -> {outs}"
