"""ep-trtpy profile's achieved-rate column: the work formulas, the roofline and the plans they read."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ep_trtpy.builder.build import optimize
from ep_trtpy.builder.lowering import lower
from ep_trtpy.cli import _roofline
from ep_trtpy.engine.plan import LayerSpec, TensorSpec
from ep_trtpy.options import parse
from graph_partitioner.onnx_io import graph_from_onnx


def _direct_conv_flops(n: int, c: int, k: int, group: int, out_hw: tuple[int, int], rs: tuple[int, int]) -> int:
    """Multiply-adds counted one output element at a time (2 flops each)."""
    per_output = (c // group) * rs[0] * rs[1]
    return sum(2 * per_output for _ in range(n * k * out_hw[0] * out_hw[1]))


@pytest.mark.parametrize("group", [1, 2, 8])
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_conv_flops_match_the_direct_count(group: int, layout: str) -> None:
    n, c, k, (p, q), (r, s) = 2, 8, 16, (5, 7), (3, 3)
    w = (k, c // group, r, s) if layout == "nchw" else (k, r, s, c // group)
    y = (n, k, p, q) if layout == "nchw" else (n, p, q, k)
    got = _roofline.layer_flops("conv", [], [(n, c, 9, 11), w], [y])
    assert got == _direct_conv_flops(n, c, k, group, (p, q), (r, s))


def test_gemm_attention_and_conv_transpose_flops() -> None:
    assert _roofline.layer_flops("gemm", [64, 128, 256, 3, 0, 0], [], []) == 2 * 64 * 128 * 256 * 3
    b, h, sq, skv, d = 2, 12, 128, 96, 64
    assert _roofline.layer_flops("attention", [b, h, sq, skv, d, d], [], []) == 4 * b * h * sq * skv * d
    assert _roofline.layer_flops("attention", [1, 1, 4, 4, 8, 16], [], []) == 2 * 4 * 4 * (8 + 16)
    # ConvTranspose: every input element meets K/g * R * S weights
    x, w = (2, 6, 5, 5), (6, 4, 3, 3)
    assert _roofline.layer_flops("conv_transpose", [], [x, w], [(2, 4, 7, 7)]) == 2 * 2 * 6 * 25 * 4 * 9
    assert _roofline.layer_flops("pointwise", [1, 2, 3, 4, 5, 6], [(4,)], [(4,)]) == 0


def _tensor(i: int, shape: tuple[int, ...], dtype: int = 1) -> TensorSpec:
    return TensorSpec(i, f"t{i}", dtype, shape, "activation")


def test_layer_bytes_count_each_tensor_once() -> None:
    tensors = [_tensor(0, (4, 8), 10), _tensor(1, (8,), 1), _tensor(2, (4, 8), 10)]
    work = _roofline.layer_work(LayerSpec("pointwise", [0, 1, 0, -1], [2]), tensors)
    assert work.bytes == 4 * 8 * 2 + 8 * 4 + 4 * 8 * 2
    assert not work.compute and work.dtype == 10


def test_roofline_time_and_share() -> None:
    lim = _roofline.H200
    copy = _roofline.Work(0.0, 43_000_000, 1)  # 43 MB at 4.3 TB/s: 10 us
    assert _roofline.roofline_ms(copy) == pytest.approx(0.01)
    got = _roofline.achieved(copy, 0.02)
    assert got.unit == "GB/s" and got.value == pytest.approx(2150.0) and got.share == pytest.approx(0.5)
    # a large half GEMM is compute-bound at the 16-bit rate; the same in float32 at the TF32 rate (half)
    half = _roofline.Work(2.0 * 8192**3, 3 * 8192 * 8192 * 2, 10)
    single = _roofline.Work(half.flops, half.bytes * 2, 1)
    assert _roofline.roofline_ms(half) == pytest.approx(half.flops / lim.flops_16bit * 1e3)
    assert _roofline.roofline_ms(single) == pytest.approx(2 * _roofline.roofline_ms(half))
    at_peak = _roofline.achieved(half, _roofline.roofline_ms(half))
    assert at_peak.unit == "TFLOP/s" and at_peak.value == pytest.approx(790.0) and at_peak.share == pytest.approx(1.0)
    # a skinny product is memory-bound: its roofline is its bytes over the bandwidth
    skinny = _roofline.Work(2.0 * 1 * 4096 * 4096, 4096 * 4096 * 2, 10)
    assert _roofline.roofline_ms(skinny) == pytest.approx(skinny.bytes / lim.bytes_per_s * 1e3)


def test_limits_name_their_source() -> None:
    assert "KINDS.md" in _roofline.H200.source and math.isclose(_roofline.H200.bytes_per_s, 4.3e12)


def _conv_gemm_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((16, 4, 3, 3)).astype(np.float32), "w")
    m = numpy_helper.from_array(rng.standard_normal((16 * 6 * 6, 10)).astype(np.float32), "m")
    shape = numpy_helper.from_array(np.array([2, -1], np.int64), "shape")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], group=2, pads=[0, 0, 0, 0]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Reshape", ["r", "shape"], ["f"]),
             helper.make_node("MatMul", ["f", "m"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 10])], [w, m, shape])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_work_of_a_lowered_plan() -> None:
    """The plan's own kernels and tensors give the formulas' numbers (conv: 2·N·K·P·Q·(C/g)·R·S)."""
    options = parse({})
    graph = optimize(graph_from_onnx(_conv_gemm_model()), {"x": (2, 8, 8, 8)}, options)
    plan, _ = lower(graph, options)
    works = {lay.kernel: _roofline.layer_work(lay, plan.tensors) for lay in plan.layers}
    assert works["conv"].flops == 2 * 2 * 16 * 6 * 6 * (8 // 2) * 3 * 3
    assert works["gemm"].flops == 2 * 2 * 10 * (16 * 6 * 6)
    assert works["conv"].bytes >= (2 * 8 * 8 * 8 + 16 * 4 * 3 * 3 + 2 * 16 * 6 * 6) * 4
    columns = SimpleNamespace(layers=plan.layers, tensors=plan.tensors)
    from ep_trtpy.cli.profile import _work_columns

    rows = _work_columns(columns, [0.01] * len(plan.layers))
    assert {r["unit"] for r in rows} <= {"TFLOP/s", "GB/s"}
    assert all(r["roofline_share"] > 0 for r in rows)


def test_profile_takes_every_model_source_and_precision(monkeypatch) -> None:
    from ep_trtpy.cli import bench, build_parser, profile

    args = build_parser().parse_args(["profile", "--arch", "bert", "--ci", "--batch", "3", "--precision", "fp16"])
    model, feeds = profile._model(args)
    assert feeds["input_ids"].shape == (3, 16) and model.graph.input[0].name == "input_ids"
    options, precision = profile._options(args)
    assert options.fp16_enable and precision == "fp16"
    src = build_parser().parse_args(["profile", "--model", "torchvision:resnet50", "--fp16"])
    assert src.source == "torchvision:resnet50" and profile._options(src)[1] == "fp16"
    monkeypatch.setattr(bench, "_known_option", lambda name: False)
    with pytest.raises(ValueError, match="--precision bf16: this build of ep_trtpy has no bf16_enable option"):
        profile._options(build_parser().parse_args(["profile", "--arch", "bert", "--precision", "bf16"]))
    with pytest.raises(ValueError, match="--precision accepts fp32, fp32-strict, fp16, bf16, got 'int8'"):
        profile._options(build_parser().parse_args(["profile", "--arch", "bert", "--precision", "int8"]))
