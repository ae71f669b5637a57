"""``ep-trtpy bench``: latency, throughput, build time and GPU memory of TrtPyExecutionProvider next to its peers,
in one run, one table and one JSON file.

Models: an ONNX file, ``--arch NAME`` (a generated architecture), ``--model SOURCE`` (a real model definition:
``torchvision:resnet50``, ``torchvision:mobilenet_v2``, ``hf:bert-base``, exported to ONNX with torch in a
subprocess; see ``_real_models.py``), or ``--suite issue6`` (issue 6's whole grid: those three and the generated
YOLO-style detector, batch 1 and 32, fp32/fp16/bf16, every runner).

Runners (``--providers``):

* ``trtpy``  our EP. Inputs and outputs stay on the GPU through IOBinding (``OrtValue`` on device ``cuda`` 0,
  outputs preallocated and bound once); without a usable device they are bound in host memory and the row says
  ``io=host``. Build time is measured twice, each as session creation + first run: ``cold`` with an empty engine
  cache, ``warm`` with the cache the cold session wrote. Peak GPU memory comes from
  ``ep_trtpy._kernels.device_memory_stats()``.
* ``cpu``    ORT's CPU provider (float32), inputs and outputs in host memory. Whether or not it is a runner, one
  run of it per batch is the accuracy reference of every row (``max rel``: the largest error relative to the
  output's scale).
* ``cuda``   ORT's CUDA EP, with and without its CUDA graph (``_bench_peers.py``).
* ``torch``  PyTorch eager and ``torch.compile`` (mode ``--torch-compile-mode``, default reduce-overhead), on the
  real module for ``--model`` sources, else on the ONNX graph interpreted with torch ops (``_bench_peers.py``).

Precisions (``--precision``): ``fp32`` (ours with ``tf32_enable=1``; ORT's CUDA EP and torch with TF32 allowed, as
they are by default), ``fp32-strict`` (TF32 off everywhere), ``fp16``, ``bf16`` (ours with ``bf16_enable=1``; n/a
for ORT). A row whose option this build of ours does not know is marked instead of failing.

The last table has one line per (model, batch, precision): every runner's median and our speed-up against the
best peer (``_bench_report.py``). ``--from-json A.json B.json`` prints the tables of earlier runs together.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ep_trtpy.cli import _bench_peers, _bench_report, _common, harness
from ep_trtpy.cli._errors import UsageError, count, folder, input_file, output_file, positive_int
from ep_trtpy.cli._bench_report import Row

NAME = "bench"
HELP = ("Benchmark a model (MODEL.onnx, --model torchvision:resnet50|torchvision:mobilenet_v2|hf:bert-base, --arch "
        "NAME) or --suite issue6 on TrtPyExecutionProvider and its peers (ORT CUDA EP, torch eager, torch.compile): "
        "median/p99 latency, speed-up against the best peer, build time, peak GPU memory.")

PROVIDERS = ("trtpy", "cpu", "cuda", "torch")
PRECISIONS = ("fp32", "fp32-strict", "fp16", "bf16")


@dataclass(frozen=True)
class Suite:
    """A grid run by one invocation: models (``--model`` sources, or ``arch:NAME``), batches, precisions,
    runners."""

    models: tuple[str, ...]
    batches: tuple[int, ...]
    precisions: tuple[str, ...]
    providers: tuple[str, ...]


SUITES = {
    "issue6": Suite(("torchvision:resnet50", "torchvision:mobilenet_v2", "hf:bert-base", "arch:yolo"), (1, 32),
                    ("fp32", "fp16", "bf16"), ("trtpy", "cuda", "torch")),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    _common.add_model_arguments(p, batch_list=True)
    p.set_defaults(batch=None)  # 1, or the suite's batches
    p.add_argument("--suite", choices=sorted(SUITES),
                   help="run a whole grid (issue6: ResNet-50, MobileNetV2, BERT-base, YOLO; batch 1,32; "
                        "fp32,fp16,bf16; runners trtpy,cuda,torch); --batch/--precision/--providers narrow it")
    p.add_argument("--models", help="with --suite: only these of its models (comma-separated; a source, an "
                                    "architecture or part of one: resnet50,bert)")
    p.add_argument("--providers", help=f"comma-separated runners: {', '.join(PROVIDERS)} (default trtpy,cpu)")
    p.add_argument("--fp16", action="store_true", help="shorthand for --precision fp16")
    p.add_argument("--precision", help=f"comma-separated: {', '.join(PRECISIONS)} (default fp32)")
    p.add_argument("--iters", type=positive_int, default=50, help="timed runs per row (default 50)")
    p.add_argument("--warmup", type=count, default=10, help="untimed runs before timing (default 10)")
    p.add_argument("--max-seconds", type=float, default=60.0, help="stop timing a row after this long (>= 3 runs)")
    p.add_argument("--device-id", type=int, default=0)
    p.add_argument("--ort-gpu-path", help="folder holding an onnxruntime-gpu package (for --providers cuda)")
    p.add_argument("--no-torch-preload", action="store_true",
                   help="do not import torch in the CUDA EP worker before onnxruntime (torch's wheels carry the "
                        "CUDA libraries onnxruntime-gpu needs)")
    p.add_argument("--torch-compile-mode", default="reduce-overhead",
                   help="torch.compile mode of the torch-compile rows (default reduce-overhead)")
    p.add_argument("--torch-device", help="torch device of the torch rows (default cuda:<device-id>)")
    p.add_argument("--cache-dir", help="parent folder of the temporary engine caches and worker files "
                                       "(default: system temp)")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    p.add_argument("--from-json", nargs="+", metavar="IN",
                   help="run nothing: print the tables of earlier --json files together (and --json writes them "
                        "as one)")
    _common.add_option_flags(p, exclude=_common.PRECISION_OPTIONS)  # --precision sets these, row by row


# ----------------------------------------------------------------------------------------- our runners --
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
    fixed = []
    for o in io.get_outputs():
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


def _peak_mb(device: int) -> float | None:
    """Peak of the EP's device memory (its caching allocator) since the last reset; None without a GPU."""
    import ep_trtpy
    from ep_trtpy import _kernels

    if not ep_trtpy.has_gpu():
        return None
    _, peak, _ = _kernels.device_memory_stats(device)
    return float(peak) / 2**20


def _known_option(name: str) -> bool:
    """Whether this build of ep_trtpy accepts provider option ``name``."""
    from ep_trtpy.options import OptionError, parse

    try:
        parse({name: "1"})
    except OptionError:
        return False
    return True


def precision_options(precision: str) -> tuple[dict[str, str], str]:
    """Our provider options for ``precision``, and a note when this build lacks the option that precision wants.
    Raises LookupError when the precision cannot run at all (no ``bf16_enable``)."""
    opts = {"fp16_enable": "1" if precision == "fp16" else "0"}
    if precision in ("fp32", "fp32-strict"):
        if not _known_option("tf32_enable"):
            return opts, "this build has no tf32_enable option: strict FP32"
        opts["tf32_enable"] = "1" if precision == "fp32" else "0"
        return opts, "TF32 allowed" if precision == "fp32" else ""
    if precision == "bf16":
        if not _known_option("bf16_enable"):
            raise LookupError("this build of ep_trtpy has no bf16_enable option")
        opts["bf16_enable"] = "1"
    return opts, ""


def bench_trtpy(data: bytes, feeds: dict[str, np.ndarray], row: Row, ref: list[Any] | None,
                args: argparse.Namespace, options: dict[str, str]) -> Row:
    import ep_trtpy
    from ep_trtpy import _kernels

    try:
        extra, note = precision_options(row.precision)
    except LookupError as e:
        row.fail(str(e), "n/a")
        return row
    cache = tempfile.mkdtemp(prefix="ep_trtpy_bench_", dir=args.cache_dir)
    opts = dict(options, **extra, engine_cache_enable="1", engine_cache_path=cache)
    if args.device_id:
        # ORT itself reads `device_id` for plugin EPs and picks the EP device with that ordinal; only pass it when
        # asked for (the reference backend's CPU-paired device has none).
        opts["device_id"] = str(args.device_id)
    try:
        ep_trtpy.reset_runtime_stats()
        if ep_trtpy.has_gpu():
            _kernels.reset_device_memory_stats(args.device_id)
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
        _bench_report.accuracy(row, [o.name for o in sess.get_outputs()], got, ref)
        notes = [note] if note else []
        try:
            io, keep = _bind(sess, feeds, "cuda", args.device_id)
            row.io = "device"
        except Exception as e:  # noqa: BLE001 - no device allocator (reference backend): host buffers
            io, keep = _bind(sess, feeds, "cpu", 0)
            row.io = "host"
            notes.append(f"device IOBinding unavailable ({type(e).__name__})")
        row.set_timing(_timed_binding(sess, io, args))
        row.peak_gpu_mb = _peak_mb(args.device_id)
        if not ep_trtpy.has_gpu():
            notes.append("reference backend (no GPU)")
        row.note = "; ".join(notes)
        del io, keep, sess
    except Exception as e:  # noqa: BLE001 - one failing runner must not end the benchmark
        row.fail(e)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return row


def bench_cpu(data: bytes, feeds: dict[str, np.ndarray], row: Row, args: argparse.Namespace) -> tuple[Row, Any]:
    outs = None
    row.io = "host"
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
        row.fail(e)
    return row, outs


def _reference(data: bytes, feeds: dict[str, np.ndarray]) -> list[Any] | None:
    """One run of ORT's CPU provider: the accuracy reference (None when it cannot run the model)."""
    try:
        return harness.create_session(data, "cpu").run(None, feeds)
    except Exception:  # noqa: BLE001 - rows then carry no accuracy numbers
        return None


# -------------------------------------------------------------------------------------------- the plan --
def _split(text: str | None, default: tuple[str, ...]) -> list[str]:
    return [x.strip().lower() for x in text.split(",") if x.strip()] if text else list(default)


def plan(args: argparse.Namespace) -> tuple[list[argparse.Namespace], list[int], list[str], list[str]]:
    """(one namespace per model to load, batches, precisions, runners), from the suite and the flags."""
    suite = SUITES[args.suite] if args.suite else None
    providers = _split(args.providers, suite.providers if suite else ("trtpy", "cpu"))
    precisions = _split(args.precision, ("fp16",) if args.fp16 else (suite.precisions if suite else ("fp32",)))
    bad = [p for p in providers if p not in PROVIDERS]
    if bad:
        raise UsageError(f"--providers accepts {', '.join(PROVIDERS)}; got {', '.join(bad)}")
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise UsageError(f"--precision accepts {', '.join(PRECISIONS)}; got {', '.join(bad)}")
    if suite is None:
        if args.models:
            raise UsageError("--models narrows a --suite; without one, name the model itself")
        _common.check_model_arguments(args)
        return [args], _common.batches(argparse.Namespace(batch=args.batch or "1")), precisions, providers
    if args.model or args.source or args.arch:
        raise UsageError("--suite runs its own models: give no MODEL.onnx, --model or --arch (--models narrows it)")
    wanted = _split(args.models, ())
    chosen = [m for m in suite.models if not wanted or any(w in m for w in wanted)]
    if not chosen:
        raise UsageError(f"--models {args.models!r} matches none of the suite's models: {', '.join(suite.models)}")
    spaces = []
    for m in chosen:
        ns = copy.copy(args)
        ns.source, ns.arch = (None, m.partition(":")[2]) if m.startswith("arch:") else (m, None)
        spaces.append(ns)
    batches = _common.batches(args) if args.batch else list(suite.batches)
    return spaces, batches, precisions, providers


def _load_workload(ns: argparse.Namespace, batches: list[int], tmp: str) -> tuple[_bench_peers.Workload, dict]:
    """Load (or export) the model and write each batch's feeds (the inputs every runner gets)."""
    loaded = _common.load(ns)
    wl = _bench_peers.Workload(loaded.label, loaded.model, [o.name for o in loaded.model.graph.output], {}, {}, tmp)
    info: dict[str, Any] = {"label": loaded.label, "source": ns.source or ns.arch or ns.model}
    if loaded.exported is not None:
        info.update(loaded.exported.info)
        wl.real = {"name": loaded.exported.source.name, "state": loaded.exported.state_path,
                   "attn_implementation": ns.attn_implementation}
    for batch in batches:
        feeds = _common.make_feeds(ns, loaded.model, batch)
        path = os.path.join(tmp, f"feeds_{batch}.npz")
        np.savez(path, **feeds)
        wl.feeds_paths[batch] = path
    return wl, info


def bench_model(wl: _bench_peers.Workload, batches: list[int], precisions: list[str], providers: list[str],
                args: argparse.Namespace, options: dict[str, str]) -> list[Row]:
    """Every runner's rows for one model (printed as they finish)."""
    data = harness.prepare_model(wl.model).SerializeToString()
    rows: list[Row] = []

    def done(new: list[Row]) -> None:
        for r in new:
            print(_bench_report.rows_table([r]).splitlines()[-1], flush=True)
        rows.extend(new)

    for batch in batches:
        with np.load(wl.feeds_paths[batch], allow_pickle=False) as f:
            feeds = {k: f[k] for k in f.files}
        if "cpu" in providers:
            cpu_row, ref = bench_cpu(data, feeds, Row("cpu", batch, "fp32", wl.label), args)
            done([cpu_row])
        else:
            ref = _reference(data, feeds)
        wl.refs[batch] = ref
        if "trtpy" in providers:
            done([bench_trtpy(data, feeds, Row("trtpy", batch, p, wl.label), ref, args, options) for p in precisions])
    if "cuda" in providers:
        done(_bench_peers.bench_cuda(wl, batches, precisions, args))
    if "torch" in providers:
        done(_bench_peers.bench_torch(wl, batches, precisions, args))
    return rows


def _gpu(device_id: int) -> dict[str, Any] | None:
    import ep_trtpy

    if not ep_trtpy.has_gpu():
        return None
    from ep_trtpy import _kernels

    info = _kernels.device_info(device_id)
    return {"name": str(info["name"]), "cc": [int(c) for c in info["cc"]]}


def _versions() -> dict[str, Any]:
    import onnx
    import onnxruntime as ort

    import ep_trtpy

    return {"ep_trtpy": ep_trtpy.__version__, "onnxruntime": ort.__version__, "onnx": onnx.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def _print_tables(rows: list[Row]) -> None:
    print()
    print(_bench_report.rows_table(rows))
    print()
    print(_bench_report.comparison_table(_bench_report.cells(rows)))


@_common.reports_unavailable_ep(NAME)
def run(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    import ep_trtpy

    if args.json:
        output_file(args.json, "--json")
    if args.from_json:
        for path in args.from_json:
            input_file(path, "--from-json file")
        try:
            rows, meta = _bench_report.load(args.from_json)
        except ValueError as e:
            raise UsageError(f"--from-json {e}") from None
        _print_tables(rows)
        if args.json:
            _bench_report.write(args.json, _bench_report.document(rows, meta))
            print(f"wrote {args.json}")
        return 1 if any(r.status == "error" for r in rows) else 0
    spaces, batches, precisions, providers = plan(args)
    options = _common.provider_options(args)
    if args.cache_dir:
        folder(args.cache_dir, "--cache-dir")
    if "trtpy" in providers and not harness.ep_registered():
        raise harness.EpUnavailableError(f"{harness.EP_NAME} is not registered with onnxruntime {ort.__version__}")
    gpu = _gpu(args.device_id)
    print(f"bench: {len(spaces)} model(s); runners {', '.join(providers)}; batch {', '.join(map(str, batches))}; "
          f"{', '.join(precisions)}; {harness.EP_NAME} on {gpu['name'] if gpu else 'the numpy reference backend'}",
          flush=True)
    rows: list[Row] = []
    models: list[dict[str, Any]] = []
    versions = _versions()
    t_start = time.perf_counter()
    for ns in spaces:
        tmp = tempfile.mkdtemp(prefix="ep_trtpy_bench_model_", dir=args.cache_dir)
        t0 = time.perf_counter()
        try:
            wl, info = _load_workload(ns, batches, tmp)
        except Exception as e:  # noqa: BLE001 - a model that cannot be loaded or exported is one error row
            if isinstance(e, UsageError):  # the user's file or --shapes: no row, the command's error
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            label = ns.source or ns.arch or ns.model or "?"
            row = Row("load", batches[0], precisions[0], label)
            row.fail(e)
            print(f"{label}: {row.note}", flush=True)
            rows.append(row)
            shutil.rmtree(tmp, ignore_errors=True)
            continue
        print(f"-- {wl.label}" + (f" ({info.get('exporter')} export)" if info.get("exporter") else ""), flush=True)
        try:
            rows.extend(bench_model(wl, batches, precisions, providers, args, options))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        versions.update(wl.versions)
        versions.update({k: info[k] for k in ("torchvision", "transformers") if k in info})
        info["seconds"] = time.perf_counter() - t0
        models.append(info)
    _print_tables(rows)
    print(f"\n{time.perf_counter() - t_start:.0f} s in all")
    if args.json:
        meta = {"suite": args.suite, "gpu": gpu or ({"name": versions.get("torch_device_name")}
                                                      if versions.get("torch_device_name") else None),
                "has_gpu": ep_trtpy.has_gpu(), "versions": versions, "host": platform.node(),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "iters": args.iters, "warmup": args.warmup,
                "torch_compile_mode": args.torch_compile_mode, "options": options, "models": models,
                "argv": sys.argv[1:]}
        _bench_report.write(args.json, _bench_report.document(rows, meta))
        print(f"wrote {args.json}")
    return 1 if any(r.status == "error" for r in rows) else 0

