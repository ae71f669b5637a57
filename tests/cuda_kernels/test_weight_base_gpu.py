"""GPU: a plan lowered against the weights of its program's first engine (ep_trtpy/builder/weight_reuse.py), run
by the native runtime on the assembled blob (the base's weights, then its tail), computes what the ordinary plan
computes; and so does the native weight sharing, which hands the kernels the first engine's device weights below
``plan.shared_weights_bytes`` and uploads only the tail (build_engine(..., base=))."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from kernel_harness import EMULATE, HAVE_GPU, _run_gpu_once, compare, gpu_marks, run_plan

from ep_trtpy.builder.build import optimize_with_context
from ep_trtpy.builder.lowering import lower, lower_with_context
from ep_trtpy.builder.weight_reuse import ConstMemo, WeightBase, assemble
from ep_trtpy.options import parse
from graph_partitioner import onnx_io

pytestmark = gpu_marks
MODEL = os.path.join(os.path.dirname(__file__), "..", "fixtures", "hf_bert", "bert_tiny_eager_ts17.onnx")


@pytest.mark.parametrize("fp16", [False, True])
def test_shared_plan_on_the_assembled_blob_matches_the_ordinary_plan(fp16: bool):
    options = parse({"fp16_enable": "1" if fp16 else "0", "tf32_enable": "0"})
    program = onnx_io.graph_from_onnx(onnx.load(MODEL))
    memo = ConstMemo()
    first, _ = optimize_with_context(program, {v.name: (2, 7) for v in program.inputs}, options, memo=memo,
                                     backend="cuda")
    lowered = lower_with_context(first, options)
    base = WeightBase.of(lowered)
    graph, _ = optimize_with_context(program, {v.name: (2, 11) for v in program.inputs}, options, memo=memo,
                                     backend="cuda")
    shared, tail = lower(graph, options, base=base)
    plain, weights = lower(graph, options)
    assert 0 < len(tail) < len(weights) // 10
    rng = np.random.default_rng(0)
    feeds = [rng.integers(0, 2 if v.name != "input_ids" else 100, (2, 11)).astype(np.int64) for v in graph.inputs]
    got = run_plan(shared, assemble(shared, tail, base), feeds)
    want = run_plan(plain, weights, feeds)
    tol = 2e-3 if fp16 else 1e-5
    for k, (g, w) in enumerate(zip(got, want)):
        compare(g, w, tol, tol, f"output {k}", shared)
    if EMULATE and not HAVE_GPU:
        return
    from ep_trtpy.runtime import build_engine

    base_engine = build_engine(lowered.plan, lowered.weights, 0)
    engine = build_engine(shared, tail, 0, base=base_engine)
    assert engine.weights_bytes == len(tail) and engine.shared_weights_bytes == base.shared_bytes
    del base_engine  # the shared device weights stay alive with the engine that reads them
    for k, (g, w) in enumerate(zip(_run_gpu_once(engine, shared, feeds, 0xA5), want)):
        compare(g, w, tol, tol, f"output {k} (native sharing)", shared)
