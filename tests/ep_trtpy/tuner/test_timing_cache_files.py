"""Hostile timing cache entries: a FIFO, a symlink to /dev/zero, a device, an oversize file or a deeply nested
document where the timing cache file belongs is one warning and an empty cache (never a hang or a MemoryError),
and none of them is replaced by a write."""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path

import pytest

from ep_trtpy.tuner import timing_cache
from ep_trtpy.tuner.timing_cache import TIMING_CACHE_LIMIT, TimingCache
from test_timing_cache import ENV, entry


def _load(folder: Path, timeout: float = 20.0) -> TimingCache:
    out: list[TimingCache] = []
    t = threading.Thread(target=lambda: out.append(TimingCache(str(folder), ENV).load()), daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        os.close(os.open(folder / ENV.file_name, os.O_WRONLY | os.O_NONBLOCK))  # unblock the stuck reader
        pytest.fail("reading the timing cache hung")
    return out[0]


def _hostile(folder: Path, kind: str) -> Path:
    path = folder / ENV.file_name
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        os.symlink("/dev/zero", path)
    elif kind == "folder":
        path.mkdir()
    else:  # oversize, sparse
        with open(path, "wb") as f:
            f.truncate(TIMING_CACHE_LIMIT + 1)
    return path


@pytest.mark.parametrize("kind, why", [("fifo", "a FIFO"), ("dev_zero", "outside the cache folder"),
                                       ("folder", "a folder"), ("oversize", "more than the")])
def test_hostile_entry_is_a_warning_and_an_empty_cache(tmp_path: Path, caplog, kind: str, why: str) -> None:
    path = _hostile(tmp_path, kind)
    before = os.lstat(path)
    timing_cache._warned.clear()
    with caplog.at_level(logging.WARNING, logger="ep_trtpy.tuner"):
        cache = _load(tmp_path)
    assert len(cache) == 0 and why in caplog.text
    cache.put("a", entry(1))
    if kind == "oversize":  # a regular file: replaced by the next write, like any bad timing cache file
        assert "replaced at the next write" in caplog.text
        assert cache.save() == 1 and set(TimingCache(str(tmp_path), ENV).load().entries) == {"a"}
        return
    assert "left as it is" in caplog.text
    with caplog.at_level(logging.WARNING, logger="ep_trtpy.tuner"):
        assert cache.save() == 0
    assert "could not write" in caplog.text and cache.get("a") is not None
    after = os.lstat(path)
    assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode) and after.st_size == before.st_size


def test_deeply_nested_document_is_a_warning(tmp_path: Path, caplog) -> None:
    (tmp_path / ENV.file_name).write_text("[" * 100_000 + "]" * 100_000)
    timing_cache._warned.clear()
    with caplog.at_level(logging.WARNING, logger="ep_trtpy.tuner"):
        assert len(_load(tmp_path)) == 0
    assert "not a JSON document" in caplog.text


def test_symlink_to_a_timing_cache_inside_the_folder_is_read(tmp_path: Path) -> None:
    good = TimingCache(str(tmp_path / "real"), ENV)
    good.put("a", entry(1))
    good.save()
    os.symlink(tmp_path / "real" / ENV.file_name, tmp_path / ENV.file_name)
    assert set(TimingCache(str(tmp_path), ENV).load().entries) == {"a"}


def test_lock_file_symlink_is_not_followed(tmp_path: Path, caplog) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    os.symlink(target, tmp_path / (ENV.file_name + ".lock"))
    cache = TimingCache(str(tmp_path), ENV)
    cache.put("a", entry(1))
    with caplog.at_level(logging.WARNING, logger="ep_trtpy.tuner"):
        assert cache.save() == 0
    assert target.read_text() == "keep" and "could not write" in caplog.text
