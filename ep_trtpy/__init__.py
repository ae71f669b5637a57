"""ep_trtpy: a TensorRT-class inference optimizer for NVIDIA GPUs, plugged into ONNX Runtime as an execution
provider.

    import onnxruntime as ort
    import ep_trtpy                      # registers the EP library with ORT (idempotent)

    sess = ort.InferenceSession("model.onnx",
                                providers=[("TrtPyExecutionProvider", {"fp16_enable": "1"}), "CPUExecutionProvider"])

Following the convention of ORT plugin packages: :func:`get_library_path`, :func:`get_ep_name`, :func:`register`.

``import ep_trtpy`` registers; importing only a submodule (``from ep_trtpy.ops import registry``, the builder, the
engine file) does not, and needs neither onnxruntime nor the native module. A process that imported a submodule
first calls :func:`register` before it creates a session (the package is initialized once per process).
"""

from __future__ import annotations

import ctypes
import glob
import logging
import os
import sys
import threading
from typing import Any

from ep_trtpy import devices
from ep_trtpy._version import __version__
from ep_trtpy.devices import DeviceNotFoundError

__all__ = ["EP_NAME", "__version__", "calibrate", "get_ep_name", "get_library_path", "register", "runtime_stats",
           "reset_runtime_stats", "has_gpu", "DeviceNotFoundError"]

EP_NAME = "TrtPyExecutionProvider"
LIBRARY_FILE = "libep_trtpy_ep.so"

log = logging.getLogger("ep_trtpy")
if not log.handlers:
    _h = logging.StreamHandler()
    _h.setFormatter(logging.Formatter("[ep_trtpy %(levelname)s] %(message)s"))
    log.addHandler(_h)
    log.setLevel(logging.WARNING)
    log.propagate = False

_lock = threading.Lock()
_registered = False


def get_ep_name() -> str:
    """The name to use in ``providers=[...]``."""
    return EP_NAME


def _native_dir() -> str:
    from ep_trtpy import _kernels

    return os.path.dirname(os.path.abspath(_kernels.__file__))


def get_library_path() -> str:
    """Absolute path of the plugin library (ORT resolves relative paths against its own folder)."""
    return os.path.join(_native_dir(), LIBRARY_FILE)


def _preload_nvidia_libraries() -> None:
    """Load cuBLASLt and cuDNN from NVIDIA's wheels by absolute path, so the native libraries resolve them
    wherever the package was installed (the RPATH covers the usual site-packages layout only)."""
    try:
        import nvidia  # namespace package from the nvidia-* wheels
    except ImportError:
        return
    for base in list(nvidia.__path__):
        for pattern in ("cu13/lib/libcublasLt.so.13", "cu13/lib/libcublas.so.13", "cudnn/lib/libcudnn.so.9"):
            for path in glob.glob(os.path.join(base, pattern)):
                try:
                    ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                except OSError as e:  # a broken wheel: the native import below reports it properly
                    log.debug("could not preload %s: %s", path, e)


def register() -> None:
    """Register the EP library with ONNX Runtime (idempotent, thread-safe)."""
    global _registered
    with _lock:
        if _registered:
            return
        import onnxruntime as ort

        _preload_nvidia_libraries()
        from ep_trtpy import _kernels  # noqa: F401  (installs the host callbacks the shim calls)

        if not any(d.ep_name == EP_NAME for d in ort.get_ep_devices()):
            ort.register_execution_provider_library(EP_NAME, get_library_path())
        if not devices.install_session_check(EP_NAME):
            log.debug("this onnxruntime has no check_and_normalize_provider_args; device_id is checked by the EP")
        _registered = True


def has_gpu() -> bool:
    """True when a CUDA device is usable (engines run on it); False means the numpy reference backend."""
    _preload_nvidia_libraries()
    from ep_trtpy import _kernels

    return _kernels.cuda_device_count() > 0


def runtime_stats() -> dict[str, int]:
    """Process-wide counters of the native runtime, the builder and the tuner (which path ran, cache hits, builds,
    tactics timed)."""
    from ep_trtpy import _host, _kernels, tuner

    stats = dict(_kernels.counters())
    stats.update(_host.stats())
    stats.update(tuner.stats())
    return stats


def reset_runtime_stats() -> None:
    from ep_trtpy import _host, _kernels, tuner

    _kernels.reset_counters()
    _host.reset_stats()
    tuner.reset_stats()


def calibrate(model: Any, data_reader: Any, method: str = "entropy", table: str | None = None, **kwargs: Any) -> Any:
    """The INT8 (or FP8) calibration table of a float model: ``data_reader`` follows
    onnxruntime.quantization.CalibrationDataReader (``get_next()`` returns feeds, None at the end); ``method`` is
    entropy, percentile or minmax; the table is written to ``table`` when given. Keyword arguments (percentile,
    precision, accuracy_target, held_back, report, ...) as :func:`ep_trtpy.calibration.calibrate`."""
    from ep_trtpy.calibration import calibrate as run

    return run(model, data_reader, method, table, **kwargs)


def _imported_for_a_submodule() -> bool:
    """True while this package is initialized on the way to one of its submodules (``import ep_trtpy.ops``,
    ``python -m ep_trtpy``).

    CPython's import machinery initializes a parent package from inside ``_find_and_load(name)`` of the submodule
    that was asked for: the import frame just outside this package's own one names it.
    """
    asked: list[str] = []
    frame = sys._getframe(1)
    while frame is not None and len(asked) < 2:
        code = frame.f_code
        if code.co_name == "_find_and_load" and "importlib._bootstrap" in code.co_filename:
            asked.append(str(frame.f_locals.get("name", "")))
        elif code.co_name == "_get_module_details" and "runpy" in code.co_filename:
            # ``python -m ep_trtpy``: runpy initializes the package on the way to ep_trtpy.__main__
            return str(frame.f_locals.get("mod_name", "")).startswith(__name__ + ".")
        frame = frame.f_back
    return len(asked) == 2 and asked[1].startswith(__name__ + ".")


if not _imported_for_a_submodule():
    register()
