"""bench and profile on the GPU: a real torchvision model against PyTorch eager and torch.compile
(reduce-overhead), inputs and outputs on the device; profile's roofline column on real layer times."""

from __future__ import annotations

import importlib.util
import json

import pytest

import ep_trtpy
from ep_trtpy.cli import main

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not ep_trtpy.has_gpu(), reason="needs an NVIDIA GPU with a CUDA 13 driver")]


def test_bench_real_mobilenet_against_torch(tmp_path, capsys) -> None:
    for p in ("torch", "torchvision"):
        if importlib.util.find_spec(p) is None:
            pytest.skip(f"{p} is not installed here")
    out = tmp_path / "b.json"
    rc = main(["bench", "--model", "torchvision:mobilenet_v2", "--providers", "trtpy,torch", "--precision", "fp16",
               "--batch", "4", "--iters", "10", "--warmup", "3", "--json", str(out)])
    doc = json.loads(out.read_text())
    assert rc == 0, [(r["runner"], r["note"]) for r in doc["rows"]]
    rows = {r["runner"]: r for r in doc["rows"]}
    assert set(rows) == {"trtpy", "torch-eager", "torch-compile"}
    for r in rows.values():
        assert r["status"] == "ok" and r["io"] == "device" and r["median_ms"] > 0, r
        assert r["cosine_vs_cpu"] >= 0.999, r
    assert "compile mode reduce-overhead" in rows["torch-compile"]["note"]
    assert rows["trtpy"]["nodes_on_ep"] == "100 of 100 nodes on TrtPyExecutionProvider"
    (cell,) = doc["cells"]
    assert cell["best_peer"] in ("torch-eager", "torch-compile") and cell["speedup"] > 0
    assert doc["gpu"]["name"] and doc["versions"]["torch"] and doc["models"][0]["exporter"] == "torchscript"
    capsys.readouterr()


def test_profile_reports_achieved_rates(tmp_path, capsys) -> None:
    out = tmp_path / "p.json"
    assert main(["profile", "--arch", "mobilenetv2", "--ci", "--fp16", "--iters", "3", "--json", str(out)]) == 0
    layers = [lay for engine in json.loads(out.read_text()) for lay in engine["layers"]]
    convs = [lay for lay in layers if lay["kernel"] == "conv"]
    assert convs and all(lay["unit"] == "TFLOP/s" and lay["flops"] > 0 for lay in convs)
    assert all(lay["roofline_share"] > 0 and lay["achieved"] > 0 for lay in layers)
    assert "roofline" in capsys.readouterr().out
