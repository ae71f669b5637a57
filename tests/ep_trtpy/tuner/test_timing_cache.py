"""The timing cache file: keys, JSON round trip, bad files (one warning, a miss, replaced), concurrent writers."""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
from dataclasses import replace

import pytest

from ep_trtpy.engine.plan import LayerSpec, Plan, TensorSpec
from ep_trtpy.tuner.signature import layer_signature, signature_key
from ep_trtpy.tuner.timing_cache import FORMAT_NAME, Entry, Environment, TimingCache, current_environment

ENV = Environment("0.1.0", "13000", "92801", "131000", "NVIDIA H200", (9, 0))


def entry(n: int, ms: float = 0.5) -> Entry:
    return Entry({"kernel": "gemm", "ints": [n]}, n % 7, f"algo{n}", ms, [(f"algo{n}", ms), ("other", math.inf)])


def test_environment_key_changes_with_every_field_and_names_the_file():
    keys = {ENV.key}
    for field, value in (("ep_trtpy", "0.2.0"), ("cudart", "13010"), ("cudnn", "92900"), ("cublaslt", "131100"),
                         ("gpu", "NVIDIA H100 80GB HBM3"), ("cc", (8, 0))):
        keys.add(replace(ENV, **{field: value}).key)
    assert len(keys) == 7
    assert ENV.file_name == f"TrtPy_timing_sm90_{ENV.key[:16]}.json"
    assert Environment.from_dict(json.loads(json.dumps(ENV.to_dict()))) == ENV


def test_current_environment_takes_the_native_library_versions():
    env = current_environment("NVIDIA H200", (9, 0))  # the native module answers without a GPU
    import ep_trtpy
    from ep_trtpy import _kernels

    libs = _kernels.library_versions()
    assert env.ep_trtpy == ep_trtpy.__version__ and env.gpu == "NVIDIA H200" and env.cc == (9, 0)
    assert (env.cudart, env.cudnn, env.cublaslt) == (str(libs["cudart"]), str(libs["cudnn"]), str(libs["cublaslt"]))


def _plan(shape=(4, 8), dtype=1, view_offset=0, names=("a", "b", "y")):
    """A one-gemm plan; the first operand is a view of a bigger activation at `view_offset` bytes."""
    ts = [TensorSpec(0, names[0] + "_base", dtype, (64,), "activation"),
          TensorSpec(1, names[0], dtype, shape, "alias", index=0, offset=view_offset),
          TensorSpec(2, names[1], dtype, (8, 3), "weight", offset=256),
          TensorSpec(3, names[2], dtype, (shape[0], 3), "output", index=0)]
    return Plan(ts, [LayerSpec("gemm", [1, 2, -1], [3], [shape[0], 3, 8], [1.0], name=names[2])])


def test_layer_signature_ignores_names_and_homes_and_sees_shapes_dtypes_alignment_level():
    base = _plan()
    key = signature_key(layer_signature(base, base.layers[0], 3))
    renamed = _plan(names=("p", "q", "r"))
    assert signature_key(layer_signature(renamed, renamed.layers[0], 3)) == key
    sig = layer_signature(base, base.layers[0], 3)
    assert sig["inputs"] == [[1, [4, 8], 256], [1, [8, 3], 256], None] and sig["level"] == 3
    others = [(_plan(shape=(2, 8)), 3), (_plan(dtype=10), 3), (_plan(view_offset=64), 3), (base, 5)]
    got = {signature_key(layer_signature(p, p.layers[0], lv)) for p, lv in others}
    assert len(got) == 4 and key not in got
    assert layer_signature(_plan(view_offset=64), _plan().layers[0], 3)["inputs"][0][2] == 64
    changed = _plan()
    changed.layers[0].ints[2] = 9
    assert signature_key(layer_signature(changed, changed.layers[0], 3)) != key


def test_json_round_trip(tmp_path):
    cache = TimingCache(str(tmp_path), ENV)
    for n in range(3):
        cache.put(f"k{n}", entry(n, ms=0.1 * (n + 1)))
    assert cache.save() == 3 and not cache.pending
    doc = json.loads((tmp_path / ENV.file_name).read_text())
    assert doc["format"] == FORMAT_NAME and doc["version"] == 1 and doc["environment"] == ENV.to_dict()
    assert doc["entries"]["k1"]["candidates"][1] == ["other", None]  # a failed candidate: null
    again = TimingCache(str(tmp_path), ENV).load()
    assert len(again) == 3
    for n in range(3):
        got, want = again.get(f"k{n}"), entry(n, ms=0.1 * (n + 1))
        assert (got.layer, got.tactic, got.tactic_name, got.ms) == (want.layer, want.tactic, want.tactic_name, want.ms)
        assert got.candidates[0] == want.candidates[0] and math.isinf(got.candidates[1][1])
    assert not (tmp_path / ENV.file_name).with_name(ENV.file_name + ".tmp").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_a_new_write_merges_with_what_is_on_disk(tmp_path):
    first, second = TimingCache(str(tmp_path), ENV), TimingCache(str(tmp_path), ENV)
    first.put("a", entry(1))
    second.put("b", entry(2))
    first.save()
    second.save()  # second never read "a", yet keeps it
    assert set(TimingCache(str(tmp_path), ENV).load().entries) == {"a", "b"}


BAD_FILES = {
    "not json": b"\x00\x01garbage",
    "truncated": None,  # filled below from a valid file
    "foreign JSON": json.dumps({"hello": "world"}).encode(),
    "newer version": json.dumps({"format": FORMAT_NAME, "version": 99, "environment": ENV.to_dict(),
                                 "entries": {}}).encode(),
    "another environment": json.dumps({"format": FORMAT_NAME, "version": 1,
                                       "environment": replace(ENV, cudnn="91000").to_dict(),
                                       "entries": {"x": entry(1).to_dict()}}).encode(),
    "entries not an object": json.dumps({"format": FORMAT_NAME, "version": 1, "environment": ENV.to_dict(),
                                         "entries": [1, 2]}).encode(),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_a_bad_file_is_one_warning_and_a_miss_then_replaced(tmp_path, caplog, kind):
    path = tmp_path / ENV.file_name
    data = BAD_FILES[kind]
    if data is None:
        good = TimingCache(str(tmp_path), ENV)
        good.put("x", entry(1))
        good.save()
        data = path.read_bytes()[:-25]
    path.write_bytes(data)
    with caplog.at_level(logging.WARNING, logger="ep_trtpy.tuner"):
        cache = TimingCache(str(tmp_path), ENV).load()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and ENV.file_name in warnings[0].getMessage()
    assert len(cache) == 0 and cache.get("x") is None
    with caplog.at_level(logging.WARNING, logger="ep_trtpy.tuner"):
        TimingCache(str(tmp_path), ENV).load()  # the same bad file again: no second warning
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    cache.put("y", entry(2))
    assert cache.save() == 1
    assert set(TimingCache(str(tmp_path), ENV).load().entries) == {"y"}


def test_malformed_entries_are_skipped_the_rest_is_used(tmp_path, caplog):
    doc = {"format": FORMAT_NAME, "version": 1, "environment": ENV.to_dict(),
           "entries": {"good": entry(1).to_dict(), "bad": {"tactic": "x"}, "worse": 3}}
    (tmp_path / ENV.file_name).write_text(json.dumps(doc))
    with caplog.at_level(logging.WARNING, logger="ep_trtpy.tuner"):
        cache = TimingCache(str(tmp_path), ENV).load()
    assert set(cache.entries) == {"good"} and "2 malformed entries" in caplog.text


def test_an_unwritable_folder_is_a_warning(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = TimingCache(str(blocker / "sub"), ENV)  # a folder below a file cannot be created
    cache.put("a", entry(1))
    with caplog.at_level(logging.WARNING, logger="ep_trtpy.tuner"):
        assert cache.save() == 0
    assert "could not write" in caplog.text and cache.get("a") is not None


def _writer(folder: str, worker: int, n: int) -> None:
    for k in range(n):  # one save per entry: many interleaved read-merge-replace cycles
        cache = TimingCache(folder, ENV)
        cache.put(f"w{worker}-{k}", entry(worker * 100 + k))
        cache.save()


def test_concurrent_writers_lose_nothing(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 12)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    keys = set(TimingCache(str(tmp_path), ENV).load().entries)
    assert keys == {f"w{w}-{k}" for w in range(4) for k in range(12)}
    assert sorted(os.listdir(tmp_path)) == sorted([ENV.file_name, ENV.file_name + ".lock"])
