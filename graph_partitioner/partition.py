"""Partitioning: which nodes we claim, grouped into maximal acyclic clusters.

Contract used by ep_trtpy (the host callbacks and the CLI):

    result = partition(graph, min_subgraph_size=1, op_types_to_exclude=(), refused={})
    result.clusters   # list[list[Node]], each in topological order; one engine each
    result.reasons    # dict[node name, sentence] for every node not claimed

Steps:

1. The shape-computable analysis (``shape_computable.py``), then every node's support rule (``support/``).
   Nodes whose op type (``Resize``) or key (``ep_trtpy::Pointwise``) is in `op_types_to_exclude` are not claimed,
   nor those whose key is in `refused` (op key -> the sentence why: what the engine's backend cannot run yet).
2. Clustering of the claimable nodes (``cluster.py``): the fewest clusters such that contracting each to one node
   leaves the graph acyclic (so ORT can fuse each). Dependencies include the implicit inputs of subgraph ops.
3. Build-time operands: a rule that accepted a node because an operand is shape-computable (Reshape's shape, ...)
   relies on the builder folding it, which needs the nodes computing it in the same engine. A node whose such
   operand is computed outside its cluster is refused, and clustering runs again (few rounds; the refused set only
   grows).
4. Clusters below `min_subgraph_size` nodes are left to ORT.

Clusters are ordered by their first node; nodes within a cluster follow the graph's (topological) order. The
result depends only on the graph (node order included), so the same model always partitions the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from graph_partitioner.cluster import cluster as cluster_positions
from graph_partitioner.ir import Graph, Node, Value
from graph_partitioner.onnx_io import OpaqueAttr
from graph_partitioner.shape_computable import SHAPE_OPS, SOURCE_OPS, ShapeComputable
from graph_partitioner.support import SupportContext, check


@dataclass
class PartitionResult:
    graph: Graph
    clusters: list[list[Node]] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    min_subgraph_size: int = 1
    op_types_to_exclude: tuple[str, ...] = ()

    @property
    def claimed(self) -> list[Node]:
        """Claimed nodes in graph order."""
        ids = {id(n) for c in self.clusters for n in c}
        return [n for n in self.graph.nodes if id(n) in ids]

    @property
    def unclaimed(self) -> list[Node]:
        ids = {id(n) for c in self.clusters for n in c}
        return [n for n in self.graph.nodes if id(n) not in ids]

    def cluster_indices(self) -> list[list[int]]:
        """Clusters as Node.index lists (positions in the shim's document: what GetCapability answers)."""
        return [[n.index for n in c] for c in self.clusters]

    def summary(self) -> str:
        n_claimed = sum(len(c) for c in self.clusters)
        k = len(self.clusters)
        return f"{n_claimed}/{len(self.graph.nodes)} nodes claimed in {k} cluster{'s' if k != 1 else ''}"


def _build_time_culprit(v: Value, cluster_ids: set[int], memo: dict[int, Node | None]) -> Node | None:
    """None if `v` can be computed inside the cluster at build time; else the first node on its computation that
    is outside the cluster (or not a shape op)."""
    key = id(v)
    if key in memo:
        return memo[key]
    memo[key] = None  # provisional (the graph is acyclic, so no re-entry through this value)
    culprit: Node | None = None
    if v.const is None:
        p = v.producer
        if p is None or id(p) not in cluster_ids:
            culprit = p
        elif p.op_type in SOURCE_OPS or p.op_type == "Constant":
            culprit = None
        elif p.op_type in SHAPE_OPS and p.domain in ("", "ai.onnx"):
            for u in p.inputs:
                if u is not None and (culprit := _build_time_culprit(u, cluster_ids, memo)) is not None:
                    break
        else:
            culprit = p
    memo[key] = culprit
    return culprit


def _predecessors(graph: Graph, node: Node, position: dict[int, int]) -> list[int]:
    """Positions of the nodes `node` depends on: producers of its inputs, and of the values its subgraphs read
    from this graph (implicit inputs of If/Loop/Scan, from OpaqueAttr.outer_names)."""
    values = [v for v in node.inputs if v is not None]
    for a in node.attrs.values():
        if isinstance(a, OpaqueAttr):
            values.extend(v for name in a.outer_names if (v := graph.values.get(name)) is not None)
    ps: list[int] = []
    for v in values:
        if v.producer is not None:
            p = position.get(id(v.producer))
            if p is not None and p not in ps:
                ps.append(p)
    return ps


def partition(graph: Graph, min_subgraph_size: int = 1, op_types_to_exclude: Iterable[str] = (),
              refused: Mapping[str, str] | None = None) -> PartitionResult:
    """Claim the supported nodes of `graph` in maximal acyclic clusters (see the module docstring)."""
    if min_subgraph_size < 1:
        raise ValueError(f"min_subgraph_size must be >= 1, got {min_subgraph_size}")
    exclude = tuple(op_types_to_exclude)
    seen: set[str] = set()
    for n in graph.nodes:
        if n.name in seen:
            raise ValueError(f"graph '{graph.name}' has two nodes named '{n.name}'; the partition report keys its "
                             f"reasons by node name (the ONNX and export importers make names unique)")
        seen.add(n.name)
    nodes = graph.nodes
    position = {id(n): i for i, n in enumerate(nodes)}
    result = PartitionResult(graph, min_subgraph_size=min_subgraph_size, op_types_to_exclude=exclude)

    analysis = ShapeComputable(graph)
    asked: list[Value] = []

    def recording(v: object) -> bool:
        ok = analysis(v)
        if ok and isinstance(v, Value) and v.const is None:
            asked.append(v)
        return ok

    ctx = SupportContext(graph=graph, shape_computable=recording)
    refusal: dict[int, str] = {}
    needs: dict[int, list[Value]] = {}
    for i, node in enumerate(nodes):
        if node.op_type in exclude or node.key in exclude:
            refusal[i] = "excluded by op_types_to_exclude"
            continue
        if refused and node.key in refused:
            refusal[i] = refused[node.key]
            continue
        asked.clear()
        try:
            why = check(node, ctx)
        except Exception as e:  # noqa: BLE001 - a rule bug must not take the session down; say what happened
            why = f"its support rule failed ({type(e).__name__}: {e})"
        if why is not None:
            refusal[i] = why
        elif asked:
            needs[i] = list(asked)

    preds = [_predecessors(graph, node, position) for node in nodes]

    # Shape arithmetic (and constants) joins the cluster of its earliest consumer rather than running early.
    sinkable = [bool(n.outputs) and n.domain in ("", "ai.onnx") and all(analysis(v) for v in n.outputs)
                for n in nodes]
    while True:
        claimable = [i not in refusal for i in range(len(nodes))]
        clustering = cluster_positions(preds, claimable, sinkable)
        newly_refused = False
        for group in clustering.groups:
            ids = {id(nodes[i]) for i in group}
            memo: dict[int, Node | None] = {}
            for i in group:
                for v in needs.get(i, ()):
                    culprit = _build_time_culprit(v, ids, memo)
                    if culprit is None:
                        continue
                    where = ("is not claimed" if position[id(culprit)] in refusal else "is in another cluster")
                    refusal[i] = (f"{nodes[i].key} needs '{v.name}' when its engine is built, but it is computed "
                                  f"by '{culprit.name}' ({culprit.key}), which {where}")
                    newly_refused = True
                    break
        if not newly_refused:
            break

    after_claimed = [False] * len(nodes)  # the node has a claimable ancestor
    for i, ps in enumerate(preds):
        after_claimed[i] = any(p not in refusal or after_claimed[p] for p in ps)
    for group in clustering.groups:
        if len(group) >= min_subgraph_size:
            result.clusters.append([nodes[i] for i in group])
            continue
        text = (f"in a cluster of {len(group)} node{'s' if len(group) != 1 else ''}, below min_subgraph_size "
                f"{min_subgraph_size}")
        separator = next((p for i in group for p in preds[i] if p in refusal and after_claimed[p]), None)
        if separator is not None:
            text += (f" (it is separated from the claimed nodes before it by '{nodes[separator].name}', which is "
                     f"not claimed: joining them would make a cluster cyclic)")
        for i in group:
            refusal[i] = text
    for i, why in sorted(refusal.items()):
        result.reasons[nodes[i].name] = why
    return result


def op_histogram(nodes: Iterable[Node]) -> list[tuple[str, int]]:
    """(op key, count), most frequent first, ties by name."""
    counts = Counter(n.key for n in nodes)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
