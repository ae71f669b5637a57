"""Lowering of ep_trtpy::Attention onto the ``attention`` kernel: the ints for packed and unpacked inputs and for
every mask shape, the packed views' offsets and extents, then the plan run by the numpy kernel emulator against
the op's reference."""

from __future__ import annotations

import numpy as np
import pytest
from kernel_emulator import execute
from lowering_testutil import In, ir_graph

from ep_trtpy.builder.lowering import LoweringError, lower
from ep_trtpy.builder.lowering.attention import mask_strides
from ep_trtpy.options import parse
from ep_trtpy.ops.registry import run_reference

B, H, S, D = 2, 3, 5, 4
STRICT = parse({"tf32_enable": "0"})


def _case(packed: bool, mask_shape: tuple[int, ...] | None, dtype: type = np.float32, mask_dtype: type | None = None,
          seed: int = 0):  # noqa: ANN202
    rng = np.random.default_rng(seed)
    if packed:
        ins = [In("qkv", rng.standard_normal((B, S, 3 * H * D)).astype(dtype)), None, None]
    else:
        ins = [In(n, rng.standard_normal((B, S, H * D)).astype(dtype)) for n in ("q", "k", "v")]
    if mask_shape is not None:
        m = np.where(rng.random(mask_shape) < 0.3, -1e4, rng.standard_normal(mask_shape))
        ins.append(In("mask", m.astype(mask_dtype or dtype)))
    attrs = {"num_heads": H, "scale": 0.5, "qkv_packed": int(packed)}
    arrays = [None if i is None else i.array for i in ins]
    out = np.zeros((B, S, H * D), dtype)
    graph = ir_graph("Attention", ins, attrs, [out], 17, domain="ep_trtpy")
    (want,) = run_reference(graph.nodes[0], arrays)
    return graph, [i.array for i in ins if i is not None], want


MASKS = {"none": None, "b11s": (B, 1, 1, S), "b1ss": (B, 1, S, S), "11ss": (1, 1, S, S), "bhss": (B, H, S, S)}
STRIDES = {"none": [0, 0, 0, 0], "b11s": [S, 0, 0, 1], "b1ss": [S * S, 0, S, 1], "11ss": [0, 0, S, 1],
           "bhss": [H * S * S, S * S, S, 1]}


@pytest.mark.parametrize("packed", [False, True], ids=["unpacked", "packed"])
@pytest.mark.parametrize("mask", list(MASKS))
def test_ints_and_numbers(packed: bool, mask: str) -> None:
    graph, feeds, want = _case(packed, MASKS[mask])
    plan, weights = lower(graph, STRICT)
    (layer,) = plan.layers
    row = 3 * H * D if packed else H * D
    assert layer.kernel == "attention"
    assert layer.ints == [B, H, S, S, D, D, row, row, row, *STRIDES[mask], 0]
    assert layer.floats == [0.5]
    assert (layer.inputs[3] == -1) == (mask == "none")
    (got,) = execute(plan, weights, feeds)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_packed_views_sit_inside_the_packed_tensor() -> None:
    graph, _, _ = _case(True, None)
    plan, _ = lower(graph)
    views = [plan.tensors[t] for t in plan.layers[0].inputs[:3]]
    src = plan.tensors[views[0].index]
    assert [v.kind for v in views] == ["alias"] * 3 and len({v.index for v in views}) == 1
    assert [v.offset for v in views] == [0, H * D * 4, 2 * H * D * 4]
    assert all(v.offset + v.nbytes <= src.nbytes for v in views)
    assert views[2].offset + views[2].nbytes == src.nbytes  # V's last element is the tensor's last


def test_tf32_math_flag_for_float32_only() -> None:
    graph, feeds, want = _case(False, (B, 1, 1, S), seed=4)
    plan, weights = lower(graph, parse({"tf32_enable": "1"}))
    assert plan.layers[0].ints[-1] == 1
    (got,) = execute(plan, weights, feeds)
    np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-2)  # TF32 operands: 10-bit significands
    assert not np.array_equal(got, execute(*lower(graph, STRICT), feeds)[0])
    plan16, _ = lower(_case(False, None, np.float16)[0], parse({"tf32_enable": "1"}))
    assert plan16.layers[0].ints[-1] == 0


def test_float16_with_a_float32_mask() -> None:
    graph, feeds, want = _case(False, (B, 1, 1, S), np.float16, np.float32)
    plan, weights = lower(graph)
    assert plan.tensors[plan.layers[0].inputs[3]].dtype == 1 and plan.layers[0].ints[-1] == 0
    (got,) = execute(plan, weights, feeds)
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=2e-3, atol=2e-3)


def test_mask_strides_right_align() -> None:
    assert mask_strides((S,)) == [0, 0, 0, 1]
    assert mask_strides((S, 1)) == [0, 0, 1, 0]
    assert mask_strides((H, 1, S)) == [0, S, 0, 1]


def test_a_mask_that_does_not_broadcast_is_a_lowering_error() -> None:
    graph, _, _ = _case(False, None)
    bad = graph.add_value("mask", 1, (B, 2, S, S))
    graph.inputs.append(bad)
    graph.set_input(graph.nodes[0], 3, bad)
    with pytest.raises(LoweringError, match="does not broadcast"):
        lower(graph)


@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16"])
def test_whole_bert_plan_with_packed_attention(fp16: bool) -> None:
    """The generated BERT optimized, lowered (packed QKV views inside the arena plan) and run by the emulator,
    against ONNX Runtime's CPU provider on the original model."""
    import onnxruntime as ort

    from ep_trtpy import models
    from ep_trtpy.builder.build import optimize
    from graph_partitioner.onnx_io import graph_from_onnx

    model = models.build("bert", ci=True)
    feeds = models.make_feeds("bert", batch=2, seed=1, ci=True, sequence=8)
    options = parse({"tf32_enable": "0", "fp16_enable": "1" if fp16 else "0"})
    graph = optimize(graph_from_onnx(model), {k: v.shape for k, v in feeds.items()}, options)
    plan, weights = lower(graph, options)
    layers = [lay for lay in plan.layers if lay.kernel == "attention"]
    assert len(layers) == 2 and all(plan.tensors[t].kind == "alias" for lay in layers for t in lay.inputs[:3])
    assert "softmax" not in [lay.kernel for lay in plan.layers]
    (got,) = execute(plan, weights, [feeds[v.name] for v in graph.inputs])
    so = ort.SessionOptions()
    so.log_severity_level = 3
    (want,) = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)
    tol = 3e-2 if fp16 else 1e-4
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * float(np.abs(want).max()))
