"""Inference and references refuse bad input with an OpError naming the node and the value (that every op of the
support specification has a reference and an inference function: tests/test_op_families.py)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from ops_harness import ir_node

from ep_trtpy.ops import registry
from ep_trtpy.ops.registry import Info, OpError, run_infer, run_reference
from graph_partitioner.ir import FLOAT, INT64, Node, elem_type

def f(*shape: int) -> Info:
    return Info(FLOAT, shape)


def ints(*v: int) -> Info:
    return Info(INT64, (len(v),), np.array(v, np.int64))


def runtime_ints(n: int) -> Info:
    return Info(INT64, (n,))


def node(op: str, n_in: int, attrs: dict | None = None, opset: int = 17, n_out: int = 1) -> Node:
    proto = helper.make_node(op, [f"in{i}" for i in range(n_in)], [f"out{k}" for k in range(n_out)],
                             name=f"my_{op.lower()}", **(attrs or {}))
    return ir_node(proto, [np.zeros(1, np.float32)] * n_in, (), opset)


ERRORS = [
    ("Add-shapes", "Add", [f(2, 3), f(4)], {}, 17, r"my_add.*\[2, 3\], \[4\] do not broadcast"),
    ("Add-dtypes", "Add", [f(2), Info(INT64, (2,))], {}, 17, r"my_add.*input 1 \('in1'\) is int64"),
    ("Relu-bool", "Sigmoid", [Info(9, (2,))], {}, 17, r"my_sigmoid.*needs a float type"),
    ("Cast-no-to", "Cast", [f(2)], {}, 17, r"my_cast.*no 'to'"),
    ("Cast-to-string", "Cast", [f(2)], {"to": 8}, 17, r"my_cast.*float32 to string is not supported"),
    ("Cast-to-float8", "Cast", [f(2)], {"to": 17}, 19, r"my_cast.*to float8e4m3fn is not supported"),
    ("Clip-vector-bound", "Clip", [f(3), f(2)], {}, 17, r"my_clip.*bound input 1 \('in1'\).*scalar"),
    ("Reshape-runtime-shape", "Reshape", [f(6), runtime_ints(2)], {}, 17,
     r"my_reshape.*shape \(input 1 \('in1'\)\) is not known at build time"),
    ("Reshape-bad-count", "Reshape", [f(6), ints(4, -1)], {}, 17, r"my_reshape.*cannot reshape \[6\]"),
    ("Reshape-two-minus-one", "Reshape", [f(6), ints(-1, -1)], {}, 17, r"my_reshape.*more than one -1"),
    ("Squeeze-not-one", "Squeeze", [f(2, 3), ints(0)], {}, 17, r"my_squeeze.*axis 0 of size 2"),
    ("Unsqueeze-duplicate", "Unsqueeze", [f(2), ints(0, 0)], {}, 17, r"my_unsqueeze.*repeats an axis"),
    ("Transpose-bad-perm", "Transpose", [f(2, 3)], {"perm": [0, 0]}, 17, r"my_transpose.*not a permutation"),
    ("Concat-mismatch", "Concat", [f(2, 3), f(3, 3)], {"axis": 1}, 17, r"my_concat.*input 1 \('in1'\).*\[3, 3\]"),
    ("Concat-axis", "Concat", [f(2, 3), f(2, 3)], {"axis": 2}, 17, r"my_concat.*axis=2 is out of range"),
    ("Split-uneven", "Split", [f(5, 2)], {}, 17, r"my_split.*size 5 cannot be split into 2"),
    ("Split-bad-sizes", "Split", [f(5, 2), ints(1, 2)], {}, 17, r"my_split.*split \[1, 2\] does not cover"),
    ("Slice-step-0", "Slice", [f(5), ints(0), ints(3), ints(0), ints(0)], {}, 17, r"my_slice.*step 0"),
    ("Gather-out-of-range", "Gather", [f(4, 2), Info(INT64, (1,), np.array([4], np.int64))], {}, 17,
     r"my_gather.*outside \[-4, 3\]"),
    ("Gather-float-indices", "Gather", [f(4, 2), f(1)], {}, 17, r"my_gather.*int32 or int64"),
    ("GatherElements-rank", "GatherElements", [f(4, 2), Info(INT64, (4,))], {}, 17,
     r"my_gatherelements.*data \[4, 2\] and indices \[4\] must have the same rank"),
    ("GatherElements-too-wide", "GatherElements", [f(4, 2), Info(INT64, (1, 3))], {"axis": 0}, 17,
     r"my_gatherelements.*exceed data \[4, 2\] on a dim other than axis 0"),
    ("GatherElements-float-indices", "GatherElements", [f(4, 2), f(4, 2)], {}, 17,
     r"my_gatherelements.*float32; int32 or int64"),
    ("GatherND-batch-dims", "GatherND", [f(4, 2), Info(INT64, (3, 1))], {"batch_dims": 1}, 17,
     r"my_gathernd.*batch dims of data \[4, 2\] and indices \[3, 1\] differ"),
    ("GatherND-tuple-too-long", "GatherND", [f(4, 2), Info(INT64, (3, 3))], {}, 17,
     r"my_gathernd.*do not fit"),
    ("GatherND-int32", "GatherND", [f(4, 2), Info(6, (3, 1))], {}, 17, r"my_gathernd.*int32; int64 expected"),
    ("Expand-incompatible", "Expand", [f(3), ints(2, 4)], {}, 17, r"my_expand.*do not broadcast"),
    ("Tile-wrong-length", "Tile", [f(3, 2), ints(2)], {}, 17, r"my_tile.*repeats \[2\] must hold 2"),
    ("Pad-wrong-length", "Pad", [f(3, 2), ints(1, 1)], {}, 17, r"my_pad.*4 expected"),
    ("Pad-bad-mode", "Pad", [f(3), ints(1, 1)], {"mode": "mirror"}, 17, r"my_pad.*mode='mirror'"),
    ("Softmax-axis", "Softmax", [f(2, 3)], {"axis": 2}, 13, r"my_softmax.*axis=2 is out of range for rank 2"),
    ("ReduceSum-runtime-axes", "ReduceSum", [f(2, 3), runtime_ints(1)], {}, 13, r"my_reducesum.*axes.*not known"),
    ("ReduceMean-axis-range", "ReduceMean", [f(2, 3)], {"axes": [3]}, 13, r"my_reducemean.*axes=3 is out of range"),
    ("ArgMax-empty-axis", "ArgMax", [f(0, 3)], {"axis": 0}, 13, r"my_argmax.*axis 0 of size 0"),
    ("Conv-channels", "Conv", [f(1, 3, 5, 5), f(4, 2, 3, 3)], {}, 17, r"my_conv.*3 channels.*group=1"),
    ("Conv-rank", "Conv", [f(3, 5, 5), f(4, 3, 3, 3)], {}, 17, r"my_conv.*rank 3, 4 or 5"),
    ("Conv-kernel-too-big", "Conv", [f(1, 1, 2, 2), f(1, 1, 3, 3)], {}, 17, r"my_conv.*larger than spatial axis 0"),
    ("Conv-auto-pad", "Conv", [f(1, 1, 4, 4), f(1, 1, 3, 3)], {"auto_pad": "FULL"}, 17, r"my_conv.*auto_pad='FULL'"),
    ("Conv-strides-length", "Conv", [f(1, 1, 4, 4), f(1, 1, 3, 3)], {"strides": [1]}, 17,
     r"my_conv.*strides=\[1\] has 1 entries"),
    ("ConvTranspose-channels", "ConvTranspose", [f(1, 3, 5, 5), f(2, 2, 3, 3)], {}, 17, r"my_convtranspose.*3 chan"),
    ("Gemm-inner", "Gemm", [f(2, 3), f(4, 5)], {}, 13, r"my_gemm.*inner dimensions differ"),
    ("Gemm-C", "Gemm", [f(2, 3), f(3, 5), f(3)], {}, 13, r"my_gemm.*C input 2 \('in2'\) of shape \[3\]"),
    ("MatMul-inner", "MatMul", [f(2, 3), f(4, 5)], {}, 13, r"my_matmul.*inner dimensions 3 and 4 differ"),
    ("MatMul-batch", "MatMul", [f(2, 2, 3), f(3, 3, 5)], {}, 13, r"my_matmul.*do not broadcast"),
    ("Einsum-operands", "Einsum", [f(2, 3)], {"equation": "ij,jk->ik"}, 12, r"my_einsum.*2 operands.*1 inputs"),
    ("Einsum-size", "Einsum", [f(2, 3), f(4, 5)], {"equation": "ij,jk->ik"}, 12, r"my_einsum.*'j' has sizes 3 and 4"),
    ("Einsum-output", "Einsum", [f(2, 3)], {"equation": "ij->k"}, 12, r"my_einsum.*'k' does not appear"),
    ("LayerNorm-scale", "LayerNormalization", [f(2, 4), f(3)], {}, 17, r"my_layernormalization.*Scale.*\[3\]"),
    ("BatchNorm-training", "BatchNormalization", [f(2, 3)] + [f(3)] * 4, {"training_mode": 1}, 15,
     r"my_batchnormalization.*training_mode=1"),
    ("MaxPool-no-kernel", "MaxPool", [f(1, 1, 4, 4)], {}, 12, r"my_maxpool.*kernel_shape is required"),
    ("AveragePool-rank", "AveragePool", [f(4, 4)], {"kernel_shape": [2]}, 19, r"my_averagepool.*rank >= 3"),
    ("Resize-cubic", "Resize", [f(1, 1, 2, 2), None, Info(FLOAT, (4,), np.ones(4, np.float32))], {"mode": "cubic"},
     13, r"my_resize.*mode='cubic' is not supported"),
    ("Resize-crop", "Resize", [f(1, 1, 2, 2), None, Info(FLOAT, (4,), np.ones(4, np.float32))],
     {"coordinate_transformation_mode": "tf_crop_and_resize"}, 13, r"my_resize.*tf_crop_and_resize"),
    ("Resize-antialias", "Resize", [f(1, 1, 2, 2), None, Info(FLOAT, (4,), np.ones(4, np.float32))],
     {"antialias": 1}, 18, r"my_resize.*antialias=1"),
    ("Resize-runtime-scales", "Resize", [f(1, 1, 2, 2), None, f(4)], {}, 13, r"my_resize.*scales.*not known"),
    ("Upsample-shrinks", "Upsample", [f(1, 1, 2, 2), Info(FLOAT, (4,), np.float32([1, 1, 0.5, 1]))], {}, 9,
     r"my_upsample.*scales \[1.0, 1.0, 0.5, 1.0\] must all be >= 1"),
    ("Upsample-no-scales", "Upsample", [f(1, 1, 2, 2)], {}, 7, r"my_upsample.*neither a scales input nor"),
    ("Range-zero-delta", "Range", [Info(INT64, (), np.array(0)), Info(INT64, (), np.array(5)),
                                   Info(INT64, (), np.array(0))], {}, 11, r"my_range.*delta is 0"),
    ("ConstantOfShape-negative", "ConstantOfShape", [ints(2, -1)], {}, 9, r"my_constantofshape.*negative"),
    ("Dropout-training", "Dropout", [f(3), Info(FLOAT, (), np.array(0.5, np.float32)),
                                     Info(9, (), np.array(True))], {}, 13, r"my_dropout.*training_mode is true"),
]


@pytest.mark.parametrize("op,inputs,attrs,opset,pattern", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_inference_errors_name_node_and_value(op: str, inputs: list, attrs: dict, opset: int, pattern: str) -> None:
    n = node(op, len(inputs), attrs, opset, n_out=2 if op == "Split" else 1)
    for i, inf in enumerate(inputs):
        if inf is None:
            n.inputs[i] = None
    with pytest.raises(OpError, match=pattern):
        run_infer(n, inputs)


def test_reference_errors_name_node_and_value() -> None:
    n = node("Gather", 2, {"axis": 0})
    with pytest.raises(OpError, match=r"my_gather.*outside \[-3, 2\]"):
        run_reference(n, [np.zeros(3, np.float32), np.array([3], np.int64)])
    n = node("GatherElements", 2, {"axis": 1})
    with pytest.raises(OpError, match=r"my_gatherelements.*indices input 1 \('in1'\) hold values outside"):
        run_reference(n, [np.zeros((2, 3), np.float32), np.array([[0], [-4]], np.int64)])
    n = node("GatherND", 2)
    with pytest.raises(OpError, match=r"my_gathernd.*outside \[-d, d\) of the dims \[2, 3\]"):
        run_reference(n, [np.zeros((2, 3), np.float32), np.array([[1, 3]], np.int64)])
    n = node("Reshape", 2)
    with pytest.raises(OpError, match=r"my_reshape.*cannot reshape \[6\]"):
        run_reference(n, [np.zeros(6, np.float32), np.array([4, 2], np.int64)])
    with pytest.raises(OpError, match="op Foo is not known"):
        registry.get("Foo")


def test_runtime_shape_operand_still_runs_in_the_reference() -> None:
    """A shape operand that inference cannot see is fine at run time: the reference computes with the array."""
    x = np.arange(6, dtype=np.float32)
    n = node("Reshape", 2)
    y = run_reference(n, [x, np.array([3, 2], np.int64)])[0]
    assert y.shape == (3, 2)
    n = node("ReduceSum", 2, opset=13)
    np.testing.assert_array_equal(run_reference(n, [x.reshape(2, 3), np.array([1], np.int64)])[0], [[3.0], [12.0]])


def test_folding_respects_the_size_limit() -> None:
    big = np.zeros((registry.FOLD_LIMIT + 1,), np.float32)
    n = node("Relu", 1)
    (out,) = run_infer(n, [Info(FLOAT, big.shape, big)])
    assert out.value is None
    small = np.array([-1.0, 2.0], np.float32)
    (out,) = run_infer(n, [Info(elem_type(small.dtype), small.shape, small)])
    assert out.value is not None and out.value.tolist() == [0.0, 2.0]
