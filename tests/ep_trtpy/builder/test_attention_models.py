"""fuse_attention and merge_qkv on whole models: our generated BERT in every form and the HuggingFace exports in
tests/fixtures/hf_bert/. The optimized graph has one packed Attention per layer and no Softmax left, and its
outputs match ONNX Runtime's CPU provider on the original model (float32 tight, float16 and bfloat16 by
cosine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import graph_runner
from ep_trtpy import models
from ep_trtpy.models import bert
from ep_trtpy.builder.build import optimize_with_context
from ep_trtpy.options import parse
from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT16, Graph, Node
from graph_partitioner.onnx_io import graph_from_onnx
from graph_partitioner.partition import partition

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hf_bert"
HF = ["bert_tiny_eager_ts17.onnx", "bert_tiny_sdpa_ts17.onnx", "bert_tiny_notype_ts17.onnx",
      "bert_tiny_eager_dynamo18.onnx"]
HF_LAYERS = 2
DTYPES = {"fp32": FLOAT, "fp16": FLOAT16, "bf16": BFLOAT16}
OPTIONS = {"fp32": parse({"tf32_enable": "0"}), "fp16": parse({"fp16_enable": "1"}),
           "bf16": parse({"bf16_enable": "1"})}


def _ort_values(model: onnx.ModelProto, feeds: dict, names: list[str]) -> dict[str, np.ndarray]:
    """Values of `names` (graph outputs or intermediates) computed by ORT's CPU provider, optimizations off."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in have)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return dict(zip(names, sess.run(names, feeds)))


def _check(opt: Graph, layers: int, precision: str, feeds: dict, want: list[np.ndarray]) -> None:
    kinds = [n.op_type for n in opt.nodes]
    atts = [n for n in opt.nodes if n.op_type == "Attention"]
    assert len(atts) == layers and "Softmax" not in kinds, kinds
    assert all(a.attrs["qkv_packed"] == 1 and a.input(3) is not None for a in atts)
    dtype = DTYPES[precision]
    assert all(a.input(0).dtype == dtype and a.input(3).dtype == dtype and a.outputs[0].dtype == dtype for a in atts)
    got = graph_runner.run(opt, feeds)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        if w.dtype.kind != "f":  # shape arithmetic and masks that also leave the region
            np.testing.assert_array_equal(g, w)
        elif precision != "fp32":
            cos = float((g.astype(np.float64) * w).sum() / np.linalg.norm(g) / np.linalg.norm(w))
            assert cos >= 0.999, cos
        else:
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * float(np.abs(w).max()))


BERT_FORMS = [dict(form="fused"), dict(form="fused", opset=20), dict(form="decomposed"),
              dict(attention="einsum"), dict(attention="einsum", form="decomposed")]


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("knobs", BERT_FORMS, ids=lambda k: "-".join(f"{a}={b}" for a, b in k.items()))
def test_generated_bert(knobs: dict, precision: str) -> None:
    model = models.build("bert", ci=True, **knobs)
    feeds = models.make_feeds("bert", batch=2, seed=3, ci=True, sequence=8)
    want = _ort_values(model, feeds, [o.name for o in model.graph.output])
    g = graph_from_onnx(model)
    opt, ctx = optimize_with_context(g, {k: v.shape for k, v in feeds.items()},
                                     OPTIONS[precision])
    assert not [r for r in ctx.refusals if r.startswith(("fuse_attention", "merge_qkv"))]
    _check(opt, bert.CI["layers"], precision, feeds, [want[o.name] for o in model.graph.output])


def _claimed_region(graph: Graph) -> list[Node]:
    """The nodes the partitioner claims whose inputs do not come from a node it refuses (what one engine gets
    when the refused nodes run on the CPU, e.g. GatherND before it has a GPU kernel)."""
    refused = set(partition(graph).reasons)
    tainted: set[int] = set()
    keep = []
    for n in graph.nodes:
        if n.name in refused or any(v is not None and v.producer is not None and id(v.producer) in tainted
                                    for v in n.inputs):
            if n.name in refused:
                tainted.add(id(n))
            continue
        keep.append(n)
    return keep


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("name", HF)
def test_huggingface_exports(name: str, precision: str) -> None:
    model = onnx.load(str(FIXTURES / name))
    graph = graph_from_onnx(model)
    sub = graph.subgraph(_claimed_region(graph), "claimed")
    rng = np.random.default_rng(5)
    mask = np.ones((2, 8), np.int64)
    mask[1, 5:] = 0
    feeds = {"input_ids": rng.integers(0, 100, (2, 8)), "attention_mask": mask,
             "token_type_ids": np.zeros((2, 8), np.int64)}
    feeds = {i.name: feeds[i.name] for i in model.graph.input}
    values = _ort_values(model, feeds, sorted({v.name for v in sub.inputs + sub.outputs}))
    sub_feeds = {v.name: values[v.name] for v in sub.inputs}
    opt, ctx = optimize_with_context(sub, {k: v.shape for k, v in sub_feeds.items()},
                                     OPTIONS[precision])
    _check(opt, HF_LAYERS, precision, sub_feeds, [values[v.name] for v in sub.outputs])
