"""Engine builds: optimize a subgraph for concrete input shapes, then lower it for a backend.

    graph = optimize(subgraph, input_shapes, options)                  # the pass pipeline (pipeline.py)
    art = build(subgraph, input_shapes, options, "cuda", device)       # + lowering + native engine
    art = build(subgraph, input_shapes, options, "reference", CPU)     # the optimized graph runs on numpy
    got = get_or_build(subgraph, input_shapes, options, "cuda", device)  # the engine cache first (engine/cache.py)

An :class:`~ep_trtpy.engine.artifact.EngineArtifact` is what the engine file stores (ep_trtpy/engine/format.py)
plus, for the cuda backend, the live native engine. The subgraph given to :func:`build` is never modified.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from ep_trtpy.builder.pipeline import DEFAULT_FOLD_LIMIT, PassContext, run_pipeline
from ep_trtpy.builder.weight_reuse import ConstMemo
from ep_trtpy.engine.artifact import BACKENDS, CPU, Device, EngineArtifact, InputShapes
from ep_trtpy._sync import KeyedLocks
from ep_trtpy.engine.cache import Counters, Expected, cache_key, file_name, graph_hash, load
from ep_trtpy.engine.cache import save as save_engine
from ep_trtpy.engine.format import encode
from ep_trtpy.engine.plan import Plan
from ep_trtpy.options import Options
from graph_partitioner.ir import Graph, dtype_name, is_static, shape_str

log = logging.getLogger("ep_trtpy.builder")


class BuildError(ValueError):
    """A subgraph cannot be built as given (the message names the value or node)."""


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


def optimize_with_context(graph: Graph, input_shapes: InputShapes | None, options: Options | None = None,
                          dump: Callable[[str, Graph], None] | None = None,
                          fold_limit: int = DEFAULT_FOLD_LIMIT, backend: str = "reference",
                          device: Device = CPU, memo: ConstMemo | None = None) -> tuple[Graph, PassContext]:
    """The optimized copy of `graph` for these input shapes and backend, and the pass context (fusions, timings,
    refusals). `memo` (kept with the program across its builds) lets the passes reuse the weight transforms of
    earlier builds (ep_trtpy/builder/weight_reuse.py)."""
    g = graph.copy()
    ctx = PassContext(options=options if options is not None else Options(), backend=backend, device_cc=device.cc,
                      input_shapes=normalize_shapes(g, input_shapes), fold_limit=fold_limit, dump=dump, memo=memo)
    run_pipeline(g, ctx)
    _verify(g)
    return g, ctx


def optimize(graph: Graph, input_shapes: InputShapes | None, options: Options | None = None) -> Graph:
    """The optimized copy of `graph` for these concrete input shapes (the pass pipeline)."""
    return optimize_with_context(graph, input_shapes, options)[0]


def optimized_artifact(graph: Graph, ctx: PassContext, backend: str, device: Device) -> EngineArtifact:
    """The artifact of an optimized graph (its inputs, outputs and what the passes recorded); the cuda backend's
    plan, weights and engine are added by the caller."""
    return EngineArtifact(backend=backend, graph=graph, input_names=[v.name for v in graph.inputs],
                          input_shapes=[tuple(v.static_shape) for v in graph.inputs],
                          outputs=[(int(v.dtype or 0), tuple(v.static_shape)) for v in graph.outputs],
                          device=device, fusions=dict(ctx.fusions), passes=[r.to_dict() for r in ctx.records],
                          channels_last=sorted(ctx.channels_last))


def annotate(plan: Plan, graph: Graph, ctx: PassContext) -> None:
    """Layer metadata for inspect: the original nodes behind each layer and its precision."""
    names = {n.name for n in graph.nodes}
    for layer in plan.layers:
        if layer.name in names:
            layer.meta.setdefault("fused", ctx.origin(layer.name))
        if layer.outputs and 0 <= layer.outputs[0] < len(plan.tensors):
            layer.meta.setdefault("precision", dtype_name(plan.tensors[layer.outputs[0]].dtype))


def instantiate(artifact: EngineArtifact, device: Device, options: Options, started: float | None = None) -> Any:
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
    if hasattr(engine, "cuda_graph"):
        engine.cuda_graph = options.cuda_graph_enable
    return engine


def _write_back(plan: Plan, engine: Any) -> None:
    """Store the tactics and workspaces the native engine chose into the plan (for the engine file)."""
    tactics = list(engine.tactics()) if hasattr(engine, "tactics") else []
    workspaces = list(engine.workspaces()) if hasattr(engine, "workspaces") else []
    for layer, t in zip(plan.layers, tactics):
        layer.tactic = int(t)
    for layer, w in zip(plan.layers, workspaces):
        layer.workspace = int(w)


def build(subgraph: Graph, input_shapes: InputShapes | None, options: Options, backend: str, device: Device = CPU,
          dump: Callable[[str, Graph], None] | None = None, memo: ConstMemo | None = None) -> EngineArtifact:
    """Optimize `subgraph` for these shapes and produce an engine artifact for `backend`. `memo`: the program's
    memo of weight transforms (ep_trtpy/builder/weight_reuse.py), shared by its builds."""
    if backend not in BACKENDS:
        raise BuildError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    detailed = options.detailed_build_log
    t0, started = time.perf_counter(), time.monotonic()
    graph, ctx = optimize_with_context(subgraph, input_shapes, options, dump=dump, backend=backend, device=device,
                                       memo=memo)
    t_opt = time.perf_counter() - t0
    art = optimized_artifact(graph, ctx, backend, device)
    t_lower = t_fin = 0.0
    if backend == "cuda":
        from ep_trtpy.builder.lowering import lower_with_context

        t1 = time.perf_counter()
        lowered = lower_with_context(graph, options)
        plan = lowered.plan
        annotate(plan, graph, ctx)
        t_lower = time.perf_counter() - t1
        art.plan, art.weights = plan, lowered.weights
        if memo is not None:  # the arrays behind the weights, for engines specialized from this one
            art.weight_sources = dict(lowered.sources)
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


# --------------------------------------------------------------------------------- the engine cache --

def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "none"


def producer_versions(backend: str) -> dict[str, str]:
    """Versions of everything that produced an engine (cuda: plus the native libraries')."""
    from ep_trtpy._version import __version__

    v = {"ep_trtpy": str(__version__), "onnx": _dist_version("onnx"),
         "onnxruntime": _dist_version("onnxruntime")}
    if backend == "cuda":
        try:
            from ep_trtpy import _kernels

            fn = getattr(_kernels, "library_versions", None)
            libs = fn() if fn is not None else {}
        except Exception as e:  # a native module without the function, or one that fails: record that
            libs = {"native": f"unavailable ({type(e).__name__})"}
        if isinstance(libs, dict):
            v.update({str(k): str(x) for k, x in libs.items()})
        else:
            v["native"] = str(libs)
    return v


_file_builds = KeyedLocks()
"""One lock per engine file: threads (sessions) of this process that need the same engine wait for the one
that builds it, then load its file. Other processes rely on the atomic replace."""


def _table_digest(options: Options) -> str:
    """SHA-256 of the calibration table's bytes ("" when it cannot be read: the build then says why)."""
    from ep_trtpy.quantize.table import TableError, load, resolve

    try:
        path = resolve(options.int8_calibration_table_name, options.engine_cache_path)
        return load(path, options.int8_use_native_calibration_table).digest
    except (TableError, OSError):
        return ""


@dataclass
class Obtained:
    artifact: EngineArtifact
    source: str  # "built" | "cache"
    path: str | None
    key: str
    graph_hash: str
    seconds: float


def get_or_build(graph: Graph, input_shapes: InputShapes, options: Options, backend: str, device: Device = CPU,
                 counters: Counters | None = None, ghash: str | None = None, save: bool | None = None,
                 use_cache: bool | None = None, dump: Callable[[str, Graph], None] | None = None,
                 memo: ConstMemo | None = None) -> Obtained:
    """The engine artifact for `graph` at these shapes: from the engine cache when enabled (validated), else
    built (and saved when enabled). For the cuda backend the artifact carries a live native engine. `dump` is the
    pass pipeline's dump hook (called only when a build happens)."""
    t0 = time.perf_counter()
    counters = counters if counters is not None else Counters()
    ghash = ghash or graph_hash(graph)
    named = normalize_shapes(graph, input_shapes)
    shapes = [tuple(named.get(v.name, v.shape or ())) for v in graph.inputs]
    producers = producer_versions(backend)
    option_items = options.engine_key_items()
    if options.int8_calibration_table_name:  # the table's content shapes the engine, not only its name
        option_items["int8_calibration_table_sha256"] = _table_digest(options)
    key = cache_key(ghash, shapes, option_items, backend, device, producers)  # type: ignore[arg-type]
    enabled = options.engine_cache_enable if use_cache is None else use_cache
    path = os.path.join(options.cache_dir, file_name(ghash, key, backend, device)) if enabled else None
    if path is None:
        art = build(graph, named, options, backend, device, dump=dump, memo=memo)
        counters.add("builds")
        return Obtained(art, "built", None, key, ghash, time.perf_counter() - t0)
    expected = Expected.of(graph, shapes, key, ghash, backend, device, option_items, producers)
    with _file_builds.hold(path):  # sessions of this process asking for the same file build it once
        art, status = load(path, key, expected, options.hmac_key, options.cache_dir)
        if art is not None:
            try:
                art.engine = instantiate(art, device, options)
            except Exception as e:  # a plan the runtime cannot prepare is a reject, not a crash
                art, status = None, f"reject: the native runtime cannot load it ({e})"
        if art is not None:
            counters.add("engine_cache_hits")
            log.info("engine cache hit: %s", path)
            return Obtained(art, "cache", path, key, ghash, time.perf_counter() - t0)
        if status == "miss":
            counters.add("engine_cache_misses")
        else:
            counters.add("engine_cache_rejects")
            log.warning("engine cache: rejected %s: %s; rebuilding", path, status[len("reject: "):])
        art = build(graph, named, options, backend, device, dump=dump, memo=memo)
        counters.add("builds")
        if save is None or save:
            data = encode(art, key=key, graph_hash=ghash, producers=producers, options=option_items)
            try:
                n = save_engine(path, data, options.hmac_key)
                log.info("engine cache: saved %s (%d bytes)", path, n)
            except OSError as e:
                log.warning("engine cache: could not write %s: %s; the engine is used from memory", path, e)
    return Obtained(art, "built", path, key, ghash, time.perf_counter() - t0)
