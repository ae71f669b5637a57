"""The timing cache: every tactic timing the builder made, kept on disk and shared by engines and processes.

One JSON file per *environment*: the versions of ep_trtpy, the CUDA runtime, cuDNN and cuBLASLt, the GPU's name and
compute capability (:class:`Environment`). A timing is only valid where all of these are equal, so each such key
gets its own file, ``TrtPy_timing_sm<cc>_<key16>.json`` in ``options.timing_cache_dir``: a new library version
simply starts a new file, and the old files are never read again (delete them freely).

File format (version :data:`FORMAT_VERSION`)::

    {"format": "ep_trtpy timing cache", "version": 1,
     "environment": {"ep_trtpy": "0.1.0", "cudart": "13000", "cudnn": "92801", "cublaslt": "131000",
                     "gpu": "NVIDIA H200", "cc": [9, 0]},
     "entries": {"<signature hash>": {"layer": {<the signature>}, "tactic": 3, "tactic_name": "...",
                                      "ms": 0.0123, "candidates": [["<name>", 0.0123], ["<name>", null], ...]}}}

``layer`` is the layer signature (:func:`ep_trtpy.tuner.signature.layer_signature`: kernel, ints, floats, dtype,
shape and alignment of every operand, optimization level); its hash is the entry's key. ``candidates`` are the
tactics timed for it, in milliseconds, ``null`` for a candidate that failed; ``ms`` is the winner's time.

Reads never fail: a missing file is an empty cache; a file that is not JSON, is truncated, has another format or
version, or belongs to another environment is one warning and an empty cache (a miss), and the next write replaces
it. The file is opened only if it is a regular file of at most :data:`TIMING_CACHE_LIMIT` bytes (a symlink only to
one inside the folder; ``engine.cache.read_cache_file``): a FIFO, device or outward symlink in its place is a
warning, never a hang, and is never replaced. Writes are atomic (temporary file in the same folder, ``fsync``,
``os.replace``) and merge: under an exclusive lock on ``<file>.lock`` (``fcntl.flock``, waited for up to
:data:`LOCK_TIMEOUT_S`; it dies with its process, so it is never stale) the writer reads what is on disk, adds its
entries (a new entry replaces an old one of the same layer) and moves the result into place. Several processes
writing at once therefore lose nothing. Without the lock (timeout, or a platform without ``fcntl``) a write is still
atomic, but a concurrent writer's new entries may be dropped; they are timed again by the next build that needs
them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ep_trtpy.engine.cache import UnsafeCacheFile, atomic_write, read_cache_file

log = logging.getLogger("ep_trtpy.tuner")

FORMAT_NAME = "ep_trtpy timing cache"
FORMAT_VERSION = 1
LOCK_TIMEOUT_S = 10.0
TIMING_CACHE_LIMIT = 256 << 20
"""The largest timing cache file read (about a quarter of a million layers)."""


@dataclass(frozen=True)
class Environment:
    """What a timing depends on besides the layer: library versions and the GPU."""

    ep_trtpy: str
    cudart: str
    cudnn: str
    cublaslt: str
    gpu: str
    cc: tuple[int, int]

    def to_dict(self) -> dict[str, Any]:
        return {"ep_trtpy": self.ep_trtpy, "cudart": self.cudart, "cudnn": self.cudnn, "cublaslt": self.cublaslt,
                "gpu": self.gpu, "cc": [int(self.cc[0]), int(self.cc[1])]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Environment:
        cc = d["cc"]
        return cls(str(d["ep_trtpy"]), str(d["cudart"]), str(d["cudnn"]), str(d["cublaslt"]), str(d["gpu"]),
                   (int(cc[0]), int(cc[1])))

    @property
    def key(self) -> str:
        """SHA-256 (hex) of the canonical JSON of the environment."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def file_name(self) -> str:
        return f"TrtPy_timing_sm{self.cc[0]}{self.cc[1]}_{self.key[:16]}.json"


def current_environment(gpu: str, cc: tuple[int, int], versions: Mapping[str, Any] | None = None) -> Environment:
    """The environment of a build on GPU `gpu` (compute capability `cc`). `versions` defaults to the native
    module's ``library_versions()`` (cudart, cudnn, cublaslt) and ``ep_trtpy.__version__``."""
    if versions is None:
        from ep_trtpy import _kernels
        from ep_trtpy._version import __version__

        versions = {"ep_trtpy": __version__, **dict(_kernels.library_versions())}
    return Environment(str(versions.get("ep_trtpy", "?")), str(versions.get("cudart", "?")),
                       str(versions.get("cudnn", "?")), str(versions.get("cublaslt", "?")), str(gpu),
                       (int(cc[0]), int(cc[1])))


@dataclass
class Entry:
    """The tactic chosen for one layer signature, its time, and every candidate timed."""

    layer: dict[str, Any]
    tactic: int
    tactic_name: str
    ms: float
    candidates: list[tuple[str, float]]  # ms; math.inf for a failed candidate

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "tactic": self.tactic, "tactic_name": self.tactic_name, "ms": _ms_out(self.ms),
                "candidates": [[name, _ms_out(ms)] for name, ms in self.candidates]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Entry:
        if not isinstance(d.get("layer"), dict) or not isinstance(d.get("tactic_name"), str):
            raise ValueError("an entry needs a layer object and a tactic_name string")
        cands = [(str(name), _ms_in(ms)) for name, ms in d.get("candidates", [])]
        return cls(dict(d["layer"]), int(d["tactic"]), d["tactic_name"], _ms_in(d["ms"]), cands)


def _ms_out(ms: float) -> float | None:
    return None if not math.isfinite(ms) else float(ms)


def _ms_in(ms: Any) -> float:
    return math.inf if ms is None else float(ms)


class TimingCache:
    """The timing cache file of one environment in one folder (see the module docstring)."""

    def __init__(self, folder: str, env: Environment) -> None:
        self.env = env
        self.path = os.path.join(folder, env.file_name)
        self.entries: dict[str, Entry] = {}
        self.pending: dict[str, Entry] = {}  # recorded in this process, not yet written

    # --------------------------------------------------------------------------------------- reading --
    def load(self) -> TimingCache:
        """Read the file (a bad one: an empty cache, and one warning per process for each state of the file).
        Returns self."""
        entries, problem = self._read()
        if problem and _first_time(self.path):
            try:
                _replaceable(self.path)
                fate = "it is replaced at the next write"
            except UnsafeCacheFile:
                fate = "it is left as it is and timings are kept in memory"
            log.warning("timing cache: ignoring %s: %s; %s", self.path, problem, fate)
        self.entries = entries
        return self

    def _read(self) -> tuple[dict[str, Entry], str]:
        """(entries, "") or ({}, the reason the file is not usable); a missing file is ({}, "")."""
        try:
            data = read_cache_file(self.path, TIMING_CACHE_LIMIT)
        except FileNotFoundError:
            return {}, ""
        except UnsafeCacheFile as e:
            return {}, str(e)
        except OSError as e:
            return {}, f"cannot read it ({e.strerror or e})"
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            return {}, f"not a JSON document (truncated or corrupt: {type(e).__name__}: {e})"
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
            return {}, "not an ep_trtpy timing cache"
        if doc.get("version") != FORMAT_VERSION:
            return {}, f"format version {doc.get('version')!r}, this ep_trtpy reads version {FORMAT_VERSION}"
        try:
            env = Environment.from_dict(doc["environment"])
        except (KeyError, TypeError, ValueError, IndexError):
            return {}, "its environment is missing or malformed"
        if env != self.env:
            return {}, f"it belongs to another environment ({env.to_dict()})"
        raw = doc.get("entries")
        if not isinstance(raw, dict):
            return {}, "it has no entries object"
        entries: dict[str, Entry] = {}
        bad = 0
        for k, v in raw.items():
            try:
                entries[str(k)] = Entry.from_dict(v)
            except (KeyError, TypeError, ValueError, AttributeError, RecursionError):
                bad += 1
        if bad:
            return entries, f"{bad} malformed entr{'y' if bad == 1 else 'ies'} (the others are used)"
        return entries, ""

    def get(self, key: str) -> Entry | None:
        return self.pending.get(key) or self.entries.get(key)

    def __len__(self) -> int:
        return len(set(self.entries) | set(self.pending))

    # --------------------------------------------------------------------------------------- writing --
    def put(self, key: str, entry: Entry) -> None:
        """Record an entry (written by :meth:`save`)."""
        self.pending[key] = entry

    def save(self) -> int:
        """Merge the pending entries into the file on disk, atomically; returns how many were written (0 when
        there were none). An OSError (read-only folder, full disk) is a warning: the timings are kept in memory."""
        if not self.pending:
            return 0
        folder = os.path.dirname(self.path)
        try:
            os.makedirs(folder, exist_ok=True)
            _replaceable(self.path)
            with _locked(self.path + ".lock"):
                on_disk, _problem = self._read()  # a bad file is replaced, not merged (it was warned about)
                on_disk.update(self.pending)
                _atomic_write_json(self.path, self._document(on_disk))
        except OSError as e:
            log.warning("timing cache: could not write %s: %s", self.path, e)
            return 0
        n = len(self.pending)
        self.entries = on_disk
        self.pending = {}
        return n

    def _document(self, entries: Mapping[str, Entry]) -> dict[str, Any]:
        return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "environment": self.env.to_dict(),
                "entries": {k: entries[k].to_dict() for k in sorted(entries)}}


def _replaceable(path: str) -> None:
    """Only a regular file (or nothing) at `path` is replaced; anything else raises UnsafeCacheFile."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeCacheFile(f"{path} is not a regular file; ep_trtpy replaces only regular files and left it as "
                              f"it is")


_warned: set[tuple[str, int, int]] = set()
_warned_lock = threading.Lock()


def _first_time(path: str) -> bool:
    """Whether this state (modification time, size) of the file at `path` has not been warned about yet."""
    try:
        st = os.stat(path)
        state = (path, st.st_mtime_ns, st.st_size)
    except OSError:
        state = (path, -1, -1)
    with _warned_lock:
        if state in _warned:
            return False
        _warned.add(state)
        return True


def _atomic_write_json(path: str, doc: Any) -> None:
    atomic_write(path, json.dumps(doc, separators=(",", ":")).encode("utf-8"), suffix=".json")


@contextmanager
def _locked(lock_path: str, timeout: float = LOCK_TIMEOUT_S) -> Iterator[bool]:
    """An exclusive advisory lock on `lock_path` for the block; yields whether it was obtained."""
    try:
        import fcntl
    except ImportError:  # not POSIX: atomic writes only
        yield False
        return
    # never through a symlink, and never blocking on a FIFO put in the lock file's place (an OSError: no write)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0),
                 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    log.warning("timing cache: %s stayed locked for %.0f s; writing without the lock", lock_path,
                                timeout)
                    yield False
                    return
                time.sleep(0.01)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
