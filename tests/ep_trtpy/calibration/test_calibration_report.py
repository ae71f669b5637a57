"""The calibration report: one self-contained HTML file with the sensitivity of every layer and the precision map."""

from __future__ import annotations

from html.parser import HTMLParser

from ep_trtpy.calibration.report import render, write_report
from ep_trtpy.quantize.table import CalibrationTable, Layer


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs


def _table() -> CalibrationTable:
    return CalibrationTable(tensors={"x": {"amax": 2.0, "min": -1.0, "max": 2.0}}, method="entropy",
                            model_name="net<1>.onnx", batches=4,
                            layers={"conv1": Layer("Conv", ["x"], "w1", "int8", 2e-5),
                                    "conv2": Layer("Conv", ["r1"], "w2", "float", 3e-2),
                                    "fc": Layer("Gemm", ["f"], "wf", "int8", None)},
                            guard={"target": "cosine:0.999", "achieved": 0.9994, "all_quantized": 0.991,
                                   "held_back": 2, "fallback": [{"layer": "conv2", "error": 3e-2}]})


def test_the_report_lists_layers_by_sensitivity_with_the_precision_map(tmp_path):
    text = render(_table())
    assert text.index("conv2") < text.index("conv1") < text.index(">fc<")  # most sensitive first
    assert "<td class='float'>float</td>" in text and text.count("<td class='q'>int8</td>") == 2
    assert "cosine:0.999 on 2 held-back batches" in text and "1 of 3 layers" in text and "3.000e-02" in text
    assert "net&lt;1&gt;.onnx" in text  # names are escaped
    tags = _Tags()
    tags.feed(text)
    assert tags.tags.count("svg") == 2 and tags.tags.count("tr") >= 3 + 5
    assert "script" not in tags.tags and "link" not in tags.tags and "img" not in tags.tags
    assert not any(k in ("src", "href") for k, _ in tags.attrs)  # self-contained: nothing to fetch
    path = tmp_path / "r.html"
    write_report(_table(), str(path))
    assert path.read_text() == text


def test_a_report_without_a_guard_still_shows_the_map():
    t = _table()
    t.guard = None
    text = render(t)
    assert "Accuracy guard" not in text and "precision map" in text
