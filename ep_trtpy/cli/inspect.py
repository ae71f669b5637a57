"""``ep-trtpy inspect ENGINE``: what an engine file holds.

Prints the header (format, producers, backend, device, key, graph hash, shapes, options, build time), the layers
(kernel, name, chosen tactic by name and its time when the build timed it or took it from the timing cache, layout,
precision, workspace, and which original ONNX nodes each one implements), the tensor table
and the memory plan (activation arena and weights bytes). For reference-backend engines the layers are the
optimized graph's nodes. ``--json`` prints the same as one JSON object; ``--html FILE`` also writes a self-contained
HTML report (layers, and the memory plan over time as a chart: ``_html_report.py``). A file that is not a valid
engine gives a one-line error (exit status 2).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

NAME = "inspect"
LAYOUT_OPS = ("Conv", "FusedConv", "Pool", "MaxPool", "AveragePool")
"""Ops whose layers show a layout (NHWC when channels_last, else NCHW)."""
HELP = "Show an engine file: header, layers, fusions, tactics, precisions, tensors and memory."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("engine", help="engine file (TrtPy_*.engine)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report: each layer's kernel, "
                                                  "tactic, precision and layout, and the memory plan over time")


def _graph_layers(model: Any, fusions: dict[str, list[str]]) -> list[dict[str, Any]]:
    from graph_partitioner.ir import dtype_name

    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(model.graph.value_info) + list(model.graph.output)}
    layers = []
    for n in model.graph.node:
        op = f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
        out_t = types.get(n.output[0]) if n.output else None
        last = any(a.name == "channels_last" and a.i == 1 for a in n.attribute)
        layout = "NHWC" if last else "NCHW" if n.op_type in LAYOUT_OPS else ""
        layers.append({"kernel": op, "name": n.name, "tactic": None, "tactic_name": "", "tactic_ms": None,
                       "tactic_source": None, "layout": layout, "precision": dtype_name(out_t) if out_t else "?",
                       "workspace": 0, "fused": fusions.get(n.name, [n.name])})
    return layers


def describe_plan(plan: Any, fusions: dict[str, list[str]]) -> dict[str, Any]:
    """The layers, tensors and memory of an engine plan, as JSON-able dicts (shared with ``profile``). Each
    activation carries ``life``: the first and last layer that touch it (a view keeps what it views alive)."""
    from ep_trtpy.builder.memory_plan import lifetimes
    from graph_partitioner.ir import dtype_name

    life = lifetimes(plan)
    layers = [{"kernel": lay.kernel, "name": lay.name, "tactic": lay.tactic, "tactic_name": lay.tactic_name,
               "tactic_ms": lay.meta.get("tactic_ms"), "tactic_source": lay.meta.get("tactic_source"),
               "layout": lay.meta.get("layout"), "precision": lay.meta.get("precision", "?"),
               "workspace": lay.workspace,
               "fused": lay.meta.get("fused", fusions.get(lay.name, [lay.name] if lay.name else [])),
               "inputs": lay.inputs, "outputs": lay.outputs} for lay in plan.layers]
    tensors = [{"id": t.id, "name": t.name, "dtype": dtype_name(t.dtype), "shape": list(t.shape), "kind": t.kind,
                "index": t.index, "offset": t.offset, "nbytes": t.nbytes,
                "life": list(life[t.id]) if t.id in life else None} for t in plan.tensors]
    memory = {"arena_bytes": plan.arena_bytes, "weights_bytes": plan.weights_bytes,
              "workspace_bytes": max((lay.workspace for lay in plan.layers), default=0)}
    return {"layers": layers, "tensors": tensors, "memory": memory}


def describe(path: str) -> dict[str, Any]:
    """Everything inspect shows, as a JSON-able dict (raises EngineFormatError for a bad file)."""
    from ep_trtpy.engine.format import decode

    with open(path, "rb") as f:
        data = f.read()
    dec = decode(data)
    h = dec.header
    header = {k: v for k, v in h.items() if k not in ("plan", "fusions", "passes")}
    out: dict[str, Any] = {"file": os.path.abspath(path), "bytes": len(data), "header": header,
                           "passes": h.get("passes", [])}
    fusions = h.get("fusions", {})
    if dec.plan is not None:
        out.update(describe_plan(dec.plan, fusions))
    else:
        model = dec.model()
        out["layers"] = _graph_layers(model, fusions)
        from onnx import numpy_helper

        const_bytes = 0
        for t in model.graph.initializer:
            try:
                const_bytes += int(numpy_helper.to_array(t).nbytes)
            except Exception:  # a stripped or odd initializer: count what is stored
                const_bytes += len(t.raw_data)
        out["tensors"] = []
        out["memory"] = {"arena_bytes": None, "weights_bytes": const_bytes, "workspace_bytes": 0}
    return out


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n} B ({n / 2**20:.2f} MiB)"


def _tactic(lay: dict[str, Any]) -> str:
    """The tactic's name, else its number ('-' for a layer without tactics); '*' marks a timing-cache choice."""
    if lay["tactic"] is None:
        return "-"
    text = lay["tactic_name"] or str(lay["tactic"])
    return f"*{text}" if lay["tactic_source"] == "timing cache" else text


def _ms(lay: dict[str, Any]) -> str:
    return "-" if lay["tactic_ms"] is None else f"{float(lay['tactic_ms']):.4f}"


def _print_text(d: dict[str, Any]) -> None:
    from graph_partitioner.ir import dtype_name

    h = d["header"]
    dev = h["device"]
    where = f"{dev['name']} (sm{dev['cc'][0]}{dev['cc'][1]})" if h["backend"] == "cuda" else "cpu (numpy reference)"
    print(f"engine      {d['file']} ({d['bytes']} bytes)")
    print(f"format      v{h['format_version']}, backend {h['backend']}, device {where}")
    print(f"producers   {', '.join(f'{k} {v}' for k, v in sorted(h['producers'].items()))}")
    print(f"key         {h['key']}")
    print(f"graph hash  {h['graph_hash']}")
    print(f"built in    {h['build_seconds']:.3f} s")
    print(f"options     {json.dumps(h['options'], sort_keys=True)}")
    for what in ("inputs", "outputs"):
        print(f"{what:<11s} " + ", ".join(f"{io['name']} {dtype_name(io['dtype'])}{io['shape']}" for io in h[what]))
    print(f"\nlayers ({len(d['layers'])})")
    print(f"  {'#':>3s}  {'kernel':<24s} {'name':<32s} {'tactic':<28s} {'ms':>8s} {'layout':<6s} {'precision':<9s} "
          f"{'workspace':>9s}  fused from")
    for i, lay in enumerate(d["layers"]):
        print(f"  {i:>3d}  {lay['kernel']:<24s} {lay['name'][:32]:<32s} {_tactic(lay)[:28]:<28s} {_ms(lay):>8s} "
              f"{lay['layout'] or '-':<6s} {lay['precision']:<9s} {lay['workspace']:>9d}  {', '.join(lay['fused'])}")
    if any(lay["tactic_source"] == "timing cache" for lay in d["layers"]):
        print("  (*: tactic from the timing cache; ms: its time when it was timed)")
    if d["tensors"]:
        print(f"\ntensors ({len(d['tensors'])})")
        for t in d["tensors"]:
            where = {"input": f"input {t['index']}", "output": f"output {t['index']}",
                     "alias": f"view of {t['index']} +{t['offset']}"}.get(t["kind"], f"{t['kind']} @{t['offset']}")
            print(f"  {t['id']:>4d}  {t['name'][:40]:<40s} {t['dtype']:<8s} {str(t['shape']):<20s} {where:<22s} "
                  f"{t['nbytes']} B")
    m = d["memory"]
    print(f"\nmemory      arena {_mib(m['arena_bytes'])}, weights {_mib(m['weights_bytes'])}, largest workspace "
          f"{m['workspace_bytes']} B")
    if d["passes"]:
        changed = [p for p in d["passes"] if p.get("changed")]
        total = sum(float(p.get("seconds", 0.0)) for p in d["passes"])
        print(f"passes      {len(d['passes'])} runs, {len(changed)} changed the graph, {total * 1e3:.1f} ms: "
              + ", ".join(f"{p['pass']} {float(p['seconds']) * 1e3:.1f} ms" for p in changed))


def run(args: argparse.Namespace) -> int:
    from ep_trtpy.cli._errors import UsageError, input_file, output_file
    from ep_trtpy.engine.format import EngineFormatError

    input_file(args.engine, "engine file")
    if args.html:
        output_file(args.html, "--html")
    try:
        d = describe(args.engine)
    except EngineFormatError as e:
        raise UsageError(f"engine file '{args.engine}': {e}") from None
    if args.json:
        print(json.dumps(d, indent=1, sort_keys=True))
    else:
        _print_text(d)
    if args.html:
        from ep_trtpy.cli import _html_report

        _html_report.write(args.html, _html_report.inspect_page(d))
        print(f"HTML report: {args.html}", file=sys.stderr)
    return 0
