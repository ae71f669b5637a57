"""float32 -> float16 model conversion, for running FP16 baselines on providers that have no fp16 build option
(ORT's CUDA EP runs a float16 model in float16; our EP takes ``fp16_enable`` instead).

Rewrites, in a copy:
* float32 initializers and Constant / ConstantOfShape values -> float16, except those read at slots that must stay
  float32 (:data:`KEEP_FLOAT32`: Resize's roi and scales);
* ``Cast(to=FLOAT)`` -> ``Cast(to=FLOAT16)``;
* with ``keep_io_types`` (default) float32 graph inputs get a ``Cast`` to float16 after them and float32 outputs a
  ``Cast`` back, so feeds and results keep their types.

The generated architectures convert cleanly; an arbitrary model may use an op whose float16 support differs by
provider, which that provider reports when the session is created.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

KEEP_FLOAT32: dict[str, frozenset[int]] = {
    "Resize": frozenset({1, 2}),
    "Upsample": frozenset({1}),
}
"""Op type -> input slots whose float values must stay float32."""


def _keep_names(graph: onnx.GraphProto) -> set[str]:
    keep: set[str] = set()
    for n in graph.node:
        for i in KEEP_FLOAT32.get(n.op_type, ()):
            if i < len(n.input) and n.input[i]:
                keep.add(n.input[i])
    return keep


def _to_half(t: onnx.TensorProto) -> onnx.TensorProto:
    arr = numpy_helper.to_array(t)
    return numpy_helper.from_array(np.clip(arr, -65504, 65504).astype(np.float16), t.name)


def to_fp16(model: onnx.ModelProto, keep_io_types: bool = True) -> onnx.ModelProto:
    """A float16 copy of ``model`` (see the module docstring)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    if any(n.op_type in ("If", "Loop", "Scan") for n in g.node):
        raise ValueError("to_fp16: models with control-flow subgraphs (If/Loop/Scan) are not supported")
    keep = _keep_names(g)
    used_elsewhere = {name for n in g.node for i, name in enumerate(n.input)
                      if name in keep and i not in KEEP_FLOAT32.get(n.op_type, frozenset())}
    if used_elsewhere:
        raise ValueError(f"to_fp16: values {sorted(used_elsewhere)} are read both where float32 is required and "
                         f"elsewhere; duplicate them first")

    for i, t in enumerate(g.initializer):
        if t.data_type == TensorProto.FLOAT and t.name not in keep:
            g.initializer[i].CopyFrom(_to_half(t))
    for n in g.node:
        if n.op_type == "Cast":
            for a in n.attribute:
                if a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16
        elif n.op_type in ("Constant", "ConstantOfShape"):
            if n.op_type == "Constant" and n.output[0] in keep:
                continue
            for a in n.attribute:
                if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(_to_half(a.t))
                elif a.name in ("value_float", "value_floats") and n.op_type == "Constant":
                    raise ValueError(f"to_fp16: Constant node '{n.name}' uses {a.name}; write it as a tensor value")
    del g.value_info[:]

    if keep_io_types:
        new_nodes: list[onnx.NodeProto] = []
        for vi in g.input:
            if vi.type.tensor_type.elem_type != TensorProto.FLOAT:
                continue
            half = f"{vi.name}__fp16"
            for n in g.node:
                for k, name in enumerate(n.input):
                    if name == vi.name and not (k in KEEP_FLOAT32.get(n.op_type, ())):
                        n.input[k] = half
            new_nodes.append(helper.make_node("Cast", [vi.name], [half], name=f"{vi.name}/CastToFp16",
                                              to=TensorProto.FLOAT16))
        tail: list[onnx.NodeProto] = []
        for vo in g.output:
            if vo.type.tensor_type.elem_type != TensorProto.FLOAT:
                continue
            half = f"{vo.name}__fp16"
            for n in g.node:
                for k, name in enumerate(n.output):
                    if name == vo.name:
                        n.output[k] = half
                for k, name in enumerate(n.input):
                    if name == vo.name:
                        n.input[k] = half
            tail.append(helper.make_node("Cast", [half], [vo.name], name=f"{vo.name}/CastToFp32",
                                         to=TensorProto.FLOAT))
        nodes = new_nodes + list(g.node) + tail
        del g.node[:]
        g.node.extend(nodes)
    else:
        for vi in list(g.input) + list(g.output):
            if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
                vi.type.tensor_type.elem_type = TensorProto.FLOAT16
    return m
