"""ep-trtpy run / compare / bench: the CPU-provider paths everywhere, our EP's paths once the stack is integrated."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

from ep_trtpy import models
from ep_trtpy.cli import harness, main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SAMPLE = os.path.join(ROOT, "samples", "01_first_run", "model.onnx")
WORKER = os.path.join(ROOT, "ep_trtpy", "cli", "_ort_gpu_worker.py")


def _need_stack() -> None:
    why = harness.stack_missing()
    if why:
        pytest.skip(why)


def test_commands_are_discovered() -> None:
    from ep_trtpy.cli import _commands

    assert {"run", "compare", "bench", "conformance"} <= set(_commands())


def test_run_on_cpu_prints_outputs(capsys, tmp_path) -> None:
    out = tmp_path / "o.npz"
    assert main(["run", SAMPLE, "--provider", "cpu", "--batch", "3", "--iters", "2", "--save", str(out)]) == 0
    text = capsys.readouterr().out
    assert "probabilities: float32[3, 10]" in text and "median" in text
    with np.load(out) as data:
        np.testing.assert_allclose(data["probabilities"].sum(axis=1), 1.0, rtol=1e-5)


def test_run_with_shapes_and_feeds(capsys, tmp_path) -> None:
    path = tmp_path / "bert.onnx"
    onnx.save(models.build("bert", ci=True), str(path))
    assert main(["run", str(path), "--provider", "cpu", "--iters", "0",
                 "--shapes", "input_ids:2x5,attention_mask:2x5"]) == 0
    assert "last_hidden_state: float32[2, 5, 64]" in capsys.readouterr().out
    feeds = tmp_path / "f.npz"
    np.savez(feeds, **models.make_feeds("bert", batch=3, ci=True))
    assert main(["run", str(path), "--provider", "cpu", "--iters", "0", "--feeds", str(feeds)]) == 0
    assert "last_hidden_state: float32[3, 16, 64]" in capsys.readouterr().out


def test_run_reports_a_missing_file(capsys) -> None:
    assert main(["run", "does-not-exist.onnx", "--provider", "cpu"]) == 2
    assert "model file 'does-not-exist.onnx' does not exist" in capsys.readouterr().err


def test_bench_cpu_writes_json(capsys, tmp_path) -> None:
    out = tmp_path / "b.json"
    rc = main(["bench", "--arch", "resnet50", "--ci", "--providers", "cpu,cuda", "--batch", "1,2", "--iters", "3",
               "--warmup", "1", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "median ms" in text and "needs --ort-gpu-path" in text
    doc = json.loads(out.read_text())  # strict JSON: no NaN
    cpu = [r for r in doc["rows"] if r["runner"] == "cpu"]
    assert [r["batch"] for r in cpu] == [1, 2]
    assert all(r["status"] == "ok" and r["median_ms"] > 0 and r["runs"] == 3 for r in cpu)
    assert {r["status"] for r in doc["rows"] if r["runner"].startswith("cuda")} == {"skipped"}


def test_ort_gpu_worker_runs_standalone(tmp_path) -> None:
    """The CUDA EP worker's whole path (session, IOBinding with preallocated outputs, timing, JSON), exercised on
    the CPU provider with host buffers since CI has no onnxruntime-gpu."""
    import onnxruntime

    model = tmp_path / "m.onnx"
    onnx.save(models.build("mobilenetv2", ci=True), str(model))
    feeds = models.make_feeds("mobilenetv2", batch=2, ci=True)
    np.savez(tmp_path / "f.npz", **feeds)
    site = os.path.dirname(os.path.dirname(onnxruntime.__file__))
    r = subprocess.run([sys.executable, WORKER, "--ort-path", site, "--model", str(model), "--feeds",
                        str(tmp_path / "f.npz"), "--out", str(tmp_path / "r.json"), "--outputs",
                        str(tmp_path / "o.npz"), "--provider", "CPUExecutionProvider", "--io-device", "cpu",
                        "--iters", "4", "--warmup", "1"], capture_output=True, text=True, timeout=300)
    res = json.loads((tmp_path / "r.json").read_text())
    assert r.returncode == 0 and res["ok"], res.get("traceback", r.stderr)
    assert len(res["samples_ms"]) == 4 and res["io"] == "host"
    ref = harness.create_session(models.build("mobilenetv2", ci=True), "cpu").run(None, feeds)[0]
    with np.load(tmp_path / "o.npz") as out:
        np.testing.assert_allclose(out["logits"], ref, rtol=1e-5, atol=1e-5)


def test_bench_rejects_unknown_runner(capsys) -> None:
    assert main(["bench", SAMPLE, "--providers", "tensorrt"]) == 2
    assert "--providers accepts" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- with our EP --
def test_compare_sample_passes_on_our_ep(capsys) -> None:
    _need_stack()
    assert main(["compare", SAMPLE, "--batch", "4", "--require-all-nodes"]) == 0
    text = capsys.readouterr().out
    assert "PASS" in text and "13 of 13 nodes on TrtPyExecutionProvider" in text


def test_run_on_our_ep(capsys) -> None:
    _need_stack()
    assert main(["run", "--arch", "bert", "--ci", "--iters", "2"]) == 0
    text = capsys.readouterr().out
    assert "last_hidden_state: float32[1, 16, 64]" in text and "0 of " not in text


def test_bench_our_ep(capsys, tmp_path) -> None:
    _need_stack()
    out = tmp_path / "b.json"
    assert main(["bench", "--arch", "mobilenetv2", "--ci", "--providers", "trtpy,cpu", "--precision", "fp32,fp16",
                 "--iters", "3", "--warmup", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    ours = [r for r in rows if r["runner"] == "trtpy"]
    assert len(ours) == 2 and all(r["status"] == "ok" for r in ours), ours
    for r in ours:
        assert r["median_ms"] > 0 and r["create_cold_s"] > 0 and r["create_warm_s"] > 0
        assert r["max_rel_vs_cpu"] < (0.05 if r["precision"] == "fp16" else 1e-3), r
