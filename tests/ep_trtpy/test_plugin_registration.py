"""Registering the plugin library with ONNX Runtime: idempotence and the OrtEpDevice it offers."""

from __future__ import annotations

import onnxruntime as ort

import ep_trtpy


def _our_devices() -> list:
    return [d for d in ort.get_ep_devices() if d.ep_name == ep_trtpy.EP_NAME]


def test_register_is_idempotent_and_the_ep_is_listed() -> None:
    before = len(_our_devices())
    ep_trtpy.register()
    ep_trtpy.register()
    devices = _our_devices()
    assert before >= 1 and len(devices) == before
    assert ep_trtpy.EP_NAME in ort.get_available_providers()
    for d in devices:
        assert d.ep_vendor == "ep_trtpy"
        assert d.ep_metadata["version"] == "0.1.0"


def test_ep_device_matches_the_backend() -> None:
    """With CUDA: GPU memory declared (NVIDIA vendor id). Without: paired with the CPU, no device memory."""
    default = ort.capi._pybind_state.OrtDeviceMemoryType.DEFAULT
    for d in _our_devices():
        if ep_trtpy.has_gpu():
            assert d.ep_metadata["backend"] == "cuda"
            assert int(d.ep_metadata["cuda_device_id"]) >= 0
            assert d.memory_info(default) is not None
        else:
            assert d.ep_metadata["backend"] == "reference"
            assert d.device.type == ort.capi._pybind_state.OrtHardwareDeviceType.CPU
            assert d.memory_info(default) is None
