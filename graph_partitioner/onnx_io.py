"""The edges of the IR: ONNX protobuf in and out, and the shim's JSON graph document in.

* :func:`graph_from_onnx` reads a ``ModelProto`` (or a path). Initializers become constant values
  (``Value.const``), ``Constant`` nodes stay nodes (their output also carries the array in ``Value.const``, so rules
  and analyses see it as a constant), attributes become plain Python values (see ``ir.py``), GRAPH and other
  attributes that have no plain form become :class:`OpaqueAttr`. When value types are missing, ONNX shape inference
  runs first so that intermediate values get dtypes and shapes.
* :func:`graph_to_onnx` writes a ``ModelProto``: constants without a producer become initializers, nodes of internal
  domains (``ep_trtpy``) get an opset import, and the result passes ``onnx.checker`` for standard ops.
* :func:`graph_from_export` reads the JSON document exported by the ORT shim (schema in ``ep_trtpy/_host.py``).

Naming: nodes without a name get ``<op_type>_<position>``, and a name already taken gets ``__<position>`` appended,
so node names are unique (the partition report keys its reasons by node name). Absent optional outputs (``""``)
at the end of a node's output list are dropped; one followed by a present output becomes a fresh value with no
consumers (ONNX allows naming an output nobody reads).

Graph inputs that are also initializers (IR version < 4 style) are constants here, not runtime inputs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from graph_partitioner.ir import BFLOAT16, Graph, Node, Shape, Value, elem_type, np_dtype

log = logging.getLogger("graph_partitioner")

INTERNAL_DOMAINS = {"ep_trtpy": 1}
"""Domains of ops made by our own passes, with the opset version we write for them."""


class OpaqueAttr:
    """An attribute with no plain Python form (GRAPH, GRAPHS, SPARSE_TENSOR, TYPE_PROTO, or unknown).

    ``kind`` names the attribute type ("graph", "graphs", ...). ``proto`` keeps the ``onnx.AttributeProto`` when
    the attribute came from protobuf, so :func:`graph_to_onnx` can write it back; it is ``None`` for attributes
    from the shim's export, which carries no value for them. ``outer_names`` are the values of the enclosing graph
    that a subgraph reads (implicit inputs of If/Loop/Scan): the partitioner treats them as dependencies, since a
    cluster must not both feed such a node implicitly and depend on it. No support rule accepts a node holding one.
    """

    __slots__ = ("kind", "proto", "outer_names")

    def __init__(self, kind: str, proto: Any = None, outer_names: Sequence[str] = ()):
        self.kind = kind
        self.proto = proto
        self.outer_names = tuple(outer_names)

    def __repr__(self) -> str:
        return f"OpaqueAttr({self.kind})"


# --------------------------------------------------------------------------------------------- helpers --

def _norm_domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


def _unique_node_name(name: str, op_type: str, position: int, taken: set[str]) -> str:
    out = name or f"{op_type}_{position}"
    if out in taken:
        out = f"{out}__{position}"
        while out in taken:
            out += "_"
    taken.add(out)
    return out


def _since_version(op_type: str, domain: str, opsets: Mapping[str, int]) -> int | None:
    """The since_version of the schema this node resolves to under the model's opset imports (None if unknown)."""
    import onnx.defs

    version = opsets.get(domain)
    if version is None:
        return None
    try:
        return int(onnx.defs.get_schema(op_type, version, domain).since_version)
    except Exception:  # noqa: BLE001 - unknown op or domain: the rule refuses it anyway
        return None


def _attr_to_python(attr: Any, base_dir: str) -> Any:
    """One onnx.AttributeProto as a plain Python value (ir.py conventions)."""
    from onnx import AttributeProto, numpy_helper

    t = attr.type
    if t == AttributeProto.INT:
        return int(attr.i)
    if t == AttributeProto.FLOAT:
        return float(attr.f)
    if t == AttributeProto.STRING:
        return attr.s.decode("utf-8", errors="replace")
    if t == AttributeProto.INTS:
        return [int(x) for x in attr.ints]
    if t == AttributeProto.FLOATS:
        return [float(x) for x in attr.floats]
    if t == AttributeProto.STRINGS:
        return [s.decode("utf-8", errors="replace") for s in attr.strings]
    if t == AttributeProto.TENSOR:
        return numpy_helper.to_array(attr.t, base_dir)
    kinds = {AttributeProto.GRAPH: "graph", AttributeProto.GRAPHS: "graphs",
             AttributeProto.SPARSE_TENSOR: "sparse_tensor", AttributeProto.SPARSE_TENSORS: "sparse_tensors",
             AttributeProto.TENSORS: "tensors", AttributeProto.TYPE_PROTO: "type_proto",
             AttributeProto.TYPE_PROTOS: "type_protos"}
    copy = AttributeProto()
    copy.CopyFrom(attr)
    subgraphs = [attr.g] if t == AttributeProto.GRAPH else list(attr.graphs) if t == AttributeProto.GRAPHS else []
    outer: set[str] = set()
    for sg in subgraphs:
        outer |= outer_names(sg)
    return OpaqueAttr(kinds.get(t, "unknown"), copy, sorted(outer))


def outer_names(graph: Any) -> set[str]:
    """Names a GraphProto reads from enclosing scopes (used by its nodes, nested subgraphs or outputs, defined by
    none of its inputs, initializers and node outputs)."""
    from onnx import AttributeProto

    defined = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    defined |= {t.values.name for t in graph.sparse_initializer}
    used: set[str] = set()
    for n in graph.node:
        used.update(i for i in n.input if i)
        for a in n.attribute:
            if a.type == AttributeProto.GRAPH:
                used |= outer_names(a.g)
            elif a.type == AttributeProto.GRAPHS:
                for sg in a.graphs:
                    used |= outer_names(sg)
        defined.update(o for o in n.output if o)
    used.update(o.name for o in graph.output)
    return used - defined


def _sparse_to_dense(sparse: Any, base_dir: str) -> np.ndarray:
    """A SparseTensorProto as a dense numpy array (indices are linear [NNZ] or coordinates [NNZ, rank])."""
    from onnx import numpy_helper

    values = numpy_helper.to_array(sparse.values, base_dir)
    indices = numpy_helper.to_array(sparse.indices, base_dir).astype(np.int64)
    dims = tuple(int(d) for d in sparse.dims)
    dense = np.zeros(dims, dtype=values.dtype)
    if indices.ndim == 1:
        dense.reshape(-1)[indices] = values
    else:
        dense[tuple(indices.T)] = values
    return dense


def _type_of(value_info: Any) -> tuple[int | None, Shape]:
    """(dtype, shape) of a ValueInfoProto; non-tensor types (sequences, maps, optionals) are (None, None)."""
    tp = value_info.type
    if tp.WhichOneof("value") != "tensor_type":
        return None, None
    tt = tp.tensor_type
    dtype = int(tt.elem_type) or None
    if not tt.HasField("shape"):
        return dtype, None
    dims: list[int | str | None] = []
    for d in tt.shape.dim:
        which = d.WhichOneof("value")
        if which == "dim_value":
            dims.append(int(d.dim_value))
        elif which == "dim_param" and d.dim_param:
            dims.append(str(d.dim_param))
        else:
            dims.append(None)
    return dtype, tuple(dims)


def _needs_inference(g: Any) -> bool:
    """True if some node output has no type information in the graph."""
    typed = {vi.name for vi in list(g.value_info) + list(g.output) + list(g.input)}
    typed.update(t.name for t in g.initializer)
    return any(o and o not in typed for n in g.node for o in n.output)


def _infer(model: Any) -> Any:
    import onnx.shape_inference

    for data_prop in (True, False):
        try:
            return onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=data_prop)
        except Exception as e:  # noqa: BLE001 - inference is best effort; the partition works without it
            log.debug("ONNX shape inference (data_prop=%s) failed: %s", data_prop, e)
    log.info("ONNX shape inference failed; intermediate values keep unknown dtypes and shapes")
    return model


# ---------------------------------------------------------------------------------------- from ONNX --

def graph_from_onnx(model: Any, infer_shapes: bool = True) -> Graph:
    """The IR of an ONNX model (a ModelProto or a path to one); see the module docstring for conventions."""
    import onnx
    from onnx import numpy_helper

    model_path = ""
    if isinstance(model, (str, os.PathLike)):
        model_path = os.path.abspath(os.fspath(model))
        if not os.path.exists(model_path):
            raise FileNotFoundError(f"ONNX model '{model_path}' does not exist")
        model = onnx.load(model_path)
    if not isinstance(model, onnx.ModelProto):
        raise TypeError(f"graph_from_onnx expects an onnx.ModelProto or a path, got {type(model).__name__}")
    base_dir = os.path.dirname(model_path)
    if infer_shapes and _needs_inference(model.graph):
        model = _infer(model)
    g = model.graph

    opsets = {_norm_domain(o.domain): int(o.version) for o in model.opset_import}
    graph = Graph(g.name or "graph", opsets)
    graph.model_path = model_path

    types: dict[str, tuple[int | None, Shape]] = {}
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        types[vi.name] = _type_of(vi)

    for init in g.initializer:  # the proto's element type is kept (float8 and friends have no numpy twin here)
        graph.add_value(init.name, int(init.data_type) or None, const=numpy_helper.to_array(init, base_dir),
                        unique=False)
    for sp in g.sparse_initializer:
        graph.add_value(sp.values.name, int(sp.values.data_type) or None, const=_sparse_to_dense(sp, base_dir),
                        unique=False)

    def value(name: str) -> Value:
        v = graph.values.get(name)
        if v is None:
            dtype, shape = types.get(name, (None, None))
            v = graph.add_value(name, dtype, shape, unique=False)
        return v

    for vi in g.input:
        if vi.name not in graph.values:  # an input that is also an initializer stays a constant
            graph.inputs.append(value(vi.name))

    taken: set[str] = set()
    for pos, np_ in enumerate(g.node):
        domain = _norm_domain(np_.domain)
        attrs = {a.name: _attr_to_python(a, base_dir) for a in np_.attribute}
        name = _unique_node_name(np_.name, np_.op_type, pos, taken)
        inputs: list[Value | None] = [value(i) if i else None for i in np_.input]
        while inputs and inputs[-1] is None:
            inputs.pop()
        out_names = list(np_.output)
        while out_names and not out_names[-1]:
            out_names.pop()
        outputs = [value(o) if o else graph.add_value(f"{name}__absent_output{k}") for k, o in enumerate(out_names)]
        node = graph.add_node(np_.op_type, inputs, outputs, attrs=attrs, name=name, domain=domain,
                              since_version=_since_version(np_.op_type, domain, opsets))
        node.index = pos
        if np_.op_type == "Constant" and domain == "" and outputs:
            _set_constant_value(node)

    for vi in g.output:
        graph.outputs.append(value(vi.name))
    try:
        graph.toposort()
    except ValueError as e:
        raise ValueError(f"ONNX model '{model_path or g.name}' is not a DAG: {e}") from None
    return graph


def _set_constant_value(node: Node) -> None:
    """Give a Constant node's output its array (when the attribute has a dense form)."""
    a = node.attrs
    arr: np.ndarray | None = None
    if isinstance(a.get("value"), np.ndarray):
        arr = a["value"]
    elif "value_float" in a:
        arr = np.array(a["value_float"], dtype=np.float32)
    elif "value_floats" in a:
        arr = np.array(a["value_floats"], dtype=np.float32)
    elif "value_int" in a:
        arr = np.array(a["value_int"], dtype=np.int64)
    elif "value_ints" in a:
        arr = np.array(a["value_ints"], dtype=np.int64)
    if arr is None:
        return
    try:
        dtype = elem_type(arr.dtype)
    except ValueError:  # e.g. a float8 tensor (ml_dtypes): left to the Constant rule to refuse
        return
    out = node.outputs[0]
    out.const = arr
    out.dtype = dtype
    out.shape = tuple(int(d) for d in arr.shape)


# ------------------------------------------------------------------------------------------ to ONNX --

def _python_to_attr(node: Node, name: str, value: Any) -> Any:
    """A plain Python attribute value as an onnx.AttributeProto (empty lists take their type from the schema)."""
    from onnx import AttributeProto, helper, numpy_helper

    if isinstance(value, OpaqueAttr):
        if value.proto is None:
            raise ValueError(f"node '{node.name}' ({node.key}) has a {value.kind} attribute '{name}' with no "
                             f"stored value (it came from the shim's export), so it cannot be written as ONNX")
        out = AttributeProto()
        out.CopyFrom(value.proto)
        out.name = name
        return out
    if isinstance(value, np.ndarray):
        return helper.make_attribute(name, numpy_helper.from_array(value))
    if isinstance(value, (bool, np.bool_)):
        return helper.make_attribute(name, int(value))
    if isinstance(value, np.integer):
        return helper.make_attribute(name, int(value))
    if isinstance(value, np.floating):
        return helper.make_attribute(name, float(value))
    if isinstance(value, (list, tuple)):
        items = [int(x) if isinstance(x, (bool, np.integer)) else float(x) if isinstance(x, np.floating) else x
                 for x in value]
        if not items:
            return helper.make_attribute(name, [], attr_type=_schema_attr_type(node, name))
        if all(isinstance(x, int) for x in items):
            return helper.make_attribute(name, items, attr_type=AttributeProto.INTS)
        if all(isinstance(x, (int, float)) for x in items):
            return helper.make_attribute(name, [float(x) for x in items], attr_type=AttributeProto.FLOATS)
        if all(isinstance(x, str) for x in items):
            return helper.make_attribute(name, items, attr_type=AttributeProto.STRINGS)
        raise ValueError(f"node '{node.name}' ({node.key}) attribute '{name}' mixes types: {value!r}")
    if isinstance(value, (int, float, str, bytes)):
        return helper.make_attribute(name, value)
    raise ValueError(f"node '{node.name}' ({node.key}) attribute '{name}' has no ONNX form: "
                     f"{type(value).__name__}")


def _schema_attr_type(node: Node, name: str) -> Any:
    import onnx.defs
    from onnx import AttributeProto

    try:
        schema = onnx.defs.get_schema(node.op_type, node.since_version or onnx.defs.onnx_opset_version(),
                                      node.domain)
        return schema.attributes[name].type
    except Exception:  # noqa: BLE001 - internal op or unknown attribute: an empty INTS is the usual meaning
        return AttributeProto.INTS


def _value_info(v: Value) -> Any:
    from onnx import helper

    shape = None if v.shape is None else [d if isinstance(d, (int, str)) else None for d in v.shape]
    return helper.make_tensor_value_info(v.name, v.dtype or 0, shape)


def graph_to_onnx(graph: Graph, ir_version: int | None = None) -> Any:
    """An onnx.ModelProto of the graph (see the module docstring)."""
    from onnx import helper, numpy_helper

    nodes = []
    for n in graph.nodes:
        attrs = [_python_to_attr(n, k, v) for k, v in n.attrs.items()]
        np_ = helper.make_node(n.op_type, [v.name if v is not None else "" for v in n.inputs],
                               [v.name for v in n.outputs], name=n.name, domain=n.domain)
        np_.attribute.extend(attrs)
        nodes.append(np_)

    produced = {id(v) for n in graph.nodes for v in n.outputs}
    used: set[int] = {id(v) for n in graph.nodes for v in n.inputs if v is not None}
    used.update(id(v) for v in graph.outputs)
    initializers = [numpy_helper.from_array(np.asarray(v.const), v.name) for v in graph.values.values()
                    if v.const is not None and id(v) not in produced and id(v) in used]

    # Graph outputs are positional; a value listed twice gets an Identity so every output name is distinct.
    out_infos, seen = [], set()
    for v in graph.outputs:
        if v.name in seen:
            alias = graph.fresh_name(f"{v.name}_dup")
            while alias in seen:
                alias += "_"
            nodes.append(helper.make_node("Identity", [v.name], [alias], name=f"{alias}_identity"))
            info = _value_info(v)
            info.name = alias
            out_infos.append(info)
            seen.add(alias)
        else:
            out_infos.append(_value_info(v))
            seen.add(v.name)
    input_ids = {id(v) for v in graph.inputs}
    output_names = {v.name for v in graph.outputs}
    value_infos = [_value_info(v) for v in graph.values.values()
                   if id(v) in produced and v.name not in output_names and id(v) not in input_ids
                   and (v.dtype is not None or v.shape is not None)]
    g = helper.make_graph(nodes, graph.name or "graph", [_value_info(v) for v in graph.inputs], out_infos,
                          initializer=initializers, value_info=value_infos)

    opsets = dict(graph.opsets)
    opsets.setdefault("", 17)
    for n in graph.nodes:
        if n.domain not in opsets:
            opsets[n.domain] = INTERNAL_DOMAINS.get(n.domain, 1)
    opset_imports = [helper.make_opsetid(d, v) for d, v in sorted(opsets.items())]
    if ir_version is None:
        ir_version = max(helper.find_min_ir_version_for(opset_imports, ignore_unknown=True), 7)
    model = helper.make_model(g, opset_imports=opset_imports, producer_name="ep_trtpy.graph_partitioner")
    model.ir_version = ir_version
    return model


# ---------------------------------------------------------------------------------- from the export --

def _export_attr(node_name: str, name: str, spec: Mapping[str, Any], initializers: Sequence[np.ndarray]) -> Any:
    kind = spec.get("type")
    val = spec.get("value")
    if kind == "int":
        return int(val)
    if kind == "float":
        return float(val)
    if kind == "string":
        return str(val)
    if kind == "ints":
        return [int(x) for x in val]
    if kind == "floats":
        return [float(x) for x in val]
    if kind == "strings":
        return [str(x) for x in val]
    if kind == "bytes":  # a large STRING attribute (an EPContext node's engine), beside the document
        k = int(spec["index"])
        if not 0 <= k < len(initializers) or initializers[k] is None:
            raise ValueError(f"node '{node_name}': string attribute '{name}' refers to array {k}, which did not "
                             f"come with the graph document")
        return np.asarray(initializers[k], dtype=np.uint8).tobytes()
    if kind == "tensor":
        k = int(spec["index"])
        if not 0 <= k < len(initializers):
            raise ValueError(f"node '{node_name}': tensor attribute '{name}' refers to array {k}, but only "
                             f"{len(initializers)} arrays came with the graph document")
        if initializers[k] is None:  # data numpy cannot hold element by element (strings)
            return OpaqueAttr("tensor")
        return np.asarray(initializers[k])
    return OpaqueAttr(str(kind or "unknown"))


def _export_shape(spec: Mapping[str, Any]) -> Shape:
    shape = spec.get("shape")
    if shape is None:
        return None
    names = list(spec.get("dims") or [])
    dims: list[int | str | None] = []
    for k, d in enumerate(shape):
        d = int(d)
        if d >= 0:
            dims.append(d)
        else:
            sym = names[k] if k < len(names) else ""
            dims.append(str(sym) if sym else None)
    return tuple(dims)


def graph_from_export(doc: Mapping[str, Any] | str, initializers: Sequence[np.ndarray | None]) -> Graph:
    """The IR of the shim's JSON graph document (``ep_trtpy/_host.py`` has the schema).

    ``initializers[i]`` is the data of ``doc["initializers"][i]``; arrays beyond those are the data of tensor
    attributes, which refer to them by index. ``Node.index`` is the node's position in ``doc["nodes"]`` (what
    GetCapability answers with). Initializer data ``None`` (strings) gives a typed value without ``const``;
    bfloat16 data arriving as uint16 bits is viewed as bfloat16. ``outer_scope_values`` (a nested subgraph's reads
    from its parent) become graph inputs. An optional per-node ``"implicit_inputs": [name, ...]`` (values the
    node's own subgraphs read from this graph) is kept in its graph attributes' ``OpaqueAttr.outer_names``.
    """
    if isinstance(doc, (str, bytes)):
        doc = json.loads(doc)
    opsets = {_norm_domain(str(k)): int(v) for k, v in (doc.get("opsets") or {}).items()}
    graph = Graph(str(doc.get("name") or "graph"), opsets)
    graph.model_path = str(doc.get("model_path") or "")
    specs: Mapping[str, Any] = doc.get("values") or {}
    init_names = list(doc.get("initializers") or [])
    if len(initializers) < len(init_names):
        raise ValueError(f"graph '{graph.name}' names {len(init_names)} initializers but only "
                         f"{len(initializers)} arrays came with it")

    def value(name: str) -> Value:
        v = graph.values.get(name)
        if v is None:
            spec = specs.get(name) or {}
            dtype = int(spec.get("dtype") or 0) or None
            v = graph.add_value(name, dtype, _export_shape(spec), unique=False)
        return v

    for k, name in enumerate(init_names):
        spec = specs.get(name) or {}
        dtype = int(spec.get("dtype") or 0) or None
        if initializers[k] is None:  # data numpy cannot hold (strings): typed, but not a usable constant
            graph.add_value(name, dtype, _export_shape(spec), unique=False)
            continue
        arr = np.asarray(initializers[k])
        if dtype == BFLOAT16 and arr.dtype == np.uint16:  # the shim passes bfloat16 as its bits
            arr = arr.view(np_dtype(BFLOAT16))
        graph.add_value(name, dtype, const=arr, unique=False)
    for name in doc.get("inputs") or []:
        graph.inputs.append(value(name))
    for name in doc.get("outer_scope_values") or []:  # a nested subgraph's reads from its parent: inputs here
        v = value(name)
        if all(v is not u for u in graph.inputs):
            graph.inputs.append(v)

    taken: set[str] = set()
    for pos, nd in enumerate(doc.get("nodes") or []):
        op_type = str(nd["op_type"])
        domain = _norm_domain(str(nd.get("domain") or ""))
        name = _unique_node_name(str(nd.get("name") or ""), op_type, pos, taken)
        attrs = {k: _export_attr(name, k, spec, initializers) for k, spec in (nd.get("attrs") or {}).items()}
        implicit = [str(i) for i in nd.get("implicit_inputs") or [] if i]
        if implicit:  # optional key: values the node's subgraphs read from this graph
            for a in attrs.values():
                if isinstance(a, OpaqueAttr):
                    a.outer_names = tuple(implicit)
        inputs: list[Value | None] = [value(i) if i else None for i in nd.get("inputs") or []]
        while inputs and inputs[-1] is None:
            inputs.pop()
        out_names = list(nd.get("outputs") or [])
        while out_names and not out_names[-1]:
            out_names.pop()
        outputs = [value(o) if o else graph.add_value(f"{name}__absent_output{k}") for k, o in enumerate(out_names)]
        since = nd.get("since_version")
        node = graph.add_node(op_type, inputs, outputs, attrs=attrs, name=name, domain=domain,
                              since_version=int(since) if since else None)
        node.index = pos
        if op_type == "Constant" and domain == "" and outputs:
            _set_constant_value(node)

    for name in doc.get("outputs") or []:
        graph.outputs.append(value(name))
    try:
        graph.toposort()  # ORT's node order need not be topological after its own fusions
    except ValueError as e:
        raise ValueError(f"graph document '{graph.name}' is not a DAG: {e}") from None
    return graph
