"""Every ONNX backend node case (the models the onnx wheel defines) loads, and partitions without a rule failing;
every unclaimed node has a reason and the clusters contract to an acyclic graph."""

from __future__ import annotations

import warnings

import pytest

from gp_helpers import positions, quotient_has_cycle
from graph_partitioner.onnx_io import graph_from_onnx
from graph_partitioner.partition import partition
from graph_partitioner.support import rules


@pytest.fixture(scope="module")
def partitioned():
    """(case, graph, partition result) of every node case (the _expanded function bodies left out)."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = [c for c in collect_testcases(None) if not c.name.endswith("_expanded")]
    out = []
    for case in cases:
        g = graph_from_onnx(case.model)
        out.append((case, g, partition(g)))
    return out


@pytest.mark.slow
def test_node_cases_partition_cleanly(partitioned):
    known = rules()
    claimed_ops: set[str] = set()
    problems = []
    for case, g, result in partitioned:
        claimed = {id(n) for n in result.claimed}
        for n in g.nodes:
            why = result.reasons.get(n.name)
            if id(n) in claimed:
                claimed_ops.add(n.key)
                assert why is None
            elif not why or "support rule failed" in why:
                problems.append(f"{case.name}: {n.name} ({n.key}): {why!r}")
        preds, cl = positions(result)
        if quotient_has_cycle(preds, cl):
            problems.append(f"{case.name}: clusters contract to a cyclic graph")
    assert problems == []
    # the core ops are claimed in their plain cases (the rest get their inputs, e.g. Pad's pads, as graph inputs)
    core = {"Add", "Conv", "ConvTranspose", "Gemm", "MatMul", "Softmax", "LogSoftmax", "Relu", "Reshape", "Transpose",
            "Concat", "Gather", "MaxPool", "AveragePool", "BatchNormalization", "Cast", "Split", "Slice", "Unsqueeze",
            "ReduceMean", "ReduceSum", "ArgMax", "GlobalAveragePool", "Where", "Expand", "ConstantOfShape", "Range",
            "Flatten", "Dropout", "Gelu", "Erf", "Pow", "Sqrt", "Clip", "Shape", "Size", "Identity", "Mod"}
    assert sorted(core - claimed_ops) == []
    assert claimed_ops <= set(known)


@pytest.mark.slow
def test_fully_claimed_node_cases_run_on_the_reference_ops(partitioned):
    """Whatever the rules claim, ep_trtpy.ops can compute: every node case claimed whole gives the case's expected
    outputs on the numpy reference executor (the semantics every GPU tactic is tested against)."""
    import numpy as np

    from ep_trtpy.ops.executor import run_graph

    checked, failures = 0, []
    for case, g, result in partitioned:
        if len(result.clusters) != 1 or len(result.clusters[0]) != len(g.nodes):
            continue
        for inputs, expected in case.data_sets:
            if any(np.asarray(x).dtype == object for x in inputs):
                continue  # a few cases store their data as Python objects
            got = run_graph(g, {v.name: x for v, x in zip(g.inputs, inputs)})
            for k, (a, b) in enumerate(zip(got, expected)):
                b = np.asarray(b)
                close = a.shape == b.shape and np.allclose(a.astype(np.float64), b.astype(np.float64), rtol=1e-3,
                                                           atol=1e-4, equal_nan=True)
                if not close:
                    failures.append(f"{case.name}: output {k} differs")
            checked += 1
    assert failures == []
    assert checked > 300  # the sweep really ran (about 380 cases with onnx 1.23)
