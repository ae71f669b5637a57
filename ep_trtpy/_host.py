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
      "parent_node": str | null,                # the If/Loop/Scan node owning this graph (null: the main graph)
      "values": {name: {"dtype": int,           # ONNX element type, 0 if unknown / not a tensor
                        "shape": [int, ...] | null,   # -1 for a dynamic dimension; null: unknown rank
                        "dims": [str, ...]}},   # symbolic dimension names ("" where none)
      "nodes": [{"name": str, "op_type": str, "domain": str, "since_version": int,
                 "inputs": [name or "" for an absent optional input], "outputs": [name, ...],
                 "attrs": {name: {"type": "int"|"ints"|"float"|"floats"|"string"|"strings"|"tensor"|"graph"|
                                  "graphs"|"unknown", "value": ...}}}],
                 # tensor attributes: {"type": "tensor", "index": k}: the data is initializers[k] (k beyond the
                 # named initializers); strings over 64 KiB: {"type": "bytes", "index": k}, initializers[k] a
                 # uint8 array of their bytes; graph attributes carry no value.
      "fused_node": {"name": str, "inputs": [name, ...], "outputs": [name, ...]}    # compile() only
    }

State: EP objects (options, backend, device) and programs (one per fused subgraph: its IR, the mapping of
engine inputs to the fused node's inputs, and its engines by input shapes). Engines come from memory, then the
engine cache (when ``engine_cache_enable``), then a build (saved when enabled): ``get_or_build`` in
ep_trtpy/builder/build.py. ``ep-trtpy build`` runs a session and watches its builds (:func:`observe_builds`). All
state is guarded by locks: callbacks may come from any ORT thread. A program builds each input-shape key once
(threads that need it meanwhile wait for that build, see :func:`_artifact`) and never holds its lock during a
build, so runs of other shapes go on.

Programs with dynamic inputs group shapes into *families* (ep_trtpy/builder/families.py): an optimization profile
(``profile_min_shapes`` ..., its engine built with the session) or, without profiles, a power-of-two bucket of
the dynamic dimensions (ep_trtpy/profiles/). A family has one tuned engine; its other shapes get engines
specialized from it (ep_trtpy/builder/specialize.py: the pass pipeline for the new shapes with the program's
memo of weight transforms, the family's tactics, its device weights shared). Shapes outside every profile get an
engine of their own (logged), or with ``profile_strict=1`` an error naming the profiles.

EPContext (ep_trtpy/epcontext/): in a graph holding EPContext nodes this EP wrote, GetCapability claims each of
them as a fused node of its own and nothing else (the writer left the other nodes to ORT); Compile loads its engine
(checked against this session, never built) into a program whose one engine is fixed. With the session entry
``ep.context_enable=1``, Compile asks :func:`context_node` for each program's EPContext node.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ep_trtpy.builder.build import Obtained, get_or_build, instantiate, producer_versions
from ep_trtpy.builder.families import Families
from ep_trtpy.devices import check_device_id
from ep_trtpy.devices import present as present_devices
from ep_trtpy.engine.artifact import CPU, Device, EngineArtifact
from ep_trtpy.engine.cache import ENGINE_FILE_LIMIT, Counters, graph_hash, read_cache_file
from ep_trtpy.engine.format import decode, encode
from ep_trtpy.epcontext.load import is_ours, load_node
from ep_trtpy.epcontext.node import ContextError, Settings, concrete_shapes, node_attributes
from ep_trtpy.options import Options, parse
from graph_partitioner.ir import Graph, dtype_name, elem_type, is_static, shape_str
from graph_partitioner.onnx_io import graph_from_export

log = logging.getLogger("ep_trtpy")


@dataclass
class _EP:
    id: int
    options: Options
    backend: str
    device: Device
    error: str = ""  # found while partitioning, raised by compile (a GetCapability error lets ORT run without us)


class _Build:
    """A build in flight for one shape key: the thread that started it fills `artifact` or `error`, then sets
    `done`; threads that need the same shapes meanwhile wait on `done` instead of building again."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.artifact: EngineArtifact | None = None
        self.error: BaseException | None = None


@dataclass
class _Program:
    id: int
    ep: _EP
    name: str
    graph: Graph
    runtime_inputs: list[int]
    ghash: str
    model_path: str = ""
    context: str = ""  # the EPContext node it was loaded from: its one engine is fixed, nothing is built
    artifacts: dict[tuple[tuple[int, ...], ...], EngineArtifact] = field(default_factory=dict)
    obtained: dict[tuple[tuple[int, ...], ...], Obtained] = field(default_factory=dict)
    building: dict[tuple[tuple[int, ...], ...], _Build] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    families: Families | None = None  # dynamic inputs: profiles or buckets, and the weight memo


@dataclass
class BuildRecord:
    """An engine a program obtained (built or from the engine cache) while :func:`observe_builds` watched."""

    program: str
    nodes: int
    inputs: dict[str, tuple[int, ...]]
    obtained: Obtained


@dataclass
class _Observer:
    records: list[BuildRecord]
    dump: Callable[[str], Any] | None  # program name -> the pass pipeline's dump hook


_lock = threading.RLock()
_eps: dict[int, _EP] = {}
_programs: dict[int, _Program] = {}
_ids = itertools.count(1)
_counters = Counters()
_reference_runs = 0
_context_engines = 0
_specializations = 0
_said_reference = False
_observer: _Observer | None = None  # while observe_builds() is active


def _ep(ep_id: int) -> _EP:
    with _lock:
        ep = _eps.get(int(ep_id))
    if ep is None:
        raise ValueError(f"TrtPyExecutionProvider: unknown EP id {ep_id} (already released?)")
    return ep


def _program(program_id: int) -> _Program:
    with _lock:
        p = _programs.get(int(program_id))
    if p is None:
        raise ValueError(f"TrtPyExecutionProvider: unknown program id {program_id} (already released?)")
    return p


# ------------------------------------------------------------------------------------------------ EP --

def create_ep(options_json: str, device_json: str) -> tuple[int, int]:
    """Validate options, create the EP object. Returns (ep_id, cuda device ordinal or -1)."""
    global _said_reference
    raw = json.loads(options_json or "{}")
    if not isinstance(raw, dict):
        raise ValueError("TrtPyExecutionProvider: provider options must be a key/value map")
    options = parse({str(k): str(v) for k, v in raw.items()})
    if options.detailed_build_log:
        log.setLevel(logging.INFO)
    dev = json.loads(device_json or "{}")
    backend = str(dev.get("backend", "reference"))
    if backend not in ("cuda", "reference"):
        raise ValueError(f"TrtPyExecutionProvider: unknown backend {backend!r} in the device description")
    device = CPU
    if backend == "cuda":
        devices = list(dev.get("devices") or [])
        if not devices:
            raise ValueError("TrtPyExecutionProvider: the cuda backend was selected but ORT gave this EP no device")
        offered = [int(d.get("device_id", -1)) for d in devices]
        if options.device_id not in offered:  # raises, naming the CUDA devices present
            named = [(int(d.get("device_id", -1)), str(d.get("name", "cuda"))) for d in devices]
            check_device_id(options.device_id, offered=offered, devices=present_devices() or named)
        chosen = devices[offered.index(options.device_id)]
        cc = chosen.get("cc") or [0, 0]
        device = Device(int(chosen.get("device_id", 0)), str(chosen.get("name", "cuda")), (int(cc[0]), int(cc[1])))
    else:
        check_device_id(options.device_id, devices=[])  # the reference backend: device_id 0 or none
    with _lock:
        if backend != "cuda" and not _said_reference:  # the shim warns once itself; a note for build logs
            _said_reference = True
            log.info("TrtPyExecutionProvider: reference backend: claimed subgraphs run with numpy")
        ep_id = next(_ids)
        _eps[ep_id] = _EP(ep_id, options, backend, device)
    return ep_id, device.ordinal if backend == "cuda" else -1


def release_ep(ep_id: int) -> None:
    with _lock:
        _eps.pop(int(ep_id), None)
        for pid in [pid for pid, p in _programs.items() if p.ep.id == int(ep_id)]:
            del _programs[pid]


# ------------------------------------------------------------------------------------------ partition --

def get_capability(ep_id: int, graph_json: str, initializers: list[np.ndarray]) -> list[list[int]]:
    """Clusters of node indices (into graph_json["nodes"]) to claim, one list per fused subgraph."""
    from graph_partitioner import partition as partition_module

    ep = _ep(ep_id)
    doc = json.loads(graph_json)
    if doc.get("parent_node") is not None:
        # ORT offers the bodies of If/Loop/Scan separately. Engines inside control flow are not supported yet:
        # the bodies run on ORT's CPU provider (the control-flow node itself is refused by the support rules).
        log.info("TrtPyExecutionProvider: not claiming inside the body of control-flow node '%s'",
                 doc["parent_node"])
        return []
    contexts = [[k] for k, nd in enumerate(doc.get("nodes") or []) if is_ours(nd)]  # one fused node each
    if contexts:
        # A context model: its writer left the other nodes to ORT on purpose; claiming them would build engines.
        log.info("TrtPyExecutionProvider: claimed the %d EPContext nodes of graph '%s'; its %d other nodes stay "
                 "with ORT", len(contexts), doc.get("name"), len(doc.get("nodes") or []) - len(contexts))
        return contexts
    graph = graph_from_export(doc, initializers)
    from ep_trtpy.builder.passes.quantize_calibrated import QuantizationError, require_scales

    try:  # the whole model is visible only here; an error in GetCapability would not stop the session: Compile raises
        require_scales(ep.options, graph, f"model '{graph.model_path or graph.name}'")
    except QuantizationError as e:
        ep.error = str(e)
    if ep.options.profiles and not ep.error:  # a profile naming an input the model lacks is a typo, not a no-op
        from ep_trtpy.profiles import unknown_names

        typos = unknown_names(ep.options.profiles, [v.name for v in graph.inputs])
        if typos:
            ep.error = typos[0]
    refused = None
    if ep.backend == "cuda":  # ops whose GPU kernels do not exist yet run on ORT's CPU provider
        from ep_trtpy.builder.lowering.quantize import gpu_refusals

        refused = gpu_refusals()
    result = partition_module.partition(graph, ep.options.min_subgraph_size, ep.options.op_types_to_exclude,
                                        refused)
    clusters = [[int(n.index) for n in cluster] for cluster in result.clusters]
    claimed = sum(len(c) for c in clusters)
    log.info("TrtPyExecutionProvider: claimed %d of %d nodes in %d clusters (graph '%s')", claimed, len(graph.nodes),
             len(clusters), graph.name)
    if ep.options.detailed_build_log:
        for name, reason in result.reasons.items():
            log.info("  not claimed: '%s': %s", name, reason)
    return clusters


# -------------------------------------------------------------------------------------------- compile --

def _safe_file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:200] or "subgraph"


def _subgraph(doc: dict, initializers: list[np.ndarray]) -> tuple[Graph, list[int]]:
    """The subgraph IR with engine inputs/outputs ordered for the fused node, and runtime input indices."""
    fused = doc.get("fused_node")
    if not isinstance(fused, dict):
        raise ValueError("TrtPyExecutionProvider: compile() got a graph document without 'fused_node'")
    graph = graph_from_export(doc, initializers)
    graph.name = str(fused.get("name") or graph.name)
    fin = [str(n) for n in fused.get("inputs", [])]
    pos = {n: i for i, n in reversed(list(enumerate(fin)))}
    runtime = [v for v in graph.inputs if v.const is None]
    declared = {id(v) for v in runtime}
    for n in graph.nodes:
        for v in n.inputs:
            if v is not None and v.const is None and v.producer is None and id(v) not in declared:
                raise ValueError(f"TrtPyExecutionProvider: fused node '{graph.name}': value '{v.name}' read by "
                                 f"'{n.name}' is neither a subgraph input, a constant nor computed inside")
    missing = [v.name for v in runtime if v.name not in pos]
    if missing:
        raise ValueError(f"TrtPyExecutionProvider: fused node '{graph.name}': subgraph input(s) "
                         f"{', '.join(missing)} are not inputs of the fused node")
    graph.inputs = runtime
    outs = []
    for name in fused.get("outputs", []):
        v = graph.values.get(str(name))
        if v is None:
            raise ValueError(f"TrtPyExecutionProvider: fused node '{graph.name}': output '{name}' is not a value of "
                             f"the subgraph")
        outs.append(v)
    graph.outputs = outs
    return graph, [pos[v.name] for v in runtime]


def _register(prog: _Program) -> _Program:
    with _lock:
        prog.id = next(_ids)
        _programs[prog.id] = prog
    return prog


def _compile_context(ep: _EP, doc: dict, initializers: list[np.ndarray]) -> tuple[int, list[int]]:
    """A program from an EPContext node: its engine, checked against this session; nothing is built."""
    global _context_engines
    loaded = load_node(doc, initializers, Settings.from_session(ep.options.session), ep.backend, ep.device)
    art = loaded.artifact
    if ep.backend == "cuda":
        art.engine = instantiate(art, ep.device, ep.options)  # the plan as it is: its layers keep their tactics
    io = Graph(loaded.node_name)  # the engine's inputs and outputs, as its header declares them

    def value(d: dict) -> Any:
        return io.values.get(d["name"]) or io.add_value(d["name"], d["dtype"], tuple(d["shape"]), unique=False)

    io.inputs = [value(d) for d in loaded.header["inputs"]]
    io.outputs = [value(d) for d in loaded.header["outputs"]]
    prog = _Program(0, ep, loaded.node_name, io, loaded.runtime_inputs, str(loaded.header["graph_hash"]),
                    model_path=str(doc.get("model_path") or ""), context=loaded.node_name)
    prog.artifacts[tuple(tuple(int(d) for d in s) for s in art.input_shapes)] = art
    _register(prog)
    with _lock:
        _context_engines += 1
    log.info("TrtPyExecutionProvider: EPContext node '%s': engine loaded, nothing built", loaded.node_name)
    return prog.id, loaded.runtime_inputs


def compile(ep_id: int, graph_json: str, initializers: list[np.ndarray]) -> tuple[int, list[int]]:  # noqa: A001
    """Compile one fused subgraph. Returns (program_id, runtime input indices into fused_node.inputs)."""
    ep = _ep(ep_id)
    if ep.error:
        raise ValueError(f"TrtPyExecutionProvider: {ep.error}")
    doc = json.loads(graph_json)
    if any(is_ours(nd) for nd in doc.get("nodes") or []):
        return _compile_context(ep, doc, initializers)
    graph, runtime_inputs = _subgraph(doc, initializers)
    if ep.options.dump_subgraphs:
        from graph_partitioner.onnx_io import graph_to_onnx

        folder = os.path.join(ep.options.cache_dir, "subgraphs")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, _safe_file_name(graph.name) + ".onnx")
        with open(path, "wb") as f:
            f.write(graph_to_onnx(graph).SerializeToString())
        log.info("TrtPyExecutionProvider: wrote subgraph %s", path)
    prog = _register(_Program(0, ep, graph.name, graph, runtime_inputs, graph_hash(graph),
                              model_path=str(doc.get("model_path") or "")))
    try:
        if all(is_static(v.shape) for v in graph.inputs):
            _artifact(prog, [tuple(v.shape) for v in graph.inputs])  # type: ignore[arg-type]
        else:
            prog.families = Families(graph, ep.options, graph.name)
            for profile in prog.families.profiles:  # as ORT's TensorRT EP: built with the session
                _artifact(prog, list(prog.families.opt_shapes(profile)))
    except BaseException:
        release_program(prog.id)
        raise
    return prog.id, runtime_inputs


def _obtain(prog: _Program, shapes: tuple[tuple[int, ...], ...], dump: Any) -> Obtained:
    """Build (or load) the engine of a family, or specialize one from it (ep_trtpy/builder/specialize.py)."""
    global _specializations
    fams = prog.families

    def whole() -> Obtained:  # an engine built (or loaded) for exactly these shapes
        return get_or_build(prog.graph, list(shapes), prog.ep.options, prog.ep.backend, prog.ep.device,
                            counters=_counters, ghash=prog.ghash, dump=dump,
                            memo=fams.memo if fams is not None else None)

    fam = fams.family_of(shapes) if fams is not None else None
    if fam is None or fam.opt == shapes:
        return whole()
    from ep_trtpy.builder.specialize import specialize, weight_base

    family = _artifact(prog, list(fam.opt))  # built once (other threads wait for it), then shared
    t0 = time.perf_counter()
    if prog.ep.backend == "cuda":
        with prog.lock:
            if fam.base is None:
                fam.base = weight_base(family)
    try:
        art = specialize(prog.graph, list(shapes), prog.ep.options, prog.ep.backend, prog.ep.device, family,
                         memo=fams.memo, base=fam.base)  # type: ignore[union-attr]
    except Exception as e:  # a specialization that fails is not the user's problem: build these shapes whole
        log.warning("TrtPyExecutionProvider: fused subgraph '%s': the engine for %s could not be specialized from "
                    "its family's (%s: %s); building it on its own", prog.name,
                    ", ".join(f"{v.name}:{'x'.join(map(str, s))}" for v, s in zip(prog.graph.inputs, shapes)),
                    type(e).__name__, e)
        return whole()
    with _lock:
        _specializations += 1
    return Obtained(art, "specialized", None, "", prog.ghash, time.perf_counter() - t0)


def _artifact(prog: _Program, shapes: list[tuple[int, ...]]) -> EngineArtifact:
    """The program's engine for these shapes: from memory, else one build (or engine cache load) per shape key.

    The program lock is held only to look up and to register a build, never during one: runs of shapes that
    already have an engine go on while a new shape builds, and a second thread asking for the shape being built
    waits for that build (its artifact, or its error) instead of starting another."""
    shapes_t = tuple(tuple(int(d) for d in s) for s in shapes)
    if len(shapes_t) != len(prog.graph.inputs):
        raise ValueError(f"TrtPyExecutionProvider: program '{prog.name}' has {len(prog.graph.inputs)} inputs but "
                         f"{len(shapes_t)} shapes were given")
    with prog.lock:
        art = prog.artifacts.get(shapes_t)
        if art is not None:
            return art
        if prog.context:
            (have,) = prog.artifacts

            def text(shapes: tuple[tuple[int, ...], ...]) -> str:
                return ", ".join(f"{v.name}:{'x'.join(map(str, s)) or 'scalar'}"
                                 for v, s in zip(prog.graph.inputs, shapes))

            raise ContextError(f"TrtPyExecutionProvider: EPContext node '{prog.context}' holds an engine for "
                               f"{text(have)}, not {text(shapes_t)}; write the context model for the shapes "
                               f"you run (ep-trtpy build MODEL --shapes ... -o CONTEXT.onnx)")
        pending = prog.building.get(shapes_t)
        mine = pending is None
        if mine:
            pending = prog.building[shapes_t] = _Build()
    if not mine:
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.artifact is not None
        return pending.artifact
    got = None
    try:
        observer = _observer
        dump = observer.dump(prog.name) if observer is not None and observer.dump is not None else None
        got = _obtain(prog, shapes_t, dump)
        pending.artifact = got.artifact
        if observer is not None:
            observer.records.append(BuildRecord(prog.name, len(prog.graph.nodes),
                                                {v.name: s for v, s in zip(prog.graph.inputs, shapes_t)}, got))
    except BaseException as e:
        pending.error = e
        raise
    finally:
        with prog.lock:
            if got is not None:
                prog.artifacts[shapes_t] = got.artifact
                prog.obtained[shapes_t] = got
            del prog.building[shapes_t]  # a failed build is tried again by the next run that needs it
        pending.done.set()
    return got.artifact


def get_engine(program_id: int, shapes: list[tuple[int, ...]]) -> Any:
    """An ep_trtpy._kernels.Engine for these runtime-input shapes (memory, engine cache, or a build)."""
    prog = _program(program_id)
    if prog.ep.backend != "cuda":
        raise ValueError(f"TrtPyExecutionProvider: program '{prog.name}' runs on the reference backend; it has no "
                         f"native engine")
    art = _artifact(prog, list(shapes))
    if art.engine is None:
        raise ValueError(f"TrtPyExecutionProvider: program '{prog.name}': no native engine was created")
    return art.engine


def _outputs_in_order(result: Any, graph: Graph) -> list[np.ndarray]:
    if isinstance(result, dict):
        return [np.asarray(result[v.name]) for v in graph.outputs]
    return [np.asarray(r) for r in result]


def run_reference(program_id: int, inputs: list[np.ndarray],
                  alloc: Callable[[int, tuple[int, ...]], np.ndarray]) -> None:
    """Run the program on the numpy reference backend; alloc(i, shape) returns the writable output array.

    ``inputs`` are read-only views of ORT's memory and alloc's arrays are views of ORT's outputs: both are valid
    only during this call (copy what must outlive it)."""
    global _reference_runs
    from ep_trtpy.ops.executor import run_graph

    prog = _program(program_id)
    gin = prog.graph.inputs
    if len(inputs) != len(gin):
        raise ValueError(f"TrtPyExecutionProvider: program '{prog.name}' takes {len(gin)} inputs, got {len(inputs)}")
    arrays = [np.asarray(x) for x in inputs]
    for v, x in zip(gin, arrays):
        if v.dtype is not None and elem_type(x.dtype) != v.dtype:
            raise ValueError(f"TrtPyExecutionProvider: input '{v.name}' of '{prog.name}' is {x.dtype}, expected "
                             f"{dtype_name(v.dtype)}")
    art = _artifact(prog, [tuple(x.shape) for x in arrays])
    feeds = {name: x for name, x in zip([v.name for v in art.graph.inputs], arrays)}
    outs = _outputs_in_order(run_graph(art.graph, feeds), art.graph)
    if len(outs) != len(art.outputs):
        raise ValueError(f"TrtPyExecutionProvider: program '{prog.name}' produced {len(outs)} outputs, expected "
                         f"{len(art.outputs)}")
    for i, (arr, (dt, shape)) in enumerate(zip(outs, art.outputs)):
        if elem_type(arr.dtype) != dt or tuple(arr.shape) != tuple(shape):
            raise ValueError(f"TrtPyExecutionProvider: output {i} of '{prog.name}' came out as {arr.dtype}"
                             f"{list(arr.shape)}, expected {dtype_name(dt)}{shape_str(tuple(shape))}")
        buf = alloc(i, tuple(int(d) for d in arr.shape))
        if buf is None:
            raise ValueError(f"TrtPyExecutionProvider: could not allocate output {i} of '{prog.name}'")
        if tuple(buf.shape) != tuple(arr.shape) or buf.dtype != arr.dtype:
            raise ValueError(f"TrtPyExecutionProvider: ORT's buffer for output {i} of '{prog.name}' is {buf.dtype}"
                             f"{list(buf.shape)}, the engine produces {arr.dtype}{list(arr.shape)}")
        np.copyto(buf, arr)
    with _lock:
        _reference_runs += 1


def _engine_file(prog: _Program, shapes: tuple[tuple[int, ...], ...]) -> tuple[bytes, dict[str, Any]]:
    """The engine file of one of the program's engines (the cache file it was loaded from, else encoded now) and
    its decoded header."""
    with prog.lock:
        got = prog.obtained[shapes]
    data = None
    if got.source == "cache" and got.path:
        try:  # through the engine cache's checks (a regular file of sane size, no outward symlink)
            data = read_cache_file(got.path, ENGINE_FILE_LIMIT, prog.ep.options.cache_dir)
        except OSError:  # gone, or no longer a regular file: the engine in memory is encoded instead
            data = None
    if data is None:
        data = encode(got.artifact, key=got.key, graph_hash=got.graph_hash,
                      producers=producer_versions(prog.ep.backend), options=prog.ep.options.engine_key_items())
    # the same engine (another process may have replaced the cache file since), whole
    return data, decode(data, expect_key=got.key).header


def context_node(program_id: int) -> tuple[str, list[tuple[str, int | bytes]]]:
    """(node name, attributes) of the EPContext node standing for this program in the context model ORT writes
    (ep.context_enable=1); the engine for the program's shapes is obtained now."""
    prog = _program(program_id)
    if prog.context:
        raise ContextError(f"TrtPyExecutionProvider: the model already is an EPContext model (node "
                           f"'{prog.context}'); load it without ep.context_enable=1")
    settings = Settings.from_session(prog.ep.options.session)
    shapes = tuple(concrete_shapes(prog.name, [(v.name, v.shape) for v in prog.graph.inputs]))
    _artifact(prog, list(shapes))  # not under prog.lock: a build of these shapes on another thread is waited for
    data, header = _engine_file(prog, shapes)
    return node_attributes(prog.name, data, header, settings, prog.model_path)


@contextmanager
def observe_builds(dump: Callable[[str], Any] | None = None) -> Iterator[list[BuildRecord]]:
    """Collect every engine programs obtain (built or from the engine cache) while active; ``dump(program name)``
    gives the pass pipeline's dump hook for a build. Process-wide, one at a time (``ep-trtpy build``)."""
    global _observer
    records: list[BuildRecord] = []
    with _lock:
        if _observer is not None:
            raise RuntimeError("observe_builds() is already active in this process")
        _observer = _Observer(records, dump)
    try:
        yield records
    finally:
        with _lock:
            _observer = None


def release_program(program_id: int) -> None:
    with _lock:
        _programs.pop(int(program_id), None)


def stats() -> dict[str, int]:
    """Builder counters: builds, engine cache hits/misses/rejects, reference runs, live programs."""
    with _lock:
        out = _counters.as_dict()
        out["reference_runs"] = _reference_runs
        out["context_engines"] = _context_engines
        out["specializations"] = _specializations
        out["programs"] = len(_programs)
    return out


def reset_stats() -> None:
    global _reference_runs, _context_engines, _specializations
    _counters.reset()
    with _lock:
        _reference_runs = 0
        _context_engines = 0
        _specializations = 0
