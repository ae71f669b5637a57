"""eliminate_dead_nodes: drop nodes whose results nobody uses.

Math: a node none of whose outputs reaches a graph output (directly or through other nodes) cannot change the
graph's outputs, and no op we handle has side effects, so removing it leaves the function unchanged.

Match: a node with no consumed output that is not a graph output (repeated until none is left, so whole dead
chains go), and values nothing refers to.

Refusal: none; graph inputs are kept even when unused (the engine's input order is its contract with ORT).

Rewrite: ``Graph.remove_unused``.
"""

from __future__ import annotations

from ep_trtpy.builder.pipeline import PassContext
from graph_partitioner.ir import Graph

NAME = "eliminate_dead_nodes"


def run(graph: Graph, ctx: PassContext) -> bool:
    removed = graph.remove_unused()
    if removed:
        ctx.info("removed %d dead nodes", removed)
    return removed > 0
