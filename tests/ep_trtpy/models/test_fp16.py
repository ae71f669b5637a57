"""float32 -> float16 model conversion (used for the CUDA EP's FP16 baseline)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from ep_trtpy import models
from ep_trtpy.cli import harness
from ep_trtpy.models.fp16 import to_fp16


@pytest.mark.parametrize("name", models.names())
def test_converted_models_are_valid_and_close(name: str) -> None:
    model = models.build(name, ci=True)
    half = to_fp16(model)
    onnx.checker.check_model(half, full_check=True)
    keep = {n.input[2] for n in half.graph.node if n.op_type == "Resize"}
    for t in half.graph.initializer:
        if t.name in keep:
            assert t.data_type == onnx.TensorProto.FLOAT, f"Resize scales {t.name} must stay float32"
        else:
            assert t.data_type != onnx.TensorProto.FLOAT, f"{t.name} was not converted"
    casts = [n for n in half.graph.node if n.op_type == "Cast"]
    assert any(n.output[0] == half.graph.output[0].name for n in casts)  # outputs keep float32
    feeds = models.make_feeds(name, batch=2, ci=True)
    ref = harness.create_session(model, "cpu").run(None, feeds)[0]
    got = harness.create_session(half, "cpu").run(None, feeds)[0]
    assert got.dtype == np.float32
    cmp = harness.compare("out", got, ref, low_precision=True)
    assert cmp.cosine > 0.999, cmp.line()


def test_io_types_can_change_too() -> None:
    half = to_fp16(models.build("resnet50", ci=True), keep_io_types=False)
    assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert half.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
