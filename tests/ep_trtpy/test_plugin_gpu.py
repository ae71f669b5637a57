"""GPU path of the ORT plugin shim: device memory, data transfer, Memcpy kernels, streams, the engine cache.

The fake host (tests/ep_trtpy/plugin_fake_host.py) claims Identity nodes and answers get_engine with a real
ep_trtpy._kernels.Engine holding one "memcpy" layer (y = x), so every number checked here went through
tp_engine_run on ORT's CUDA stream. Graph optimizations are off so that ORT keeps the Identity nodes.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from plugin_fake_host import FakeHost, FakeProgram

import ep_trtpy
from ep_trtpy import _kernels

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not ep_trtpy.has_gpu(), reason="needs an NVIDIA GPU with a CUDA 13 driver")]

EP = ep_trtpy.EP_NAME
CPU = "CPUExecutionProvider"

ep_trtpy.register()  # idempotent; needed when an earlier test module imported only submodules of ep_trtpy
ITEMSIZE = {TensorProto.FLOAT: 4, TensorProto.FLOAT16: 2}


def memcpy_engine_factory(dtype: int = TensorProto.FLOAT):
    """An engine factory for FakeHost: one input, one output, one memcpy layer, built for the given shapes."""

    def build(program: FakeProgram, shapes: list[tuple[int, ...]]) -> _kernels.Engine:
        (shape,) = shapes
        nbytes = int(np.prod(shape, dtype=np.int64)) * ITEMSIZE[dtype]
        engine = _kernels.Engine(program.device_id)
        x = engine.add_tensor("x", dtype, list(shape), "input", 0, 0, nbytes)
        y = engine.add_tensor("y", dtype, list(shape), "output", 0, 0, nbytes)
        engine.add_layer("memcpy", [x], [y], [nbytes], [], -1, 0, "copy")  # ints = [bytes], as the lowering emits
        engine.set_arena_bytes(0)
        engine.finalize()
        return engine

    return build


def _model(nodes: list[onnx.NodeProto]) -> bytes:
    graph = helper.make_graph(nodes, "gpu_copy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model.SerializeToString()


def identity_model() -> bytes:
    return _model([helper.make_node("Identity", ["x"], ["y"], name="copy")])


def cpu_sandwich_model() -> bytes:
    """y = -(identity(-x)): a CPU node feeds ours and ours feeds a CPU node (ORT inserts Memcpy nodes)."""
    return _model([helper.make_node("Neg", ["x"], ["n"], name="neg_in"),
                   helper.make_node("Identity", ["n"], ["i"], name="copy"),
                   helper.make_node("Neg", ["i"], ["y"], name="neg_out")])


def session(model: bytes) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    return ort.InferenceSession(model, so, providers=[(EP, {}), CPU])


def assignment(sess: ort.InferenceSession) -> dict[str, str]:
    return {node.name: sub.ep_name for sub in sess.get_provider_graph_assignment_info() for node in sub.get_nodes()}


def delta(before: dict[str, int]) -> dict[str, int]:
    after = _kernels.counters()
    return {k: after[k] - before[k] for k in after}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeHost:
    return FakeHost(claim_ops=("Identity",), engine_factory=memcpy_engine_factory()).install(monkeypatch)


def test_device_inputs_and_outputs_through_iobinding(fake: FakeHost) -> None:
    sess = session(identity_model())
    assert assignment(sess) == {"copy": EP}
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    before = _kernels.counters()
    x_dev = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)  # our allocator + data transfer (vendor 0x10DE)
    binding = sess.io_binding()
    binding.bind_ortvalue_input("x", x_dev)
    binding.bind_output("y", "cuda", 0)
    sess.run_with_iobinding(binding)
    sess.run_with_iobinding(binding)
    y = binding.copy_outputs_to_cpu()[0]
    d = delta(before)
    np.testing.assert_array_equal(y, x)
    assert d["compute_calls"] == 2 and d["gpu_engine_runs"] == 2
    assert d["host_get_engine"] == 1  # the second run hit the shim's engine cache
    assert d["staged_host_inputs"] == 0  # the input came from ORT in device memory
    assert d["copies_h2d"] >= 1 and d["copies_d2h"] >= 1
    assert d["reference_runs"] == 0


def test_host_feeds_are_copied_by_ort_not_staged(fake: FakeHost) -> None:
    sess = session(identity_model())
    x = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    before = _kernels.counters()
    (y,) = sess.run(None, {"x": x})
    d = delta(before)
    np.testing.assert_array_equal(y, x)
    assert d["staged_host_inputs"] == 0
    assert d["copies_h2d"] >= 1 and d["copies_d2h"] >= 1
    assert d["gpu_engine_runs"] == 1


def test_memcpy_kernels_bring_cpu_values_to_the_device(fake: FakeHost) -> None:
    sess = session(cpu_sandwich_model())
    placed = assignment(sess)
    assert (placed["neg_in"], placed["copy"], placed["neg_out"]) == (CPU, EP, CPU)
    x = np.random.default_rng(2).standard_normal((5, 8)).astype(np.float32)
    before = _kernels.counters()
    (y,) = sess.run(None, {"x": x})
    d = delta(before)
    np.testing.assert_array_equal(y, x)
    assert d["staged_host_inputs"] == 0  # MemcpyFromHost (ours) planned the value in device memory
    assert d["copies_h2d"] >= 1 and d["copies_d2h"] >= 1
    assert d["gpu_engine_runs"] == 1


def test_engine_cache_is_keyed_by_exact_input_shapes(fake: FakeHost) -> None:
    sess = session(identity_model())
    rng = np.random.default_rng(3)
    before = _kernels.counters()
    for n in (4, 4, 2, 4, 2):
        x = rng.standard_normal((n, 8)).astype(np.float32)
        np.testing.assert_array_equal(sess.run(None, {"x": x})[0], x)
    d = delta(before)
    assert d["host_get_engine"] == 2 and d["gpu_engine_runs"] == 5


def test_engine_with_the_wrong_input_type_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeHost(claim_ops=("Identity",),
             engine_factory=memcpy_engine_factory(TensorProto.FLOAT16)).install(monkeypatch)
    sess = session(identity_model())
    x = np.zeros((2, 8), dtype=np.float32)
    with pytest.raises(Exception, match="is float32 but its engine expects float16"):
        sess.run(None, {"x": x})
