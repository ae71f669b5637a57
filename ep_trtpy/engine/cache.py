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

Hostile files (:func:`read_cache_file`, used for engine and timing-cache files): an entry is opened only if it is
a regular file (no FIFO, device, socket or folder; a symbolic link only to a regular file inside the cache folder),
no larger than the limit (:data:`ENGINE_FILE_LIMIT`, or the machine's memory if smaller), opened non-blocking and
re-checked on the open descriptor, and read with that size limit. Anything else is a reject, never a hang or a
MemoryError. Only regular files are ever replaced (:func:`save`): a symlink, FIFO or device where an engine file
belongs is left as it is, and the engine is used from memory.

What a session expects (:class:`Expected`) is checked against every field of the header (:func:`check_header`):
the fields the key stands for (graph hash, input shapes, options, backend, device, producers; the key is
recomputed from them) and the inputs and outputs (count, dtype, shape). A mismatch is a reject, even when the
file's checksum is valid. The checksum detects damage, not forgery: with ``engine_cache_hmac_key`` set, files are
written with an HMAC-SHA256 tag (format.py's trailer) and a file without the tag of the same key is rejected.

The look-up-or-build that uses all of this is the builder's (``ep_trtpy.builder.build.get_or_build``): the engine
package knows engines and files, not how they are built.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ep_trtpy.engine.artifact import Device, EngineArtifact
from ep_trtpy.engine.format import FORMAT_VERSION, TAG_MAGIC, EngineFormatError, decode, split_tag, to_artifact
from graph_partitioner.ir import Graph, Value, dtype_name, shape_str

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


# ------------------------------------------------------------------------------------- hostile files --

ENGINE_FILE_LIMIT = 64 << 30
"""The largest engine file opened (64 GiB, or the machine's memory if smaller): weights included."""


class UnsafeCacheFile(OSError):
    """A cache entry that is neither opened nor replaced (the message says what it is)."""


def _memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def _kind(st: os.stat_result) -> str:
    m = st.st_mode
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISLNK, "a symbolic link")):
        if test(m):
            return name
    return "not a regular file"


def _check_entry(st: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeCacheFile(f"it is {_kind(st)}, not a regular file")
    if st.st_size > limit:
        raise UnsafeCacheFile(f"it has {st.st_size} bytes, more than the {limit} this cache opens")


def read_cache_file(path: str, limit: int, folder: str | None = None) -> bytes:
    """The bytes of the cache file `path` if it is safe to read (see the module docstring); FileNotFoundError when
    there is none (a dangling symlink included), UnsafeCacheFile naming what it is otherwise. `folder` (default:
    the file's own folder) is where symbolic links may point."""
    limit = min(int(limit), _memory_bytes())
    st = os.lstat(path)
    real = path
    if stat.S_ISLNK(st.st_mode):
        real = os.path.realpath(path)
        root = os.path.realpath(folder or os.path.dirname(os.path.abspath(path)))
        if os.path.commonpath([real, root]) != root:
            raise UnsafeCacheFile(f"it is a symbolic link to {real}, outside the cache folder {root}")
        st = os.stat(real)
    _check_entry(st, limit)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(real, flags)  # non-blocking: a FIFO swapped in since the check cannot hang the open
    with os.fdopen(fd, "rb", buffering=0) as f:
        st = os.fstat(fd)  # the entry may have changed since it was checked: check what was opened
        _check_entry(st, limit)
        chunks, left = [], st.st_size + 1
        while left > 0:
            chunk = f.read(min(left, 1 << 26))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    data = b"".join(chunks)
    if len(data) != st.st_size:
        raise UnsafeCacheFile(f"it changed size while it was read ({st.st_size} bytes, then {len(data)})")
    return data


def save(path: str, data: bytes, hmac_key: bytes = b"") -> int:
    """Write an engine file atomically (sealed with `hmac_key` when given); returns the bytes written. Only a
    regular file (or nothing) at `path` is replaced: anything else raises UnsafeCacheFile and is left as it is."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise UnsafeCacheFile(f"{path} is {_kind(st)}; ep_trtpy replaces only regular files and left it as it is")
    out = seal(data, hmac_key) if hmac_key else data
    atomic_write(path, out)
    return len(out)


# ---------------------------------------------------------------------------------------- authenticity --

def _tag(data: bytes, key: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def seal(data: bytes, key: bytes) -> bytes:
    """Engine file bytes followed by the trailer TAG_MAGIC + HMAC-SHA256(key, every byte before the trailer)."""
    return data + TAG_MAGIC + _tag(data, key)


def check_seal(data: bytes, key: bytes) -> bytes:
    """The engine bytes of a file sealed with `key` (EngineFormatError when it is not: no tag, or another key)."""
    body, tag = split_tag(data)
    if tag is None:
        raise EngineFormatError("it carries no HMAC tag, and this session's engine_cache_hmac_key requires one")
    if not hmac.compare_digest(tag, _tag(body, key)):
        raise EngineFormatError("its HMAC tag does not match this session's engine_cache_hmac_key (written with "
                                "another key, or altered)")
    return body


# --------------------------------------------------------------------------------------- expectations --

@dataclass(frozen=True)
class Expected:
    """What a session expects of the engine file for one key: the key, what it stands for, and the engine's inputs
    (dtype, concrete shape) and outputs (dtype, declared shape; None where unknown, non-int dims are free)."""

    key: str
    graph_hash: str
    backend: str
    device: Device
    options: Mapping[str, Any]
    producers: Mapping[str, str]
    inputs: tuple[tuple[int | None, tuple[int, ...]], ...]
    outputs: tuple[tuple[int | None, tuple[Any, ...] | None], ...]

    @classmethod
    def of(cls, graph: Graph, shapes: list[tuple[int, ...]], key: str, ghash: str, backend: str, device: Device,
           options: Mapping[str, Any], producers: Mapping[str, str]) -> Expected:
        ins = tuple((v.dtype, tuple(int(d) for d in s)) for v, s in zip(graph.inputs, shapes))
        outs = tuple((v.dtype, None if v.shape is None else tuple(v.shape)) for v in graph.outputs)
        return cls(key, ghash, backend, device, dict(options), dict(producers), ins, outs)


def _json(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"), sort_keys=True)


def check_header(h: Mapping[str, Any], exp: Expected) -> None:
    """Every header field against what the session expects; EngineFormatError naming the first that differs."""
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise EngineFormatError(msg)

    need(h["key"] == exp.key, f"key mismatch: the file holds engine {str(h['key'])[:16]}, expected {exp.key[:16]}")
    need(h["graph_hash"] == exp.graph_hash, f"the header's graph hash {str(h['graph_hash'])[:16]} is not the "
                                            f"session's {exp.graph_hash[:16]}")
    need(h["backend"] == exp.backend, f"the header names the {h['backend']} backend, the session runs {exp.backend}")
    dev = h["device"]
    if exp.backend == "cuda":
        need((dev["name"], list(dev["cc"])) == (exp.device.name, list(exp.device.cc)),
             f"the header names device {dev['name']} sm{dev['cc'][0]}{dev['cc'][1]}, the session runs on "
             f"{exp.device.name} {exp.device.sm}")
    need(_json(h["options"]) == _json(exp.options), f"the header's options {_json(h['options'])} are not the "
                                                    f"session's {_json(exp.options)}")
    need(_json(h["producers"]) == _json(exp.producers), f"the header's producer versions {_json(h['producers'])} "
                                                        f"are not this process's {_json(exp.producers)}")
    for what, got, want in (("input", h["inputs"], exp.inputs), ("output", h["outputs"], exp.outputs)):
        need(len(got) == len(want), f"the header has {len(got)} {what}s, the session {len(want)}")
        for k, (io, (dt, shape)) in enumerate(zip(got, want)):
            need(dt is None or io["dtype"] == dt, f"{what} {k} is {dtype_name(io['dtype'])} in the header, "
                                                   f"{dtype_name(dt)} in the session")
            fits = shape is None or (len(io["shape"]) == len(shape) and all(
                not isinstance(d, int) or d < 0 or d == g for g, d in zip(io["shape"], shape)))
            need(fits, f"{what} {k} has shape {list(io['shape'])} in the header, {shape_str(shape)} in the session")
    recomputed = cache_key(h["graph_hash"], [tuple(io["shape"]) for io in h["inputs"]], h["options"], h["backend"],
                           Device(-1, dev["name"], (int(dev["cc"][0]), int(dev["cc"][1]))), h["producers"])
    need(recomputed == exp.key, "the header's fields do not add up to its key")


# ---------------------------------------------------------------------------------------------- load --

def load(path: str, key: str, expected: Expected | None = None, hmac_key: bytes = b"",
         folder: str | None = None) -> tuple[EngineArtifact | None, str]:
    """(artifact, "hit") or (None, "miss") or (None, "reject: <reason>"). The file is read only if it is safe
    (:func:`read_cache_file`); with `expected`, every header field is checked against it; with `hmac_key`, the
    file must carry that key's tag."""
    try:
        data = read_cache_file(path, ENGINE_FILE_LIMIT, folder)
    except FileNotFoundError:
        return None, "miss"
    except UnsafeCacheFile as e:
        return None, f"reject: {e}"
    except OSError as e:
        return None, f"reject: cannot read it ({e.strerror or e})"
    except MemoryError:
        return None, "reject: it does not fit in this process's memory"
    try:
        if hmac_key:
            data = check_seal(data, hmac_key)
        dec = decode(data, expect_key=key)
        if expected is not None:
            check_header(dec.header, expected)
        return to_artifact(dec), "hit"
    except EngineFormatError as e:
        return None, f"reject: {e}"
    except Exception as e:  # noqa: BLE001  anything else a hostile file provokes is still only a reject
        return None, f"reject: unreadable ({type(e).__name__}: {e})"
