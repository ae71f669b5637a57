"""HuggingFace BertModel exports (tests/fixtures/hf_bert/: TorchScript and dynamo exporters, eager and sdpa
attention, with and without token_type_ids, static and dynamic shapes) run through ORT as ONE engine of our EP:
every node is assigned to it (ORT's own record), and the outputs match ORT's CPU provider.

On a machine without a GPU the engine runs on the numpy reference backend; the lowering of the same graphs onto
our kernels is checked by tests/ep_trtpy/builder/lowering/test_lowering_hf_bert.py."""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest

import ep_trtpy
from ep_trtpy.cli import harness

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "hf_bert")
with open(os.path.join(FIXTURES, "versions.json")) as _f:
    FILES = json.load(_f)["files"]


def bert_feeds(model: onnx.ModelProto, batch: int, seq: int, seed: int) -> dict[str, np.ndarray]:
    """input_ids in the vocabulary (100), an attention mask with padding in the last row, token types 0/1."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in model.graph.input:
        dims = [d.dim_value or None for d in i.type.tensor_type.shape.dim]
        shape = (dims[0] or batch, dims[1] or seq)
        if i.name == "attention_mask":
            a = np.ones(shape, np.int64)
            a[-1, shape[1] * 2 // 3:] = 0
            feeds[i.name] = a
        else:
            feeds[i.name] = rng.integers(0, 100 if i.name == "input_ids" else 2, shape).astype(np.int64)
    return feeds


def max_rel(a: np.ndarray, e: np.ndarray) -> float:
    e64 = e.astype(np.float64)
    return float(np.max(np.abs(a.astype(np.float64) - e64)) / max(np.max(np.abs(e64)), 1e-30))


def test_the_fixture_list_covers_the_folder() -> None:
    on_disk = sorted(f for f in os.listdir(FIXTURES) if f.endswith(".onnx"))
    assert sorted(FILES) == on_disk and len(on_disk) >= 5


@pytest.mark.parametrize("name", FILES)
def test_hf_bert_export_runs_as_one_engine_and_matches_cpu(name: str) -> None:
    model = onnx.load(os.path.join(FIXTURES, name))
    ours = harness.create_session(model, "trtpy", ep_options={"tf32_enable": "0"})  # float32 to 1e-4
    cpu = harness.create_session(model, "cpu")
    placement = harness.node_assignment(ours)
    elsewhere = {n: ep for n, ep in placement.items() if ep != ep_trtpy.EP_NAME}
    assert placement and not elsewhere, f"nodes not on our EP: {elsewhere}"
    engines = [s for s in ours.get_provider_graph_assignment_info() if s.ep_name == ep_trtpy.EP_NAME]
    assert len(engines) == 1, f"{len(engines)} engines instead of one"
    ran = "gpu_engine_runs" if ep_trtpy.has_gpu() else "reference_runs"
    for k, (batch, seq) in enumerate([(2, 8), (3, 5)]):  # static exports keep their own [2, 8]
        feeds = bert_feeds(model, batch, seq, seed=k)
        before = ep_trtpy.runtime_stats()[ran]
        got, ref = ours.run(None, feeds), cpu.run(None, feeds)
        assert ep_trtpy.runtime_stats()[ran] > before, f"no {ran} recorded: the engine did not run"
        for g, r in zip(got, ref):
            assert g.shape == r.shape and g.dtype == r.dtype
            assert max_rel(g, r) <= 1e-4, f"{name} at batch {batch}, sequence {seq}"
