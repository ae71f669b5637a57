"""Benchmark worker for PyTorch eager and ``torch.compile``, run by ``ep-trtpy bench`` in a separate process (the
package has no PyTorch dependency, and torch's CUDA context stays out of the process that hosts our EP).

One run times every row of one model: a JSON job file names the model and lists the rows (batch, precision,
mode). The model is either

* ``{"kind": "real", "name": "torchvision:resnet50", "state": FILE}``: the real module
  (``_real_models.load_module``, the weights the ONNX export saw), or
* ``{"kind": "onnx", "path": FILE}``: the ONNX graph interpreted with torch ops (``_torch_worker.build_module``),
  for generated architectures and ONNX files.

Precisions: ``fp32`` with TF32 allowed (``torch.backends.cuda.matmul.allow_tf32`` and
``torch.backends.cudnn.allow_tf32`` True, as ORT's CUDA EP and our ``tf32_enable``), ``fp32-strict`` with both
False, ``fp16`` and ``bf16`` as weights and float inputs converted to that type (``module.to(dtype)``, like our
16-bit engines; no autocast). The module is converted once per precision; ``torch.compile`` (``dynamic=False``,
``fullgraph=True``, falling back to graph breaks with a note) runs once per (batch, precision). Inputs and outputs
stay on the device; each timed run is one call followed by a synchronize (wall clock, as the ONNX runners are
timed); median of the samples after the warm-up runs. A failing row is reported and the next row runs.

Writes each row's result to its ``result`` file: {"ok", "error", "traceback", "create_s", "first_run_s",
"samples_ms", "io", "gpu_mem_used_mb", "note"}, its first outputs (float32) to its ``outputs`` .npz, and the
worker's versions to ``--info``: {"torch_version", "device_name"}.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # run as a script: this folder's inspect.py and profile.py must not shadow the stdlib
    sys.path[:] = [q for q in sys.path if os.path.abspath(q or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402 (after the path fix above)
import copy  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from typing import Any  # noqa: E402

PRECISIONS = ("fp32", "fp32-strict", "fp16", "bf16")
MODES = ("eager", "compile")


def sibling(name: str) -> Any:
    """A module of this folder loaded by path (the workers run without the ep_trtpy package)."""
    key = f"_ep_trtpy_bench_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                    name + ".py"))
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[key] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _float_dtype(precision: str) -> Any:
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)


def _set_tf32(precision: str) -> None:
    import torch

    allow = precision != "fp32-strict"
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow


class Model:
    """The model of a job file, converted once per precision: ``get(precision) -> (module, inputs, outputs)``."""

    def __init__(self, spec: dict[str, Any], device: Any) -> None:
        self.spec, self.device = spec, device
        self._base: Any = None
        self._onnx: Any = None
        self._by_precision: dict[str, tuple[Any, list[str], list[str]]] = {}

    def get(self, precision: str) -> tuple[Any, list[str], list[str]]:
        if precision not in self._by_precision:
            self._by_precision.clear()  # one precision's module on the device at a time
            self._by_precision[precision] = self._build(precision)
        return self._by_precision[precision]

    def _build(self, precision: str) -> tuple[Any, list[str], list[str]]:
        dtype = _float_dtype(precision)
        if self.spec["kind"] == "real":
            real = sibling("_real_models")
            src = real.source(self.spec["name"])
            if self._base is None:
                self._base = real.load_module(src, self.spec["state"], self.spec.get("attn_implementation"))
            module = copy.deepcopy(self._base).to(device=self.device, dtype=dtype).eval()
            return module, list(src.inputs), list(src.outputs)
        if self.spec["kind"] == "onnx":
            import onnx

            if self._onnx is None:
                self._onnx = onnx.load(self.spec["path"])
            half = precision in ("fp16", "bf16")
            module = sibling("_torch_worker").build_module(self._onnx, self.device, half, dtype).eval()
            return module, list(module.input_names), list(module.output_names)
        raise ValueError(f"unknown model kind '{self.spec['kind']}' (real or onnx)")


def _inputs(path: str, names: list[str], precision: str, device: Any) -> list[Any]:
    import numpy as np
    import torch

    with np.load(path, allow_pickle=False) as data:
        missing = [n for n in names if n not in data.files]
        if missing:
            raise ValueError(f"feeds file {path} lacks inputs {missing}")
        tensors = [torch.from_numpy(data[n]).to(device) for n in names]
    return [t.to(_float_dtype(precision)) if t.is_floating_point() else t for t in tensors]


def _compile(module: Any, mode: str, fullgraph: bool) -> Any:
    import torch

    return torch.compile(module, mode=mode, dynamic=False, fullgraph=fullgraph)


def run_job(model: Model, job: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    """Time one row; returns its result document (see the module docstring)."""
    import numpy as np
    import torch

    dev = model.device
    cuda = dev.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    res: dict[str, Any] = {"ok": False, "error": None, "note": ""}
    precision, mode = job["precision"], job["mode"]
    if precision not in PRECISIONS or mode not in MODES:
        raise ValueError(f"job {job.get('id')}: precision must be one of {PRECISIONS} and mode one of {MODES}")
    _set_tf32(precision)
    t0 = time.perf_counter()
    module, in_names, out_names = model.get(precision)
    inputs = _inputs(job["feeds"], in_names, precision, dev)
    compile_mode = cfg.get("compile_mode", "reduce-overhead")
    mark_step = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None)
    marks = mode == "compile" and "reduce-overhead" in compile_mode and cuda and mark_step is not None
    runner = _compile(module, compile_mode, True) if mode == "compile" else module
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    sync()
    res["create_s"] = time.perf_counter() - t0

    def call() -> Any:
        if marks:
            mark_step()  # each call starts a new CUDA-graph step: the previous outputs may be overwritten
        return runner(*inputs)

    with torch.no_grad():
        t0 = time.perf_counter()
        try:
            outs = call()
        except Exception as e:  # noqa: BLE001 - a graph break under fullgraph: compile with breaks, say so
            if mode != "compile":
                raise
            torch._dynamo.reset()
            res["note"] = f"fullgraph failed ({type(e).__name__}), compiled with graph breaks; "
            runner = _compile(module, compile_mode, False)
            outs = call()
        sync()
        res["first_run_s"] = time.perf_counter() - t0
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        if job.get("outputs"):
            np.savez(job["outputs"], **{n: (o.float() if o.is_floating_point() else o).cpu().numpy()
                                        for n, o in zip(out_names, outs)})
        del outs
        for _ in range(max(0, int(cfg.get("warmup", 10)))):
            call()
        sync()
        samples = []
        start = time.perf_counter()
        for i in range(max(1, int(cfg.get("iters", 50)))):
            t0 = time.perf_counter()
            call()
            sync()
            samples.append((time.perf_counter() - t0) * 1e3)
            if i >= 2 and time.perf_counter() - start > float(cfg.get("max_seconds", 60.0)):
                break
    res["samples_ms"] = samples
    res["io"] = "device" if cuda else "host"
    res["gpu_mem_used_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20 if cuda else None
    if mode == "compile":
        res["note"] += f"compile mode {compile_mode}"
        torch._dynamo.reset()  # this (batch, precision)'s graphs are not needed again
    if precision == "fp32" and cuda:
        res["note"] = (res["note"] + "; " if res["note"] else "") + "TF32 allowed"
    res["ok"] = True
    return res


def run_jobs(spec: dict[str, Any], info_path: str | None = None) -> int:
    """Run every job of ``spec``; each writes its own result file. Returns the number of failed rows."""
    import torch

    info = {"torch_version": torch.__version__}
    dev = torch.device(spec.get("device", "cuda:0"))
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("torch.cuda.is_available() is False")
        info["device_name"] = torch.cuda.get_device_name(dev)
    if info_path:
        with open(info_path, "w") as f:
            json.dump(info, f)
    model = Model(spec["model"], dev)
    order = sorted(spec["jobs"], key=lambda j: (PRECISIONS.index(j["precision"]) if j["precision"] in PRECISIONS
                                                else 9, j["batch"], j["mode"] != "eager"))
    failed = 0
    for job in order:
        try:
            res = run_job(model, job, spec)
        except Exception as e:  # noqa: BLE001 - one failing row must not end the others
            res = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
            failed += 1
        res["torch_version"] = info["torch_version"]
        with open(job["result"], "w") as f:
            json.dump(res, f)
    return failed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="_torch_bench_worker.py")
    p.add_argument("--jobs", required=True, help="the job file (JSON; see the module docstring)")
    p.add_argument("--info", help="write the worker's versions here (JSON)")
    args = p.parse_args(argv)
    with open(args.jobs) as f:
        spec = json.load(f)
    return 1 if run_jobs(spec, args.info) else 0


if __name__ == "__main__":
    sys.exit(main())
