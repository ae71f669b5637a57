"""graph_partitioner: the graph IR, per-op support rules (with a reason for every refusal), clustering into
maximal acyclic subgraphs, and the partition report."""

from graph_partitioner.ir import Graph, Node, Value

__all__ = ["Graph", "Node", "Value"]
