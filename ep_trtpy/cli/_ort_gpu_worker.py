"""Benchmark worker for ORT's CUDAExecutionProvider, run by ``ep-trtpy bench --ort-gpu-path DIR`` in a separate
process (two onnxruntime packages cannot share one process).

It is started as a script (``python .../_ort_gpu_worker.py ...``), never imported through the ep_trtpy package, so
that the only onnxruntime it loads is the onnxruntime-gpu found in DIR. It needs numpy and that onnxruntime only;
``--preload-torch`` imports torch first so its CUDA and cuDNN wheels' libraries are loaded for ORT to use.

Times one row (``--model``, ``--feeds``, ``--out``, ``--outputs``, ``--cuda-graph``) or, with ``--jobs FILE``,
every row of one model in one process (each row its own session: a model file, feeds, CUDA graph on or off, and
``tf32`` when given: the CUDA EP's ``use_tf32``). Each row writes one JSON document to its result file: {"ok",
"error", "ort_version", "ort_path", "create_s", "first_run_s", "samples_ms", "io", "gpu_mem_used_mb"} and its
first outputs to its ``outputs`` .npz.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import time
import traceback
from typing import Any


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


def run_job(ort: Any, job: dict[str, Any], cfg: argparse.Namespace) -> dict[str, Any]:
    """Time one row (one session); returns its result document."""
    import numpy as np

    res: dict[str, Any] = {"ok": False, "error": None, "ort_version": ort.__version__,
                           "ort_path": os.path.dirname(ort.__file__)}
    with np.load(job["feeds"], allow_pickle=False) as data:
        feeds = {k: data[k] for k in data.files}
    mem0 = _gpu_mem_used_mb()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if cfg.provider == "CUDAExecutionProvider":
        cuda_options = {"device_id": str(cfg.device), "enable_cuda_graph": "1" if job.get("graph") else "0"}
        if job.get("tf32") is not None:
            cuda_options["use_tf32"] = "1" if job["tf32"] else "0"
        providers: list = [("CUDAExecutionProvider", cuda_options), "CPUExecutionProvider"]
    else:
        providers = [cfg.provider]
    dev = cfg.io_device
    t0 = time.perf_counter()
    sess = ort.InferenceSession(job["model"], so, providers=providers)
    res["create_s"] = time.perf_counter() - t0
    names = [o.name for o in sess.get_outputs()]
    io = sess.io_binding()
    inputs = {k: ort.OrtValue.ortvalue_from_numpy(v, dev, cfg.device) for k, v in feeds.items()}
    for k, v in inputs.items():
        io.bind_ortvalue_input(k, v)
    for n in names:
        io.bind_output(n, dev, cfg.device)
    t0 = time.perf_counter()
    sess.run_with_iobinding(io)
    res["first_run_s"] = time.perf_counter() - t0
    first_np = [o.numpy() for o in io.get_outputs()]
    fixed = [ort.OrtValue.ortvalue_from_shape_and_type(a.shape, a.dtype, dev, cfg.device) for a in first_np]
    if job.get("outputs"):
        np.savez(job["outputs"], **dict(zip(names, first_np)))
    io.clear_binding_outputs()
    for n, o in zip(names, fixed):
        io.bind_ortvalue_output(n, o)
    for _ in range(max(0, cfg.warmup)):
        sess.run_with_iobinding(io)
    samples = []
    start = time.perf_counter()
    for i in range(max(1, cfg.iters)):
        t0 = time.perf_counter()
        sess.run_with_iobinding(io)
        io.synchronize_outputs()
        samples.append((time.perf_counter() - t0) * 1e3)
        if i >= 2 and time.perf_counter() - start > cfg.max_seconds:
            break
    res["samples_ms"] = samples
    res["io"] = "device" if dev != "cpu" else "host"
    mem1 = _gpu_mem_used_mb()
    res["gpu_mem_used_mb"] = None if mem0 is None or mem1 is None else mem1 - mem0
    del io, inputs, fixed, sess
    res["ok"] = True
    return res


def _import_ort(args: argparse.Namespace) -> Any:
    """The onnxruntime of ``--ort-path`` (and nothing else), with the provider to time."""
    sys.path.insert(0, os.path.abspath(args.ort_path))
    if args.preload_torch:
        try:
            import torch  # noqa: F401  (loads the CUDA 13 / cuDNN libraries ORT links against)
        except ImportError:
            pass
    import onnxruntime as ort

    if not os.path.abspath(ort.__file__).startswith(os.path.abspath(args.ort_path)):
        raise RuntimeError(f"imported onnxruntime from {ort.__file__}, not from {args.ort_path}")
    if args.provider not in ort.get_available_providers():
        raise RuntimeError(f"{args.provider} is not available in onnxruntime {ort.__version__} at "
                           f"{os.path.dirname(ort.__file__)}: {ort.get_available_providers()}")
    return ort


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))  # ep_trtpy/cli: its run.py etc. must not shadow anything
    sys.path[:] = [q for q in sys.path if os.path.abspath(q or ".") != here]
    p = argparse.ArgumentParser()
    p.add_argument("--ort-path", required=True)
    p.add_argument("--jobs", help="a JSON list of rows {model, feeds, result, outputs, graph, tf32}: one process "
                                  "times them all, each in its own session (instead of --model/--feeds/--out)")
    p.add_argument("--model")
    p.add_argument("--feeds")
    p.add_argument("--out")
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
    if args.jobs:
        with open(args.jobs) as f:
            jobs = json.load(f)
    else:
        jobs = [{"model": args.model, "feeds": args.feeds, "result": args.out, "outputs": args.outputs,
                 "graph": args.cuda_graph}]
    failed = 0
    try:
        ort = _import_ort(args)
    except Exception as e:  # noqa: BLE001 - every row reports why the worker could not start
        ort, failed = None, len(jobs)
        error = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    for job in jobs:
        if ort is not None:
            try:
                res = run_job(ort, job, args)
            except Exception as e:  # noqa: BLE001 - one failing row must not end the others
                res = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
                failed += 1
        else:
            res = error
        with open(job["result"], "w") as f:
            json.dump(res, f)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
