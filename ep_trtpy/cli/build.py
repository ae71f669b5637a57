"""``ep-trtpy build MODEL.onnx``: build (or load from the engine cache) the engine of every subgraph the EP claims.

It goes through the same path as a session: partition (graph_partitioner.partition), then for each cluster the
engine cache lookup and, on a miss, the build (ep_trtpy/builder/build.py get_or_build), saving into the cache
folder. It prints one line per engine (nodes, input shapes, build time or cache hit, the cache file).

Shapes: engines are built per concrete input shape. Give dynamic model inputs with ``--shapes
name:1x3x224x224,other:1x128``; shapes of values inside the model follow by shape inference.

Note: ORT applies its own basic graph optimizations before offering a model to the EP, so the subgraphs (and
their cache keys) of a session can differ from those built here from the raw file.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ep_trtpy.cli import _common, _errors
from ep_trtpy.cli.harness import parse_shapes  # noqa: F401  (re-exported: `--shapes` parsing for build/profile)

NAME = "build"
HELP = "Build (or load from the engine cache) the engine of every subgraph the EP would claim in MODEL."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="ONNX model file")
    p.add_argument("--shapes", default="", help="concrete input shapes, e.g. 'input:1x3x224x224,mask:1x128'")
    p.add_argument("--cache-dir", default="", help="engine cache folder (default: the engine_cache_path default)")
    p.add_argument("--backend", choices=("cuda", "reference"), default=None,
                   help="cuda (default when a GPU is usable) or the numpy reference backend")
    p.add_argument("--min-subgraph-size", type=_common.option_type("min_subgraph_size"), default=1, metavar="N",
                   help="smallest cluster to build (min_subgraph_size)")
    p.add_argument("--verbose", action="store_true", help="log every build step (detailed_build_log)")
    p.add_argument("--dump-passes", default="", metavar="DIR",
                   help="write the graph after every pass that changed it as DIR/<engine>/<nnn>_<pass>.onnx")
    _common.add_option_flags(p)


def concrete_shapes(graph: Any, shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Static shapes of as many values as inference reaches from the model's inputs (unknown ops are skipped)."""
    from ep_trtpy.ops.registry import Info, OpError, run_infer
    from graph_partitioner.ir import is_static

    known: dict[str, Info] = {}
    for v in graph.values.values():
        if v.const is not None:
            known[v.name] = Info(int(v.dtype), tuple(v.const.shape), v.const)
    for v in graph.inputs:
        shape = shapes.get(v.name, v.shape)
        if v.dtype is not None and is_static(shape):
            known[v.name] = Info(int(v.dtype), tuple(shape))  # type: ignore[arg-type]
    for n in graph.nodes:
        if any(v is not None and v.name not in known for v in n.inputs):
            continue
        try:
            outs = run_infer(n, [None if v is None else known[v.name] for v in n.inputs])
        except (OpError, ValueError, TypeError, KeyError, IndexError):
            continue
        for v, info in zip(n.outputs, outs):
            known[v.name] = info
    result = {name: tuple(int(d) for d in info.shape) for name, info in known.items()}
    for v in graph.values.values():
        if v.name not in result and is_static(v.shape):
            result[v.name] = tuple(v.shape)  # type: ignore[arg-type]
    return result


def _dumper(folder: str, engine: str) -> Any:
    """A pipeline dump hook writing each graph as ONNX into folder/engine/."""
    from graph_partitioner.onnx_io import graph_to_onnx

    target = os.path.join(folder, engine)
    os.makedirs(target, exist_ok=True)

    def dump(label: str, graph: Any) -> None:
        with open(os.path.join(target, f"{label}.onnx"), "wb") as f:
            f.write(graph_to_onnx(graph).SerializeToString())

    return dump


def _device(backend: str) -> Any:
    from ep_trtpy.engine.artifact import CPU, Device

    if backend != "cuda":
        return CPU
    import ep_trtpy
    from ep_trtpy import _kernels

    if not ep_trtpy.has_gpu():
        raise _errors.Unavailable("--backend cuda needs a usable CUDA device and this machine has none; use "
                                  "--backend reference")

    if not hasattr(_kernels, "device_info"):
        raise ValueError("this build of ep_trtpy's native runtime cannot describe the GPU (no device_info); use "
                         "--backend reference")
    info = _kernels.device_info(0)
    return Device(0, str(info["name"]), tuple(int(c) for c in info["cc"]))  # type: ignore[arg-type]


def run(args: argparse.Namespace) -> int:
    import ep_trtpy
    from ep_trtpy.builder.build import get_or_build
    from ep_trtpy.engine.cache import Counters
    from graph_partitioner import partition as partition_module
    from graph_partitioner.onnx_io import graph_from_onnx

    model = _errors.read_onnx(args.model)
    if args.cache_dir:
        _errors.folder(args.cache_dir, "--cache-dir")
    if args.dump_passes:
        _errors.folder(args.dump_passes, "--dump-passes")
    notes: list[str] = []
    shapes = _common.input_shapes(model, parse_shapes(args.shapes), 1, notes, batch_flags="--shapes")
    for line in notes:
        print(line, file=sys.stderr)
    raw = {"engine_cache_enable": "1", "min_subgraph_size": str(args.min_subgraph_size),
           "detailed_build_log": "1" if args.verbose else "0", **_common.provider_options(args)}
    if args.cache_dir:
        raw["engine_cache_path"] = args.cache_dir
    options = _common.parse_options(raw)
    if args.verbose:
        import logging

        logging.getLogger("ep_trtpy").setLevel(logging.INFO)
    backend = args.backend or ("cuda" if ep_trtpy.has_gpu() else "reference")
    device = _device(backend)
    graph = graph_from_onnx(model)
    known = concrete_shapes(graph, shapes)
    result = partition_module.partition(graph, options.min_subgraph_size, options.op_types_to_exclude)
    stem = os.path.splitext(os.path.basename(args.model))[0]
    counters = Counters()
    print(f"{args.model}: claimed {sum(len(c) for c in result.clusters)} of {len(graph.nodes)} nodes in "
          f"{len(result.clusters)} subgraphs; backend {backend} ({device.name}); cache {options.cache_dir}")
    for k, cluster in enumerate(result.clusters):
        sub = graph.subgraph(cluster, name=f"{stem}_{k}")
        missing = [v.name for v in sub.inputs if v.name not in known]
        if missing:
            raise ValueError(f"subgraph {k} needs concrete shapes for {', '.join(missing)}; give the model's "
                             f"dynamic inputs with --shapes name:1x3x224x224")
        sub_shapes = {v.name: known[v.name] for v in sub.inputs}
        got = get_or_build(sub, sub_shapes, options, backend, device, counters=counters,
                           dump=_dumper(args.dump_passes, sub.name) if args.dump_passes else None)
        what = "cache hit" if got.source == "cache" else f"built in {got.artifact.build_seconds:.3f} s"
        n_layers = len(got.artifact.plan.layers) if got.artifact.plan is not None else len(got.artifact.graph.nodes)
        ins = " ".join(f"{n}:{'x'.join(map(str, s)) or 'scalar'}" for n, s in sub_shapes.items())
        print(f"  engine {k}: {len(cluster)} nodes -> {n_layers} {'layers' if got.artifact.plan else 'nodes'}, "
              f"inputs {ins or '(none)'}: {what} -> {got.path}")
    if args.verbose:
        for name, reason in result.reasons.items():
            print(f"  not claimed: {name}: {reason}")
    st = counters.as_dict()
    print(f"builds {st['builds']}, cache hits {st['engine_cache_hits']}, misses {st['engine_cache_misses']}, "
          f"rejects {st['engine_cache_rejects']}")
    return 0
