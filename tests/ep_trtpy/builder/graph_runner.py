"""Test helper: run an IR graph on the numpy references and get its outputs as a list in graph-output order.

    import graph_runner
    outs = graph_runner.run(graph, {"x": x})
"""

from __future__ import annotations

import numpy as np

from graph_partitioner.ir import Graph


def run(graph: Graph, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run through ep_trtpy.ops.executor.run_graph; a list in graph-output order."""
    from ep_trtpy.ops import executor

    out = executor.run_graph(graph, feeds)
    if isinstance(out, dict):
        return [np.asarray(out[v.name]) for v in graph.outputs]
    return [np.asarray(o) for o in out]
