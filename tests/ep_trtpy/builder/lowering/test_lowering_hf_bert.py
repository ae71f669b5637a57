"""The HuggingFace BertModel exports (tests/fixtures/hf_bert/) optimized by the pass pipeline, lowered onto our
kernels and executed by the kernel emulator, against ONNX Runtime's CPU provider on the original model: the CPU
stand-in for the GPU engine of tests/ep_trtpy/test_hf_bert.py."""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from kernel_emulator import execute

from ep_trtpy.builder.build import optimize_with_context
from ep_trtpy.builder.lowering import lower
from ep_trtpy.options import parse
from graph_partitioner import onnx_io

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "hf_bert")
with open(os.path.join(FIXTURES, "versions.json")) as _f:
    FILES = json.load(_f)["files"]


def feeds_for(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for i in model.graph.input:
        shape = tuple(d.dim_value or (2, 7)[k] for k, d in enumerate(i.type.tensor_type.shape.dim))
        if i.name == "attention_mask":
            out[i.name] = np.ones(shape, np.int64)
            out[i.name][-1, 3:] = 0
        else:
            out[i.name] = rng.integers(0, 100 if i.name == "input_ids" else 2, shape).astype(np.int64)
    return out


@pytest.mark.parametrize("name", FILES)
def test_hf_bert_plan_matches_onnxruntime(name: str) -> None:
    path = os.path.join(FIXTURES, name)
    model = onnx.load(path)
    feeds = feeds_for(model)
    options = parse({"tf32_enable": "0"})
    graph, _ = optimize_with_context(onnx_io.graph_from_onnx(model), {k: v.shape for k, v in feeds.items()}, options)
    plan, weights = lower(graph, options)
    assert {"gemm", "layernorm"} <= {lay.kernel for lay in plan.layers}
    got = execute(plan, weights, [feeds[v.name] for v in graph.inputs])
    want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * float(np.abs(w).max()))
