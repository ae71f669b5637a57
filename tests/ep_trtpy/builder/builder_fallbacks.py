"""Test-only fallbacks for pieces other helpers write in parallel (graph_partitioner.onnx_io, partition). Each is
installed ONLY where the real one is missing, so once the real implementations land these tests run against them
unchanged.

    import builder_fallbacks
    builder_fallbacks.install()
    outs = builder_fallbacks.run(graph, {"x": x})       # list of arrays in graph-output order
"""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np

from graph_partitioner.ir import Graph, Value

_installed = False


def run(graph: Graph, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run through ep_trtpy.ops.executor.run_graph; a list in graph-output order."""
    from ep_trtpy.ops import executor

    out = executor.run_graph(graph, feeds)
    if isinstance(out, dict):
        return [np.asarray(out[v.name]) for v in graph.outputs]
    return [np.asarray(o) for o in out]


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
    _install_onnx_io()
    _install_partition()


__all__ = ["install", "run"]
