"""``ep-trtpy compare``: TrtPyExecutionProvider against the CPU provider, output by output."""

from __future__ import annotations

import argparse

from ep_trtpy.cli import _common, harness
from ep_trtpy.options import parse

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
    _common.add_option_flags(p)


@_common.reports_unavailable_ep(NAME)
def run(args: argparse.Namespace) -> int:
    options = _common.provider_options(args)
    model, label = _common.load_model(args)
    feeds = _common.make_feeds(args, model, args.batch)
    data = harness.prepare_model(model).SerializeToString()
    fp16 = parse(options).fp16_enable  # float16 engines are judged with fp16 tolerances
    ours = harness.create_session(data, "trtpy", ep_options=options)
    cpu = harness.create_session(data, "cpu")
    names = [o.name for o in ours.get_outputs()]
    got = ours.run(None, feeds)
    ref = cpu.run(None, feeds)
    tol = None
    if args.rtol is not None or args.atol is not None:
        tol = harness.Tolerance(args.rtol if args.rtol is not None else 0.0,
                                args.atol if args.atol is not None else 0.0, not args.absolute_atol)
    results = harness.compare_outputs(names, got, ref, tol, network=True, fp16_engine=fp16)
    print(f"model {label}; {'fp16' if fp16 else 'fp32'} engines; " + _common.placement_summary(ours))
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
    print("PASS" if not failed else f"FAIL: {len(failed)} of {len(results)} outputs differ")
    return 1 if failed else 0
