"""The float64 numpy references used by the GPU kernel tests, checked on the CPU against ONNX Runtime's CPU
provider for every configuration the GPU tests use (so a GPU failure points at the kernel, not the reference)."""

from __future__ import annotations

import numpy as np
import pytest

from lib_kernel_helpers import (CONV_CASES, CONV_TRANSPOSE_CASES, CONV_TRANSPOSE_ORT_ATTRS, ConvCase, In,
                                conv_case_output_shape, conv_ref, conv_transpose_case_reference, conv_transpose_ref,
                                gelu_ref, gelu_tanh_ref, one_node_graph, ort_reference)


@pytest.mark.parametrize("case", CONV_CASES, ids=repr)
def test_conv_reference_matches_ort(case: ConvCase) -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, case.x).astype(np.float32)
    w = rng.uniform(-1, 1, case.w).astype(np.float32)
    b = rng.uniform(-1, 1, case.w[0]).astype(np.float32) if case.bias else None
    k = case.k
    ref = conv_ref(x, w, b, case.pads[:k], case.pads[k:], case.strides, case.dilations, case.group)
    assert ref.shape == conv_case_output_shape(case)
    inputs = [("x", x, False), ("w", w, True)] + ([("b", b, True)] if b is not None else [])
    ort = ort_reference("Conv", inputs, ref.shape, case.attrs())
    np.testing.assert_allclose(ref, ort, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()))


@pytest.mark.parametrize("case", CONV_TRANSPOSE_CASES, ids=repr)
def test_conv_transpose_reference_matches_ort(case: ConvCase) -> None:
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, case.x).astype(np.float32)
    w = rng.uniform(-1, 1, case.w).astype(np.float32)
    b = rng.uniform(-1, 1, case.w[1] * case.group).astype(np.float32) if case.bias else None
    ref = conv_transpose_case_reference(case, x, w, b)
    inputs = [("x", x, False), ("w", w, True)] + ([("b", b, True)] if b is not None else [])
    ort = ort_reference("ConvTranspose", inputs, ref.shape, case.attrs(transpose=True))
    np.testing.assert_allclose(ref, ort, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()))


def test_gelu_references_at_known_points() -> None:
    # GELU(1) = Phi(1) = 0.8413447460685429; GELU(-1) = -(1 - Phi(1)).
    np.testing.assert_allclose(gelu_ref(np.array([1.0, -1.0, 0.0])), [0.8413447460685429, -0.15865525393145707, 0.0],
                               rtol=1e-12)
    # the tanh form differs from the erf form by less than 1e-3 on [-4, 4] and agrees at 0
    v = np.linspace(-4, 4, 81)
    assert np.max(np.abs(gelu_tanh_ref(v) - gelu_ref(v))) < 1e-3
    assert gelu_tanh_ref(np.array([0.0]))[0] == 0.0


# ------------------------------------------------------- lowering pad resolution vs ORT, on the CPU --
@pytest.mark.parametrize("attrs", CONV_TRANSPOSE_ORT_ATTRS, ids=str)
def test_lowered_conv_transpose_pads_reproduce_ort(attrs: dict) -> None:
    """The pads the lowering resolves (from output_shape / auto_pad), fed to the numpy reference, give ORT's result."""
    from ep_trtpy.builder.lowering import lower
    from graph_partitioner.ir import FLOAT

    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (1, 3, 5, 4)).astype(np.float32)
    w = rng.uniform(-1, 1, (3, 2, 3, 3)).astype(np.float32)
    b = rng.uniform(-1, 1, 2).astype(np.float32)
    ort = ort_reference("ConvTranspose", [("x", x, False), ("w", w, True), ("b", b, True)], None, attrs)
    g = one_node_graph("ConvTranspose", [In(FLOAT, x.shape), w, b], [(FLOAT, ort.shape)], attrs)
    ints = lower(g)[0].layers[0].ints  # [k, group, pb.., pe.., s.., dil.., op..]
    k = ints[0]
    pb, pe, st, dil, op = (ints[2 + i * k:2 + (i + 1) * k] for i in range(5))
    ref = conv_transpose_ref(x, w, b, pb, pe, st, dil, op, ints[1])
    np.testing.assert_allclose(ref, ort, rtol=1e-5, atol=1e-5 * float(np.abs(ort).max()))


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("shape, kernel, strides", [((1, 3, 10, 9), (2, 3, 4, 3), (2, 3)),
                                                   ((2, 2, 11), (3, 2, 4), (3,))])
def test_lowered_conv_auto_pad_reproduces_ort(auto_pad: str, shape: tuple, kernel: tuple, strides: tuple) -> None:
    from ep_trtpy.builder.lowering import lower
    from graph_partitioner.ir import FLOAT

    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    w = rng.uniform(-1, 1, kernel).astype(np.float32)
    attrs = {"auto_pad": auto_pad, "strides": list(strides)}
    ort = ort_reference("Conv", [("x", x, False), ("w", w, True)], None, attrs)
    g = one_node_graph("Conv", [In(FLOAT, shape), w], [(FLOAT, ort.shape)], attrs)
    ints = lower(g)[0].layers[0].ints  # [k, group, act, layout, math, pb.., pe.., s.., dil..]
    k = ints[0]
    pb, pe, st, dil = (ints[5 + i * k:5 + (i + 1) * k] for i in range(4))
    ref = conv_ref(x, w, None, pb, pe, st, dil, ints[1])
    np.testing.assert_allclose(ref, ort, rtol=1e-5, atol=1e-5 * float(np.abs(ort).max()))
