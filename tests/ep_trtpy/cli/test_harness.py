"""Comparison, tolerance, feed and session helpers (ep_trtpy.cli.harness)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from ep_trtpy import models
from ep_trtpy.cli import harness


def test_compare_float_tolerances() -> None:
    e = np.array([1.0, 2.0, 3.0], np.float32)
    assert harness.compare("y", e * (1 + 5e-4), e).ok  # within float32 rtol 1e-3
    bad = harness.compare("y", e + np.float32([0, 0, 0.1]), e)
    assert not bad.ok and bad.mismatched == 1 and bad.max_abs == pytest.approx(0.1, rel=1e-5)
    assert bad.max_rel == pytest.approx(0.1 / 3, rel=1e-5)


def test_compare_network_tolerance_scales_with_output() -> None:
    e = np.array([[1000.0, 0.0]], np.float32)
    a = np.array([[1000.0, 0.05]], np.float32)
    assert not harness.compare("y", a, e).ok  # op tolerance: atol 1e-5 at a zero
    c = harness.compare("y", a, e, network=True)  # atol 1e-4 * max|e| = 0.1
    assert c.ok and c.top1 == 1.0


def test_compare_exact_types_nan_and_shapes() -> None:
    assert not harness.compare("i", np.int64([1, 2]), np.int64([1, 3])).ok
    assert harness.compare("b", np.array([True]), np.array([True])).ok
    assert harness.compare("n", np.float32([np.nan, 1]), np.float32([np.nan, 1])).ok
    assert not harness.compare("n", np.float32([0, 1]), np.float32([np.nan, 1])).ok
    assert not harness.compare("inf", np.float32([np.inf]), np.float32([-np.inf])).ok
    assert "shape" in harness.compare("s", np.zeros(2, np.float32), np.zeros(3, np.float32)).note
    assert "dtype" in harness.compare("d", np.zeros(2, np.float16), np.zeros(2, np.float32)).note


def test_tolerance_defaults() -> None:
    assert harness.tolerance_for(np.float16).rtol > harness.tolerance_for(np.float32).rtol
    assert harness.tolerance_for(np.int64) == harness.EXACT
    assert harness.tolerance_for(np.float32, low_precision=True).relative_to_max



def test_engine_math_names_what_float32_models_compute_in() -> None:
    assert harness.engine_math({}, gpu=True) == "tf32"  # TensorRT's and ORT's CUDA EP's default
    assert harness.engine_math({}, gpu=False) == "fp32"  # the reference backend computes in float32
    assert harness.engine_math({"tf32_enable": "0"}, gpu=True) == "fp32"
    assert harness.engine_math({"fp16_enable": True, "bf16_enable": "1"}, gpu=True) == "fp16"
    assert harness.engine_math({"bf16_enable": "1"}, gpu=False) == "bf16"


def test_tf32_results_are_judged_by_the_16bit_criterion() -> None:
    e = np.linspace(-1, 1, 40, dtype=np.float32).reshape(4, 10) + np.eye(4, 10, dtype=np.float32)
    noise = np.where(np.arange(40).reshape(4, 10) % 2 == 0, 1, -1).astype(np.float32) * np.float32(6e-4)
    a = e + noise  # a TF32-sized error: outside float32's network tolerance near zero, within the criterion
    assert not harness.compare("logits", a, e, network=True).ok
    assert harness.compare("logits", a, e, network=True, low_precision=True).ok
    flipped = e.copy()
    flipped[0, [0, 9]] = flipped[0, [9, 0]]  # another top-1 class in one row
    assert not harness.compare("logits", flipped, e, network=True, low_precision=True).ok

def test_parse_shapes() -> None:
    assert harness.parse_shapes("input_ids:1x128,mask:1x128") == {"input_ids": (1, 128), "mask": (1, 128)}
    assert harness.parse_shapes("a:b:3x4") == {"a:b": (3, 4)}
    with pytest.raises(ValueError, match="NAME:D0xD1"):
        harness.parse_shapes("1x2")


def test_random_feeds_respect_gather_bounds_and_batch() -> None:
    model = models.build("bert", ci=True, vocab_size=50)
    feeds = harness.random_feeds(model, batch=3, dynamic_default=7)
    assert feeds["input_ids"].shape == (3, 7) and feeds["input_ids"].max() < 50
    assert (feeds["attention_mask"] == 1).all()
    sess = harness.create_session(model, "cpu")
    assert sess.run(None, feeds)[0].shape == (3, 7, 64)


def test_prepare_model_names_nodes_and_lowers_ir() -> None:
    node = helper.make_node("Relu", ["x"], ["y"])
    g = helper.make_graph([node, helper.make_node("Relu", ["y"], ["z"])], "g",
                          [helper.make_tensor_value_info("x", 1, [2])], [helper.make_tensor_value_info("z", 1, [2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])  # onnx's newest IR
    p = harness.prepare_model(m)
    assert [n.name for n in p.graph.node] == ["Relu_0", "Relu_1"]
    assert p.ir_version <= harness.ort_max_ir_version()
    sess = harness.create_session(p, "cpu")
    assert set(harness.node_assignment(sess)) == {"Relu_0", "Relu_1"}
    assert harness.assignment_by_op(sess) == {"Relu": {"CPUExecutionProvider": 2}}


def test_create_session_refuses_an_unregistered_provider() -> None:
    m = models.build("resnet50", ci=True)
    with pytest.raises(harness.EpUnavailableError, match="NoSuchExecutionProvider"):
        harness.create_session(m, "NoSuchExecutionProvider")


def test_time_calls() -> None:
    calls = []
    t = harness.time_calls(lambda: calls.append(1), iters=5, warmup=2)
    assert len(calls) == 7 and len(t.samples_ms) == 5 and t.median >= 0 and t.p99 >= t.median
