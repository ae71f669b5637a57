"""``ep-trtpy bench``: latency, throughput, build time and GPU memory of TrtPyExecutionProvider next to other
runners, in one table and one JSON file.

Runners (``--providers``):

* ``trtpy``  our EP. Inputs and outputs stay on the GPU through IOBinding (``OrtValue`` on device ``cuda`` 0,
  outputs preallocated and bound once); without a usable device they are bound in host memory and the row says
  ``io=host``. Build time is measured twice, each as session creation + first run (engines are built for the
  concrete input shapes when they are first seen): ``cold`` with an empty engine cache, ``warm`` with the cache
  the cold session wrote. Peak GPU memory comes from ``ep_trtpy._kernels.device_memory_stats()`` when the native
  module provides it.
* ``cpu``    ORT's CPU provider (float32 only), inputs and outputs in host memory.
* ``cuda``   ORT's CUDAExecutionProvider, with and without its CUDA graph (two rows), run in a separate process
  with the onnxruntime-gpu package found in ``--ort-gpu-path`` (two onnxruntime packages cannot share a process);
  FP16 runs a float16 copy of the model (``ep_trtpy.models.fp16``). Its memory column is the growth of the
  device-wide memory in use (``cudaMemGetInfo``) while its session lives.

* ``torch``  PyTorch eager and ``torch.compile`` (two rows), in a separate process (``--torch-python``, default
  this interpreter) that runs the ONNX graph with torch operations (``ep_trtpy/cli/_torch_worker.py``: same graph,
  same weights; ``fullgraph=True`` so a graph break is an error, never eager timed as compiled). Inputs and outputs
  stay on the device; FP16 converts weights and float inputs to half. The package itself does not depend on torch.

Every row also reports the largest error relative to the output's scale against ORT's CPU provider in float32
(``max rel``), so a fast but wrong runner shows.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx

from ep_trtpy import harness
from ep_trtpy.cli import _common

NAME = "bench"
HELP = ("Benchmark MODEL.onnx (or --arch resnet50|mobilenetv2|bert|yolo) on TrtPyExecutionProvider and other "
        "runners: median/p99 latency, throughput, build time cold and with a warm engine cache, peak GPU memory.")

PROVIDERS = ("trtpy", "cpu", "cuda", "torch")


@dataclass
class Row:
    """One runner at one batch size and precision."""

    runner: str
    batch: int
    precision: str
    status: str = "ok"
    note: str = ""
    median_ms: float = math.nan
    p99_ms: float = math.nan
    mean_ms: float = math.nan
    runs: int = 0
    throughput: float = math.nan
    """Samples per second at the median latency."""
    create_cold_s: float = math.nan
    first_run_cold_s: float = math.nan
    create_warm_s: float = math.nan
    first_run_warm_s: float = math.nan
    peak_gpu_mb: float | None = None
    io: str = ""
    max_rel_vs_cpu: float = math.nan
    cosine_vs_cpu: float = math.nan
    nodes_on_ep: str = ""
    counters: dict[str, Any] = field(default_factory=dict)

    def set_timing(self, t: harness.Timing) -> None:
        self.median_ms, self.p99_ms, self.mean_ms, self.runs = t.median, t.p99, t.mean, len(t.samples_ms)
        self.throughput = self.batch / (t.median / 1e3) if t.median > 0 else math.nan


def add_arguments(p: argparse.ArgumentParser) -> None:
    _common.add_model_arguments(p, batch_list=True)
    p.add_argument("--providers", default="trtpy,cpu", help=f"comma-separated runners: {', '.join(PROVIDERS)}")
    p.add_argument("--fp16", action="store_true", help="shorthand for --precision fp16")
    p.add_argument("--precision", default=None, help="comma-separated: fp32, fp16 (default fp32)")
    p.add_argument("--iters", type=int, default=100, help="timed runs per row (default 100)")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs before timing (default 10)")
    p.add_argument("--max-seconds", type=float, default=60.0, help="stop timing a row after this long (>= 3 runs)")
    p.add_argument("--device-id", type=int, default=0)
    p.add_argument("--ort-gpu-path", help="folder holding an onnxruntime-gpu package (for --providers cuda)")
    p.add_argument("--no-torch-preload", action="store_true",
                   help="do not import torch in the CUDA EP worker before onnxruntime (torch's wheels carry the "
                        "CUDA libraries onnxruntime-gpu needs)")
    p.add_argument("--torch-python", help="Python executable with torch for --providers torch (default: this one)")
    p.add_argument("--torch-compile-mode", default="max-autotune",
                   help="torch.compile mode of the torch-compile row (default max-autotune)")
    p.add_argument("--torch-device", help="torch device of the torch rows (default cuda:<device-id>)")
    p.add_argument("--cache-dir", help="parent folder of the temporary engine caches (default: system temp)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="extra TrtPyExecutionProvider option (repeatable)")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")


# -------------------------------------------------------------------------------------------- runners --
def _bind(sess: Any, feeds: dict[str, np.ndarray], device: str, device_id: int) -> tuple[Any, list[Any]]:
    """An IOBinding with inputs and preallocated outputs on ``device`` ('cuda' or 'cpu')."""
    import onnxruntime as ort

    io = sess.io_binding()
    keep: list[Any] = []
    for k, v in feeds.items():
        if device == "cpu":
            io.bind_cpu_input(k, v)
        else:
            ov = ort.OrtValue.ortvalue_from_numpy(v, device, device_id)
            keep.append(ov)
            io.bind_ortvalue_input(k, ov)
    names = [o.name for o in sess.get_outputs()]
    for n in names:
        io.bind_output(n, device, device_id)
    sess.run_with_iobinding(io)
    first = io.get_outputs()
    fixed = []
    for o in first:
        arr = o.numpy()
        fixed.append(ort.OrtValue.ortvalue_from_shape_and_type(arr.shape, arr.dtype, device, device_id))
    io.clear_binding_outputs()
    for n, o in zip(names, fixed):
        io.bind_ortvalue_output(n, o)
    keep.extend(fixed)
    return io, keep


def _timed_binding(sess: Any, io: Any, args: argparse.Namespace) -> harness.Timing:
    def call() -> None:
        sess.run_with_iobinding(io)
        io.synchronize_outputs()

    return harness.time_calls(call, args.iters, args.warmup, args.max_seconds)


def _memory_stats(device: int = 0) -> dict[str, Any] | None:
    """The EP's device memory (its caching allocator: engines' weights, arenas and workspaces, and every tensor
    ORT allocates on the EP's device); None without a GPU."""
    from ep_trtpy import _kernels

    if not ep_trtpy_has_gpu():
        return None
    in_use, peak, reserved = _kernels.device_memory_stats(device)
    return {"in_use_bytes": in_use, "peak_bytes": peak, "reserved_bytes": reserved}


def _reset_memory_stats(device: int = 0) -> None:
    from ep_trtpy import _kernels

    if ep_trtpy_has_gpu():
        _kernels.reset_device_memory_stats(device)


def ep_trtpy_has_gpu() -> bool:
    import ep_trtpy

    return ep_trtpy.has_gpu()


def _peak_mb(stats: dict[str, Any] | None) -> float | None:
    if not stats:
        return None
    for key in ("peak_bytes", "peak_allocated_bytes", "max_allocated_bytes", "peak"):
        if key in stats:
            return float(stats[key]) / 2**20
    return None


def _accuracy(row: Row, names: list[str], got: list[Any], ref: list[Any] | None) -> None:
    if ref is None:
        return
    cmp = harness.compare_outputs(names, got, ref, network=True, fp16_engine=row.precision == "fp16")
    floats = [c for c in cmp if c.dtype.startswith("float")]
    if floats:
        row.max_rel_vs_cpu = max(c.max_rel for c in floats)
        row.cosine_vs_cpu = min(c.cosine for c in floats)


def bench_trtpy(data: bytes, feeds: dict[str, np.ndarray], batch: int, precision: str, ref: list[Any] | None,
                args: argparse.Namespace, options: dict[str, str]) -> Row:
    import ep_trtpy

    row = Row("trtpy", batch, precision)
    cache = tempfile.mkdtemp(prefix="ep_trtpy_bench_", dir=args.cache_dir)
    opts = dict(options, fp16_enable="1" if precision == "fp16" else "0", engine_cache_enable="1",
                engine_cache_path=cache)
    if args.device_id:
        # ORT itself reads `device_id` for plugin EPs and picks the EP device with that ordinal; only pass it when
        # asked for (the reference backend's CPU-paired device has none).
        opts["device_id"] = str(args.device_id)
    try:
        ep_trtpy.reset_runtime_stats()
        _reset_memory_stats(args.device_id)
        t0 = time.perf_counter()
        sess = harness.create_session(data, "trtpy", ep_options=opts)
        row.create_cold_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        got = sess.run(None, feeds)
        row.first_run_cold_s = time.perf_counter() - t0
        cold = ep_trtpy.runtime_stats()
        del sess
        ep_trtpy.reset_runtime_stats()
        t0 = time.perf_counter()
        sess = harness.create_session(data, "trtpy", ep_options=opts)
        row.create_warm_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        sess.run(None, feeds)
        row.first_run_warm_s = time.perf_counter() - t0
        warm = ep_trtpy.runtime_stats()
        row.counters = {"cold": {k: v for k, v in cold.items() if v}, "warm": {k: v for k, v in warm.items() if v}}
        row.nodes_on_ep = _common.placement_summary(sess).split(";")[0]
        names = [o.name for o in sess.get_outputs()]
        _accuracy(row, names, got, ref)
        try:
            io, keep = _bind(sess, feeds, "cuda", args.device_id)
            row.io = "device"
        except Exception as e:  # noqa: BLE001 - no device allocator (reference backend): host buffers
            io, keep = _bind(sess, feeds, "cpu", 0)
            row.io = "host"
            row.note = f"device IOBinding unavailable ({type(e).__name__}); "
        row.set_timing(_timed_binding(sess, io, args))
        row.peak_gpu_mb = _peak_mb(_memory_stats(args.device_id))
        if not ep_trtpy.has_gpu():
            row.note += "reference backend (no GPU)"
        del io, keep, sess
    except Exception as e:  # noqa: BLE001 - one failing runner must not end the benchmark
        row.status, row.note = "error", f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return row


def bench_cpu(data: bytes, feeds: dict[str, np.ndarray], batch: int, args: argparse.Namespace) -> tuple[Row, Any]:
    row = Row("cpu", batch, "fp32", io="host")
    outs = None
    try:
        t0 = time.perf_counter()
        sess = harness.create_session(data, "cpu")
        row.create_cold_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        outs = sess.run(None, feeds)
        row.first_run_cold_s = time.perf_counter() - t0
        io, keep = _bind(sess, feeds, "cpu", 0)
        row.set_timing(_timed_binding(sess, io, args))
        row.max_rel_vs_cpu, row.cosine_vs_cpu = 0.0, 1.0
    except Exception as e:  # noqa: BLE001
        row.status, row.note = "error", f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"
    return row, outs


def _run_worker(row: Row, cmd: list[str], tmp: str, names: list[str], ref: list[Any] | None, label: str,
                keep_pythonpath: bool = True) -> None:
    """Run a worker script, fill ``row`` from its JSON result and compare its saved outputs with ``ref``.
    ``keep_pythonpath=False`` drops PYTHONPATH (the CUDA EP worker must import only the onnxruntime it is given)."""
    env = {k: v for k, v in os.environ.items() if keep_pythonpath or k != "PYTHONPATH"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    res_path = os.path.join(tmp, "result.json")
    if not os.path.exists(res_path):
        raise RuntimeError(f"worker exited {proc.returncode} without a result: {proc.stderr[-500:]}")
    with open(res_path) as f:
        res = json.load(f)
    if not res.get("ok"):
        raise RuntimeError(res.get("error") or "worker failed")
    row.create_cold_s = res["create_s"]
    row.first_run_cold_s = res["first_run_s"]
    row.set_timing(harness.Timing(res["samples_ms"]))
    row.peak_gpu_mb = res.get("gpu_mem_used_mb")
    row.io = res.get("io", row.io)
    row.note = label.format(**res)
    with np.load(os.path.join(tmp, "outputs.npz"), allow_pickle=False) as out:
        _accuracy(row, names, [out[n] for n in names], ref)


def _save_inputs(model: onnx.ModelProto, feeds: dict[str, np.ndarray], tmp: str) -> tuple[str, str]:
    path = os.path.join(tmp, "model.onnx")
    onnx.save(harness.prepare_model(model, name_nodes=False), path)
    feeds_path = os.path.join(tmp, "feeds.npz")
    np.savez(feeds_path, **feeds)
    return path, feeds_path


def bench_torch(model: onnx.ModelProto, feeds: dict[str, np.ndarray], batch: int, precision: str,
                ref: list[Any] | None, args: argparse.Namespace, names: list[str]) -> list[Row]:
    """PyTorch eager and torch.compile rows (the worker interprets the ONNX graph with torch ops)."""
    rows = []
    for mode in ("eager", "compile"):
        row = Row(f"torch-{mode}", batch, precision, io="device")
        rows.append(row)
        tmp = tempfile.mkdtemp(prefix="ep_trtpy_torch_bench_")
        try:
            path, feeds_path = _save_inputs(model, feeds, tmp)
            cmd = [args.torch_python or sys.executable,
                   os.path.join(os.path.dirname(os.path.abspath(__file__)), "_torch_worker.py"),
                   "--model", path, "--feeds", feeds_path, "--out", os.path.join(tmp, "result.json"),
                   "--outputs", os.path.join(tmp, "outputs.npz"), "--mode", mode,
                   "--compile-mode", args.torch_compile_mode, "--device", args.torch_device or f"cuda:{args.device_id}",
                   "--iters", str(args.iters), "--warmup", str(args.warmup), "--max-seconds", str(args.max_seconds)]
            if precision == "fp16":
                cmd.append("--fp16")
            _run_worker(row, cmd, tmp, names, ref,
                        "torch {torch_version}" + (f", compile mode {args.torch_compile_mode}" if mode == "compile"
                                                   else ""))
        except Exception as e:  # noqa: BLE001
            row.status, row.note = "error", f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return rows


def bench_cuda(model: onnx.ModelProto, feeds: dict[str, np.ndarray], batch: int, precision: str,
               ref: list[Any] | None, args: argparse.Namespace, names: list[str]) -> list[Row]:
    rows = []
    for graph in (False, True):
        row = Row("cuda+graph" if graph else "cuda", batch, precision, io="device")
        rows.append(row)
        if not args.ort_gpu_path:
            row.status, row.note = "skipped", "needs --ort-gpu-path DIR (a folder with onnxruntime-gpu)"
            continue
        tmp = tempfile.mkdtemp(prefix="ep_trtpy_cuda_bench_")
        try:
            m = model
            if precision == "fp16":
                from ep_trtpy.models.fp16 import to_fp16

                m = to_fp16(model)
            path, feeds_path = _save_inputs(m, feeds, tmp)
            cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ort_gpu_worker.py"),
                   "--ort-path", args.ort_gpu_path, "--model", path, "--feeds", feeds_path,
                   "--out", os.path.join(tmp, "result.json"), "--outputs", os.path.join(tmp, "outputs.npz"),
                   "--iters", str(args.iters), "--warmup", str(args.warmup), "--max-seconds", str(args.max_seconds),
                   "--device", str(args.device_id)]
            if graph:
                cmd.append("--cuda-graph")
            if not args.no_torch_preload:
                cmd.append("--preload-torch")
            _run_worker(row, cmd, tmp, names, ref, "onnxruntime-gpu {ort_version}", keep_pythonpath=False)
        except Exception as e:  # noqa: BLE001
            row.status, row.note = "error", f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return rows


# ---------------------------------------------------------------------------------------------- report --
def _fmt(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        digits = "".join(ch for ch in spec.split(".")[0] if ch.isdigit())
        return "-".rjust(int(digits) if digits else 1)
    return format(v, spec)


def table(rows: list[Row]) -> str:
    head = (f"{'runner':13s} {'batch':>5s} {'prec':>5s} {'median ms':>10s} {'p99 ms':>9s} {'samples/s':>10s} "
            f"{'build cold s':>12s} {'build warm s':>12s} {'peak MB':>8s} {'io':>6s} {'max rel':>9s}  note")
    lines = [head]
    for r in rows:
        cold = r.create_cold_s + r.first_run_cold_s if not math.isnan(r.create_cold_s) else math.nan
        warm = r.create_warm_s + r.first_run_warm_s if not math.isnan(r.create_warm_s) else math.nan
        note = r.note if r.status == "ok" else f"{r.status.upper()}: {r.note}"
        lines.append(f"{r.runner:13s} {r.batch:5d} {r.precision:>5s} {_fmt(r.median_ms, '10.3f')} "
                     f"{_fmt(r.p99_ms, '9.3f')} {_fmt(r.throughput, '10.1f')} {_fmt(cold, '12.2f')} "
                     f"{_fmt(warm, '12.2f')} {_fmt(r.peak_gpu_mb, '8.1f')} {r.io or '-':>6s} "
                     f"{_fmt(r.max_rel_vs_cpu, '9.2e')}  {note}")
    return "\n".join(lines)


def _no_nan(v: Any) -> Any:
    """JSON has no NaN: unmeasured numbers become null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _no_nan(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_no_nan(x) for x in v]
    return v


def _precisions(args: argparse.Namespace) -> list[str]:
    text = args.precision or ("fp16" if args.fp16 else "fp32")
    out = [p.strip().lower() for p in text.split(",") if p.strip()]
    bad = [p for p in out if p not in ("fp32", "fp16")]
    if bad:
        raise ValueError(f"--precision accepts fp32 and fp16, got {bad}")
    return out


def _providers(args: argparse.Namespace) -> list[str]:
    out = [p.strip().lower() for p in args.providers.split(",") if p.strip()]
    bad = [p for p in out if p not in PROVIDERS]
    if bad:
        raise ValueError(f"--providers accepts {', '.join(PROVIDERS)}; got {bad}")
    return out


@_common.reports_unavailable_ep(NAME)
def run(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    import ep_trtpy
    from ep_trtpy.cli.run import ep_options

    model, label = _common.load_model(args)
    providers, precisions, batch_list = _providers(args), _precisions(args), _common.batches(args)
    options = ep_options(argparse.Namespace(fp16=False, option=args.option))
    if "trtpy" in providers and not harness.ep_registered():
        raise harness.EpUnavailableError(f"{harness.EP_NAME} is not registered with onnxruntime {ort.__version__}")
    data = harness.prepare_model(model).SerializeToString()
    names = [o.name for o in model.graph.output]
    gpu = ep_trtpy.has_gpu()
    print(f"bench {label}: runners {', '.join(providers)}; batch {', '.join(map(str, batch_list))}; "
          f"{', '.join(precisions)}; {harness.EP_NAME} on the {'GPU' if gpu else 'numpy reference backend'}",
          flush=True)
    rows: list[Row] = []
    for batch in batch_list:
        feeds = _common.make_feeds(args, model, batch)
        cpu_row, ref = bench_cpu(data, feeds, batch, args) if "cpu" in providers else (None, None)
        if ref is None:  # the accuracy reference still comes from the CPU provider
            try:
                ref = harness.create_session(data, "cpu").run(None, feeds)
            except Exception:  # noqa: BLE001
                ref = None
        for precision in precisions:
            for prov in providers:
                before = len(rows)
                if prov == "trtpy":
                    rows.append(bench_trtpy(data, feeds, batch, precision, ref, args, options))
                elif prov == "cpu":
                    if precision == "fp32" and cpu_row is not None:
                        rows.append(cpu_row)
                elif prov == "cuda":
                    rows.extend(bench_cuda(model, feeds, batch, precision, ref, args, names))
                elif prov == "torch":
                    rows.extend(bench_torch(model, feeds, batch, precision, ref, args, names))
                for r in rows[before:]:
                    print(table([r]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    if args.json:
        doc = {"model": label, "model_path": args.model, "arch": args.arch, "ci": args.ci,
               "ep_trtpy_version": ep_trtpy.__version__, "onnxruntime_version": ort.__version__,
               "has_gpu": gpu, "host": platform.node(), "python": platform.python_version(),
               "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "iters": args.iters, "warmup": args.warmup,
               "rows": [asdict(r) for r in rows]}
        with open(args.json, "w") as f:
            json.dump(_no_nan(doc), f, indent=1, default=str)
        print(f"wrote {args.json}")
    return 1 if any(r.status == "error" for r in rows) else 0
