"""``ep-trtpy inspect --html`` and ``ep-trtpy profile --html`` (ep_trtpy/cli/_html_report.py): the report is written,
self-contained (nothing fetched from elsewhere, no script), escapes every name, and shows each layer and the
memory plan. Engines with a plan are made without a GPU: the cuda build path with the native instantiation left
out (the plan is lowered, annotated and encoded as for a GPU). Profile's report is rendered from a saved profile
result (``--from-json``), which is how it is checked without a GPU."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from ep_trtpy.builder import build as build_module
from ep_trtpy.cli import _html_report, main
from ep_trtpy.cli.profile import engine_report
from ep_trtpy.engine.format import encode
from ep_trtpy.options import Options
from graph_partitioner.onnx_io import graph_from_onnx

EVIL = '<script>alert("pwned")</script>'
EVIL_VALUE = 'a&b"<svg onload=x>'


def _model():  # noqa: ANN202
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal((8, 4, 3, 3)) * 0.3).astype(np.float32), "w1"),
             numpy_helper.from_array((rng.standard_normal((8, 8, 3, 3)) * 0.2).astype(np.float32), "w2"),
             numpy_helper.from_array((rng.standard_normal((8, 8, 1, 1)) * 0.3).astype(np.float32), "w3"),
             numpy_helper.from_array((rng.standard_normal((128, 6)) * 0.2).astype(np.float32), "wg")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name=EVIL),
             helper.make_node("Relu", ["c1"], [EVIL_VALUE], name="relu1"),
             helper.make_node("Conv", [EVIL_VALUE, "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Conv", ["c2", "w3"], ["c3"], name="conv3"),
             helper.make_node("MaxPool", ["c3"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "wg"], ["y"], name="gemm"),
             helper.make_node("Softmax", ["y"], ["z"], axis=-1, name="softmax")]
    g = helper.make_graph(nodes, "html", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 8, 8])],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.fixture
def gpu_like(monkeypatch):  # noqa: ANN001, ANN201
    """A cuda artifact built without a GPU: passes, lowering and annotations as on the GPU; no native engine."""
    monkeypatch.setattr(build_module, "instantiate", lambda *a, **k: None)
    art = build_module.build(graph_from_onnx(_model()), {"x": (2, 4, 8, 8)}, Options(fp16_enable=True), "cuda")
    for i, lay in enumerate(art.plan.layers):
        lay.tactic, lay.tactic_name = i, f"tactic<{i}>"
    return art


def _self_contained(text: str) -> None:
    low = text.lower()
    assert low.startswith("<!doctype html>") and low.rstrip().endswith("</html>")
    for bad in ("<script", "<link", "<iframe", "<img", "src=", "href=", "@import", "url(", "http://", "https://"):
        assert bad not in low, bad


def _layer_rows(text: str) -> list[str]:
    table = text.split("<h3>Layers</h3>", 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr><td class=\"num\">(\d+)</td>", table)


def test_inspect_html_is_self_contained_escaped_and_complete(gpu_like, tmp_path, capsys) -> None:  # noqa: ANN001
    path = tmp_path / "e.engine"
    path.write_bytes(encode(gpu_like, key="k", graph_hash="g", producers={"ep_trtpy": "test"}, options={}))
    out = tmp_path / "report.html"
    assert main(["inspect", str(path), "--html", str(out)]) == 0
    assert f"HTML report: {out}" in capsys.readouterr().err
    text = out.read_text()
    _self_contained(text)
    assert EVIL not in text and html.escape(EVIL, quote=True) in text  # the layer name stays text
    assert EVIL_VALUE not in text
    plan = gpu_like.plan
    assert _layer_rows(text) == [str(i) for i in range(len(plan.layers))]
    for lay in plan.layers:
        assert html.escape(lay.name, quote=True) in text and f"tactic&lt;{plan.layers.index(lay)}&gt;" in text
    assert "NHWC" in text and "float16" in text  # layout and precision of the channels-last FP16 convolutions
    # the memory chart: one box per activation, at its offset, over its lifetime
    svg = text.split("<svg", 1)[1].split("</svg>", 1)[0]
    acts = [t for t in plan.tensors if t.kind == "activation"]
    boxes = re.findall(r"<rect [^>]*><title>([^<]*)</title></rect>", svg)
    assert len(boxes) == len(acts) and len(acts) >= 3
    assert any(f"at offset {t.offset}," in b for t in acts for b in boxes if t.offset > 0)


def test_inspect_html_of_a_reference_engine_says_it_has_no_arena(tmp_path, capsys) -> None:  # noqa: ANN001
    art = build_module.build(graph_from_onnx(_model()), {"x": (2, 4, 8, 8)}, Options(), "reference")
    path = tmp_path / "r.engine"
    path.write_bytes(encode(art, key="k", graph_hash="g", producers={}, options={}))
    out = tmp_path / "r.html"
    assert main(["inspect", str(path), "--json", "--html", str(out)]) == 0
    json.loads(capsys.readouterr().out)  # --json stays pure JSON on stdout
    text = out.read_text()
    _self_contained(text)
    assert "No memory plan" in text and html.escape(EVIL, quote=True) in text
    assert len(_layer_rows(text)) == len(art.graph.nodes)


def test_profile_html_from_a_saved_profile(gpu_like, tmp_path, capsys) -> None:  # noqa: ANN001
    plan = gpu_like.plan
    ms = [0.01 * (i + 1) for i in range(len(plan.layers))]
    report = [engine_report(0, plan, gpu_like.fusions, ms, "fp16", "x[2, 4, 8, 8]", 0.5, 0.2)]
    saved = tmp_path / "profile.json"
    saved.write_text(json.dumps(report))
    out = tmp_path / "profile.html"
    assert main(["profile", "--from-json", str(saved), "--html", str(out)]) == 0
    assert "HTML report" in capsys.readouterr().out
    text = out.read_text()
    _self_contained(text)
    assert html.escape(EVIL, quote=True) in text and EVIL not in text
    widths = [float(w) for w in re.findall(r'class="bar" style="width:([0-9.]+)%"', text)]
    assert len(widths) == len(plan.layers) and widths[-1] == 100.0  # the slowest layer has the full bar
    np.testing.assert_allclose(widths, [100 * t / ms[-1] for t in ms], atol=0.06)
    assert f"{ms[0]:.4f}" in text and "0.500 ms" in text and "0.200 ms" in text
    assert "<svg" in text and _layer_rows(text) == [str(i) for i in range(len(plan.layers))]
    assert report[0]["layers"][0]["achieved"] is not None  # roofline columns computed from the plan


def test_profile_from_json_mistakes_are_one_line(tmp_path, capsys) -> None:  # noqa: ANN001
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a profile"}')
    assert main(["profile", "--from-json", str(bad), "--html", str(tmp_path / "o.html")]) == 2
    assert "is not the --json of ep-trtpy profile" in capsys.readouterr().err
    assert main(["profile", "--from-json", str(bad)]) == 2
    assert "give --html FILE" in capsys.readouterr().err
    assert main(["profile", "--from-json", str(tmp_path / "missing.json"), "--html", str(tmp_path / "o.html")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_memory_chart_places_boxes_by_offset_and_lifetime() -> None:
    tensors = [{"id": 0, "name": "a", "kind": "activation", "offset": 0, "nbytes": 512, "life": [0, 1]},
               {"id": 1, "name": "b<1>", "kind": "activation", "offset": 512, "nbytes": 512, "life": [1, 3]},
               {"id": 2, "name": "in", "kind": "input", "offset": 0, "nbytes": 64, "life": None}]
    svg = _html_report.memory_chart(tensors, 4, 1024)
    rects = re.findall(r'<rect x="([0-9.]+)" y="([0-9.]+)" width="([0-9.]+)" height="([0-9.]+)" fill[^>]*><title>',
                       svg)
    assert len(rects) == 2
    (xa, ya, wa, ha), (xb, yb, wb, hb) = [[float(v) for v in r] for r in rects]
    assert xa < xb and ya < yb and ha == pytest.approx(hb) and wb == pytest.approx(1.5 * wa)
    assert "b&lt;1&gt;" in svg and "b<1>" not in svg
