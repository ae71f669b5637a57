"""Thread safety, on whichever backend this machine has: the op and lowering registries fill once however many
threads ask first (in a fresh process), a first-seen shape is built once while other threads wait for it, a build
does not hold up runs of shapes that already have an engine (on a GPU this is the shim's engine_for, which must not
hold its lock across the host callback), and sessions created at once on one cache folder build each engine once.
samples/03_threads (run by tests/test_samples.py) covers 8 threads x 200 runs with every output checked."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import ep_trtpy
from ep_trtpy import _host
from ep_trtpy._sync import KeyedLocks, Once
from ep_trtpy.builder import build as build_module
from ep_trtpy.cli import harness

STRICT = {"tf32_enable": "0"}  # float32 to 1e-5 on a GPU as on the reference backend

RACE = textwrap.dedent("""
    import json, threading
    from ep_trtpy.ops import registry
    from ep_trtpy.builder import lowering

    N = 32
    barrier = threading.Barrier(N)
    errors, sizes = [], []

    def worker():
        barrier.wait()
        try:
            for key in ("ep_trtpy::FusedConv", "ep_trtpy::FusedMatMul", "Reshape", "Gemm", "Conv"):
                assert registry.get(key).ref is not None, key
            sizes.append((len(registry.all_ops()), len(lowering.lowerings())))
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker) for _ in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"errors": errors, "sizes": sorted(set(sizes))}))
""")


def test_registries_fill_once_for_many_threads_in_a_fresh_process() -> None:
    """32 threads ask the op and lowering registries for the first time at the same moment; before the fix most of
    them saw a registry marked loaded while its modules were still being imported ("op ... is not known")."""
    from ep_trtpy.builder import lowering
    from ep_trtpy.ops import registry

    for _ in range(3):
        r = subprocess.run([sys.executable, "-c", RACE], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        got = json.loads(r.stdout.strip().splitlines()[-1])
        assert got["errors"] == []
        assert got["sizes"] == [[len(registry.all_ops()), len(lowering.lowerings())]]


def test_once_runs_its_work_once_and_retries_after_a_failure() -> None:
    calls: list[int] = []
    started, release = threading.Event(), threading.Event()

    def work() -> None:
        calls.append(1)
        started.set()
        release.wait(5)

    once = Once(work)
    threads = [threading.Thread(target=once) for _ in range(8)]
    for t in threads:
        t.start()
    assert started.wait(5)
    time.sleep(0.05)
    assert not once.done  # the others wait for the work to finish, not just to begin
    release.set()
    for t in threads:
        t.join(5)
    assert calls == [1] and once.done

    failing = Once(lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    for _ in range(2):
        with pytest.raises(RuntimeError, match="boom"):
            failing()
    assert not failing.done


def test_keyed_locks_drop_keys_nobody_holds() -> None:
    locks = KeyedLocks()
    inside: list[str] = []

    def hold(key: str) -> None:
        with locks.hold(key):
            inside.append(key)
            time.sleep(0.01)

    threads = [threading.Thread(target=hold, args=(f"k{k % 3}",)) for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(inside) == 12 and len(locks) == 0


# ------------------------------------------------------------------------------ sessions and shapes --

def _model(static_batch: int | None = None) -> bytes:
    """y = relu(x @ W + b) with a dynamic (or static) batch: one claimed subgraph."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal((16, 8)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    batch = static_batch if static_batch is not None else "N"
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["m"], name="mm"), helper.make_node("Add", ["m", "b"], ["a"]),
         helper.make_node("Relu", ["a"], ["y"], name="relu")], "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 8])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    return m.SerializeToString()


def _want(model: bytes, x: np.ndarray) -> np.ndarray:
    return harness.create_session(model, "cpu").run(None, {"x": x})[0]


class Builds:
    """Wraps _host.get_or_build: counts builds per batch size, can hold the builds of one batch size."""

    def __init__(self, hold_batch: int | None = None, delay: float = 0.0) -> None:
        self.real = _host.get_or_build
        self.counts: dict[int, int] = {}
        self.lock = threading.Lock()
        self.hold_batch, self.delay = hold_batch, delay
        self.started, self.release = threading.Event(), threading.Event()

    def __call__(self, graph, shapes, *args, **kwargs):
        batch = int(shapes[0][0])
        with self.lock:
            self.counts[batch] = self.counts.get(batch, 0) + 1
        if batch == self.hold_batch:
            self.started.set()
            assert self.release.wait(30), "the held build was never released"
        time.sleep(self.delay)
        return self.real(graph, shapes, *args, **kwargs)


def test_a_first_seen_shape_is_built_once_while_the_other_threads_wait(monkeypatch) -> None:
    builds = Builds(delay=0.3)
    monkeypatch.setattr(_host, "get_or_build", builds)
    model = _model()
    sess = harness.create_session(model, "trtpy", ep_options=STRICT)
    xs = [np.random.default_rng(k).standard_normal((3, 16)).astype(np.float32) for k in range(8)]
    wants = [_want(model, x) for x in xs]
    barrier, errors = threading.Barrier(8), []

    def run(k: int) -> None:
        barrier.wait()
        try:
            np.testing.assert_allclose(sess.run(None, {"x": xs[k]})[0], wants[k], rtol=1e-5, atol=1e-6)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert builds.counts == {3: 1}


def test_a_new_shape_build_does_not_hold_up_runs_of_built_shapes(monkeypatch) -> None:
    builds = Builds(hold_batch=5)
    monkeypatch.setattr(_host, "get_or_build", builds)
    model = _model()
    sess = harness.create_session(model, "trtpy", ep_options=STRICT)
    x1 = np.random.default_rng(1).standard_normal((1, 16)).astype(np.float32)
    x5 = np.random.default_rng(2).standard_normal((5, 16)).astype(np.float32)
    sess.run(None, {"x": x1})  # batch 1 has its engine
    slow: list[np.ndarray] = []
    builder = threading.Thread(target=lambda: slow.append(sess.run(None, {"x": x5})[0]))
    builder.start()
    try:
        assert builds.started.wait(30)
        done: list[np.ndarray] = []
        runner = threading.Thread(target=lambda: done.extend(sess.run(None, {"x": x1})[0] for _ in range(20)))
        runner.start()
        runner.join(20)
        assert len(done) == 20, "runs of an already built shape waited for another shape's build"
        assert builder.is_alive()  # the batch-5 build is still held
    finally:
        builds.release.set()
        builder.join(60)
    np.testing.assert_allclose(slow[0], _want(model, x5), rtol=1e-5, atol=1e-6)
    assert builds.counts == {1: 1, 5: 1}


def test_a_failed_build_fails_its_waiters_and_is_tried_again(monkeypatch) -> None:
    real = _host.get_or_build
    failures = [1]

    def flaky(graph, shapes, *args, **kwargs):
        time.sleep(0.2)
        if failures:
            failures.pop()
            raise ValueError("planned build failure")
        return real(graph, shapes, *args, **kwargs)

    monkeypatch.setattr(_host, "get_or_build", flaky)
    model = _model()
    sess = harness.create_session(model, "trtpy", ep_options=STRICT)
    x = np.random.default_rng(3).standard_normal((4, 16)).astype(np.float32)
    barrier, errors = threading.Barrier(4), []

    def run() -> None:
        barrier.wait()
        try:
            sess.run(None, {"x": x})
        except Exception as e:  # noqa: BLE001
            errors.append(str(e))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(errors) == 4 and all("planned build failure" in e for e in errors)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], _want(model, x), rtol=1e-5, atol=1e-6)


def test_sessions_created_at_once_on_one_cache_folder_build_each_engine_once(tmp_path: Path) -> None:
    model = _model(static_batch=2)  # static shapes: the engine is built (or loaded) at session creation
    x = np.random.default_rng(4).standard_normal((2, 16)).astype(np.float32)
    want = _want(model, x)
    opts = {"engine_cache_enable": "1", "engine_cache_path": str(tmp_path), **STRICT}
    before = ep_trtpy.runtime_stats()
    barrier, errors, outs = threading.Barrier(6), [], []

    def create() -> None:
        barrier.wait()
        try:
            outs.append(harness.create_session(model, "trtpy", ep_options=opts).run(None, {"x": x})[0])
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    after = ep_trtpy.runtime_stats()
    assert after["builds"] - before["builds"] == 1
    assert after["engine_cache_hits"] - before["engine_cache_hits"] == 5
    assert len(outs) == 6 and all(np.allclose(o, want, rtol=1e-5, atol=1e-6) for o in outs)
    assert len(list(tmp_path.glob("TrtPy_*.engine"))) == 1 and not list(tmp_path.glob(".tmp-*"))
    assert len(build_module._file_builds) == 0
