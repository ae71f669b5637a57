"""Grouping claimable nodes into clusters that ORT can fuse: acyclic, maximal, as few as possible.

Works on node positions ``0..N-1`` in topological order and each node's predecessors (producer positions), so it
knows nothing about ops.

Validity. ORT fuses each cluster into one node, so the graph with every cluster contracted to a node (the
*quotient*) must stay acyclic. In particular no path from one node of a cluster to another may leave the cluster
(convexity), but convexity of each cluster alone is not enough: with clusters {a, d} and {b, c} and edges a->b,
c->d, both are convex yet the quotient has the cycle {a,d} -> {b,c} -> {a,d}. The quotient is acyclic exactly when
some topological order of the graph lists every cluster as one contiguous run.

Algorithm (phases). Colour the nodes: claimable or not. A Kahn traversal alternates phases; a phase of one colour
takes every node of that colour that is ready, and keeps going while more become ready, then the other colour's
phase starts. Each claimable phase is a cluster: the traversal is a topological order in which each cluster is
contiguous, so the quotient is acyclic. This greedy uses the fewest phases among all topological orders that start
with the same colour (after k phases, the set of finished nodes contains that of any other order after k phases:
everything the other order could run in phase k is ready for the greedy too), so the traversal is run starting
with each colour and the one with fewer claimable phases is kept. Fewest clusters implies maximality: if two
clusters could merge without a cycle there would be a valid clustering with fewer.

Sinking. Shape arithmetic (Shape -> Gather -> Concat -> ...) is needed at engine build time by its consumer (a
Reshape's shape, ...), so it should live in the consumer's cluster, but the greedy runs it as early as possible.
``sinkable`` nodes are therefore moved, in reverse topological order, to the latest claimable phase not after
their earliest consumer's phase. Every edge still goes from an earlier (phase, position) to a later one, so the
clusters stay contiguous in a topological order.

Cost: O((N + E) log N) for each of the two traversals (a heap keeps the order deterministic), O(N + E) to sink.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Clustering:
    groups: list[list[int]] = field(default_factory=list)
    """Clusters as sorted node positions, ordered by their first node."""
    phase: list[int] = field(default_factory=list)
    """Phase of every node in the chosen traversal (after sinking)."""


def _phases(preds: Sequence[Sequence[int]], succs: Sequence[Sequence[int]], claimable: Sequence[bool],
            first: bool) -> list[int]:
    """Phase of each node in the greedy alternating traversal; phase 0 has colour `first` (claimable or not)."""
    n = len(preds)
    pending = [len(set(ps)) for ps in preds]
    ready: dict[bool, list[int]] = {True: [], False: []}
    for v in range(n):
        if pending[v] == 0:
            ready[bool(claimable[v])].append(v)
    for heap in ready.values():
        heapq.heapify(heap)
    phase = [-1] * n
    colour, k, done = first, 0, 0
    while done < n:
        heap = ready[colour]
        while heap:
            v = heapq.heappop(heap)
            phase[v] = k
            done += 1
            for s in succs[v]:
                pending[s] -= 1
                if pending[s] == 0:
                    heapq.heappush(ready[bool(claimable[s])], s)
        colour, k = not colour, k + 1
        if k > 2 * n + 2:  # unreachable for a DAG; guards against a cyclic input
            raise ValueError("graph has a cycle: the traversal cannot finish")
    return phase


def cluster(preds: Sequence[Sequence[int]], claimable: Sequence[bool],
            sinkable: Sequence[bool] | None = None) -> Clustering:
    """Clusters of the claimable nodes (see the module docstring). `preds[v]` are the positions (< v) of v's
    producers; `sinkable[v]` marks claimable nodes that should join their earliest consumer's cluster."""
    n = len(preds)
    succs: list[list[int]] = [[] for _ in range(n)]
    for v, ps in enumerate(preds):
        for p in dict.fromkeys(ps):
            succs[p].append(v)

    best: tuple[int, list[int], bool] | None = None
    for first in (True, False):
        phase = _phases(preds, succs, claimable, first)
        n_clusters = len({phase[v] for v in range(n) if claimable[v]})
        if best is None or n_clusters < best[0]:
            best = (n_clusters, phase, first)
    assert best is not None
    _, phase, first = best
    parity = 0 if first else 1  # claimable phases are those with phase % 2 == parity

    if sinkable is not None:
        for v in range(n - 1, -1, -1):
            if not (sinkable[v] and claimable[v]) or not succs[v]:
                continue
            limit = min(phase[s] for s in succs[v])
            target = limit if limit % 2 == parity else limit - 1
            if target > phase[v]:
                phase[v] = target

    by_phase: dict[int, list[int]] = {}
    for v in range(n):
        if claimable[v]:
            by_phase.setdefault(phase[v], []).append(v)
    groups = sorted(by_phase.values(), key=lambda g: g[0])
    return Clustering(groups=groups, phase=phase)


def is_convex(preds: Sequence[Sequence[int]], members: Sequence[int]) -> tuple[int, int] | None:
    """None if no path between two members leaves the set; else (outside node, member it re-enters at).

    An independent check (tests use it): one forward sweep marks the nodes reachable from the set; a member with an
    outside predecessor so marked closes a path that left the set and came back.
    """
    inside = set(members)
    if not inside:
        return None
    reached: set[int] = set()
    for v in range(min(inside), max(inside) + 1):
        if v in inside:
            for p in preds[v]:
                if p not in inside and p in reached:
                    return (p, v)
            reached.add(v)
        elif any(p in reached for p in preds[v]):
            reached.add(v)
    return None
