"""Internal ops (ep_trtpy::Pointwise, FusedConv, FusedMatMul, AddLayerNorm) against their unfused decompositions run by
onnxruntime, plus the pointwise program fixes (0-d outputs, int64 immediates)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from ops_harness import assert_close, ir_node, run_ort

from ep_trtpy.ops import pointwise_program
from ep_trtpy.ops.pointwise_program import Program
from ep_trtpy.ops.registry import Info, OpError, run_infer, run_reference
from graph_partitioner.ir import BFLOAT16, BOOL, FLOAT, FLOAT16, INT64, Node, Value, elem_type, np_dtype

RNG = np.random.default_rng(31)
F32, F16 = np.float32, np.float16


def rnd(*shape: int, dtype: type = F32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def ort_graph(nodes: list, inputs: dict[str, np.ndarray], out: str, out_type: int, opset: int = 20) -> np.ndarray:
    g = helper.make_graph(nodes, "decomposed",
                          [helper.make_tensor_value_info(k, elem_type(v.dtype), list(v.shape)) for k, v in
                           inputs.items()], [helper.make_tensor_value_info(out, out_type, None)])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    return run_ort(model, inputs)[0]


def internal_node(op: str, inputs: list[np.ndarray | None], attrs: dict, n_out: int = 1) -> Node:
    n = Node(op, op.lower(), "ep_trtpy", attrs)
    for i, a in enumerate(inputs):
        n.inputs.append(None if a is None else Value(f"in{i}", elem_type(a.dtype), tuple(a.shape)))
    n.outputs = [Value(f"out{k}") for k in range(n_out)]
    return n


def infer_of(node: Node, inputs: list[np.ndarray | None]) -> list[Info]:
    return run_infer(node, [None if a is None else Info(elem_type(a.dtype), tuple(a.shape)) for a in inputs])


# ----------------------------------------------------------------------------------------------- FusedConv --
CONV_CASES = [
    ("relu-bias-residual", dict(pads=[1, 1, 1, 1]), True, True, "Relu", F32),
    ("bias-only-strided", dict(pads=[0, 1, 2, 1], strides=[2, 1]), True, False, "", F32),
    ("residual-no-bias-grouped", dict(pads=[1, 1, 1, 1], group=2, dilations=[1, 2]), False, True, "Relu", F32),
    ("relu-f16", dict(pads=[1, 1, 1, 1]), True, True, "Relu", F16),
]


@pytest.mark.parametrize("name,attrs,bias,residual,act,dt", CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_fused_conv_equals_conv_add_relu(name: str, attrs: dict, bias: bool, residual: bool, act: str,
                                         dt: type) -> None:
    group = attrs.get("group", 1)
    x, w = rnd(2, 4, 7, 6, dtype=dt), rnd(6, 4 // group, 3, 3, dtype=dt)
    b = rnd(6, dtype=dt) if bias else None
    fused = internal_node("FusedConv", [x, w, b], dict(attrs, kernel_shape=[3, 3], activation=act))
    y_shape = infer_of(fused, [x, w, b])[0].shape
    z = rnd(*y_shape, dtype=dt) if residual else None
    fused = internal_node("FusedConv", [x, w, b, z], dict(attrs, kernel_shape=[3, 3], activation=act))
    info = infer_of(fused, [x, w, b, z])[0]
    got = run_reference(fused, [x, w, b, z])[0]
    # the decomposition, in float32 (the fused op rounds once at the end)
    feeds = {"x": x.astype(F32), "w": w.astype(F32)}
    conv_in = ["x", "w"]
    if b is not None:
        feeds["b"] = b.astype(F32)
        conv_in.append("b")
    nodes = [helper.make_node("Conv", conv_in, ["c"], **attrs)]
    last = "c"
    if z is not None:
        feeds["z"] = z.astype(F32)
        nodes.append(helper.make_node("Add", ["c", "z"], ["s"]))
        last = "s"
    if act == "Relu":
        nodes.append(helper.make_node("Relu", [last], ["y"]))
        last = "y"
    want = ort_graph(nodes, feeds, last, TensorProto.FLOAT).astype(dt)
    assert info.dtype == elem_type(dt) and info.shape == want.shape
    tol = dict(rtol=1e-4, atol=1e-5) if dt is F32 else dict(rtol=2e-3, atol=2e-3)
    assert_close(got, want, f"FusedConv {name}", **tol)


def test_fused_conv_refuses_unknown_activation_and_bad_residual() -> None:
    x, w = rnd(1, 2, 4, 4), rnd(3, 2, 3, 3)
    with pytest.raises(OpError, match="activation='Mish'"):
        infer_of(internal_node("FusedConv", [x, w], {"activation": "Mish"}), [x, w])
    z = rnd(1, 3, 4, 4)
    with pytest.raises(OpError, match="fusedconv.*Z"):
        infer_of(internal_node("FusedConv", [x, w, None, z], {}), [x, w, None, z])
    with pytest.raises(OpError, match="channels_last=1 needs a 2-D"):
        infer_of(internal_node("FusedConv", [rnd(1, 4, 2), rnd(3, 2, 1)], {"channels_last": 1}),
                 [rnd(1, 4, 2), rnd(3, 2, 1)])


# activation -> (FusedConv attributes, the ONNX nodes that compute it from "c" into "y")
ACTIVATIONS = {
    "Clip": ({"act_alpha": -0.5, "act_beta": 0.75}, [helper.make_node("Clip", ["c", "lo", "hi"], ["y"])]),
    "Sigmoid": ({}, [helper.make_node("Sigmoid", ["c"], ["y"])]),
    "Silu": ({}, [helper.make_node("Sigmoid", ["c"], ["s"]), helper.make_node("Mul", ["c", "s"], ["y"])]),
    "LeakyRelu": ({"act_alpha": 0.1}, [helper.make_node("LeakyRelu", ["c"], ["y"], alpha=0.1)]),
    "HardSwish": ({}, [helper.make_node("HardSwish", ["c"], ["y"])]),
    "Tanh": ({}, [helper.make_node("Tanh", ["c"], ["y"])]),
}


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("channels_last", [0, 1])
def test_fused_conv_activations_and_channels_last_equal_onnx(act: str, channels_last: int) -> None:
    x, w, b = rnd(2, 4, 6, 5) * F32(2), rnd(6, 2, 3, 3), rnd(6)
    attrs = dict(kernel_shape=[3, 3], pads=[1, 0, 1, 1], strides=[1, 2], group=2)
    act_attrs, act_nodes = ACTIVATIONS[act]
    consts = [helper.make_node("Constant", [], [n], value=numpy_helper.from_array(np.array(v, F32), n))
              for n, v in (("lo", -0.5), ("hi", 0.75))]
    want = ort_graph(consts + [helper.make_node("Conv", ["x", "w", "b"], ["c"], **attrs)] + act_nodes,
                     {"x": x, "w": w, "b": b}, "y", TensorProto.FLOAT)
    to_nhwc = (0, 2, 3, 1)
    xi, wi = (x.transpose(to_nhwc).copy(), w.transpose(to_nhwc).copy()) if channels_last else (x, w)
    node = internal_node("FusedConv", [xi, wi, b], dict(attrs, activation=act, channels_last=channels_last,
                                                        **act_attrs))
    got = run_reference(node, [xi, wi, b])[0]
    if channels_last:
        want = want.transpose(to_nhwc)
    assert infer_of(node, [xi, wi, b])[0].shape == want.shape == got.shape
    assert_close(got, want, f"FusedConv {act}", rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("channels_last", [0, 1])
def test_fused_conv_post_act_residual_equals_onnx(act: str, channels_last: int) -> None:
    """residual_position post_act: Y = act(conv(X, W) + B) + Z, as the unfused Conv, activation and Add."""
    x, w, b = rnd(2, 4, 6, 5) * F32(2), rnd(6, 2, 3, 3), rnd(6)
    attrs = dict(kernel_shape=[3, 3], pads=[1, 0, 1, 1], strides=[1, 2], group=2)
    act_attrs, act_nodes = ACTIVATIONS[act]
    z = rnd(2, 6, 6, 2)
    consts = [helper.make_node("Constant", [], [n], value=numpy_helper.from_array(np.array(v, F32), n))
              for n, v in (("lo", -0.5), ("hi", 0.75))]
    want = ort_graph(consts + [helper.make_node("Conv", ["x", "w", "b"], ["c"], **attrs)] + act_nodes
                     + [helper.make_node("Add", ["y", "z"], ["out"])],
                     {"x": x, "w": w, "b": b, "z": z}, "out", TensorProto.FLOAT)
    to_nhwc = (0, 2, 3, 1)
    xi, wi, zi = ((x.transpose(to_nhwc).copy(), w.transpose(to_nhwc).copy(), z.transpose(to_nhwc).copy())
                  if channels_last else (x, w, z))
    node = internal_node("FusedConv", [xi, wi, b, zi], dict(attrs, activation=act, channels_last=channels_last,
                                                            residual_position="post_act", **act_attrs))
    got = run_reference(node, [xi, wi, b, zi])[0]
    if channels_last:
        want = want.transpose(to_nhwc)
    assert infer_of(node, [xi, wi, b, zi])[0].shape == want.shape == got.shape
    assert_close(got, want, f"FusedConv post_act {act}", rtol=1e-5, atol=1e-6)
    pre = run_reference(internal_node("FusedConv", [xi, wi, b, zi], dict(attrs, activation=act,
                                                                         channels_last=channels_last, **act_attrs)),
                        [xi, wi, b, zi])[0]
    assert not np.allclose(pre, got, rtol=1e-3, atol=1e-3), "pre_act and post_act must differ for this activation"


def test_fused_conv_refuses_unknown_residual_position() -> None:
    x, w = rnd(1, 2, 4, 4), rnd(3, 2, 3, 3)
    node = internal_node("FusedConv", [x, w], {"residual_position": "middle"})
    with pytest.raises(OpError, match="residual_position='middle'"):
        infer_of(node, [x, w])
    with pytest.raises(OpError, match="residual_position='middle'"):
        run_reference(node, [x, w])


def test_conv_activation_names_match_the_partitioner_rule() -> None:
    from ep_trtpy.ops.internal import CONV_ACTIVATIONS, RESIDUAL_POSITIONS
    from graph_partitioner.support import rules_internal

    assert rules_internal.CONV_ACTIVATIONS == CONV_ACTIVATIONS
    assert rules_internal.RESIDUAL_POSITIONS == RESIDUAL_POSITIONS


@pytest.mark.parametrize("src,to", [(F32, FLOAT16), (F16, FLOAT), (F32, BFLOAT16)])
def test_cast_transpose_equals_onnx_transpose_then_cast(src: type, to: int) -> None:
    x = rnd(2, 3, 4, 5, dtype=src)
    perm = [0, 2, 3, 1]
    node = internal_node("CastTranspose", [x], {"perm": perm, "to": to})
    got = run_reference(node, [x])[0]
    if to == BFLOAT16:  # numpy (ml_dtypes) rounds to nearest even, as ONNX's Cast does
        want = np.transpose(x, perm).astype(np_dtype(BFLOAT16))
    else:
        want = ort_graph([helper.make_node("Transpose", ["x"], ["t"], perm=perm),
                          helper.make_node("Cast", ["t"], ["y"], to=to)], {"x": x}, "y", to)
    assert got.dtype == want.dtype and got.shape == want.shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(got.astype(F32), want.astype(F32))
    assert infer_of(node, [x])[0] == Info(to, (2, 4, 5, 3))


def test_cast_transpose_refuses_other_conversions_and_bad_perms() -> None:
    x = rnd(2, 3, dtype=F16)
    with pytest.raises(OpError, match="converts float16 to float16"):
        infer_of(internal_node("CastTranspose", [x], {"perm": [1, 0], "to": FLOAT16}), [x])
    with pytest.raises(OpError, match=r"perm=\[0, 0\]"):
        infer_of(internal_node("CastTranspose", [x], {"perm": [0, 0], "to": FLOAT}), [x])


def test_cast_transpose_dtypes_match_the_partitioner_rule() -> None:
    from ep_trtpy.ops.internal import CAST_TRANSPOSE_DTYPES
    from graph_partitioner.support import rules_internal

    assert rules_internal.CAST_TRANSPOSE_DTYPES == CAST_TRANSPOSE_DTYPES


# ---------------------------------------------------------------------------------------------------- Pool --
POOL_CASES = [
    ("max-3x3-s2", "max", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("max-ceil-dilated", "max", dict(kernel_shape=[2, 3], strides=[2, 1], pads=[0, 1, 1, 0], dilations=[1, 2],
                                     ceil_mode=1)),
    ("avg-exclude-pad", "average", dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])),
    ("avg-include-pad-ceil", "average", dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1],
                                             count_include_pad=1, ceil_mode=1)),
]


@pytest.mark.parametrize("name,mode,attrs", POOL_CASES, ids=[c[0] for c in POOL_CASES])
@pytest.mark.parametrize("dt", [F32, F16])
def test_pool_equals_onnx_pool_on_transposed_data(name: str, mode: str, attrs: dict, dt: type) -> None:
    x = rnd(2, 3, 7, 6, dtype=dt)
    op = "MaxPool" if mode == "max" else "AveragePool"
    want = ort_graph([helper.make_node(op, ["x"], ["y"], **attrs)], {"x": x.astype(F32)}, "y", TensorProto.FLOAT,
                     opset=19).astype(dt).transpose(0, 2, 3, 1)
    xi = x.transpose(0, 2, 3, 1).copy()
    node = internal_node("Pool", [xi], dict(attrs, mode=mode, channels_last=1))
    got = run_reference(node, [xi])[0]
    info = infer_of(node, [xi])[0]
    assert info.shape == want.shape and info.dtype == elem_type(dt)
    assert_close(got, want, f"Pool {name}", **(dict(rtol=1e-5, atol=1e-6) if dt is F32 else {}))


def test_pool_refuses_bad_mode_and_layout() -> None:
    x = rnd(1, 4, 4, 2)
    with pytest.raises(OpError, match="mode='min'"):
        infer_of(internal_node("Pool", [x], {"mode": "min", "channels_last": 1, "kernel_shape": [2, 2]}), [x])
    with pytest.raises(OpError, match="channels_last=0"):
        infer_of(internal_node("Pool", [x], {"mode": "max", "kernel_shape": [2, 2]}), [x])


# --------------------------------------------------------------------------------------------- FusedMatMul --
MM_CASES = [
    ("plain-2d", (3, 4), (4, 5), {}, False, "", F32),
    ("transB-bias-relu", (3, 4), (5, 4), {"transB": 1}, True, "Relu", F32),
    ("transA-alpha-gelu", (4, 3), (4, 5), {"transA": 1, "alpha": 0.5}, True, "Gelu", F32),
    ("batched-broadcast-gelutanh", (2, 1, 3, 4), (5, 4, 6), {}, True, "GeluTanh", F32),
    ("batched-both-trans", (2, 4, 3), (2, 5, 4), {"transA": 1, "transB": 1, "alpha": 2.0}, True, "", F32),
    ("f16-bias-gelu", (3, 8), (8, 5), {}, True, "Gelu", F16),
]


@pytest.mark.parametrize("name,sa,sb,attrs,bias,act,dt", MM_CASES, ids=[c[0] for c in MM_CASES])
def test_fused_matmul_equals_matmul_mul_add_activation(name: str, sa: tuple, sb: tuple, attrs: dict, bias: bool,
                                                       act: str, dt: type) -> None:
    a, b = rnd(*sa, dtype=dt), rnd(*sb, dtype=dt)
    fused0 = internal_node("FusedMatMul", [a, b], dict(attrs, activation=act))
    n = infer_of(fused0, [a, b])[0].shape[-1]
    c = rnd(n, dtype=dt) if bias else None
    fused = internal_node("FusedMatMul", [a, b, c], dict(attrs, activation=act))
    info = infer_of(fused, [a, b, c])[0]
    got = run_reference(fused, [a, b, c])[0]
    feeds = {"a": a.astype(F32), "b": b.astype(F32)}
    nodes, left, right = [], "a", "b"
    if attrs.get("transA"):
        nodes.append(helper.make_node("Transpose", ["a"], ["at"], perm=list(range(len(sa) - 2)) +
                                      [len(sa) - 1, len(sa) - 2]))
        left = "at"
    if attrs.get("transB"):
        nodes.append(helper.make_node("Transpose", ["b"], ["bt"], perm=list(range(len(sb) - 2)) +
                                      [len(sb) - 1, len(sb) - 2]))
        right = "bt"
    nodes.append(helper.make_node("MatMul", [left, right], ["m"]))
    last = "m"
    if "alpha" in attrs:
        alpha = numpy_helper.from_array(np.array(attrs["alpha"], F32), "alpha")
        nodes.insert(0, helper.make_node("Constant", [], ["alpha"], value=alpha))
        nodes.append(helper.make_node("Mul", ["m", "alpha"], ["ma"]))
        last = "ma"
    if c is not None:
        feeds["c"] = c.astype(F32)
        nodes.append(helper.make_node("Add", [last, "c"], ["mc"]))
        last = "mc"
    if act:
        kw = {} if act == "Relu" else {"approximate": "tanh" if act == "GeluTanh" else "none"}
        nodes.append(helper.make_node("Relu" if act == "Relu" else "Gelu", [last], ["y"], **kw))
        last = "y"
    want = ort_graph(nodes, feeds, last, TensorProto.FLOAT).astype(dt)
    assert info.dtype == elem_type(dt) and info.shape == want.shape
    tol = dict(rtol=1e-4, atol=1e-5) if dt is F32 else dict(rtol=2e-3, atol=2e-3)
    assert_close(got, want, f"FusedMatMul {name}", **tol)


# -------------------------------------------------------------------------------------------- AddLayerNorm --
@pytest.mark.parametrize("dt, axis, bias, n_out", [(F32, -1, True, 2), (F32, 1, False, 1), (F16, -1, True, 2)])
def test_add_layer_norm_equals_add_then_layer_normalization(dt: type, axis: int, bias: bool, n_out: int) -> None:
    x, r = rnd(2, 3, 8, dtype=dt) * 4, rnd(2, 3, 8, dtype=dt)
    norm = x.shape[axis:]
    scale, b = rnd(*norm, dtype=dt), (rnd(*norm, dtype=dt) if bias else None)
    fused = internal_node("AddLayerNorm", [x, r, scale, b], {"axis": axis, "epsilon": 1e-3}, n_out=n_out)
    infos = infer_of(fused, [x, r, scale, b])
    got = run_reference(fused, [x, r, scale, b])
    feeds = {"x": x, "r": r, "scale": scale} | ({"b": b} if bias else {})
    nodes = [helper.make_node("Add", ["x", "r"], ["s"]),
             helper.make_node("LayerNormalization", ["s", "scale"] + (["b"] if bias else []), ["y"], axis=axis,
                              epsilon=1e-3)]
    want = [ort_graph(nodes, feeds, "y", elem_type(dt)), ort_graph(nodes[:1], feeds, "s", elem_type(dt))]
    assert len(got) == len(infos) == n_out
    for g, w, info in zip(got, want, infos):
        assert info.dtype == elem_type(dt) and info.shape == w.shape == g.shape
        tol = dict(rtol=1e-5, atol=1e-5) if dt is F32 else dict(rtol=2e-3, atol=2e-3)
        assert_close(g, w, "AddLayerNorm", **tol)


def test_add_layer_norm_refuses_broadcast_and_three_outputs() -> None:
    x, r, scale = rnd(2, 8), rnd(1, 8), rnd(8)
    with pytest.raises(OpError, match=r"addlayernorm.*X input 0 \('in0'\) \[2, 8\] and R input 1 \('in1'\) \[1, 8\]"):
        infer_of(internal_node("AddLayerNorm", [x, r, scale], {}), [x, r, scale])
    with pytest.raises(OpError, match=r"addlayernorm.*has 3 outputs"):
        run_reference(internal_node("AddLayerNorm", [x, x, scale], {}, n_out=3), [x, x, scale])


# ---------------------------------------------------------------------------------------------- Pointwise --

def test_pointwise_chain_equals_onnx_chain() -> None:
    """relu(x0 * x1 + 0.5) as float16, and (x0 > x1) as bool, from one program with broadcasting."""
    x0, x1 = rnd(2, 3, 4), rnd(3, 1)
    prog = Program(2, "float", [["mul", 2, 0, 1], ["const", 3, 0.5], ["add", 4, 2, 3], ["relu", 5, 4],
                                ["gt", 6, 0, 1]], [(5, FLOAT16), (6, BOOL)])
    node = internal_node("Pointwise", [x0, x1], {"program": prog.to_json()}, n_out=2)
    infos = infer_of(node, [x0, x1])
    got = run_reference(node, [x0, x1])
    half = numpy_helper.from_array(np.array(0.5, F32), "half")
    nodes = [helper.make_node("Constant", [], ["half"], value=half), helper.make_node("Mul", ["x0", "x1"], ["m"]),
             helper.make_node("Add", ["m", "half"], ["a"]), helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Cast", ["r"], ["y"], to=TensorProto.FLOAT16)]
    want0 = ort_graph(nodes, {"x0": x0, "x1": x1}, "y", TensorProto.FLOAT16, opset=17)
    want1 = ort_graph([helper.make_node("Greater", ["x0", "x1"], ["y"])], {"x0": x0, "x1": x1}, "y",
                      TensorProto.BOOL, opset=17)
    assert [(i.dtype, i.shape) for i in infos] == [(FLOAT16, (2, 3, 4)), (BOOL, (2, 3, 4))]
    assert_close(got[0], want0, "Pointwise output 0")
    assert_close(got[1], want1, "Pointwise output 1")


def test_pointwise_int64_program_and_bad_program() -> None:
    a, b = np.array([7, -7, 9], np.int64), np.array([2, 2, -4], np.int64)
    prog = Program(2, "int64", [["div", 2, 0, 1], ["mod", 3, 0, 1, 0.0]], [(2, INT64), (3, INT64)])
    node = internal_node("Pointwise", [a, b], {"program": prog.to_json()}, n_out=2)
    q, r = run_reference(node, [a, b])
    np.testing.assert_array_equal(q, [3, -3, -2])  # C division truncates toward zero
    np.testing.assert_array_equal(r, np.mod(a, b))  # fmod=0: the divisor's sign
    bad = internal_node("Pointwise", [a], {"program": json.dumps({"compute": "int64", "code": [["exp", 1, 0]],
                                                                  "outputs": [[1, INT64]]})})
    with pytest.raises(OpError, match="pointwise.*needs float compute"):
        infer_of(bad, [a])


def test_pointwise_program_keeps_0d_and_saturates_int64_immediates() -> None:
    y = pointwise_program.run(Program(1, "float", [["relu", 1, 0]], [(1, FLOAT)]), [np.float32(-2.0)])[0]
    assert y.shape == () and float(y) == 0.0
    big = float(np.iinfo(np.int64).max)  # what pointwise_ops uses for Clip's absent bound; 2**63 as a float
    prog = Program(1, "int64", [["clip", 1, 0, -big, big], ["const", 2, float("nan")]], [(1, INT64), (2, INT64)])
    x = np.array([np.iinfo(np.int64).min, -5, np.iinfo(np.int64).max], np.int64)
    clipped, nan_const = pointwise_program.run(prog, [x])
    np.testing.assert_array_equal(clipped, x)
    np.testing.assert_array_equal(nan_const, np.zeros(3, np.int64))


def test_elementwise_reference_is_the_pointwise_program() -> None:
    """Every ONNX elementwise op's reference runs program_for_node's program: a node whose mapping changes
    changes the reference (checked here through HardSigmoid's immediates)."""
    from ep_trtpy.ops import pointwise_ops

    x = rnd(5)
    node = ir_node(helper.make_node("HardSigmoid", ["x"], ["y"], alpha=0.3, beta=0.1), [x], (), 6)
    node.outputs[0].dtype = FLOAT
    prog, idx = pointwise_ops.program_for_node(node)
    assert idx == [0]
    np.testing.assert_array_equal(run_reference(node, [x])[0], pointwise_program.run(prog, [x])[0])
