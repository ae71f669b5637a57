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


def _python(code: str) -> str:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def test_importing_submodules_neither_registers_nor_needs_the_native_module() -> None:
    loaded = _python(
        "import sys\n"
        "import ep_trtpy.ops.registry, ep_trtpy.builder.build, ep_trtpy.engine.cache, graph_partitioner.ir\n"
        "ep_trtpy.ops.registry.all_ops()\n"
        "print(sorted(m for m in ('onnxruntime', 'ep_trtpy._kernels') if m in sys.modules),"
        " sys.modules['ep_trtpy']._registered)")
    assert loaded == "[] False"


def test_import_ep_trtpy_registers() -> None:
    for statement in ("import ep_trtpy", "from ep_trtpy import EP_NAME"):
        listed = _python(f"{statement}\nimport onnxruntime as ort, sys\n"
                         "print(any(d.ep_name == 'TrtPyExecutionProvider' for d in ort.get_ep_devices()))")
        assert listed.splitlines()[-1] == "True", statement
