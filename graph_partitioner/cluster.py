"""Grouping claimable nodes into maximal, acyclic (convex) clusters.

Works on node positions ``0..N-1`` in topological order and each node's predecessors (producer positions), so it
knows nothing about ops. A cluster is *acyclic* (convex) when no path from one of its nodes to another leaves the
cluster: ORT fuses each cluster into one node, and a path that leaves and re-enters would make the fused graph
cyclic (ORT then rejects the group). If every cluster is convex, the graph of clusters and other nodes is acyclic.

Two convex groups X and Y may merge iff no path runs from X to Y, or from Y to X, through a node outside X ∪ Y.
Pairwise compatibility is enough for a set: a path that leaves the union of pairwise-compatible convex groups and
comes back starts in one group and ends in another (not the same one: that one is convex), so it would make that
pair incompatible.

Phase 1 (edges, in topological order). Each claimable node v starts a group and then merges with the groups of its
claimable predecessors, largest first, whenever compatible. All groups hold processed nodes only, and every path
between processed nodes runs through processed nodes (a topological prefix is closed under ancestors), so the
test is exact on the prefix: X reaches Y through outside nodes iff some predecessor p of Y, outside X and Y, has an
ancestor in X. Each node keeps the set of groups-at-creation ("labels") of its ancestors as a Python int bitset,
so the test is one AND per outside predecessor.

Phase 2 (rounds). On the cluster graph, each group gets the set of groups it must not merge with (reachable, or
reaching it, through a path of two or more steps), from reachability bitsets over groups; groups are then taken in
order and batched greedily with every later group compatible with all of the batch. A round merges all batches;
rounds repeat until none merges (merging can make paths direct and so enable new merges). The result is maximal:
no two clusters can merge without a cycle.

Cost: phase 1 is O(N + E) bitset operations of (groups created)/64 words; each phase-2 round is O(N + E) bitset
operations of (groups)/64 words plus O(groups^2 / 64) for batching.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Clustering:
    groups: list[list[int]] = field(default_factory=list)
    """Clusters as sorted node positions, ordered by their first node."""
    blocked: dict[int, tuple[int, int]] = field(default_factory=dict)
    """node position -> (a node of the group it could not join, the outside node on the offending path)."""


class _Groups:
    """Union-find over labels with per-group data (labels bitset, members, outside predecessors)."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.ids: list[int] = []  # bitset of labels merged into the group (valid at roots)
        self.members: list[list[int]] = []
        self.ext: list[set[int]] = []  # predecessors of members that were outside when added (may turn stale)

    def new(self, node: int, preds: Sequence[int]) -> int:
        lab = len(self.parent)
        self.parent.append(lab)
        self.ids.append(1 << lab)
        self.members.append([node])
        self.ext.append(set(preds))
        return lab

    def find(self, lab: int) -> int:
        root = lab
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[lab] != root:
            self.parent[lab], lab = root, self.parent[lab]
        return root

    def union(self, a: int, b: int, root_of: Callable[[int], int]) -> int:
        """Merge roots a and b; returns the new root. Keeps ext free of members: the members of the smaller group
        leave the larger group's ext, and the smaller group's ext joins minus the larger group's members.
        `root_of(node)` is the node's group root (-1 for unclaimed nodes)."""
        if len(self.members[a]) < len(self.members[b]):
            a, b = b, a
        ext_a = self.ext[a]
        for m in self.members[b]:
            ext_a.discard(m)
        for p in self.ext[b]:
            if root_of(p) != a:
                ext_a.add(p)
        self.parent[b] = a
        self.ids[a] |= self.ids[b]
        self.members[a].extend(self.members[b])
        self.members[b], self.ext[b] = [], set()
        return a


def cluster(preds: Sequence[Sequence[int]], claimable: Sequence[bool]) -> Clustering:
    """Maximal convex clusters of the claimable nodes. `preds[v]` are the positions (< v) of v's producers."""
    n = len(preds)
    label = [-1] * n
    anc = [0] * n  # labels of ancestors, inclusive
    g = _Groups()
    result = Clustering()

    def group_of(p: int) -> int:
        return -1 if label[p] < 0 else g.find(label[p])

    def reaches(x: int, y: int) -> int:
        """An outside node on a path from group x to group y (both roots), or -1 if there is none."""
        ids_x = g.ids[x]
        for p in g.ext[y]:
            if anc[p] & ids_x:
                gp = group_of(p)
                if gp != x and gp != y:
                    return p
        return -1

    for v in range(n):
        ps = preds[v]
        a = 0
        for p in ps:
            a |= anc[p]
        if not claimable[v]:
            anc[v] = a
            continue
        lab = g.new(v, ps)
        label[v] = lab
        anc[v] = a | (1 << lab)
        cands: list[int] = []
        for p in ps:
            gp = group_of(p)
            if gp >= 0 and gp not in cands:
                cands.append(gp)
        cands.sort(key=lambda r: (-len(g.members[r]), min(g.members[r])))
        cur, alone = lab, True
        for cand in cands:
            cand = g.find(cand)
            if cand == cur:
                continue
            witness = reaches(cand, cur)
            if witness < 0 and not alone:
                witness = reaches(cur, cand)
            if witness >= 0:
                result.blocked.setdefault(v, (min(g.members[cand]), witness))
                continue
            cur = g.union(cand, cur, group_of)
            alone = False

    roots = sorted({g.find(label[v]) for v in range(n) if label[v] >= 0}, key=lambda r: min(g.members[r]))
    groups = [sorted(g.members[r]) for r in roots]
    result.groups = _merge_rounds(preds, groups, n)
    return result


def _merge_rounds(preds: Sequence[Sequence[int]], groups: list[list[int]], n: int) -> list[list[int]]:
    succs: list[list[int]] = [[] for _ in range(n)]
    for v, ps in enumerate(preds):
        for p in ps:
            succs[p].append(v)
    while len(groups) > 1:
        gid = [-1] * n
        for k, members in enumerate(groups):
            for v in members:
                gid[v] = k
        down = [0] * n  # groups reachable from the node, its own included
        for v in range(n - 1, -1, -1):
            r = (1 << gid[v]) if gid[v] >= 0 else 0
            for s in succs[v]:
                r |= down[s]
            down[v] = r
        up = [0] * n  # groups reaching the node, its own included
        for v in range(n):
            r = (1 << gid[v]) if gid[v] >= 0 else 0
            for p in preds[v]:
                r |= up[p]
            up[v] = r
        bad = [0] * len(groups)
        for k, members in enumerate(groups):
            b = 0
            for v in members:
                for s in succs[v]:
                    if gid[s] != k:
                        b |= down[s] & ~(1 << gid[s]) if gid[s] >= 0 else down[s]
                for p in preds[v]:
                    if gid[p] != k:
                        b |= up[p] & ~(1 << gid[p]) if gid[p] >= 0 else up[p]
            bad[k] = b
        batches: list[list[int]] = []
        assigned = 0
        full = (1 << len(groups)) - 1
        for k in range(len(groups)):
            if assigned >> k & 1:
                continue
            batch = [k]
            forbid = bad[k] | (1 << k)
            cand = full & ~assigned & ~((1 << (k + 1)) - 1) & ~forbid
            while cand:
                low = cand & -cand
                h = low.bit_length() - 1
                cand &= ~low
                if forbid >> h & 1:
                    continue
                batch.append(h)
                forbid |= bad[h] | low
                cand &= ~forbid
            for h in batch:
                assigned |= 1 << h
            batches.append(batch)
        if all(len(b) == 1 for b in batches):
            break
        groups = sorted((sorted(v for h in b for v in groups[h]) for b in batches), key=lambda m: m[0])
    return groups


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
