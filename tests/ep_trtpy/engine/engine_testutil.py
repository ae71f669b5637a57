"""Small artifacts for the engine format and cache tests."""

import numpy as np

from builder_testutil import GB
from ep_trtpy.builder.build import build
from ep_trtpy.engine.artifact import Device, EngineArtifact
from ep_trtpy.engine.plan import LayerSpec, Plan, TensorSpec
from ep_trtpy.options import parse
from graph_partitioner.ir import FLOAT

H100 = Device(0, "NVIDIA H100 80GB HBM3", (9, 0))


def small_graph(bias=1.0):
    gb = GB()
    x = gb.input("x", ("N", 8))
    w = gb.const(np.linspace(-1, 1, 8 * 300, dtype=np.float32).reshape(8, 300), "w")  # > 1 KiB: stripped in cuda
    y = gb.op("MatMul", [x, w])
    y = gb.op("Relu", [gb.op("Add", [y, gb.const(np.full(300, bias, np.float32), "b")])])
    return gb.output(gb.op("Sigmoid", [y]))


def reference_artifact(options=None, shapes=((2, 8),)):
    return build(small_graph(), list(shapes), options or parse({}), "reference")


def cuda_like_artifact():
    """A reference-optimized graph dressed with a hand-made plan (lowering is another helper's work)."""
    art = reference_artifact()
    weights = bytes(range(256)) * 40  # 10240 bytes
    plan = Plan(
        tensors=[TensorSpec(0, "x", FLOAT, (2, 8), "input", 0, 0, 64),
                 TensorSpec(1, "w", FLOAT, (8, 300), "weight", -1, 0, 9600),
                 TensorSpec(2, "t", FLOAT, (2, 300), "activation", -1, 0, 2400),
                 TensorSpec(3, "y", FLOAT, (2, 300), "output", 0, 0, 2400),
                 TensorSpec(4, "tv", FLOAT, (600,), "alias", 2, 0, 2400)],
        layers=[LayerSpec("gemm", [0, 1, -1], [2], [1, 2], [1.0], 3, 1024, "mm", {"fused": ["MatMul", "Add"]}),
                LayerSpec("pointwise", [4], [3], [], [], -1, 0, "act", {"precision": "float32"})],
        n_inputs=1, n_outputs=1, arena_bytes=2560, weights_bytes=len(weights))
    return EngineArtifact("cuda", art.graph, art.input_names, art.input_shapes, art.outputs, H100, plan, weights,
                          art.fusions, art.passes, 0.5)
