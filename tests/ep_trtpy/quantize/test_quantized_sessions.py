"""Quantized models through ONNX Runtime with TrtPyExecutionProvider: QDQ models written by
onnxruntime.quantization.quantize_static (within one output step of ORT's CPU provider on the same model, every
node on our EP, the layers folded into QConv / QMatMul), calibrated float models (int8_enable + a table, a
TensorRT cache, FP8), and the errors a session reports. On a GPU machine: what the GPU does until its INT8
kernels exist."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

import qmodels
from ep_trtpy.builder.build import get_or_build, optimize
from ep_trtpy.calibration import calibrate
from ep_trtpy.calibration.guard import cosine
from ep_trtpy.cli import harness
from ep_trtpy.options import parse
from graph_partitioner.onnx_io import graph_from_onnx

pytestmark = pytest.mark.skipif(bool(harness.stack_missing()), reason=str(harness.stack_missing()))


def _gpu() -> bool:
    import ep_trtpy

    return ep_trtpy.has_gpu()


def _ours(model, **options):
    sess = harness.create_session(model, "trtpy", ep_options=options)
    placed = harness.node_assignment(sess)
    return sess, placed


CASES = {
    "conv_net-per-channel-int8": (qmodels.conv_net, dict(per_channel=True, activations="QInt8")),
    "residual-uint8-per-tensor": (qmodels.residual_net, dict(per_channel=False, activations="QUInt8")),
    "mlp-symmetric": (qmodels.mlp, dict(per_channel=True, activations="QInt8", symmetric=True)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_qdq_models_match_ort_within_one_step(tmp_path, name):
    if _gpu():
        pytest.skip("on a GPU the Q/DQ nodes run on ORT's CPU provider (see test_a_gpu_leaves_qdq_to_the_cpu)")
    make, kw = CASES[name]
    model = make()
    path = qmodels.qdq(model, tmp_path, name, qmodels.batches(model, 4, batch=4, seed=1), **kw)
    step = qmodels.output_step(path)
    sess, placed = _ours(path)
    assert set(placed.values()) == {harness.EP_NAME}, placed
    for feeds in qmodels.batches(model, 2, batch=3, seed=9):
        (got,), (want,) = sess.run(None, feeds), qmodels.ort_run(path, feeds)
        assert np.abs(got - want).max() <= step * (1 + 1e-5), name
    shapes = {k: v.shape for k, v in feeds.items()}
    kinds = [n.key for n in optimize(graph_from_onnx(onnx.load(path)), shapes).nodes]
    assert "Conv" not in kinds and "MatMul" not in kinds and "Gemm" not in kinds
    assert any(k in ("ep_trtpy::QConv", "ep_trtpy::QMatMul") for k in kinds)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calibrated")
    model = qmodels.conv_net()
    path = qmodels.save(model, folder, "net.onnx")
    table = str(folder / "net.calib.json")
    calibrate(path, qmodels.batches(model, 4, batch=4, seed=3), "minmax", table)
    return model, path, table, folder


def test_a_calibrated_float_model_runs_quantized(calibrated):
    model, path, table, _ = calibrated
    if _gpu():
        pytest.skip("no INT8 kernels on the GPU yet (see test_int8_on_a_gpu_builds_float)")
    sess, placed = _ours(path, int8_enable=1, int8_calibration_table_name=table)
    assert set(placed.values()) == {harness.EP_NAME}
    cpu = harness.create_session(path, "cpu")
    for feeds in qmodels.batches(model, 2, batch=2, seed=11):
        c = cosine(sess.run(None, feeds)[0], cpu.run(None, feeds)[0])
        assert 0.999 < c < 1 - 1e-9


def test_a_tensorrt_cache_gives_the_same_engine_as_the_json_table(calibrated):
    model, path, table, folder = calibrated
    from ep_trtpy.quantize.table import load

    cache = folder / "net.cache"
    cache.write_text(load(table).to_tensorrt_cache())
    feeds = qmodels.batches(model, 1, batch=2, seed=12)[0]
    graph = graph_from_onnx(onnx.load(path))
    shapes = {"x": feeds["x"].shape}
    a = optimize(graph, shapes, parse({"int8_enable": "1", "int8_calibration_table_name": table}))
    b = optimize(graph, shapes, parse({"trt_int8_enable": "1", "trt_int8_calibration_table_name": str(cache),
                                       "trt_int8_use_native_calibration_table": "1"}))
    assert [n.key for n in a.nodes] == [n.key for n in b.nodes] and "ep_trtpy::QConv" in [n.key for n in b.nodes]
    for na, nb in zip(a.nodes, b.nodes):
        if "x_scale" in na.attrs:
            assert nb.attrs["x_scale"] == pytest.approx(na.attrs["x_scale"], rel=1e-6)


def test_fp8_emulation_runs_on_the_reference_backend(calibrated):
    model, path, table, _ = calibrated
    if _gpu():
        pytest.skip("no FP8 kernels on the GPU yet")
    sess, _ = _ours(path, fp8_enable=1, int8_calibration_table_name=table)
    feeds = qmodels.batches(model, 1, batch=2, seed=13)[0]
    c = cosine(sess.run(None, feeds)[0], harness.create_session(path, "cpu").run(None, feeds)[0])
    assert 0.99 < c < 1 - 1e-9


def test_the_table_is_part_of_the_engine_cache_key(calibrated, tmp_path):
    model, path, table, folder = calibrated
    graph = graph_from_onnx(onnx.load(path))
    options = parse({"int8_enable": "1", "int8_calibration_table_name": table, "engine_cache_enable": "1",
                     "engine_cache_path": str(tmp_path)})
    first = get_or_build(graph, {"x": (1, 3, 8, 8)}, options, "reference")
    again = get_or_build(graph, {"x": (1, 3, 8, 8)}, options, "reference")
    assert again.source == "cache" and again.key == first.key
    from ep_trtpy.ops.executor import run_graph

    feeds = qmodels.batches(model, 1, batch=1, seed=4)[0]
    assert "ep_trtpy::QConv" in [n.key for n in again.artifact.graph.nodes]
    assert np.array_equal(run_graph(again.artifact.graph, feeds)[0], run_graph(first.artifact.graph, feeds)[0])
    other = folder / "other.json"
    data = json.loads(open(table).read())
    data["tensors"]["x"]["amax"] *= 2
    other.write_text(json.dumps(data))
    changed = get_or_build(graph, {"x": (1, 3, 8, 8)}, parse({**{"int8_enable": "1", "engine_cache_enable": "1"},
                                                              "engine_cache_path": str(tmp_path),
                                                              "int8_calibration_table_name": str(other)}),
                           "reference")
    assert changed.source == "built" and changed.key != first.key


def _run_error(path, feeds, **options) -> str:
    try:
        sess = harness.create_session(path, "trtpy", ep_options=options)
        sess.run(None, feeds)
    except Exception as e:  # noqa: BLE001 - ORT's Fail / InvalidArgument carry our sentence
        return str(e)
    raise AssertionError("the session ran")


def test_session_errors_say_what_to_do(calibrated, tmp_path):
    model, path, table, _ = calibrated
    feeds = qmodels.batches(model, 1, batch=2)[0]
    text = _run_error(path, feeds, int8_enable=1)
    assert f"int8_enable=1 but model '{path}' has no scales" in text
    assert "ep-trtpy calibrate MODEL.onnx --data DIR_OF_NPZ" in text
    changed = qmodels.save(qmodels.conv_net(seed=5), tmp_path, "changed.onnx")
    text = _run_error(changed, feeds, int8_enable=1, int8_calibration_table_name=table)
    assert "is stale" in text and "changed.onnx" in text and "recalibrate" in text
    text = _run_error(path, feeds, int8_enable=1, int8_calibration_table_name=str(tmp_path / "none.json"))
    assert "calibration table" in text and "none.json' does not exist" in text
    text = _run_error(path, feeds, int8_accuracy_target="cos:0.9")
    assert "bad value 'cos:0.9' for TrtPyExecutionProvider option 'int8_accuracy_target'" in text


@pytest.mark.gpu
def test_a_gpu_leaves_qdq_to_the_cpu(tmp_path):
    if not _gpu():
        pytest.skip("needs an NVIDIA GPU with a CUDA 13 driver")
    model = qmodels.conv_net()
    path = qmodels.qdq(model, tmp_path, "net", qmodels.batches(model, 4, batch=4, seed=1))
    sess, placed = _ours(path)
    by_op = harness.assignment_by_op(sess)
    assert set(by_op["QuantizeLinear"]) == {"CPUExecutionProvider"} and by_op["Conv"] == {harness.EP_NAME: 2}
    feeds = qmodels.batches(model, 1, batch=2, seed=2)[0]
    step = qmodels.output_step(path)
    assert np.abs(sess.run(None, feeds)[0] - qmodels.ort_run(path, feeds)[0]).max() <= step * 1.01


@pytest.mark.gpu
def test_int8_on_a_gpu_builds_float(calibrated):
    if not _gpu():
        pytest.skip("needs an NVIDIA GPU with a CUDA 13 driver")
    model, path, table, _ = calibrated
    sess, placed = _ours(path, int8_enable=1, int8_calibration_table_name=table)
    feeds = qmodels.batches(model, 1, batch=2)[0]
    got = sess.run(None, feeds)[0]
    assert set(placed.values()) == {harness.EP_NAME}
    np.testing.assert_allclose(got, qmodels.ort_run(path, feeds)[0], rtol=2e-3, atol=2e-3)  # float (TF32)
