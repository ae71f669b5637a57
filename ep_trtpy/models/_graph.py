"""A small ONNX graph writer shared by the architecture generators.

It names nodes, values and weights the way the PyTorch exporter does (``/layer1/layer1.0/conv1/Conv``,
``/layer1/layer1.0/conv1/Conv_output_0``, ``layer1.0.conv1.weight``) so generated models look like exported
ones in reports, and it draws every weight from its own generator seeded by ``(seed, weight name)``: the same
parameter gets the same values whatever else the model contains or in which order it is written (the BERT
spellings rely on this to be numerically identical).
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# The IR version each opset we write needs (onnx.helper.VERSION_TABLE): the lowest one, so that older
# onnxruntime releases load the models.
_IR_FOR_OPSET = {17: 8, 18: 8, 19: 9, 20: 9, 21: 10}


def ir_version_for(opset: int) -> int:
    """Smallest IR version that can carry ``opset`` of the ONNX domain."""
    if opset in _IR_FOR_OPSET:
        return _IR_FOR_OPSET[opset]
    for _release, ir, op, *_ in helper.VERSION_TABLE:
        if op >= opset:
            return int(ir)
    raise ValueError(f"opset {opset} is newer than this onnx package knows")


class GraphWriter:
    """Accumulates nodes, initializers, inputs and outputs; :meth:`model` returns the ModelProto."""

    def __init__(self, name: str, seed: int = 0):
        self.name = name
        self.seed = int(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._scope: list[str] = []
        self._names: set[str] = set()
        self._const_cache: dict[tuple[Any, ...], str] = {}

    # ------------------------------------------------------------------------------------------- naming --
    @contextlib.contextmanager
    def scope(self, name: str) -> Iterator[None]:
        """Nest node names (``/encoder/layer.0/...``) and weight names (``encoder.layer.0....``)."""
        self._scope.append(name)
        try:
            yield
        finally:
            self._scope.pop()

    def _unique(self, name: str) -> str:
        if name not in self._names:
            self._names.add(name)
            return name
        k = 1
        while f"{name}_{k}" in self._names:
            k += 1
        self._names.add(f"{name}_{k}")
        return f"{name}_{k}"

    def param_name(self, leaf: str) -> str:
        return ".".join([*self._scope, leaf])

    # -------------------------------------------------------------------------------------------- weights --
    def rng(self, name: str) -> np.random.Generator:
        """The generator of one weight: a function of (seed, name) only."""
        return np.random.default_rng([self.seed, zlib.crc32(name.encode())])

    def weight(self, leaf: str, array: np.ndarray) -> str:
        """Add an initializer named after the current scope (``layer1.0.conv1.weight``)."""
        name = self._unique(self.param_name(leaf))
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def normal(self, leaf: str, shape: Sequence[int], std: float, mean: float = 0.0) -> str:
        """A float32 weight drawn from N(mean, std^2)."""
        name = self.param_name(leaf)
        data = self.rng(name).standard_normal(tuple(shape), dtype=np.float32) * np.float32(std) + np.float32(mean)
        return self.weight(leaf, data.astype(np.float32))

    def uniform(self, leaf: str, shape: Sequence[int], low: float, high: float) -> str:
        name = self.param_name(leaf)
        data = self.rng(name).uniform(low, high, size=tuple(shape)).astype(np.float32)
        return self.weight(leaf, data)

    def const(self, value: Any, dtype: Any = np.int64, name: str | None = None) -> str:
        """A small constant initializer (shapes, axes, scalars), shared between identical uses."""
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if name is None and key in self._const_cache:
            return self._const_cache[key]
        cname = self._unique(name or f"onnx::Constant_{len(self._const_cache)}")
        self.initializers.append(numpy_helper.from_array(arr, cname))
        if name is None:
            self._const_cache[key] = cname
        return cname

    # ---------------------------------------------------------------------------------------------- nodes --
    def op(self, op_type: str, inputs: Sequence[str], n_out: int = 1, name: str | None = None,
           domain: str = "", **attrs: Any) -> Any:
        """Add a node; returns its output name (or a list of names when ``n_out > 1``)."""
        parts = [*self._scope, *([name] if name else []), op_type]
        node_name = self._unique("/" + "/".join(parts))
        outs = [f"{node_name}_output_{k}" for k in range(n_out)]
        for o in outs:
            self._names.add(o)
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=node_name, domain=domain or None,
                                           **attrs))
        return outs[0] if n_out == 1 else outs

    def add_input(self, name: str, elem: int, shape: Sequence[int | str]) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem, list(shape)))
        self._names.add(name)
        return name

    def add_output(self, value: str, name: str, elem: int, shape: Sequence[int | str | None]) -> str:
        """Expose ``value`` as a graph output called ``name``: the producing node's output is renamed (as exporters
        name the last node's output after the graph output); an Identity is added only when that is impossible."""
        if value != name:
            producer = next((n for n in self.nodes if value in n.output), None)
            used = any(value in n.input for n in self.nodes)
            if producer is not None and not used:
                producer.output[list(producer.output).index(value)] = name
            else:
                self.nodes.append(helper.make_node("Identity", [value], [name],
                                                   name=self._unique(f"/{name}/Identity")))
        self.outputs.append(helper.make_tensor_value_info(name, elem, list(shape)))
        return name

    def model(self, opset: int = 17, doc: str = "") -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                  ir_version=ir_version_for(opset), producer_name="ep_trtpy.models",
                                  doc_string=doc)
        return model


# --------------------------------------------------------------------------------------- common blocks --
def conv_weight(w: GraphWriter, leaf: str, c_out: int, c_in_per_group: int, k: Sequence[int],
                gain: float = 2.0) -> str:
    """He (Kaiming-normal, fan-in) initialised convolution weight: std = sqrt(gain / (c_in_per_group * kh * kw))."""
    fan_in = c_in_per_group * int(np.prod(k))
    return w.normal(leaf, (c_out, c_in_per_group, *k), std=float(np.sqrt(gain / fan_in)))


def batch_norm(w: GraphWriter, x: str, channels: int, gamma_mean: float = 1.0, gamma_std: float = 0.1,
               name: str = "bn") -> str:
    """Inference BatchNormalization as exporters write it (not folded): scale, bias, running mean and variance
    near the identity (gamma ~ N(gamma_mean, gamma_std), beta ~ N(0, 0.05), mean ~ N(0, 0.05),
    var ~ U(0.8, 1.2)) so activations keep a realistic range."""
    with w.scope(name):
        scale = w.normal("weight", (channels,), std=gamma_std, mean=gamma_mean)
        bias = w.normal("bias", (channels,), std=0.05)
        mean = w.normal("running_mean", (channels,), std=0.05)
        var = w.uniform("running_var", (channels,), 0.8, 1.2)
        return w.op("BatchNormalization", [x, scale, bias, mean, var], epsilon=1e-5, momentum=0.9)


def dense_weight(w: GraphWriter, leaf: str, fan_in: int, fan_out: int, std: float | None = None,
                 transposed: bool = False) -> str:
    """A fully connected weight: [fan_in, fan_out] for MatMul (or [fan_out, fan_in] for Gemm with transB=1);
    std defaults to 1/sqrt(fan_in) (LeCun)."""
    s = float(std if std is not None else 1.0 / np.sqrt(fan_in))
    return w.normal(leaf, (fan_out, fan_in) if transposed else (fan_in, fan_out), std=s)


ELEM_FLOAT = TensorProto.FLOAT
ELEM_INT64 = TensorProto.INT64
