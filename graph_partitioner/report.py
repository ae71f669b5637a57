"""The partition report (text and JSON) and the support matrix generated from the rules.

Text report: one block per cluster (node count, op histogram, runtime inputs, outputs, constants, claimed nodes),
then every node not claimed with its reason, then the summary line ("42/45 nodes claimed in 2 clusters").
"""

from __future__ import annotations

import textwrap
from typing import Any

from graph_partitioner.ir import BOOL, FLOAT, FLOAT16, INT8, INT32, INT64, UINT8, Node, Value, dtype_name, shape_str
from graph_partitioner.partition import PartitionResult, op_histogram

_DTYPE_ORDER = [FLOAT, FLOAT16, INT32, INT64, BOOL, INT8, UINT8]


def _value_text(v: Value) -> str:
    return f"{v.name} {dtype_name(v.dtype)}{shape_str(v.shape)}"


def cluster_io(result: PartitionResult, nodes: list[Node]) -> tuple[list[Value], list[Value], list[Value]]:
    """(runtime inputs, outputs, constants) of a cluster, each in first-use order.

    Inputs are the non-constant values the cluster reads from outside; outputs the values it produces that are
    read outside it or are graph outputs.
    """
    ids = {id(n) for n in nodes}
    graph_outputs = {id(v) for v in result.graph.outputs}
    inputs: dict[int, Value] = {}
    consts: dict[int, Value] = {}
    outputs: dict[int, Value] = {}
    for n in nodes:
        for v in n.inputs:
            if v is None or (v.producer is not None and id(v.producer) in ids):
                continue
            (consts if v.const is not None else inputs).setdefault(id(v), v)
        for v in n.outputs:
            if id(v) in graph_outputs or any(id(c) not in ids for c, _ in v.consumers):
                outputs.setdefault(id(v), v)
    return list(inputs.values()), list(outputs.values()), list(consts.values())


def _wrap(label: str, items: list[str], indent: str = "  ") -> list[str]:
    if not items:
        return [f"{indent}{label}: none"]
    text = f"{indent}{label}: " + ", ".join(items)
    return textwrap.wrap(text, width=118, subsequent_indent=indent + "    ", break_on_hyphens=False)


def text_report(result: PartitionResult, title: str = "") -> str:
    g = result.graph
    lines: list[str] = []
    opset = g.opsets.get("", None)
    head = title or g.model_path or g.name
    lines.append(f"Partition of {head}: {len(g.nodes)} nodes (opset {opset}), min_subgraph_size "
                 f"{result.min_subgraph_size}, op_types_to_exclude {','.join(result.op_types_to_exclude) or 'none'}")
    for k, nodes in enumerate(result.clusters):
        ins, outs, consts = cluster_io(result, nodes)
        nbytes = sum(int(v.const.nbytes) for v in consts if v.const is not None)
        lines.append("")
        lines.append(f"Cluster {k}: {len(nodes)} node{'s' if len(nodes) != 1 else ''}")
        lines += _wrap("ops", [f"{op} x{c}" for op, c in op_histogram(nodes)])
        lines += _wrap("inputs", [_value_text(v) for v in ins])
        lines += _wrap("outputs", [_value_text(v) for v in outs])
        lines.append(f"  constants: {len(consts)} ({nbytes / 1e6:.2f} MB)")
        lines += _wrap("nodes", [f"{n.name} ({n.key})" for n in nodes])
    unclaimed = result.unclaimed
    lines.append("")
    lines.append(f"Not claimed: {len(unclaimed)} node{'s' if len(unclaimed) != 1 else ''}")
    for n in unclaimed:
        lines.append(f"  {n.name} ({n.key}): {result.reasons.get(n.name, 'no reason recorded')}")
    lines.append("")
    lines.append(result.summary())
    return "\n".join(lines)


def json_report(result: PartitionResult, title: str = "") -> dict[str, Any]:
    def vjson(v: Value) -> dict[str, Any]:
        shape = None if v.shape is None else list(v.shape)
        return {"name": v.name, "dtype": dtype_name(v.dtype), "shape": shape}

    clusters = []
    for k, nodes in enumerate(result.clusters):
        ins, outs, consts = cluster_io(result, nodes)
        clusters.append({
            "index": k, "size": len(nodes), "op_histogram": dict(op_histogram(nodes)),
            "inputs": [vjson(v) for v in ins], "outputs": [vjson(v) for v in outs], "constants": len(consts),
            "nodes": [{"name": n.name, "op_type": n.key, "index": n.index} for n in nodes],
        })
    g = result.graph
    return {
        "model": title or g.model_path or g.name,
        "nodes": len(g.nodes),
        "claimed": sum(len(c) for c in result.clusters),
        "min_subgraph_size": result.min_subgraph_size,
        "op_types_to_exclude": list(result.op_types_to_exclude),
        "clusters": clusters,
        "not_claimed": [{"name": n.name, "op_type": n.key, "index": n.index,
                         "reason": result.reasons.get(n.name, "")} for n in result.unclaimed],
        "summary": result.summary(),
    }


def support_matrix_markdown() -> str:
    """The support matrix: one row per rule (op, dtypes, notes from the rule's docstring)."""
    from graph_partitioner.support import rules

    rows = ["| op | dtypes | notes |", "|---|---|---|"]
    for op, r in sorted(rules().items(), key=lambda kv: (kv[0].startswith("ep_trtpy::"), kv[0])):
        order = [d for d in _DTYPE_ORDER if d in r.dtypes] + sorted(d for d in r.dtypes if d not in _DTYPE_ORDER)
        dtypes = ", ".join(dtype_name(d) for d in order)
        notes = " ".join(r.doc.split()).replace("|", "\\|")
        rows.append(f"| {op} | {dtypes} | {notes} |")
    rows.append("")
    rows.append("bfloat16, float64 and string are refused everywhere; ops not listed are left to ONNX Runtime.")
    return "\n".join(rows)
