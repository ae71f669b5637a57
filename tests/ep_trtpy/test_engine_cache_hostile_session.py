"""The hostile cache files of issue 8 through real ORT sessions: a FIFO where the engine file belongs (hung session
creation), a symlink to /dev/zero (MemoryError), an engine whose well-signed header names another output dtype
(failed run). Each is now a logged rebuild and a correct run; and device_id values that name no device are an
error at session creation, never a silent CPU session."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import ep_trtpy
from ep_trtpy import devices
from ep_trtpy.engine import format as fmt
from ep_trtpy.cli import harness

EP = ep_trtpy.EP_NAME


def _model() -> bytes:
    rng = np.random.default_rng(8)
    w = rng.standard_normal((6, 4)).astype(np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["m"], name="mm"),
                           helper.make_node("Sigmoid", ["m"], ["y"], name="sig")], "tiny",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])],
                          initializer=[numpy_helper.from_array(w, "W")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    return m.SerializeToString()


X = np.linspace(-2, 2, 18, dtype=np.float32).reshape(3, 6)


def _session_run(cache: Path, timeout: float = 60.0) -> np.ndarray:
    """Create a session on `cache` and run it, on a thread with a deadline (a hang fails instead of stalling)."""
    out: list = []
    errors: list = []

    def go() -> None:
        try:
            sess = harness.create_session(_model(), "trtpy", ep_options={
                "engine_cache_enable": "1", "engine_cache_path": str(cache), "tf32_enable": "0"})
            out.append(sess.run(None, {"x": X})[0])
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        for p in cache.iterdir():
            if stat.S_ISFIFO(os.lstat(p).st_mode):
                os.close(os.open(p, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("session creation hung on the engine cache")
    assert not errors, errors
    return out[0]


@pytest.fixture
def engine_file(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """The path of the tiny model's engine file in tmp_path (written by a first session) and the right output."""
    want = harness.create_session(_model(), "cpu").run(None, {"x": X})[0]
    np.testing.assert_allclose(_session_run(tmp_path), want, rtol=1e-5, atol=1e-6)
    (path,) = tmp_path.glob("TrtPy_*.engine")
    return path, want


def _stats() -> dict[str, int]:
    return ep_trtpy.runtime_stats()


def test_fifo_in_place_of_the_engine_file(engine_file) -> None:
    path, want = engine_file
    os.unlink(path)
    os.mkfifo(path)
    before = _stats()
    np.testing.assert_allclose(_session_run(path.parent), want, rtol=1e-5, atol=1e-6)
    assert _stats()["engine_cache_rejects"] - before["engine_cache_rejects"] == 1
    assert stat.S_ISFIFO(os.lstat(path).st_mode)


def test_symlink_to_dev_zero_in_place_of_the_engine_file(engine_file) -> None:
    path, want = engine_file
    os.unlink(path)
    os.symlink("/dev/zero", path)
    before = _stats()
    np.testing.assert_allclose(_session_run(path.parent), want, rtol=1e-5, atol=1e-6)
    assert _stats()["engine_cache_rejects"] - before["engine_cache_rejects"] == 1


def test_well_signed_engine_naming_another_output_dtype(engine_file) -> None:
    path, want = engine_file
    data = path.read_bytes()
    fields = list(fmt._PREFIX.unpack_from(data, 0))  # magic, version, header length, then the other lengths
    p, hlen = fmt._PREFIX.size, fields[2]
    header = json.loads(data[p:p + hlen])
    header["outputs"][0]["dtype"] = TensorProto.FLOAT16
    hb = json.dumps(header).encode()
    fields[2] = len(hb)
    body = fmt._PREFIX.pack(*fields) + hb + data[p + hlen:-32]
    path.write_bytes(body + hashlib.sha256(body).digest())
    before = _stats()
    np.testing.assert_allclose(_session_run(path.parent), want, rtol=1e-5, atol=1e-6)
    d = {k: _stats()[k] - before[k] for k in ("engine_cache_rejects", "builds", "engine_cache_hits")}
    assert d == {"engine_cache_rejects": 1, "builds": 1, "engine_cache_hits": 0}


# ------------------------------------------------------------------------------------------ devices --

def _ort_session(options: dict[str, str], **kw) -> ort.InferenceSession:
    return ort.InferenceSession(_model(), providers=[(EP, options), "CPUExecutionProvider"], **kw)


@pytest.mark.skipif(ep_trtpy.has_gpu(), reason="the reference backend's device_id rules")
@pytest.mark.parametrize("key", ["device_id", "trt_device_id"])
def test_a_device_id_that_does_not_exist_is_an_error_not_a_cpu_session(key: str, capfd) -> None:
    with pytest.raises(Exception, match="device_id 99 does not exist; no CUDA device is usable on this machine"):
        _ort_session({key: "99"})
    assert "Falling back" not in capfd.readouterr().out


@pytest.mark.skipif(ep_trtpy.has_gpu(), reason="the reference backend's device_id rules")
def test_device_id_0_on_the_reference_backend_runs_on_our_ep() -> None:
    sess = _ort_session({"device_id": "0"})
    assert sess.get_providers()[0] == EP


@pytest.mark.skipif(ep_trtpy.has_gpu(), reason="the reference backend's device_id rules")
def test_add_provider_for_devices_with_a_bad_device_id_is_an_error() -> None:
    so = ort.SessionOptions()
    so.add_provider_for_devices([d for d in ort.get_ep_devices() if d.ep_name == EP], {"device_id": "7"})
    with pytest.raises(Exception, match="device_id 7 does not exist"):
        ort.InferenceSession(_model(), so)


def test_the_check_on_a_gpu_machine_names_the_devices_present(monkeypatch) -> None:
    """What ORT's device_id lookup would miss on a two-GPU machine, checked before ORT looks."""
    monkeypatch.setattr(devices, "ep_device_ids", lambda name: [0, 1])
    monkeypatch.setattr(devices, "present", lambda: [(0, "NVIDIA H200"), (1, "NVIDIA H200")])
    names = [EP, "CPUExecutionProvider"]
    present = r"CUDA devices present: 0 \(NVIDIA H200\), 1 \(NVIDIA H200\)"
    with pytest.raises(devices.DeviceNotFoundError, match="device_id 99 does not exist; " + present):
        devices.checked_provider_options(EP, names, [{"device_id": "99"}, {}])
    assert devices.checked_provider_options(EP, names, [{"device_id": "1"}, {}]) == [{"device_id": "1"}, {}]
    assert devices.checked_provider_options(EP, names, [{"device_id": "x"}, {}]) == [{"device_id": "x"}, {}]
    monkeypatch.setattr(devices, "ep_device_ids", lambda name: [0])  # CUDA lists 1, ORT offers only 0
    with pytest.raises(devices.DeviceNotFoundError, match="CUDA device 1 is present, but ORT offers this EP only"):
        devices.checked_provider_options(EP, names, [{"device_id": "1"}, {}])
    assert not issubclass(devices.DeviceNotFoundError, (ValueError, RuntimeError))  # InferenceSession's fallback


def test_the_session_check_is_installed_once() -> None:
    from onnxruntime.capi import onnxruntime_inference_collection as collection

    ep_trtpy.register()
    wrapped = collection.check_and_normalize_provider_args
    assert devices.install_session_check(EP) is True
    assert collection.check_and_normalize_provider_args is wrapped
    assert not getattr(wrapped.__wrapped__, "_ep_trtpy_device_check", False)


@pytest.mark.gpu
@pytest.mark.skipif(not ep_trtpy.has_gpu(), reason="needs an NVIDIA GPU with a CUDA 13 driver")
@pytest.mark.parametrize("key", ["device_id", "trt_device_id"])
def test_on_a_gpu_a_device_id_past_the_last_device_is_an_error_naming_them(key: str, capfd) -> None:
    from ep_trtpy import _kernels

    n = _kernels.cuda_device_count()
    with pytest.raises(Exception, match=rf"device_id {n + 98} does not exist; CUDA devices present: 0 \("):
        _ort_session({key: str(n + 98)})
    assert "Falling back" not in capfd.readouterr().out
    assert _ort_session({key: "0"}).get_providers()[0] == EP
