"""Test-only fallbacks for pieces other helpers write in parallel (op references/inference, the executor,
graph_partitioner.onnx_io, partition). Each is installed ONLY where the real one is missing, so once the real
implementations land these tests run against them unchanged.

    import builder_fallbacks
    builder_fallbacks.install()
    outs = builder_fallbacks.run(graph, {"x": x})       # list of arrays in graph-output order
"""

from __future__ import annotations

import math
import sys
import types
from typing import Any

import numpy as np

from graph_partitioner.ir import BOOL, FLOAT, INT64, Graph, Node, Value, elem_type, np_dtype

_installed = False


# ---------------------------------------------------------------------------------------- references --

def _bshape(*shapes):
    return tuple(int(d) for d in np.broadcast_shapes(*[tuple(s) for s in shapes]))


def _axes_of(node: Node, args: list, rank: int) -> list[int]:
    if "axes" in node.attrs:
        axes = list(node.attrs["axes"])
    elif len(args) > 1 and args[1] is not None:
        axes = [int(a) for a in np.asarray(args[1]).reshape(-1)]
    else:
        axes = []
    if not axes:
        return [] if node.attr("noop_with_empty_axes", 0) else list(range(rank))
    return sorted(a + rank if a < 0 else a for a in axes)


def _erf(x):
    from ep_trtpy.ops.pointwise_program import erf

    return erf(x)


def _conv(x, w, b, strides, pads, dil, group):
    n, c = x.shape[:2]
    nsp = x.ndim - 2
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + [(pads[i], pads[i + nsp]) for i in range(nsp)])
    k = w.shape[2:]
    out_sp = [(xp.shape[2 + i] - dil[i] * (k[i] - 1) - 1) // strides[i] + 1 for i in range(nsp)]
    m = w.shape[0]
    cg, mg = c // group, m // group
    y = np.zeros((n, m, *out_sp))
    for g in range(group):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = w[g * mg:(g + 1) * mg].astype(np.float64)
        for kidx in np.ndindex(*k):
            sl = tuple(slice(kidx[i] * dil[i], kidx[i] * dil[i] + strides[i] * (out_sp[i] - 1) + 1, strides[i])
                       for i in range(nsp))
            patch = xs[(slice(None), slice(None)) + sl]
            y[:, g * mg:(g + 1) * mg] += np.einsum("nc...,mc->nm...", patch, ws[(slice(None), slice(None)) + kidx])
    if b is not None:
        y += np.asarray(b, dtype=np.float64).reshape((1, -1) + (1,) * nsp)
    return y.astype(x.dtype)


def _conv_attrs(node: Node, x, w):
    nsp = x.ndim - 2
    strides = list(node.attr("strides", [1] * nsp))
    dil = list(node.attr("dilations", [1] * nsp))
    pads = list(node.attr("pads", [0] * 2 * nsp))
    auto = node.attr("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        from ep_trtpy.builder.passes.fuse_conv import explicit_pads

        pads = explicit_pads(node, x.shape, w.shape)["pads"]
    elif auto == "VALID":
        pads = [0] * 2 * nsp
    return strides, pads, dil, int(node.attr("group", 1))


def _conv_transpose(x, w, b, strides, pads, group):
    n, cin = x.shape[:2]
    nsp = x.ndim - 2
    k = w.shape[2:]
    cog = w.shape[1]
    cig = cin // group
    full = [(x.shape[2 + i] - 1) * strides[i] + k[i] for i in range(nsp)]
    y = np.zeros((n, cog * group, *full))
    for g in range(group):
        xs = x[:, g * cig:(g + 1) * cig].astype(np.float64)
        ws = w[g * cig:(g + 1) * cig].astype(np.float64)
        for kidx in np.ndindex(*k):
            sl = tuple(slice(kidx[i], kidx[i] + strides[i] * (x.shape[2 + i] - 1) + 1, strides[i]) for i in range(nsp))
            y[(slice(None), slice(g * cog, (g + 1) * cog)) + sl] += np.einsum(
                "nc...,cm->nm...", xs, ws[(slice(None), slice(None)) + kidx])
    crop = tuple(slice(pads[i], full[i] - pads[i + nsp]) for i in range(nsp))
    y = y[(slice(None), slice(None)) + crop]
    if b is not None:
        y += np.asarray(b, dtype=np.float64).reshape((1, -1) + (1,) * nsp)
    return y.astype(x.dtype)


def _gelu(x, approx):
    x64 = x.astype(np.float64)
    if approx == "tanh":
        return (0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3)))).astype(x.dtype)
    return (0.5 * x64 * (1 + _erf(x64 / math.sqrt(2)))).astype(x.dtype)


def _matmul(a, b, ta, tb, alpha):
    if ta:
        a = np.swapaxes(a, -1, -2)
    if tb:
        b = np.swapaxes(b, -1, -2)
    return alpha * np.matmul(a.astype(np.float64), b.astype(np.float64))


_UNARY = {"Relu": lambda x: np.maximum(x, 0), "Sqrt": np.sqrt, "Reciprocal": lambda x: 1 / x,
          "Erf": lambda x: _erf(x), "Tanh": np.tanh, "Neg": np.negative, "Exp": np.exp, "Abs": np.abs,
          "Sigmoid": lambda x: 1 / (1 + np.exp(-x)), "Identity": lambda x: x}
_BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Pow": np.power}
_CMP = {"Equal": np.equal, "Less": np.less, "Greater": np.greater}


def _ref(node: Node, *args):  # noqa: C901
    op = node.key
    a = args[0] if args else None
    if op in _UNARY:
        return np.asarray(_UNARY[op](a)).astype(a.dtype)
    if op in _BINARY:
        if op == "Div" and np.issubdtype(a.dtype, np.integer):
            return (a // args[1]).astype(a.dtype)
        return np.asarray(_BINARY[op](a, args[1])).astype(a.dtype)
    if op in _CMP:
        return _CMP[op](a, args[1])
    if op in ("Max", "Min"):
        fn = np.maximum if op == "Max" else np.minimum
        out = a
        for b in args[1:]:
            out = fn(out, b)
        return np.asarray(out).astype(a.dtype)
    if op == "Clip":
        lo = args[1] if len(args) > 1 and args[1] is not None else -np.inf
        hi = args[2] if len(args) > 2 and args[2] is not None else np.inf
        return np.minimum(np.maximum(a, lo), hi).astype(a.dtype)
    if op == "Cast":
        return a.astype(np_dtype(int(node.attr("to"))))
    if op == "Gelu":
        return _gelu(a, node.attr("approximate", "none"))
    if op == "Dropout":
        return (a, np.ones(a.shape, dtype=bool)) if len(node.outputs) > 1 else a
    if op in ("ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL2"):
        axes = tuple(_axes_of(node, list(args), a.ndim))
        kd = bool(node.attr("keepdims", 1))
        x = a.astype(np.float64)
        if not axes:
            return a
        r = {"ReduceMean": lambda: x.mean(axes, keepdims=kd), "ReduceSum": lambda: x.sum(axes, keepdims=kd),
             "ReduceSumSquare": lambda: (x * x).sum(axes, keepdims=kd),
             "ReduceL2": lambda: np.sqrt((x * x).sum(axes, keepdims=kd))}[op]()
        return np.asarray(r).astype(a.dtype)
    if op == "LayerNormalization":
        axis = int(node.attr("axis", -1))
        axis = axis + a.ndim if axis < 0 else axis
        axes = tuple(range(axis, a.ndim))
        x = a.astype(np.float64)
        m = x.mean(axes, keepdims=True)
        v = ((x - m) ** 2).mean(axes, keepdims=True)
        y = (x - m) / np.sqrt(v + float(node.attr("epsilon", 1e-5))) * args[1]
        if len(args) > 2 and args[2] is not None:
            y = y + args[2]
        return y.astype(a.dtype)
    if op == "MatMul":
        return _matmul(a, args[1], 0, 0, 1.0).astype(a.dtype)
    if op == "Gemm":
        y = _matmul(a, args[1], node.attr("transA", 0), node.attr("transB", 0), float(node.attr("alpha", 1.0)))
        if len(args) > 2 and args[2] is not None:
            y = y + float(node.attr("beta", 1.0)) * args[2]
        return y.astype(a.dtype)
    if op == "ep_trtpy::FusedMatMul":
        y = _matmul(a, args[1], node.attr("transA", 0), node.attr("transB", 0), float(node.attr("alpha", 1.0)))
        if len(args) > 2 and args[2] is not None:
            y = y + args[2].astype(np.float64)
        act = node.attr("activation", "")
        if act == "Relu":
            y = np.maximum(y, 0)
        elif act in ("Gelu", "GeluTanh"):
            y = _gelu(y, "tanh" if act == "GeluTanh" else "none")
        return np.asarray(y).astype(a.dtype)
    if op == "Conv":
        strides, pads, dil, group = _conv_attrs(node, a, args[1])
        return _conv(a, args[1], args[2] if len(args) > 2 else None, strides, pads, dil, group)
    if op == "ep_trtpy::FusedConv":
        nsp = a.ndim - 2
        y = _conv(a, args[1], args[2] if len(args) > 2 else None, list(node.attr("strides")), list(node.attr("pads")),
                  list(node.attr("dilations", [1] * nsp)), int(node.attr("group", 1))).astype(np.float64)
        if len(args) > 3 and args[3] is not None:
            y = y + args[3]
        if node.attr("activation", "") == "Relu":
            y = np.maximum(y, 0)
        return y.astype(a.dtype)
    if op == "ConvTranspose":
        nsp = a.ndim - 2
        return _conv_transpose(a, args[1], args[2] if len(args) > 2 else None,
                               list(node.attr("strides", [1] * nsp)), list(node.attr("pads", [0] * 2 * nsp)),
                               int(node.attr("group", 1)))
    if op == "BatchNormalization":
        sc, b, m, v = (np.asarray(t, dtype=np.float64) for t in args[1:5])
        sh = (1, -1) + (1,) * (a.ndim - 2)
        eps = float(node.attr("epsilon", 1e-5))
        y = (a - m.reshape(sh)) / np.sqrt(v.reshape(sh) + eps) * sc.reshape(sh) + b.reshape(sh)
        return y.astype(a.dtype)
    if op == "Transpose":
        return np.transpose(a, node.attr("perm", None))
    if op == "Reshape":
        shape = [int(s) for s in args[1]]
        shape = [a.shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return a.reshape(shape)
    if op == "Flatten":
        ax = int(node.attr("axis", 1))
        return a.reshape(int(np.prod(a.shape[:ax])), -1)
    if op == "Expand":
        return np.broadcast_to(a, _bshape(a.shape, tuple(int(s) for s in args[1]))).copy()
    if op == "Tile":
        return np.tile(a, [int(r) for r in args[1]])
    if op == "Shape":
        return np.asarray(a.shape, dtype=np.int64)
    if op == "Concat":
        return np.concatenate([x for x in args if x is not None], axis=int(node.attr("axis")))
    if op == "Unsqueeze":
        axes = node.attr("axes") if "axes" in node.attrs else [int(x) for x in args[1]]
        out = a
        for ax in sorted(x + a.ndim + len(axes) if x < 0 else x for x in axes):
            out = np.expand_dims(out, ax)
        return out
    if op == "Gather":
        return np.take(a, args[1], axis=int(node.attr("axis", 0)))
    if op == "ConstantOfShape":
        val = node.attr("value", np.zeros(1, dtype=np.float32))
        return np.full([int(s) for s in a], np.asarray(val).reshape(-1)[0], dtype=np.asarray(val).dtype)
    if op == "Constant":
        return np.asarray(node.attr("value"))
    if op == "Softmax":
        ax = int(node.attr("axis", -1))
        e = np.exp(a - a.max(axis=ax, keepdims=True))
        return (e / e.sum(axis=ax, keepdims=True)).astype(a.dtype)
    if op == "Einsum":
        return np.einsum(node.attr("equation"), *[x for x in args if x is not None]).astype(a.dtype)
    if op == "ep_trtpy::Pointwise":
        from ep_trtpy.ops.pointwise_program import Program, run

        outs = run(Program.from_json(node.attr("program"), len(args)), list(args))
        return tuple(outs)
    raise NotImplementedError(op)


def _infer(node: Node, *infos):
    """Inference through the reference on zero-filled (or known) inputs: fine for these small tests."""
    from ep_trtpy.ops.registry import Info

    arrays = [None if i is None else (i.value if i.value is not None else np.zeros(i.shape, np_dtype(i.dtype)))
              for i in infos]
    if node.key == "ep_trtpy::Pointwise":
        from ep_trtpy.ops.pointwise_program import Program

        prog = Program.from_json(node.attr("program"), len(infos))
        shape = _bshape(*[i.shape for i in infos])
        return [Info(t, shape) for _, t in prog.outputs]
    with np.errstate(all="ignore"):
        outs = _ref(node, *arrays)
    outs = list(outs) if isinstance(outs, tuple) else [outs]
    known = all(i is None or i.value is not None for i in infos)
    res = []
    for o in outs:
        o = np.asarray(o)
        value = o if (known and node.op_type in ("Shape", "Constant", "Concat", "Gather", "Unsqueeze", "Cast")) \
            or node.op_type == "Shape" else None
        res.append(Info(elem_type(o.dtype), tuple(o.shape), value))
    return res


STUB_OPS = (list(_UNARY) + list(_BINARY) + list(_CMP) + [
    "Max", "Min", "Clip", "Cast", "Gelu", "Dropout", "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL2", "LayerNormalization",
    "MatMul", "Gemm", "ep_trtpy::FusedMatMul", "Conv", "ep_trtpy::FusedConv", "ConvTranspose", "BatchNormalization",
    "Transpose", "Reshape", "Flatten", "Expand", "Tile", "Shape", "Concat", "Unsqueeze", "Gather", "ConstantOfShape",
    "Constant", "Softmax", "Einsum", "ep_trtpy::Pointwise"])


def _install_registry() -> None:
    from ep_trtpy.ops import registry

    registry.all_ops()
    for key in STUB_OPS:
        e = registry._entry(key)
        if e.ref is None:
            e.ref = _ref
        if e.infer is None:
            e.infer = _infer


# ------------------------------------------------------------------------------------------ executor --

def run_graph_fallback(graph: Graph, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    from ep_trtpy.ops.registry import run_reference

    env: dict[int, np.ndarray] = {}
    for v in graph.values.values():
        if v.const is not None:
            env[id(v)] = v.const
    for v in graph.inputs:
        env[id(v)] = np.asarray(feeds[v.name])
    for n in graph.nodes:
        outs = run_reference(n, [None if v is None else env[id(v)] for v in n.inputs])
        for v, o in zip(n.outputs, outs):
            env[id(v)] = np.asarray(o)
    return [env[id(v)] for v in graph.outputs]


def run(graph: Graph, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run through ep_trtpy.ops.executor.run_graph (real or fallback); list in graph-output order."""
    from ep_trtpy.ops import executor

    out = executor.run_graph(graph, feeds)
    if isinstance(out, dict):
        return [np.asarray(out[v.name]) for v in graph.outputs]
    return [np.asarray(o) for o in out]


def _install_executor() -> None:
    try:
        import ep_trtpy.ops.executor  # noqa: F401
    except ImportError:
        mod = types.ModuleType("ep_trtpy.ops.executor")
        mod.run_graph = run_graph_fallback  # type: ignore[attr-defined]
        sys.modules["ep_trtpy.ops.executor"] = mod
        import ep_trtpy.ops as ops

        ops.executor = mod  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------- onnx_io --

def _attr_to_py(a: Any) -> Any:
    from onnx import AttributeProto, numpy_helper

    t = a.type
    if t == AttributeProto.INT:
        return int(a.i)
    if t == AttributeProto.FLOAT:
        return float(a.f)
    if t == AttributeProto.STRING:
        return a.s.decode()
    if t == AttributeProto.INTS:
        return [int(x) for x in a.ints]
    if t == AttributeProto.FLOATS:
        return [float(x) for x in a.floats]
    if t == AttributeProto.STRINGS:
        return [x.decode() for x in a.strings]
    if t == AttributeProto.TENSOR:
        return numpy_helper.to_array(a.t)
    return object()


def graph_to_onnx(graph: Graph, ir_version: int | None = None) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    def vi(v: Value):
        shape = None if v.shape is None else [d if isinstance(d, int) else None for d in v.shape]
        return helper.make_tensor_value_info(v.name, v.dtype or TensorProto.UNDEFINED, shape)

    nodes = []
    for n in graph.nodes:
        attrs = {k: (numpy_helper.from_array(np.asarray(v)) if isinstance(v, np.ndarray) else v)
                 for k, v in n.attrs.items()}
        nodes.append(helper.make_node(n.op_type, [v.name if v is not None else "" for v in n.inputs],
                                      [v.name for v in n.outputs], name=n.name, domain=n.domain, **attrs))
    inits = [numpy_helper.from_array(np.asarray(v.const), v.name) for v in graph.values.values()
             if v.const is not None and v.producer is None]
    g = helper.make_graph(nodes, graph.name, [vi(v) for v in graph.inputs], [vi(v) for v in graph.outputs], inits,
                          value_info=[vi(v) for v in graph.values.values()
                                      if v.producer is not None and not graph.is_graph_output(v)])
    opsets = [helper.make_opsetid(d, v) for d, v in graph.opsets.items()]
    domains = {n.domain for n in graph.nodes} - {""} - set(graph.opsets)
    opsets += [helper.make_opsetid(d, 1) for d in sorted(domains)]
    m = helper.make_model(g, opset_imports=opsets)
    if ir_version is not None:
        m.ir_version = ir_version
    return m


def graph_from_onnx(model: Any) -> Graph:
    import onnx
    from onnx import numpy_helper

    if isinstance(model, str):
        model = onnx.load(model)
    gp = model.graph
    g = Graph(gp.name or "graph", {o.domain: o.version for o in model.opset_import})

    def shape_of(vi):
        t = vi.type.tensor_type
        if not t.HasField("shape"):
            return t.elem_type, None
        return t.elem_type, tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                                  for d in t.shape.dim)

    def val(name: str) -> Value:
        if name not in g.values:
            g.add_value(name, unique=False)
        return g.values[name]

    for t in gp.initializer:
        g.add_value(t.name, const=numpy_helper.to_array(t), unique=False)
    for vi in list(gp.input) + list(gp.value_info) + list(gp.output):
        if vi.name in g.values and g.values[vi.name].const is not None:
            continue
        dt, sh = shape_of(vi)
        v = val(vi.name)
        v.dtype, v.shape = dt or None, sh
    g.inputs = [g.values[vi.name] for vi in gp.input if g.values[vi.name].const is None]
    for n in gp.node:
        ins = [val(x) if x else None for x in n.input]
        outs = [val(x) for x in n.output]
        g.add_node(n.op_type, ins, outs, {a.name: _attr_to_py(a) for a in n.attribute}, name=n.name or "",
                   domain=n.domain)
    g.outputs = [g.values[vi.name] for vi in gp.output]
    for i, n in enumerate(g.nodes):
        n.index = i
    return g


def graph_from_export(doc: dict, initializers) -> Graph:
    g = Graph(doc.get("name", "graph"), {k: int(v) for k, v in doc.get("opsets", {"": 17}).items()})
    g.model_path = doc.get("model_path", "")
    inits = dict(zip(doc.get("initializers", []), initializers))
    all_data = list(initializers)

    def val(name: str) -> Value:
        if name not in g.values:
            if name in inits:
                g.add_value(name, const=np.asarray(inits[name]), unique=False)
            else:
                info = doc.get("values", {}).get(name, {})
                shape = info.get("shape")
                dims = info.get("dims") or []
                if shape is not None:
                    shape = tuple(d if d >= 0 else ((dims[i] if i < len(dims) and dims[i] else None))
                                  for i, d in enumerate(shape))
                g.add_value(name, info.get("dtype") or None, shape, unique=False)
        return g.values[name]

    g.inputs = [val(n) for n in doc.get("inputs", [])]
    for i, nd in enumerate(doc.get("nodes", [])):
        attrs = {}
        for k, a in nd.get("attrs", {}).items():
            attrs[k] = np.asarray(all_data[a["index"]]) if a["type"] == "tensor" and "index" in a else a.get("value")
        node = g.add_node(nd["op_type"], [val(x) if x else None for x in nd["inputs"]],
                          [val(x) for x in nd["outputs"]], attrs, name=nd.get("name", ""),
                          domain=nd.get("domain", ""), since_version=nd.get("since_version"))
        node.index = i
    g.outputs = [val(n) for n in doc.get("outputs", [])]
    return g


def _install_onnx_io() -> None:
    try:
        import graph_partitioner.onnx_io  # noqa: F401
    except ImportError:
        mod = types.ModuleType("graph_partitioner.onnx_io")
        mod.graph_to_onnx = graph_to_onnx  # type: ignore[attr-defined]
        mod.graph_from_onnx = graph_from_onnx  # type: ignore[attr-defined]
        mod.graph_from_export = graph_from_export  # type: ignore[attr-defined]
        sys.modules["graph_partitioner.onnx_io"] = mod
        import graph_partitioner

        graph_partitioner.onnx_io = mod  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------------------- partition --

def _install_partition() -> None:
    from graph_partitioner import partition as pmod

    g = Graph("probe")
    try:
        pmod.partition(g, 1, ())
        return
    except NotImplementedError:
        pass

    def partition(graph: Graph, min_subgraph_size: int = 1, op_types_to_exclude=()):
        excl = set(op_types_to_exclude)
        claimed = [n for n in graph.nodes if n.op_type not in excl]
        res = pmod.PartitionResult(graph)
        res.reasons = {n.name: f"{n.op_type} is excluded by op_types_to_exclude" for n in graph.nodes
                       if n.op_type in excl}
        if len(claimed) >= min_subgraph_size and claimed:
            res.clusters = [claimed]
        return res

    pmod.partition = partition  # type: ignore[assignment]


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    _install_registry()
    _install_executor()
    _install_onnx_io()
    _install_partition()


__all__ = ["BOOL", "FLOAT", "INT64", "install", "run"]
