"""The conformance runner's classification, exercised with stub partitioners (and the real one) on the CPU provider
alone, so it runs everywhere, with or without our EP."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from ep_trtpy.cli import conformance_runner


@pytest.fixture(scope="module")
def cases() -> list:
    return conformance_runner.select_cases(conformance_runner.collect_cases(), ops=["Relu", "Add", "Softmax"])


def _refuse_all(model: onnx.ModelProto) -> tuple[list[str], dict[str, str]]:
    return [], {n.name: "stub: refused" for n in model.graph.node}


def _claim_relu(model: onnx.ModelProto) -> tuple[list[str], dict[str, str]]:
    claimed = [n.name for n in model.graph.node if n.op_type == "Relu"]
    return claimed, {n.name: "stub" for n in model.graph.node if n.op_type != "Relu"}


def test_case_op_names_the_op_under_test(cases: list) -> None:
    by_name = {c.name: c for c in conformance_runner.collect_cases()}
    assert conformance_runner.case_op(by_name["test_relu"]) == "Relu"
    assert conformance_runner.case_op(by_name["test_softmax_axis_0_expanded"]) == "Softmax"
    assert conformance_runner.case_op(by_name["test_layer_normalization_2d_axis0_expanded"]) == "LayerNormalization"


def test_unclaimed_cases_fall_back_to_cpu(cases: list) -> None:
    report = conformance_runner.run(cases, partition_fn=_refuse_all, require_ep=False, session_provider="cpu")
    counts = report.counts()
    assert counts["not_claimed"] > 10
    assert counts["failed"] == counts["fallback_failed"] == counts["passed"] == 0
    relu = next(r for r in report.results if r.name == "test_relu")
    assert relu.status == "not_claimed" and relu.reasons == {"Relu_0": "stub: refused"}


def test_claimed_but_not_assigned_is_an_error(cases: list) -> None:
    report = conformance_runner.run(cases, partition_fn=_claim_relu, require_ep=False, session_provider="cpu")
    relu = next(r for r in report.results if r.name == "test_relu")
    assert relu.status == "failed" and relu.failure == "not_assigned"
    assert relu in report.not_assigned() and relu in report.errors()
    assert "Relu" in report.table() and "TOTAL" in report.table()


def test_wrong_output_is_detected() -> None:
    """A case whose expected data is wrong fails as wrong_output when claimed and assigned (here: assigned to the
    CPU provider standing in for ours)."""
    node = helper.make_node("Relu", ["x"], ["y"], name="r")
    model = helper.make_model(helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [3])],
                                                [helper.make_tensor_value_info("y", 1, [3])]),
                              opset_imports=[helper.make_opsetid("", 17)])
    x = np.array([-1.0, 0.5, 2.0], np.float32)

    class Case:
        name = "test_fake_relu"
        rtol, atol = 1e-3, 1e-7

    Case.model = model
    Case.data_sets = [([x], [np.maximum(x, 0) + np.float32(1.0)])]
    r = conformance_runner.run_case(Case, partition_fn=lambda m: (["r"], {}), provider="cpu")
    assert r.status == "failed" and r.failure == "wrong_output", r
    Case.data_sets = [([x], [np.maximum(x, 0)])]
    r = conformance_runner.run_case(Case, partition_fn=lambda m: (["r"], {}), provider="cpu")
    assert r.status == "passed", r


def test_exclusions_have_reasons() -> None:
    names = {c.name for c in conformance_runner.collect_cases()}
    for case, reason in conformance_runner.EXCLUSIONS.items():
        assert case in names, f"excluded case {case} does not exist in this onnx"
        assert len(reason.split()) >= 8, f"exclusion of {case} needs a real reason"


def test_real_partitioner_reasons_and_claims(cases: list) -> None:
    """With graph_partitioner's own rules: Relu/Add/Softmax float cases are claimed (and, on the CPU stand-in,
    reported as not assigned); refused cases carry the partitioner's sentence for each node."""
    from ep_trtpy.cli import harness

    if harness.stack_missing() and "partition" in (harness.stack_missing() or ""):
        pytest.skip(harness.stack_missing())
    report = conformance_runner.run(cases, require_ep=False, session_provider="cpu")
    by_name = {r.name: r for r in report.results}
    assert by_name["test_relu"].claimed == ["Relu_0"] and by_name["test_relu"].failure == "not_assigned"
    refused = by_name["test_add_uint8"]
    assert refused.status == "not_claimed" and "uint8" in refused.reasons["Add_0"]


def test_our_ep_runs_the_cases_strict_float32_unless_told(cases: list, monkeypatch) -> None:
    seen = []

    def record(case, partition_fn, ep_options, provider, optimization, session_provider):
        seen.append(dict(ep_options or {}))
        return conformance_runner.CaseResult(case.name, "Relu", "skipped")

    monkeypatch.setattr(conformance_runner, "run_case", record)
    conformance_runner.run(cases[:1], require_ep=False)
    conformance_runner.run(cases[:1], require_ep=False, ep_options={"tf32_enable": "1", "fp16_enable": "1"})
    assert seen == [{"tf32_enable": "0"}, {"tf32_enable": "1", "fp16_enable": "1"}]
