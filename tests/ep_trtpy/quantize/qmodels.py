"""Small float models and their QDQ versions (onnxruntime.quantization.quantize_static) for the quantization
tests: a conv net (Conv+ReLU, MaxPool, Flatten, Gemm), a residual conv net (an Add of two branches), an MLP
(MatMul + bias + ReLU)."""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh


def _init(name: str, a: np.ndarray) -> Any:
    return nh.from_array(np.asarray(a, np.float32), name)


def _model(nodes: list, inputs: list, outputs: list, inits: list, name: str) -> onnx.ModelProto:
    g = h.make_graph(nodes, name, inputs, outputs, inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(m)
    return m


def conv_net(seed: int = 0, channels: int = 8) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    c = channels
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             h.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             h.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             h.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             h.make_node("MaxPool", ["r2"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             h.make_node("Flatten", ["p"], ["f"], name="flatten"),
             h.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1, name="fc")]
    inits = [_init("w1", rng.normal(size=(c, 3, 3, 3)) * 0.3), _init("b1", rng.normal(size=c) * 0.1),
             _init("w2", rng.normal(size=(c, c, 3, 3)) * 0.15), _init("b2", rng.normal(size=c) * 0.1),
             _init("wf", rng.normal(size=(10, c * 16)) * 0.1), _init("bf", rng.normal(size=10) * 0.1)]
    return _model(nodes, [h.make_tensor_value_info("x", T.FLOAT, ["N", 3, 8, 8])],
                  [h.make_tensor_value_info("y", T.FLOAT, ["N", 10])], inits, "conv_net")


def residual_net(seed: int = 1) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="stem"),
             h.make_node("Relu", ["c1"], ["r1"], name="stem_relu"),
             h.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="branch_a"),
             h.make_node("Relu", ["c2"], ["r2"], name="branch_relu"),
             h.make_node("Conv", ["r2", "w3", "b3"], ["c3"], pads=[0, 0, 0, 0], name="branch_b"),
             h.make_node("Add", ["c3", "r1"], ["s"], name="residual"),
             h.make_node("Relu", ["s"], ["r3"], name="out_relu"),
             h.make_node("GlobalAveragePool", ["r3"], ["g"], name="gap"),
             h.make_node("Flatten", ["g"], ["f"], name="flatten"),
             h.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1, name="head")]
    inits = [_init("w1", rng.normal(size=(8, 3, 3, 3)) * 0.3), _init("b1", rng.normal(size=8) * 0.1),
             _init("w2", rng.normal(size=(8, 8, 3, 3)) * 0.15), _init("b2", rng.normal(size=8) * 0.1),
             _init("w3", rng.normal(size=(8, 8, 1, 1)) * 0.3), _init("b3", rng.normal(size=8) * 0.1),
             _init("wf", rng.normal(size=(5, 8)) * 0.3), _init("bf", rng.normal(size=5) * 0.1)]
    return _model(nodes, [h.make_tensor_value_info("x", T.FLOAT, ["N", 3, 8, 8])],
                  [h.make_tensor_value_info("y", T.FLOAT, ["N", 5])], inits, "residual_net")


def mlp(seed: int = 2) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes = [h.make_node("MatMul", ["x", "w1"], ["m1"], name="fc1"),
             h.make_node("Add", ["m1", "b1"], ["a1"], name="fc1_bias"),
             h.make_node("Relu", ["a1"], ["r1"], name="fc1_relu"),
             h.make_node("MatMul", ["r1", "w2"], ["m2"], name="fc2"),
             h.make_node("Add", ["m2", "b2"], ["y"], name="fc2_bias")]
    inits = [_init("w1", rng.normal(size=(16, 32)) * 0.25), _init("b1", rng.normal(size=32) * 0.1),
             _init("w2", rng.normal(size=(32, 6)) * 0.2), _init("b2", rng.normal(size=6) * 0.1)]
    return _model(nodes, [h.make_tensor_value_info("x", T.FLOAT, ["N", 16])],
                  [h.make_tensor_value_info("y", T.FLOAT, ["N", 6])], inits, "mlp")


def batches(model: onnx.ModelProto, n: int, batch: int = 2, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """n seeded batches of standard normal inputs (the batch dimension set to `batch`)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        feeds = {}
        for vi in model.graph.input:
            dims = [d.dim_value if d.HasField("dim_value") else batch for d in vi.type.tensor_type.shape.dim]
            feeds[vi.name] = rng.normal(size=dims).astype(np.float32)
        out.append(feeds)
    return out


def save(model: onnx.ModelProto, folder: Any, name: str) -> str:
    path = os.path.join(str(folder), name)
    onnx.save(model, path)
    return path


def qdq(model: onnx.ModelProto, folder: Any, name: str, calibration: list[dict[str, np.ndarray]],
        per_channel: bool = True, activations: str = "QInt8", symmetric: bool = False) -> str:
    """The QDQ model onnxruntime.quantization.quantize_static writes for `model` (int8 weights, `activations`
    QInt8 or QUInt8), calibrated with min-max on `calibration`; returns its path."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    src = save(model, folder, f"{name}_fp32.onnx")
    dst = os.path.join(str(folder), f"{name}_qdq.onnx")
    logging.getLogger().setLevel(logging.ERROR)
    quantize_static(src, dst, _Reader(calibration), quant_format=QuantFormat.QDQ,
                    per_channel=per_channel, activation_type=getattr(QuantType, activations),
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": symmetric})
    return dst


class _Reader:
    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self.items = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.items, None)


def ort_run(path_or_model: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The outputs of ORT's CPU provider (all graph optimizations on, as a user's session)."""
    import onnxruntime as ort

    data = path_or_model if isinstance(path_or_model, str) else path_or_model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)


def output_step(path: str) -> float:
    """The scale of the QDQ model's last DequantizeLinear (the step of its output)."""
    m = onnx.load(path)
    inits = {t.name: nh.to_array(t) for t in m.graph.initializer}
    last = [n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == m.graph.output[0].name]
    return float(inits[last[0].input[1]])
