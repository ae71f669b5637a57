"""Lowering a later build of a program against the weights of its first engine (ep_trtpy/builder/weight_reuse.py):
the HF BERT export built at sequence 7, then at 9 with a ConstMemo. The second plan's own blob (the tail) holds
only the shape-dependent weights, and on the assembled blob the kernel emulator computes exactly what the plan
lowered without a base computes."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from kernel_emulator import execute

from ep_trtpy.builder.build import optimize_with_context
from ep_trtpy.builder.lowering import lower, lower_with_context
from ep_trtpy.builder.weight_reuse import ConstMemo, WeightBase, assemble
from ep_trtpy.options import parse
from graph_partitioner import onnx_io

MODEL = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "hf_bert", "bert_tiny_eager_ts17.onnx")
FP16 = parse({"fp16_enable": "1"})


def _feeds(graph, seq: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seq)
    out = []
    for v in graph.inputs:
        x = rng.integers(0, 100 if v.name == "input_ids" else 2, (2, seq)).astype(np.int64)
        if v.name == "attention_mask":
            x[:] = 1
            x[-1, seq // 2:] = 0
        out.append(x)
    return out


@pytest.fixture(scope="module")
def program():
    return onnx_io.graph_from_onnx(onnx.load(MODEL))


def test_second_shape_shares_all_but_the_shape_dependent_weights_and_computes_the_same(program):
    memo = ConstMemo()
    shapes = {7: {v.name: (2, 7) for v in program.inputs}, 9: {v.name: (2, 9) for v in program.inputs}}
    first, _ = optimize_with_context(program, shapes[7], FP16, memo=memo)
    base = WeightBase.of(lower_with_context(first, FP16))
    graph, _ = optimize_with_context(program, shapes[9], FP16, memo=memo)
    shared, tail = lower(graph, FP16, base=base)
    plain, weights = lower(graph, FP16)

    assert shared.shared_weights_bytes == base.shared_bytes and plain.shared_weights_bytes == 0
    assert shared.weights_bytes == len(tail) < len(weights) // 10
    in_tail = {t.name for t in shared.tensors if t.kind == "weight" and t.offset >= base.shared_bytes}
    per_shape = {t.name for t in plain.tensors if t.kind == "weight" and 9 in t.shape}
    assert in_tail == per_shape and len(per_shape) >= 2  # the position embeddings and the mask's forms
    assert all(t.offset % 256 == 0 for t in shared.tensors if t.kind == "weight")

    feeds = _feeds(graph, 9)
    got = execute(shared, assemble(shared, tail, base), feeds)
    want = execute(plain, weights, feeds)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    # attention in the specialized plan is marked varying (cuDNN builds it for dynamic shapes); not in the other
    attn = [(a, b) for a, b in zip(shared.layers, plain.layers) if a.kernel == "attention"]
    assert attn and all(a.ints[:14] == b.ints and a.ints[14:] == [1] and len(b.ints) == 14 for a, b in attn)


def test_a_plan_lowered_against_itself_appends_nothing(program):
    graph, _ = optimize_with_context(program, {v.name: (2, 7) for v in program.inputs}, FP16)
    ctx = lower_with_context(graph, FP16)
    plan, tail = lower(graph, FP16, base=WeightBase.of(ctx))
    assert len(tail) == 0 and plan.weights_bytes == 0
    feeds = _feeds(graph, 7)
    for g, w in zip(execute(plan, assemble(plan, tail, WeightBase.of(ctx)), feeds),
                    execute(ctx.plan, ctx.weights, feeds)):
        np.testing.assert_array_equal(g, w)

