"""The engine cache: keys, file names, atomic writes and validated loads.

Key = SHA-256 over a canonical JSON of
    format version, graph hash, concrete input shapes, the options that shape the engine
    (``Options.engine_key_items()``), backend,
    device name and compute capability (cuda only), producer versions.
The graph hash (:func:`graph_hash`) is over a canonical serialization of the subgraph: nodes in order with their
op, domain and canonical attributes, inputs referred to by position (graph input k, output j of node i) or, for
constants, by dtype, shape and the SHA-256 of their bytes; graph input dtypes (and ranks), output positions
and dtypes, opsets. Value and node names do not enter it, so the same subgraph in two sessions hashes alike.

File name: ``TrtPy_<graphhash16>_<key16>_sm<major><minor>.engine`` (``_cpu`` for the reference backend) in
``options.cache_dir``. Writes go to a temporary file in the same folder and are moved into place with
``os.replace``, so readers never see a partial file and several processes may build the same engine at once
(the last complete write wins; all are equivalent). A file that is missing is a miss; one that cannot be decoded,
is truncated, corrupt, foreign or for another key is a *reject*: logged as a warning naming the file and the
reason, rebuilt and atomically replaced. Never a crash, never a wrong answer.

The look-up-or-build that uses all of this is the builder's (``ep_trtpy.builder.build.get_or_build``): the engine
package knows engines and files, not how they are built.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ep_trtpy.engine.artifact import Device, EngineArtifact
from ep_trtpy.engine.format import FORMAT_VERSION, EngineFormatError, decode, to_artifact
from graph_partitioner.ir import Graph, Value

log = logging.getLogger("ep_trtpy")


# --------------------------------------------------------------------------------------------- hashing --

def _canon_attr(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        a = np.asarray(v)
        return {"tensor": str(a.dtype), "shape": list(a.shape), "sha256": _digest(a)}
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, str)):
        return v
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, (list, tuple)):
        return [_canon_attr(x) for x in v]
    return f"<{type(v).__name__}>"


def _digest(a: np.ndarray) -> str:
    """SHA-256 of an array's bytes in C order (without a copy when it is already contiguous)."""
    if a.dtype == object:
        return hashlib.sha256(a.tobytes()).hexdigest()
    return hashlib.sha256(np.ascontiguousarray(a).reshape(-1).view(np.uint8)).hexdigest()


# Above this many constant bytes, graph_hash digests the constants on several threads (hashlib releases the GIL):
# ResNet-50's 100 MB of weights took 0.13 s on one thread of the H200 machine, a third of a cached session's start.
PARALLEL_HASH_BYTES = 8 << 20


def _const_digests(graph: Graph) -> dict[int, str]:
    """id(value) -> digest of every constant the nodes read, computed in parallel for large graphs."""
    consts = {id(v): np.asarray(v.const) for n in graph.nodes for v in n.inputs if v is not None and v.const is not None}
    consts.update({id(v): np.asarray(v.const) for v in graph.outputs if v is not None and v.const is not None})
    if sum(a.nbytes for a in consts.values()) < PARALLEL_HASH_BYTES:
        return {k: _digest(a) for k, a in consts.items()}
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return dict(zip(consts, pool.map(_digest, consts.values())))


def _const_id(v: Value, digest: str) -> str:
    return f"c:{v.dtype}:{list(np.shape(v.const))}:{digest}"


def graph_hash(graph: Graph) -> str:
    """SHA-256 (hex) of the canonical serialization of `graph` (see the module docstring)."""
    h = hashlib.sha256()
    ids: dict[int, str] = {}
    digests = _const_digests(graph)

    def put(obj: Any) -> None:
        h.update(json.dumps(obj, separators=(",", ":"), sort_keys=True).encode())
        h.update(b"\n")

    put({"opsets": {str(k): int(v) for k, v in graph.opsets.items()}})
    for k, v in enumerate(graph.inputs):
        ids[id(v)] = f"in{k}"
        put(["input", k, v.dtype, None if v.shape is None else
             [d if isinstance(d, int) and d >= 0 else "?" for d in v.shape]])

    def ref(v: Value | None) -> str:
        if v is None:
            return "-"
        if id(v) not in ids:
            ids[id(v)] = _const_id(v, digests[id(v)]) if v.const is not None else f"free:{v.name}"
        return ids[id(v)]

    for i, n in enumerate(graph.nodes):
        ins = [ref(v) for v in n.inputs]
        for k, o in enumerate(n.outputs):
            ids[id(o)] = f"n{i}.{k}"
        put(["node", n.domain, n.op_type, ins, len(n.outputs), {k: _canon_attr(a) for k, a in sorted(n.attrs.items())}])
    for k, v in enumerate(graph.outputs):
        put(["output", k, ref(v), v.dtype])
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- keys --

def cache_key(ghash: str, input_shapes: list[tuple[int, ...]], option_items: Mapping[str, Any], backend: str,
              device: Device, producers: dict[str, str]) -> str:
    """The engine cache key (hex SHA-256); `option_items` are the options that shape the engine."""
    doc = {"format": FORMAT_VERSION, "graph": ghash, "shapes": [list(s) for s in input_shapes],
           "options": dict(option_items), "backend": backend,
           "device": device.to_dict() if backend == "cuda" else None, "producers": producers}
    return hashlib.sha256(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()).hexdigest()


def file_name(ghash: str, key: str, backend: str, device: Device) -> str:
    tail = "cpu" if backend == "reference" else device.sm
    return f"TrtPy_{ghash[:16]}_{key[:16]}_{tail}.engine"


# --------------------------------------------------------------------------------------------- files --

def atomic_write(path: str, data: bytes, suffix: str = ".engine") -> None:
    """Write `data` to `path` so that readers see either the old file or the complete new one (a temporary file
    in the same folder, fsync, rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@dataclass
class Counters:
    builds: int = 0
    engine_cache_hits: int = 0
    engine_cache_misses: int = 0
    engine_cache_rejects: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict[str, int]:
        return {"builds": self.builds, "engine_cache_hits": self.engine_cache_hits,
                "engine_cache_misses": self.engine_cache_misses, "engine_cache_rejects": self.engine_cache_rejects}

    def reset(self) -> None:
        with self.lock:
            self.builds = self.engine_cache_hits = self.engine_cache_misses = self.engine_cache_rejects = 0


def load(path: str, key: str) -> tuple[EngineArtifact | None, str]:
    """(artifact, "hit") or (None, "miss") or (None, "reject: <reason>")."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None, "miss"
    except OSError as e:
        return None, f"reject: cannot read it ({e.strerror or e})"
    try:
        return to_artifact(decode(data, expect_key=key)), "hit"
    except EngineFormatError as e:
        return None, f"reject: {e}"
    except Exception as e:  # noqa: BLE001  anything else a hostile file provokes is still only a reject
        return None, f"reject: unreadable ({type(e).__name__}: {e})"
