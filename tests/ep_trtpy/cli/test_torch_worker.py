"""The PyTorch benchmark worker, on the ONNX interpreter: each generated architecture exactly (eager; torch.compile
for one). Runs where torch is importable (the GPU machine); elsewhere it is skipped with the reason."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

from ep_trtpy import models
from ep_trtpy.cli import harness

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="torch is not installed here (the package does not depend on it)")

WORKER = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
                      "ep_trtpy", "cli", "_torch_bench_worker.py")


def _run(tmp_path, name: str, mode: str, **kw: object) -> np.ndarray:
    model = models.build(name, ci=True, **kw)
    feeds = models.make_feeds(name, batch=2, ci=True)
    onnx.save(model, str(tmp_path / "m.onnx"))
    np.savez(tmp_path / "f.npz", **feeds)
    job = {"id": "row", "batch": 2, "precision": "fp32", "mode": mode, "feeds": str(tmp_path / "f.npz"),
           "outputs": str(tmp_path / "o.npz"), "result": str(tmp_path / "r.json")}
    spec = {"model": {"kind": "onnx", "path": str(tmp_path / "m.onnx")}, "device": "cpu", "compile_mode": "default",
            "iters": 2, "warmup": 0, "jobs": [job]}
    (tmp_path / "jobs.json").write_text(json.dumps(spec))
    r = subprocess.run([sys.executable, WORKER, "--jobs", str(tmp_path / "jobs.json")], capture_output=True, text=True,
                       timeout=900)
    res = json.loads((tmp_path / "r.json").read_text())
    assert r.returncode == 0 and res["ok"], res.get("traceback", r.stderr)
    assert len(res["samples_ms"]) == 2
    ref = harness.create_session(model, "cpu").run(None, feeds)[0]
    with np.load(tmp_path / "o.npz") as out:
        got = out[model.graph.output[0].name]
    cmp = harness.compare("out", got, ref, network=True)
    assert cmp.ok, cmp.line()
    return got


@pytest.mark.parametrize("name", models.names())
def test_the_op_table_covers_every_architecture(name: str) -> None:
    """Every op of the generated architectures (both BERT spellings) has a row in the interpreter's op table, which
    imports without torch."""
    from ep_trtpy.cli import _torch_worker

    kws = [{}] if name != "bert" else [{}, {"form": "decomposed", "attention": "einsum", "opset": 20}]
    for kw in kws:
        ops = {n.op_type for n in models.build(name, ci=True, **kw).graph.node} - {"Constant"}
        assert sorted(ops - set(_torch_worker.OPS)) == [], kw


@needs_torch
@pytest.mark.parametrize("name", models.names())
def test_eager_matches_onnxruntime(tmp_path, name: str) -> None:
    _run(tmp_path, name, "eager")


@needs_torch
def test_bert_spellings_eager(tmp_path) -> None:
    _run(tmp_path, "bert", "eager", form="decomposed", attention="einsum", opset=20)


@needs_torch
@pytest.mark.slow
def test_compile_fullgraph_matches_onnxruntime(tmp_path) -> None:
    _run(tmp_path, "bert", "compile")
