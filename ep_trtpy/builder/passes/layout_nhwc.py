"""layout_nhwc: 2-D convolutions compute channels-last (NHWC), converting layouts only at the edges of a region.

Math: with T = Transpose(perm [0, 2, 3, 1]) (NCHW -> NHWC), T' = Transpose(perm [0, 3, 1, 2]) its inverse and
A = [0, 3, 1, 2] (NCHW axis a sits at NHWC position A[a]):

    FusedConv(X, W, B, Z)          = T' FusedConv[channels_last](T X, W', B, T Z)    W' = transpose(W, [0, 2, 3, 1])
    f(T a, T b, c)                 = T f(a, b, c)       elementwise ops and ep_trtpy::Pointwise; a constant c of
                                                        rank <= 4 is right-aligned to rank 4 and transposed
    Pool[channels_last](T X)       = T MaxPool(X), T AveragePool(X)     (same window attributes)
    ReduceMean(T X, [1, 2], keepdims=1) = T GlobalAveragePool(X)        (ReduceMax: GlobalMaxPool)
    op(T X, axis A[a])             = T op(X, axis a)    Concat, Split, Slice (axes), Pad (pads permuted), Resize
                                                        (scales, sizes and roi permuted, or its axes remapped)
    T' T = identity;  Transpose(Transpose(x, p), q) = Transpose(x, [p[i] for i in q])

so the Transposes put around every convolution can be pushed through such ops until inverse pairs meet and cancel.
This pass computes the result directly: which values are channels-last, then one conversion per value where a
region meets the rest of the graph. A transpose that keeps the order of the axes of extent > 1 (N x 1 x 1 x C
after a global pool, a one-channel map) moves no bytes and is written as a Reshape (a free view in lowering).

Match: the engine computes 2-D convolutions in a 16-bit float type (float16 or bfloat16, after the precision pass)
or in float32 with tf32_enable (tensor cores need NHWC). Seeds: every 2-D ep_trtpy::FusedConv in such a type
with a constant W. Walking the nodes in order, a node joins the channels-last set when it reads a channels-last
value at a data input and is one of: an elementwise op or ep_trtpy::Pointwise (every operand of rank 4, a
constant of rank <= 4, or of extent 1 everywhere), 2-D MaxPool (Indices unused) / AveragePool,
GlobalAveragePool / GlobalMaxPool, Resize (constant roi/scales/sizes), Concat, Split (constant split), Slice
(constant starts/ends/axes/steps) and Pad (constant pads and axes), each on static rank-4 values. The connected
parts of that set are regions.

Refusal: a FusedConv stays NCHW, with a sentence naming it, when it is float32 without tf32_enable, not 2-D, or
its W is not a constant; a whole region stays NCHW when the byte-moving conversions at its edges would be at
least as many as its convolutions (each costs about what NHWC saves on one convolution; cuDNN converts an NCHW
convolution's operands internally anyway). Reshape, Flatten and every op not listed above are region edges.

Rewrite: region nodes compute channels-last (FusedConv: channels_last=1 and a KRSC weight; pools: ep_trtpy::Pool
with channels_last=1; global pools: ReduceMean/ReduceMax over axes [1, 2]; axis attributes and per-axis constants
permuted); their rank-4 values get NHWC shapes in place. A value entering a region is converted once (Transpose
[0, 2, 3, 1], or a Reshape; constants are transposed at build time) and a value leaving it is converted back once
for all its outside readers (Transpose [0, 3, 1, 2] or a Reshape); a graph output keeps its name. A model
Transpose reading a channels-last value absorbs the conversion into its perm. Finally a Transpose of a Transpose
becomes one Transpose, and an identity Transpose disappears. The names of the values left channels-last go to
``ctx.channels_last`` (``ep-trtpy compare --mark-all`` transposes them back before comparing).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from ep_trtpy.builder.passes._patterns import (DOMAIN, add_const, int64_const, is_internal, is_op, opset, rename,
                                               replace_nodes, reshape, static, transpose)
from ep_trtpy.builder.pipeline import PassContext
from ep_trtpy.ops.pointwise_ops import ELEMENTWISE_OPS
from ep_trtpy.ops.pooling import pool_plan
from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT16, Graph, Node, Value, dtype_name

NAME = "layout_nhwc"

TO_NHWC = (0, 2, 3, 1)
TO_NCHW = (0, 3, 1, 2)
AXIS = (0, 3, 1, 2)
"""AXIS[a]: the NHWC position of NCHW axis a."""
HALF_TYPES = (FLOAT16, BFLOAT16)


def _permuted(values: Sequence, perm: Sequence[int]) -> list:
    return [values[p] for p in perm]


def moves_bytes(shape: Sequence[int], perm: Sequence[int]) -> bool:
    """True when transposing `shape` by `perm` changes the byte order (the axes of extent > 1 change order)."""
    big = [p for p in perm if shape[p] != 1]
    return big != sorted(big)


def _rank4(v: Value | None) -> bool:
    return v is not None and static(v) and len(v.shape) == 4  # type: ignore[arg-type]


def _used(graph: Graph, v: Value) -> bool:
    return bool(v.consumers) or graph.is_graph_output(v)


def _consts(node: Node, first: int) -> bool:
    """Inputs from `first` on are constants or absent."""
    return all(v is None or v.const is not None for v in node.inputs[first:])


def _norm(axis: int, rank: int = 4) -> int:
    return int(axis) + rank if int(axis) < 0 else int(axis)


# ---------------------------------------------------------------------------------------------- matching --
def seed_refusal(node: Node, tf32: bool) -> str | None:
    """Why a FusedConv does not compute channels-last ("" when it already does), or None when it will."""
    x, w = node.input(0), node.input(1)
    if int(node.attr("channels_last", 0)):
        return ""
    if not (_rank4(x) and _rank4(w) and _rank4(node.outputs[0])):
        return f"FusedConv '{node.name}' stays NCHW: it is not a 2-D convolution with static shapes"
    assert w is not None and x is not None
    if w.const is None:
        return f"FusedConv '{node.name}' stays NCHW: its weight '{w.name}' is not a constant"
    if x.dtype in HALF_TYPES or (x.dtype == FLOAT and tf32):
        return None
    why = "float32 without tf32_enable has no tensor-core path" if x.dtype == FLOAT else \
        f"{dtype_name(x.dtype)} has no tensor-core path"
    return f"FusedConv '{node.name}' stays NCHW: {why}"


def _elementwise(graph: Graph, node: Node) -> list[int] | None:
    if not all(_rank4(o) for o in node.outputs):
        return None
    data = []
    for i, v in enumerate(node.inputs):
        if v is None:
            continue
        if not static(v) or len(v.shape) > 4:  # type: ignore[arg-type]
            return None
        if len(v.shape) < 4 and v.const is None and any(d != 1 for d in v.shape):  # type: ignore[arg-type]
            return None  # a runtime operand broadcast along some axes only: layout-dependent
        data.append(i)
    return data


def _pool(graph: Graph, node: Node) -> list[int] | None:
    ind = node.outputs[1] if len(node.outputs) > 1 else None
    ok = _rank4(node.input(0)) and _rank4(node.outputs[0]) and len(node.attr("kernel_shape", [])) == 2 \
        and int(node.attr("storage_order", 0)) == 0 and (ind is None or not _used(graph, ind))
    return [0] if ok else None


def _global_pool(graph: Graph, node: Node) -> list[int] | None:
    return [0] if _rank4(node.input(0)) else None


def _resize(graph: Graph, node: Node) -> list[int] | None:
    return [0] if _rank4(node.input(0)) and _rank4(node.outputs[0]) and _consts(node, 1) else None


def _concat(graph: Graph, node: Node) -> list[int] | None:
    ok = _rank4(node.outputs[0]) and all(_rank4(v) for v in node.inputs if v is not None)
    return [i for i, v in enumerate(node.inputs) if v is not None] if ok else None


def _split(graph: Graph, node: Node) -> list[int] | None:
    return [0] if _rank4(node.input(0)) and all(_rank4(o) for o in node.outputs) and _consts(node, 1) else None


_slice = _pad = _resize

DATA_INPUTS: dict[str, Callable[[Graph, Node], list[int] | None]] = {
    "MaxPool": _pool, "AveragePool": _pool, "GlobalAveragePool": _global_pool, "GlobalMaxPool": _global_pool,
    "Resize": _resize, "Concat": _concat, "Split": _split, "Slice": _slice, "Pad": _pad,
}


def data_inputs(graph: Graph, node: Node) -> list[int] | None:
    """The inputs that carry NCHW data when `node` can compute channels-last, else None."""
    if is_internal(node, "Pointwise") or (node.domain in ("", "ai.onnx") and node.op_type in ELEMENTWISE_OPS):
        return _elementwise(graph, node)
    check = DATA_INPUTS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
    return None if check is None else check(graph, node)


# ---------------------------------------------------------------------------------------------- regions --
class _Regions:
    """The channels-last nodes (id -> data inputs), the values they make, and their connected parts."""

    def __init__(self, graph: Graph, ctx: PassContext) -> None:
        self.graph = graph
        self.nodes: dict[int, list[int]] = {}
        self.values: set[int] = set()
        self.convs: list[Node] = []
        for node in graph.nodes:
            if is_internal(node, "FusedConv"):
                why = seed_refusal(node, ctx.tf32)
                if why is None:
                    self._add(node, [0, 3])
                    self.convs.append(node)
                elif why:
                    ctx.refuse(why)
                continue
            data = data_inputs(graph, node)
            if data and any(id(node.input(i)) in self.values for i in data):
                self._add(node, data)
        self._keep_worthwhile(ctx)

    def _add(self, node: Node, data: list[int]) -> None:
        self.nodes[id(node)] = data
        self.values.update(id(o) for o in node.outputs)

    def _parts(self) -> dict[int, list[Node]]:
        parent: dict[int, int] = {k: k for k in self.nodes}

        def find(k: int) -> int:
            while parent[k] != k:
                parent[k] = parent[parent[k]]
                k = parent[k]
            return k

        for node in self.graph.nodes:
            for i in self.nodes.get(id(node), []):
                v = node.input(i)
                if v is not None and id(v) in self.values and v.producer is not None:
                    parent[find(id(node))] = find(id(v.producer))
        parts: dict[int, list[Node]] = {}
        for node in self.graph.nodes:
            if id(node) in self.nodes:
                parts.setdefault(find(id(node)), []).append(node)
        return parts

    def inside(self, node: Node, i: int) -> bool:
        return i in self.nodes.get(id(node), ())

    def conversions(self, part: list[Node]) -> int:
        """Byte-moving layout conversions at the edges of a region."""
        entering: dict[int, Value] = {}
        leaving: dict[int, Value] = {}
        for node in part:
            for i in self.nodes[id(node)]:
                v = node.input(i)
                if v is not None and id(v) not in self.values and v.const is None and len(v.shape) == 4 \
                        and moves_bytes(v.shape, TO_NHWC) and not is_op(v.producer, "Transpose"):  # type: ignore
                    entering[id(v)] = v
            for o in node.outputs:
                outside = self.graph.is_graph_output(o) or any(
                    not self.inside(c, i) and not is_op(c, "Transpose") for c, i in o.consumers)
                if outside and moves_bytes(_permuted(o.shape, TO_NHWC), TO_NCHW):  # type: ignore[arg-type]
                    leaving[id(o)] = o
        return len(entering) + len(leaving)

    def _keep_worthwhile(self, ctx: PassContext) -> None:
        for part in self._parts().values():
            convs = [n for n in part if is_internal(n, "FusedConv")]
            n_conv, n_conv_t = len(convs), self.conversions(part)
            if n_conv_t < n_conv:
                continue
            names = ", ".join(f"'{c.name}'" for c in convs[:3]) + (" ..." if n_conv > 3 else "")
            ctx.refuse(f"FusedConv {names} {'stays' if n_conv == 1 else 'stay'} NCHW: channels-last would need "
                       f"{n_conv_t} layout conversion{'s' * (n_conv_t != 1)} for {n_conv} "
                       f"convolution{'s' * (n_conv != 1)}")
            for node in part:
                del self.nodes[id(node)]
                self.values.difference_update(id(o) for o in node.outputs)
            self.convs = [c for c in self.convs if id(c) in self.nodes]


# ---------------------------------------------------------------------------------------------- rewrite --
class _Rewriter:
    def __init__(self, graph: Graph, regions: _Regions, ctx: PassContext) -> None:
        self.graph = graph
        self.regions = regions
        self.ctx = ctx
        self.rewrites = dict(REWRITES, FusedConv=functools.partial(_conv, ctx=ctx))
        self.nhwc_of: dict[int, Value] = {}
        self.nchw_of: dict[int, Value] = {}

    def to_nhwc(self, v: Value, before: Node) -> Value:
        """v (NCHW, or a constant broadcast against NCHW data) in NHWC form."""
        if id(v) in self.nhwc_of:
            return self.nhwc_of[id(v)]
        g = self.graph
        shape = tuple(v.static_shape)
        if (c := v.const) is not None:
            four = (1,) * (4 - len(shape)) + shape
            out = v if all(d == 1 for d in shape) else add_const(g, self.ctx.derived(
                ("to_nhwc", c, four), lambda: np.ascontiguousarray(np.asarray(c).reshape(four).transpose(TO_NHWC))),
                f"{v.name}_nhwc")
        elif len(shape) < 4 or tuple(_permuted(shape, TO_NHWC)) == shape:
            out = v  # extent 1 everywhere it moves
        elif moves_bytes(shape, TO_NHWC):
            out = transpose(g, v, TO_NHWC, before, hint=f"{v.name}_to_nhwc_")
        else:
            out = reshape(g, v, _permuted(shape, TO_NHWC), before, hint=f"{v.name}_to_nhwc_")
        self.nhwc_of[id(v)] = out
        return out

    def to_nchw(self, v: Value, before: Node | None) -> Value:
        """The NCHW form of channels-last value v (it takes v's name when v is a graph output)."""
        if id(v) in self.nchw_of:
            return self.nchw_of[id(v)]
        g = self.graph
        name = v.name
        if g.is_graph_output(v):
            rename(g, v, f"{name}_nhwc")
        nchw = tuple(_permuted(v.static_shape, TO_NCHW))
        if moves_bytes(v.static_shape, TO_NCHW):
            out = transpose(g, v, TO_NCHW, before, hint=f"{name}_to_nchw_")
        else:
            out = reshape(g, v, nchw, before, hint=f"{name}_to_nchw_")
        if g.is_graph_output(v):
            rename(g, out, name)
            g.outputs = [out if o is v else o for o in g.outputs]
        self.nchw_of[id(v)] = out
        return out

    def run(self) -> None:
        g = self.graph
        for node in list(g.nodes):
            data = self.regions.nodes.get(id(node))
            if data is None:
                self._outside(node)
                continue
            for i in data:
                v = node.input(i)
                if v is not None and id(v) not in self.regions.values:
                    g.set_input(node, i, self.to_nhwc(v, node))
            new = self.rewrites.get(node.op_type, _keep)(g, node)
            for o in new.outputs:
                if _rank4(o):
                    o.shape = tuple(_permuted(o.shape, TO_NHWC))  # type: ignore[arg-type]
        for v in list(g.outputs):
            if id(v) in self.regions.values:
                self.to_nchw(v, None)

    def _outside(self, node: Node) -> None:
        for i, v in enumerate(node.inputs):
            if v is None or id(v) not in self.regions.values:
                continue
            if is_op(node, "Transpose"):  # absorb the conversion into the model's own Transpose
                perm = [int(p) for p in node.attr("perm", [3, 2, 1, 0])]
                node.attrs["perm"] = [AXIS[p] for p in perm]
            else:
                self.graph.set_input(node, i, self.to_nchw(v, node))


def _keep(graph: Graph, node: Node) -> Node:
    return node


def _conv(graph: Graph, node: Node, ctx: PassContext) -> Node:
    w = node.inputs[1]
    assert w is not None and (c := w.const) is not None
    arr = ctx.derived(("transpose", c, TO_NHWC), lambda: np.ascontiguousarray(np.asarray(c).transpose(TO_NHWC)))
    krsc = add_const(graph, arr, f"{w.name}_krsc")
    graph.set_input(node, 1, krsc)
    node.attrs["channels_last"] = 1
    return node


def _pool_node(graph: Graph, node: Node) -> Node:
    x = node.inputs[0]
    assert x is not None
    kernel, strides, dils, begin, end, _ = pool_plan(node, x.static_shape)
    same = str(node.attr("auto_pad", "NOTSET")) in ("SAME_UPPER", "SAME_LOWER")
    attrs = {"mode": "max" if node.op_type == "MaxPool" else "average", "kernel_shape": kernel, "strides": strides,
             "pads": begin + end, "dilations": dils, "ceil_mode": 0 if same else int(node.attr("ceil_mode", 0)),
             "channels_last": 1}
    if node.op_type == "AveragePool":
        attrs["count_include_pad"] = int(node.attr("count_include_pad", 0))
    dead = node.outputs[1:]
    new = replace_nodes(graph, [node], "Pool", [x], node.outputs[:1], attrs, domain=DOMAIN, name=node.name)
    for v in dead:
        graph.values.pop(v.name, None)
    return new


def _global_pool_node(graph: Graph, node: Node) -> Node:
    op = "ReduceMean" if node.op_type == "GlobalAveragePool" else "ReduceMax"
    if opset(graph) >= 18:
        ins, attrs = [node.inputs[0], int64_const(graph, [1, 2], f"{node.name}_axes")], {"keepdims": 1}
    else:
        ins, attrs = [node.inputs[0]], {"keepdims": 1, "axes": [1, 2]}
    return replace_nodes(graph, [node], op, ins, node.outputs, attrs, name=node.name)


def _axis(graph: Graph, node: Node) -> Node:
    node.attrs["axis"] = AXIS[_norm(node.attr("axis", 0))]
    return node


def _set_const(graph: Graph, node: Node, i: int, values: Sequence, like: Value) -> None:
    graph.set_input(node, i, add_const(graph, np.asarray(values, dtype=np.asarray(like.const).dtype),
                                       f"{like.name}_nhwc"))


def _resize_node(graph: Graph, node: Node) -> Node:
    if node.attr("axes") is not None:
        node.attrs["axes"] = [AXIS[_norm(a)] for a in node.attrs["axes"]]
        return node
    old = node.since_version is not None and node.since_version < 11  # Resize-10: (X, scales)
    for i, v in enumerate(node.inputs[1:], start=1):
        if v is None or v.const is None or v.const.size == 0:
            continue
        vals = np.asarray(v.const).reshape(-1).tolist()
        is_roi = i == 1 and not old
        _set_const(graph, node, i, _permuted(vals[:4], TO_NHWC) + _permuted(vals[4:], TO_NHWC) if is_roi
                   else _permuted(vals, TO_NHWC), v)
    return node


def _slice_node(graph: Graph, node: Node) -> Node:
    if node.input(1) is None:  # Slice-1: attributes
        n = len(node.attr("starts", []))
        node.attrs["axes"] = [AXIS[_norm(a)] for a in node.attr("axes", list(range(n)))]
        return node
    starts = node.inputs[1]
    axes = node.input(3)
    given = np.asarray(axes.const).reshape(-1).tolist() if axes is not None else list(range(starts.const.size))
    graph.set_input(node, 3, int64_const(graph, [AXIS[_norm(a)] for a in given], f"{node.name}_axes_nhwc"))
    return node


def _pad_node(graph: Graph, node: Node) -> Node:
    axes = node.input(3)
    if axes is not None:  # Pad-18 axes: remap them, the pads follow the axes' order
        _set_const(graph, node, 3, [AXIS[_norm(a)] for a in np.asarray(axes.const).reshape(-1).tolist()], axes)
        return node
    pads = node.input(1)
    if pads is None:  # Pad-2: attribute
        p = [int(x) for x in node.attr("pads")]
        node.attrs["pads"] = _permuted(p[:4], TO_NHWC) + _permuted(p[4:], TO_NHWC)
        return node
    p = np.asarray(pads.const).reshape(-1).tolist()
    _set_const(graph, node, 1, _permuted(p[:4], TO_NHWC) + _permuted(p[4:], TO_NHWC), pads)
    return node


REWRITES: dict[str, Callable[[Graph, Node], Node]] = {  # FusedConv: _conv, which needs the context
    "MaxPool": _pool_node, "AveragePool": _pool_node, "GlobalAveragePool": _global_pool_node,
    "GlobalMaxPool": _global_pool_node, "Concat": _axis, "Split": _axis, "Resize": _resize_node,
    "Slice": _slice_node, "Pad": _pad_node,
}


# ---------------------------------------------------------------------------------------------- cleanup --
def _perm(node: Node) -> list[int] | None:
    x = node.input(0)
    if x is None or x.shape is None:
        return None
    return [int(p) for p in node.attr("perm", list(range(len(x.shape)))[::-1])]


def fold_transposes(graph: Graph) -> int:
    """Transpose(Transpose(x, p), q) -> Transpose(x, p[q]); identity Transposes removed. Returns nodes removed."""
    removed = 0
    for node in list(graph.nodes):
        if node not in graph.nodes or not is_op(node, "Transpose") or (q := _perm(node)) is None:
            continue
        first = node.inputs[0].producer  # type: ignore[union-attr]
        if is_op(first, "Transpose") and (p := _perm(first)) is not None:  # type: ignore[arg-type]
            graph.set_input(node, 0, first.inputs[0])  # type: ignore[union-attr]
            node.attrs["perm"] = q = [p[i] for i in q]
            if not _used(graph, first.outputs[0]):  # type: ignore[union-attr]
                graph.remove_node(first)  # type: ignore[arg-type]
                removed += 1
        if q == sorted(q):
            x, y = node.inputs[0], node.outputs[0]
            graph.replace_all_uses(y, x)  # type: ignore[arg-type]
            graph.remove_node(node)
            removed += 1
    return removed


def run(graph: Graph, ctx: PassContext) -> bool:
    regions = _Regions(graph, ctx)
    if not regions.convs:
        return False
    _Rewriter(graph, regions, ctx).run()
    fold_transposes(graph)
    ctx.channels_last.update(v.name for v in graph.values.values() if id(v) in regions.values)
    inserted = sum(1 for n in graph.nodes if is_op(n, "Transpose"))
    ctx.info("layout_nhwc: %d convolutions channels-last, %d Transposes in the graph", len(regions.convs), inserted)
    return True


