"""quantize_calibrated (+ fold_qdq): a float graph and a calibration table -> QConv / QMatMul with the table's
scales; the option errors that stop a build."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from builder_testutil import GB, apply, ctx_for, feeds_for, ops, run
from ep_trtpy.options import parse
from ep_trtpy.quantize.table import CalibrationTable, Layer, QuantizationError, StaleTableError, weight_sha256
from graph_partitioner.ir import FLOAT, FLOAT8E4M3FN, INT8

RNG = np.random.default_rng(0)
W1 = (RNG.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32)
W2 = (RNG.standard_normal((5, 4, 1, 1)) * 0.3).astype(np.float32)


def _net():
    gb = GB()
    x = gb.input("x", (2, 3, 6, 6))
    y = gb.op("Relu", [gb.op("Conv", [x, gb.const(W1, "w1")], {"pads": [1, 1, 1, 1]}, name="conv1")])
    y = gb.op("Conv", [y, gb.const(W2, "w2")], name="conv2")
    return gb.output(y)


def _amaxes(g) -> dict[str, float]:
    """Min-max ranges of the graph's Conv inputs on its own feeds."""
    feeds = feeds_for(g)
    x = feeds["x"]
    r1 = np.maximum(run(_sub(g), feeds)[0], 0)
    return {"x": float(np.abs(x).max()), g.nodes[1].outputs[0].name: float(np.abs(r1).max())}


def _sub(g):
    """The graph cut after conv1 (its output)."""
    h = g.copy()
    h.outputs = [h.nodes[0].outputs[0]]
    h.remove_unused()
    return h


def _table(tmp_path, g, fallback=(), **kw) -> str:
    amax = _amaxes(g)
    layers = {"conv1": Layer("Conv", ["x"], "w1"), "conv2": Layer("Conv", [g.nodes[1].outputs[0].name], "w2")}
    for name in fallback:
        layers[name].precision = "float"
    t = CalibrationTable(tensors={k: {"amax": v} for k, v in amax.items()}, method="minmax", layers=layers,
                         weights={"w1": weight_sha256(W1), "w2": weight_sha256(W2)}, **kw)
    path = str(tmp_path / "table.json")
    t.save(path)
    return path


def _options(path: str = "", **extra: str):
    raw = {"int8_enable": "1", **extra}
    if path:
        raw["int8_calibration_table_name"] = path
    return parse(raw)


def test_both_convolutions_become_qconv_with_the_tables_scales_and_int8_between_them(tmp_path):
    g = _net()
    apply(g, [])
    before = g.copy()
    path = _table(tmp_path, g)
    amax = _amaxes(g)
    apply(g, ["quantize_calibrated", "fold_qdq", "eliminate_dead_nodes"], ctx_for(_options(path)))
    assert ops(g) == ["QuantizeLinear", "QConv", "QConv"]
    q1, q2 = g.nodes[1], g.nodes[2]
    assert q1.attrs["x_scale"] == pytest.approx(amax["x"] / 127, rel=1e-6) and q1.attrs["activation"] == "Relu"
    assert q1.outputs[0].dtype == INT8 and q1.attrs["y_scale"] == q2.attrs["x_scale"]
    assert q2.outputs[0].dtype == FLOAT and q1.attrs["x_zero_point"] == 0
    assert q1.attrs["w_scale"] == pytest.approx(list(np.abs(W1).max(axis=(1, 2, 3)) / 127), rel=1e-6)
    feeds = feeds_for(before)
    (want,), (got,) = run(before, feeds), run(g, feeds)
    cos = float(np.dot(want.ravel(), got.ravel()) / np.linalg.norm(want) / np.linalg.norm(got))
    assert cos > 0.999 and not np.array_equal(want, got)


def test_fp8_quantizes_to_e4m3(tmp_path):
    g = _net()
    apply(g, [])
    path = _table(tmp_path, g)
    apply(g, ["quantize_calibrated", "fold_qdq", "eliminate_dead_nodes"],
          ctx_for(parse({"fp8_enable": "1", "int8_calibration_table_name": path})))
    assert ops(g) == ["QuantizeLinear", "QConv", "QConv"]
    assert g.nodes[1].inputs[0].dtype == FLOAT8E4M3FN and g.nodes[1].attrs["x_scale"] == pytest.approx(
        _amaxes(g)["x"] / 448, rel=1e-6)


def test_a_fallback_layer_and_a_tensor_without_amax_stay_float(tmp_path):
    g = _net()
    apply(g, [])
    path = _table(tmp_path, g, fallback=("conv2",))
    ctx = apply(g, ["quantize_calibrated", "fold_qdq", "eliminate_dead_nodes"], ctx_for(_options(path)))
    assert ops(g) == ["QuantizeLinear", "QConv", "Conv"]
    assert any("Conv 'conv2' stays float: the calibration table keeps it in float" in r for r in ctx.refusals)


def test_int8_without_scales_is_an_error_that_says_how_to_calibrate():
    g = _net()
    with pytest.raises(QuantizationError, match=r"int8_enable=1 but engine 't' has no scales: .* 'ep-trtpy calibrate "
                                                r"MODEL.onnx --data DIR_OF_NPZ -o table.json'"):
        apply(g, ["quantize_calibrated"], ctx_for(_options()))


def test_a_changed_weight_is_a_stale_table(tmp_path):
    g = _net()
    apply(g, [])
    path = _table(tmp_path, g)
    g.values["w2"].const = W2 + 0.01
    with pytest.raises(StaleTableError, match="weight 'w2' differs from the one it was calibrated with"):
        apply(g, ["quantize_calibrated"], ctx_for(_options(path)))


def test_an_accuracy_target_needs_a_table_guarded_for_it(tmp_path):
    g = _net()
    apply(g, [])
    path = _table(tmp_path, g)
    with pytest.raises(QuantizationError, match="was made without an accuracy guard; recalibrate with "
                                                "--accuracy-target cosine:0.999"):
        apply(g.copy(), ["quantize_calibrated"], ctx_for(_options(path, int8_accuracy_target="cosine:0.999")))
    guarded = _table(tmp_path, g, guard={"target": "cosine:0.99", "achieved": 0.995, "fallback": []})
    with pytest.raises(QuantizationError, match="guards cosine:0.99 for int8, not cosine:0.999 for int8"):
        apply(g.copy(), ["quantize_calibrated"], ctx_for(_options(guarded, int8_accuracy_target="cosine:0.999")))
    apply(g, ["quantize_calibrated"], ctx_for(_options(guarded, int8_accuracy_target="cosine:0.98")))  # weaker: ok


def test_the_cuda_backend_builds_float_and_says_so_once(tmp_path, caplog):
    g = _net()
    apply(g, [])
    path = _table(tmp_path, g)
    with caplog.at_level(logging.WARNING, logger="ep_trtpy.builder"):
        apply(g, ["quantize_calibrated", "fold_qdq"], ctx_for(_options(path), backend="cuda", device_cc=(9, 0)))
    assert ops(g) == ["Conv", "Relu", "Conv"]
    assert "has no INT8 kernels yet" in caplog.text


def test_fp8_below_compute_capability_8_9_is_an_error(tmp_path):
    g = _net()
    with pytest.raises(QuantizationError, match=r"fp8_enable needs a GPU of compute capability 8.9 or newer .* this "
                                                r"one is 8.0"):
        apply(g, ["quantize_calibrated"], ctx_for(parse({"fp8_enable": "1"}), backend="cuda", device_cc=(8, 0)))
