"""Clustering: maximal, acyclic (convex), deterministic; min_subgraph_size and op_types_to_exclude; reasons for
every node not claimed. Acyclicity and maximality are checked with code independent of cluster.py."""

from __future__ import annotations

import time

import numpy as np
import pytest

from gp_helpers import encoder_model, positions, quotient_has_cycle, random_dag, split_model
from graph_partitioner.cluster import cluster, is_convex
from graph_partitioner.ir import FLOAT, Graph
from graph_partitioner.onnx_io import graph_from_onnx
from graph_partitioner.partition import partition


def names(result) -> list[list[str]]:
    return [[n.name for n in c] for c in result.clusters]


def test_unsupported_middle_node_splits_into_two_clusters():
    result = partition(graph_from_onnx(split_model()))
    assert names(result) == [["relu", "mul"], ["add", "sigmoid"]]
    assert result.reasons == {"cumsum": "CumSum has no GPU implementation in ep_trtpy"}
    assert result.summary() == "4/5 nodes claimed in 2 clusters"
    preds, cl = positions(result)
    assert not quotient_has_cycle(preds, cl)


def test_cycle_through_unsupported_node_keeps_a_and_c_apart():
    """A(sup) -> B(unsup) -> C(sup) and A -> C directly: {A, C} would be cyclic."""
    g = Graph("abc", {"": 17})
    x = g.add_value("x", FLOAT, (4,))
    g.inputs.append(x)
    a = g.add_node("Relu", [x], name="A").outputs[0]
    b = g.add_node("TopK", [a], name="B").outputs[0]
    c = g.add_node("Add", [a, b], name="C").outputs[0]
    g.outputs.append(c)
    result = partition(g)
    assert names(result) == [["A"], ["C"]]
    assert result.reasons == {"B": "TopK has no GPU implementation in ep_trtpy"}
    preds, cl = positions(result)
    assert is_convex(preds, [0, 2]) == (1, 2)  # the oracle itself sees the cycle
    assert not quotient_has_cycle(preds, cl)


def test_min_subgraph_size_and_the_cycle_note():
    g = Graph("abc", {"": 17})
    x = g.add_value("x", FLOAT, (4,))
    g.inputs.append(x)
    a = g.add_node("Relu", [x], name="A").outputs[0]
    a2 = g.add_node("Neg", [a], name="A2").outputs[0]
    b = g.add_node("TopK", [a2], name="B").outputs[0]
    c = g.add_node("Add", [a2, b], name="C").outputs[0]
    g.outputs.append(c)
    result = partition(g, min_subgraph_size=2)
    assert names(result) == [["A", "A2"]]
    assert result.reasons["C"] == ("in a cluster of 1 node, below min_subgraph_size 2 (it is separated from the "
                                   "claimed nodes before it by 'B', which is not claimed: joining them would make a "
                                   "cluster cyclic)")
    assert partition(g, min_subgraph_size=3).summary() == "0/4 nodes claimed in 0 clusters"


def test_op_types_to_exclude():
    result = partition(graph_from_onnx(split_model()), op_types_to_exclude=["Mul", "Sigmoid"])
    assert names(result) == [["relu"], ["add"]]
    assert result.reasons == {"mul": "excluded by op_types_to_exclude",
                              "cumsum": "CumSum has no GPU implementation in ep_trtpy",
                              "sigmoid": "excluded by op_types_to_exclude"}


def test_every_unclaimed_node_has_a_reason_and_claimed_none():
    g = random_dag(300, 0.15, seed=11)
    result = partition(g, min_subgraph_size=3)
    claimed = {n.name for n in result.claimed}
    assert set(result.reasons) == {n.name for n in g.nodes} - claimed
    assert all(result.reasons.values())


def test_independent_branches_share_one_cluster():
    """Two supported branches under a CPU node: merging them creates no cycle, so maximality merges them."""
    g = Graph("fork", {"": 17})
    x = g.add_value("x", FLOAT, (4,))
    g.inputs.append(x)
    t = g.add_node("TopK", [x], name="cpu").outputs[0]
    l1 = g.add_node("Relu", [t], name="left").outputs[0]
    r1 = g.add_node("Neg", [t], name="right").outputs[0]
    g.outputs += [l1, r1]
    assert names(partition(g)) == [["left", "right"]]


@pytest.mark.parametrize("seed,p,window", [(1, 0.05, 8), (2, 0.2, 8), (3, 0.4, 6), (4, 0.1, 30), (5, 0.3, 3)])
def test_random_graphs_acyclic_and_maximal(seed, p, window):
    g = random_dag(250, p, seed=seed, window=window)
    result = partition(g)
    preds, cl = positions(result)
    assert all(is_convex(preds, c) is None for c in cl)
    assert not quotient_has_cycle(preds, cl)
    for i in range(len(cl)):
        for j in range(i + 1, len(cl)):
            merged = [c for k, c in enumerate(cl) if k not in (i, j)] + [cl[i] + cl[j]]
            assert quotient_has_cycle(preds, merged), f"clusters {i} and {j} could merge"
    # every claimable node is claimed (with min_subgraph_size 1, clustering never drops one)
    assert all(n.op_type == "TopK" for n in result.unclaimed)


def _min_runs_brute_force(preds: list[list[int]], claim: list[bool]) -> int:
    """Fewest runs of claimable nodes over all topological orders (exhaustive; tiny graphs only)."""
    n = len(preds)
    best = n + 1

    def rec(order: list[int], done: set[int], runs: int) -> None:
        nonlocal best
        if runs >= best:
            return
        if len(order) == n:
            best = runs
            return
        for v in range(n):
            if v not in done and all(p in done for p in preds[v]):
                new_run = claim[v] and not (order and claim[order[-1]])
                done.add(v)
                order.append(v)
                rec(order, done, runs + int(new_run))
                order.pop()
                done.discard(v)

    rec([], set(), 0)
    return best


@pytest.mark.parametrize("seed", range(8))
def test_fewest_clusters_on_small_graphs(seed):
    """The cluster count equals the exhaustive minimum (any valid clustering is contiguous in some order)."""
    g = random_dag(8, 0.35, seed=100 + seed, window=4, max_inputs=2)
    result = partition(g)
    preds, cl = positions(result)
    claim = [n.op_type != "TopK" for n in g.nodes]
    assert len(cl) == _min_runs_brute_force(preds, claim)


def test_duplicate_node_names_are_an_error():
    g = random_dag(3, 0.0, seed=1)
    g.nodes[1].name = g.nodes[0].name
    with pytest.raises(ValueError, match="has two nodes named 'n0'"):
        partition(g)


def test_determinism():
    g = random_dag(400, 0.2, seed=7)
    first = partition(g)
    again = partition(g)
    copied = partition(g.copy())
    assert names(first) == names(again) == names(copied)
    assert first.reasons == again.reasons == copied.reasons


def test_cluster_function_on_positions():
    # 0 -> 1(x) -> 2, 0 -> 2; 3 independent: {0, 3} then {2}
    result = cluster([[], [0], [0, 1], []], [True, False, True, True])
    assert result.groups == [[0, 3], [2]]
    # starting with the unclaimable colour is better here: 0(x) -> 1; 2 -> 3 -> 1 gives one cluster {1, 2, 3}
    assert cluster([[], [0, 3], [], [2]], [False, True, True, True]).groups == [[1, 2, 3]]


def test_convex_clusters_can_still_form_a_cycle_and_the_oracle_sees_it():
    """{a, d} and {b, c} with a->b, c->d are each convex, yet contracted they form a cycle: the tests check the
    quotient, not only convexity."""
    preds = [[], [0], [], [2]]  # a=0 -> b=1, c=2 -> d=3
    assert is_convex(preds, [0, 3]) is None and is_convex(preds, [1, 2]) is None
    assert quotient_has_cycle(preds, [[0, 3], [1, 2]])
    assert not quotient_has_cycle(preds, [[0, 1, 2, 3]])


def test_sinking_moves_shape_arithmetic_to_its_consumer_only():
    # 0 claimable -> 1 (x) -> 3 ; 0 -> 2 (sinkable) -> 3: node 2 runs early but belongs with 3
    preds = [[], [0], [0], [1, 2]]
    claim = [True, False, True, True]
    assert cluster(preds, claim).groups == [[0, 2], [3]]
    assert cluster(preds, claim, sinkable=[False, False, True, False]).groups == [[0], [2, 3]]


def test_large_graph_is_fast_enough():
    """~5000 nodes (BERT-base decomposed size) in well under a few seconds on a slow shared core; a quadratic
    algorithm in Python would take minutes."""
    g = random_dag(5000, 0.03, seed=3, window=40)
    start = time.perf_counter()
    result = partition(g)
    elapsed = time.perf_counter() - start
    preds, cl = positions(result)
    assert all(is_convex(preds, c) is None for c in cl)
    assert elapsed < 20.0, f"partition of 5000 nodes took {elapsed:.1f} s"


def test_encoder_is_one_cluster_and_splits_cleanly():
    """A BERT-style encoder (decomposed LayerNorm and GELU, Shape->Gather->Concat->Reshape head splitting)."""
    import onnxruntime as ort

    model = encoder_model(layers=2)
    x = np.random.default_rng(0).standard_normal((2, 5, 32)).astype(np.float32)
    (y,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert y.shape == (2, 5, 32)  # the model is valid, so its partition is meaningful
    g = graph_from_onnx(model)
    whole = partition(g)
    assert len(whole.clusters) == 1 and whole.reasons == {}
    split = partition(g, op_types_to_exclude=["Erf"])
    preds, cl = positions(split)
    # the two Erf nodes are in series (layer 2 depends on layer 1), so three clusters is the minimum
    assert len(split.clusters) == 3 and sum(len(c) for c in split.clusters) == len(g.nodes) - 2
    assert set(split.reasons.values()) == {"excluded by op_types_to_exclude"}
    assert not quotient_has_cycle(preds, cl)


def test_shared_shape_chain_serves_only_one_cluster():
    """The batch/sequence dims feed the Reshapes before and after the Softmax; with Softmax left to ORT the two
    Reshapes land in different clusters and the chain can only be in one (the earlier): the later Reshape is refused
    with the reason."""
    g = graph_from_onnx(encoder_model(layers=1))
    result = partition(g, op_types_to_exclude=["Softmax"])
    refused = {k: v for k, v in result.reasons.items() if "excluded" not in v}
    assert len(refused) == 1
    (why,) = refused.values()
    assert why.startswith("Reshape needs 'concat_") and why.endswith("which is in another cluster")


def test_implicit_inputs_of_subgraphs_are_dependencies():
    """relu -> If (its branches read 'a' from the outer graph, not through an input) -> add <- relu: claiming
    {relu, add} as one cluster would be cyclic through the If."""
    from onnx import TensorProto as T
    from onnx import helper as h

    then_g = h.make_graph([h.make_node("Identity", ["a"], ["t"])], "then", [],
                          [h.make_tensor_value_info("t", T.FLOAT, [2])])
    else_g = h.make_graph([h.make_node("Neg", ["a"], ["e"])], "else", [],
                          [h.make_tensor_value_info("e", T.FLOAT, [2])])
    nodes = [h.make_node("Relu", ["x"], ["a"], name="relu"),
             h.make_node("If", ["cond"], ["b"], name="if", then_branch=then_g, else_branch=else_g),
             h.make_node("Add", ["a", "b"], ["y"], name="add")]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [2]),
                                      h.make_tensor_value_info("cond", T.BOOL, [])],
                         [h.make_tensor_value_info("y", T.FLOAT, [2])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    g = graph_from_onnx(model)
    assert g.node_by_name("if").attrs["then_branch"].outer_names == ("a",)
    result = partition(g)
    assert names(result) == [["relu"], ["add"]]
    # the same through the shim's document, where the optional "implicit_inputs" key carries them
    from graph_partitioner.onnx_io import graph_from_export

    doc = {"name": "g", "opsets": {"": 17}, "inputs": ["x", "cond"], "outputs": ["y"], "initializers": [],
           "values": {n: {"dtype": 1, "shape": [2]} for n in ("x", "a", "b", "y")},
           "nodes": [{"name": "relu", "op_type": "Relu", "inputs": ["x"], "outputs": ["a"], "attrs": {}},
                     {"name": "if", "op_type": "If", "inputs": ["cond"], "outputs": ["b"], "implicit_inputs": ["a"],
                      "attrs": {"then_branch": {"type": "graph"}, "else_branch": {"type": "graph"}}},
                     {"name": "add", "op_type": "Add", "inputs": ["a", "b"], "outputs": ["y"], "attrs": {}}]}
    assert names(partition(graph_from_export(doc, []))) == [["relu"], ["add"]]
    del doc["nodes"][1]["implicit_inputs"]
    assert names(partition(graph_from_export(doc, []))) == [["relu", "add"]]  # what happens without them
