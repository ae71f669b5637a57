"""GPU tests of README's "Numerics at the edges": the cases of tests/ep_trtpy/ops/numerics_cases.py (NaN and +-inf
per op, windows larger than the input, empty reductions; expected outputs from the written rule) lowered onto our
kernels and run in an engine, in float32 and float16: reduce (warp rows, block rows, columns), argmax/argmin, pool,
pool_nhwc, softmax (the three launch shapes), layernorm, pointwise, and the unfused attention path. The reference
backend runs the same cases in tests/ep_trtpy/ops/test_ops_numerics.py.

test_library_backed_kernels_follow_the_rule holds the cases whose activation or softmax a library computes (cuDNN's
fused ReLU/Clip of an NCHW convolution, cuBLASLt's ReLU epilogue, cuDNN's flash attention for float16): a failure
there means the library drops NaN, not that our code does. See kernel_harness.py for EP_TRTPY_KERNEL_TESTS_EMULATE."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from kernel_harness import Case, In, check_case, gpu_marks, ir_graph

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ep_trtpy" / "ops"))

from numerics_cases import NumCase, internal_cases, onnx_cases  # noqa: E402

pytestmark = gpu_marks

LIBRARY = ("FusedConv-nchw", "FusedMatMul", "Attention-nan-inf-masked-float16")


def _library(c: NumCase) -> bool:
    return any(c.id.startswith(p) or c.id == p for p in LIBRARY)


ALL = onnx_cases() + internal_cases() + onnx_cases(np.float16) + internal_cases(np.float16)
OURS = [c for c in ALL if not _library(c)]
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
