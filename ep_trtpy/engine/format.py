"""The engine file: a versioned, checksummed container that is safe to read from untrusted sources.

Layout (little endian)::

    offset  size  field
    0       8     magic b"TRTPYENG"
    8       4     format version (uint32), FORMAT_VERSION
    12      4     header length H (uint32)
    16      8     graph length G (uint64)
    24      8     weights length W (uint64)
    32      8     tactic-state length T (uint64)
    40      H     header: UTF-8 JSON object (see below)
    40+H    G     graph: the optimized graph as an ONNX ModelProto (graph_partitioner.onnx_io.graph_to_onnx)
    40+H+G  W     weights blob (cuda backend: the plan's weight tensors at their offsets)
    40+H+G+W T    tactic states: each layer's ``tactic_state`` bytes (serialized cuDNN plans), back to back
    end-32  32    SHA-256 of every byte before it
    [then, in files written with engine_cache_hmac_key: 8 bytes TAG_MAGIC + 32 bytes HMAC-SHA256 of every byte
     before them; decode ignores this trailer, engine/cache.py checks it]

Header keys: ``format_version``, ``key`` (the engine cache key), ``graph_hash``, ``producers`` (ep_trtpy,
onnxruntime, onnx and, for cuda, the native libraries' versions), ``backend``, ``device`` ({name, cc}),
``inputs`` / ``outputs`` ([{name, dtype, shape}]), ``options`` (the options that shape the engine), ``plan``
(Plan.to_dict(), cuda only), ``fusions`` (layer/node name -> original nodes), ``passes`` (per-pass timings),
``build_seconds``, ``created_unix``, ``graph_constants_stripped``, ``tactic_states`` (cuda: one ``[offset,
length]`` into the tactic-state section per plan layer).

Version 2 added the tactic-state section: loading a cached engine then restores its cuDNN plans instead of
compiling them again (ResNet-50: 18 runtime-compiled convolutions, ~60 ms each). Files of version 1 are refused
like any other version, which the engine cache turns into a rebuild.

For cuda engines the plan and the weights blob are what runs; the graph is kept for ``ep-trtpy inspect`` and its
large constants are stripped (marked as external data "stripped"). For the reference backend the graph with all
its constants is what runs.

:func:`decode` checks the magic, version, every length and offset, the checksum, the header's structure, the
plan's tensor/layer references against the weights blob, and optionally the expected cache key; any problem is an
:class:`EngineFormatError` naming it. Nothing here uses pickle or eval.
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
from dataclasses import dataclass
from typing import Any

from ep_trtpy.engine.artifact import BACKENDS, Device, EngineArtifact
from ep_trtpy.engine.plan import TENSOR_KINDS, Plan, nbytes_of
from graph_partitioner.ir import Graph

MAGIC = b"TRTPYENG"
FORMAT_VERSION = 2
_PREFIX = struct.Struct("<8sIIQQQ")
CHECKSUM_BYTES = 32
STRIP_ABOVE_BYTES = 1024
HEADER_LIMIT = 256 << 20
"""The largest JSON header decoded (a plan of many thousand layers is a few MB)."""
TAG_MAGIC = b"TRTPYMAC"
TAG_BYTES = len(TAG_MAGIC) + 32


class EngineFormatError(ValueError):
    """An engine file cannot be used (the message says why: bad magic, version, truncation, checksum, key...)."""


@dataclass
class DecodedEngine:
    header: dict[str, Any]
    graph_bytes: bytes
    weights: bytes
    plan: Plan | None  # with each layer's tactic_state filled from the tactic-state section

    def model(self) -> Any:
        """The graph section as an onnx ModelProto."""
        import onnx

        m = onnx.ModelProto()
        try:
            m.ParseFromString(self.graph_bytes)
        except Exception as e:  # protobuf's DecodeError and friends
            raise EngineFormatError(f"the graph section is not a valid ONNX model: {e}") from None
        return m


# ------------------------------------------------------------------------------------------- encoding --

def _strip_constants(model: Any) -> bool:
    """Replace the data of large initializers by an external-data marker (shapes and dtypes stay)."""
    from onnx import TensorProto

    stripped = False
    for t in model.graph.initializer:
        if t.ByteSize() <= STRIP_ABOVE_BYTES:
            continue
        for f in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data"):
            t.ClearField(f)
        t.data_location = TensorProto.EXTERNAL
        del t.external_data[:]
        e = t.external_data.add()
        e.key, e.value = "location", "stripped"
        stripped = True
    return stripped


def _io(art: EngineArtifact) -> tuple[list[dict], list[dict]]:
    ins = [{"name": v.name, "dtype": int(v.dtype or 0), "shape": list(v.static_shape)} for v in art.graph.inputs]
    outs = [{"name": v.name, "dtype": int(dt), "shape": list(shape)}
            for v, (dt, shape) in zip(art.graph.outputs, art.outputs)]
    return ins, outs


def _jsonable(v: Any) -> Any:
    """numpy scalars and arrays (e.g. in a lowering's layer metadata) as plain JSON values."""
    import numpy as np

    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (set, frozenset)):
        return sorted(v)
    raise TypeError(f"engine header: {type(v).__name__} is not JSON serializable")


def _tactic_states(plan: Plan | None) -> tuple[bytes, list[list[int]]]:
    """The tactic-state section and each layer's [offset, length] in it."""
    if plan is None:
        return b"", []
    spans, offset = [], 0
    for layer in plan.layers:
        spans.append([offset, len(layer.tactic_state)])
        offset += len(layer.tactic_state)
    return b"".join(bytes(layer.tactic_state) for layer in plan.layers), spans


def encode(art: EngineArtifact, *, key: str, graph_hash: str, producers: dict[str, str],
           options: dict[str, Any]) -> bytes:
    """The engine file bytes of an artifact."""
    from graph_partitioner.onnx_io import graph_to_onnx

    if art.plan is not None and art.plan.shared_weights_bytes:
        raise ValueError(f"an engine that shares {art.plan.shared_weights_bytes} weight bytes with another engine "
                         f"lives only in memory and cannot be encoded")

    model = graph_to_onnx(art.graph)
    stripped = _strip_constants(model) if art.backend == "cuda" else False
    graph_bytes = model.SerializeToString()
    ins, outs = _io(art)
    states, spans = _tactic_states(art.plan)
    header = {
        "format_version": FORMAT_VERSION, "key": key, "graph_hash": graph_hash, "producers": dict(producers),
        "backend": art.backend, "device": art.device.to_dict(), "inputs": ins, "outputs": outs,
        "options": options, "plan": art.plan.to_dict() if art.plan is not None else None,
        "fusions": art.fusions, "passes": art.passes, "build_seconds": round(float(art.build_seconds), 6),
        "created_unix": int(time.time()), "graph_constants_stripped": stripped,
    }
    if art.plan is not None:
        header["tactic_states"] = spans
    hbytes = json.dumps(header, separators=(",", ":"), sort_keys=True, default=_jsonable).encode("utf-8")
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(hbytes), len(graph_bytes), len(art.weights), len(states))
    parts = (prefix, hbytes, graph_bytes, art.weights, states)
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return b"".join((*parts, digest.digest()))  # the only copy of the (bytes-like) weights


# ------------------------------------------------------------------------------------------- decoding --

def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise EngineFormatError(msg)


def _check_header(h: Any) -> None:
    _require(isinstance(h, dict), "the header is not a JSON object")
    need = {"format_version": int, "key": str, "graph_hash": str, "producers": dict, "backend": str, "device": dict,
            "inputs": list, "outputs": list, "options": dict, "fusions": dict, "build_seconds": (int, float)}
    for k, t in need.items():
        _require(k in h, f"the header has no '{k}'")
        _require(isinstance(h[k], t) and not (t is int and isinstance(h[k], bool)),
                 f"the header's '{k}' has the wrong type ({type(h[k]).__name__})")
    _require(h["format_version"] == FORMAT_VERSION, f"the header says format version {h['format_version']}")
    _require(h["backend"] in BACKENDS, f"unknown backend {h['backend']!r} in the header")
    for what in ("inputs", "outputs"):
        for k, io in enumerate(h[what]):
            _require(isinstance(io, dict) and isinstance(io.get("name"), str) and isinstance(io.get("dtype"), int)
                     and isinstance(io.get("shape"), list)
                     and all(isinstance(d, int) and d >= 0 for d in io["shape"]),
                     f"header {what}[{k}] is malformed")
    dev = h["device"]
    _require(isinstance(dev.get("name"), str) and isinstance(dev.get("cc"), list) and len(dev["cc"]) == 2
             and all(isinstance(c, int) for c in dev["cc"]), "the header's device is malformed")


def _check_plan(plan: Plan, weights_len: int, n_in: int, n_out: int) -> None:
    n = len(plan.tensors)
    _require(plan.shared_weights_bytes == 0, f"the plan shares {plan.shared_weights_bytes} weight bytes with another "
                                             f"engine, which a file cannot hold")
    _require(plan.weights_bytes == weights_len, f"the plan expects {plan.weights_bytes} weight bytes but the file "
                                                f"has {weights_len}")
    _require(plan.n_inputs == n_in and plan.n_outputs == n_out,
             f"the plan has {plan.n_inputs} inputs / {plan.n_outputs} outputs, the header {n_in} / {n_out}")
    _require(plan.arena_bytes >= 0, "the plan's arena size is negative")
    for i, t in enumerate(plan.tensors):
        _require(t.id == i, f"plan tensor {i} has id {t.id}")
        _require(t.kind in TENSOR_KINDS, f"plan tensor {i} has unknown kind {t.kind!r}")
        _require(t.nbytes >= 0 and t.offset >= 0 and all(d >= 0 for d in t.shape), f"plan tensor {i} ('{t.name}') "
                                                                                    f"has a negative size or offset")
        try:
            size = nbytes_of(t.dtype, t.shape)
        except ValueError:
            raise EngineFormatError(f"plan tensor {i} ('{t.name}') has unknown dtype {t.dtype}") from None
        _require(size == t.nbytes, f"plan tensor {i} ('{t.name}') claims {t.nbytes} bytes for {size}")
        if t.kind == "weight":
            _require(t.offset + t.nbytes <= weights_len, f"weight tensor {i} ('{t.name}') lies outside the weights "
                                                         f"blob ({t.offset}+{t.nbytes} > {weights_len})")
        elif t.kind == "activation":
            _require(t.offset + t.nbytes <= plan.arena_bytes or t.nbytes == 0,
                     f"activation tensor {i} ('{t.name}') lies outside the arena")
        elif t.kind == "alias":
            _require(0 <= t.index < n and t.index != i, f"alias tensor {i} ('{t.name}') views tensor {t.index}")
            base = plan.tensors[t.index]
            _require(t.offset + t.nbytes <= max(base.nbytes, 0) or base.kind == "alias",
                     f"alias tensor {i} ('{t.name}') reaches beyond the tensor it views")
        elif t.kind == "input":
            _require(0 <= t.index < n_in, f"input tensor {i} ('{t.name}') names input {t.index}")
        elif t.kind == "output":
            _require(0 <= t.index < n_out, f"output tensor {i} ('{t.name}') names output {t.index}")
    for k, layer in enumerate(plan.layers):
        for tid in list(layer.inputs) + list(layer.outputs):
            _require(-1 <= tid < n, f"layer {k} ('{layer.name}') refers to tensor {tid} of {n}")
        _require(layer.workspace >= 0, f"layer {k} ('{layer.name}') has a negative workspace")


def _restore_states(plan: Plan, spans: Any, section: bytes) -> None:
    _require(isinstance(spans, list) and len(spans) == len(plan.layers),
             f"the header's tactic_states must list one span per plan layer ({len(plan.layers)})")
    for k, span in enumerate(spans):
        _require(isinstance(span, list) and len(span) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                    and v >= 0 for v in span)
                 and span[0] + span[1] <= len(section),
                 f"layer {k}'s tactic state {span!r} lies outside the tactic-state section ({len(section)} bytes)")
        plan.layers[k].tactic_state = section[span[0]:span[0] + span[1]]


def split_tag(data: bytes) -> tuple[bytes, bytes | None]:
    """(engine bytes, HMAC tag) of a file that ends in the TAG_MAGIC trailer, else (data, None)."""
    if len(data) >= _PREFIX.size + CHECKSUM_BYTES + TAG_BYTES and data[-TAG_BYTES:-32] == TAG_MAGIC:
        return data[:-TAG_BYTES], data[-32:]
    return data, None


def _check_io(where: str, tensors: list[tuple[str, int, int | None, tuple[Any, ...] | None]],
              header: dict[str, Any]) -> None:
    """Every (kind, index, dtype, shape) of the plan's or the graph section's inputs and outputs is what the
    header says (unknown dtypes and shapes are not compared)."""
    for kind, index, dtype, shape in tensors:
        if kind not in ("input", "output"):
            continue
        io = header[kind + "s"][index]
        _require(dtype is None or dtype == io["dtype"], f"the {where}'s {kind} {index} has dtype {dtype}, the "
                                                        f"header says {io['dtype']}")
        _require(shape is None or list(shape) == list(io["shape"]), f"the {where}'s {kind} {index} has shape "
                                                                    f"{list(shape)}, the header says {io['shape']}")


def decode(data: bytes, expect_key: str | None = None) -> DecodedEngine:
    """Parse and validate engine file bytes; raises EngineFormatError naming the problem. An HMAC trailer is
    skipped, not checked (engine/cache.py does that)."""
    data = memoryview(split_tag(data if isinstance(data, bytes) else bytes(data))[0])  # slices below copy nothing
    if len(data) < 8 or bytes(data[:8]) != MAGIC:
        raise EngineFormatError("not an ep_trtpy engine file (bad magic bytes)")
    if len(data) < 12:
        raise EngineFormatError(f"truncated: {len(data)} bytes, the fixed header alone needs {_PREFIX.size}")
    version = struct.unpack_from("<I", data, 8)[0]
    if version != FORMAT_VERSION:
        raise EngineFormatError(f"unsupported engine format version {version} (this ep_trtpy reads version "
                                f"{FORMAT_VERSION})")
    if len(data) < _PREFIX.size:
        raise EngineFormatError(f"truncated: {len(data)} bytes, the fixed header alone needs {_PREFIX.size}")
    _magic, _version, hlen, glen, wlen, slen = _PREFIX.unpack_from(data, 0)
    if hlen > HEADER_LIMIT:
        raise EngineFormatError(f"the header claims {hlen} bytes, more than the {HEADER_LIMIT} ep_trtpy reads")
    expected = _PREFIX.size + hlen + glen + wlen + slen + CHECKSUM_BYTES
    if len(data) < expected:
        raise EngineFormatError(f"truncated: {len(data)} bytes, the sections need {expected}")
    if len(data) > expected:
        raise EngineFormatError(f"{len(data) - expected} unexpected bytes after the checksum")
    body, digest = data[:-CHECKSUM_BYTES], data[-CHECKSUM_BYTES:]
    if hashlib.sha256(body).digest() != digest:
        raise EngineFormatError("checksum mismatch (the file is corrupt)")
    p = _PREFIX.size
    try:
        header = json.loads(bytes(data[p:p + hlen]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise EngineFormatError(f"the header is not valid JSON: {type(e).__name__}: {e}") from None
    _check_header(header)
    if expect_key is not None and header["key"] != expect_key:
        raise EngineFormatError(f"key mismatch: the file holds engine {header['key'][:16]}, expected "
                                f"{expect_key[:16]}")
    graph_bytes = bytes(data[p + hlen:p + hlen + glen])
    weights = bytes(data[p + hlen + glen:p + hlen + glen + wlen])
    plan = None
    if header["backend"] == "cuda":
        _require(isinstance(header.get("plan"), dict), "a cuda engine without a plan")
        try:
            plan = Plan.from_dict(header["plan"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise EngineFormatError(f"the plan is malformed: {e!r}") from None
        _check_plan(plan, len(weights), len(header["inputs"]), len(header["outputs"]))
        _check_io("plan", [(t.kind, t.index, t.dtype, tuple(t.shape)) for t in plan.tensors], header)
        states = bytes(data[p + hlen + glen + wlen:p + hlen + glen + wlen + slen])
        _restore_states(plan, header.get("tactic_states"), states)
    elif wlen or slen:
        raise EngineFormatError("a reference engine must not carry a weights blob or tactic states")
    return DecodedEngine(header, graph_bytes, weights, plan)


def to_artifact(dec: DecodedEngine) -> EngineArtifact:
    """An EngineArtifact from a decoded file (the reference backend's graph is parsed; cuda keeps its plan)."""
    h = dec.header
    if h["backend"] == "reference" or not h.get("graph_constants_stripped", False):
        from graph_partitioner.onnx_io import graph_from_onnx

        try:
            graph = graph_from_onnx(dec.model())
        except EngineFormatError:
            raise
        except Exception as e:  # a malformed model is a format problem, whatever the parser raises
            raise EngineFormatError(f"the graph section cannot be read: {e}") from None
        _require(len(graph.inputs) == len(h["inputs"]) and len(graph.outputs) == len(h["outputs"]),
                 "the graph's inputs/outputs do not match the header")
        _check_io("graph", [("input", k, v.dtype, v.shape) for k, v in enumerate(graph.inputs)]
                  + [("output", k, v.dtype, v.shape) for k, v in enumerate(graph.outputs)], h)
    else:
        graph = Graph(str(h.get("graph_hash", "engine"))[:16])
    dev = h["device"]
    art = EngineArtifact(backend=h["backend"], graph=graph, input_names=[io["name"] for io in h["inputs"]],
                         input_shapes=[tuple(io["shape"]) for io in h["inputs"]],
                         outputs=[(int(io["dtype"]), tuple(io["shape"])) for io in h["outputs"]],
                         device=Device(-1, dev["name"], (int(dev["cc"][0]), int(dev["cc"][1]))), plan=dec.plan,
                         weights=dec.weights, fusions=dict(h.get("fusions", {})), passes=list(h.get("passes", [])),
                         build_seconds=float(h["build_seconds"]), header=h)
    return art
