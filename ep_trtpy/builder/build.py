"""Engine builds: optimize a subgraph for concrete input shapes, then lower it for a backend.

    graph = optimize(subgraph, input_shapes, options)                  # the pass pipeline (pipeline.py)
    art = build(subgraph, input_shapes, options, "cuda", device)       # + lowering + native engine
    art = build(subgraph, input_shapes, options, "reference", CPU)     # the optimized graph runs on numpy

An :class:`EngineArtifact` is what the engine file stores (ep_trtpy/engine/format.py) plus, for the cuda backend,
the live native engine. The subgraph given to :func:`build` is never modified.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ep_trtpy.builder.pipeline import DEFAULT_FOLD_LIMIT, PassContext, run_pipeline
from ep_trtpy.builder.plan import Plan
from graph_partitioner.ir import Graph, dtype_name, is_static, shape_str

log = logging.getLogger("ep_trtpy.builder")

BACKENDS = ("cuda", "reference")

InputShapes = Mapping[str, Sequence[int]] | Sequence[Sequence[int]]


class BuildError(ValueError):
    """A subgraph cannot be built as given (the message names the value or node)."""


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
    engine: Any = None  # ep_trtpy._kernels.Engine (cuda), never serialized
    header: dict[str, Any] = field(default_factory=dict)  # filled when read from an engine file


def normalize_shapes(graph: Graph, input_shapes: InputShapes | None) -> dict[str, tuple[int, ...]]:
    """Input shapes by graph-input name, from a mapping or a sequence in graph-input order."""
    if input_shapes is None:
        return {}
    if isinstance(input_shapes, Mapping):
        return {str(k): tuple(int(d) for d in s) for k, s in input_shapes.items()}
    shapes = list(input_shapes)
    if len(shapes) != len(graph.inputs):
        raise BuildError(f"{len(shapes)} input shapes given for graph '{graph.name}' with {len(graph.inputs)} inputs "
                         f"({', '.join(v.name for v in graph.inputs)})")
    return {v.name: tuple(int(d) for d in s) for v, s in zip(graph.inputs, shapes)}


def _verify(graph: Graph) -> None:
    for n in graph.nodes:
        for v in list(n.inputs) + list(n.outputs):
            if v is not None and (v.dtype is None or not is_static(v.shape)):
                raise BuildError(f"after optimization, value '{v.name}' of node '{n.name}' ({n.key}) has no static "
                                 f"dtype and shape ({dtype_name(v.dtype)}{shape_str(v.shape)})")
    for k, v in enumerate(graph.outputs):
        if v.dtype is None or not is_static(v.shape):
            raise BuildError(f"graph output {k} ('{v.name}') has no static dtype and shape after optimization")


def optimize_with_context(graph: Graph, input_shapes: InputShapes | None, options: Any = None,
                          dump: Callable[[str, Graph], None] | None = None,
                          fold_limit: int = DEFAULT_FOLD_LIMIT) -> tuple[Graph, PassContext]:
    """The optimized copy of `graph` for these input shapes, and the pass context (fusions, timings, refusals)."""
    g = graph.copy()
    ctx = PassContext(options=options, input_shapes=normalize_shapes(g, input_shapes), fold_limit=fold_limit,
                      dump=dump)
    run_pipeline(g, ctx)
    _verify(g)
    return g, ctx


def optimize(graph: Graph, input_shapes: InputShapes | None, options: Any = None) -> Graph:
    """The optimized copy of `graph` for these concrete input shapes (the pass pipeline)."""
    return optimize_with_context(graph, input_shapes, options)[0]


def _annotate(plan: Plan, graph: Graph, ctx: PassContext) -> None:
    """Layer metadata for inspect: the original nodes behind each layer and its precision."""
    names = {n.name for n in graph.nodes}
    for layer in plan.layers:
        if layer.name in names:
            layer.meta.setdefault("fused", ctx.origin(layer.name))
        if layer.outputs and 0 <= layer.outputs[0] < len(plan.tensors):
            layer.meta.setdefault("precision", dtype_name(plan.tensors[layer.outputs[0]].dtype))


def instantiate(artifact: EngineArtifact, device: Device, options: Any = None, started: float | None = None) -> Any:
    """The native engine of a cuda artifact, built from its plan and weights. Layers keep the tactics they carry
    (an engine file's); the others get theirs from the timing cache or are timed (ep_trtpy/tuner/), and the
    choices are written back into the plan. `started` (time.monotonic()) is when the build began, for the
    progress bar's two-second rule."""
    if artifact.backend != "cuda":
        return None
    if artifact.plan is None:
        raise BuildError("a cuda engine artifact has no plan")
    from ep_trtpy import runtime
    from ep_trtpy.tuner import Tuner

    tuner = Tuner.for_build(options, device, artifact.graph.name, started=started)
    tuner.apply(artifact.plan)
    try:
        engine = runtime.build_engine(artifact.plan, artifact.weights, device.ordinal, tuning_level=tuner.level,
                                      progress=tuner.progress)
    finally:
        if tuner.progress is not None:
            tuner.progress.close()
    tuner.record(artifact.plan, engine)
    _write_back(artifact.plan, engine)
    if options is not None and hasattr(engine, "cuda_graph") and hasattr(options, "cuda_graph_enable"):
        engine.cuda_graph = bool(options.cuda_graph_enable)
    return engine


def _write_back(plan: Plan, engine: Any) -> None:
    """Store the tactics and workspaces the native engine chose into the plan (for the engine file)."""
    tactics = list(engine.tactics()) if hasattr(engine, "tactics") else []
    workspaces = list(engine.workspaces()) if hasattr(engine, "workspaces") else []
    for layer, t in zip(plan.layers, tactics):
        layer.tactic = int(t)
    for layer, w in zip(plan.layers, workspaces):
        layer.workspace = int(w)


def build(subgraph: Graph, input_shapes: InputShapes | None, options: Any, backend: str, device: Device = CPU,
          dump: Callable[[str, Graph], None] | None = None) -> EngineArtifact:
    """Optimize `subgraph` for these shapes and produce an engine artifact for `backend`."""
    if backend not in BACKENDS:
        raise BuildError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    detailed = bool(getattr(options, "detailed_build_log", False))
    t0, started = time.perf_counter(), time.monotonic()
    graph, ctx = optimize_with_context(subgraph, input_shapes, options, dump=dump)
    t_opt = time.perf_counter() - t0
    art = EngineArtifact(backend=backend, graph=graph, input_names=[v.name for v in graph.inputs],
                         input_shapes=[tuple(v.static_shape) for v in graph.inputs],
                         outputs=[(int(v.dtype or 0), tuple(v.static_shape)) for v in graph.outputs],
                         device=device, fusions=dict(ctx.fusions), passes=[r.to_dict() for r in ctx.records])
    t_lower = t_fin = 0.0
    if backend == "cuda":
        from ep_trtpy.builder.lowering import lower

        t1 = time.perf_counter()
        plan, weights = lower(graph, options)
        _annotate(plan, graph, ctx)
        t_lower = time.perf_counter() - t1
        art.plan, art.weights = plan, weights
        t2 = time.perf_counter()
        art.engine = instantiate(art, device, options, started=started)
        t_fin = time.perf_counter() - t2
    art.build_seconds = time.perf_counter() - t0
    n_layers = len(art.plan.layers) if art.plan is not None else len(graph.nodes)
    log.log(logging.INFO if detailed else logging.DEBUG,
            "built %s engine for '%s' (%s): %d nodes -> %d %s in %.3f s (optimize %.3f s, lower %.3f s, "
            "finalize %.3f s)", backend, subgraph.name, ", ".join(f"{n}{list(s)}" for n, s in
                                                                  zip(art.input_names, art.input_shapes)),
            len(subgraph.nodes), n_layers, "layers" if art.plan is not None else "nodes", art.build_seconds, t_opt,
            t_lower, t_fin)
    return art
