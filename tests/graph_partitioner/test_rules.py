"""Support rules: acceptances and refusals (with the reason's wording) for every family, opset-dependent forms,
dtypes, domains and unknown ops."""

from __future__ import annotations

import numpy as np
import pytest

from gp_helpers import one_node, verdict
from graph_partitioner.ir import BFLOAT16, BOOL, DOUBLE, FLOAT, FLOAT16, INT32, INT64, STRING, UINT8
from graph_partitioner.support import rules
from graph_partitioner.support.common import MAX_POINTWISE_INPUTS

F = (FLOAT, (2, 3))
F4 = (FLOAT, (1, 3, 8, 8))
H = (FLOAT16, (2, 3))
I64 = np.array([0], np.int64)

def test_pointwise_input_limit_matches_the_program_spec():
    from ep_trtpy.ops.pointwise_program import MAX_INPUTS

    assert MAX_POINTWISE_INPUTS == MAX_INPUTS


def _v(*args, **kw):
    return verdict(*one_node(*args, **kw))


CASES = [
    # ---- elementwise
    ("add ok", lambda: _v("Add", [F, F]), None),
    ("add int64 ok", lambda: _v("Add", [(INT64, (2,)), (INT64, ())], [(INT64, (2,))]), None),
    ("add uint8 refused", lambda: _v("Add", [(UINT8, (2,)), (UINT8, (2,))], [(UINT8, (2,))]),
     "input 0 ('in0') is uint8; Add supports float16, float32, int32, int64"),
    ("sqrt int refused", lambda: _v("Sqrt", [(INT32, (2,))], [(INT32, (2,))]), "Sqrt supports float16, float32"),
    ("float64 refused everywhere", lambda: _v("Relu", [(DOUBLE, (2,))], [(DOUBLE, (2,))]),
     "input 0 ('in0') is float64, and float64 is not supported on the GPU path"),
    ("bfloat16 refused", lambda: _v("Add", [(BFLOAT16, (2,)), (BFLOAT16, (2,))], [(BFLOAT16, (2,))]),
     "bfloat16 is not supported on the GPU path"),
    ("float64 exponent refused (exempt input)", lambda: _v("Pow", [F, (DOUBLE, ())]),
     "input 1 ('in1') is float64, and float64 is not supported on the GPU path"),
    ("pow int exponent ok", lambda: _v("Pow", [F, (INT64, ())]), None),
    ("cast to double refused", lambda: _v("Cast", [F], [(FLOAT16, (2, 3))], {"to": DOUBLE}),
     "Cast to float64 is not supported (float32, float16, int32, int64 and bool are)"),
    ("cast to string refused", lambda: _v("Cast", [F], [(STRING, (2, 3))], {"to": STRING}),
     "string is not supported on the GPU path"),
    ("cast f32->bool ok", lambda: _v("Cast", [F], [(BOOL, (2, 3))], {"to": BOOL}), None),
    ("equal out bool ok", lambda: _v("Equal", [F, F], [(BOOL, (2, 3))]), None),
    ("where cond must be bool", lambda: _v("Where", [F, F, F]), "Where condition 'in0' is float32; it must be bool"),
    ("where ok", lambda: _v("Where", [(BOOL, (2, 3)), F, F]), None),
    ("and on float refused", lambda: _v("And", [F, F], [(BOOL, (2, 3))]), "And supports bool"),
    ("gelu erf ok (opset 20)", lambda: _v("Gelu", [F], opset=20), None),
    ("gelu bad approximate", lambda: _v("Gelu", [F], attrs={"approximate": "fast"}, opset=20),
     "Gelu approximate='fast' is not supported ('none' and 'tanh' are)"),
    ("mod fmod=0 on floats", lambda: _v("Mod", [F, F], attrs={"fmod": 0}), "requires fmod=1"),
    ("sum too many inputs", lambda: _v("Sum", [F] * (MAX_POINTWISE_INPUTS + 1)),
     f"Sum with {MAX_POINTWISE_INPUTS + 1} inputs exceeds"),
    ("clip-6 attributes refused", lambda: _v("Clip", [F], attrs={"min": 0.0, "max": 6.0}, opset=6),
     "Clip-6 with min/max attributes is not supported"),
    ("clip runtime bounds ok", lambda: _v("Clip", [F, (FLOAT, ()), (FLOAT, ())]), None),
    # ---- reductions
    ("reducemean-13 axes attr ok", lambda: _v("ReduceMean", [F], attrs={"axes": [1]}, opset=13), None),
    ("reducemean-13 axes input refused", lambda: _v("ReduceMean", [F, I64], opset=13),
     "ReduceMean-13 takes axes as an attribute; a second input 'c1' is not valid at this opset"),
    ("reducemean-18 axes input ok", lambda: _v("ReduceMean", [F, I64], opset=18), None),
    ("reducemean-18 axes attr refused", lambda: _v("ReduceMean", [F], attrs={"axes": [1]}, opset=18),
     "ReduceMean-18 takes axes as an input; an 'axes' attribute is not valid"),
    ("reducesum-13 runtime axes refused", lambda: _v("ReduceSum", [F, (INT64, (1,))], opset=13),
     "ReduceSum axes input 'in1' is not computable at build time"),
    ("reduce axes out of range", lambda: _v("ReduceMax", [F], attrs={"axes": [2]}, opset=13),
     "ReduceMax axes=[2] holds axis 2, out of range for a rank-2 input"),
    ("reducemean int refused", lambda: _v("ReduceMean", [(INT64, (2,))], [(INT64, ())], opset=13),
     "ReduceMean supports float16, float32"),
    ("reducesum int ok", lambda: _v("ReduceSum", [(INT64, (2,))], [(INT64, ())], opset=13), None),
    ("global pool rank 2", lambda: _v("GlobalAveragePool", [F]), "has rank 2; rank >= 3"),
    ("argmax ok", lambda: _v("ArgMax", [F], [(INT64, (3,))], {"axis": 0, "keepdims": 0}), None),
    ("argmax select_last_index bad", lambda: _v("ArgMax", [F], [(INT64, (3,))], {"select_last_index": 2}),
     "select_last_index=2 is not valid (it must be 0 or 1)"),
    # ---- normalization
    ("layernorm ok", lambda: _v("LayerNormalization", [F, (FLOAT, (3,)), (FLOAT, (3,))]), None),
    ("layernorm mean used", lambda: _v("LayerNormalization", [F, (FLOAT, (3,))], [F, (FLOAT, (2, 1))]),
     "LayerNormalization output 1 (Mean, 'out1') is a graph output; only the normalized output Y is supported"),
    ("layernorm stash_type", lambda: _v("LayerNormalization", [F, (FLOAT, (3,))], attrs={"stash_type": 0}),
     "stash_type=0 is not supported"),
    ("softmax-13 axis 2 of rank 2", lambda: _v("Softmax", [F], attrs={"axis": 2}, opset=13),
     "Softmax axis=2 is out of range for a rank-2 input"),
    ("softmax-11 default axis 1 ok", lambda: _v("Softmax", [F], opset=11), None),
    ("softmax-11 default axis on rank 1 refused", lambda: _v("Softmax", [(FLOAT, (4,))], opset=11),
     "Softmax axis=1 is out of range for a rank-1 input"),
    ("softmax-13 default axis on rank 1 ok", lambda: _v("Softmax", [(FLOAT, (4,))], opset=13), None),
    ("batchnorm training", lambda: _v("BatchNormalization", [F4] + [(FLOAT, (3,))] * 4,
                                      attrs={"training_mode": 1}, opset=15),
     "BatchNormalization training_mode=1 is not supported (inference only)"),
    # ---- linear algebra
    ("conv ok", lambda: _v("Conv", [F4, np.zeros((4, 3, 3, 3), np.float32)], attrs={"pads": [1, 1, 1, 1]}), None),
    ("conv 4-D spatial", lambda: _v("Conv", [(FLOAT, (1, 1, 2, 2, 2, 2)), (FLOAT, (1, 1, 1, 1, 1, 1))]),
     "Conv with 4 spatial dims is not supported (1-D, 2-D and 3-D are)"),
    ("conv bad auto_pad", lambda: _v("Conv", [F4, (FLOAT, (4, 3, 3, 3))], attrs={"auto_pad": "FOO"}),
     "Conv auto_pad='FOO' is not supported (NOTSET, VALID, SAME_UPPER and SAME_LOWER are)"),
    ("conv pads length", lambda: _v("Conv", [F4, (FLOAT, (4, 3, 3, 3))], attrs={"pads": [1, 1]}),
     "Conv pads=[1, 1] has 2 entries; 4 expected"),
    ("conv group mismatch", lambda: _v("Conv", [F4, (FLOAT, (4, 1, 3, 3))], attrs={"group": 2}),
     "has 3 channels but weight 'in1' expects 1 x group 2"),
    ("depthwise conv ok", lambda: _v("Conv", [F4, (FLOAT, (3, 1, 3, 3))], attrs={"group": 3}), None),
    ("gemm 3-D A", lambda: _v("Gemm", [(FLOAT, (2, 3, 4)), (FLOAT, (4, 5))]),
     "Gemm A 'in0' has rank 3; Gemm needs 2-D A and B"),
    ("gemm C broadcast", lambda: _v("Gemm", [(FLOAT, (2, 4)), (FLOAT, (4, 5)), (FLOAT, (3, 5))]),
     "does not broadcast to [M, N] = [2, 5]"),
    ("gemm transB ok", lambda: _v("Gemm", [(FLOAT, (2, 4)), (FLOAT, (5, 4)), (FLOAT, (5,))], attrs={"transB": 1}),
     None),
    ("matmul fp16 ok", lambda: _v("MatMul", [(FLOAT16, (2, 3, 4)), (FLOAT16, (4, 5))], [(FLOAT16, (2, 3, 5))]), None),
    ("einsum ok", lambda: _v("Einsum", [(FLOAT, (2, 3)), (FLOAT, (3, 4))], attrs={"equation": "ij,jk->ik"}), None),
    ("einsum ellipsis", lambda: _v("Einsum", [F], attrs={"equation": "...ij->...ji"}),
     "Einsum equation '...ij->...ji' uses an ellipsis ('...'), which is not supported"),
    ("einsum trace", lambda: _v("Einsum", [(FLOAT, (3, 3))], attrs={"equation": "ii->i"}),
     "repeats index 'i' within operand 'ii' (a trace or diagonal)"),
    ("einsum 3 operands", lambda: _v("Einsum", [F, F, F], attrs={"equation": "ij,ij,ij->ij"}),
     "has 3 operands; 1 or 2 are supported"),
    # ---- data movement
    ("reshape runtime shape", lambda: _v("Reshape", [F, (INT64, (2,))]),
     "Reshape shape input 'in1' is not computable at build time"),
    ("reshape const shape ok", lambda: _v("Reshape", [F, np.array([3, 2], np.int64)]), None),
    ("reshape bool ok", lambda: _v("Reshape", [(BOOL, (2, 3)), np.array([6], np.int64)], [(BOOL, (6,))]), None),
    ("reshape string refused", lambda: _v("Reshape", [(STRING, (2,)), np.array([2], np.int64)], [(STRING, (2,))]),
     "string is not supported on the GPU path"),
    ("squeeze-11 attr ok", lambda: _v("Squeeze", [(FLOAT, (1, 3))], attrs={"axes": [0]}, opset=11), None),
    ("squeeze-13 attr refused", lambda: _v("Squeeze", [(FLOAT, (1, 3))], attrs={"axes": [0]}, opset=13),
     "Squeeze-13 takes axes as an input"),
    ("unsqueeze-13 const axes ok", lambda: _v("Unsqueeze", [F, np.array([0, 3], np.int64)], opset=13), None),
    ("unsqueeze-13 axes out of range", lambda: _v("Unsqueeze", [F, np.array([4], np.int64)], opset=13),
     "Unsqueeze axes=[4] holds axis 4, out of range for a rank-3 input"),
    ("split-13 attr refused", lambda: _v("Split", [F], [F, F], {"split": [1, 1]}, opset=13),
     "Split-13 takes split as an input"),
    ("split-11 attr ok", lambda: _v("Split", [F], [(FLOAT, (1, 3)), (FLOAT, (1, 3))], {"split": [1, 1]}, opset=11),
     None),
    ("split-13 num_outputs refused", lambda: _v("Split", [F], [F, F], {"num_outputs": 2}, opset=13),
     "Split-13 has no num_outputs attribute (it came with opset 18)"),
    ("split-18 num_outputs ok", lambda: _v("Split", [F], [F, F], {"num_outputs": 2}, opset=18), None),
    ("split-18 num_outputs mismatch", lambda: _v("Split", [F], [F, F], {"num_outputs": 3}, opset=18),
     "Split num_outputs=3 but the node has 2 outputs"),
    ("slice runtime starts", lambda: _v("Slice", [F, (INT64, (1,)), np.array([2], np.int64)]),
     "Slice starts input 'in1' is not computable at build time"),
    ("slice zero step", lambda: _v("Slice", [F, I64, np.array([2], np.int64), I64, np.array([0], np.int64)]),
     "Slice steps input 'c4' contains 0"),
    ("slice negative step ok", lambda: _v("Slice", [F, np.array([-1], np.int64), np.array([-10], np.int64), I64,
                                                    np.array([-1], np.int64)]), None),
    ("gather float indices", lambda: _v("Gather", [F, (FLOAT, (2,))]), "Gather indices 'in1' is float32"),
    ("gather runtime int32 indices ok", lambda: _v("Gather", [F, (INT32, (2,))], [F]), None),
    ("gather_elements runtime indices ok", lambda: _v("GatherElements", [F, (INT64, (2, 3))], [F], {"axis": 1}),
     None),
    ("gather_elements float indices", lambda: _v("GatherElements", [F, (FLOAT, (2, 3))]),
     "GatherElements indices 'in1' is float32; it must be int32, int64"),
    ("gather_elements axis", lambda: _v("GatherElements", [F, (INT64, (2, 3))], [F], {"axis": 2}),
     "GatherElements axis=2 is out of range for a rank-2 input"),
    ("gather_elements rank 9", lambda: _v("GatherElements", [(FLOAT, (1,) * 9), (INT64, (1,) * 9)],
                                          [(FLOAT, (1,) * 9)]),
     "GatherElements data 'in0' has rank 9; the kernel takes up to 8"),
    ("gather_nd constant indices ok", lambda: _v("GatherND", [F, np.array([[1, 2]], np.int64)], [(FLOAT, (1,))]),
     None),
    ("gather_nd runtime indices", lambda: _v("GatherND", [F, (INT64, (1, 2))], [(FLOAT, (1,))]),
     "GatherND indices input 'in1' is not computable at build time"),
    ("gather_nd batch_dims", lambda: _v("GatherND", [F, np.array([[1]], np.int64)], [(FLOAT, (2,))],
                                        {"batch_dims": 2}),
     "GatherND batch_dims=2 must be an integer in [0, min(rank(data), rank(indices)))"),
    ("identity of unknown type (maybe a sequence)", lambda: _v("Identity", [(None, None)], [(None, None)]),
     "Identity input 'in0' has an unknown type (it may be a sequence or an optional); only tensors are claimed"),
    ("identity bool ok", lambda: _v("Identity", [(BOOL, (2,))], [(BOOL, (2,))]), None),
    ("transpose bad perm", lambda: _v("Transpose", [F], attrs={"perm": [0, 0]}),
     "Transpose perm=[0, 0] is not a permutation of 0..1"),
    ("dropout mask used", lambda: _v("Dropout", [F], [F, (BOOL, (2, 3))], opset=13),
     "Dropout output 1 (mask, 'out1') is a graph output"),
    ("dropout training true", lambda: _v("Dropout", [F, np.array(0.5, np.float32), np.array(True)], opset=13),
     "Dropout training_mode input 'c2' is true; only inference is supported"),
    ("dropout runtime training_mode", lambda: _v("Dropout", [F, None, (BOOL, ())], opset=13),
     "Dropout training_mode input 'in2' must be a constant"),
    ("pad wrap", lambda: _v("Pad", [F, np.zeros(4, np.int64)], attrs={"mode": "wrap"}, opset=19),
     "Pad mode='wrap' is not supported (constant, reflect and edge are)"),
    ("pad runtime constant_value", lambda: _v("Pad", [F, np.zeros(4, np.int64), (FLOAT, ())]),
     "Pad constant_value input 'in2' must be a constant"),
    ("pad reflect ok", lambda: _v("Pad", [F, np.zeros(4, np.int64)], attrs={"mode": "reflect"}), None),
    ("expand runtime shape", lambda: _v("Expand", [F, (INT64, (2,))]), "Expand shape input 'in1' is not computable"),
    ("tile const ok", lambda: _v("Tile", [F, np.array([2, 1], np.int64)]), None),
    ("resize cubic", lambda: _v("Resize", [F4, None, np.array([1, 1, 2, 2], np.float32)], attrs={"mode": "cubic"}),
     "Resize mode 'cubic' is not supported (nearest and linear are)"),
    ("resize tf_crop", lambda: _v("Resize", [F4, None, np.array([1, 1, 2, 2], np.float32)],
                                  attrs={"coordinate_transformation_mode": "tf_crop_and_resize"}),
     "Resize coordinate_transformation_mode 'tf_crop_and_resize' is not supported"),
    ("resize antialias", lambda: _v("Resize", [F4, None, np.array([1, 1, 2, 2], np.float32)],
                                    attrs={"antialias": 1}, opset=18), "Resize antialias=1 is not supported"),
    ("resize axes partial", lambda: _v("Resize", [F4, None, np.array([2, 2], np.float32)], attrs={"axes": [2, 3]},
                                       opset=18), "Resize axes=[2, 3] does not cover all 4 dims of 'in0'"),
    ("resize keep aspect", lambda: _v("Resize", [F4, None, None, np.array([1, 3, 4, 4], np.int64)],
                                      attrs={"keep_aspect_ratio_policy": "not_larger"}, opset=18),
     "Resize keep_aspect_ratio_policy 'not_larger' is not supported (only 'stretch' is)"),
    ("resize linear sizes ok (empty scales)", lambda: _v("Resize", [F4, None, np.zeros(0, np.float32),
                                                                    np.array([1, 3, 4, 4], np.int64)],
                                                         attrs={"mode": "linear"}), None),
    ("resize runtime sizes", lambda: _v("Resize", [F4, None, None, (INT64, (4,))]),
     "Resize sizes input 'in3' is not computable at build time"),
    ("resize both", lambda: _v("Resize", [F4, None, np.ones(4, np.float32), np.ones(4, np.int64)]),
     "Resize has both scales 'c2' and sizes 'c3'; ONNX allows only one"),
    ("resize-10 ok", lambda: _v("Resize", [F4, np.array([1, 1, 2, 2], np.float32)], attrs={"mode": "linear"},
                                opset=10), None),
    ("upsample-9 ok", lambda: _v("Upsample", [F4, np.array([1, 1, 2, 2], np.float32)], opset=9), None),
    ("upsample-7 scales attribute ok", lambda: _v("Upsample", [F4], attrs={"scales": [1.0, 1.0, 2.0, 2.0]},
                                                  opset=7), None),
    ("upsample-7 without scales", lambda: _v("Upsample", [F4], opset=7),
     "Upsample has neither a scales input nor attribute"),
    ("upsample cubic", lambda: _v("Upsample", [F4, np.array([1, 1, 2, 2], np.float32)], attrs={"mode": "cubic"},
                                  opset=9), "Upsample mode 'cubic' is not supported (nearest and linear are)"),
    ("upsample runtime scales", lambda: _v("Upsample", [F4, (FLOAT, (4,))], opset=9),
     "Upsample scales input 'in1' is not computable at build time"),
    ("upsample-10 refused", lambda: _v("Upsample", [F4, np.array([1, 1, 2, 2], np.float32)], opset=10),
     "Upsample is deprecated since opset 10"),
    ("maxpool indices used", lambda: _v("MaxPool", [F4], [F4, (INT64, (1, 3, 8, 8))], {"kernel_shape": [1, 1]}),
     "MaxPool output 1 (Indices, 'out1') is a graph output; only the pooled output Y is supported"),
    ("maxpool storage order", lambda: _v("MaxPool", [F4], attrs={"kernel_shape": [2, 2], "storage_order": 1}),
     "MaxPool storage_order=1 is not supported"),
    ("maxpool int8 refused", lambda: _v("MaxPool", [(UINT8, (1, 3, 8, 8))], [(UINT8, None)],
                                        {"kernel_shape": [2, 2]}), "MaxPool supports float16, float32"),
    ("avgpool 2-D ok", lambda: _v("AveragePool", [F4], attrs={"kernel_shape": [2, 2], "strides": [2, 2],
                                                             "count_include_pad": 1, "ceil_mode": 1}), None),
    ("avgpool rank mismatch", lambda: _v("AveragePool", [F4], attrs={"kernel_shape": [2]}),
     "has rank 4 but kernel_shape [2] has 1 spatial dims"),
    # ---- shape ops
    ("shape ok", lambda: _v("Shape", [F], [(INT64, (2,))], {"start": 1}), None),
    ("shape of float64 refused", lambda: _v("Shape", [(DOUBLE, (2,))], [(INT64, (1,))]),
     "float64 is not supported on the GPU path"),
    ("constantofshape runtime", lambda: _v("ConstantOfShape", [(INT64, (2,))]),
     "ConstantOfShape shape input 'in0' is not computable at build time"),
    ("constantofshape double value", lambda: _v("ConstantOfShape", [np.array([2], np.int64)], [(None, None)],
                                                {"value": np.zeros(1, np.float64)}),
     "ConstantOfShape value attribute is float64, and float64 is not supported on the GPU path"),
    ("range runtime", lambda: _v("Range", [(INT64, ()), np.array(5, np.int64), np.array(1, np.int64)],
                                 [(INT64, (None,))]), "Range start input 'in0' is not computable"),
    ("range const ok", lambda: _v("Range", [np.array(0, np.int64), np.array(5, np.int64), np.array(1, np.int64)],
                                  [(INT64, (5,))]), None),
    ("constant string", lambda: _v("Constant", [], [(None, None)], {"value_strings": ["a"]}),
     "string is not supported on the GPU path"),
    ("constant ok", lambda: _v("Constant", [], [(FLOAT, (2,))], {"value": np.zeros(2, np.float32)}), None),
    # ---- domains, unknown ops, internal ops
    ("unknown op", lambda: _v("TopK", [F, np.array([1], np.int64)], [F, (INT64, (2, 1))]),
     "TopK has no GPU implementation in ep_trtpy"),
    ("If is unknown", lambda: _v("If", [(BOOL, ())], attrs={"then_branch": object()}),
     "If has no GPU implementation in ep_trtpy"),
    ("foreign domain", lambda: _v("FusedMatMul", [F, F], domain="com.microsoft"),
     "com.microsoft::FusedMatMul is in domain 'com.microsoft'; ep_trtpy claims only ONNX-domain ops"),
    ("ai.onnx domain is onnx", lambda: _v("Relu", [F], domain="ai.onnx"), None),
    ("internal fused matmul ok", lambda: _v("FusedMatMul", [F, (FLOAT, (3, 4))], attrs={"activation": "Gelu"},
                                            domain="ep_trtpy"), None),
    ("internal fused matmul act", lambda: _v("FusedMatMul", [F, (FLOAT, (3, 4))], attrs={"activation": "Tanh"},
                                             domain="ep_trtpy"), "ep_trtpy::FusedMatMul activation='Tanh'"),
    ("internal cast transpose ok", lambda: _v("CastTranspose", [F4], [(FLOAT16, (1, 8, 8, 3))],
                                              attrs={"perm": [0, 2, 3, 1], "to": FLOAT16}, domain="ep_trtpy"), None),
    ("internal cast transpose same type", lambda: _v("CastTranspose", [(FLOAT16, (1, 3, 8, 8))],
                                                     [(FLOAT16, (1, 8, 8, 3))],
                                                     attrs={"perm": [0, 2, 3, 1], "to": FLOAT16}, domain="ep_trtpy"),
     "from float16 to float16 is not supported"),
    ("internal cast transpose perm", lambda: _v("CastTranspose", [F4], [(FLOAT16, (1, 8, 8, 3))],
                                                attrs={"perm": [0, 2, 1], "to": FLOAT16}, domain="ep_trtpy"),
     "perm=[0, 2, 1] is not a permutation"),
    ("internal pointwise bad json", lambda: _v("Pointwise", [F], attrs={"program": "{"}, domain="ep_trtpy"),
     "ep_trtpy::Pointwise program is not valid JSON"),
    ("internal fused conv silu nhwc", lambda: _v("FusedConv", [(FLOAT16, (1, 8, 8, 3)), np.ones((4, 3, 3, 3),
                                                                                                np.float16)],
                                                  attrs={"activation": "Silu", "channels_last": 1},
                                                  domain="ep_trtpy"), None),
    ("internal fused conv act", lambda: _v("FusedConv", [F4, np.ones((4, 3, 1, 1), np.float32)],
                                           attrs={"activation": "Mish"}, domain="ep_trtpy"),
     "ep_trtpy::FusedConv activation='Mish' is not supported"),
    ("internal fused conv nhwc 3-d", lambda: _v("FusedConv", [(FLOAT, (1, 3, 4, 4, 4)),
                                                              np.ones((4, 3, 1, 1, 1), np.float32)],
                                                attrs={"channels_last": 1}, domain="ep_trtpy"),
     "channels_last=1 needs a 2-D window"),
    ("internal pool ok", lambda: _v("Pool", [(FLOAT16, (1, 8, 8, 3))], attrs={
        "mode": "average", "channels_last": 1, "kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, domain="ep_trtpy"),
     None),
    ("internal pool nchw", lambda: _v("Pool", [F4], attrs={"mode": "max", "kernel_shape": [3, 3]},
                                      domain="ep_trtpy"), "ep_trtpy::Pool channels_last=0 is not supported"),
    ("internal add_layernorm with sum ok", lambda: _v("AddLayerNorm", [F, F, (FLOAT, (3,))], [F, F],
                                                      domain="ep_trtpy"), None),
    ("internal add_layernorm broadcast", lambda: _v("AddLayerNorm", [F, (FLOAT, (1, 3)), (FLOAT, (3,))],
                                                    domain="ep_trtpy"),
     "ep_trtpy::AddLayerNorm inputs 'in0' [2, 3] and 'in1' [1, 3] differ in shape; the fused kernel does not "
     "broadcast"),
    ("internal add_layernorm axis", lambda: _v("AddLayerNorm", [F, F, (FLOAT, (3,))], attrs={"axis": 2},
                                               domain="ep_trtpy"),
     "ep_trtpy::AddLayerNorm axis=2 is out of range for a rank-2 input"),
    ("internal pool mode", lambda: _v("Pool", [F4], attrs={"mode": "lp", "channels_last": 1, "kernel_shape": [3, 3]},
                                      domain="ep_trtpy"), "ep_trtpy::Pool mode='lp' is not supported"),
]


@pytest.mark.parametrize("name,make,expected", CASES, ids=[c[0] for c in CASES])
def test_rule(name, make, expected):
    why = make()
    if expected is None:
        assert why is None, why
    else:
        assert why is not None and expected in why, why


def test_optional_output_with_consumers_is_refused_naming_the_reader():
    g, node = one_node("LayerNormalization", [F, (FLOAT, (3,))], [F, (FLOAT, (2, 1)), (FLOAT, (2, 1))])
    inv = node.outputs[2]
    g.outputs = [node.outputs[0]]
    g.add_node("Relu", [inv], 1, name="reader")
    assert verdict(g, node) == ("LayerNormalization output 2 (InvStdDev, 'out2') is read by 'reader'; only the "
                                "normalized output Y is supported")
    g.remove_node(g.node_by_name("reader"))
    assert verdict(g, node) is None


def test_since_version_decides_over_graph_opset():
    # a node whose schema is ReduceSum-11 inside a graph importing opset 18 (as ORT reports it) uses the attribute
    g, node = one_node("ReduceSum", [F], attrs={"axes": [0]}, opset=18, since_version=11)
    assert verdict(g, node) is None
