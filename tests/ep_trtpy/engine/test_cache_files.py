"""Hostile engine cache entries: a FIFO, a device, a symlink out of the folder (to /dev/zero or to a user's file),
an oversize file, a well-signed header that does not match the session, and HMAC-authenticated files. Each is a
logged reject and a rebuild, never a hang or a MemoryError, and nothing but a regular engine file is replaced."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest

import graph_runner
from engine_testutil import small_graph
from ep_trtpy.builder import build as build_module
from ep_trtpy.builder.build import get_or_build
from ep_trtpy.engine import cache
from ep_trtpy.engine.cache import (ENGINE_FILE_LIMIT, Counters, UnsafeCacheFile, check_seal, read_cache_file,
                                   seal)
from ep_trtpy.engine import format as fmt
from ep_trtpy.engine.format import TAG_MAGIC, EngineFormatError, decode, split_tag
from ep_trtpy.options import parse


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _opts(folder: Path, **kw: str):
    return parse({"engine_cache_enable": "1", "engine_cache_path": str(folder), **kw})


def _get(folder: Path, counters: Counters | None = None, timeout: float = 30.0, **kw: str):
    """get_or_build on a thread with a deadline (a hang fails the test instead of stalling it); also the warnings
    logged meanwhile."""
    records = _Records()
    logger = logging.getLogger("ep_trtpy")
    logger.addHandler(records)
    out: list = []
    t = threading.Thread(target=lambda: out.append(get_or_build(small_graph(), [(2, 8)], _opts(folder, **kw),
                                                                "reference", counters=counters)), daemon=True)
    t.start()
    t.join(timeout)
    logger.removeHandler(records)
    hung = t.is_alive()
    if hung:  # unblock a reader stuck on a FIFO so the thread ends
        for p in folder.iterdir():
            if stat.S_ISFIFO(os.lstat(p).st_mode):
                os.close(os.open(p, os.O_WRONLY | os.O_NONBLOCK))
    assert not hung, "loading the engine cache hung"
    return out[0], records.messages


def _engine_path(folder: Path) -> Path:
    """Where the small graph's engine for shape (2, 8) lives (built once to learn the name, then removed)."""
    got = get_or_build(small_graph(), [(2, 8)], _opts(folder), "reference")
    os.unlink(got.path)
    return Path(got.path)


def _assert_rejected_and_rebuilt(got, messages: list[str], counters: Counters, why: str) -> None:
    assert got.source == "built" and counters.engine_cache_rejects == 1 and counters.builds == 1
    assert any("rejected" in m and why in m for m in messages), messages
    x = np.linspace(-1, 1, 16, dtype=np.float32).reshape(2, 8)
    assert graph_runner.run(got.artifact.graph, {"x": x})[0].shape == (2, 300)


# ------------------------------------------------------------------------------------- entry types --

def test_fifo_is_rejected_without_hanging_and_left_alone(tmp_path: Path) -> None:
    path = _engine_path(tmp_path)
    os.mkfifo(path)
    c = Counters()
    got, messages = _get(tmp_path, c)
    _assert_rejected_and_rebuilt(got, messages, c, "a FIFO")
    assert stat.S_ISFIFO(os.lstat(path).st_mode), "the FIFO was replaced"
    assert any("could not write" in m and "left it as it is" in m for m in messages)


def test_symlink_to_dev_zero_is_rejected_not_read(tmp_path: Path) -> None:
    path = _engine_path(tmp_path)
    os.symlink("/dev/zero", path)
    c = Counters()
    got, messages = _get(tmp_path, c)
    _assert_rejected_and_rebuilt(got, messages, c, "outside the cache folder")
    assert os.readlink(path) == "/dev/zero"


def test_symlink_out_of_the_folder_to_a_users_file_is_neither_read_nor_written(tmp_path: Path) -> None:
    folder, outside = tmp_path / "cache", tmp_path / "precious.engine"
    folder.mkdir()
    path = _engine_path(folder)
    outside.write_bytes(b"the user's own bytes")
    os.symlink(outside, path)
    c = Counters()
    got, messages = _get(folder, c)
    _assert_rejected_and_rebuilt(got, messages, c, "outside the cache folder")
    assert outside.read_bytes() == b"the user's own bytes" and os.path.islink(path)


def test_symlink_inside_the_folder_to_a_good_engine_is_a_hit(tmp_path: Path) -> None:
    path = _engine_path(tmp_path)
    get_or_build(small_graph(), [(2, 8)], _opts(tmp_path), "reference")
    real = tmp_path / "kept" / "engine.bin"
    real.parent.mkdir()
    os.replace(path, real)
    os.symlink(real, path)
    c = Counters()
    got, _ = _get(tmp_path, c)
    assert got.source == "cache" and c.engine_cache_hits == 1


def test_device_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(UnsafeCacheFile, match="a character device"):
        read_cache_file("/dev/zero", ENGINE_FILE_LIMIT, folder="/dev")
    path = _engine_path(tmp_path)
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero's numbers, inside the cache folder
    except (PermissionError, OSError):
        pytest.skip("cannot create a device node here (needs root); read_cache_file was checked on /dev/zero")
    c = Counters()
    got, messages = _get(tmp_path, c)
    _assert_rejected_and_rebuilt(got, messages, c, "a character device")
    assert stat.S_ISCHR(os.lstat(path).st_mode)


def test_folder_in_the_files_place_is_rejected(tmp_path: Path) -> None:
    path = _engine_path(tmp_path)
    path.mkdir()
    c = Counters()
    got, messages = _get(tmp_path, c)
    _assert_rejected_and_rebuilt(got, messages, c, "a folder")
    assert path.is_dir()


def test_oversize_file_is_rejected_before_reading(tmp_path: Path) -> None:
    path = _engine_path(tmp_path)
    limit = min(ENGINE_FILE_LIMIT, cache._memory_bytes())
    with open(path, "wb") as f:
        f.truncate(limit + 1)  # sparse: no disk used, and never read
    c = Counters()
    got, messages = _get(tmp_path, c)
    _assert_rejected_and_rebuilt(got, messages, c, "more than the")
    assert os.path.getsize(path) < 1 << 20, "a rejected regular file is replaced by the rebuilt engine"


def test_read_cache_file_reads_only_what_the_file_has(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"x" * 1000)
    assert read_cache_file(str(p), 1000) == b"x" * 1000
    with pytest.raises(UnsafeCacheFile, match="1000 bytes, more than the 999"):
        read_cache_file(str(p), 999)
    with pytest.raises(FileNotFoundError):
        read_cache_file(str(tmp_path / "missing"), 1000)
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    with pytest.raises(FileNotFoundError):  # a dangling link inside the folder is a miss
        read_cache_file(str(tmp_path / "dangling"), 1000)


# ------------------------------------------------------------------------ headers that do not fit --

def _rewrite_header(data: bytes, mutate) -> bytes:
    """The engine file with its JSON header passed through `mutate` and a valid checksum again."""
    fields = list(fmt._PREFIX.unpack_from(data, 0))  # magic, version, header length, then the other lengths
    p, hlen = fmt._PREFIX.size, fields[2]
    header = json.loads(data[p:p + hlen])
    mutate(header)
    hb = json.dumps(header).encode()
    fields[2] = len(hb)
    body = fmt._PREFIX.pack(*fields) + hb + data[p + hlen:-32]
    return body + hashlib.sha256(body).digest()


def _set_output_dtype(h: dict) -> None:
    h["outputs"][0]["dtype"] = 10  # float16, where the session's output is float32


def _set_input_shape(h: dict) -> None:
    h["inputs"][0]["shape"] = [3, 8]


def _set_option(h: dict) -> None:
    h["options"]["fp16_enable"] = True


def _set_graph_hash(h: dict) -> None:
    h["graph_hash"] = "ee" * 32


def _set_producer(h: dict) -> None:
    h["producers"]["onnx"] = "0.0.1"


def _add_output(h: dict) -> None:
    h["outputs"].append(dict(h["outputs"][0], name="extra"))


@pytest.mark.parametrize("mutate, why", [
    (_set_output_dtype, "output 0 has dtype 1, the header says 10"),  # this test graph declares no output dtype
    (_set_input_shape, "input 0 has shape [3, 8] in the header"),
    (_set_option, "options"),
    (_set_graph_hash, "graph hash"),
    (_set_producer, "producer versions"),
    (_add_output, "2 outputs, the session 1"),
])
def test_well_signed_header_that_does_not_fit_the_session_is_rebuilt(tmp_path: Path, mutate, why) -> None:
    first = get_or_build(small_graph(), [(2, 8)], _opts(tmp_path), "reference")
    forged = _rewrite_header(Path(first.path).read_bytes(), mutate)
    decode(forged, expect_key=first.key)  # the checksum and the key alone do not catch it
    Path(first.path).write_bytes(forged)
    c = Counters()
    got, messages = _get(tmp_path, c)
    _assert_rejected_and_rebuilt(got, messages, c, why)
    assert decode(Path(first.path).read_bytes()).header["outputs"][0]["dtype"] == 1  # replaced by a good file


def test_check_header_names_each_field_that_differs(tmp_path: Path) -> None:
    from ep_trtpy.builder.build import producer_versions
    from ep_trtpy.engine.cache import Expected, check_header
    from ep_trtpy.engine.artifact import CPU
    from graph_partitioner.ir import FLOAT

    g = small_graph()
    first = get_or_build(g, [(2, 8)], _opts(tmp_path), "reference")
    g.outputs[0].dtype = FLOAT
    exp = Expected.of(g, [(2, 8)], first.key, first.graph_hash, "reference", CPU,
                      parse({}).engine_key_items(), producer_versions("reference"))
    header = decode(Path(first.path).read_bytes()).header
    check_header(header, exp)
    for mutate, why in [(_set_output_dtype, "output 0 is float16 in the header, float32 in the session"),
                        (_set_input_shape, "input 0 has shape [3, 8] in the header, [2,8] in the session"),
                        (lambda h: h.update(backend="cuda"), "names the cuda backend, the session runs reference"),
                        (lambda h: h.update(key="00" * 32), "key mismatch")]:
        h = json.loads(json.dumps(header))
        mutate(h)
        with pytest.raises(EngineFormatError, match=why.replace("[", r"\[").replace("]", r"\]")):
            check_header(h, exp)


def test_header_whose_dtype_disagrees_with_its_own_graph_is_a_format_error(tmp_path: Path) -> None:
    from ep_trtpy.engine.format import to_artifact

    first = get_or_build(small_graph(), [(2, 8)], _opts(tmp_path), "reference")
    forged = _rewrite_header(Path(first.path).read_bytes(), _set_output_dtype)
    with pytest.raises(EngineFormatError, match="the graph's output 0 has dtype 1, the header says 10"):
        to_artifact(decode(forged))


# --------------------------------------------------------------------------------------------- HMAC --

def test_hmac_sealed_files_need_the_same_key(tmp_path: Path) -> None:
    c = Counters()
    first, _ = _get(tmp_path, c, engine_cache_hmac_key="team-secret")
    data = Path(first.path).read_bytes()
    assert data[-40:-32] == TAG_MAGIC and check_seal(data, b"team-secret") == split_tag(data)[0]
    again, _ = _get(tmp_path, c, engine_cache_hmac_key="team-secret")
    assert again.source == "cache"
    keyless, _ = _get(tmp_path, Counters())  # without a key the tag is not checked (the checksum still is)
    assert keyless.source == "cache"
    c2 = Counters()
    other, messages = _get(tmp_path, c2, engine_cache_hmac_key="someone-else")
    _assert_rejected_and_rebuilt(other, messages, c2, "does not match this session's engine_cache_hmac_key")


def test_unsigned_file_is_rejected_by_a_session_with_a_key(tmp_path: Path) -> None:
    get_or_build(small_graph(), [(2, 8)], _opts(tmp_path), "reference")
    c = Counters()
    got, messages = _get(tmp_path, c, engine_cache_hmac_key="k")
    _assert_rejected_and_rebuilt(got, messages, c, "carries no HMAC tag")
    assert Path(got.path).read_bytes()[-40:-32] == TAG_MAGIC


def test_forged_engine_with_a_valid_checksum_fails_the_hmac(tmp_path: Path) -> None:
    first, _ = _get(tmp_path, Counters(), engine_cache_hmac_key="k")
    body, tag = split_tag(Path(first.path).read_bytes())
    forged = _rewrite_header(body, lambda h: h.update(build_seconds=123.0))
    decode(forged, expect_key=first.key)
    Path(first.path).write_bytes(forged + TAG_MAGIC + tag)  # the old tag on new bytes
    c = Counters()
    got, messages = _get(tmp_path, c, engine_cache_hmac_key="k")
    _assert_rejected_and_rebuilt(got, messages, c, "does not match")


def test_seal_round_trip_and_a_key_never_shows(tmp_path: Path) -> None:
    data = b"TRTPYENG" + bytes(100)
    assert check_seal(seal(data, b"k"), b"k") == data
    with pytest.raises(EngineFormatError, match="no HMAC tag"):
        check_seal(data, b"k")
    opts = parse({"engine_cache_hmac_key": "do-not-print-me"})
    assert "do-not-print-me" not in repr(opts) and "do-not-print-me" not in json.dumps(opts.to_dict())
    assert "engine_cache_hmac_key" not in opts.engine_key_items()


def test_per_file_build_locks_do_not_grow_with_the_shapes_seen(tmp_path: Path) -> None:
    opts = _opts(tmp_path)
    for n in range(1, 30):
        get_or_build(small_graph(), [(n, 8)], opts, "reference")
    assert len(build_module._file_builds) == 0
