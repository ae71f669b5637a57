"""Writes model.onnx, the first-run sample: a small CNN + MLP classifier on 32x32 RGB images.

    image[batch,3,32,32] -> Conv 3x3 (8) -> Relu -> MaxPool 2x2
                         -> Conv 3x3 (16) -> Relu -> Add(per-channel offset [1,16,1,1], broadcast)
                         -> GlobalAveragePool -> Flatten -> Gemm (32) -> Relu -> Gemm (10)
                         -> Add(class prior [10], broadcast) -> Softmax -> probabilities[batch,10]

The weights are seeded, so running this script again writes the same file (the tests check that the committed
model.onnx is exactly what this script produces).

    python samples/01_first_run/make_model.py [-o model.onnx]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


def build(seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)

    def he(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    weights = {
        "conv1.weight": he((8, 3, 3, 3), 27), "conv1.bias": np.zeros(8, np.float32),
        "conv2.weight": he((16, 8, 3, 3), 72), "conv2.bias": np.zeros(16, np.float32),
        "offset": (rng.standard_normal((1, 16, 1, 1)) * 0.1).astype(np.float32),
        "fc1.weight": he((32, 16), 16), "fc1.bias": (rng.standard_normal(32) * 0.1).astype(np.float32),
        "fc2.weight": he((10, 32), 32), "fc2.bias": np.zeros(10, np.float32),
        "prior": np.log(np.linspace(0.5, 1.5, 10)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["image", "conv1.weight", "conv1.bias"], ["c1"], name="conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], name="conv2",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Add", ["r2", "offset"], ["a2"], name="add_offset"),  # after Relu: ORT cannot fold it
        helper.make_node("GlobalAveragePool", ["a2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "fc1.weight", "fc1.bias"], ["h1"], name="fc1", transB=1),
        helper.make_node("Relu", ["h1"], ["r3"], name="relu3"),
        helper.make_node("Gemm", ["r3", "fc2.weight", "fc2.bias"], ["logits"], name="fc2", transB=1),
        helper.make_node("Add", ["logits", "prior"], ["biased"], name="add_prior"),
        helper.make_node("Softmax", ["biased"], ["probabilities"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "first_run_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                              producer_name="ep_trtpy samples/01_first_run")
    onnx.checker.check_model(model, full_check=True)
    return model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", default=os.path.join(HERE, "model.onnx"))
    args = p.parse_args()
    model = build()
    onnx.save(model, args.output)
    print(f"wrote {args.output} ({os.path.getsize(args.output)} bytes, {len(model.graph.node)} nodes)")


if __name__ == "__main__":
    main()
