"""Partitioning: which nodes we claim, grouped into maximal acyclic clusters (implementation: helper work).

Contract used by ep_trtpy (the host callbacks and the CLI):

    result = partition(graph, min_subgraph_size=1, op_types_to_exclude=())
    result.clusters   # list[list[Node]], each in topological order; one engine each
    result.reasons    # dict[node name, sentence] for every node not claimed
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from graph_partitioner.ir import Graph, Node


@dataclass
class PartitionResult:
    graph: Graph
    clusters: list[list[Node]] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)


def partition(graph: Graph, min_subgraph_size: int = 1, op_types_to_exclude: Iterable[str] = ()) -> PartitionResult:
    raise NotImplementedError
