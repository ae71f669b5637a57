"""CUDA graph replay of engines: captured once per set of input/output pointers after a first direct run,
replayed afterwards, identical results; off when asked; through ORT with the provider option."""

from __future__ import annotations

import numpy as np
import pytest

import ep_trtpy
from ep_trtpy import _kernels, models
from ep_trtpy.cli import harness
from ep_trtpy.builder.lowering import lower
from ep_trtpy.runtime import build_engine

from lib_kernel_helpers import GPU_SKIP_REASON, STRICT_FP32, gpu_available
from test_engine_gpu import _mlp_graph

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason=GPU_SKIP_REASON)]


def _counters() -> dict[str, int]:
    return dict(_kernels.counters())


def _run(engine, x_dev, y_dev, stream) -> None:
    engine.run([x_dev.data.ptr], [y_dev.data.ptr], stream.ptr)


def test_capture_then_replay_gives_identical_results_and_new_pointers_capture_again() -> None:
    import cupy as cp

    g, x, ref = _mlp_graph()
    plan, weights = lower(g, STRICT_FP32)  # strict float32: the checks are to 1e-4
    engine = build_engine(plan, weights, 0)
    assert engine.cuda_graph
    stream = cp.cuda.Stream(non_blocking=True)
    xs = [cp.asarray(x), cp.asarray(x[::-1].copy())]
    ys = [cp.full((x.shape[0], 32), np.nan, dtype=cp.float32) for _ in range(2)]
    before = _counters()
    results = []
    for xi, yi in [(0, 0), (0, 0), (0, 0), (1, 1), (1, 1), (0, 0)]:
        ys[yi].fill(np.nan)
        _run(engine, xs[xi], ys[yi], stream)
        stream.synchronize()
        results.append(cp.asnumpy(ys[yi]))
    d = {k: _counters()[k] - before[k] for k in before}
    # run 1 direct, run 2 captures (pointers A), run 3 replays, run 4 captures (pointers B), 5 and 6 replay
    assert d["graph_captures"] == 2 and d["graph_replays"] == 3, d
    for r in results[:3] + results[5:]:
        np.testing.assert_array_equal(r, results[0])
    np.testing.assert_allclose(results[3], ref(x[::-1].copy()), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(results[0], ref(x), rtol=1e-4, atol=1e-4)
    assert engine.cuda_graph_disabled_reason == ""


def test_graphs_off_runs_layer_by_layer() -> None:
    import cupy as cp

    g, x, ref = _mlp_graph()
    plan, weights = lower(g, STRICT_FP32)  # strict float32: the checks are to 1e-4
    engine = build_engine(plan, weights, 0)
    engine.cuda_graph = False
    stream = cp.cuda.Stream(non_blocking=True)
    xd, yd = cp.asarray(x), cp.empty((x.shape[0], 32), dtype=cp.float32)
    before = _counters()
    for _ in range(3):
        _run(engine, xd, yd, stream)
    stream.synchronize()
    d = {k: _counters()[k] - before[k] for k in before}
    assert d["graph_captures"] == 0 and d["graph_replays"] == 0
    np.testing.assert_allclose(cp.asnumpy(yd), ref(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("enable", ["1", "0"])
def test_through_ort_with_device_iobinding(enable: str) -> None:
    """With IOBinding on device buffers the addresses are fixed, so runs after the second replay the graph."""
    import onnxruntime as ort

    model = models.build("resnet50", ci=True)
    sess = harness.create_session(model, "trtpy", ep_options={"cuda_graph_enable": enable, "tf32_enable": "0"})
    cpu = harness.create_session(model, "cpu")
    feeds = models.make_feeds("resnet50", batch=4, seed=9, ci=True)
    (name, x), = feeds.items()
    io = sess.io_binding()
    xv = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
    io.bind_ortvalue_input(name, xv)
    out = sess.get_outputs()[0]
    yv = ort.OrtValue.ortvalue_from_shape_and_type(cpu.run(None, feeds)[0].shape, np.float32, "cuda", 0)
    io.bind_ortvalue_output(out.name, yv)
    before = ep_trtpy.runtime_stats()
    for _ in range(5):
        sess.run_with_iobinding(io)
    after = ep_trtpy.runtime_stats()
    replays = after["graph_replays"] - before["graph_replays"]
    if enable == "1":
        assert replays >= 3, f"{replays} replays in 5 runs with fixed addresses"
    else:
        assert replays == 0
    ref = cpu.run(None, feeds)[0]
    got = yv.numpy()
    assert harness.compare(out.name, got, ref, network=True).max_rel <= 1e-4
