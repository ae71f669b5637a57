"""The Python side of the shim's host callbacks (cuda_kernels/include/tp/runtime_api.h, ``tp_host_callbacks``).

The pybind11 module (cuda_kernels/bindings/host_callbacks.cpp) calls these functions with the GIL held and turns
any exception into an error status for ORT, so an exception's message is what the user sees: write it for them.

Graph documents (``graph_json``) written by the shim (cuda_kernels/shim/graph_export.cpp)::

    {
      "name": str, "model_path": str,
      "opsets": {"": 17, "com.microsoft": 1, ...},
      "inputs": [value name, ...],              # graph inputs (not initializers)
      "outputs": [value name, ...],
      "initializers": [value name, ...],        # data: initializers[i] (numpy array) passed beside the document
                                                # (copies; bfloat16 as uint16 bits; None for types numpy cannot
                                                # hold element by element, e.g. strings); constant ones only,
                                                # outer-scope constants of a nested subgraph included
      "outer_scope_values": [name, ...],        # non-constant values a nested subgraph reads from its parent
      "values": {name: {"dtype": int,           # ONNX element type, 0 if unknown / not a tensor
                        "shape": [int, ...] | null,   # -1 for a dynamic dimension; null: unknown rank
                        "dims": [str, ...]}},   # symbolic dimension names ("" where none)
      "nodes": [{"name": str, "op_type": str, "domain": str, "since_version": int,
                 "inputs": [name or "" for an absent optional input], "outputs": [name, ...],
                 "attrs": {name: {"type": "int"|"ints"|"float"|"floats"|"string"|"strings"|"tensor"|"graph"|
                                  "graphs"|"unknown", "value": ...}}}],
                 # tensor attributes: {"type": "tensor", "index": k}: the data is initializers[k] (k beyond the
                 # named initializers); graph attributes carry no value.
      "fused_node": {"name": str, "inputs": [name, ...], "outputs": [name, ...]}    # compile() only
    }
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def create_ep(options_json: str, device_json: str) -> tuple[int, int]:
    """Validate options, create the EP object. Returns (ep_id, cuda device ordinal or -1)."""
    raise NotImplementedError


def release_ep(ep_id: int) -> None:
    raise NotImplementedError


def get_capability(ep_id: int, graph_json: str, initializers: list[np.ndarray]) -> list[list[int]]:
    """Clusters of node indices (into graph_json["nodes"]) to claim, one list per fused subgraph."""
    raise NotImplementedError


def compile(ep_id: int, graph_json: str, initializers: list[np.ndarray]) -> tuple[int, list[int]]:  # noqa: A001
    """Compile one fused subgraph. Returns (program_id, runtime input indices into fused_node.inputs)."""
    raise NotImplementedError


def get_engine(program_id: int, shapes: list[tuple[int, ...]]) -> Any:
    """An ep_trtpy._kernels.Engine for these runtime-input shapes (memory, engine cache, or a build)."""
    raise NotImplementedError


def run_reference(program_id: int, inputs: list[np.ndarray],
                  alloc: Callable[[int, tuple[int, ...]], np.ndarray]) -> None:
    """Run the program on the numpy reference backend; alloc(i, shape) returns the writable output array.

    ``inputs`` are read-only views of ORT's memory and alloc's arrays are views of ORT's outputs: both are valid
    only during this call (copy what must outlive it)."""
    raise NotImplementedError


def release_program(program_id: int) -> None:
    raise NotImplementedError


def stats() -> dict[str, int]:
    """Builder counters: builds, engine cache hits/misses/rejects, reference runs."""
    return {}


def reset_stats() -> None:
    pass
