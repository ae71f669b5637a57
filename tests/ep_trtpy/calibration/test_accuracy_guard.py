"""The accuracy guard: its scores, its greedy fallback on a model whose layers' errors are known, and a real
calibration whose target then holds in a session."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

import ep_trtpy
import qmodels
from ep_trtpy.calibration import CalibrationError, calibrate
from ep_trtpy.calibration import guard as g
from ep_trtpy.cli import harness


def test_cosine_and_top1_scores():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert g.score("cosine", [[a]], [[a * 3]]) == pytest.approx(1.0)
    assert g.score("cosine", [[a], [a]], [[a], [np.array([[1.0, 0.0], [0.0, -1.0]])]]) == pytest.approx(0.0)
    logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])
    flipped = logits.copy()
    flipped[2] = [0.9, 0.0, 0.1]
    assert g.score("top1", [[logits]], [[flipped]]) == pytest.approx(2 / 3)
    assert g.cosine(np.zeros(3), np.zeros(3)) == 1.0 and g.cosine(np.zeros(3), np.ones(3)) == 0.0


class _KnownErrors:
    """A model whose output is r + sum over quantized layers of noise[layer] (orthogonal directions)."""

    def __init__(self, noise: dict[str, float]) -> None:
        self.noise = noise
        self.runs = 0

    def run(self, floats, batches):
        self.runs += 1
        out = []
        for _ in batches:
            y = np.zeros(1 + len(self.noise))
            y[0] = 1.0
            for k, (name, e) in enumerate(self.noise.items()):
                if name not in floats:
                    y[k + 1] = e
            out.append([y])
        return out


def _ref(n: int, size: int = 4) -> list:
    y = np.zeros(size)
    y[0] = 1.0
    return [[y]] * n


def test_the_most_sensitive_layers_fall_back_until_the_target_holds():
    ev = _KnownErrors({"a": 0.01, "b": 0.3, "c": 0.1})
    batches = [{}]
    # cosine with noises e_i: 1 / sqrt(1 + sum e_i^2); 0.998 needs b and c in float, a alone gives 0.99995
    result = g.guard(ev, ["a", "b", "c"], "cosine:0.998", batches, _ref(1), batches, _ref(1))
    assert [f.layer for f in result.fallback] == ["b", "c"]
    assert result.sensitivity["b"] > result.sensitivity["c"] > result.sensitivity["a"]
    assert result.fallback[0].error == pytest.approx(1 - 1 / np.sqrt(1 + 0.3 ** 2))
    assert result.achieved == pytest.approx(1 / np.sqrt(1 + 0.01 ** 2))
    assert result.all_quantized == pytest.approx(1 / np.sqrt(1 + 0.01 ** 2 + 0.3 ** 2 + 0.1 ** 2))
    easy = g.guard(_KnownErrors({"a": 0.01}), ["a"], "cosine:0.99", batches, _ref(1, 2), batches, _ref(1, 2))
    assert easy.fallback == [] and easy.achieved == easy.all_quantized


def test_a_target_float_cannot_meet_is_an_error():
    class Off(_KnownErrors):
        def run(self, floats, batches):
            return [[np.array([1.0, 1.0, 0.0, 0.0])] for _ in batches]

    with pytest.raises(CalibrationError, match="cosine:0.999 is out of reach: with every layer in float"):
        g.guard(Off({"a": 0.1}), ["a"], "cosine:0.999", [{}], _ref(1), [{}], _ref(1))


def test_a_guarded_calibration_keeps_its_target_in_a_session(tmp_path):
    model = qmodels.conv_net()
    path = qmodels.save(model, tmp_path, "net.onnx")
    data = qmodels.batches(model, 6, batch=2, seed=7)
    target = 0.99985
    table = calibrate(path, data, "entropy", str(tmp_path / "t.json"), accuracy_target=f"cosine:{target}",
                      held_back=2)
    guard = table.guard
    assert guard["target"] == f"cosine:{target:g}" and guard["held_back"] == 2
    assert guard["achieved"] >= target and all(layer.sensitivity is not None for layer in table.layers.values())
    fell = [f["layer"] for f in guard["fallback"]]
    assert {k for k, v in table.layers.items() if v.precision == "float"} == set(fell)
    assert guard["all_quantized"] < target and fell  # the target needed the guard
    sens = [table.layers[k].sensitivity for k in fell]
    assert fell[0] == max(table.layers, key=lambda k: table.layers[k].sensitivity) and sens == sorted(sens)[::-1]
    options = {"int8_enable": "1", "int8_calibration_table_name": str(tmp_path / "t.json"),
               "int8_accuracy_target": f"cosine:{target}"}
    sess = harness.create_session(path, "trtpy", ep_options=options)
    assert set(harness.node_assignment(sess).values()) == {harness.EP_NAME}
    cpu = harness.create_session(path, "cpu")
    quantized = not ep_trtpy.has_gpu()  # the GPU has no INT8 kernels yet: its engine is built in float, with a warning
    for feeds in data[-2:]:  # the held-back batches
        got, want = sess.run(None, feeds)[0], cpu.run(None, feeds)[0]
        cos = g.cosine(got, want)
        assert target <= cos  # within the target
        if quantized:
            assert cos < 1 - 1e-9  # quantized, not FP32
        else:
            assert cos > 1 - 1e-6  # a float engine (TF32 at most): far closer than the INT8 layers would be


def test_a_model_the_reference_backend_cannot_run_is_one_sentence():
    w = np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32)
    nodes = [h.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
             h.make_node("TopK", ["m", "k"], ["v", "i"], axis=-1, name="topk")]
    g_ = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, ["N", 4])],
                      [h.make_tensor_value_info("v", T.FLOAT, ["N", 2])],
                      [nh.from_array(w, "w"), nh.from_array(np.array([2], np.int64), "k")])
    model = h.make_model(g_, opset_imports=[h.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    data = [{"x": np.random.default_rng(k).standard_normal((2, 4)).astype(np.float32)} for k in range(3)]
    with pytest.raises(CalibrationError, match="the accuracy guard runs the whole model on the reference backend, "
                                               "which cannot run it: .*TopK"):
        calibrate(model, data, "minmax", accuracy_target="cosine:0.99")
