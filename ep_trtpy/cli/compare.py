"""``ep-trtpy compare``: TrtPyExecutionProvider against the CPU provider, output by output; with ``--mark-all``,
every tensor our engines materialize, layer by layer, naming the first layer that fails (``_mark_all.py``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import ep_trtpy
from ep_trtpy.cli import _common, harness
from ep_trtpy.cli._errors import UsageError, output_file

NAME = "compare"
HELP = ("Run MODEL.onnx (or --arch NAME) on TrtPyExecutionProvider and on the CPU provider with the same inputs and "
        "print per-output error statistics against per-dtype tolerances (exit 1 on a mismatch).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    _common.add_model_arguments(p)
    p.add_argument("--rtol", type=float, help="relative tolerance (default: per dtype)")
    p.add_argument("--atol", type=float, help="absolute tolerance (default: per dtype, times the output's max |value|)")
    p.add_argument("--absolute-atol", action="store_true", help="do not scale --atol by the output's max |value|")
    p.add_argument("--require-all-nodes", action="store_true",
                   help="also fail unless every node ran on TrtPyExecutionProvider")
    p.add_argument("--mark-all", action="store_true",
                   help="compare every tensor the engines materialize (each layer's outputs) with the CPU provider, "
                        "in execution order, and name the first layer whose error passes its tolerance (per "
                        "precision: fp32, tf32, fp16, bf16; --rtol/--atol replace them)")
    p.add_argument("--backend", choices=("cuda", "reference"),
                   help="with --mark-all: where the engines run (default: cuda when a GPU is usable)")
    p.add_argument("--json", metavar="OUT", help="also write the comparison as JSON")
    _common.add_option_flags(p)


def _tolerance(args: argparse.Namespace, relative_to_max: bool) -> harness.Tolerance | None:
    if args.rtol is None and args.atol is None:
        return None
    return harness.Tolerance(args.rtol if args.rtol is not None else 0.0,
                             args.atol if args.atol is not None else 0.0, relative_to_max)


def _write_json(path: str | None, doc: dict[str, Any]) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(doc, f, indent=1, default=float)


@_common.reports_unavailable_ep(NAME)
def run(args: argparse.Namespace) -> int:
    options = _common.provider_options(args)
    if args.json:
        output_file(args.json, "--json")
    if args.mark_all:
        return _mark_all(args, options)
    if args.backend:
        raise UsageError("--backend applies to --mark-all only (a session picks its backend)")
    model, label = _common.load_model(args)
    feeds = _common.make_feeds(args, model, args.batch)
    data = harness.prepare_model(model).SerializeToString()
    ours = harness.create_session(data, "trtpy", ep_options=options)
    math = harness.engine_math(options, ep_trtpy.has_gpu())  # fp16, bf16 and tf32 engines: the 16-bit criterion
    cpu = harness.create_session(data, "cpu")
    names = [o.name for o in ours.get_outputs()]
    got = ours.run(None, feeds)
    ref = cpu.run(None, feeds)
    tol = _tolerance(args, not args.absolute_atol)
    results = harness.compare_outputs(names, got, ref, tol, network=True, low_precision=math != "fp32")
    print(f"model {label}; {math} engines; " + _common.placement_summary(ours))
    print(f"{'output':24s} {'dtype':8s} {'shape':18s} {'max abs':>10s} {'max rel':>10s} {'cosine':>10s} "
          f"{'mismatched':>14s} {'rtol':>8s} {'atol':>8s}  verdict")
    for c in results:
        t = c.tolerance or harness.EXACT
        atol = f"{t.atol:g}{'*max' if t.relative_to_max else ''}"
        print(f"{c.name[:24]:24s} {c.dtype:8s} {str(list(c.shape))[:18]:18s} {c.max_abs:10.3g} {c.max_rel:10.3g} "
              f"{c.cosine:10.6f} {f'{c.mismatched}/{c.total}':>14s} {t.rtol:8g} {atol:>8s}  "
              f"{'ok' if c.ok else 'MISMATCH'}{' (' + c.note + ')' if c.note else ''}")
    placement = harness.node_assignment(ours)
    not_ours = [n for n, ep in placement.items() if ep != harness.EP_NAME]
    failed = [c for c in results if not c.ok]
    if args.require_all_nodes and not_ours:
        print(f"{len(not_ours)} nodes did not run on {harness.EP_NAME}: {', '.join(not_ours[:10])}")
        return 1
    verdict = "PASS" if not failed else f"FAIL: {len(failed)} of {len(results)} outputs differ"
    print(verdict)
    _write_json(args.json, {"schema": "ep_trtpy.compare/1", "model": label, "verdict": verdict,
                            "outputs": [{"name": c.name, "dtype": c.dtype, "shape": list(c.shape), "ok": c.ok,
                                         "max_abs": c.max_abs, "max_rel": c.max_rel, "cosine": c.cosine,
                                         "mismatched": c.mismatched, "total": c.total, "note": c.note}
                                        for c in results]})
    return 1 if failed else 0


def _mark_all(args: argparse.Namespace, raw: dict[str, str]) -> int:
    import ep_trtpy
    from ep_trtpy.cli import _mark_all as mark

    if args.require_all_nodes:
        raise UsageError("--require-all-nodes is about a session's placement; --mark-all partitions the model "
                         "itself and lists what it leaves to the CPU provider")
    options = _common.parse_options(raw)
    backend_name = args.backend or ("cuda" if ep_trtpy.has_gpu() else "reference")
    model, label = _common.load_model(args)
    feeds = _common.make_feeds(args, model, args.batch)
    backend = mark.CudaBackend() if backend_name == "cuda" else mark.ReferenceBackend()
    report = mark.debug(model, feeds, options, backend, label, _tolerance(args, not args.absolute_atol))
    print(f"model {label}; {report.precision} engines on the {backend_name} backend; {report.engines} engine(s), "
          f"{len(report.rows)} values compared, {len(report.skipped)} inside fused layers or folded, "
          f"{report.cpu_nodes} node(s) left to the CPU provider (not compared)")
    print(f"{'#':>4s}  {'value':32s} {'layer':32s} {'op':22s} {'shape':18s} {'prec':5s} {'max abs':>9s} "
          f"{'max rel':>9s} {'rel rms':>9s} {'cosine':>9s}  verdict")
    bad = report.first_failure
    for i, r in enumerate(report.rows):
        mark_first = "  <- first failure" if r is bad else ""
        verdict = "FAIL" if not r.ok else "pass" if r.total_ok else "inherits"
        detail = "; ".join(x for x in (mark.origin(r)[2:], r.note) if x)
        print(f"{i:4d}  {_cut(r.value, 32):32s} {_cut(r.layer, 32):32s} {_cut(r.op, 22):22s} "
              f"{_cut(str(r.shape), 18):18s} {r.precision:5s} {r.max_abs:9.3g} {r.max_rel:9.3g} {r.rms:9.3g} "
              f"{r.cosine:9.6f}  {verdict}{' (' + detail + ')' if detail else ''}{mark_first}")
    print(report.verdict())
    _write_json(args.json, report.to_dict())
    return 0 if bad is None else 1


def _cut(text: str, width: int) -> str:
    """`text` in at most `width` characters (the middle elided: names differ at both ends)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "~" + text[len(text) - (width - 1 - head):]
