"""ep_trtpy::Attention against its unfused decomposition run by onnxruntime (head split, QK^T, scale, mask,
Softmax, PV, head merge), packed against unpacked inputs, the all-masked row, and the inference refusals."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from ops_harness import run_ort

from ep_trtpy.ops.registry import Info, OpError, run_infer, run_reference
from graph_partitioner.ir import FLOAT, FLOAT16, INT64, Node, Value, elem_type

RNG = np.random.default_rng(7)


def rnd(*shape: int, dtype: type = np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def node(inputs: list[np.ndarray | None], **attrs) -> Node:  # noqa: ANN003
    n = Node("Attention", "att", "ep_trtpy", {"qkv_packed": 0, "scale": 1.0, **attrs})
    for i, a in enumerate(inputs):
        n.inputs.append(None if a is None else Value(f"in{i}", elem_type(a.dtype), tuple(a.shape)))
    n.outputs = [Value("out")]
    return n


def decomposed(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None, heads: int,
               scale: float) -> np.ndarray:
    """The same attention as plain ONNX ops, run by onnxruntime's CPU provider (in float32)."""
    b, sq, hd = q.shape
    skv, hdv = k.shape[1], v.shape[2]
    inits = [numpy_helper.from_array(np.array(s, np.int64), n) for s, n in
             (([b, sq, heads, hd // heads], "sq"), ([b, skv, heads, hd // heads], "sk"),
              ([b, skv, heads, hdv // heads], "sv"), ([b, sq, hdv], "so"))]
    inits.append(numpy_helper.from_array(np.array(scale, np.float32), "scale"))
    nodes = [helper.make_node("Reshape", ["q", "sq"], ["q4"]), helper.make_node("Transpose", ["q4"], ["qh"],
                                                                                perm=[0, 2, 1, 3]),
             helper.make_node("Reshape", ["k", "sk"], ["k4"]), helper.make_node("Transpose", ["k4"], ["kt"],
                                                                                perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["v", "sv"], ["v4"]), helper.make_node("Transpose", ["v4"], ["vh"],
                                                                                perm=[0, 2, 1, 3]),
             helper.make_node("MatMul", ["qh", "kt"], ["s0"]), helper.make_node("Mul", ["s0", "scale"], ["s1"])]
    feeds = {"q": q.astype(np.float32), "k": k.astype(np.float32), "v": v.astype(np.float32)}
    last = "s1"
    if mask is not None:
        nodes.append(helper.make_node("Add", ["s1", "m"], ["s2"]))
        feeds["m"] = mask.astype(np.float32)
        last = "s2"
    nodes += [helper.make_node("Softmax", [last], ["p"], axis=-1), helper.make_node("MatMul", ["p", "vh"], ["o4"]),
              helper.make_node("Transpose", ["o4"], ["o3"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["o3", "so"], ["o"])]
    g = helper.make_graph(nodes, "attention", [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(a.shape))
                                               for n, a in feeds.items()],
                          [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)], initializer=inits)
    return run_ort(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), feeds)[0]


@pytest.mark.parametrize("mask_shape", [None, (2, 1, 1, 5), (2, 1, 3, 5), (1, 1, 3, 5), (2, 4, 3, 5), (5,)])
def test_matches_the_decomposition(mask_shape) -> None:  # noqa: ANN001
    q, k, v = rnd(2, 3, 4 * 6), rnd(2, 5, 4 * 6), rnd(2, 5, 4 * 2)
    mask = None if mask_shape is None else np.where(RNG.random(mask_shape) < 0.3, -1e4, 0).astype(np.float32)
    (got,) = run_reference(node([q, k, v, mask], num_heads=4, scale=0.4), [q, k, v, mask])
    want = decomposed(q, k, v, mask, 4, 0.4)
    assert got.dtype == np.float32 and got.shape == (2, 3, 8)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    info = run_infer(node([q, k, v, mask], num_heads=4), [Info(FLOAT, a.shape) if a is not None else None
                                                          for a in (q, k, v, mask)])[0]
    assert info.shape == (2, 3, 8) and info.dtype == FLOAT


def test_packed_equals_unpacked() -> None:
    q, k, v = rnd(2, 6, 16), rnd(2, 6, 16), rnd(2, 6, 16)
    mask = rnd(2, 1, 1, 6)
    (unpacked,) = run_reference(node([q, k, v, mask], num_heads=2, scale=0.25), [q, k, v, mask])
    qkv = np.concatenate([q, k, v], axis=-1)
    (packed,) = run_reference(node([qkv, None, None, mask], num_heads=2, scale=0.25, qkv_packed=1),
                              [qkv, None, None, mask])
    np.testing.assert_array_equal(packed, unpacked)
    assert run_infer(node([qkv, None, None, mask], num_heads=2, qkv_packed=1),
                     [Info(FLOAT, qkv.shape), None, None, Info(FLOAT, mask.shape)])[0].shape == (2, 6, 16)


def test_float16_computes_in_float32_and_a_float32_mask_is_accepted() -> None:
    q, k, v = rnd(1, 4, 8, dtype=np.float16), rnd(1, 4, 8, dtype=np.float16), rnd(1, 4, 8, dtype=np.float16)
    mask = np.array([0, 0, -3.4e38, 0], np.float32)
    (got,) = run_reference(node([q, k, v, mask], num_heads=2, scale=0.5), [q, k, v, mask])
    assert got.dtype == np.float16
    want = decomposed(q, k, v, mask, 2, 0.5)
    np.testing.assert_allclose(got.astype(np.float32), want, rtol=2e-3, atol=2e-3)
    info = run_infer(node([q, k, v, mask], num_heads=2), [Info(FLOAT16, (1, 4, 8))] * 3 + [Info(FLOAT, (4,))])[0]
    assert info.dtype == FLOAT16


def test_a_row_that_may_attend_to_nothing_gives_zeros() -> None:
    q, k, v = rnd(1, 2, 4), rnd(1, 3, 4), rnd(1, 3, 4)
    mask = np.zeros((1, 1, 2, 3), np.float32)
    mask[0, 0, 1, :] = -np.inf
    (got,) = run_reference(node([q, k, v, mask], num_heads=1), [q, k, v, mask])
    assert np.all(got[0, 1] == 0) and np.all(np.isfinite(got))
    np.testing.assert_allclose(got[0, 0], decomposed(q, k, v, None, 1, 1.0)[0, 0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shapes,attrs,dtypes,fragment", [
    ([(2, 3, 8)] * 3, {"num_heads": 0}, None, "num_heads=0 must be a positive integer"),
    ([(2, 3, 9), (2, 3, 9), (2, 3, 9)], {"num_heads": 2}, None, "[B, S, 2*D] expected"),
    ([(2, 3, 8), (2, 3, 4), (2, 3, 8)], {"num_heads": 2}, None, "another head width than Q"),
    ([(2, 3, 8), (2, 4, 8), (2, 3, 8)], {"num_heads": 2}, None, "another sequence length than K"),
    ([(2, 3, 8), (2, 3, 8), (2, 3, 8), (2, 2, 3, 3)], {"num_heads": 4}, None, "does not broadcast to [B, H, Sq, Skv]"),
    ([(2, 3, 8), (2, 3, 8), (2, 3, 8), (3, 3)], {"num_heads": 4}, [FLOAT] * 3 + [INT64], "mask input 3"),
    ([(2, 3, 24), (2, 3, 8), None], {"num_heads": 2, "qkv_packed": 1}, None, "has K or V inputs"),
    ([(2, 3, 8), None, None], {"num_heads": 2, "qkv_packed": 1}, None, "[B, S, 3*2*D] expected"),
    ([(2, 3, 8), None, None], {"num_heads": 2}, None, "lacks its K or V input"),
])
def test_inference_refuses_with_a_sentence(shapes, attrs, dtypes, fragment) -> None:  # noqa: ANN001
    dtypes = dtypes or [FLOAT] * len(shapes)
    infos = [None if s is None else Info(t, s) for s, t in zip(shapes, dtypes)]
    arrays = [None if s is None else np.zeros(s, np.float32) for s in shapes]
    with pytest.raises(OpError) as e:
        run_infer(node(arrays, **attrs), infos)
    assert fragment in str(e.value) and "ep_trtpy::Attention node 'att'" in str(e.value)
