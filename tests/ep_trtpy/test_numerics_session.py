"""README's "Numerics at the edges" through real ORT sessions with our EP, on the reference backend (CPU-only
machines) and on the GPU (marked gpu): a pool whose window outgrows a dynamic input gives ORT's CPU provider's empty
or one-window output instead of an error, and a NaN in an image reaches a small classifier's output through the
fused convolution, the pools and the softmax (where ORT's CPU provider drops it), while a clean image matches ORT's
CPU provider. Every node is asserted to run on our EP."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import ep_trtpy
from ep_trtpy import _kernels
from ep_trtpy.cli import harness

HAVE_GPU = ep_trtpy.has_gpu()
BACKENDS = [pytest.param("reference", marks=pytest.mark.skipif(HAVE_GPU, reason="engines run on the GPU here")),
            pytest.param("gpu", marks=[pytest.mark.gpu, pytest.mark.skipif(not HAVE_GPU, reason="needs an NVIDIA "
                                                                           "GPU with a CUDA 13 driver")])]
COUNTER = {"reference": "reference_runs", "gpu": "gpu_engine_runs"}


def _model(nodes: list, inits: list, out_shape: list | None = None) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "numerics",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "C", "H", "W"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    return model


def _run_on_our_ep(backend: str, model: onnx.ModelProto, x: np.ndarray, options: dict | None = None) -> np.ndarray:
    sess = harness.create_session(model, "trtpy", ep_options=options or {})
    placed = harness.node_assignment(sess)
    assert set(placed.values()) == {harness.EP_NAME}, placed
    before = _kernels.counters()[COUNTER[backend]]
    (y,) = sess.run(None, {"x": x})
    assert _kernels.counters()[COUNTER[backend]] > before, f"the {backend} backend did not run the engine"
    return y


def _cpu(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return harness.create_session(model, "cpu").run(None, {"x": x})[0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_window_larger_than_a_dynamic_input_gives_what_onnxruntime_cpu_gives(backend: str, op: str) -> None:
    for strides, size, empty in (([1, 1], 1, True), ([2, 2], 1, False), ([1, 1], 4, False)):
        model = _model([helper.make_node(op, ["x"], ["y"], name="pool", kernel_shape=[2, 2], strides=strides)], [])
        x = np.arange(2 * 3 * size * size, dtype=np.float32).reshape(2, 3, size, size)
        got, want = _run_on_our_ep(backend, model, x), _cpu(model, x)
        assert (want.size == 0) == empty, f"ORT's CPU provider gave {want.shape} for {x.shape}"
        assert got.shape == want.shape, f"{op} strides {strides} on {x.shape}: {got.shape}, ORT {want.shape}"
        np.testing.assert_allclose(got, want, rtol=1e-6)


def _classifier(rng: np.random.Generator) -> onnx.ModelProto:
    """Conv 3x3 -> Relu -> MaxPool 3/2 -> GlobalMaxPool -> Flatten -> Gemm -> Softmax."""
    w = numpy_helper.from_array((rng.standard_normal((8, 4, 3, 3)) * 0.3).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b")
    g = numpy_helper.from_array((rng.standard_normal((5, 8)) * 0.5).astype(np.float32), "g")
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1]),
             helper.make_node("GlobalMaxPool", ["p"], ["q"], name="gpool"),
             helper.make_node("Flatten", ["q"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "g"], ["l"], name="fc", transB=1),
             helper.make_node("Softmax", ["l"], ["y"], name="softmax")]
    return _model(nodes, [w, b, g], ["N", 5])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("options", [{}, {"fp16_enable": "1"}], ids=["fp32", "fp16"])
def test_a_nan_pixel_reaches_the_classifier_output(backend: str, options: dict) -> None:
    rng = np.random.default_rng(3)
    model = _classifier(rng)
    x = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)
    x[0, 2, 4, 5] = np.nan
    got = _run_on_our_ep(backend, model, x, options)
    want = _cpu(model, x)
    assert np.isnan(got[0]).all(), f"image 0 holds a NaN; the classifier gave {got[0]}"
    assert not np.isnan(want[0]).all(), "ORT's CPU provider drops the NaN (its pools keep a NaN only when first)"
    tol = 2e-2 if options else 1e-4
    np.testing.assert_allclose(got[1], want[1], rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_rows_holding_infinity_or_nan_are_nan_as_onnxruntime_cpu_gives(backend: str) -> None:
    model = _model([helper.make_node("Relu", ["x"], ["r"], name="relu"),
                    helper.make_node("Softmax", ["r"], ["y"], name="softmax", axis=-1)], [])
    x = np.random.default_rng(4).standard_normal((1, 2, 4, 7)).astype(np.float32)
    x[0, 0, 0, 3], x[0, 0, 1, 6], x[0, 1, 2, 0] = np.inf, np.nan, -np.inf
    x[0, 1, 3, :] = -np.inf  # Relu turns it into zeros: a uniform row
    got, want = _run_on_our_ep(backend, model, x), _cpu(model, x)
    assert np.isnan(got[0, 0, :2]).all() and not np.isnan(got[0, 0, 2:]).any()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, equal_nan=True)
