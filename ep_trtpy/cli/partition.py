"""``ep-trtpy partition MODEL.onnx``: which nodes the EP would claim, in which clusters, and why not the others.

It counts what a session runs: ORT folds constants before it offers a model to an EP (Constant nodes become
initializers; a node whose inputs are all constants, and a Shape of a value whose shape is static, is computed
once), so those nodes are folded here too (:func:`fold_like_ort`, with ep_trtpy's numpy references) and reported
as folded, not as nodes. ORT keeps DequantizeLinear nodes of constants (QDQ models), and so does this count. On a
machine with a GPU the ops whose GPU kernels do not exist yet (the quantization family) are left to the CPU
provider, as a session there leaves them. The rest of ORT's basic optimizations (Identity and Dropout removal, ...)
are not applied, so a session may still differ by a few nodes.

The text report starts with the summary (claimed / left to the CPU provider / folded, then per op type), then one
line per cluster and the reasons nodes were left to the CPU provider; ``--verbose`` adds every cluster's nodes and
every unclaimed node. ``--support-matrix`` prints the op support table generated from the support rules.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

import numpy as np

from ep_trtpy.cli import _errors

NAME = "partition"
HELP = ("Show how many nodes of an ONNX model TrtPyExecutionProvider claims, in which clusters (one engine each), "
        "what is left to ONNX Runtime and why; or print the op support matrix.")

ORT_KEEPS = ("DequantizeLinear",)
"""Ops ORT's constant folding leaves in place even with constant inputs (QDQ models' weights)."""
FOLD_LIMIT = 1 << 22
"""Elements a folded output may have (ORT has no limit; this one keeps the numpy references' memory sane)."""


def _spec(name: str) -> Any:
    """The ep_trtpy.options.Spec of a provider option."""
    from ep_trtpy import options

    return next(s for s in options.SPECS if s.name == name)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags; the two partition options take their parsing, default and help from ep_trtpy.options."""
    from ep_trtpy.cli._common import option_type

    min_spec, excl_spec = _spec("min_subgraph_size"), _spec("op_types_to_exclude")
    p.add_argument("model", nargs="?", help="path of the ONNX model")
    p.add_argument("--min-subgraph-size", type=option_type("min_subgraph_size"), default=min_spec.default,
                   metavar="N", help=f"{min_spec.doc} (default {min_spec.default})")
    p.add_argument("--op-types-to-exclude", type=option_type("op_types_to_exclude"), default=excl_spec.default,
                   metavar="A,B", help=excl_spec.doc)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also list every cluster's nodes and every node left to the CPU provider")
    p.add_argument("--support-matrix", action="store_true",
                   help="print the op support matrix (markdown, generated from the support rules) and exit")


def fold_like_ort(graph: Any) -> Counter[str]:
    """Remove from ``graph`` the nodes ORT's constant folding computes before partitioning; returns how many of
    each op type were folded. Their outputs become constants, with values from ep_trtpy's numpy references (a
    node whose reference fails, or whose output would exceed FOLD_LIMIT elements, is counted as running)."""
    from ep_trtpy.builder.passes.fold_constants import NONDETERMINISTIC
    from ep_trtpy.ops.registry import all_ops, run_reference

    known = all_ops()
    before = Counter(n.key for n in graph.nodes)
    outputs = {id(v) for v in graph.outputs}
    for node in list(graph.nodes):
        if (node.key in NONDETERMINISTIC or node.key in ORT_KEEPS or not node.outputs
                or any(id(v) in outputs for v in node.outputs)):
            continue
        if node.key == "Constant":
            if node.outputs[0].const is not None:
                graph.remove_node(node)
            continue
        ins = [None if v is None else v.const for v in node.inputs]
        if node.key == "Shape" and node.inputs and node.inputs[0] is not None:
            shape = node.inputs[0].shape
            if shape is None or not all(isinstance(d, int) and d >= 0 for d in shape):
                continue
            ins = [np.broadcast_to(np.zeros((), np.uint8), shape)]  # only the shape matters
        elif any(v is not None and v.const is None for v in node.inputs):
            continue
        d = known.get(node.key)
        sizes = [np.prod(v.shape) if v.shape is not None and all(isinstance(x, int) for x in v.shape) else 0
                 for v in node.outputs]
        if d is None or d.ref is None or max(sizes) > FOLD_LIMIT:
            continue
        try:
            values = run_reference(node, ins)
        except Exception:  # noqa: BLE001 - folding here is only counting: a node that does not fold runs
            continue
        for v, value in zip(node.outputs, values):
            v.const = np.asarray(value)
            v.shape = tuple(int(x) for x in v.const.shape)
        graph.remove_node(node)
    return before - Counter(n.key for n in graph.nodes)


def backend_refusals() -> dict[str, str] | None:
    """What a session on this machine refuses beyond the support rules: the ops the GPU cannot run yet when a GPU is
    usable (the EP then runs on it), nothing on the reference backend."""
    try:
        import ep_trtpy

        gpu = ep_trtpy.has_gpu()
    except Exception:  # noqa: BLE001 - no native module: the reference backend's view
        gpu = False
    if not gpu:
        return None
    from ep_trtpy.builder.lowering.quantize import gpu_refusals

    return gpu_refusals()


def per_op(result: Any, folded: Counter[str]) -> dict[str, dict[str, int]]:
    """{op type: {"claimed", "cpu", "folded"}}, most frequent first."""
    claimed = Counter(n.key for n in result.claimed)
    cpu = Counter(n.key for n in result.unclaimed)
    ops = sorted(set(claimed) | set(cpu) | set(folded), key=lambda op: (-(claimed[op] + cpu[op] + folded[op]), op))
    return {op: {"claimed": claimed[op], "cpu": cpu[op], "folded": folded[op]} for op in ops}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _first(items: list[Any], n: int) -> str:
    """The first ``n`` items (values as 'name dtype[shape]'), then '...'."""
    from graph_partitioner.ir import Value, dtype_name, shape_str

    text = [f"{v.name} {dtype_name(v.dtype)}{shape_str(v.shape)}" if isinstance(v, Value) else str(v)
            for v in items[:n]]
    return ", ".join(text + (["..."] if len(items) > n else [])) or "none"


def summary_text(result: Any, folded: Counter[str], in_file: int, title: str, verbose: bool) -> str:
    from graph_partitioner import report
    from graph_partitioner.partition import op_histogram

    runs = len(result.graph.nodes)
    n_claimed, n_cpu, n_folded = len(result.claimed), len(result.unclaimed), sum(folded.values())
    k = len(result.clusters)
    lines = [f"{title}: {n_claimed} of {runs} nodes claimed by TrtPyExecutionProvider in {_plural(k, 'cluster')} "
             f"(one engine each), {n_cpu} left to the CPU provider, {n_folded} folded as constants "
             f"({_plural(in_file, 'node')} in the file)",
             f"min_subgraph_size {result.min_subgraph_size}, op_types_to_exclude "
             f"{','.join(result.op_types_to_exclude) or 'none'}", ""]
    table = per_op(result, folded)
    width = max([len("op type")] + [len(op) for op in table])
    lines.append(f"{'op type':<{width}}  claimed  on CPU  folded")
    for op, c in table.items():
        lines.append(f"{op:<{width}}  {c['claimed']:7d}  {c['cpu']:6d}  {c['folded']:6d}")
    if verbose:
        return "\n".join(lines + ["", report.text_report(result, title)])
    if result.clusters:
        lines += ["", "Clusters:"]
        for i, nodes in enumerate(result.clusters):
            ins, outs, _ = report.cluster_io(result, nodes)
            ops = [f"{op} x{c}" for op, c in op_histogram(nodes)]
            lines.append(f"  {i}: {_plural(len(nodes), 'node')} ({_first(ops, 6)}); inputs {_first(ins, 4)}; "
                         f"outputs {_first(outs, 4)}")
    if result.unclaimed:
        why = Counter((n.key, result.reasons.get(n.name, "no reason recorded")) for n in result.unclaimed)
        lines += ["", "Left to the CPU provider:"]
        for (op, reason), count in why.most_common(12):
            lines.append(f"  {op} x{count}: {reason}")
        if len(why) > 12:
            lines.append(f"  ... {len(why) - 12} more reasons (--verbose lists every node)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ep_trtpy.options import warn_unknown_op_types
    from graph_partitioner import report
    from graph_partitioner.onnx_io import graph_from_onnx
    from graph_partitioner.partition import partition

    if args.support_matrix:
        print(report.support_matrix_markdown())
        return 0
    if not args.model:
        raise _errors.UsageError("a MODEL.onnx path is needed (or --support-matrix)")
    model = _errors.read_onnx(args.model)
    warn_unknown_op_types(args.op_types_to_exclude)
    graph = graph_from_onnx(model)
    graph.model_path = args.model
    in_file = len(graph.nodes)
    folded = fold_like_ort(graph)
    result = partition(graph, min_subgraph_size=args.min_subgraph_size,
                       op_types_to_exclude=args.op_types_to_exclude, refused=backend_refusals())
    if args.json:
        doc = report.json_report(result, args.model)
        doc.update(nodes_in_file=in_file, folded=dict(folded), per_op=per_op(result, folded))
        print(json.dumps(doc, indent=2))
    else:
        print(summary_text(result, folded, in_file, args.model, args.verbose))
    return 0
