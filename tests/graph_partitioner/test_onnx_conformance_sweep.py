"""Every ONNX backend node case (the models the onnx wheel defines) loads, and partitions without a rule failing;
every unclaimed node has a reason and the clusters contract to an acyclic graph."""

from __future__ import annotations

import warnings

import pytest

from gp_helpers import positions, quotient_has_cycle
from graph_partitioner.onnx_io import graph_from_onnx
from graph_partitioner.partition import partition
from graph_partitioner.support import rules


def _cases():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [c for c in collect_testcases(None) if not c.name.endswith("_expanded")]


@pytest.mark.slow
def test_node_cases_partition_cleanly():
    known = rules()
    claimed_ops: set[str] = set()
    problems = []
    for case in _cases():
        g = graph_from_onnx(case.model)
        result = partition(g)
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
