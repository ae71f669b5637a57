"""GPU tests of the ``softmax`` and ``layernorm`` kernels (cuda_kernels/kernels/softmax.cu, layernorm.cu):
Softmax/LogSoftmax over every launch shape (a warp per row for R <= 1024, a block per row above, column blocks
when the axis is not innermost), both opset semantics, float16, masked (-inf) rows; LayerNormalization over every
per-lane register bucket (cols <= 128, 256, 512, 1024) and the block path, with and without bias, broadcast
scale/bias, float16 data of magnitude 1e4 (no overflow, float32 statistics). See kernel_harness.py."""

from __future__ import annotations

import numpy as np
import pytest
from kernel_harness import Case, In, check_case, fp16_case, gpu_marks, ir_graph, node_case, rand

pytestmark = gpu_marks

SOFTMAX_LAYOUTS = [((5, 7), -1), ((64, 128), -1), ((3, 1024), 1), ((2, 1025), 1), ((2, 5000), -1), ((1, 40000), 1),
                   ((4, 37, 33), 1), ((300, 5), 0), ((2, 3, 4, 5), 1), ((6,), 0), ((0, 5), 1)]


@pytest.mark.parametrize("shape,axis", SOFTMAX_LAYOUTS)
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_opset13(op: str, shape: tuple, axis: int) -> None:
    x = rand(shape, np.float32, 1, low=-8, high=8)
    check_case(node_case(op, [In("x", x)], {"axis": axis}, opset=13), rtol=2e-5, atol=1e-6, kernels=["softmax"])


@pytest.mark.parametrize("shape,axis", [((3, 4, 5), 1), ((3, 4, 5), 0), ((2, 3, 700), 2), ((2, 3, 4, 5), 2)])
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_opset11_coerces_to_2d(op: str, shape: tuple, axis: int) -> None:
    x = rand(shape, np.float32, 2, low=-4, high=4)
    plan = check_case(node_case(op, [In("x", x)], {"axis": axis}, opset=11), rtol=2e-5, atol=1e-6,
                      kernels=["softmax"])
    assert plan.layers[0].ints[3] == 1


@pytest.mark.parametrize("shape,axis", [((64, 128), -1), ((2, 3000), 1), ((4, 37, 33), 1)])
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_float16(op: str, shape: tuple, axis: int) -> None:
    x = rand(shape, np.float32, 3, low=-8, high=8)
    check_case(fp16_case(op, [In("x", x)], {"axis": axis}, opset=13), rtol=3e-3, atol=2e-4 if op == "Softmax" else
               5e-3, kernels=["softmax"])


def test_softmax_large_logits_and_masks() -> None:
    """Attention-style rows: large logits (max subtraction) and -inf masks (exp -> 0); fully masked rows give NaN
    as numpy does (0/0)."""
    x = rand((8, 300), np.float32, 4, low=-5, high=5) * np.float32(200)
    x[:, 100:] = -np.inf
    x[3, :] = -np.inf
    with np.errstate(invalid="ignore"):
        m = x.max(axis=1, keepdims=True)
        e = np.exp(x - m)
        expected = [(e / e.sum(axis=1, keepdims=True)).astype(np.float32)]
    check_case(Case(ir_graph("Softmax", [In("x", x)], {"axis": 1}, expected, 13), [x], expected, None), rtol=2e-5,
               atol=1e-7)


def _layernorm_reference(x: np.ndarray, scale: np.ndarray, bias: np.ndarray | None, axis: int,
                         eps: float) -> np.ndarray:
    """float64 two-pass reference."""
    v = x.astype(np.float64)
    red = tuple(range(axis % x.ndim, x.ndim))
    mean = v.mean(axis=red, keepdims=True)
    var = ((v - mean) ** 2).mean(axis=red, keepdims=True)
    y = (v - mean) / np.sqrt(var + eps) * scale.astype(np.float64)
    if bias is not None:
        y = y + bias.astype(np.float64)
    return y.astype(x.dtype)


@pytest.mark.parametrize("cols", [1, 7, 100, 128, 129, 200, 256, 500, 512, 768, 1000, 1024, 1025, 3000, 8192])
@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_widths(cols: int, bias: bool) -> None:
    x = rand((6, cols), np.float32, 5, low=-3, high=5)
    ins = [In("x", x), In("scale", rand((cols,), np.float32, 6), const=True)]
    if bias:
        ins.append(In("b", rand((cols,), np.float32, 7), const=True))
    check_case(node_case("LayerNormalization", ins, {"axis": -1, "epsilon": 1e-5}, opset=17), rtol=1e-4, atol=1e-4,
               kernels=["layernorm"])


@pytest.mark.parametrize("axis", [0, 1, 2, -2])
def test_layernorm_axes_and_runtime_params(axis: int) -> None:
    x = rand((3, 4, 50), np.float32, 8)
    norm = x.shape[axis:]
    ins = [In("x", x), In("scale", rand(norm, np.float32, 9)), In("b", rand(norm, np.float32, 10))]
    check_case(node_case("LayerNormalization", ins, {"axis": axis}, opset=17), rtol=1e-4, atol=1e-4,
               kernels=["layernorm"])


def test_layernorm_broadcast_scale_bias() -> None:
    x = rand((5, 3, 40), np.float32, 11)
    ins = [In("x", x), In("scale", rand((1, 40), np.float32, 12), const=True), In("b", rand((40,), np.float32, 13))]
    check_case(node_case("LayerNormalization", ins, {"axis": 1}, opset=17), rtol=1e-4, atol=1e-4,
               kernels=["pointwise", "layernorm"])


@pytest.mark.parametrize("cols", [64, 768, 4096])
def test_layernorm_float16_large_magnitude(cols: int) -> None:
    """fp16 activations around 1e4: squares reach 1e8 (fp16 would overflow at 65504); statistics in float32."""
    base = rand((8, 1), np.float32, 14, low=-1.2e4, high=1.2e4)
    x = (base + rand((8, cols), np.float32, 15, low=-30, high=30)).astype(np.float16)
    scale = rand((cols,), np.float32, 16).astype(np.float16)
    bias = rand((cols,), np.float32, 17).astype(np.float16)
    expected = [_layernorm_reference(x, scale, bias, -1, 1e-5)]
    ins = [In("x", x), In("scale", scale, const=True), In("b", bias, const=True)]
    check_case(Case(ir_graph("LayerNormalization", ins, {"epsilon": 1e-5}, expected, 17), [x], expected, None),
               rtol=3e-3, atol=4e-3, kernels=["layernorm"])


@pytest.mark.parametrize("cols", [100, 768, 2000])
def test_layernorm_float16_vs_ort(cols: int) -> None:
    x = rand((7, cols), np.float32, 18)
    ins = [In("x", x), In("scale", rand((cols,), np.float32, 19), const=True),
           In("b", rand((cols,), np.float32, 20), const=True)]
    check_case(fp16_case("LayerNormalization", ins, {"epsilon": 1e-3}, opset=17), rtol=3e-3, atol=4e-3,
               kernels=["layernorm"])


def test_layernorm_zero_rows() -> None:
    x = np.zeros((0, 16), np.float32)
    check_case(node_case("LayerNormalization", [In("x", x), In("s", rand((16,), np.float32, 21), const=True)],
                         opset=17), exact=True, kernels=["layernorm"])
