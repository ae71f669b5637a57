"""ONNX backend node conformance through TrtPyExecutionProvider (the whole suite, once per test session).

For every case whose op our support rules claim, ORT must assign the node to our EP and the outputs must match
the ONNX expected data; every case we do not claim must still run on the CPU fallback exactly as CPU-only.
"""

from __future__ import annotations

import pytest

from ep_trtpy.cli import conformance_runner, harness


@pytest.fixture(scope="module")
def report() -> conformance_runner.Report:
    why = harness.stack_missing()
    if why:
        pytest.skip(why)
    return conformance_runner.run()


def _describe(results: list[conformance_runner.CaseResult], limit: int = 40) -> str:
    lines = [f"{r.name} ({r.op}) {r.status}/{r.failure}: {r.detail}" for r in results[:limit]]
    if len(results) > limit:
        lines.append(f"... and {len(results) - limit} more")
    return "\n".join(lines)


def test_ep_is_registered(report: conformance_runner.Report) -> None:
    assert report.ep_available, "TrtPyExecutionProvider is not registered with onnxruntime"


def test_every_claimed_case_is_assigned_to_the_ep(report: conformance_runner.Report) -> None:
    missing = report.not_assigned()
    assert not missing, "support rules claim these nodes but ORT did not assign them to our EP:\n" + _describe(missing)


def test_no_failures(report: conformance_runner.Report) -> None:
    errors = report.errors()
    assert not errors, f"{len(errors)} conformance errors:\n" + _describe(errors)


@pytest.mark.parametrize("op", ["Add", "Mul", "Relu", "Sigmoid", "Conv", "MatMul", "Gemm", "Softmax", "Transpose",
                                "Concat", "MaxPool", "GlobalAveragePool"])
def test_core_ops_are_claimed_and_pass(report: conformance_runner.Report, op: str) -> None:
    """Guards against a suite that passes because nothing is claimed: each core op has cases that ran on our EP."""
    row = report.by_op().get(op)
    assert row is not None, f"no backend case for {op}"
    if row["skipped"] == sum(row.values()):
        pytest.skip(f"ORT {report.ort_version} cannot load any {op} case (opset too new)")
    assert row["passed"] > 0, f"no {op} case ran on our EP: {row}"
