"""The real model sources of bench/profile (torchvision resnet50 / mobilenet_v2, HF BertModel).

Names, inputs and the missing-package path run everywhere; exports and the PyTorch runner need torch with
torchvision / transformers and skip with the reason where they are missing (CI has none of them)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import numpy as np
import pytest

from ep_trtpy.cli import harness
from ep_trtpy.cli import _bench_peers, _common, _real_models, build_parser

HERE = os.path.dirname(os.path.abspath(__file__))


def _tf32() -> bool:
    """Whether our float32 engines here use TF32 math (a GPU's default): judged with the 16-bit criterion."""
    import ep_trtpy

    return harness.engine_math({}, ep_trtpy.has_gpu()) == "tf32"


def _need(*packages: str) -> None:
    for p in packages:
        if importlib.util.find_spec(p) is None:
            pytest.skip(f"{p} is not installed here (the package does not depend on it)")


def test_sources_and_their_names() -> None:
    assert list(_real_models.SOURCES) == ["torchvision:resnet50", "torchvision:mobilenet_v2", "hf:bert-base"]
    assert _real_models.is_source("hf:bert-base") and not _real_models.is_source("model.onnx")
    with pytest.raises(ValueError, match="unknown model source 'hf:gpt2'; known: torchvision:resnet50"):
        _real_models.source("hf:gpt2")


def test_inputs_are_seeded_and_shaped() -> None:
    bert = _real_models.source("hf:bert-base")
    a, b = _real_models.make_inputs(bert, 4, seed=3), _real_models.make_inputs(bert, 4, seed=3)
    assert list(a) == list(bert.inputs)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    ids, mask, types = a["input_ids"], a["attention_mask"], a["token_type_ids"]
    assert ids.shape == mask.shape == types.shape == (4, 128) and ids.dtype == mask.dtype == np.int64
    assert 0 <= ids.min() and ids.max() < _real_models.BERT_VOCAB and not types.any()
    assert (np.diff(mask, axis=1) <= 0).all()  # ones then zeros in every row
    assert mask.sum(axis=1).tolist() == [128, 96, 128, 96]
    img = _real_models.make_inputs(_real_models.source("torchvision:resnet50"), 2)["input"]
    assert img.shape == (2, 3, 224, 224) and img.dtype == np.float32
    with pytest.raises(ValueError, match="batch must be >= 1, got 0"):
        _real_models.make_inputs(bert, 0)


def test_missing_packages_are_named(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("torch", "transformers")
                        else real(name, *a))
    src = _real_models.source("hf:bert-base")
    assert _real_models.missing(src) == "torch and transformers are not installed (needed by hf:bert-base)"
    args = build_parser().parse_args(["run", "--model", "hf:bert-base"])
    with pytest.raises(RuntimeError, match="torch and transformers are not installed"):
        _common.load(args)


def test_run_refuses_two_models() -> None:
    args = build_parser().parse_args(["run", "m.onnx", "--model", "hf:bert-base"])
    with pytest.raises(ValueError, match="exactly one of MODEL.onnx, --model SOURCE or --arch NAME"):
        _common.load(args)


def test_bert_vocab_is_bertconfigs() -> None:
    _need("transformers")
    from transformers import BertConfig

    assert BertConfig().vocab_size == _real_models.BERT_VOCAB


# ------------------------------------------------------------------------------------------ with torch --
@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):  # noqa: ANN001, ANN201
    _need("torch", "torchvision")
    src = _real_models.source("torchvision:mobilenet_v2")
    return _real_models.export_in_subprocess(src, str(tmp_path_factory.mktemp("export")))


def test_export_runs_whole_on_our_ep_and_matches_torch(mobilenet) -> None:
    import onnx
    import torch

    assert mobilenet.info["exporter"] == "torchscript" and mobilenet.info["onnx_opset"] == 17
    model = onnx.load(mobilenet.onnx_path)
    assert [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim[:1]] == ["batch"]
    feeds = _real_models.make_inputs(mobilenet.source, 3, seed=1)
    sess = harness.create_session(model, "trtpy")
    got = sess.run(None, feeds)[0]
    assert _common.placement_summary(sess) == "100 of 100 nodes on TrtPyExecutionProvider"
    module = _real_models.load_module(mobilenet.source, mobilenet.state_path)
    with torch.no_grad():
        want = module(torch.from_numpy(feeds["input"])).numpy()
    assert np.abs(want).max() > 0.1  # the calibrated BatchNorm keeps logits of order one
    cmp = harness.compare("logits", got, want, network=True, low_precision=_tf32())
    assert cmp.ok, cmp.line()


def test_an_export_is_reused(mobilenet) -> None:
    again = _real_models.export_in_subprocess(mobilenet.source, os.path.dirname(mobilenet.onnx_path))
    assert again.info.get("reused") and again.onnx_path == mobilenet.onnx_path


def _worker(tmp_path, model: dict, feeds: dict[str, np.ndarray], rows: list[tuple[str, str]]) -> list[dict]:
    """Run the torch worker on the CPU (compile mode 'default': reduce-overhead's CUDA graphs need a GPU)."""
    import subprocess

    np.savez(tmp_path / "f.npz", **feeds)
    jobs = [{"id": f"{p}_{m}", "batch": 2, "precision": p, "mode": m, "feeds": str(tmp_path / "f.npz"),
             "outputs": str(tmp_path / f"{p}_{m}.npz"), "result": str(tmp_path / f"{p}_{m}.json")} for p, m in rows]
    (tmp_path / "jobs.json").write_text(json.dumps({"model": model, "device": "cpu", "compile_mode": "default",
                                                   "iters": 2, "warmup": 0, "jobs": jobs}))
    worker = os.path.join(os.path.dirname(_real_models.__file__), "_torch_bench_worker.py")
    r = subprocess.run([sys.executable, worker, "--jobs", str(tmp_path / "jobs.json"), "--info",
                        str(tmp_path / "info.json")], capture_output=True, text=True, timeout=1200)
    results = [json.loads((tmp_path / f"{p}_{m}.json").read_text()) for p, m in rows]
    assert r.returncode == 0, [x.get("traceback") for x in results] + [r.stderr[-2000:]]
    return results


def test_torch_worker_runs_the_real_module(mobilenet, tmp_path) -> None:
    feeds = _real_models.make_inputs(mobilenet.source, 2)
    model = {"kind": "real", "name": mobilenet.source.name, "state": mobilenet.state_path}
    res = _worker(tmp_path, model, feeds, [("fp32", "eager"), ("bf16", "eager")])
    assert all(r["ok"] and len(r["samples_ms"]) == 2 for r in res)
    ref = harness.create_session(mobilenet.onnx_path, "cpu").run(None, feeds)[0]
    with np.load(tmp_path / "fp32_eager.npz") as out:
        cmp = harness.compare("logits", out["logits"], ref, network=True)
        assert cmp.ok, cmp.line()
    with np.load(tmp_path / "bf16_eager.npz") as out:  # bfloat16 weights and inputs: near, not equal
        cos = float(np.dot(out["logits"].ravel(), ref.ravel()) / np.linalg.norm(out["logits"]) / np.linalg.norm(ref))
        assert 0.95 < cos and not np.array_equal(out["logits"], ref)


@pytest.mark.slow
def test_torch_worker_compiles_the_real_module(mobilenet, tmp_path) -> None:
    feeds = _real_models.make_inputs(mobilenet.source, 2)
    model = {"kind": "real", "name": mobilenet.source.name, "state": mobilenet.state_path}
    (res,) = _worker(tmp_path, model, feeds, [("fp32", "compile")])
    assert res["ok"] and "compile mode default" in res["note"] and "graph breaks" not in res["note"]
    ref = harness.create_session(mobilenet.onnx_path, "cpu").run(None, feeds)[0]
    with np.load(tmp_path / "fp32_compile.npz") as out:
        cmp = harness.compare("logits", out["logits"], ref, network=True)
        assert cmp.ok, cmp.line()


@pytest.mark.slow
def test_dynamo_exporter_fallback(tmp_path) -> None:
    _need("torch", "torchvision", "onnxscript")
    src = _real_models.source("torchvision:mobilenet_v2")
    path = str(tmp_path / "m.onnx")
    info = _real_models.export(src, path, seed=0, exporter="dynamo")
    assert info["exporter"] == "dynamo" and "torchscript_error" not in info
    feeds = _real_models.make_inputs(src, 2)
    got = harness.create_session(path, "cpu").run(None, feeds)[0]
    ts = str(tmp_path / "ts.onnx")
    _real_models.export(src, ts, seed=0, exporter="torchscript")
    want = harness.create_session(ts, "cpu").run(None, feeds)[0]
    cmp = harness.compare("logits", got, want, network=True)
    assert cmp.ok, cmp.line()


@pytest.mark.slow
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_hf_bert_export_on_our_ep(tmp_path, attn: str) -> None:
    """HF BertModel (bert-base, seq 128, padded rows) through our EP on the reference backend: the numbers match
    the module, and its GEMMs, LayerNorms and Softmaxes run on our EP (what stays on the CPU is printed)."""
    _need("torch", "transformers")
    import torch

    src = _real_models.source("hf:bert-base")
    exported = _real_models.export_in_subprocess(src, str(tmp_path), attn_implementation=attn)
    assert exported.info["attn_implementation"] == attn
    feeds = _real_models.make_inputs(src, 2, seed=5)
    sess = harness.create_session(exported.onnx_path, "trtpy")
    got = sess.run(None, feeds)
    placement = _common.placement_summary(sess)
    print(f"HF BertModel ({attn}, {exported.info['exporter']} exporter): {placement}")
    by_op = harness.assignment_by_op(sess)
    for op in ("MatMul", "LayerNormalization", "Softmax"):
        assert set(by_op[op]) == {harness.EP_NAME}, (op, by_op[op])
    module = _real_models.load_module(src, exported.state_path, attn)
    with torch.no_grad():
        want = module(*[torch.from_numpy(feeds[n]) for n in src.inputs])
    for name, g, w in zip(src.outputs, got, want):
        cmp = harness.compare(name, g, w.numpy(), network=True, low_precision=_tf32())
        assert cmp.ok, cmp.line()


def test_workload_writes_the_fp16_copy_once(tmp_path) -> None:
    from ep_trtpy import models

    wl = _bench_peers.Workload("m", models.build("mobilenetv2", ci=True), ["logits"], {}, {}, str(tmp_path))
    a, b = wl.model_file("fp16"), wl.model_file("fp16")
    assert a == b and wl.model_file("fp32") != a and wl.model_file("fp32-strict") == wl.model_file("fp32")
    import onnx

    inits = {t.data_type for t in onnx.load(a).graph.initializer}
    assert 10 in inits and 1 not in inits
