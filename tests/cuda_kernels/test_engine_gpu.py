"""GPU tests of the engine executor: memcpy and zero-copy aliases, output binding corner cases, zero-size tensors,
stream ordering across runs, profiling, counters, tactic write-back and device memory accounting."""

from __future__ import annotations

import gc
from collections.abc import Callable

import numpy as np
import pytest

from graph_partitioner.ir import FLOAT, FLOAT16, Graph

from lib_kernel_helpers import (GPU_SKIP_REASON, STRICT_FP32, In, assert_close, gpu_available, one_node_graph, rand,
                                run_on_gpu)

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason=GPU_SKIP_REASON)]


def _mlp_graph(n: int = 256, hidden: int = 512,
               seed: int = 40) -> tuple[Graph, np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """x[n, 64] -> FusedMatMul(W1, b1, relu) -> Reshape -> Flatten -> FusedMatMul(W2) -> y; activations in the arena."""
    rng = np.random.default_rng(seed)
    w1, b1, w2 = rand(rng, (64, hidden), FLOAT), rand(rng, (hidden,), FLOAT), rand(rng, (hidden, 32), FLOAT)
    g = Graph("mlp", {"": 17, "ep_trtpy": 1})
    x = g.add_value("x", FLOAT, (n, 64))
    g.inputs.append(x)
    h = g.add_value("h", FLOAT, (n, hidden))
    g.add_node("FusedMatMul", [x, g.add_value("w1", const=w1), g.add_value("b1", const=b1)], [h],
               attrs={"activation": "Relu"}, domain="ep_trtpy", name="fc1")
    r = g.add_value("r", FLOAT, (n, 2, hidden // 2))
    g.add_node("Reshape", [h, g.add_value("shape", const=np.array([n, 2, hidden // 2]))], [r], name="reshape")
    f = g.add_value("f", FLOAT, (n, hidden))
    g.add_node("Flatten", [r], [f], attrs={"axis": 1}, name="flatten")
    y = g.add_value("y", FLOAT, (n, 32))
    g.add_node("FusedMatMul", [f, g.add_value("w2", const=w2)], [y], domain="ep_trtpy", name="fc2")
    g.outputs.append(y)

    def ref(xv: np.ndarray) -> np.ndarray:
        hv = np.maximum(xv.astype(np.float64) @ w1 + b1, 0)
        return hv @ w2.astype(np.float64)

    return g, rng.uniform(-1, 1, (n, 64)).astype(np.float32), ref


def test_alias_chain_runs_without_copies() -> None:
    g, x, ref = _mlp_graph()
    (y,), plan, engine = run_on_gpu(g, [x])
    assert [lay.kernel for lay in plan.layers] == ["gemm", "gemm"], "Reshape/Flatten must be views"
    assert engine.arena_bytes >= 256 * 512 * 4
    assert_close(y, ref(x), FLOAT, "MLP through aliases", plan)


def test_identity_of_input_to_output_is_a_copy() -> None:
    g = one_node_graph("Identity", [In(FLOAT16, (3, 5))], [(FLOAT16, (3, 5))])
    x = np.arange(15, dtype=np.float16).reshape(3, 5)
    (y,), plan, _ = run_on_gpu(g, [x])
    assert [lay.kernel for lay in plan.layers] == ["memcpy"]
    np.testing.assert_array_equal(y, x)


def test_weight_straight_to_output_and_two_outputs_of_one_value() -> None:
    g = Graph("outs", {"": 17})
    x = g.add_value("x", FLOAT, (4, 6))
    g.inputs.append(x)
    c = g.add_value("c", const=np.arange(12, dtype=np.float32).reshape(3, 4))
    w = g.add_value("w", const=np.eye(6, dtype=np.float32) * 2)
    y = g.add_value("y", FLOAT, (4, 6))
    g.add_node("MatMul", [x, w], [y], name="mm")
    g.outputs.extend([y, c, y, x])  # y twice, a constant, and the input itself
    rng = np.random.default_rng(41)
    xv = rand(rng, (4, 6), FLOAT)
    outs, plan, _ = run_on_gpu(g, [xv])
    assert len(outs) == 4
    assert_close(outs[0], 2.0 * xv.astype(np.float64), FLOAT, "y (slot 0)", plan)
    np.testing.assert_array_equal(outs[1], np.arange(12, dtype=np.float32).reshape(3, 4))
    np.testing.assert_array_equal(outs[2], outs[0])
    np.testing.assert_array_equal(outs[3], xv)


def test_zero_size_output_next_to_a_normal_one() -> None:
    g = Graph("zero", {"": 17})
    a = g.add_value("a", FLOAT, (0, 5))
    x = g.add_value("x", FLOAT, (3, 5))
    g.inputs.extend([a, x])
    w = g.add_value("w", const=np.ones((5, 2), np.float32))
    ya = g.add_value("ya", FLOAT, (0, 2))
    yx = g.add_value("yx", FLOAT, (3, 2))
    g.add_node("MatMul", [a, w], [ya], name="empty_mm")
    g.add_node("MatMul", [x, w], [yx], name="mm")
    e = g.add_value("e", FLOAT, (0, 1, 2))
    g.add_node("Unsqueeze", [ya, g.add_value("axes", const=np.array([1]))], [e], name="unsq")
    g.outputs.extend([ya, yx, e])
    xv = np.arange(15, dtype=np.float32).reshape(3, 5)
    outs, plan, _ = run_on_gpu(g, [np.zeros((0, 5), np.float32), xv])
    assert outs[0].shape == (0, 2) and outs[2].shape == (0, 1, 2)
    assert_close(outs[1], xv.astype(np.float64) @ np.ones((5, 2)), FLOAT, "non-empty output", plan)


def test_runs_on_two_streams_are_ordered() -> None:
    """Alternate runs on two streams without host synchronization: the engine's arena is shared, so each run must
    wait for the previous one (an event); otherwise the outputs would mix."""
    import cupy as cp

    from ep_trtpy.builder.lowering import lower
    from ep_trtpy.runtime import build_engine, run_engine

    g, _, ref = _mlp_graph(n=2048, hidden=1024, seed=42)
    plan, weights = lower(g, STRICT_FP32)  # strict float32: the checks are to 1e-4
    engine = build_engine(plan, weights, 0)
    rng = np.random.default_rng(43)
    xs = [rng.uniform(-1, 1, (2048, 64)).astype(np.float32) for _ in range(6)]
    s1, s2 = cp.cuda.Stream(non_blocking=True), cp.cuda.Stream(non_blocking=True)
    dev_x = [cp.asarray(x) for x in xs]
    cp.cuda.Device().synchronize()
    outs = []
    for i, xd in enumerate(dev_x):
        outs.append(run_engine(engine, [xd], stream=s1 if i % 2 == 0 else s2)[0])
    s1.synchronize()
    s2.synchronize()
    for i, (x, y) in enumerate(zip(xs, outs)):
        assert_close(cp.asnumpy(y), ref(x), FLOAT, f"run {i} on stream {1 + i % 2}", plan)


def test_run_with_raw_stream_pointer_and_counters() -> None:
    import cupy as cp

    from ep_trtpy import _kernels
    from ep_trtpy.builder.lowering import lower
    from ep_trtpy.runtime import build_engine, run_engine

    g, x, ref = _mlp_graph(n=8, hidden=16, seed=44)
    plan, weights = lower(g, STRICT_FP32)  # strict float32: the checks are to 1e-4
    engine = build_engine(plan, weights, 0)
    stream = cp.cuda.Stream(non_blocking=True)
    before = _kernels.counters()["gpu_engine_runs"]
    (y,) = run_engine(engine, [cp.asarray(x)], stream=stream.ptr)
    stream.synchronize()
    assert _kernels.counters()["gpu_engine_runs"] == before + 1
    assert_close(cp.asnumpy(y), ref(x), FLOAT, "run on a raw cudaStream_t", plan)


def test_profile_layers() -> None:
    import cupy as cp

    from ep_trtpy.builder.lowering import lower
    from ep_trtpy.runtime import build_engine, profile_engine

    g, x, _ = _mlp_graph()
    plan, weights = lower(g, STRICT_FP32)  # strict float32: the checks are to 1e-4
    engine = build_engine(plan, weights, 0)
    ms = profile_engine(engine, [cp.asarray(x)], iterations=5)
    assert len(ms) == len(plan.layers) == engine.num_layers
    assert all(t >= 0.0 for t in ms) and sum(ms) > 0.0


def test_tactics_are_written_back_and_replayed() -> None:
    import cupy as cp

    from ep_trtpy.builder.lowering import lower
    from ep_trtpy.engine.plan import Plan
    from ep_trtpy.runtime import build_engine, run_engine

    g, x, ref = _mlp_graph(seed=45)
    plan, weights = lower(g, STRICT_FP32)  # strict float32: the checks are to 1e-4
    assert all(lay.tactic == -1 for lay in plan.layers)
    build_engine(plan, weights, 0)
    chosen = [lay.tactic for lay in plan.layers]
    assert all(t >= 0 for t in chosen)
    replay = Plan.from_dict(plan.to_dict())
    engine = build_engine(replay, weights, 0)
    assert [lay.tactic for lay in replay.layers] == chosen, "stored tactics are used as given"
    (y,) = run_engine(engine, [cp.asarray(x)])
    assert_close(cp.asnumpy(y), ref(x), FLOAT, "replayed plan", replay)


def test_input_checks_name_the_problem() -> None:
    import cupy as cp

    from ep_trtpy.builder.lowering import lower
    from ep_trtpy.runtime import build_engine, run_engine

    g, x, _ = _mlp_graph(n=8, hidden=16)
    plan, weights = lower(g, STRICT_FP32)  # strict float32: the checks are to 1e-4
    engine = build_engine(plan, weights, 0)
    with pytest.raises(ValueError, match=r"input 0 is float64\[8, 64\]"):
        run_engine(engine, [cp.asarray(x, dtype=cp.float64)])
    with pytest.raises(ValueError, match="takes 1 inputs"):
        run_engine(engine, [])
    # a non-contiguous input is made contiguous first
    big = cp.asarray(np.repeat(x, 2, axis=1))
    (y1,) = run_engine(engine, [big[:, ::2]])
    (y2,) = run_engine(engine, [cp.asarray(x)])
    cp.testing.assert_array_equal(y1, y2)


def test_device_queries_and_memory_accounting() -> None:
    from ep_trtpy import _kernels
    from ep_trtpy.builder.lowering import lower
    from ep_trtpy.runtime import build_engine

    info = _kernels.device_info(0)
    assert info["cc"][0] >= 7 and info["total_bytes"] > 0 and info["name"]
    gc.collect()
    in_use0 = _kernels.device_memory_stats(0)[0]
    g, _, _ = _mlp_graph(n=1024, hidden=1024)
    plan, weights = lower(g, STRICT_FP32)  # strict float32: the checks are to 1e-4
    engine = build_engine(plan, weights, 0)
    in_use1 = _kernels.device_memory_stats(0)[0]
    assert in_use1 - in_use0 >= len(weights) + plan.arena_bytes
    del engine
    gc.collect()
    assert _kernels.device_memory_stats(0)[0] <= in_use0 + 4096, "an engine returns its memory when destroyed"
    versions = _kernels.library_versions()
    assert versions["driver"] >= 13000
