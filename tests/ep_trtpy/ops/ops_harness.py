"""Test harness for ep_trtpy.ops: one ONNX node, run by onnxruntime's CPU provider and by our reference.

:func:`check` builds a single-node model with onnx.helper (inputs marked constant become initializers, the rest
graph inputs), runs it in ORT's CPUExecutionProvider with graph optimizations off, runs
:func:`ep_trtpy.ops.registry.run_reference` on an IR node made from the same NodeProto, and compares dtypes, shapes
and values with per-dtype tolerances. It also checks :func:`run_infer` (dtypes and shapes against ORT's outputs;
values of constant-only nodes against ORT's numbers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from ep_trtpy.ops import registry
from ep_trtpy.ops.registry import Info
from graph_partitioner.ir import FLOAT, FLOAT16, Graph, Node, Value, dtype_name, elem_type

ort.set_default_logger_severity(3)

TOL = {
    np.dtype(np.float32): (1e-5, 1e-6),
    np.dtype(np.float16): (2e-3, 2e-3),
    np.dtype(np.float64): (1e-10, 1e-12),
}


@dataclass
class Case:
    """One parametrized test case: an op with inputs (None = absent optional input) and attributes."""

    id: str
    op: str
    inputs: list[np.ndarray | None]
    attrs: dict[str, Any] = field(default_factory=dict)
    opset: int = 17
    const: tuple[int, ...] = ()
    n_outputs: int = 1
    rtol: float | None = None
    atol: float | None = None
    domain: str = ""
    expected: list[np.ndarray] | None = None
    """The outputs ONNX defines, given where a supported onnxruntime is wrong (the case says which); else ORT's."""

    def __repr__(self) -> str:
        return self.id


def case(id: str, op: str, inputs: list, attrs: dict | None = None, **kw: Any) -> Case:
    return Case(id, op, [None if a is None else np.asarray(a) for a in inputs], dict(attrs or {}), **kw)


def attr_value(a: onnx.AttributeProto) -> Any:
    """An ONNX attribute as the IR's plain Python value."""
    v = helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, onnx.TensorProto):
        return numpy_helper.to_array(v)
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [x.decode() for x in v]
    return list(v) if isinstance(v, (list, tuple)) else v


def ir_node(proto: onnx.NodeProto, inputs: list[np.ndarray | None], const: tuple[int, ...], opset: int,
            out_dtypes: list[int | None] | None = None) -> Node:
    """The IR node of `proto` with Values carrying the inputs' dtypes/shapes (constants for `const`)."""
    try:
        since = onnx.defs.get_schema(proto.op_type, opset, proto.domain).since_version
    except Exception:  # internal ops have no schema
        since = None
    n = Node(proto.op_type, proto.name or proto.op_type.lower(), proto.domain,
             {a.name: attr_value(a) for a in proto.attribute}, since)
    for i, (name, a) in enumerate(zip(proto.input, inputs)):
        if a is None or not name:
            n.inputs.append(None)
            continue
        v = Value(name, const=a) if i in const else Value(name, elem_type(a.dtype), tuple(a.shape))
        v.consumers.append((n, i))
        n.inputs.append(v)
    for k, name in enumerate(proto.output):
        v = Value(name, None if out_dtypes is None else out_dtypes[k])
        v.producer = n
        n.outputs.append(v)
    return n


def make_model(c: Case, out_dtypes: list[int]) -> onnx.ModelProto:
    names = [f"x{i}" if a is not None else "" for i, a in enumerate(c.inputs)]
    while names and not names[-1]:
        names.pop()
    outs = [f"y{k}" for k in range(c.n_outputs)]
    node = helper.make_node(c.op, names, outs, name=f"{c.op.lower()}_node", domain=c.domain, **c.attrs)
    graph_inputs, inits = [], []
    for i, a in enumerate(c.inputs):
        if a is None:
            continue
        if i in c.const:
            inits.append(numpy_helper.from_array(a, f"x{i}"))
        else:
            graph_inputs.append(helper.make_tensor_value_info(f"x{i}", elem_type(a.dtype), list(a.shape)))
    graph_outputs = [helper.make_tensor_value_info(o, t, None) for o, t in zip(outs, out_dtypes)]
    g = helper.make_graph([node], "single", graph_inputs, graph_outputs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", c.opset)], ir_version=10)


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _ort_outputs(c: Case, out_dtypes: list[int]) -> list[np.ndarray]:
    """ORT's outputs for the case. Where ORT's CPU provider has no float16 kernel for the op, the float16 inputs
    are widened to float32, ORT runs that, and float16 outputs are rounded back: the definition of our float16
    semantics (compute in float32, round once)."""
    model = make_model(c, out_dtypes)
    feeds = {f"x{i}": a for i, a in enumerate(c.inputs) if a is not None and i not in c.const}
    try:
        return run_ort(model, feeds)
    except Exception as e:  # onnxruntime raises NotImplemented / Fail with this sentence
        has16 = any(a is not None and a.dtype == np.float16 for a in c.inputs)
        if not has16 or "Could not find an implementation" not in str(e):
            raise
    wide = Case(c.id, c.op, [None if a is None else (a.astype(np.float32) if a.dtype == np.float16 else a)
                             for a in c.inputs], c.attrs, c.opset, c.const, c.n_outputs, c.rtol, c.atol, c.domain)
    wide_dtypes = [FLOAT if t == FLOAT16 else t for t in out_dtypes]
    outs = run_ort(make_model(wide, wide_dtypes), {f"x{i}": a for i, a in enumerate(wide.inputs)
                                                   if a is not None and i not in wide.const})
    return [o.astype(np.float16) if t == FLOAT16 else o for o, t in zip(outs, out_dtypes)]


def infos_of(c: Case, with_values: bool) -> list[Info | None]:
    out: list[Info | None] = []
    for i, a in enumerate(c.inputs):
        if a is None:
            out.append(None)
        else:
            val = a if (with_values or i in c.const) else None
            out.append(Info(elem_type(a.dtype), tuple(a.shape), val))
    return out


def assert_close(got: np.ndarray, want: np.ndarray, what: str, rtol: float | None = None,
                 atol: float | None = None) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if got.dtype.kind in "f":
        r, a = TOL.get(got.dtype, (1e-5, 1e-6))
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=r if rtol is None else rtol,
                                   atol=a if atol is None else atol, equal_nan=True, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def check(c: Case) -> list[np.ndarray]:
    """Run the case in ORT and in our reference; compare outputs and inference. Returns ORT's outputs."""
    key = f"{c.domain}::{c.op}" if c.domain else c.op
    # dtypes to declare on the model's outputs come from our inference (a wrong dtype makes ORT refuse the model)
    proto0 = helper.make_node(c.op, [f"x{i}" if a is not None else "" for i, a in enumerate(c.inputs)],
                              [f"y{k}" for k in range(c.n_outputs)], name=f"{c.op.lower()}_node", domain=c.domain,
                              **c.attrs)
    node0 = ir_node(proto0, c.inputs, c.const, c.opset)
    infos = registry.run_infer(node0, infos_of(c, with_values=False))
    assert len(infos) == c.n_outputs, f"{key}: inference gave {len(infos)} outputs, node has {c.n_outputs}"
    want = c.expected if c.expected is not None else _ort_outputs(c, [i.dtype for i in infos])
    node = ir_node(proto0, c.inputs, c.const, c.opset, [i.dtype for i in infos])
    got = registry.run_reference(node, [None if a is None else a.copy() for a in c.inputs])
    assert len(got) == len(want), f"{key}: reference gave {len(got)} outputs, ORT {len(want)}"
    for k, (g, w, inf) in enumerate(zip(got, want, infos)):
        assert_close(g, w, f"{key} output {k} (reference vs ORT)", c.rtol, c.atol)
        assert inf.dtype == elem_type(w.dtype), \
            f"{key} output {k}: inferred dtype {dtype_name(inf.dtype)} != ORT's {w.dtype}"
        assert tuple(inf.shape) == w.shape, f"{key} output {k}: inferred shape {inf.shape} != ORT's {w.shape}"
    # with every input known, inference must fold small outputs to the right values
    full = registry.run_infer(node, infos_of(c, with_values=True))
    for k, (f, w) in enumerate(zip(full, want)):
        if w.size <= registry.FOLD_LIMIT:
            assert f.value is not None, f"{key} output {k}: inference with all inputs known gave no value"
            assert_close(f.value, w, f"{key} output {k} (folded value vs ORT)", c.rtol, c.atol)
    return want


def graph_from_model(model: onnx.ModelProto) -> Graph:
    """A minimal ONNX -> IR conversion for tests (graph_partitioner.onnx_io is the real edge)."""
    opset = {o.domain: o.version for o in model.opset_import}
    g = Graph(model.graph.name, {"": opset.get("", 17)})
    for init in model.graph.initializer:
        g.add_value(init.name, const=numpy_helper.to_array(init), unique=False)
    for vi in model.graph.input:
        if vi.name in g.values:
            continue
        tt = vi.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim)
        g.inputs.append(g.add_value(vi.name, tt.elem_type, shape, unique=False))
    for n in model.graph.node:
        ins = []
        for name in n.input:
            if not name:
                ins.append(None)
            elif name not in g.values:
                ins.append(g.add_value(name, unique=False))
            else:
                ins.append(g.values[name])
        outs = [g.values[o] if o in g.values else g.add_value(o, unique=False) for o in n.output]
        try:
            since = onnx.defs.get_schema(n.op_type, opset.get(n.domain, 1), n.domain).since_version
        except Exception:
            since = None
        g.add_node(n.op_type, ins, outs, {a.name: attr_value(a) for a in n.attribute}, name=n.name or n.output[0],
                   domain=n.domain, since_version=since)
    g.outputs = [g.values[o.name] for o in model.graph.output]
    return g
