"""Loading EPContext nodes: claim ours, read the engine they carry, and refuse one this session cannot run.

GetCapability claims every node :func:`is_ours` says is ours, one fused node each (ep_trtpy/_host.py). Compile then
gets a graph holding that single node; :func:`load_node` reads its engine (embedded, or the file beside the model),
decodes it (ep_trtpy/engine/format.py: magic, format version, checksum, header) and compares the header with this
session: ep_trtpy version, backend, GPU compute capability and, for GPU engines, the native library versions
(cuDNN, cuBLASLt...). Any difference is a :class:`ContextError` that names each difference and the command that
rebuilds the context model; nothing is ever built here. A different GPU name with the same compute capability is
only a warning (tactics were timed on the other GPU).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ep_trtpy._version import __version__
from ep_trtpy.builder.build import producer_versions
from ep_trtpy.engine.artifact import Device, EngineArtifact
from ep_trtpy.engine.cache import UnsafeCacheFile, read_cache_file
from ep_trtpy.engine.format import MAGIC, EngineFormatError, decode, to_artifact
from ep_trtpy.epcontext.node import DOMAIN, OP_TYPE, SOURCE, ContextError, Settings

log = logging.getLogger("ep_trtpy")

MAX_ENGINE_FILE_BYTES = 64 * 2**30
"""An engine file beside a context model larger than this is refused unread (a guard against /dev/zero and such)."""
_NOT_ENGINE_PRODUCERS = ("ep_trtpy", "onnx", "onnxruntime")  # versions that do not change what an engine runs


def _attr(node: Mapping[str, Any], name: str, initializers: Sequence[Any] = ()) -> Any:
    """A node attribute's value from the shim's graph document (large strings arrive as bytes beside it)."""
    spec = (node.get("attrs") or {}).get(name)
    if not isinstance(spec, Mapping):
        return None
    if spec.get("type") == "bytes":
        k = int(spec.get("index", -1))
        if not 0 <= k < len(initializers) or initializers[k] is None:
            raise ContextError(f"EPContext node '{node.get('name')}': attribute '{name}' refers to missing data {k}")
        return np.asarray(initializers[k], dtype=np.uint8).tobytes()
    return spec.get("value")


def is_ours(node: Mapping[str, Any]) -> bool:
    """An EPContext node this EP wrote (op, domain and ``source``), from the shim's graph document."""
    if node.get("op_type") != OP_TYPE or node.get("domain") != DOMAIN:
        return False
    source = _attr(node, "source")
    return (source.decode("utf-8", "replace") if isinstance(source, bytes) else source) == SOURCE


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


@dataclass
class LoadedNode:
    node_name: str
    artifact: EngineArtifact
    runtime_inputs: list[int]  # engine input k = fused node input runtime_inputs[k]
    header: dict[str, Any]


def _rebuild_hint(node: Mapping[str, Any], model_path: str) -> str:
    source_model = _text(_attr(node, "onnx_model_filename")) or "MODEL.onnx"
    try:
        notes = json.loads(_text(_attr(node, "notes")) or "{}")
    except json.JSONDecodeError:
        notes = {}
    shapes = notes.get("model_shapes") if isinstance(notes, dict) else None
    target = os.path.basename(model_path) or "CONTEXT.onnx"
    return (f"rebuild the context model on this machine: ep-trtpy build {source_model} --shapes "
            f"{shapes or 'NAME:DIMS,...'} -o {target} (or a session on {source_model} with ep.context_enable=1)")


def _read_file(name: str, node_name: str, model_path: str, settings: Settings) -> bytes:
    """The engine file of an embed-mode-0 node: a plain file inside the context model's folder."""
    base = os.path.dirname(os.path.abspath(model_path)) if model_path else (
        os.path.dirname(os.path.abspath(settings.file_path)) if settings.file_path else "")
    if not base:
        raise ContextError(f"EPContext node '{node_name}' keeps its engine in the file '{name}' beside the model, but "
                           f"the model was loaded from bytes: set ep.context_file_path to the context model's path")
    if not name or os.path.isabs(name):
        raise ContextError(f"EPContext node '{node_name}': ep_cache_context {name!r} must be a file name relative to "
                           f"the context model's folder")
    path = os.path.realpath(os.path.join(base, name))
    if os.path.commonpath([path, os.path.realpath(base)]) != os.path.realpath(base):
        raise ContextError(f"EPContext node '{node_name}': engine file {name!r} lies outside the context model's "
                           f"folder {base}")
    try:  # the engine cache's safe reader: a regular file of sane size, opened without blocking
        return read_cache_file(path, MAX_ENGINE_FILE_BYTES, folder=base)
    except UnsafeCacheFile as e:
        raise ContextError(f"EPContext node '{node_name}': its engine file {path} cannot be used: {e}") from None
    except OSError as e:
        raise ContextError(f"EPContext node '{node_name}': cannot open its engine file {path} "
                           f"({e.strerror or e})") from None


def _payload(node: Mapping[str, Any], initializers: Sequence[Any], model_path: str, settings: Settings) -> bytes:
    node_name = str(node.get("name") or "")
    mode = _attr(node, "embed_mode")
    mode = 1 if mode is None else int(mode)
    main = _attr(node, "main_context")
    if main is not None and int(main) != 1:
        raise ContextError(f"EPContext node '{node_name}' has main_context=0 (an engine shared with another node), "
                           f"which TrtPyExecutionProvider does not write or read")
    value = _attr(node, "ep_cache_context", initializers)
    if value is None:
        raise ContextError(f"EPContext node '{node_name}' has no ep_cache_context attribute")
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogateescape")
    if mode == 0:
        return _read_file(raw.decode("utf-8", "replace"), node_name, model_path, settings)
    if mode != 1:
        raise ContextError(f"EPContext node '{node_name}' has embed_mode {mode}; 0 (engine file) or 1 (embedded) "
                           f"are defined")
    if raw.startswith(MAGIC):  # raw engine bytes (a writer whose ORT keeps binary string attributes)
        return raw
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ContextError(f"EPContext node '{node_name}': the embedded engine is neither base64 nor an engine "
                           f"file") from None


def incompatibilities(header: Mapping[str, Any], backend: str, device: Device) -> list[str]:
    """What differs between the session and the engine (each as 'what: engine X, this session Y')."""
    out: list[str] = []
    made = str(header.get("producers", {}).get("ep_trtpy", "?"))
    if made != __version__:
        out.append(f"ep_trtpy version: the engine was made by {made}, this is {__version__}")
    if header.get("backend") != backend:
        out.append(f"backend: the engine is for {header.get('backend')}, this session runs {backend}"
                   + (" (no GPU is usable here)" if backend == "reference" else ""))
    dev = header.get("device", {})
    cc = tuple(dev.get("cc", (0, 0)))
    if cc != tuple(device.cc):
        out.append(f"GPU: the engine is for {dev.get('name')} (compute capability {cc[0]}.{cc[1]}), this session "
                   f"runs on {device.name} ({device.cc[0]}.{device.cc[1]})")
    if backend == "cuda" and header.get("backend") == "cuda":
        here = producer_versions("cuda")
        for lib, v in sorted(header.get("producers", {}).items()):
            if lib not in _NOT_ENGINE_PRODUCERS and str(here.get(lib, "none")) != str(v):
                out.append(f"{lib}: the engine was made with {v}, this process has {here.get(lib, 'none')}")
    return out


def load_node(doc: Mapping[str, Any], initializers: Sequence[Any], settings: Settings, backend: str,
              device: Device) -> LoadedNode:
    """The engine of the single EPContext node in a fused graph document, checked against this session."""
    nodes = list(doc.get("nodes") or [])
    fused = doc.get("fused_node") or {}
    if len(nodes) != 1 or not is_ours(nodes[0]):
        raise ContextError(f"fused node '{fused.get('name')}' mixes an EPContext node with other nodes")
    node = nodes[0]
    node_name = str(node.get("name") or fused.get("name") or "")
    model_path = str(doc.get("model_path") or "")
    if settings.enable:
        raise ContextError(f"the model already is an EPContext model (node '{node_name}'); load it without "
                           f"ep.context_enable=1, or write a new one from the original model")
    try:
        dec = decode(_payload(node, initializers, model_path, settings))
        art = to_artifact(dec)
    except EngineFormatError as e:
        raise ContextError(f"EPContext node '{node_name}' carries an engine this ep_trtpy cannot use ({e}); "
                           f"{_rebuild_hint(node, model_path)}") from None
    header = dec.header
    differences = incompatibilities(header, backend, device)
    if differences:
        raise ContextError(f"EPContext node '{node_name}' was made for another setup ({'; '.join(differences)}); "
                           f"{_rebuild_hint(node, model_path)}")
    if backend == "cuda" and header["device"]["name"] != device.name:
        log.warning("EPContext node '%s': its engine was tuned on %s, this session runs on %s (same compute "
                    "capability: it runs, perhaps with slower tactics)", node_name, header["device"]["name"],
                    device.name)
    fin = [str(n) for n in fused.get("inputs") or []]
    fout = [str(n) for n in fused.get("outputs") or []]
    names_in = [io["name"] for io in header["inputs"]]
    missing = [n for n in names_in if n not in fin]
    if missing:
        raise ContextError(f"EPContext node '{node_name}': its engine reads {', '.join(missing)}, which the node "
                           f"does not take as inputs ({', '.join(fin) or 'none'})")
    names_out = [io["name"] for io in header["outputs"]]
    if sorted(names_out) != sorted(fout):
        raise ContextError(f"EPContext node '{node_name}' produces {', '.join(fout)} but its engine produces "
                           f"{', '.join(names_out)}")
    header = _outputs_in_order(art, dict(header), [names_out.index(n) for n in fout])
    art.device = Device(device.ordinal, device.name, device.cc) if backend == "cuda" else art.device
    return LoadedNode(node_name, art, [fin.index(n) for n in names_in], header)


def _outputs_in_order(art: EngineArtifact, header: dict[str, Any], order: list[int]) -> dict[str, Any]:
    """Put the engine's outputs in the fused node's order (ORT orders a loaded EPContext node's outputs its own
    way): fused output j is engine output order[j]. Returns the header with its outputs reordered."""
    if order == list(range(len(order))):
        return header
    art.outputs = [art.outputs[k] for k in order]
    if len(art.graph.outputs) == len(order):
        art.graph.outputs = [art.graph.outputs[k] for k in order]
    if art.plan is not None:
        position = {k: j for j, k in enumerate(order)}
        for t in art.plan.tensors:
            if t.kind == "output":
                t.index = position[t.index]
    header["outputs"] = [header["outputs"][k] for k in order]
    return header
