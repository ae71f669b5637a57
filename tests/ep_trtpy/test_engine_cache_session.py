"""The engine cache through real ORT sessions: the second session with the same model, shapes and options loads
its engine and builds nothing; a corrupt, truncated or foreign cache file is detected, rebuilt and replaced, and
the numbers stay right. Runs on whichever backend this machine has (GPU engines on a GPU, reference otherwise)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ep_trtpy
from ep_trtpy import models
from ep_trtpy.cli import harness


def _session(model, cache: Path, **extra: str):
    opts = {"engine_cache_enable": "1", "engine_cache_path": str(cache), "detailed_build_log": "1",
            "tf32_enable": "0", **extra}  # strict float32: results within 1e-4 of the CPU provider on a GPU too
    return harness.create_session(model, "trtpy", ep_options=opts)


def _delta(before: dict[str, int]) -> dict[str, int]:
    after = ep_trtpy.runtime_stats()
    return {k: after.get(k, 0) - before.get(k, 0) for k in after}


@pytest.fixture(scope="module")
def model():
    return models.build("resnet50", ci=True)


def test_second_session_loads_the_engine_and_builds_nothing(model, tmp_path: Path, caplog) -> None:
    feeds = models.make_feeds("resnet50", batch=2, seed=4, ci=True)
    ref = harness.create_session(model, "cpu").run(None, feeds)[0]
    before = ep_trtpy.runtime_stats()
    first = _session(model, tmp_path).run(None, feeds)[0]
    d1 = _delta(before)
    assert d1["builds"] == 1 and d1["engine_cache_misses"] == 1
    files = sorted(tmp_path.glob("TrtPy_*.engine"))
    assert len(files) == 1
    assert files[0].name.endswith("_sm90.engine" if ep_trtpy.has_gpu() else "_cpu.engine") or (
        ep_trtpy.has_gpu() and "_sm" in files[0].name)
    caplog.clear()

    before = ep_trtpy.runtime_stats()
    second = _session(model, tmp_path).run(None, feeds)[0]
    d2 = _delta(before)
    assert d2["builds"] == 0, "the second session built an engine instead of loading it"
    assert d2["engine_cache_hits"] == 1
    assert "engine cache hit" in caplog.text  # detailed_build_log=1 logs it (logger "ep_trtpy")
    np.testing.assert_array_equal(first, second)
    assert harness.compare("logits", second, ref, network=True).max_rel <= 1e-4


@pytest.mark.parametrize("damage", ["truncated", "flipped_byte", "foreign", "empty"])
def test_damaged_cache_file_is_rebuilt_and_replaced(model, tmp_path: Path, damage: str) -> None:
    feeds = models.make_feeds("resnet50", batch=1, seed=6, ci=True)
    ref = harness.create_session(model, "cpu").run(None, feeds)[0]
    _session(model, tmp_path).run(None, feeds)
    (path,) = tmp_path.glob("TrtPy_*.engine")
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flipped_byte":
        mid = len(data) // 2
        path.write_bytes(data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:])
    elif damage == "foreign":
        path.write_bytes(b"PK\x03\x04 this is somebody else's file" * 100)
    else:
        path.write_bytes(b"")

    before = ep_trtpy.runtime_stats()
    got = _session(model, tmp_path).run(None, feeds)[0]
    d = _delta(before)
    assert d["engine_cache_rejects"] == 1 and d["builds"] == 1
    assert harness.compare("logits", got, ref, network=True).max_rel <= 1e-4
    # replaced by a good file: a third session loads it
    assert path.read_bytes()[:8] == data[:8]
    before = ep_trtpy.runtime_stats()
    _session(model, tmp_path).run(None, feeds)
    assert _delta(before)["engine_cache_hits"] == 1
