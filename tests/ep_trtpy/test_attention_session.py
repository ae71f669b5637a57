"""The HuggingFace BertModel exports through real ORT sessions with our EP (on this machine's backend): every node
runs where it ran without the attention passes, the built engines hold ep_trtpy::Attention nodes (read back from
the engine cache), and the outputs match ORT's CPU provider."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ep_trtpy.cli import harness
from ep_trtpy.builder import pipeline
from ep_trtpy.engine import format as engine_format

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hf_bert"
HF = ["bert_tiny_eager_ts17.onnx", "bert_tiny_sdpa_ts17.onnx", "bert_tiny_notype_ts17.onnx",
      "bert_tiny_eager_dynamo18.onnx"]
ATTENTION_PASSES = ("fuse_attention", "merge_qkv")


def _feeds(model) -> dict[str, np.ndarray]:  # noqa: ANN001
    rng = np.random.default_rng(9)
    mask = np.ones((2, 8), np.int64)
    mask[1, 5:] = 0
    all_feeds = {"input_ids": rng.integers(0, 100, (2, 8)), "attention_mask": mask,
                 "token_type_ids": np.zeros((2, 8), np.int64)}
    return {i.name: all_feeds[i.name] for i in model.graph.input}


def _engine_ops(cache: Path) -> list[str]:
    """Op keys of every node in the optimized graphs of the engines in `cache`."""
    keys = []
    for path in sorted(cache.glob("TrtPy_*.engine")):
        model = engine_format.decode(path.read_bytes()).model()
        keys += [f"{n.domain}::{n.op_type}" if n.domain else n.op_type for n in model.graph.node]
    return keys


def _run(model, feeds: dict, cache: Path):  # noqa: ANN001, ANN202
    sess = harness.create_session(model, "trtpy", ep_options={"engine_cache_enable": "1", "tf32_enable": "0",
                                                              "engine_cache_path": str(cache)})
    return sess.run(None, feeds), harness.node_assignment(sess)


@pytest.mark.parametrize("name", HF)
def test_hf_export_runs_where_it_did_with_fused_attention(name: str, tmp_path: Path, monkeypatch) -> None:
    import onnx

    model = onnx.load(str(FIXTURES / name))
    feeds = _feeds(model)
    (want,) = harness.create_session(model, "cpu").run(None, feeds)

    (got,), placed = _run(model, feeds, tmp_path / "fused")
    ops = _engine_ops(tmp_path / "fused")
    on_cpu = sorted(n for n, ep in placed.items() if ep != harness.EP_NAME)
    if on_cpu:  # a node left to the CPU (GatherND of the dynamo export today) may cut a layer's attention in two
        assert ops.count("ep_trtpy::Attention") >= 1, (on_cpu, ops)
    else:
        assert ops.count("ep_trtpy::Attention") == 2 and "Softmax" not in ops, ops
    assert harness.compare("last_hidden_state", got, want, network=True).ok

    real_load = pipeline.load_pass
    skip = SimpleNamespace(NAME="skipped", run=lambda graph, ctx: False)
    monkeypatch.setattr(pipeline, "load_pass", lambda n: skip if n in ATTENTION_PASSES else real_load(n))
    (plain,), placed_before = _run(model, feeds, tmp_path / "plain")
    assert "ep_trtpy::Attention" not in _engine_ops(tmp_path / "plain")
    assert placed == placed_before
    claimed = [n for n, ep in placed.items() if ep == harness.EP_NAME]
    assert any("attention" in n.lower() or "matmul" in n.lower() for n in claimed)
    assert harness.compare("last_hidden_state", got, plain, network=True).ok


@pytest.mark.parametrize("name", HF[:2])
def test_low_precision_runs_attention_in_float16(name: str, tmp_path: Path) -> None:
    import onnx

    model = onnx.load(str(FIXTURES / name))
    feeds = _feeds(model)
    (want,) = harness.create_session(model, "cpu").run(None, feeds)
    sess = harness.create_session(model, "trtpy", ep_options={"engine_cache_enable": "1", "fp16_enable": "1",
                                                              "engine_cache_path": str(tmp_path)})
    (got,) = sess.run(None, feeds)
    assert got.dtype == np.float32
    cos = float((got.astype(np.float64) * want).sum() / np.linalg.norm(got) / np.linalg.norm(want))
    assert cos >= 0.999
    (path,) = tmp_path.glob("TrtPy_*.engine")
    graph = engine_format.decode(path.read_bytes()).model().graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(graph.value_info) + list(graph.input)}
    atts = [n for n in graph.node if n.op_type == "Attention"]
    assert len(atts) == 2
    assert all(types.get(n.input[0]) == onnx.TensorProto.FLOAT16 and types.get(n.input[3]) ==
               onnx.TensorProto.FLOAT16 for n in atts)
