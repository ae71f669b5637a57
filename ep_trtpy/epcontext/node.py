"""Writing EPContext nodes: the attributes of the node that stands for one compiled fused node in a context model.

ORT asks for the nodes when a session has ``ep.context_enable=1``: Compile calls the host's ``context_node``
(ep_trtpy/_host.py), which obtains the program's engine and calls :func:`node_attributes`; the shim turns the
attributes into the ORT node (cuda_kernels/shim/ep_context.cpp). The package docstring lists the attributes.

Shapes: a context model holds engines for concrete shapes. A claimed subgraph whose inputs are dynamic in the graph
ORT offers takes its shapes from :func:`learned_shapes` (``ep-trtpy build -o`` runs the model once to learn them);
without them writing the context model is an error that says how to get them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ep_trtpy._version import __version__
from ep_trtpy.engine.cache import atomic_write
from graph_partitioner.ir import Shape, is_static, shape_str

SOURCE = "TrtPyExecutionProvider"
"""The ``source`` attribute of our EPContext nodes (the EP's name): on load we claim only nodes carrying it."""
OP_TYPE = "EPContext"
DOMAIN = "com.microsoft"
MAX_EMBEDDED_BYTES = 1_800_000_000
"""Base64 payloads above this do not fit a protobuf model (2 GiB with everything else): use embed mode 0."""
SESSION_KEYS = ("ep.context_enable", "ep.context_file_path", "ep.context_embed_mode", "ep.context_node_name_prefix")

Attribute = tuple[str, "int | bytes"]


class ContextError(ValueError):
    """An EPContext model cannot be written or used as asked (the message says what differs and what to do)."""


@dataclass(frozen=True)
class Settings:
    """ORT's EPContext session entries, as this EP reads them."""

    enable: bool = False
    file_path: str = ""  # where ORT writes the context model; "" = beside the model, <stem>_ctx.onnx
    embed_mode: int = 1  # 1: the engine inside the node; 0: an engine file beside the context model
    node_name_prefix: str = ""

    @classmethod
    def from_session(cls, entries: Mapping[str, str]) -> Settings:
        def get(key: str) -> str:
            return str(entries.get(key, "")).strip()

        mode = get("ep.context_embed_mode") or "1"
        if mode not in ("0", "1"):
            raise ContextError(f"ep.context_embed_mode is {mode!r}; use 1 (engine inside the EPContext node) or 0 "
                               f"(engine file beside the context model)")
        return cls(enable=get("ep.context_enable") == "1", file_path=get("ep.context_file_path"),
                   embed_mode=int(mode), node_name_prefix=get("ep.context_node_name_prefix"))


def context_model_path(settings: Settings, model_path: str) -> str:
    """Where ORT writes the context model: ``ep.context_file_path``, else ``<model stem>_ctx.onnx`` beside it."""
    if settings.file_path:
        return os.path.abspath(settings.file_path)
    if not model_path:
        raise ContextError("the model was loaded from bytes, so ORT needs ep.context_file_path to know where to "
                           "write the context model")
    stem, _ = os.path.splitext(os.path.abspath(model_path))
    return stem + "_ctx.onnx"


def engine_file_name(context_path: str, node_name: str) -> str:
    """The engine file of one EPContext node with embed mode 0, relative to the context model's folder."""
    stem = os.path.splitext(os.path.basename(context_path))[0]
    short = re.sub(rf"^({SOURCE}_)+", "", node_name)  # ORT names fused nodes <EP>_<EP>_<hash>_<k>_<j>
    return f"{stem}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', short)[:120]}.engine"


def hardware_architecture(header: Mapping[str, Any]) -> str:
    if header.get("backend") != "cuda":
        return "cpu"
    cc = header.get("device", {}).get("cc", [0, 0])
    return f"sm{cc[0]}{cc[1]}"


def node_attributes(fused_name: str, engine: bytes, header: Mapping[str, Any], settings: Settings,
                    model_path: str) -> tuple[str, list[Attribute]]:
    """(node name, attributes) of the EPContext node for one engine file (``header``: its decoded header). With
    embed mode 0 the engine file is written beside the context model here."""
    name = settings.node_name_prefix + fused_name
    if settings.embed_mode == 1:
        payload = base64.b64encode(engine)
        if len(payload) > MAX_EMBEDDED_BYTES:
            raise ContextError(f"the engine of '{fused_name}' is {len(engine) / 2**20:.0f} MiB, too large to embed "
                               f"in the context model; write it with ep.context_embed_mode=0 (engine files beside "
                               f"the model)")
    else:
        target = context_model_path(settings, model_path)
        file = engine_file_name(target, name)
        path = os.path.join(os.path.dirname(target), file)
        atomic_write(path, engine)
        os.chmod(path, 0o644)  # shipped beside the model: as readable as ORT's context model
        payload = file.encode()
    dev = header.get("device", {})
    notes = {"engine_format": header.get("format_version"), "backend": header.get("backend"),
             "device": dev.get("name"), "model_shapes": learned_model_shapes()}
    return name, [
        ("main_context", 1), ("embed_mode", settings.embed_mode), ("ep_cache_context", payload),
        ("source", SOURCE.encode()), ("ep_sdk_version", __version__.encode()),
        ("hardware_architecture", hardware_architecture(header).encode()), ("partition_name", fused_name.encode()),
        ("onnx_model_filename", os.path.basename(model_path).encode()),
        ("notes", json.dumps(notes, sort_keys=True).encode()),
    ]


# ------------------------------------------------------------------------------------------- shapes --

_lock = threading.Lock()
_learned: dict[str, tuple[int, ...]] = {}
_model_shapes = [""]


@contextmanager
def learned_shapes(values: Mapping[str, Sequence[int]], model_shapes: str = "") -> Iterator[None]:
    """While active, EPContext generation gives a claimed subgraph input that is dynamic in ORT's graph the shape
    ``values[name]`` (by value name). ``model_shapes`` (``input:1x128,...``) is recorded in the nodes' notes for
    the rebuild hint. Process-wide, one at a time (``ep-trtpy build -o`` sets it around one session)."""
    with _lock:
        if _learned:
            raise ContextError("learned_shapes() is already active in this process")
        _learned.update({str(k): tuple(int(d) for d in v) for k, v in values.items()})
        _model_shapes[0] = model_shapes
    try:
        yield
    finally:
        with _lock:
            _learned.clear()
            _model_shapes[0] = ""


def learned_model_shapes() -> str:
    with _lock:
        return _model_shapes[0]


def concrete_shapes(fused_name: str, inputs: Sequence[tuple[str, Shape]]) -> list[tuple[int, ...]]:
    """The concrete shape of each engine input: static in the graph, else learned; else a ContextError."""
    with _lock:
        learned = dict(_learned)
    out: list[tuple[int, ...]] = []
    missing: list[str] = []
    for name, shape in inputs:
        if is_static(shape):
            out.append(tuple(int(d) for d in shape))  # type: ignore[union-attr]
        elif name in learned:
            out.append(learned[name])
        else:
            missing.append(f"{name} {shape_str(shape)}")
    if missing:
        raise ContextError(f"fused node '{fused_name}' has dynamic input shapes ({', '.join(missing)}), and an "
                           f"EPContext model holds engines for concrete shapes: write it with `ep-trtpy build MODEL "
                           f"--shapes NAME:DIMS,... -o CONTEXT.onnx` (it runs the model once to learn them), or fix "
                           f"the dimensions with SessionOptions.add_free_dimension_override_by_name")
    return out
