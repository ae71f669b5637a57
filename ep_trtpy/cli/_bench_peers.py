"""The peers of ``ep-trtpy bench`` that run in worker processes (not a command itself):

* ORT's CUDA EP (``_ort_gpu_worker.py`` with the onnxruntime-gpu package of ``--ort-gpu-path``; two onnxruntime
  packages cannot share a process), with and without its CUDA graph. FP32 is its default math (TF32 allowed;
  ``fp32-strict`` turns ``use_tf32`` off), FP16 runs the float16 copy of the model (``ep_trtpy.models.fp16``, inputs
  and outputs keep their types), BF16 is n/a.
* PyTorch eager and ``torch.compile`` (``_torch_bench_worker.py`` in ``--torch-python``): on the real module for
  ``--model torchvision:... / hf:...`` sources, else on the ONNX graph interpreted with torch ops.

Each worker runs once per model and times all of that model's rows (one process start, one import of torch or
onnxruntime, one conversion of the weights per precision). A row that fails is an error row; a worker that dies
marks the rows it had not finished with its exit status and the end of its stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from ep_trtpy.cli import harness
from ep_trtpy.cli._bench_report import Row, accuracy

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER_TIMEOUT_S = 3600


@dataclass
class Workload:
    """One model under test, as the runners need it."""

    label: str
    model: onnx.ModelProto
    output_names: list[str]
    feeds_paths: dict[int, str]
    """Batch -> .npz of the inputs every runner gets."""
    refs: dict[int, list[Any] | None]
    """Batch -> ORT CPU provider outputs (float32), the accuracy reference."""
    tmp: str
    """A folder for this model's files (removed by the caller)."""
    real: dict[str, Any] | None = None
    """For a real model: {"name", "state", "attn_implementation"} (the torch runners load the module)."""
    saved: dict[str, str] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    """What the workers reported: onnxruntime-gpu and torch versions, the GPU torch saw."""

    def model_file(self, precision: str) -> str:
        """The ONNX file the workers read: the model, or its float16 copy for fp16 (written once)."""
        key = "fp16" if precision == "fp16" else "fp32"
        if key not in self.saved:
            model = self.model
            if key == "fp16":
                from ep_trtpy.models.fp16 import to_fp16

                model = to_fp16(model)
            path = os.path.join(self.tmp, f"model_{key}.onnx")
            onnx.save(harness.prepare_model(model, name_nodes=False), path)
            self.saved[key] = path
        return self.saved[key]


def _job_paths(wl: Workload, tag: str) -> dict[str, str]:
    return {"result": os.path.join(wl.tmp, f"{tag}.json"), "outputs": os.path.join(wl.tmp, f"{tag}.npz")}


def _run_worker(cmd: list[str], pending: list[tuple[Row, dict[str, Any]]], wl: Workload, label: str,
                env: dict[str, str] | None = None) -> None:
    """Run one worker over ``pending`` rows and fill each row from its result file."""
    for _, job in pending:
        for key in ("result", "outputs"):
            if os.path.exists(job[key]):
                os.remove(job[key])
    why = ""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=WORKER_TIMEOUT_S)
        tail = (proc.stderr.strip().splitlines() or [""])[-1][:300]
        why = f"worker exited {proc.returncode} before this row: {tail}"
    except subprocess.TimeoutExpired:
        why = f"worker timed out after {WORKER_TIMEOUT_S} s before this row"
    except OSError as e:  # the interpreter itself cannot be started
        why = f"cannot start the worker {cmd[0]}: {e.strerror or e}"
    for row, job in pending:
        if not os.path.exists(job["result"]):
            row.fail(why)
            continue
        with open(job["result"]) as f:
            res = json.load(f)
        wl.versions.update({name: res[k] for k, name in (("torch_version", "torch"), ("ort_version", "onnxruntime_gpu"))
                            if k in res})
        if not res.get("ok"):
            row.fail(res.get("error") or "worker failed")
            continue
        row.create_cold_s = res["create_s"]
        row.first_run_cold_s = res["first_run_s"]
        row.set_timing(harness.Timing(res["samples_ms"]))
        row.peak_gpu_mb = res.get("gpu_mem_used_mb")
        row.io = res.get("io", row.io)
        row.note = label.format(**res) + (f"; {res['note']}" if res.get("note") else "")
        with np.load(job["outputs"], allow_pickle=False) as out:
            accuracy(row, wl.output_names, [out[n] for n in wl.output_names], wl.refs.get(row.batch))


def bench_cuda(wl: Workload, batches: list[int], precisions: list[str], args: argparse.Namespace) -> list[Row]:
    """ORT's CUDA EP rows, with and without its CUDA graph, for every batch and precision of ``wl``."""
    rows: list[Row] = []
    pending: list[tuple[Row, dict[str, Any]]] = []
    for batch in batches:
        for precision in precisions:
            for graph in (False, True):
                row = Row("cuda+graph" if graph else "cuda", batch, precision, wl.label, io="device")
                rows.append(row)
                if precision == "bf16":
                    row.fail("ORT's CUDA EP has no bfloat16 build option (no bf16 copy of the model is made)", "n/a")
                elif not args.ort_gpu_path:
                    row.fail("needs --ort-gpu-path DIR (a folder with onnxruntime-gpu)", "skipped")
                else:
                    try:
                        job = {"model": wl.model_file(precision), "feeds": wl.feeds_paths[batch], "graph": graph,
                               "tf32": False if precision == "fp32-strict" else None,
                               **_job_paths(wl, f"cuda_{batch}_{precision}_{int(graph)}")}
                        pending.append((row, job))
                    except Exception as e:  # noqa: BLE001 - e.g. the float16 conversion failed
                        row.fail(e)
    if pending:
        jobs_path = os.path.join(wl.tmp, "cuda_jobs.json")
        with open(jobs_path, "w") as f:
            json.dump([job for _, job in pending], f)
        cmd = [sys.executable, os.path.join(HERE, "_ort_gpu_worker.py"), "--ort-path", args.ort_gpu_path,
               "--jobs", jobs_path, "--iters", str(args.iters), "--warmup", str(args.warmup),
               "--max-seconds", str(args.max_seconds), "--device", str(args.device_id)]
        if not args.no_torch_preload:
            cmd.append("--preload-torch")
        # only the onnxruntime it is given: no PYTHONPATH that could bring ours
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        _run_worker(cmd, pending, wl, "onnxruntime-gpu {ort_version}", env)
        for row, _ in pending:
            if row.status == "ok" and row.precision == "fp32":
                row.note += "; TF32 allowed (use_tf32 default)"
    return rows


def bench_torch(wl: Workload, batches: list[int], precisions: list[str], args: argparse.Namespace) -> list[Row]:
    """PyTorch eager and torch.compile rows for every batch and precision of ``wl``."""
    rows: list[Row] = []
    pending: list[tuple[Row, dict[str, Any]]] = []
    for batch in batches:
        for precision in precisions:
            for mode in ("eager", "compile"):
                row = Row(f"torch-{mode}", batch, precision, wl.label, io="device")
                rows.append(row)
                job = {"id": f"{batch}_{precision}_{mode}", "batch": batch, "precision": precision, "mode": mode,
                       "feeds": wl.feeds_paths[batch], **_job_paths(wl, f"torch_{batch}_{precision}_{mode}")}
                pending.append((row, job))
    try:
        model = ({"kind": "real", **wl.real} if wl.real else {"kind": "onnx", "path": wl.model_file("fp32")})
    except Exception as e:  # noqa: BLE001
        for row, _ in pending:
            row.fail(e)
        return rows
    spec = {"model": model, "device": args.torch_device or f"cuda:{args.device_id}",
            "compile_mode": args.torch_compile_mode, "iters": args.iters, "warmup": args.warmup,
            "max_seconds": args.max_seconds, "jobs": [job for _, job in pending]}
    jobs_path = os.path.join(wl.tmp, "torch_jobs.json")
    with open(jobs_path, "w") as f:
        json.dump(spec, f)
    cmd = [args.torch_python or sys.executable, os.path.join(HERE, "_torch_bench_worker.py"), "--jobs", jobs_path,
           "--info", os.path.join(wl.tmp, "torch_info.json")]
    what = "real module" if wl.real else "ONNX graph interpreted"
    _run_worker(cmd, pending, wl, "torch {torch_version}, " + what)
    info_path = os.path.join(wl.tmp, "torch_info.json")
    if os.path.exists(info_path):
        with open(info_path) as f:
            wl.versions.update({"torch" if k == "torch_version" else f"torch_{k}": v for k, v in json.load(f).items()})
    return rows
