"""The per-layer debugger and the HTML reports on the GPU: ``compare --mark-all --backend cuda`` reads the values of
the native engine through a tapped plan (same layers and tactics), passes on clean generated models in every
precision and names a planted wrong weight; ``profile --html`` writes the report from real layer times."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import ep_trtpy
from ep_trtpy.cli import _mark_all as mark
from ep_trtpy.cli import main

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not ep_trtpy.has_gpu(), reason="needs an NVIDIA GPU with a CUDA 13 driver")]


@pytest.mark.parametrize("arch", ["resnet50", "mobilenetv2", "bert", "yolo"])
@pytest.mark.parametrize("flags", [["--no-tf32"], [], ["--fp16"], ["--bf16"]], ids=["fp32", "tf32", "fp16", "bf16"])
def test_mark_all_passes_clean_models_on_the_gpu(tmp_path, capsys, arch, flags) -> None:  # noqa: ANN001
    out = tmp_path / "m.json"
    rc = main(["compare", "--arch", arch, "--ci", "--mark-all", "--backend", "cuda", "--json", str(out), *flags])
    doc = json.loads(out.read_text())
    assert doc["backend"] == "cuda" and len(doc["rows"]) > 5
    assert rc == 0, doc["verdict"]
    capsys.readouterr()


class PlantedCuda(mark.CudaBackend):
    """The cuda backend with the weights of one layer scaled by 1.25 after the build (the engine itself is real)."""

    def __init__(self, layer_prefix: str) -> None:
        super().__init__()
        self.prefix = layer_prefix

    def run(self, art, names, feeds):  # noqa: ANN001, ANN201
        blob = bytearray(art.weights)
        for lay in art.plan.layers:
            if lay.name.startswith(self.prefix):
                w = art.plan.tensors[lay.inputs[1]]
                dt = np.float16 if w.dtype == 10 else np.float32
                arr = np.frombuffer(bytes(blob[w.offset:w.offset + w.nbytes]), dt)
                blob[w.offset:w.offset + w.nbytes] = (arr * dt(1.25)).tobytes()
        art.weights = bytes(blob)
        return super().run(art, names, feeds)


@pytest.mark.parametrize("fp16", [False, True])
def test_mark_all_names_a_planted_layer_on_the_gpu(fp16: bool) -> None:
    from ep_trtpy import models
    from ep_trtpy.options import Options

    m = models.build("resnet50", ci=True)
    feeds = models.make_feeds("resnet50", batch=1, seed=0, ci=True)
    report = mark.debug(m, feeds, Options(fp16_enable=fp16), PlantedCuda("/layer2/0/conv2"), "resnet50")
    bad = report.first_failure
    assert bad is not None and bad.layer.startswith("/layer2/0/conv2"), report.verdict()
    assert all(r.ok for r in report.rows[:report.rows.index(bad)])


def test_profile_html_on_the_gpu(tmp_path, capsys) -> None:  # noqa: ANN001
    html_path, json_path = tmp_path / "p.html", tmp_path / "p.json"
    assert main(["profile", "--arch", "resnet50", "--ci", "--fp16", "--iters", "3", "--json", str(json_path),
                 "--html", str(html_path)]) == 0
    text = html_path.read_text()
    n_layers = sum(len(e["layers"]) for e in json.loads(json_path.read_text()))
    assert len(re.findall(r'class="bar" style="width:', text)) == n_layers
    assert "<script" not in text.lower() and "NHWC" in text and "<svg" in text
    again = tmp_path / "again.html"
    assert main(["profile", "--from-json", str(json_path), "--html", str(again)]) == 0
    assert again.read_text().count('class="bar"') == text.count('class="bar"')
    capsys.readouterr()
