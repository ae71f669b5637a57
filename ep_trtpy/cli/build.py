"""``ep-trtpy build MODEL.onnx``: build (or load from the engine cache) the engine of every subgraph the EP claims,
and with ``-o CONTEXT.onnx`` write an EPContext model that loads without building.

It runs the model once through an ORT session with TrtPyExecutionProvider (inputs of the ``--shapes`` given,
seeded random values), so every engine comes from exactly the path a session takes: ORT's own graph
optimizations, the partition, the fused node's inputs, the engine cache key. Engines therefore land in
``--cache-dir`` under the names a session with ``engine_cache_path`` = that folder looks up, and what ORT's CPU
provider computes for the nodes the EP does not claim (shapes made by Shape/Expand chains, CumSum, NonZero...)
gives each claimed subgraph its real input shapes. One line per engine: nodes, input shapes, build time or cache
hit, the cache file.

``-o CONTEXT.onnx`` then creates a second session with ORT's session entries ``ep.context_enable=1``,
``ep.context_file_path`` and ``ep.context_embed_mode`` (``--embed-mode``), telling the EP the shapes the first
run saw (ep_trtpy.epcontext.learned_shapes): ORT writes the context model, each claimed subgraph an EPContext node
holding its engine (ep_trtpy/epcontext/). The engines come from the cache the first run filled.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ep_trtpy.cli import _common, _errors
from ep_trtpy.cli.harness import parse_shapes  # noqa: F401  (re-exported: `--shapes` parsing for build/profile)

NAME = "build"
HELP = ("Build (or load from the engine cache) the engine of every subgraph the EP claims in MODEL, the way a "
        "session does; with -o, write an EPContext model that loads without building.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="ONNX model file")
    _common.add_source_arguments(p)
    p.add_argument("--shapes", default="", help="concrete input shapes, e.g. 'input:1x3x224x224,mask:1x128' (every "
                                                "dynamic dimension but a batch dimension, which defaults to 1)")
    p.add_argument("--cache-dir", default="", help="engine cache folder (default: the engine_cache_path default)")
    p.add_argument("--backend", choices=("cuda", "reference"), default=None,
                   help="the backend sessions on this machine use (cuda where a GPU is usable, else the numpy "
                        "reference backend); another one is an error")
    p.add_argument("--min-subgraph-size", type=_common.option_type("min_subgraph_size"), default=1, metavar="N",
                   help="smallest cluster to build (min_subgraph_size)")
    p.add_argument("-o", "--output", default="", metavar="CONTEXT.onnx",
                   help="also write an EPContext model here: the model with each claimed subgraph replaced by a "
                        "node holding its engine, which a session loads without building")
    p.add_argument("--embed-mode", type=int, choices=(0, 1), default=1,
                   help="with -o: 1 = engines inside the context model (default), 0 = engine files beside it")
    p.add_argument("--verbose", action="store_true", help="log every build step (detailed_build_log)")
    p.add_argument("--dump-passes", default="", metavar="DIR",
                   help="write the graph after every pass that changed it as DIR/<engine>/<nnn>_<pass>.onnx")
    _common.add_option_flags(p)


def concrete_shapes(graph: Any, shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Static shapes of as many values as inference reaches from the model's inputs (unknown ops are skipped).
    Used by ``ep-trtpy profile``; ``build`` learns shapes by running the model instead."""
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


def _model(args: argparse.Namespace) -> tuple[str, Any, dict[str, tuple[int, ...]] | None]:
    """(ONNX file, its model, for --model SOURCE without --shapes the source's own input shapes)."""
    if bool(args.model) == bool(args.source):
        raise _errors.UsageError("give MODEL.onnx or --model SOURCE (one of them)")
    src = _common.real_source(args)
    if src is None:
        path = args.model or args.source
        return path, _errors.read_onnx(path), None
    from ep_trtpy.cli import _real_models

    exported = _real_models.export_in_subprocess(src, _common.export_dir(args), python=args.torch_python,
                                                 attn_implementation=args.attn_implementation)
    own = {k: tuple(v.shape) for k, v in _real_models.make_inputs(src, 1).items()}
    return exported.onnx_path, _errors.read_onnx(exported.onnx_path), None if args.shapes else own


@_common.reports_unavailable_ep(NAME)
def run(args: argparse.Namespace) -> int:
    import ep_trtpy
    from ep_trtpy import _host
    from ep_trtpy.cli import harness

    if args.cache_dir:
        _errors.folder(args.cache_dir, "--cache-dir")
    if args.dump_passes:
        _errors.folder(args.dump_passes, "--dump-passes")
    if args.output:
        _errors.folder(os.path.dirname(os.path.abspath(args.output)), "-o")
        _errors.output_file(args.output, "-o")
    path, model, own_shapes = _model(args)
    if args.output and os.path.abspath(args.output) == os.path.abspath(path):
        raise _errors.UsageError(f"-o {args.output} would overwrite the model itself; give another file")
    notes: list[str] = []
    shapes = _common.input_shapes(model, own_shapes or parse_shapes(args.shapes), 1, notes, batch_flags="--shapes")
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
    backend = "cuda" if ep_trtpy.has_gpu() else "reference"
    device = _device(args.backend or backend)
    if args.backend and args.backend != backend:
        raise _errors.UsageError(f"--backend {args.backend}: sessions on this machine run the {backend} backend, "
                                 f"and build makes the engines a session loads; leave --backend out")
    feeds = harness.random_feeds(model, shapes)
    del model  # the session reads the file itself
    dump = (lambda name: _dumper(args.dump_passes, name)) if args.dump_passes else None
    with _host.observe_builds(dump) as records:
        sess = harness.create_session(path, "trtpy", ep_options=raw)
        sess.run(None, feeds)
    placement = harness.node_assignment(sess)
    claimed = sum(1 for ep in placement.values() if ep == ep_trtpy.EP_NAME)
    print(f"{path}: claimed {claimed} of {len(placement)} nodes in {len(records)} subgraphs; backend {backend} "
          f"({device.name}); cache {options.cache_dir}")
    for k, rec in enumerate(records):
        got = rec.obtained
        what = "cache hit" if got.source == "cache" else f"built in {got.artifact.build_seconds:.3f} s"
        layers = got.artifact.plan.layers if got.artifact.plan is not None else got.artifact.graph.nodes
        ins = " ".join(f"{n}:{'x'.join(map(str, s)) or 'scalar'}" for n, s in rec.inputs.items())
        print(f"  engine {k}: {rec.nodes} nodes -> {len(layers)} {'layers' if got.artifact.plan else 'nodes'}, "
              f"inputs {ins or '(none)'}: {what} -> {got.path}")
    if args.verbose:
        for name, ep in placement.items():
            if ep != ep_trtpy.EP_NAME:
                print(f"  not claimed: {name} (runs on {ep})")
    built = sum(1 for r in records if r.obtained.source == "built")
    print(f"builds {built}, cache hits {len(records) - built}")
    if args.output:
        learned = {n: s for rec in records for n, s in rec.inputs.items()}
        text = ",".join(f"{k}:{'x'.join(str(d) for d in v.shape)}" for k, v in feeds.items())
        nodes = write_context_model(path, args.output, raw, learned, args.embed_mode, text)
        print(f"context model: {os.path.abspath(args.output)} ({nodes} EPContext nodes, embed mode "
              f"{args.embed_mode}{'' if args.embed_mode else ', engine files beside it'})")
    return 0


def write_context_model(model_path: str, output: str, ep_options: dict[str, str],
                        learned: dict[str, tuple[int, ...]], embed_mode: int = 1, model_shapes: str = "") -> int:
    """Have ORT write the EPContext model of ``model_path`` to ``output`` (a session with ep.context_enable=1),
    engines for the ``learned`` shapes of the claimed subgraphs' inputs. Returns the number of EPContext nodes."""
    import onnx

    from ep_trtpy.cli import harness
    from ep_trtpy.epcontext import learned_shapes

    target = os.path.abspath(output)
    if os.path.abspath(model_path) == target:
        raise ValueError(f"{output} would overwrite the model itself")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.exists(target):
        os.remove(target)  # some ORT releases refuse to write over an existing context model
    so = harness.session_options(config={"ep.context_enable": "1", "ep.context_file_path": target,
                                         "ep.context_embed_mode": str(embed_mode)})
    with learned_shapes(learned, model_shapes):
        harness.create_session(model_path, "trtpy", ep_options=ep_options, sess_options=so)
    if not os.path.exists(target):
        raise ValueError(f"ORT did not write the context model {target}")
    model = onnx.load(target, load_external_data=False)
    return sum(1 for n in model.graph.node if n.op_type == "EPContext")
