"""Benchmark worker for ORT's CUDAExecutionProvider, run by ``ep-trtpy bench --ort-gpu-path DIR`` in a separate
process (two onnxruntime packages cannot share one process).

It is started as a script (``python .../_ort_gpu_worker.py ...``), never imported through the ep_trtpy package, so
that the only onnxruntime it loads is the onnxruntime-gpu found in DIR. It needs numpy and that onnxruntime only;
``--preload-torch`` imports torch first so its CUDA and cuDNN wheels' libraries are loaded for ORT to use.

Writes one JSON document to ``--out``: {"ok", "error", "ort_version", "ort_path", "create_s", "first_run_s",
"samples_ms", "io", "gpu_mem_used_mb"} and, with ``--outputs FILE.npz``, the model's outputs.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import time
import traceback


def _gpu_mem_used_mb() -> float | None:
    """Device-wide memory in use (cudaMemGetInfo: total - free), in MiB; None when no CUDA runtime is found."""
    for name in ("libcudart.so.13", "libcudart.so.12", "libcudart.so"):
        try:
            rt = ctypes.CDLL(name)
        except OSError:
            continue
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        if rt.cudaMemGetInfo(ctypes.byref(free), ctypes.byref(total)) == 0:
            return (total.value - free.value) / 2**20
        return None
    return None


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))  # ep_trtpy/cli: its run.py etc. must not shadow anything
    sys.path[:] = [q for q in sys.path if os.path.abspath(q or ".") != here]
    p = argparse.ArgumentParser()
    p.add_argument("--ort-path", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--feeds", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--outputs")
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--max-seconds", type=float, default=60.0)
    p.add_argument("--device", type=int, default=0)
    p.add_argument("--cuda-graph", action="store_true")
    p.add_argument("--preload-torch", action="store_true")
    p.add_argument("--provider", default="CUDAExecutionProvider",
                   help="the provider to time (CPUExecutionProvider with --io-device cpu tests the worker itself)")
    p.add_argument("--io-device", default="cuda", help="where inputs and outputs are bound: cuda or cpu")
    args = p.parse_args()
    result: dict = {"ok": False, "error": None}
    try:
        sys.path.insert(0, os.path.abspath(args.ort_path))
        if args.preload_torch:
            try:
                import torch  # noqa: F401  (loads the CUDA 13 / cuDNN libraries ORT links against)
            except ImportError:
                pass
        import numpy as np
        import onnxruntime as ort

        result["ort_version"] = ort.__version__
        result["ort_path"] = os.path.dirname(ort.__file__)
        if not os.path.abspath(ort.__file__).startswith(os.path.abspath(args.ort_path)):
            raise RuntimeError(f"imported onnxruntime from {ort.__file__}, not from {args.ort_path}")
        if args.provider not in ort.get_available_providers():
            raise RuntimeError(f"{args.provider} is not available in onnxruntime {ort.__version__} at "
                               f"{result['ort_path']}: {ort.get_available_providers()}")
        with np.load(args.feeds, allow_pickle=False) as data:
            feeds = {k: data[k] for k in data.files}
        mem0 = _gpu_mem_used_mb()
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if args.provider == "CUDAExecutionProvider":
            providers: list = [("CUDAExecutionProvider", {"device_id": str(args.device),
                                                          "enable_cuda_graph": "1" if args.cuda_graph else "0"}),
                               "CPUExecutionProvider"]
        else:
            providers = [args.provider]
        dev = args.io_device
        t0 = time.perf_counter()
        sess = ort.InferenceSession(args.model, so, providers=providers)
        result["create_s"] = time.perf_counter() - t0
        names = [o.name for o in sess.get_outputs()]
        io = sess.io_binding()
        inputs = {k: ort.OrtValue.ortvalue_from_numpy(v, dev, args.device) for k, v in feeds.items()}
        for k, v in inputs.items():
            io.bind_ortvalue_input(k, v)
        for n in names:
            io.bind_output(n, dev, args.device)
        t0 = time.perf_counter()
        sess.run_with_iobinding(io)
        result["first_run_s"] = time.perf_counter() - t0
        first = io.get_outputs()
        first_np = [o.numpy() for o in first]
        fixed = [ort.OrtValue.ortvalue_from_shape_and_type(a.shape, a.dtype, dev, args.device) for a in first_np]
        if args.outputs:
            np.savez(args.outputs, **dict(zip(names, first_np)))
        io.clear_binding_outputs()
        for n, o in zip(names, fixed):
            io.bind_ortvalue_output(n, o)
        for _ in range(max(0, args.warmup)):
            sess.run_with_iobinding(io)
        samples = []
        start = time.perf_counter()
        for i in range(max(1, args.iters)):
            t0 = time.perf_counter()
            sess.run_with_iobinding(io)
            io.synchronize_outputs()
            samples.append((time.perf_counter() - t0) * 1e3)
            if i >= 2 and time.perf_counter() - start > args.max_seconds:
                break
        result["samples_ms"] = samples
        result["io"] = "device" if dev != "cpu" else "host"
        mem1 = _gpu_mem_used_mb()
        result["gpu_mem_used_mb"] = None if mem0 is None or mem1 is None else mem1 - mem0
        result["ok"] = True
    except Exception as e:  # noqa: BLE001 - the parent reports whatever went wrong, with the traceback
        result["error"] = f"{type(e).__name__}: {e}"
        result["traceback"] = traceback.format_exc()
    with open(args.out, "w") as f:
        json.dump(result, f)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
