"""``ep-trtpy partition MODEL.onnx``: which nodes the EP would claim, in which clusters, and why not the others.

The model is read as ONNX (no ORT graph optimizations applied, so ORT's own rewrites may change the picture a
little in a real session). ``--support-matrix`` prints the op support table generated from the support rules.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

NAME = "partition"
HELP = ("Show which nodes of an ONNX model TrtPyExecutionProvider claims, the clusters (one engine each) and the "
        "reason for every node left to ONNX Runtime; or print the op support matrix.")


def _spec(name: str) -> Any:
    """The ep_trtpy.options.Spec of a provider option."""
    from ep_trtpy import options

    return next(s for s in options.SPECS if s.name == name)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags; the two partition options take their parsing, default and help from ep_trtpy.options."""
    min_spec, excl_spec = _spec("min_subgraph_size"), _spec("op_types_to_exclude")
    p.add_argument("model", nargs="?", help="path of the ONNX model")
    p.add_argument("--min-subgraph-size", type=min_spec.parse, default=min_spec.default, metavar="N",
                   help=f"{min_spec.doc} (default {min_spec.default})")
    p.add_argument("--op-types-to-exclude", type=excl_spec.parse, default=excl_spec.default, metavar="A,B",
                   help=excl_spec.doc)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--support-matrix", action="store_true",
                   help="print the op support matrix (markdown, generated from the support rules) and exit")


def run(args: argparse.Namespace) -> int:
    from graph_partitioner import report
    from graph_partitioner.onnx_io import graph_from_onnx
    from graph_partitioner.partition import partition

    if args.support_matrix:
        print(report.support_matrix_markdown())
        return 0
    if not args.model:
        raise ValueError("a MODEL.onnx path is needed (or --support-matrix)")
    graph = graph_from_onnx(args.model)
    result = partition(graph, min_subgraph_size=args.min_subgraph_size,
                       op_types_to_exclude=args.op_types_to_exclude)
    if args.json:
        print(json.dumps(report.json_report(result, args.model), indent=2))
    else:
        print(report.text_report(result, args.model))
    return 0
