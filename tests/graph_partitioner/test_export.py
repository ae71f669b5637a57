"""The shim's JSON graph document -> IR (schema in ep_trtpy/_host.py), built by hand here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graph_partitioner.ir import BFLOAT16, BOOL, FLOAT, INT64, STRING, Graph
from graph_partitioner.onnx_io import OpaqueAttr, graph_from_export
from graph_partitioner.partition import partition


def _doc() -> tuple[dict, list[np.ndarray]]:
    """Nodes deliberately out of topological order (as ORT may list them after its own fusions):
    0: Add(r, bias) -> y    1: Relu(x) -> r    2: Pad(r, pads, "", ...) -> p (tensor attr unused, for parsing)
    3: If(cond) with graph attributes -> z     4: Constant -> k (tensor attribute by index)"""
    doc = {
        "name": "exported", "model_path": "/models/m.onnx",
        "opsets": {"": 17, "ai.onnx.ml": 3},
        "inputs": ["x", "cond"], "outputs": ["y", "z", "p"],
        "initializers": ["bias", "pads"],
        "values": {
            "x": {"dtype": 1, "shape": [-1, 4, -1], "dims": ["batch", "", ""]},
            "cond": {"dtype": 9, "shape": []},
            "r": {"dtype": 1, "shape": [-1, 4, -1], "dims": ["batch", "", ""]},
            "bias": {"dtype": 1, "shape": [4, 1], "dims": ["", ""]},
            "pads": {"dtype": 7, "shape": [6]},
            "y": {"dtype": 1, "shape": None},
            "z": {"dtype": 0, "shape": None},
            "p": {"dtype": 1, "shape": [-1, 4, -1]},
            "k": {"dtype": 7, "shape": [2]},
        },
        "nodes": [
            {"name": "add", "op_type": "Add", "domain": "", "since_version": 14, "inputs": ["r", "bias"],
             "outputs": ["y"], "attrs": {}},
            {"name": "relu", "op_type": "Relu", "domain": "ai.onnx", "since_version": 14, "inputs": ["x"],
             "outputs": ["r"], "attrs": {}},
            {"name": "", "op_type": "Pad", "domain": "", "since_version": 13, "inputs": ["r", "pads", "", ""],
             "outputs": ["p", ""],
             "attrs": {"mode": {"type": "string", "value": "reflect"}}},
            {"name": "if", "op_type": "If", "domain": "", "since_version": 16, "inputs": ["cond"],
             "outputs": ["z"], "attrs": {"then_branch": {"type": "graph"}, "else_branch": {"type": "graph"}}},
            {"name": "const", "op_type": "Constant", "domain": "", "since_version": 13, "inputs": [],
             "outputs": ["k"], "attrs": {"value": {"type": "tensor", "index": 2},
                                         "note_ints": {"type": "ints", "value": [1, 2]},
                                         "note_float": {"type": "float", "value": 0.5},
                                         "note_strings": {"type": "strings", "value": ["a"]}}},
        ],
    }
    arrays = [np.arange(4, dtype=np.float32).reshape(4, 1), np.array([0, 0, 1, 0, 0, 1], np.int64),
              np.array([3, 4], np.int64)]
    return doc, arrays


def test_values_shapes_and_dtypes():
    doc, arrays = _doc()
    g = graph_from_export(doc, arrays)
    assert g.name == "exported" and g.model_path == "/models/m.onnx"
    assert g.opsets == {"": 17, "ai.onnx.ml": 3}
    assert g.values["x"].shape == ("batch", 4, None) and g.values["x"].dtype == FLOAT
    assert g.values["cond"].shape == () and g.values["cond"].dtype == BOOL
    assert g.values["y"].shape is None
    assert g.values["z"].dtype is None
    assert [v.name for v in g.inputs] == ["x", "cond"] and [v.name for v in g.outputs] == ["y", "z", "p"]
    bias = g.values["bias"]
    assert bias.const is not None and bias.shape == (4, 1) and bias.producer is None
    assert g.values["pads"].dtype == INT64


def test_nodes_attributes_and_indices():
    doc, arrays = _doc()
    g = graph_from_export(json.dumps(doc), arrays)  # the document may arrive as text
    by_index = {n.index: n for n in g.nodes}
    assert sorted(by_index) == [0, 1, 2, 3, 4]
    # topological order restored, positions kept
    order = [n.name for n in g.nodes]
    assert order.index("relu") < order.index("add")
    assert by_index[0].name == "add" and by_index[1].name == "relu"
    assert by_index[1].domain == "" and by_index[1].since_version == 14
    pad = by_index[2]
    assert pad.name == "Pad_2" and pad.attrs == {"mode": "reflect"}
    assert [v.name if v else None for v in pad.inputs] == ["r", "pads"]  # trailing absent inputs dropped
    assert [v.name for v in pad.outputs] == ["p"]
    ifn = by_index[3]
    assert isinstance(ifn.attrs["then_branch"], OpaqueAttr) and ifn.attrs["then_branch"].kind == "graph"
    const = by_index[4]
    np.testing.assert_array_equal(const.attrs["value"], [3, 4])
    np.testing.assert_array_equal(g.values["k"].const, [3, 4])
    assert const.attrs["note_ints"] == [1, 2] and const.attrs["note_float"] == 0.5
    assert const.attrs["note_strings"] == ["a"]


def test_partition_answers_in_document_positions():
    doc, arrays = _doc()
    g = graph_from_export(doc, arrays)
    result = partition(g)
    # Relu(1) -> Add(0) and -> Pad(2) form one cluster; the Constant(4) joins it (no path conflicts)
    clusters = result.cluster_indices()
    assert sorted(sorted(c) for c in clusters) == [[0, 1, 2, 4]]
    assert result.reasons["if"] == "If has no GPU implementation in ep_trtpy"


def test_bad_tensor_attribute_index_is_named():
    doc, arrays = _doc()
    with pytest.raises(ValueError, match="tensor attribute 'value' refers to array 2"):
        graph_from_export(doc, arrays[:2])


def test_cycle_in_document_is_an_error():
    doc = {"name": "cyc", "opsets": {"": 17}, "inputs": [], "outputs": ["a"], "initializers": [], "values": {},
           "nodes": [{"name": "n0", "op_type": "Relu", "domain": "", "inputs": ["b"], "outputs": ["a"], "attrs": {}},
                     {"name": "n1", "op_type": "Relu", "domain": "", "inputs": ["a"], "outputs": ["b"], "attrs": {}}]}
    with pytest.raises(ValueError, match="not a DAG"):
        graph_from_export(doc, [])


def test_the_ir_does_not_import_its_edges():
    """ir.py <-> onnx_io.py is no circle: importing the IR loads neither onnx_io nor onnx."""
    import subprocess
    import sys

    code = ("import sys, graph_partitioner.ir; "
            "print(sorted(m for m in sys.modules if m == 'onnx' or m.endswith('onnx_io')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert not hasattr(Graph, "from_export")


def test_unreadable_and_bfloat16_initializers_and_outer_scope_values():
    """The shim passes None for data numpy cannot hold (strings), bfloat16 as uint16 bits, and lists the values a
    nested subgraph reads from its parent in outer_scope_values."""
    import ml_dtypes

    doc = {"name": "sub", "opsets": {"": 17}, "inputs": ["x"], "outputs": ["y", "z"],
           "initializers": ["labels", "wb"], "outer_scope_values": ["outer"],
           "values": {"labels": {"dtype": 8, "shape": [2]}, "wb": {"dtype": 16, "shape": [2]},
                      "x": {"dtype": 1, "shape": [2]}, "outer": {"dtype": 1, "shape": [2]},
                      "y": {"dtype": 1, "shape": [2]}, "z": {"dtype": 8, "shape": [2]}},
           "nodes": [{"name": "add", "op_type": "Add", "inputs": ["x", "outer"], "outputs": ["y"], "attrs": {}},
                     {"name": "ident", "op_type": "Identity", "inputs": ["labels"], "outputs": ["z"], "attrs": {}},
                     {"name": "cs", "op_type": "Constant", "inputs": [], "outputs": ["s"],
                      "attrs": {"value": {"type": "tensor", "index": 2}}}]}
    bits = np.array([1.5, -2.0], dtype=ml_dtypes.bfloat16).view(np.uint16)
    g = graph_from_export(doc, [None, bits, None])
    labels = g.values["labels"]
    assert labels.const is None and labels.dtype == STRING and labels.shape == (2,)
    wb = g.values["wb"]
    assert wb.dtype == BFLOAT16 and wb.const.dtype.name == "bfloat16"
    assert wb.const.astype(np.float32).tolist() == [1.5, -2.0]
    assert [v.name for v in g.inputs] == ["x", "outer"]
    result = partition(g)
    assert [[n.name for n in c] for c in result.clusters] == [["add"]]
    assert "string is not supported on the GPU path" in result.reasons["ident"]
    assert result.reasons["cs"] == ("Constant value has no numeric form here (e.g. a string tensor), so it cannot be "
                                    "claimed")
