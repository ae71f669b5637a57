"""What an engine is, apart from how it was built: the device it targets and the built artifact.

An :class:`EngineArtifact` is what the engine file stores (:mod:`ep_trtpy.engine.format`) plus, for the cuda
backend, the live native engine. The builder (ep_trtpy/builder/build.py) makes artifacts; the engine file and the
cache read and write them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ep_trtpy.engine.plan import Plan
from graph_partitioner.ir import Graph

BACKENDS = ("cuda", "reference")

InputShapes = Mapping[str, Sequence[int]] | Sequence[Sequence[int]]
"""Concrete input shapes: by graph-input name, or a sequence in graph-input order."""


@dataclass(frozen=True)
class Device:
    """The device an engine is built for: CUDA ordinal, name and compute capability (ordinal -1: the CPU)."""

    ordinal: int = -1
    name: str = "cpu"
    cc: tuple[int, int] = (0, 0)

    @property
    def sm(self) -> str:
        return f"sm{self.cc[0]}{self.cc[1]}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "cc": [int(self.cc[0]), int(self.cc[1])]}


CPU = Device()


@dataclass
class EngineArtifact:
    """A built engine: the optimized graph, and for the cuda backend the plan, the weights and the live engine."""

    backend: str
    graph: Graph
    input_names: list[str]
    input_shapes: list[tuple[int, ...]]
    outputs: list[tuple[int, tuple[int, ...]]]  # (ONNX dtype, shape) per engine output
    device: Device = CPU
    plan: Plan | None = None
    weights: bytes = b""
    fusions: dict[str, list[str]] = field(default_factory=dict)
    passes: list[dict[str, Any]] = field(default_factory=list)
    build_seconds: float = 0.0
    channels_last: list[str] = field(default_factory=list)
    """Values the engine holds channels-last (NHWC) whose model layout is NCHW (set by a build; not in the file)."""
    engine: Any = None  # ep_trtpy._kernels.Engine (cuda), never serialized
    # (id(array), dtype) -> (array, offset) of the host arrays lowered into `weights` (a fresh build's; empty when
    # loaded from a file): engines specialized from this one find their weights here by identity
    weight_sources: dict[Any, Any] = field(default_factory=dict, repr=False)
    header: dict[str, Any] = field(default_factory=dict)  # filled when read from an engine file
