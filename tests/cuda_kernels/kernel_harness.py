"""Harness for the GPU tests of our own kernels (test_kernels_*.py).

Each test builds a tiny IR graph (usually one ONNX node, from lowering_testutil.node_case, whose expected outputs
come from ONNX Runtime's CPU provider or from pointwise_program.run), lowers it with
ep_trtpy.builder.lowering.lower, builds a native engine with ep_trtpy.runtime.build_engine and runs it on cupy
arrays, with every output buffer poisoned (0xA5 bytes) before the run. Every case runs twice (the second time over
0x5A poison) and the two results must be bitwise identical, so an element no kernel writes cannot pass.

Diagnostics: a mismatch reports the kernels and parameters of every layer, the worst element (index, got,
expected) and the number of mismatches.

EP_TRTPY_KERNEL_TESTS_EMULATE=1 runs the same tests on a machine without a GPU through the numpy emulator of the
kernels (tests/ep_trtpy/builder/lowering/kernel_emulator.py): that checks the tests themselves, not the CUDA code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ep_trtpy" / "builder" / "lowering"))

from kernel_emulator import execute as emulate  # noqa: E402
from lowering_testutil import Case, In, ir_graph, node_case, rand  # noqa: E402,F401

import ep_trtpy  # noqa: E402
from ep_trtpy.builder.lowering import lower  # noqa: E402
from ep_trtpy.engine.plan import Plan  # noqa: E402
from graph_partitioner.ir import np_dtype  # noqa: E402

EMULATE = os.environ.get("EP_TRTPY_KERNEL_TESTS_EMULATE", "") == "1"
HAVE_GPU = ep_trtpy.has_gpu()

gpu_marks = [pytest.mark.gpu,
             pytest.mark.skipif(not (HAVE_GPU or EMULATE),
                                reason="needs an NVIDIA GPU with a CUDA 13 driver (or EP_TRTPY_KERNEL_TESTS_EMULATE=1 "
                                       "to dry-run the tests through the numpy kernel emulator)")]


def describe(plan: Plan) -> str:
    lines = []
    for i, lay in enumerate(plan.layers):
        ints = lay.ints if len(lay.ints) <= 40 else lay.ints[:40] + ["..."]
        lines.append(f"  layer {i} {lay.kernel} in={lay.inputs} out={lay.outputs} ints={ints} floats={lay.floats[:8]}")
    return "\n".join(lines)


def _output_tensor(plan: Plan, k: int) -> Any:
    for t in plan.tensors:
        if t.kind == "output" and t.index == k:
            return t
    raise AssertionError(f"plan has no tensor for output {k}")


def _run_gpu_once(engine: Any, plan: Plan, feeds: Sequence[np.ndarray], poison: int) -> list[np.ndarray]:
    import cupy as cp

    ins = [cp.asarray(np.ascontiguousarray(x)) for x in feeds]
    outs = []
    for k in range(plan.n_outputs):
        t = _output_tensor(plan, k)
        buf = cp.empty(tuple(t.shape), dtype=np_dtype(t.dtype))
        buf.reshape(-1).view(cp.uint8).fill(poison)
        outs.append(buf)
    stream = cp.cuda.Stream(non_blocking=True)
    cp.cuda.Device().synchronize()  # the poison fills ran on the default stream
    engine.run([int(x.data.ptr) for x in ins], [int(y.data.ptr) for y in outs], int(stream.ptr))
    stream.synchronize()
    return [cp.asnumpy(y) for y in outs]


def run_plan(plan: Plan, weights: bytes, feeds: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Outputs of the plan on the GPU (twice, over different poison; must agree bitwise) or in the emulator."""
    if EMULATE and not HAVE_GPU:
        return emulate(plan, weights, feeds)
    from ep_trtpy.runtime import build_engine

    engine = build_engine(plan, weights, 0)
    first = _run_gpu_once(engine, plan, feeds, 0xA5)
    second = _run_gpu_once(engine, plan, feeds, 0x5A)
    for k, (a, b) in enumerate(zip(first, second)):
        if a.tobytes() != b.tobytes():
            bad = np.flatnonzero(a.reshape(-1).view(np.uint8) != b.reshape(-1).view(np.uint8))
            raise AssertionError(f"output {k} differs between two runs over different poison at byte(s) "
                                 f"{bad[:10].tolist()} (elements not written, or a race)\n{describe(plan)}")
    return first


def compare(got: np.ndarray, want: np.ndarray, rtol: float, atol: float, what: str, plan: Plan,
            exact: bool = False) -> None:
    """assert_allclose with NaN == NaN, shapes and dtypes equal, and a diagnosis naming the worst element."""
    if got.shape != want.shape or got.dtype != want.dtype:
        raise AssertionError(f"{what}: got {got.dtype}{list(got.shape)}, expected {want.dtype}{list(want.shape)}"
                             f"\n{describe(plan)}")
    if got.size == 0:
        return
    if exact or want.dtype.kind in "biu":
        bad = got != want
        if want.dtype.kind == "f":
            bad &= ~(np.isnan(got) & np.isnan(want))
    else:
        g, w = got.astype(np.float64), want.astype(np.float64)
        with np.errstate(invalid="ignore"):
            err = np.abs(g - w)
            bad = ~((err <= atol + rtol * np.abs(w)) | (np.isnan(g) & np.isnan(w)) | (g == w))
    if bad.any():
        flat = np.flatnonzero(bad.reshape(-1))
        g, w = got.reshape(-1), want.reshape(-1)
        if want.dtype.kind == "f":
            with np.errstate(invalid="ignore"):
                e = np.abs(g.astype(np.float64) - w.astype(np.float64))
                e = np.where(np.isnan(e), np.inf, e)
            worst = int(flat[np.argmax(e[flat])])
        else:
            worst = int(flat[0])
        idx = np.unravel_index(worst, want.shape) if want.ndim else ()
        raise AssertionError(
            f"{what}: {len(flat)} of {want.size} elements differ (rtol={rtol}, atol={atol}); worst at {idx}: "
            f"got {g[worst]!r}, expected {w[worst]!r}; first bad flat indices {flat[:8].tolist()}\n{describe(plan)}")


def check_case(case: Case, rtol: float = 1e-5, atol: float = 1e-6, exact: bool = False,
               kernels: Sequence[str] | None = None) -> Plan:
    """Lower, run and compare every output of a node case. `kernels`: the expected kernel list (guards against
    a case that folded to constants and so tested nothing)."""
    plan, weights = lower(case.graph)
    if kernels is not None:
        got_k = [lay.kernel for lay in plan.layers]
        assert got_k == list(kernels), f"expected kernels {list(kernels)}, lowering emitted {got_k}"
    outs = run_plan(plan, weights, case.feeds)
    for k, (g, w) in enumerate(zip(outs, case.expected)):
        compare(g, w, rtol, atol, f"output {k}", plan, exact)
    return plan


def fp16_case(op: str, inputs: Sequence[In | None], attrs: dict | None = None, opset: int = 18,
              cast_inputs: Sequence[int] | None = None) -> Case:
    """A float16 node whose reference is the float32 node (ORT CPU) on the same (fp16-representable) values.
    `cast_inputs`: indices of the inputs to make float16 (default: every float32 input)."""
    attrs = dict(attrs or {})
    ins32 = [None if i is None else In(i.name, i.array.astype(np.float16).astype(np.float32)
                                       if i.array.dtype == np.float32 else i.array, i.const) for i in inputs]
    ref = node_case(op, ins32, attrs, opset=opset)
    which = set(range(len(inputs))) if cast_inputs is None else set(cast_inputs)
    ins16 = [None if i is None else In(i.name, i.array.astype(np.float16) if (k in which and i.array.dtype ==
                                                                               np.float32) else i.array, i.const)
             for k, i in enumerate(ins32)]
    expected = [e.astype(np.float16) if e.dtype == np.float32 else e for e in ref.expected]
    graph = ir_graph(op, ins16, attrs, expected, opset)
    feeds = [i.array for i in ins16 if i is not None and not i.const]
    return Case(graph, feeds, expected, ref.model)
