"""The engine plan: what the native runtime executes (the launch list) and what the engine file stores.

A plan is built for one set of concrete input shapes. It holds

* ``tensors``: every buffer the launch list touches, each with a dtype, a static shape and a home:
  ``input`` (the k-th runtime input pointer), ``output`` (the k-th output pointer), ``weight`` (an offset into
  the weights blob, uploaded once), ``activation`` (an offset into the engine's arena, planned by lifetime), or
  ``alias`` (a view of another tensor at a byte offset: Reshape, Squeeze, Flatten cost nothing).
* ``layers``: the launch list, in order. Each layer names a native kernel (registered in cuda_kernels/) and
  passes it tensor ids, integer and float parameters, a tactic (kernel-specific; -1 lets the kernel choose when
  the engine is loaded and the choice is written back), the tactic's name (an opaque string the kernel gives its
  choice, stable across processes; when set, the kernel's ``prepare`` uses it instead of the number) and the
  scratch bytes it needs.
* the graph-level view used by the reference backend and ``ep-trtpy inspect``: the optimized IR nodes.

The parameter layout of each kernel is documented beside its lowering function in ep_trtpy/builder/lowering/
and mirrored by the kernel's ``prepare`` in cuda_kernels/runtime/kernels_*.cpp. Only this module and the
lowering functions construct plans.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graph_partitioner.ir import np_dtype

TENSOR_KINDS = ("input", "output", "weight", "activation", "alias")


def nbytes_of(dtype: int, shape: Sequence[int]) -> int:
    """Bytes of a dense tensor of ONNX element type `dtype` and this shape."""
    return int(np.prod(shape, dtype=np.int64)) * np_dtype(dtype).itemsize


@dataclass
class TensorSpec:
    id: int
    name: str
    dtype: int  # ONNX element type
    shape: tuple[int, ...]
    kind: str  # one of TENSOR_KINDS
    index: int = -1  # input/output position (kind input/output); tensor id viewed (kind alias)
    offset: int = 0  # bytes: into the weights blob (weight), the arena (activation), or the viewed tensor (alias)
    nbytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "dtype": self.dtype, "shape": list(self.shape), "kind": self.kind,
                "index": self.index, "offset": self.offset, "nbytes": self.nbytes}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorSpec:
        return cls(int(d["id"]), str(d["name"]), int(d["dtype"]), tuple(int(x) for x in d["shape"]), str(d["kind"]),
                   int(d["index"]), int(d["offset"]), int(d["nbytes"]))


@dataclass
class LayerSpec:
    kernel: str  # native kernel name
    inputs: list[int]  # tensor ids (-1 for an absent optional operand)
    outputs: list[int]
    ints: list[int] = field(default_factory=list)
    floats: list[float] = field(default_factory=list)
    tactic: int = -1
    workspace: int = 0  # scratch bytes
    name: str = ""  # the IR node this layer implements
    meta: dict[str, Any] = field(default_factory=dict)  # for inspect only (fused nodes, precision, tactic_ms, ...)
    tactic_name: str = ""  # the kernel's name of `tactic` ("" : none chosen yet, or a kernel without names)
    # Bytes that let the kernel set up `tactic_name` again without searching or compiling (a serialized cuDNN
    # plan); kept in the engine file's tactic-state section, not in to_dict().
    tactic_state: bytes = field(default=b"", repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kernel": self.kernel, "inputs": self.inputs, "outputs": self.outputs, "ints": self.ints,
                "floats": self.floats, "tactic": self.tactic, "tactic_name": self.tactic_name,
                "workspace": self.workspace, "name": self.name, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerSpec:
        return cls(str(d["kernel"]), [int(x) for x in d["inputs"]], [int(x) for x in d["outputs"]],
                   [int(x) for x in d["ints"]], [float(x) for x in d["floats"]], int(d["tactic"]),
                   int(d["workspace"]), str(d.get("name", "")), dict(d.get("meta", {})),
                   str(d.get("tactic_name", "")))


@dataclass
class Plan:
    tensors: list[TensorSpec] = field(default_factory=list)
    layers: list[LayerSpec] = field(default_factory=list)
    n_inputs: int = 0
    n_outputs: int = 0
    arena_bytes: int = 0
    weights_bytes: int = 0
    # Nonzero: the plan shares the first `shared_weights_bytes` of its weight offsets with another engine of the
    # same program (ep_trtpy/builder/weight_reuse.py): offsets below it address that engine's weights, the rest
    # this plan's own blob (weights_bytes long) at offset - shared_weights_bytes. Such plans live only in memory.
    shared_weights_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"tensors": [t.to_dict() for t in self.tensors], "layers": [lay.to_dict() for lay in self.layers],
                "n_inputs": self.n_inputs, "n_outputs": self.n_outputs, "arena_bytes": self.arena_bytes,
                "weights_bytes": self.weights_bytes, "shared_weights_bytes": self.shared_weights_bytes}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        return cls([TensorSpec.from_dict(t) for t in d["tensors"]], [LayerSpec.from_dict(x) for x in d["layers"]],
                   int(d["n_inputs"]), int(d["n_outputs"]), int(d["arena_bytes"]), int(d["weights_bytes"]),
                   int(d.get("shared_weights_bytes", 0)))
