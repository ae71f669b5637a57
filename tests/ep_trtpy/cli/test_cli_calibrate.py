"""``ep-trtpy calibrate``: a table (and a report and a TensorRT cache) from a folder of .npz batches; a mistake is
one line and exit status 2."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ep_trtpy.cli import main
from ep_trtpy.quantize.table import load, read_tensorrt_cache


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("calibrate")
    rng = np.random.default_rng(0)
    w1, w2 = rng.standard_normal((4, 3, 3, 3)).astype(np.float32), rng.standard_normal((2, 4)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w2"], ["y"], transB=1, name="fc")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
                          [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    model = str(tmp / "m.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), model)
    data = tmp / "data"
    data.mkdir()
    for k in range(5):
        np.savez(data / f"{k:02d}.npz", x=rng.standard_normal((2, 3, 6, 6)).astype(np.float32))
    bad = tmp / "bad"
    bad.mkdir()
    np.savez(bad / "0.npz", image=np.zeros((1, 3, 6, 6), np.float32))
    return tmp, model, str(data), str(bad)


def test_writes_the_table_report_and_tensorrt_cache(setup, capsys):
    tmp, model, data, _ = setup
    out, report, cache = tmp / "t.json", tmp / "r.html", tmp / "t.cache"
    assert main(["calibrate", model, "--data", data, "--method", "percentile", "--percentile", "99.9", "-o", str(out),
                 "--accuracy-target", "cosine:0.99", "--held-back", "1", "--report", str(report),
                 "--tensorrt-cache", str(cache)]) == 0
    text = capsys.readouterr().out
    assert f"calibrated 4 tensors of 2 layers on 4 batches (percentile, int8)" in text and str(out) in text
    assert "accuracy guard cosine:0.99 on 1 held-back batches" in text
    table = load(str(out))
    assert table.method == "percentile" and table.params["percentile"] == 99.9 and table.model_name == "m.onnx"
    assert set(table.layers) == {"conv", "fc"} and table.guard["target"] == "cosine:0.99"
    assert "conv" in report.read_text() and "<svg" in report.read_text()
    trt = read_tensorrt_cache(cache.read_text())
    assert set(trt.tensors) == set(table.tensors)
    assert json.loads(out.read_text())["format"] == "ep_trtpy.calibration_table"


@pytest.mark.parametrize("argv, message", [
    (["{model}", "--data", "{tmp}/nothing", "-o", "{tmp}/t.json"], "calibration data folder '{tmp}/nothing' does not "
                                                                   "exist"),
    (["{model}", "--data", "{bad}", "-o", "{tmp}/t.json"], "calibration batch 0 lacks input 'x' (it holds 'image')"),
    (["{tmp}/none.onnx", "--data", "{data}", "-o", "{tmp}/t.json"], "model file '{tmp}/none.onnx' does not exist"),
    (["{model}", "--data", "{data}", "-o", "{tmp}/no/t.json"], "-o '{tmp}/no/t.json': folder '{tmp}/no' does not"),
    (["{model}", "--data", "{data}", "-o", "{tmp}/t.json", "--accuracy-target", "top5:0.9"],
     "--accuracy-target 'top5:0.9': expected METRIC:VALUE"),
    (["{model}", "--data", "{data}", "-o", "{tmp}/t.json", "--held-back", "2"], "--held-back needs --accuracy-target"),
    (["{model}", "--data", "{data}", "-o", "{tmp}/t.json", "--percentile", "0"], "--percentile 0 is outside (0, 100]"),
    (["{model}", "--data", "{data}", "-o", "{tmp}/t.json", "--accuracy-target", "cosine:0.9", "--held-back", "5"],
     "held_back=5 must leave at least one of the 5 batches"),
])
def test_a_mistake_is_one_line_and_exit_status_2(setup, capsys, argv, message):
    tmp, model, data, bad = setup
    fill = {"tmp": str(tmp), "model": model, "data": data, "bad": bad}
    assert main(["calibrate", *[a.format(**fill) for a in argv]]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("ep-trtpy calibrate: error: ") and message.format(**fill) in err[0]


def test_an_unknown_method_is_argparses_error(setup, capsys):
    tmp, model, data, _ = setup
    with pytest.raises(SystemExit) as e:
        main(["calibrate", model, "--data", data, "-o", str(tmp / "t.json"), "--method", "kl"])
    assert e.value.code == 2 and "invalid choice: 'kl'" in capsys.readouterr().err
