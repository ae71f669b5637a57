"""Builds of one program at several shapes with a ConstMemo: the passes give the same graphs with a memo as
without, and later builds get the first build's weight arrays back (the lowering side:
tests/ep_trtpy/builder/lowering/test_lowering_weight_base.py)."""

from __future__ import annotations

import numpy as np
import pytest

from ep_trtpy import models
from ep_trtpy.builder.build import optimize_with_context
from ep_trtpy.builder.weight_reuse import SMALL_BYTES, ConstMemo
from ep_trtpy.engine.artifact import Device
from ep_trtpy.options import parse
from graph_partitioner import onnx_io

FP16 = parse({"fp16_enable": "1"})
H200 = Device(0, "H200", (9, 0))


def _serialized(graph) -> bytes:
    return onnx_io.graph_to_onnx(graph).SerializeToString()


def _big_consts(graph) -> dict[str, np.ndarray]:
    return {v.name: v.const for v in graph.values.values() if v.const is not None and v.const.nbytes > SMALL_BYTES}


# Each model runs the passes named beside it; the memo must hold an entry of every transform they derive.
CASES = {
    "bert": (dict(ci=True, form="decomposed"), {"batch": 1, "sequence": 8}, {"sequence": 12},
             {"to_low", "concatenate", "qkv_bias", "intern"}),
    "resnet50": (dict(ci=True), {"batch": 1}, {"batch": 2}, {"to_low", "bn_scale", "transpose", "intern"}),
}


def _shapes(name: str, kw: dict, **dims: int) -> dict[str, tuple[int, ...]]:
    feeds = models.make_feeds(name, batch=dims.get("batch", 1), ci=True,
                              **({"sequence": dims["sequence"]} if "sequence" in dims else {}))
    return {k: v.shape for k, v in feeds.items()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_passes_give_the_same_graph_with_a_memo_and_reuse_its_arrays(name: str):
    kw, first, second, transforms = CASES[name]
    graph = onnx_io.graph_from_onnx(models.build(name, **kw))
    shapes1 = _shapes(name, kw, **first)
    plain, _ = optimize_with_context(graph, shapes1, FP16, backend="cuda", device=H200)
    memo = ConstMemo()
    with_memo, _ = optimize_with_context(graph, shapes1, FP16, backend="cuda", device=H200, memo=memo)
    assert _serialized(with_memo) == _serialized(plain)
    assert transforms <= memo.names()
    again, _ = optimize_with_context(graph, shapes1, FP16, backend="cuda", device=H200, memo=memo)
    a, b = _big_consts(with_memo), _big_consts(again)
    assert a and a.keys() == b.keys() and all(a[k] is b[k] for k in a)
    misses = memo.misses
    other, _ = optimize_with_context(graph, _shapes(name, kw, **{**first, **second}), FP16, backend="cuda",
                                     device=H200, memo=memo)
    c = _big_consts(other)
    shared = [k for k in a if k in c and a[k].shape == c[k].shape]
    assert shared and all(a[k] is c[k] for k in shared)
    assert memo.hits > 0 and memo.misses - misses < misses / 2
