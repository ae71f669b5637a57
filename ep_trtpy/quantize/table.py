"""The calibration table: a versioned, human-readable JSON file of tensor ranges, portable across GPUs.

    {
      "format": "ep_trtpy.calibration_table", "version": 1,
      "ep_trtpy": "0.1.0", "created": "2026-12-20T10:00:00Z",
      "model": {"name": "net.onnx", "sha256": "<model_sha256 of the FP32 model>"},
      "precision": "int8",                                  # or "fp8": what the engine quantizes to
      "method": "entropy", "params": {"bins": 2048, "percentile": null}, "batches": 8,
      "tensors": {"x": {"amax": 2.75, "min": -2.6, "max": 2.75}, ...},
      "weights": {"w1": "<sha256 of the weight's float32 bytes>", ...},
      "layers": {"conv1": {"op": "Conv", "inputs": ["x"], "weight": "w1", "precision": "int8",
                           "sensitivity": 1.2e-05}, ...},   # precision "float": the accuracy guard's fallback
      "guard": {"target": "cosine:0.999", "achieved": 0.9995, "all_quantized": 0.9971, "held_back": 2,
                "fallback": [{"layer": "conv1", "error": 0.0021}]}      # or null
    }

A table is stale when the model changed since calibration: :func:`check_fresh` compares the model's hash (when
the model file is known) and the hashes of the weights the table names with what the engine is built from, and
raises :class:`StaleTableError` naming the mismatch.

TensorRT's calibration cache (``int8_use_native_calibration_table=1``) is text: a header line
``TRT-<version>-EntropyCalibration2`` (or another calibrator's name), then ``name: <8 hex digits>`` per tensor,
the big-endian bits of the float32 scale = amax / 127. :func:`read_tensorrt_cache` reads it (no model hash: it
cannot be checked for staleness), :meth:`CalibrationTable.to_tensorrt_cache` writes one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FORMAT = "ep_trtpy.calibration_table"
VERSION = 1
PRECISIONS = ("int8", "fp8")
LAYER_PRECISIONS = ("int8", "fp8", "float")
TRT_HEADER = re.compile(r"^TRT-(\d+)-(\w+)$")


class QuantizationError(ValueError):
    """A quantized engine cannot be built as asked (one sentence naming the option, table or value)."""


class TableError(QuantizationError):
    """A calibration table cannot be used (the message names the file and what is wrong)."""


class StaleTableError(TableError):
    """The model changed since its calibration table was made (the message names the mismatch)."""


@dataclass
class Layer:
    op: str
    inputs: list[str]
    weight: str | None = None
    precision: str = "int8"
    sensitivity: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "inputs": list(self.inputs), "weight": self.weight, "precision": self.precision,
                "sensitivity": self.sensitivity}


@dataclass
class CalibrationTable:
    """Tensor name -> amax, and what calibration knew about the model (module docstring)."""

    tensors: dict[str, dict[str, float]] = field(default_factory=dict)
    method: str = "minmax"
    params: dict[str, Any] = field(default_factory=dict)
    precision: str = "int8"
    model_name: str = ""
    model_sha256: str | None = None
    weights: dict[str, str] = field(default_factory=dict)
    layers: dict[str, Layer] = field(default_factory=dict)
    guard: dict[str, Any] | None = None
    batches: int = 0
    producer: str = ""
    created: str = ""
    source: str = "ep_trtpy"  # or "tensorrt" (read from a TensorRT calibration cache)
    path: str = ""
    digest: str = ""  # SHA-256 of the file it was read from

    # ---------------------------------------------------------------------------------------- queries --
    def amax(self, tensor: str) -> float | None:
        entry = self.tensors.get(tensor)
        return None if entry is None else float(entry["amax"])

    def fallback(self) -> set[str]:
        """Layers the accuracy guard (or the user) keeps in float."""
        return {name for name, layer in self.layers.items() if layer.precision == "float"}

    def layer_for(self, name: str, weight: str | None) -> Layer | None:
        """The table's entry of a layer, by node name, else by the name of its weight."""
        if name in self.layers:
            return self.layers[name]
        if weight is not None:
            return next((layer for layer in self.layers.values() if layer.weight == weight), None)
        return None

    # ------------------------------------------------------------------------------------------ JSON --
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "ep_trtpy": self.producer, "created": self.created,
                "model": {"name": self.model_name, "sha256": self.model_sha256}, "precision": self.precision,
                "method": self.method, "params": dict(self.params), "batches": self.batches,
                "tensors": {k: {f: float(v) for f, v in e.items()} for k, e in sorted(self.tensors.items())},
                "weights": dict(sorted(self.weights.items())),
                "layers": {k: v.to_dict() for k, v in self.layers.items()}, "guard": self.guard}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    def save(self, path: str) -> None:
        """Write atomically (a temporary file in the same folder, then a rename)."""
        if not self.created:
            self.created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        _atomic_write(path, self.to_json().encode())
        self.path = os.path.abspath(path)

    def to_tensorrt_cache(self, version: int = 8601) -> str:
        """The table as a TensorRT calibration cache (scale = amax / 127 per tensor)."""
        lines = [f"TRT-{version}-EntropyCalibration2"]
        for name, entry in sorted(self.tensors.items()):
            scale = float(entry["amax"]) / 127.0
            lines.append(f"{name}: {struct.pack('>f', scale).hex()}")
        return "\n".join(lines) + "\n"


def _atomic_write(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".calib_", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _need(doc: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in doc:
        raise TableError(f"{where} has no '{key}'")
    value = doc[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise TableError(f"{where}: '{key}' is {type(value).__name__}, not {getattr(kind, '__name__', kind)}")
    return value


def _amax(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise TableError(f"{where} has amax {value!r}; a finite number >= 0 is needed")
    return float(value)


def from_dict(doc: Any, path: str = "<table>") -> CalibrationTable:
    """A table from its JSON document, validated (TableError names the file and the field)."""
    where = f"calibration table '{path}'"
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise TableError(f"{where} is not an ep_trtpy calibration table (no \"format\": \"{FORMAT}\"; a TensorRT "
                         f"calibration cache needs int8_use_native_calibration_table=1)")
    version = doc.get("version")
    if not isinstance(version, int) or version < 1:
        raise TableError(f"{where} has version {version!r}; expected {VERSION}")
    if version > VERSION:
        raise TableError(f"{where} has version {version}, newer than this ep_trtpy reads ({VERSION}); upgrade "
                         f"ep_trtpy or recalibrate")
    precision = doc.get("precision", "int8")
    if precision not in PRECISIONS:
        raise TableError(f"{where} has precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    tensors: dict[str, dict[str, float]] = {}
    for name, entry in _need(doc, "tensors", dict, where).items():
        if not isinstance(entry, dict):
            raise TableError(f"{where}: tensor '{name}' is not an object with 'amax'")
        tensors[str(name)] = {"amax": _amax(entry.get("amax"), f"{where}: tensor '{name}'")}
        tensors[str(name)].update({k: float(entry[k]) for k in ("min", "max")
                                   if isinstance(entry.get(k), (int, float))})
    layers: dict[str, Layer] = {}
    for name, entry in (doc.get("layers") or {}).items():
        if not isinstance(entry, dict) or entry.get("precision", "int8") not in LAYER_PRECISIONS:
            raise TableError(f"{where}: layer '{name}' needs a precision among {', '.join(LAYER_PRECISIONS)}")
        sens = entry.get("sensitivity")
        layers[str(name)] = Layer(str(entry.get("op", "")), [str(x) for x in entry.get("inputs", [])],
                                  entry.get("weight"), str(entry.get("precision", "int8")),
                                  float(sens) if isinstance(sens, (int, float)) else None)
    model = doc.get("model") or {}
    guard = doc.get("guard")
    if guard is not None and not isinstance(guard, dict):
        raise TableError(f"{where}: 'guard' is {type(guard).__name__}, not an object")
    return CalibrationTable(tensors=tensors, method=str(doc.get("method", "")), params=dict(doc.get("params") or {}),
                            precision=precision, model_name=str(model.get("name", "")),
                            model_sha256=model.get("sha256"), weights=dict(doc.get("weights") or {}), layers=layers,
                            guard=guard, batches=int(doc.get("batches", 0)), producer=str(doc.get("ep_trtpy", "")),
                            created=str(doc.get("created", "")), path=path)


def read_tensorrt_cache(text: str, path: str = "<cache>") -> CalibrationTable:
    """A table from a TensorRT calibration cache (module docstring)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    where = f"TensorRT calibration cache '{path}'"
    if not lines or not TRT_HEADER.match(lines[0]):
        head = lines[0][:40] if lines else "nothing"
        raise TableError(f"{where} does not start with a 'TRT-<version>-<calibrator>' line (it starts with "
                         f"{head!r})")
    tensors: dict[str, dict[str, float]] = {}
    for k, line in enumerate(lines[1:], start=2):
        name, sep, hexbits = line.rpartition(":")
        hexbits = hexbits.strip()
        if not sep or not name or not re.fullmatch(r"[0-9a-fA-F]{1,8}", hexbits):
            raise TableError(f"{where} line {k} is not '<tensor>: <8 hex digits>': {line[:60]!r}")
        scale = struct.unpack(">f", bytes.fromhex(hexbits.rjust(8, "0")))[0]
        tensors[name.strip()] = {"amax": _amax(scale * 127.0, f"{where} line {k} ('{name.strip()}')")}
    header = TRT_HEADER.match(lines[0])
    assert header is not None
    return CalibrationTable(tensors=tensors, method=header.group(2), source="tensorrt", path=path,
                            params={"tensorrt_version": header.group(1)})


# ------------------------------------------------------------------------------------- loading + cache --

_cache: dict[tuple[str, int, int, bool], CalibrationTable] = {}
_lock = threading.Lock()


def resolve(name: str, cache_dir: str = "") -> str:
    """The file a table name means: a path as given (absolute, or relative to the working folder), else the name
    inside the engine cache folder (where ORT's TensorRT EP looks); TableError lists both when neither exists."""
    candidates = [os.path.abspath(os.path.expanduser(name))]
    if cache_dir and not os.path.isabs(os.path.expanduser(name)):
        candidates.append(os.path.join(cache_dir, name))
    for c in candidates:
        if os.path.isfile(c):
            return c
    raise TableError(f"calibration table '{name}' does not exist (looked for {' and '.join(candidates)})")


def load(path: str, native: bool = False) -> CalibrationTable:
    """The table in `path` (ep_trtpy JSON, or with `native` a TensorRT cache), cached by file identity."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise TableError(f"calibration table '{path}' cannot be read ({e.strerror or e})") from None
    key = (os.path.abspath(path), st.st_mtime_ns, st.st_size, native)
    with _lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TableError(f"calibration table '{path}' is not text (a TensorRT cache or ep_trtpy JSON is)") from None
    if native:
        table = read_tensorrt_cache(text, path)
    else:
        try:
            doc = json.loads(text)
        except ValueError as e:
            hint = " (it looks like a TensorRT calibration cache: set int8_use_native_calibration_table=1)" \
                if TRT_HEADER.match(text.split("\n", 1)[0].strip()) else ""
            raise TableError(f"calibration table '{path}' is not valid JSON ({e}){hint}") from None
        table = from_dict(doc, path)
    table.digest = hashlib.sha256(data).hexdigest()
    with _lock:
        _cache[key] = table
    return table


# ------------------------------------------------------------------------------------------- staleness --

def model_sha256(model: Any) -> str:
    """SHA-256 of an ONNX model's graph (deterministic protobuf serialization, external data loaded)."""
    return hashlib.sha256(model.graph.SerializeToString(deterministic=True)).hexdigest()


_file_hashes: dict[tuple[str, int, int], str] = {}


def model_file_sha256(path: str) -> str:
    """:func:`model_sha256` of the model in `path`, cached by file identity."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_mtime_ns, st.st_size)
    with _lock:
        hit = _file_hashes.get(key)
    if hit is None:
        import onnx

        hit = model_sha256(onnx.load(path))
        with _lock:
            _file_hashes[key] = hit
    return hit


def weight_sha256(array: np.ndarray) -> str:
    a = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
    return hashlib.sha256(a.tobytes()).hexdigest()


def check_fresh(table: CalibrationTable, model_path: str, constants: dict[str, np.ndarray]) -> None:
    """Raise StaleTableError when the model file (if known) or a weight the table names changed since
    calibration. `constants`: the float constants of the graph being built, by name."""
    if table.source != "ep_trtpy":
        return
    recalibrate = "recalibrate (ep-trtpy calibrate MODEL --data DIR -o TABLE)"
    if table.model_sha256 and model_path and os.path.isfile(model_path):
        got = model_file_sha256(model_path)
        if got != table.model_sha256:
            raise StaleTableError(f"calibration table '{table.path}' is stale: it was made for a model with hash "
                                  f"{table.model_sha256[:16]} ('{table.model_name}'), but '{model_path}' has hash "
                                  f"{got[:16]}; {recalibrate}")
    for name, digest in table.weights.items():
        arr = constants.get(name)
        if arr is not None and weight_sha256(arr) != digest:
            raise StaleTableError(f"calibration table '{table.path}' is stale: weight '{name}' differs from the one "
                                  f"it was calibrated with (model '{table.model_name}'); {recalibrate}")
