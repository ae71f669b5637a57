"""CPU tests of the library-kernel lowerings: the exact layers, parameter layouts, tensors and memory plan emitted
for Conv / FusedConv / ConvTranspose / MatMul / FusedMatMul / Gemm and the zero-copy movement ops.

Expected numbers are written out by hand from the ONNX / ORT formulas quoted in each test, not computed by the
code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from ep_trtpy.builder.lowering import LoweringError, lower
from ep_trtpy.engine.plan import LayerSpec, Plan, TensorSpec
from ep_trtpy.options import Options
from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT16, Graph

from lib_kernel_helpers import In, one_node_graph

F = FLOAT
STRICT = Options(tf32_enable=False)


def _layer(plan: Plan, kernel: str) -> LayerSpec:
    found = [lay for lay in plan.layers if lay.kernel == kernel]
    assert len(found) == 1, f"expected one '{kernel}' layer, got {[lay.kernel for lay in plan.layers]}"
    return found[0]


def _t(plan: Plan, tid: int) -> TensorSpec:
    return plan.tensors[tid]


# ---------------------------------------------------------------------------------------------------- conv --
def test_conv_2d_asymmetric_pads_layout() -> None:
    w = np.arange(6 * 2 * 3 * 3, dtype=np.float32).reshape(6, 2, 3, 3)
    b = np.ones(6, np.float32)
    # H: (9 + 1 + 2 - 3) // 2 + 1 = 5 ; W: (7 + 0 + 1 - 2*(3-1) - 1) // 1 + 1 = 4
    g = one_node_graph("Conv", [In(F, (2, 4, 9, 7)), w, b], [(F, (2, 6, 5, 4))],
                       {"pads": [1, 0, 2, 1], "strides": [2, 1], "dilations": [1, 2], "group": 2})
    plan, weights = lower(g, STRICT)
    lay = _layer(plan, "conv")
    # k, group, act, layout (NCHW), math (strict fp32), pads begin, pads end, strides, dilations
    assert lay.ints == [2, 2, 0, 0, 0, 1, 0, 2, 1, 2, 1, 1, 2]
    assert lay.floats == [0.0, 0.0] and lay.tactic == -1 and lay.meta["layout"] == "NCHW"
    x, wt, bt, z = lay.inputs
    assert z == -1
    assert _t(plan, x).kind == "input" and _t(plan, x).index == 0
    assert _t(plan, wt).kind == "weight" and _t(plan, wt).shape == (6, 2, 3, 3)
    stored = np.frombuffer(weights, np.float32, count=w.size, offset=_t(plan, wt).offset)
    np.testing.assert_array_equal(stored, w.ravel())
    assert _t(plan, bt).kind == "weight" and _t(plan, bt).nbytes == 24
    assert _t(plan, lay.outputs[0]).kind == "output" and _t(plan, lay.outputs[0]).shape == (2, 6, 5, 4)
    assert plan.arena_bytes == 0


@pytest.mark.parametrize("auto_pad, begin, end", [("SAME_UPPER", 0, 1), ("SAME_LOWER", 1, 0), ("VALID", 0, 0)])
def test_conv_auto_pad_resolution(auto_pad: str, begin: int, end: int) -> None:
    # D = 5, k = 2, s = 2: SAME gives out = ceil(5 / 2) = 3 and total pad (3-1)*2 + 2 - 5 = 1; VALID gives 2.
    out = 2 if auto_pad == "VALID" else 3
    g = one_node_graph("Conv", [In(F, (1, 1, 5)), np.ones((1, 1, 2), np.float32)], [(F, (1, 1, out))],
                       {"auto_pad": auto_pad, "strides": [2]})
    lay = _layer(lower(g, STRICT)[0], "conv")
    assert lay.ints == [1, 1, 0, 0, 0, begin, end, 2, 1]


def test_fused_conv_with_residual_and_relu() -> None:
    g = one_node_graph("FusedConv", [In(F, (1, 3, 4, 4)), np.ones((8, 3, 1, 1), np.float32),
                                     np.zeros(8, np.float32), In(F, (1, 8, 4, 4))],
                       [(F, (1, 8, 4, 4))], {"activation": "Relu"}, domain="ep_trtpy")
    plan, _ = lower(g)
    lay = _layer(plan, "conv")
    assert lay.ints[:5] == [2, 1, 1, 0, 1]  # relu; NCHW; TF32 allowed (the default) for float32
    assert _t(plan, lay.inputs[3]).kind == "input" and _t(plan, lay.inputs[3]).index == 1


def test_conv_3d_depthwise_layout() -> None:
    g = one_node_graph("Conv", [In(F, (1, 4, 5, 6, 7)), np.ones((4, 1, 3, 3, 3), np.float32)],
                       [(F, (1, 4, 5, 6, 7))], {"pads": [1, 1, 1, 1, 1, 1], "group": 4})
    lay = _layer(lower(g, STRICT)[0], "conv")
    assert lay.ints == [3, 4, 0, 0, 0] + [1] * 12


def test_conv_rejects_wrong_output_shape_and_activation() -> None:
    g = one_node_graph("Conv", [In(F, (1, 1, 5, 5)), np.ones((1, 1, 3, 3), np.float32)], [(F, (1, 1, 5, 5))])
    with pytest.raises(LoweringError, match=r"conv_node.*\[1, 1, 3, 3\]"):
        lower(g)
    g = one_node_graph("FusedConv", [In(F, (1, 1, 5, 5)), np.ones((1, 1, 3, 3), np.float32)], [(F, (1, 1, 3, 3))],
                       {"activation": "Mish"}, domain="ep_trtpy")
    with pytest.raises(LoweringError, match="Mish"):
        lower(g)


def test_conv_rejects_mixed_dtypes() -> None:
    g = one_node_graph("Conv", [In(FLOAT16, (1, 1, 5, 5)), np.ones((1, 1, 3, 3), np.float32)],
                       [(FLOAT16, (1, 1, 3, 3))])
    with pytest.raises(LoweringError, match="share one dtype"):
        lower(g)


# ------------------------------------------------------------------------------------------ conv transpose --
@pytest.mark.parametrize("auto_pad, begin, end", [("NOTSET", 1, 0), ("SAME_LOWER", 1, 0), ("SAME_UPPER", 0, 1)])
def test_conv_transpose_output_shape_pads_follow_onnx(auto_pad: str, begin: int, end: int) -> None:
    # D = 3, k = 3, s = 2, output_shape 6: total = 2*(3-1) + 0 + 3 - 6 = 1; the ONNX spec (and ORT >= 1.13) puts the
    # odd pad at the end for SAME_UPPER and at the beginning otherwise.
    g = one_node_graph("ConvTranspose", [In(F, (1, 2, 3)), np.ones((2, 1, 3), np.float32)], [(F, (1, 1, 6))],
                       {"strides": [2], "output_shape": [6], "auto_pad": auto_pad})
    lay = _layer(lower(g)[0], "conv_transpose")
    assert lay.ints == [1, 1, begin, end, 2, 1, 0]


def test_conv_transpose_layout_with_groups_and_output_padding() -> None:
    # O = s*(D-1) + op + dil*(k-1) + 1 - pb - pe: H = 2*3 + 1 + 1 + 1 - 1 - 0 = 8 ; W = 1*3 + 0 + 3 + 1 - 0 - 2 = 5
    w = np.ones((4, 3, 2, 4), np.float32)
    g = one_node_graph("ConvTranspose", [In(F, (2, 4, 4, 4)), w, np.ones(6, np.float32)], [(F, (2, 6, 8, 5))],
                       {"strides": [2, 1], "pads": [1, 0, 0, 2], "output_padding": [1, 0], "group": 2})
    plan, _ = lower(g)
    lay = _layer(plan, "conv_transpose")
    assert lay.ints == [2, 2, 1, 0, 0, 2, 2, 1, 1, 1, 1, 0]
    assert len(lay.inputs) == 3 and _t(plan, lay.inputs[2]).shape == (6,)


# --------------------------------------------------------------------------------------------------- matmul --
def test_matmul_shared_weight_folds_batch_into_rows() -> None:
    g = one_node_graph("MatMul", [In(F, (2, 3, 4, 5)), np.ones((5, 7), np.float32)], [(F, (2, 3, 4, 7))])
    lay = _layer(lower(g)[0], "gemm")
    #             M   N  K  batch tA tB sA sB act c_sb c_sr c_sc math
    assert lay.ints == [24, 7, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert lay.floats == [1.0, 1.0] and len(lay.inputs) == 2


def test_matmul_full_batch_merges_dims() -> None:
    g = one_node_graph("MatMul", [In(F, (2, 3, 4, 5)), In(F, (2, 3, 5, 7))], [(F, (2, 3, 4, 7))])
    lay = _layer(lower(g)[0], "gemm")
    assert lay.ints == [4, 7, 5, 6, 0, 0, 20, 35, 0, 0, 0, 0, 1]


def test_matmul_broadcast_weight_batch_uses_stride_zero() -> None:
    g = one_node_graph("MatMul", [In(F, (3, 4, 5)), In(F, (1, 5, 7))], [(F, (3, 4, 7))])
    lay = _layer(lower(g)[0], "gemm")
    assert lay.ints == [12, 7, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]  # folded: B is shared
    g = one_node_graph("MatMul", [In(F, (1, 4, 5)), In(F, (3, 5, 7))], [(F, (3, 4, 7))])
    lay = _layer(lower(g)[0], "gemm")
    assert lay.ints == [4, 7, 5, 3, 0, 0, 0, 35, 0, 0, 0, 0, 1]  # A broadcast over the batch


def test_matmul_mixed_broadcast_unrolls_on_views() -> None:
    # A [2,1,4,5], B [3,5,7] -> Y [2,3,4,7]: strides over (2,3): A (20, 0), B (0, 35), Y (84, 28). The dims do not
    # merge, so the outer dim (2) is unrolled and the inner (3) is the cuBLASLt batch.
    g = one_node_graph("MatMul", [In(F, (2, 1, 4, 5)), In(F, (3, 5, 7))], [(F, (2, 3, 4, 7))])
    plan, _ = lower(g)
    gemms = [lay for lay in plan.layers if lay.kernel == "gemm"]
    assert len(gemms) == 2
    for i, lay in enumerate(gemms):
        assert lay.ints == [4, 7, 5, 3, 0, 0, 0, 35, 0, 0, 0, 0, 1]
        a, b = (_t(plan, t) for t in lay.inputs)
        y = _t(plan, lay.outputs[0])
        assert (a.kind, b.kind, y.kind) == ("alias", "alias", "alias")
        assert a.offset == i * 20 * 4 and a.shape == (20,)
        assert b.offset == 0 and b.shape == (2 * 35 + 35,)
        assert y.offset == i * 84 * 4 and y.shape == (84,)
        assert _t(plan, y.index).kind == "output"


@pytest.mark.parametrize("a_shape, b_shape, y_shape, ints",
                         [((5,), (2, 5, 7), (2, 7), [1, 7, 5, 2, 0, 0, 0, 35, 0, 0, 0, 0, 1]),
                          ((2, 4, 5), (5,), (2, 4), [8, 1, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
                          ((5,), (5,), (), [1, 1, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1])])
def test_matmul_vectors(a_shape: tuple, b_shape: tuple, y_shape: tuple, ints: list[int]) -> None:
    g = one_node_graph("MatMul", [In(F, a_shape), In(F, b_shape)], [(F, y_shape)])
    assert _layer(lower(g)[0], "gemm").ints == ints


def test_fused_matmul_transposes_bias_gelu_alpha() -> None:
    # A stored [K, M] = [5, 4] (transA), B stored [N, K] = [7, 5] (transB), bias [7].
    g = one_node_graph("FusedMatMul", [In(F, (5, 4)), In(F, (7, 5)), np.ones(7, np.float32)], [(F, (4, 7))],
                       {"transA": 1, "transB": 1, "alpha": 0.25, "activation": "Gelu"}, domain="ep_trtpy")
    plan, _ = lower(g)
    lay = _layer(plan, "gemm")
    assert lay.ints == [4, 7, 5, 1, 1, 1, 0, 0, 2, 0, 0, 1, 1]
    assert lay.floats == [0.25, 1.0]
    assert _t(plan, lay.inputs[2]).kind == "weight"
    act = {"": 0, "Relu": 1, "GeluTanh": 3}
    for name, code in act.items():
        g = one_node_graph("FusedMatMul", [In(F, (4, 5)), In(F, (5, 7))], [(F, (4, 7))], {"activation": name},
                           domain="ep_trtpy")
        assert _layer(lower(g)[0], "gemm").ints[8] == code


def test_fused_matmul_rejects_transposed_vector() -> None:
    g = one_node_graph("FusedMatMul", [In(F, (5,)), In(F, (5, 7))], [(F, (7,))], {"transA": 1}, domain="ep_trtpy")
    with pytest.raises(LoweringError, match="vector"):
        lower(g)


# ------------------------------------------------------------------------------------------------------ gemm --
def test_gemm_constant_row_c_becomes_prescaled_bias() -> None:
    c = np.arange(7, dtype=np.float32)
    g = one_node_graph("Gemm", [In(F, (4, 5)), In(F, (5, 7)), c], [(F, (4, 7))], {"alpha": 0.5, "beta": 2.0})
    plan, weights = lower(g)
    lay = _layer(plan, "gemm")
    assert lay.ints == [4, 7, 5, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1]
    assert lay.floats == [0.5, 1.0]
    ct = _t(plan, lay.inputs[2])
    assert ct.kind == "weight" and ct.shape == (7,)
    np.testing.assert_array_equal(np.frombuffer(weights, np.float32, 7, ct.offset), 2.0 * c)


def test_gemm_constant_column_c_is_materialized() -> None:
    c = np.array([[1.0], [2.0], [3.0], [4.0]], np.float32)
    g = one_node_graph("Gemm", [In(F, (4, 5)), In(F, (7, 5)), c], [(F, (4, 7))], {"transB": 1, "beta": 3.0})
    plan, weights = lower(g)
    lay = _layer(plan, "gemm")
    assert lay.ints == [4, 7, 5, 1, 0, 1, 0, 0, 0, 0, 7, 1, 1]
    assert lay.floats == [1.0, 1.0]
    ct = _t(plan, lay.inputs[2])
    full = np.frombuffer(weights, np.float32, 28, ct.offset).reshape(4, 7)
    np.testing.assert_array_equal(full, np.repeat(3.0 * c, 7, axis=1))


def test_gemm_fp16_constant_c_is_stored_as_fp16() -> None:
    c = np.full((1, 7), 0.5, np.float16)
    g = one_node_graph("Gemm", [In(FLOAT16, (4, 5)), In(FLOAT16, (5, 7)), c], [(FLOAT16, (4, 7))], {"beta": 3.0})
    plan, weights = lower(g)
    ct = _t(plan, _layer(plan, "gemm").inputs[2])
    assert ct.dtype == FLOAT16 and ct.nbytes == 14
    np.testing.assert_array_equal(np.frombuffer(weights, np.float16, 7, ct.offset), np.full(7, 1.5, np.float16))


@pytest.mark.parametrize("c_shape, strides", [((4, 7), [0, 7, 1]), ((7,), [0, 0, 1]), ((4, 1), [0, 1, 0]),
                                               ((1,), [0, 0, 0]), ((), [0, 0, 0])])
def test_gemm_runtime_c_strides_and_beta(c_shape: tuple, strides: list[int]) -> None:
    g = one_node_graph("Gemm", [In(F, (4, 5)), In(F, (5, 7)), In(F, c_shape)], [(F, (4, 7))], {"beta": -0.5})
    plan, _ = lower(g)
    lay = _layer(plan, "gemm")
    assert lay.ints[9:12] == strides
    assert lay.floats == [1.0, -0.5]
    assert _t(plan, lay.inputs[2]).kind == "input"


@pytest.mark.parametrize("dtype, options, flag", [(F, None, 1), (F, STRICT, 0), (FLOAT16, None, 0),
                                                  (BFLOAT16, None, 0), (BFLOAT16, STRICT, 0)])
def test_gemm_math_flag_allows_tf32_for_float32_only(dtype: int, options: object, flag: int) -> None:
    """ints[12]: 1 lets cuBLASLt use TF32 tensor cores; float32 with tf32_enable (the default) only."""
    g = one_node_graph("MatMul", [In(dtype, (4, 5)), In(dtype, (5, 7))], [(dtype, (4, 7))])
    lay = _layer(lower(g, options)[0], "gemm")
    assert len(lay.ints) == 13 and lay.ints[12] == flag


def test_gemm_beta_zero_drops_c() -> None:
    g = one_node_graph("Gemm", [In(F, (4, 5)), In(F, (5, 7)), In(F, (4, 7))], [(F, (4, 7))], {"beta": 0.0})
    lay = _layer(lower(g)[0], "gemm")
    assert len(lay.inputs) == 2


# ----------------------------------------------------------------------------------------- movement aliases --
def _chain_graph(view_op: str, attrs: dict, mid_shape: tuple, out_is_view: bool) -> Graph:
    """x[4,6] -> MatMul(W[6,6]) -> view_op -> (graph output, or MatMul(W2) -> output)."""
    g = Graph("chain", {"": 17})
    x = g.add_value("x", F, (4, 6))
    g.inputs.append(x)
    w = g.add_value("w", const=np.eye(6, dtype=np.float32))
    h = g.add_value("h", F, (4, 6))
    g.add_node("MatMul", [x, w], [h], name="mm1")
    v = g.add_value("v", F, mid_shape)
    g.add_node(view_op, [h], [v], attrs=attrs, name="view")
    if out_is_view:
        g.outputs.append(v)
    else:
        w2 = g.add_value("w2", const=np.ones((mid_shape[-1], 3), np.float32))
        y = g.add_value("y", F, mid_shape[:-1] + (3,))
        g.add_node("MatMul", [v, w2], [y], name="mm2")
        g.outputs.append(y)
    return g


@pytest.mark.parametrize("op, attrs, shape", [("Reshape", {}, (2, 12)), ("Flatten", {"axis": 1}, (4, 6)),
                                              ("Unsqueeze", {}, (1, 4, 6)), ("Identity", {}, (4, 6)),
                                              ("Dropout", {}, (4, 6))])
def test_view_ops_are_aliases_without_layers(op: str, attrs: dict, shape: tuple) -> None:
    plan, _ = lower(_chain_graph(op, attrs, shape, out_is_view=False))
    assert [lay.kernel for lay in plan.layers] == ["gemm", "gemm"]
    mm1, mm2 = plan.layers
    view = _t(plan, mm2.inputs[0])
    assert view.kind == "alias" and view.index == mm1.outputs[0] and view.offset == 0 and view.shape == shape
    h = _t(plan, mm1.outputs[0])
    assert h.kind == "activation" and h.offset % 256 == 0 and plan.arena_bytes >= h.offset + h.nbytes


def test_view_to_graph_output_is_copied() -> None:
    plan, _ = lower(_chain_graph("Reshape", {}, (2, 12), out_is_view=True))
    assert [lay.kernel for lay in plan.layers] == ["gemm", "memcpy"]
    cp = plan.layers[1]
    assert cp.ints == [4 * 6 * 4]
    assert _t(plan, cp.outputs[0]).kind == "output" and _t(plan, cp.outputs[0]).shape == (2, 12)


def test_view_rejects_element_count_change_and_used_dropout_mask() -> None:
    g = one_node_graph("Reshape", [In(F, (4, 6))], [(F, (5, 5))])
    with pytest.raises(LoweringError, match="differ in element count"):
        lower(g)
    g = one_node_graph("Dropout", [In(F, (4, 6))], [(F, (4, 6)), (9, (4, 6))])
    with pytest.raises(LoweringError, match="mask"):
        lower(g)


def test_unused_input_still_gets_a_slot() -> None:
    g = Graph("unused", {"": 17})
    x = g.add_value("x", F, (2, 3))
    unused = g.add_value("u", FLOAT16, (5,))
    g.inputs.extend([x, unused])
    y = g.add_value("y", F, (2, 3))
    g.add_node("Identity", [x], [y])
    g.outputs.append(y)
    plan, _ = lower(g)
    slots = {t.index: t for t in plan.tensors if t.kind == "input"}
    assert set(slots) == {0, 1} and slots[1].dtype == FLOAT16 and slots[1].shape == (5,)


# --------------------------------------------------------------------------------------- runtime (no GPU) --
def test_build_engine_rejects_unbound_slots() -> None:
    from ep_trtpy.runtime import build_engine

    plan = Plan(tensors=[TensorSpec(0, "x", F, (2,), "input", 0, 0, 8)], layers=[], n_inputs=2, n_outputs=0)
    with pytest.raises(ValueError, match=r"input slot\(s\) \[1\]"):
        build_engine(plan, b"", 0)
