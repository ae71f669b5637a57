"""Conv, ConvTranspose, Gemm, MatMul, Einsum: our references against onnxruntime's CPU provider."""

from __future__ import annotations

import time

import numpy as np
import pytest
from ops_harness import Case, case, check

RNG = np.random.default_rng(11)
F32, F16 = np.float32, np.float16
TOL = dict(rtol=1e-4, atol=1e-5)  # long float32 dot products: summation order differs from MLAS
TOL16 = dict(rtol=5e-3, atol=5e-3)


def rnd(*shape: int, dtype: type = F32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


CASES: list[Case] = [
    case("Conv-2d-bias-pads-strides", "Conv", [rnd(1, 3, 7, 7), rnd(4, 3, 3, 3), rnd(4)],
         {"pads": [1, 0, 2, 1], "strides": [2, 1]}, **TOL),
    case("Conv-2d-1x1", "Conv", [rnd(2, 8, 5, 5), rnd(6, 8, 1, 1)], {}, **TOL),
    case("Conv-2d-1x1-stride2", "Conv", [rnd(1, 8, 6, 6), rnd(6, 8, 1, 1)], {"strides": [2, 2]}, **TOL),
    case("Conv-2d-dilations", "Conv", [rnd(2, 4, 9, 8), rnd(6, 2, 3, 2)],
         {"group": 2, "dilations": [2, 3], "pads": [1, 2, 0, 1], "strides": [2, 1]}, **TOL),
    case("Conv-2d-group-same-upper", "Conv", [rnd(2, 4, 9, 8), rnd(6, 2, 3, 2)],
         {"group": 2, "auto_pad": "SAME_UPPER", "strides": [2, 3]}, **TOL),
    case("Conv-2d-same-lower", "Conv", [rnd(1, 3, 8, 7), rnd(2, 3, 4, 3)],
         {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, **TOL),
    case("Conv-2d-valid", "Conv", [rnd(1, 3, 8, 7), rnd(2, 3, 4, 3)], {"auto_pad": "VALID", "strides": [2, 2]}, **TOL),
    case("Conv-2d-depthwise", "Conv", [rnd(1, 8, 9, 8), rnd(8, 1, 3, 3), rnd(8)], {"group": 8, "pads": [1, 1, 1, 1]},
         **TOL),
    case("Conv-2d-depthwise-multiplier", "Conv", [rnd(1, 4, 6, 6), rnd(8, 1, 3, 3)], {"group": 4}, **TOL),
    case("Conv-2d-explicit-kernel-shape", "Conv", [rnd(1, 2, 5, 5), rnd(3, 2, 2, 2)], {"kernel_shape": [2, 2]}, **TOL),
    case("Conv-1d", "Conv", [rnd(2, 3, 10), rnd(4, 3, 3), rnd(4)], {"pads": [1, 2], "strides": [2]}, **TOL),
    case("Conv-3d", "Conv", [rnd(1, 2, 5, 6, 7), rnd(4, 2, 3, 3, 2)],
         {"pads": [1, 0, 1, 0, 1, 1], "strides": [1, 2, 2]}, **TOL),
    case("Conv-f16", "Conv", [rnd(1, 3, 7, 7, dtype=F16), rnd(4, 3, 3, 3, dtype=F16), rnd(4, dtype=F16)],
         {"pads": [1, 1, 1, 1]}, **TOL16),
    case("Conv-const-weights", "Conv", [rnd(1, 3, 6, 6), rnd(4, 3, 3, 3), rnd(4)], {}, const=(1, 2), **TOL),
    case("Conv-zero-batch", "Conv", [np.zeros((0, 3, 5, 5), F32), rnd(4, 3, 3, 3)], {}),
]
CT_X, CT_W = rnd(1, 2, 3, 4), rnd(2, 3, 3, 2)
CASES += [
    case("ConvTranspose-basic-bias", "ConvTranspose", [rnd(1, 2, 3, 3), rnd(2, 3, 3, 3), rnd(3)], {}, **TOL),
    case("ConvTranspose-strides", "ConvTranspose", [CT_X, CT_W], {"strides": [2, 3]}, **TOL),
    case("ConvTranspose-pads", "ConvTranspose", [CT_X, rnd(2, 3, 3, 3)], {"strides": [2, 2], "pads": [1, 0, 1, 2]},
         **TOL),
    case("ConvTranspose-output-padding", "ConvTranspose", [CT_X, CT_W], {"strides": [2, 2], "output_padding": [1, 1]},
         **TOL),
    case("ConvTranspose-dilations", "ConvTranspose", [CT_X, CT_W], {"strides": [2, 1], "dilations": [2, 2]}, **TOL),
    case("ConvTranspose-group", "ConvTranspose", [rnd(1, 4, 3, 4), rnd(4, 3, 3, 3), rnd(6)],
         {"group": 2, "strides": [2, 2]}, **TOL),
    case("ConvTranspose-valid", "ConvTranspose", [CT_X, CT_W], {"strides": [2, 2], "auto_pad": "VALID"}, **TOL),
    case("ConvTranspose-1d", "ConvTranspose", [rnd(1, 2, 5), rnd(2, 3, 3)], {"strides": [2], "pads": [1, 1]}, **TOL),
    case("ConvTranspose-3d", "ConvTranspose", [rnd(1, 2, 3, 3, 2), rnd(2, 3, 2, 3, 2)], {"strides": [2, 1, 2]}, **TOL),
    case("ConvTranspose-f16", "ConvTranspose", [CT_X.astype(F16), CT_W.astype(F16)], {"strides": [2, 2]}, **TOL16),
]
for ap in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
    for s in (1, 2, 3):
        if ap != "NOTSET":
            CASES.append(case(f"ConvTranspose-{ap}-stride{s}", "ConvTranspose", [CT_X, CT_W],
                              {"strides": [s, s], "auto_pad": ap}, **TOL))
        CASES.append(case(f"ConvTranspose-{ap}-stride{s}-output-shape", "ConvTranspose", [CT_X, CT_W],
                          {"strides": [s, s], "auto_pad": ap, "output_shape": [3 * s + 1, 4 * s - 1]}, **TOL))
CASES.append(case("ConvTranspose-SAME_LOWER-dilation-output-padding", "ConvTranspose", [CT_X, CT_W],
                  {"strides": [2, 2], "auto_pad": "SAME_LOWER", "dilations": [2, 2], "output_padding": [1, 0]}, **TOL))

CASES += [
    case("Gemm-transB-alpha-beta", "Gemm", [rnd(3, 4), rnd(5, 4), rnd(5)], {"transB": 1, "alpha": 0.5, "beta": 2.0},
         **TOL),
    case("Gemm-transA-column-C", "Gemm", [rnd(4, 3), rnd(4, 5), rnd(3, 1)], {"transA": 1}, **TOL),
    case("Gemm-both-trans-full-C", "Gemm", [rnd(4, 3), rnd(5, 4), rnd(3, 5)], {"transA": 1, "transB": 1}, **TOL),
    case("Gemm-no-C", "Gemm", [rnd(4, 3), rnd(3, 5)], {}, **TOL),
    case("Gemm-scalar-C-beta0", "Gemm", [rnd(2, 3), rnd(3, 2), np.float32(7.0)], {"beta": 0.0}, **TOL),
    case("Gemm-f16", "Gemm", [rnd(3, 8, dtype=F16), rnd(8, 4, dtype=F16), rnd(4, dtype=F16)], {}, **TOL16),
    case("Gemm-opset9-required-C", "Gemm", [rnd(2, 3), rnd(3, 2), rnd(2, 2)], {}, opset=9, **TOL),
    case("MatMul-2d", "MatMul", [rnd(3, 4), rnd(4, 5)], **TOL),
    case("MatMul-batch-broadcast", "MatMul", [rnd(2, 1, 3, 4), rnd(5, 4, 6)], **TOL),
    case("MatMul-1d-left", "MatMul", [rnd(4), rnd(5, 4, 6)], **TOL),
    case("MatMul-1d-right", "MatMul", [rnd(2, 3, 4), rnd(4)], **TOL),
    case("MatMul-1d-both", "MatMul", [rnd(4), rnd(4)], **TOL),
    case("MatMul-zero-k", "MatMul", [np.zeros((3, 0), F32), np.zeros((0, 4), F32)]),
    case("MatMul-zero-batch", "MatMul", [np.zeros((0, 3, 2), F32), rnd(2, 4)]),
    case("MatMul-f16", "MatMul", [rnd(2, 3, 16, dtype=F16), rnd(16, 5, dtype=F16)], **TOL16),
    case("MatMul-i32", "MatMul", [RNG.integers(-9, 9, (2, 3)).astype(np.int32), RNG.integers(-9, 9, (3, 2))
                                  .astype(np.int32)]),
    case("MatMul-i64", "MatMul", [RNG.integers(-9, 9, (4, 3)), RNG.integers(-9, 9, (3,))]),
]
for eq, shapes in (("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("...j,jk", [(2, 3, 4), (4, 5)]),
                   ("ij->ji", [(3, 4)]), ("ij->", [(3, 4)]), ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
                   ("i,j->ij", [(3,), (4,)]), ("ij,ij->i", [(3, 4), (3, 4)]), ("ab", [(2, 3)])):
    CASES.append(case(f"Einsum-{eq.replace('->', '_to_').replace('...', 'ell').replace(',', '_')}", "Einsum",
                      [rnd(*s) for s in shapes], {"equation": eq}, opset=12, **TOL))
CASES.append(case("Einsum-f16", "Einsum", [rnd(2, 3, dtype=F16), rnd(3, 4, dtype=F16)], {"equation": "ij,jk->ik"},
                  opset=12, **TOL16))


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_linalg_against_onnxruntime(c: Case) -> None:
    check(c)


def test_conv_reference_is_fast_enough_for_resnet50() -> None:
    """The Conv layers of ResNet-50 at batch 1 (the reference backend's main load) take well under a few seconds."""
    from ep_trtpy.ops.linalg import conv_ref
    from graph_partitioner.ir import Node

    convs = [((1, 3, 224, 224), (64, 3, 7, 7), 2, 3)]
    for cin, mid, cout, hw, stride, blocks in ((64, 64, 256, 56, 1, 3), (256, 128, 512, 56, 2, 4),
                                               (512, 256, 1024, 28, 2, 6), (1024, 512, 2048, 14, 2, 3)):
        for b in range(blocks):
            s, c_in, h = (stride, cin, hw) if b == 0 else (1, cout, hw // stride)
            convs += [((1, c_in, h, h), (mid, c_in, 1, 1), 1, 0), ((1, mid, h, h), (mid, mid, 3, 3), s, 1),
                      ((1, mid, h // s, h // s), (cout, mid, 1, 1), 1, 0)]
            if b == 0:
                convs.append(((1, c_in, h, h), (cout, c_in, 1, 1), s, 0))
    arrays = [(RNG.standard_normal(xs, dtype=F32), RNG.standard_normal(ws, dtype=F32), s, p) for xs, ws, s, p in convs]
    t0 = time.perf_counter()
    for x, w, s, p in arrays:
        conv_ref(Node("Conv", "c", attrs={"strides": [s, s], "pads": [p] * 4}), x, w, None)
    assert time.perf_counter() - t0 < 4.0
