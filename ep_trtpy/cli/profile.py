"""``ep-trtpy profile MODEL.onnx``: per-layer GPU time of the engines the EP would build for MODEL.

Builds each claimed subgraph's engine the way ``ep-trtpy build`` does (partition, then build for the concrete
``--shapes``), feeds it random inputs, and times every layer with CUDA events (``Engine.profile_layers``: the
launch list layer by layer, mean over ``--iters`` runs after a warm-up). Prints the slowest layers and the time
per kernel kind, and the end-to-end time of one run launched layer by layer and replayed as a CUDA graph, so the
launch overhead shows. Needs a GPU.

Each layer also shows what it achieved against the H200's measured limits (``_roofline.py``): TFLOP/s for GEMMs,
convolutions and attention, GB/s (bytes of inputs and outputs) for every other layer, and its share of the
roofline (100 %: at the limit), so the next gap is visible. The model is an ONNX file, ``--arch NAME`` or
``--model torchvision:resnet50 | torchvision:mobilenet_v2 | hf:bert-base`` (exported with torch in a subprocess).

``--html FILE`` writes a self-contained HTML report (``_html_report.py``): per engine, every layer with its time as
a bar, kernel, tactic, precision and layout, and the memory plan over time. ``--json`` holds everything the report
shows, so ``--from-json PROFILE.json --html FILE`` renders a saved profile again on any machine, without a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from typing import Any

import numpy as np

from ep_trtpy.cli import _common, _roofline
from ep_trtpy.cli._errors import Unavailable, UsageError, output_file, positive_int

NAME = "profile"
HELP = "Per-layer GPU time of the engines the EP builds for MODEL (CUDA events)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    _common.add_model_arguments(p)
    p.add_argument("--fp16", action="store_true", help="shorthand for --precision fp16")
    p.add_argument("--precision", default="", help="fp32 (TF32 allowed), fp32-strict, fp16 or bf16 (default fp32)")
    p.add_argument("--iters", type=positive_int, default=20, help="timed runs")
    p.add_argument("--top", type=int, default=15, help="slowest layers to list")
    p.add_argument("--json", default="", metavar="OUT", help="write every layer's time as JSON")
    p.add_argument("--html", default="", metavar="FILE",
                   help="write a self-contained HTML report: per-layer time bars, kernel, tactic, precision and "
                        "layout, and the memory plan over time")
    p.add_argument("--from-json", default="", metavar="PROFILE",
                   help="render the --json of an earlier profile into --html (no model, no GPU needed)")
    _common.add_option_flags(p, exclude=_common.PRECISION_OPTIONS)  # --precision sets these


def _model(args: argparse.Namespace) -> tuple[Any, dict[str, np.ndarray]]:
    """The model and its feeds (their shapes are the engines' shapes; their values feed the engines' inputs)."""
    model, _ = _common.load_model(args)
    return model, _common.make_feeds(args, model, args.batch)


def _options(args: argparse.Namespace) -> tuple[Any, str]:
    from ep_trtpy.cli.bench import PRECISIONS, precision_options

    precision = args.precision or ("fp16" if args.fp16 else "fp32")
    if precision not in PRECISIONS:
        raise UsageError(f"--precision accepts {', '.join(PRECISIONS)}, got '{precision}'")
    try:
        extra, _ = precision_options(precision)
    except LookupError as e:
        raise UsageError(f"--precision {precision}: {e}") from None
    return _common.parse_options(dict(_common.provider_options(args), **extra)), precision


def _work_columns(plan: Any, ms: list[float]) -> list[dict[str, Any]]:
    """Per layer: its work and what it achieved against the H200's limits."""
    out = []
    for layer, t in zip(plan.layers, ms):
        work = _roofline.layer_work(layer, plan.tensors)
        got = _roofline.achieved(work, t)
        out.append({"flops": work.flops, "bytes": work.bytes, "achieved": got.value, "unit": got.unit,
                    "roofline_ms": _roofline.roofline_ms(work), "roofline_share": got.share, "text": got.text()})
    return out


def engine_report(k: int, plan: Any, fusions: dict[str, list[str]], ms: list[float], precision: str,
                  inputs: str, layer_by_layer: float | None, replayed: float | None) -> dict[str, Any]:
    """One engine's profile as JSON-able data: every layer (what inspect shows, its time, its work and what it
    achieved), the tensors and the memory plan; what ``--json`` writes and ``--html`` draws."""
    from ep_trtpy.cli.inspect import describe_plan

    work = _work_columns(plan, ms)
    d = describe_plan(plan, fusions)
    for lay, t, w in zip(d["layers"], ms, work):
        lay.update({"ms": t, **{key: v for key, v in w.items() if key != "text"}})
    return {"engine": k, "precision": precision, "inputs": inputs, "limits": _roofline.H200.source,
            "layer_by_layer_ms": layer_by_layer, "cuda_graph_ms": replayed,
            "roofline_ms": sum(w["roofline_ms"] for w in work), **d}


def _from_json(args: argparse.Namespace) -> int:
    from ep_trtpy.cli import _html_report
    from ep_trtpy.cli._errors import input_file

    if not args.html:
        raise UsageError("--from-json renders a saved profile into an HTML report: give --html FILE")
    input_file(args.from_json, "--from-json file")
    try:
        with open(args.from_json) as f:
            report = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"--from-json file '{args.from_json}' is not JSON ({e})") from None
    if not isinstance(report, list) or not all(isinstance(e, dict) and isinstance(e.get("layers"), list)
                                               for e in report):
        raise UsageError(f"--from-json file '{args.from_json}' is not the --json of ep-trtpy profile (a list of "
                         f"engines, each with its layers)")
    _html_report.write(args.html, _html_report.profile_page(report, os.path.basename(args.from_json)))
    print(f"HTML report: {args.html} ({len(report)} engine(s))")
    return 0


def run(args: argparse.Namespace) -> int:
    import ep_trtpy
    from ep_trtpy.builder.build import build
    from ep_trtpy.cli.build import _device, concrete_shapes
    from ep_trtpy.runtime import _prepare_io, profile_engine
    from graph_partitioner import partition as partition_module
    from graph_partitioner.ir import np_dtype
    from graph_partitioner.onnx_io import graph_from_onnx

    if args.html:
        output_file(args.html, "--html")
    if args.from_json:
        return _from_json(args)
    options, precision = _options(args)
    if args.json:
        output_file(args.json, "--json")
    loaded = None if _common.real_source(args) else _model(args)  # a file or --arch: inputs checked first
    if not ep_trtpy.has_gpu():
        raise Unavailable("profile needs a CUDA GPU and this machine has none usable (ep_trtpy.has_gpu() is False)")
    model, feeds = loaded or _model(args)
    import cupy as cp  # after the GPU check: without one, the one-line error above

    graph = graph_from_onnx(model)
    known = concrete_shapes(graph, {k: tuple(v.shape) for k, v in feeds.items()})
    result = partition_module.partition(graph, options.min_subgraph_size, options.op_types_to_exclude)
    device = _device("cuda")
    rng = np.random.default_rng(0)
    report: list[dict[str, Any]] = []
    for k, cluster in enumerate(result.clusters):
        sub = graph.subgraph(cluster, name=f"engine{k}")
        art = build(sub, {v.name: known[v.name] for v in sub.inputs}, options, "cuda", device)
        engine, plan = art.engine, art.plan
        inputs = []
        for v, shape in zip(sub.inputs, art.input_shapes):
            dt = np_dtype(int(v.dtype))
            if v.name in feeds and tuple(feeds[v.name].shape) == tuple(shape):
                arr = feeds[v.name]  # the model's own inputs (token ids in range, a real attention mask)
            else:
                arr = rng.integers(0, 2, shape) if dt.kind in "iub" else rng.standard_normal(shape)
            inputs.append(cp.asarray(arr.astype(dt)))
        ms = profile_engine(engine, inputs, iterations=args.iters)
        stream = cp.cuda.Stream(non_blocking=True)
        ins, outs = _prepare_io(engine, inputs, stream)  # fixed addresses, as with IOBinding
        in_ptrs, out_ptrs = [int(x.data.ptr) for x in ins], [int(y.data.ptr) for y in outs]

        def timed(graph_on: bool) -> float:
            engine.cuda_graph = graph_on
            for _ in range(3):
                engine.run(in_ptrs, out_ptrs, int(stream.ptr))
            stream.synchronize()
            t0 = time.perf_counter()
            for _ in range(args.iters):
                engine.run(in_ptrs, out_ptrs, int(stream.ptr))
            stream.synchronize()
            return (time.perf_counter() - t0) / args.iters * 1e3

        layer_by_layer, replayed = timed(False), timed(True)
        work = _work_columns(plan, ms)
        per_kernel: dict[str, list[float]] = defaultdict(lambda: [0.0, 0, 0.0])
        for layer, t, w in zip(plan.layers, ms, work):
            per_kernel[layer.kernel][0] += t
            per_kernel[layer.kernel][1] += 1
            per_kernel[layer.kernel][2] += w["roofline_ms"]
        total, bound = sum(ms), sum(w["roofline_ms"] for w in work)
        print(f"engine {k}: {len(cluster)} nodes -> {len(plan.layers)} layers; inputs "
              f"{', '.join(f'{v.name}{list(s)}' for v, s in zip(sub.inputs, art.input_shapes))}; {precision}")
        print(f"  sum of layer times {total:.3f} ms; one run layer by layer {layer_by_layer:.3f} ms, as a CUDA "
              f"graph {replayed:.3f} ms (wall clock, {args.iters} runs); at the H200's roofline {bound:.3f} ms "
              f"({bound / max(total, 1e-12):.1%} of the layer times)")
        print(f"  {'kernel':14s} {'layers':>6s} {'ms':>9s} {'share':>6s} {'roofline':>8s}")
        for name, (t, n, b) in sorted(per_kernel.items(), key=lambda kv: -kv[1][0]):
            print(f"  {name:14s} {n:6d} {t:9.3f} {t / max(total, 1e-12):6.1%} {b / max(t, 1e-12):8.1%}")
        order = sorted(range(len(ms)), key=lambda i: -ms[i])[: args.top]
        print("  slowest layers:")
        print(f"    {'ms':>8s}     {'kernel':12s} {'tactic':24s} {'achieved':>16s} {'roof':>6s}  layer")
        for i in order:
            lay = plan.layers[i]
            outs = ",".join(str(list(plan.tensors[o].shape)) for o in lay.outputs)
            tactic = (lay.tactic_name or str(lay.tactic))[:24]
            print(f"    {ms[i]:8.4f} ms  {lay.kernel:12s} {tactic:24s} {work[i]['text']}  {lay.name[:48]:48s} "
                  f"-> {outs}")
        inputs_text = ", ".join(f"{v.name}{list(s)}" for v, s in zip(sub.inputs, art.input_shapes))
        report.append(engine_report(k, plan, art.fusions, ms, precision, inputs_text, layer_by_layer, replayed))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    if args.html:
        from ep_trtpy.cli import _html_report

        label = args.arch or os.path.basename(args.model or args.source or "")
        _html_report.write(args.html, _html_report.profile_page(report, label))
        print(f"HTML report: {args.html}")
    return 0
