"""``ep-trtpy partition``: text and JSON reports on a small model, the support matrix from the rules."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from ep_trtpy.cli import main
from ep_trtpy.cli.partition import backend_refusals
from graph_partitioner.support import rules
from gp_helpers import split_model


@pytest.fixture()
def model_path(tmp_path):
    path = tmp_path / "split.onnx"
    onnx.save(split_model(), str(path))
    return str(path)


def test_text_report_summary_first(model_path, capsys):
    assert main(["partition", model_path]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"{model_path}: 4 of 5 nodes claimed by TrtPyExecutionProvider in 2 clusters (one engine "
                        f"each), 1 left to the CPU provider, 0 folded as constants (5 nodes in the file)")
    table = lines[lines.index("op type  claimed  on CPU  folded") + 1:lines.index("Clusters:") - 1]
    assert {row.split()[0]: [int(x) for x in row.split()[1:]] for row in table} == {
        "Add": [1, 0, 0], "CumSum": [0, 1, 0], "Mul": [1, 0, 0], "Relu": [1, 0, 0], "Sigmoid": [1, 0, 0]}
    assert "  0: 2 nodes (Mul x1, Relu x1); inputs x float32[2,3]; outputs a float32[2,3], b float32[2,3]" in lines
    assert "  CumSum x1: CumSum has no GPU implementation in ep_trtpy" in lines
    assert not any("relu (Relu)" in line for line in lines)  # the node list needs --verbose


def test_verbose_lists_the_nodes(model_path, capsys):
    assert main(["partition", model_path, "--verbose"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{model_path}: 4 of 5 nodes claimed")
    assert lines[-1] == "4/5 nodes claimed in 2 clusters"
    assert "Cluster 0: 2 nodes" in lines and "Cluster 1: 2 nodes" in lines
    assert "  ops: Mul x1, Relu x1" in lines
    assert "  inputs: x float32[2,3]" in lines
    assert "  outputs: a float32[2,3], b float32[2,3]" in lines  # a feeds the Add in the other cluster
    assert "  nodes: relu (Relu), mul (Mul)" in lines
    assert "  cumsum (CumSum): CumSum has no GPU implementation in ep_trtpy" in lines


def test_options_and_json(model_path, capsys):
    assert main(["partition", model_path, "--min-subgraph-size", "2", "--op-types-to-exclude", "Sigmoid,Foo",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"] == "2/5 nodes claimed in 1 cluster"
    assert doc["min_subgraph_size"] == 2 and doc["op_types_to_exclude"] == ["Sigmoid", "Foo"]
    (c,) = doc["clusters"]
    assert [n["name"] for n in c["nodes"]] == ["relu", "mul"] and c["op_histogram"] == {"Mul": 1, "Relu": 1}
    reasons = {r["name"]: r["reason"] for r in doc["not_claimed"]}
    assert reasons == {
        "cumsum": "CumSum has no GPU implementation in ep_trtpy",
        "add": "in a cluster of 1 node, below min_subgraph_size 2 (it is separated from the claimed nodes before it "
               "by 'cumsum', which is not claimed: joining them would make a cluster cyclic)",
        "sigmoid": "excluded by op_types_to_exclude",
    }


def test_bad_option_and_missing_model(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["partition", "m.onnx", "--min-subgraph-size", "0"])
    assert exc.value.code == 2 and "--min-subgraph-size: '0': expected an integer >= 1" in capsys.readouterr().err
    assert main(["partition"]) == 2
    assert "a MODEL.onnx path is needed" in capsys.readouterr().err
    assert main(["partition", str(tmp_path / "missing.onnx")]) == 2
    assert f"model file '{tmp_path / 'missing.onnx'}' does not exist" in capsys.readouterr().err


def test_support_matrix_is_generated_from_the_rules(capsys):
    assert main(["partition", "--support-matrix"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| op | dtypes | notes |"
    rows = {line.split(" | ")[0].lstrip("| ") for line in out[2:] if line.startswith("| ")}
    assert rows == set(rules())
    resize = next(line for line in out if line.startswith("| Resize |"))
    assert "| float32, float16 |" in resize and "cubic" in resize


def test_help_mentions_generated_option_docs(capsys):
    with pytest.raises(SystemExit):
        main(["partition", "--help"])
    out = capsys.readouterr().out
    assert "--min-subgraph-size" in out and "smaller clusters are left to the CPU provider" in out


def _folding_model() -> onnx.ModelProto:
    """Constant nodes, a constant-only chain (Mul, Sqrt), a Shape of a static input, a DequantizeLinear of a
    constant (ORT keeps it; the session comparison below fails if partition ever folds it), then the runtime part:
    Reshape, Add, Mul, Relu, CumSum (no rule)."""
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    nodes = [h.make_node("Constant", [], ["c1"], value=nh.from_array(np.full((1, 4), 2, np.float32))),
             h.make_node("Constant", [], ["c2"], value=nh.from_array(np.full((1, 4), 3, np.float32))),
             h.make_node("Mul", ["c1", "c2"], ["c3"]),
             h.make_node("Sqrt", ["c3"], ["c4"]),
             h.make_node("Shape", ["x"], ["s"]),
             h.make_node("DequantizeLinear", ["q", "scale"], ["dq"]),
             h.make_node("Reshape", ["x", "s"], ["xr"]),
             h.make_node("Add", ["xr", "c4"], ["y0"]),
             h.make_node("Mul", ["y0", "dq"], ["y1"]),
             h.make_node("Relu", ["y1"], ["y2"]),
             h.make_node("CumSum", ["y2", "axis"], ["y"])]
    g = h.make_graph(nodes, "fold", [h.make_tensor_value_info("x", T.FLOAT, [2, 4])],
                     [h.make_tensor_value_info("y", T.FLOAT, [2, 4])],
                     [nh.from_array(np.array(1, np.int64), "axis"), nh.from_array(np.full(4, 3, np.int8), "q"),
                      nh.from_array(np.array(0.5, np.float32), "scale")])
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)], ir_version=8)


def test_counts_what_a_session_runs_after_constant_folding(tmp_path, capsys):
    path = str(tmp_path / "fold.onnx")
    onnx.save(_folding_model(), path)
    assert main(["partition", path, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["nodes_in_file"] == 11 and doc["nodes"] == 6
    assert doc["folded"] == {"Constant": 2, "Mul": 1, "Sqrt": 1, "Shape": 1}
    assert doc["per_op"]["Mul"] == {"claimed": 1, "cpu": 0, "folded": 1}
    assert doc["per_op"]["DequantizeLinear"]["folded"] == 0
    gpu = backend_refusals() is not None  # DequantizeLinear is claimed on the reference backend only (for now)
    assert doc["per_op"]["DequantizeLinear"]["claimed"] == (0 if gpu else 1)
    assert main(["partition", path]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    claimed = 4 if gpu else 5
    assert first.endswith(f": {claimed} of 6 nodes claimed by TrtPyExecutionProvider in 1 cluster (one engine each), "
                          f"{6 - claimed} left to the CPU provider, 5 folded as constants (11 nodes in the file)")

    from ep_trtpy.cli import harness

    if harness.stack_missing():
        pytest.skip(harness.stack_missing())
    by_op = harness.assignment_by_op(harness.create_session(path, "trtpy"))
    ran = {op: sum(per.values()) for op, per in by_op.items()}
    expected = {op: c["claimed"] + c["cpu"] for op, c in doc["per_op"].items() if c["claimed"] + c["cpu"]}
    assert ran == expected
    ours = {op: per.get(harness.EP_NAME, 0) for op, per in by_op.items()}
    assert ours == {op: c["claimed"] for op, c in doc["per_op"].items() if c["claimed"] + c["cpu"]}
