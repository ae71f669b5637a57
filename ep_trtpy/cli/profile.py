"""``ep-trtpy profile MODEL.onnx``: per-layer GPU time of the engines the EP would build for MODEL.

Builds each claimed subgraph's engine the way ``ep-trtpy build`` does (partition, then build for the concrete
``--shapes``), feeds it random inputs, and times every layer with CUDA events (``Engine.profile_layers``: the
launch list layer by layer, mean over ``--iters`` runs after a warm-up). Prints the slowest layers and the time
per kernel kind, and the end-to-end time of one run launched layer by layer and replayed as a CUDA graph, so the
launch overhead shows. Needs a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from typing import Any

import numpy as np

NAME = "profile"
HELP = "Per-layer GPU time of the engines the EP builds for MODEL (CUDA events)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="ONNX model file (or --arch)")
    p.add_argument("--arch", default="", help="a generated architecture instead of a file (resnet50, bert, ...)")
    p.add_argument("--batch", type=int, default=1, help="with --arch: batch size")
    p.add_argument("--shapes", default="", help="concrete input shapes, e.g. 'input:1x3x224x224'")
    p.add_argument("--fp16", action="store_true", help="FP16 engines (fp16_enable)")
    p.add_argument("--iters", type=int, default=20, help="timed runs")
    p.add_argument("--top", type=int, default=15, help="slowest layers to list")
    p.add_argument("--json", default="", metavar="OUT", help="write every layer's time as JSON")


def _model(args: argparse.Namespace) -> tuple[Any, dict[str, tuple[int, ...]]]:
    import onnx

    from ep_trtpy.cli.build import parse_shapes

    if args.arch:
        from ep_trtpy import models

        model = models.build(args.arch)
        shapes = {k: tuple(v.shape) for k, v in models.make_feeds(args.arch, batch=args.batch).items()}
        shapes.update(parse_shapes(args.shapes))
        return model, shapes
    if not args.model or not os.path.exists(args.model):
        raise FileNotFoundError(f"no such model file: {args.model}")
    return onnx.load(args.model), parse_shapes(args.shapes)


def run(args: argparse.Namespace) -> int:
    import cupy as cp

    import ep_trtpy
    from ep_trtpy.builder.build import build
    from ep_trtpy.cli.build import _device, concrete_shapes
    from ep_trtpy.options import parse
    from ep_trtpy.runtime import _prepare_io, profile_engine
    from graph_partitioner import partition as partition_module
    from graph_partitioner.ir import Graph, np_dtype

    if not ep_trtpy.has_gpu():
        raise ValueError("profile needs a CUDA GPU (ep_trtpy.has_gpu() is False)")
    model, shapes = _model(args)
    options = parse({"fp16_enable": "1" if args.fp16 else "0"})
    graph = Graph.from_onnx(model)
    known = concrete_shapes(graph, shapes)
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
        per_kernel: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
        for layer, t in zip(plan.layers, ms):
            per_kernel[layer.kernel][0] += t
            per_kernel[layer.kernel][1] += 1
        total = sum(ms)
        print(f"engine {k}: {len(cluster)} nodes -> {len(plan.layers)} layers; inputs "
              f"{', '.join(f'{v.name}{list(s)}' for v, s in zip(sub.inputs, art.input_shapes))}; "
              f"{'fp16' if args.fp16 else 'fp32'}")
        print(f"  sum of layer times {total:.3f} ms; one run layer by layer {layer_by_layer:.3f} ms, as a CUDA "
              f"graph {replayed:.3f} ms (wall clock, {args.iters} runs)")
        print(f"  {'kernel':14s} {'layers':>6s} {'ms':>9s} {'share':>6s}")
        for name, (t, n) in sorted(per_kernel.items(), key=lambda kv: -kv[1][0]):
            print(f"  {name:14s} {n:6d} {t:9.3f} {t / max(total, 1e-12):6.1%}")
        order = sorted(range(len(ms)), key=lambda i: -ms[i])[: args.top]
        print(f"  slowest layers:")
        for i in order:
            lay = plan.layers[i]
            outs = ",".join(str(list(plan.tensors[o].shape)) for o in lay.outputs)
            print(f"    {ms[i]:8.4f} ms  {lay.kernel:12s} tactic {lay.tactic:3d}  {lay.name[:48]:48s} -> {outs}")
        report.append({"engine": k, "layers": [{"name": lay.name, "kernel": lay.kernel, "tactic": lay.tactic,
                                                "ms": t} for lay, t in zip(plan.layers, ms)],
                       "layer_by_layer_ms": layer_by_layer, "cuda_graph_ms": replayed})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0
