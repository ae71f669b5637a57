"""Engine cache: key sensitivity, graph hash, get-or-build with hits/misses/rejects, concurrent atomic writes."""

import logging
import multiprocessing
import os

import numpy as np
import pytest

from engine_testutil import H100, small_graph
from ep_trtpy.builder.build import get_or_build, producer_versions
from ep_trtpy.engine.artifact import CPU, Device
from ep_trtpy.engine.cache import Counters, atomic_write, cache_key, file_name, graph_hash
from ep_trtpy.engine.format import decode, encode
from ep_trtpy.options import parse

PRODUCERS = {"ep_trtpy": "0.1.0", "onnx": "1.23", "onnxruntime": "1.31.1"}


def _key(shapes=((2, 8),), options=None, backend="cuda", device=H100, producers=PRODUCERS, g=None):
    return cache_key(graph_hash(g or small_graph()), list(shapes), (options or parse({})).engine_key_items(), backend,
                     device, producers)


def test_key_changes_with_what_matters():
    base = _key()
    assert _key(shapes=((3, 8),)) != base
    assert _key(options=parse({"fp16_enable": "1"})) != base
    assert _key(backend="reference") != base
    assert _key(device=Device(0, "NVIDIA H100 80GB HBM3", (8, 9))) != base
    assert _key(device=Device(0, "NVIDIA A100", (9, 0))) != base
    assert _key(producers=dict(PRODUCERS, ep_trtpy="0.2.0")) != base
    assert _key(g=small_graph(bias=2.0)) != base


def test_key_ignores_options_that_do_not_change_the_engine(tmp_path):
    base = _key()
    for opts in ({"engine_cache_enable": "1"}, {"engine_cache_path": str(tmp_path)}, {"detailed_build_log": "1"},
                 {"device_id": "3"}, {"min_subgraph_size": "5"}, {"dump_subgraphs": "1"},
                 {"op_types_to_exclude": "Resize"}):
        assert _key(options=parse(opts)) == base, opts
    # the reference backend does not depend on the GPU
    assert _key(backend="reference", device=CPU) == _key(backend="reference", device=H100)


def test_graph_hash_ignores_names_but_not_content():
    a, b = small_graph(), small_graph()
    for v in list(b.values.values()):
        if v not in b.inputs:
            v.name = "renamed_" + v.name
    for n in b.nodes:
        n.name = "other_" + n.name
    assert graph_hash(a) == graph_hash(b)
    c = small_graph()
    c.nodes[-1].attrs["dummy"] = 1
    assert graph_hash(c) != graph_hash(a)
    assert graph_hash(small_graph(bias=1.5)) != graph_hash(a)


def test_file_names():
    gh, key = "1" * 64, "2" * 64
    assert file_name(gh, key, "cuda", H100) == f"TrtPy_{'1' * 16}_{'2' * 16}_sm90.engine"
    assert file_name(gh, key, "reference", CPU).endswith("_cpu.engine")


def _opts(tmp_path, **kw):
    return parse({"engine_cache_enable": "1", "engine_cache_path": str(tmp_path), **kw})


def test_get_or_build_miss_then_hit(tmp_path):
    c = Counters()
    g = small_graph()
    first = get_or_build(g, [(2, 8)], _opts(tmp_path), "reference", counters=c)
    assert first.source == "built" and os.path.exists(first.path)
    assert c.as_dict() == {"builds": 1, "engine_cache_hits": 0, "engine_cache_misses": 1, "engine_cache_rejects": 0}
    second = get_or_build(small_graph(), [(2, 8)], _opts(tmp_path), "reference", counters=c)
    assert second.source == "cache" and second.path == first.path
    assert c.builds == 1 and c.engine_cache_hits == 1
    third = get_or_build(g, [(5, 8)], _opts(tmp_path), "reference", counters=c)
    assert third.source == "built" and third.path != first.path
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]


def test_cache_disabled_builds_every_time(tmp_path):
    c = Counters()
    opts = parse({"engine_cache_path": str(tmp_path)})
    get_or_build(small_graph(), [(2, 8)], opts, "reference", counters=c)
    get_or_build(small_graph(), [(2, 8)], opts, "reference", counters=c)
    assert c.builds == 2 and c.engine_cache_hits == 0 and not os.listdir(tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty", "foreign"])
def test_bad_cache_file_is_rejected_and_replaced(tmp_path, damage):
    c = Counters()
    opts = _opts(tmp_path)
    first = get_or_build(small_graph(), [(2, 8)], opts, "reference", counters=c)
    data = open(first.path, "rb").read()
    if damage == "truncate":
        bad = data[: len(data) // 2]
    elif damage == "flip":
        bad = bytearray(data)
        bad[len(bad) // 3] ^= 1
        bad = bytes(bad)
    elif damage == "garbage":
        bad = os.urandom(300)
    elif damage == "empty":
        bad = b""
    else:  # a valid engine for another shape, renamed onto this file
        other = get_or_build(small_graph(), [(4, 8)], opts, "reference", counters=Counters())
        bad = open(other.path, "rb").read()
    with open(first.path, "wb") as f:
        f.write(bad)
    records = _LogList()
    logger = logging.getLogger("ep_trtpy")  # does not propagate to the root logger, so no caplog
    logger.addHandler(records)
    try:
        again = get_or_build(small_graph(), [(2, 8)], opts, "reference", counters=c)
    finally:
        logger.removeHandler(records)
    assert again.source == "built" and c.engine_cache_rejects == 1
    assert any(os.path.basename(first.path) in r.getMessage() and "rejected" in r.getMessage()
               for r in records.records)
    if damage == "foreign":
        assert any("key mismatch" in r.getMessage() for r in records.records)
    decode(open(first.path, "rb").read(), expect_key=again.key)  # replaced by a valid file
    x = np.ones((2, 8), np.float32)
    import graph_runner

    np.testing.assert_array_equal(graph_runner.run(first.artifact.graph, {"x": x})[0],
                                  graph_runner.run(again.artifact.graph, {"x": x})[0])


class _LogList(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _writer(path: str, payload: bytes, n: int) -> None:
    for _ in range(n):
        atomic_write(path, payload)


def test_concurrent_atomic_writes(tmp_path):
    """Two processes replace the same file repeatedly; every read sees one complete, valid engine."""
    from engine_testutil import reference_artifact

    art_a, art_b = reference_artifact(shapes=((2, 8),)), reference_artifact(shapes=((3, 8),))
    key = "00" * 32
    payloads = [encode(a, key=key, graph_hash="11" * 32, producers=PRODUCERS, options={}) for a in (art_a, art_b)]
    path = str(tmp_path / "TrtPy_x.engine")
    atomic_write(path, payloads[0])
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, p, 40)) for p in payloads]
    for p in procs:
        p.start()
    reads = 0
    while any(p.is_alive() for p in procs) or reads < 5:
        data = open(path, "rb").read()
        decode(data, expect_key=key)
        assert data in payloads
        reads += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]


def test_producer_versions_reference_has_no_native_entries():
    v = producer_versions("reference")
    assert set(v) == {"ep_trtpy", "onnx", "onnxruntime"}


def test_graph_hash_digests_large_constants_in_parallel_to_the_same_value(monkeypatch):
    """The threaded path (graphs above PARALLEL_HASH_BYTES) hashes exactly what the serial path hashes, a
    non-contiguous constant hashes like its C-order copy, and a changed byte changes the hash."""
    from ep_trtpy.engine import cache

    g = small_graph()
    w = next(v for n in g.nodes for v in n.inputs if v is not None and v.const is not None and v.const.ndim == 2)
    w.const = np.asfortranarray(w.const)
    serial = graph_hash(g)
    monkeypatch.setattr(cache, "PARALLEL_HASH_BYTES", 0)
    assert graph_hash(g) == serial
    w.const = np.ascontiguousarray(w.const)
    assert graph_hash(g) == serial
    w.const = w.const.copy()
    w.const[3, 7] = np.nextafter(w.const[3, 7], np.float32(2))
    assert graph_hash(g) != serial
