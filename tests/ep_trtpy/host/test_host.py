"""The host callbacks (ep_trtpy/_host.py) called directly with hand-made graph documents, on the reference backend;
and, once the ORT plugin shim provides the EP, end to end through ORT."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest

from ep_trtpy import _host
from ep_trtpy.options import OptionError
from graph_partitioner.ir import FLOAT

REF_DEVICE = json.dumps({"backend": "reference", "devices": []})


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def expected(x, y, w, b):
    """Independent numpy formula of the test graph: sigmoid(relu(x @ w + b)) * y."""
    return (_sigmoid(np.maximum(x.astype(np.float64) @ w + b, 0)) * y).astype(np.float32)


def make_doc(batch: int | None = 2, fused: bool = True):
    """Graph document of: t = MatMul(x, w); u = Add(t, b); r = Relu(u); s = Sigmoid(r); z = Mul(s, y)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    n = -1 if batch is None else batch
    values = {"x": {"dtype": FLOAT, "shape": [n, 8], "dims": ["N" if batch is None else "", ""]},
              "y": {"dtype": FLOAT, "shape": [n, 4], "dims": ["N" if batch is None else "", ""]},
              "w": {"dtype": FLOAT, "shape": [8, 4], "dims": ["", ""]},
              "b": {"dtype": FLOAT, "shape": [4], "dims": [""]}}
    for name in ("t", "u", "r", "s", "z"):
        values[name] = {"dtype": FLOAT, "shape": [n, 4], "dims": ["N" if batch is None else "", ""]}
    nodes = [
        {"name": "mm", "op_type": "MatMul", "domain": "", "since_version": 13, "inputs": ["x", "w"], "outputs": ["t"],
         "attrs": {}},
        {"name": "add", "op_type": "Add", "domain": "", "since_version": 14, "inputs": ["t", "b"], "outputs": ["u"],
         "attrs": {}},
        {"name": "relu", "op_type": "Relu", "domain": "", "since_version": 14, "inputs": ["u"], "outputs": ["r"],
         "attrs": {}},
        {"name": "sig", "op_type": "Sigmoid", "domain": "", "since_version": 13, "inputs": ["r"], "outputs": ["s"],
         "attrs": {}},
        {"name": "mul", "op_type": "Mul", "domain": "", "since_version": 14, "inputs": ["s", "y"], "outputs": ["z"],
         "attrs": {}},
    ]
    doc = {"name": "main", "model_path": "", "opsets": {"": 17}, "inputs": ["x", "y"], "outputs": ["z"],
           "initializers": ["w", "b"], "values": values, "nodes": nodes}
    if fused:
        # ORT's fused node lists inputs in its own order, constants included
        doc["name"] = "TrtPy_fused_0"
        doc["fused_node"] = {"name": "TrtPy_fused_0", "inputs": ["w", "y", "b", "x"], "outputs": ["z"]}
    return doc, [w, b]


class Outputs:
    def __init__(self, dtype=np.float32):
        self.arrays: dict[int, np.ndarray] = {}
        self.dtype = dtype

    def __call__(self, i, shape):
        self.arrays[i] = np.empty(shape, dtype=self.dtype)
        return self.arrays[i]


@pytest.fixture(autouse=True)
def _fresh_stats():
    _host.reset_stats()
    yield


def _ep(**opts):
    return _host.create_ep(json.dumps({k: str(v) for k, v in opts.items()}), REF_DEVICE)[0]


def test_create_ep_options_and_devices(monkeypatch):
    monkeypatch.setattr(_host, "present_devices", lambda: [])  # the devices ORT describes are all there is
    ep_id, dev = _host.create_ep(json.dumps({"trt_fp16_enable": "1"}), REF_DEVICE)
    assert dev == -1 and _host._eps[ep_id].options.fp16_enable
    with pytest.raises(OptionError, match="unknown TrtPyExecutionProvider option 'fp17_enable' "
                                          "\\(did you mean 'fp16_enable'\\?\\); valid options"):
        _host.create_ep(json.dumps({"fp17_enable": "1"}), REF_DEVICE)
    cuda = json.dumps({"backend": "cuda", "devices": [{"device_id": 0, "name": "GPU A", "cc": [8, 0]},
                                                      {"device_id": 1, "name": "GPU B", "cc": [9, 0]}]})
    ep2, dev2 = _host.create_ep(json.dumps({"device_id": "1"}), cuda)
    assert dev2 == 1 and _host._eps[ep2].device.cc == (9, 0) and _host._eps[ep2].device.name == "GPU B"
    with pytest.raises(LookupError, match=r"device_id 2 does not exist; CUDA devices present: 0 \(GPU A\), "
                                          r"1 \(GPU B\)"):
        _host.create_ep(json.dumps({"device_id": "2"}), cuda)
    with pytest.raises(LookupError, match="device_id 1 does not exist; no CUDA device is usable on this machine"):
        _host.create_ep(json.dumps({"trt_device_id": "1"}), REF_DEVICE)
    for e in (ep_id, ep2):
        _host.release_ep(e)


def test_get_capability_claims_node_indices():
    ep = _ep()
    doc, inits = make_doc(fused=False)
    clusters = _host.get_capability(ep, json.dumps(doc), inits)
    assert sorted(i for c in clusters for i in c) == [0, 1, 2, 3, 4]
    ep_ex = _ep(op_types_to_exclude="Mul", min_subgraph_size=2)
    clusters = _host.get_capability(ep_ex, json.dumps(doc), inits)
    assert 4 not in [i for c in clusters for i in c]
    _host.release_ep(ep)
    _host.release_ep(ep_ex)


def test_compile_static_builds_eagerly_and_runs(tmp_path):
    ep = _ep(dump_subgraphs=1, engine_cache_path=tmp_path)
    doc, (w, b) = make_doc(batch=2)
    pid, runtime_inputs = _host.compile(ep, json.dumps(doc), [w, b])
    assert runtime_inputs == [3, 1]  # engine inputs x, y are fused_node.inputs[3] and [1]; w, b are baked in
    assert _host.stats()["builds"] == 1 and _host.stats()["programs"] == 1
    assert os.path.exists(tmp_path / "subgraphs" / "TrtPy_fused_0.onnx")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((2, 8)).astype(np.float32), rng.standard_normal((2, 4)).astype(np.float32)
    out = Outputs()
    _host.run_reference(pid, [x, y], out)
    np.testing.assert_allclose(out.arrays[0], expected(x, y, w, b), rtol=1e-5, atol=1e-6)
    st = _host.stats()
    assert st["reference_runs"] == 1 and st["builds"] == 1
    with pytest.raises(ValueError, match="reference backend; it has no native engine"):
        _host.get_engine(pid, [(2, 8), (2, 4)])
    _host.release_program(pid)
    assert _host.stats()["programs"] == 0
    with pytest.raises(ValueError, match="unknown program id"):
        _host.run_reference(pid, [x, y], Outputs())
    _host.release_ep(ep)


def test_dynamic_shapes_build_per_shape_and_cache_across_eps(tmp_path):
    opts = {"engine_cache_enable": 1, "engine_cache_path": tmp_path}
    ep = _ep(**opts)
    doc, (w, b) = make_doc(batch=None)
    pid, _ = _host.compile(ep, json.dumps(doc), [w, b])
    assert _host.stats()["builds"] == 0  # dynamic: nothing to build yet
    rng = np.random.default_rng(2)
    for n in (3, 3, 5):
        x, y = rng.standard_normal((n, 8)).astype(np.float32), rng.standard_normal((n, 4)).astype(np.float32)
        out = Outputs()
        _host.run_reference(pid, [x, y], out)
        np.testing.assert_allclose(out.arrays[0], expected(x, y, w, b), rtol=1e-5, atol=1e-6)
    st = _host.stats()
    assert st["builds"] == 2 and st["engine_cache_misses"] == 2 and st["reference_runs"] == 3
    # a second EP (a new session) loads both engines from the cache
    ep2 = _ep(**opts)
    pid2, _ = _host.compile(ep2, json.dumps(doc), [w, b])
    for n in (3, 5):
        x, y = rng.standard_normal((n, 8)).astype(np.float32), rng.standard_normal((n, 4)).astype(np.float32)
        out = Outputs()
        _host.run_reference(pid2, [x, y], out)
        np.testing.assert_allclose(out.arrays[0], expected(x, y, w, b), rtol=1e-5, atol=1e-6)
    st = _host.stats()
    assert st["builds"] == 2 and st["engine_cache_hits"] == 2
    _host.release_ep(ep)
    _host.release_ep(ep2)
    assert _host.stats()["programs"] == 0


def test_run_reference_checks_what_it_is_given():
    ep = _ep()
    doc, inits = make_doc(batch=2)
    pid, _ = _host.compile(ep, json.dumps(doc), inits)
    x, y = np.zeros((2, 8), np.float32), np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="takes 2 inputs, got 1"):
        _host.run_reference(pid, [x], Outputs())
    with pytest.raises(ValueError, match="input 'x' .* is float64, expected float32"):
        _host.run_reference(pid, [x.astype(np.float64), y], Outputs())
    with pytest.raises(ValueError, match="buffer for output 0 .* is float16"):
        _host.run_reference(pid, [x, y], Outputs(np.float16))
    with pytest.raises(ValueError, match="could not allocate output 0"):
        _host.run_reference(pid, [x, y], lambda i, s: None)
    _host.release_ep(ep)


def test_compile_refuses_bad_documents():
    ep = _ep()
    doc, inits = make_doc()
    doc["fused_node"]["inputs"] = ["w", "b", "x"]  # y missing
    with pytest.raises(ValueError, match="subgraph input\\(s\\) y are not inputs of the fused node"):
        _host.compile(ep, json.dumps(doc), inits)
    doc, inits = make_doc()
    doc["fused_node"]["outputs"] = ["nope"]
    with pytest.raises(ValueError, match="output 'nope' is not a value"):
        _host.compile(ep, json.dumps(doc), inits)
    assert _host.stats()["programs"] == 0
    _host.release_ep(ep)


def test_concurrent_first_runs_build_once():
    ep = _ep()
    doc, (w, b) = make_doc(batch=None)
    pid, _ = _host.compile(ep, json.dumps(doc), [w, b])
    x, y = np.ones((4, 8), np.float32), np.ones((4, 4), np.float32)
    errors: list[BaseException] = []

    def worker():
        try:
            out = Outputs()
            _host.run_reference(pid, [x, y], out)
            np.testing.assert_allclose(out.arrays[0], expected(x, y, w, b), rtol=1e-5, atol=1e-6)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert _host.stats()["builds"] == 1 and _host.stats()["reference_runs"] == 4
    _host.release_ep(ep)


def _plugin_available() -> bool:
    import onnxruntime as ort

    import ep_trtpy

    ep_trtpy.register()  # idempotent; this module imports only submodules of ep_trtpy at the top
    return any(d.ep_name == ep_trtpy.EP_NAME for d in ort.get_ep_devices())


@pytest.mark.skipif(not _plugin_available(), reason="the ORT plugin shim does not provide TrtPyExecutionProvider "
                                                   "devices yet (shim work in progress)")
def test_end_to_end_through_ort(tmp_path):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    import ep_trtpy

    rng = np.random.default_rng(3)
    w = rng.standard_normal((8, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["t"]), helper.make_node("Add", ["t", "b"], ["u"]),
         helper.make_node("Relu", ["u"], ["r"]), helper.make_node("Sigmoid", ["r"], ["s"]),
         helper.make_node("Mul", ["s", "y"], ["z"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()
    so = ort.SessionOptions()
    so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    sess = ort.InferenceSession(model, so, providers=[(ep_trtpy.EP_NAME, {"engine_cache_path": str(tmp_path),
                                                                   "tf32_enable": "0"}),
                                                     "CPUExecutionProvider"])
    assigned = {n.name or n.op_type: sg.ep_name for sg in sess.get_provider_graph_assignment_info()
                for n in sg.get_nodes()}
    assert set(assigned.values()) == {ep_trtpy.EP_NAME}
    x, y = rng.standard_normal((3, 8)).astype(np.float32), rng.standard_normal((3, 4)).astype(np.float32)
    (z,) = sess.run(None, {"x": x, "y": y})
    np.testing.assert_allclose(z, expected(x, y, w, b), rtol=1e-4, atol=1e-5)
    st = ep_trtpy.runtime_stats()
    assert st["builds"] >= 1
    if not ep_trtpy.has_gpu():
        assert st["reference_runs"] >= 1
