"""GPU tests of README's "Numerics at the edges": the cases of tests/ep_trtpy/ops/numerics_cases.py (NaN and +-inf
per op, windows larger than the input, empty reductions; expected outputs from the written rule) lowered onto our
kernels and run in an engine, in float32 and float16: reduce (warp rows, block rows, columns), argmax/argmin, pool,
pool_nhwc, softmax (the three launch shapes), layernorm, pointwise, and the unfused attention path. The reference
backend runs the same cases in tests/ep_trtpy/ops/test_ops_numerics.py.

test_library_backed_kernels_follow_the_rule holds the cases whose activation or softmax a library computes (cuDNN's
fused ReLU/Clip of an NCHW convolution, cuDNN's flash attention for float16): a failure there means the library
drops NaN, not that our code does. test_gemm_relu_follows_the_rule_of_its_tactic_family runs the GEMM + Relu cases
on every cuBLASLt candidate in turn: where cuBLASLt's epilogue applies the Relu, a NaN gives NaN or 0 (the kernel
decides, README), elsewhere our epilogue kernel keeps NaN. See kernel_harness.py for
EP_TRTPY_KERNEL_TESTS_EMULATE."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from kernel_harness import Case, In, check_case, compare, gpu_marks, ir_graph, run_plan

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ep_trtpy" / "ops"))

from numerics_cases import NumCase, internal_cases, onnx_cases  # noqa: E402

from ep_trtpy.builder.lowering import lower  # noqa: E402
from ep_trtpy.engine.plan import LayerSpec  # noqa: E402

pytestmark = gpu_marks

LIBRARY = ("FusedConv-nchw", "Attention-nan-inf-masked-float16")
MAX_LT_CANDIDATES = 8
"""kernels_gemm.cpp asks cuBLASLt's heuristic for at most this many algorithms (lt:0 .. lt:7)."""


def _library(c: NumCase) -> bool:
    return any(c.id.startswith(p) or c.id == p for p in LIBRARY)


ALL = onnx_cases() + internal_cases() + onnx_cases(np.float16) + internal_cases(np.float16)
GEMMS = [c for c in ALL if c.id.startswith("FusedMatMul")]
OURS = [c for c in ALL if not _library(c) and c not in GEMMS]
LIBS = [c for c in ALL if _library(c)]


def run_case(c: NumCase) -> None:
    ins = [None if a is None else In(a.name, a.array, a.const) for a in c.inputs]
    graph = ir_graph(c.op_type, ins, c.attrs, c.expected, c.opset, domain=c.domain)
    feeds = [a.array for a in c.inputs if a is not None and not a.const]
    check_case(Case(graph, feeds, c.expected, None), rtol=c.rtol, atol=c.atol, kernels=c.kernels)


@pytest.mark.parametrize("c", OURS, ids=repr)
def test_our_kernels_follow_the_rule(c: NumCase) -> None:
    run_case(c)


@pytest.mark.parametrize("c", LIBS, ids=repr)
def test_library_backed_kernels_follow_the_rule(c: NumCase) -> None:
    run_case(c)


def relu_in_cublaslt(layer: LayerSpec) -> bool:
    """Whether cuBLASLt's epilogue applies this gemm layer's Relu, as kernels_gemm.cpp decides: a primary plan
    (tactic "lt:<i>", not "lt-fallback") of a GEMM with no C, or a C that is a bias row (strides 0, 0, 1) with
    beta 1. Otherwise our epilogue kernel applies it."""
    act, c_sb, c_sr, c_sc = layer.ints[8:12]
    has_c = len(layer.inputs) == 3 and layer.inputs[2] >= 0
    bias_row = has_c and (c_sb, c_sr, c_sc) == (0, 0, 1) and layer.floats[1] == 1.0
    return act == 1 and layer.tactic_name.startswith("lt:") and (not has_c or bias_row)


@pytest.mark.parametrize("c", GEMMS, ids=repr)
def test_gemm_relu_follows_the_rule_of_its_tactic_family(c: NumCase) -> None:
    """Each cuBLASLt candidate in turn (a plan naming tactic lt:i; the sweep ends where cuBLASLt offers fewer and
    the engine picks another): in cuBLASLt's epilogue every NaN of the rule gives NaN, or every one gives +0 (one
    behaviour per kernel); in ours, NaN. Everything else follows the rule. Prints the behaviour per tactic (-s)."""
    ins = [None if a is None else In(a.name, a.array, a.const) for a in c.inputs]
    graph = ir_graph(c.op_type, ins, c.attrs, c.expected, c.opset, domain=c.domain)
    feeds = [a.array for a in c.inputs if a is not None and not a.const]
    want = c.expected[0]
    nan = np.isnan(want)
    assert nan.any() and (want[~nan] > 0).any() and (want[~nan] == 0).any(), "the case must hold NaN, +x and 0"
    seen: list[str] = []
    for i in range(MAX_LT_CANDIDATES):
        plan, weights = lower(graph)
        assert [lay.kernel for lay in plan.layers] == list(c.kernels)
        plan.layers[0].tactic_name = f"lt:{i}"
        (got,) = run_plan(plan, weights, feeds)
        layer = plan.layers[0]
        if layer.tactic_name != f"lt:{i}" and seen:
            break  # cuBLASLt has fewer candidates: the engine chose again
        cublaslt = relu_in_cublaslt(layer)
        assert cublaslt == ("rowbias" not in c.id and layer.tactic_name.startswith("lt:")), (
            f"{c.id}: tactic {layer.tactic_name!r} puts the Relu in {'cuBLASLt' if cublaslt else 'our kernel'}")
        expected = want.copy()
        if cublaslt and (got[nan] == 0).all():
            expected[nan] = 0  # this kernel's max(x, 0) drops NaN
        compare(got, expected, c.rtol, c.atol, f"{c.id} tactic {layer.tactic_name}", plan)
        seen.append(f"{layer.tactic_name} NaN->{'NaN' if np.isnan(got[nan]).all() else '0'}"
                    f"{'' if cublaslt else ' (our epilogue)'}")
        if not layer.tactic_name.startswith("lt:"):
            break  # lt-fallback: one plan only
    print(f"{c.id}: " + ", ".join(seen))
