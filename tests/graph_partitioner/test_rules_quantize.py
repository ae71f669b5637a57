"""Support rules of the quantization family, and the partitioner's backend refusals (how the GPU leaves them to
ORT's CPU provider until its INT8 kernels exist)."""

from __future__ import annotations

import numpy as np
import pytest

from gp_helpers import one_node, verdict
from graph_partitioner.ir import FLOAT, FLOAT8E4M3FN, INT8, INT32, INT64, UINT8, Graph
from graph_partitioner.partition import partition
from graph_partitioner.support.rules_quantize import QUANTIZED

F = (FLOAT, (2, 3))
S = np.array(0.1, np.float32)


def _v(*args, **kw):
    return verdict(*one_node(*args, **kw))


CASES = [
    ("q int8 ok", lambda: _v("QuantizeLinear", [F, S, np.array(0, np.int8)], [(INT8, (2, 3))]), None),
    ("q uint8 without zero point ok", lambda: _v("QuantizeLinear", [F, S], [(UINT8, (2, 3))]), None),
    ("q per-axis ok", lambda: _v("QuantizeLinear", [F, np.full(3, 0.1, np.float32), np.zeros(3, np.int8)],
                                 [(INT8, (2, 3))], {"axis": 1}), None),
    ("q per-axis bad axis", lambda: _v("QuantizeLinear", [F, np.full(3, 0.1, np.float32)], [(UINT8, (2, 3))],
                                       {"axis": 2}), "QuantizeLinear axis=2 is out of range for a rank-2 input"),
    ("q runtime scale", lambda: _v("QuantizeLinear", [F, (FLOAT, ())], [(INT8, (2, 3))]),
     "QuantizeLinear scale input 'in1' must be a constant"),
    ("q zero scale", lambda: _v("QuantizeLinear", [F, np.array(0, np.float32)], [(INT8, (2, 3))]),
     "QuantizeLinear scale 'c1' holds a value that is not positive"),
    ("q blocked", lambda: _v("QuantizeLinear", [F, np.full((2, 1), 0.1, np.float32)], [(INT8, (2, 3))],
                             {"block_size": 3}), "block_size=3 (blocked quantization) is not supported"),
    ("q saturate 0", lambda: _v("QuantizeLinear", [F, S, np.array(0, np.int8)], [(INT8, (2, 3))], {"saturate": 0}),
     "saturate=0 is not supported"),
    ("q to int32", lambda: _v("QuantizeLinear", [F, S, np.array(0, np.int32)], [(INT32, (2, 3))]), "is int32"),
    ("dq int32 bias ok", lambda: _v("DequantizeLinear", [np.zeros(4, np.int32), np.full(4, 0.1, np.float32)],
                                    [(FLOAT, (4,))], {"axis": 0}), None),
    ("dq fp8 ok", lambda: _v("DequantizeLinear", [(FLOAT8E4M3FN, (2, 3)), S], [(FLOAT, (2, 3))]), None),
    ("dq int64", lambda: _v("DequantizeLinear", [(INT64, (2, 3)), S], [(FLOAT, (2, 3))]), "is int64"),
    ("qconv ok", lambda: _v("QConv", [(INT8, (1, 3, 4, 4)), np.zeros((2, 3, 1, 1), np.int8)],
                            [(FLOAT, (1, 2, 4, 4))], {"x_scale": 0.1, "w_scale": [0.1]}, domain="ep_trtpy"), None),
    ("qconv no scale", lambda: _v("QConv", [(INT8, (1, 3, 4, 4)), np.zeros((2, 3, 1, 1), np.int8)],
                                  [(FLOAT, (1, 2, 4, 4))], {"w_scale": [0.1]}, domain="ep_trtpy"),
     "ep_trtpy::QConv has no x_scale attribute"),
    ("qmatmul act", lambda: _v("QMatMul", [(INT8, (2, 3)), np.zeros((3, 4), np.int8)], [(INT8, (2, 4))],
                               {"a_scale": 0.1, "b_scale": [0.1], "y_scale": 0.2, "activation": "Tanh"},
                               domain="ep_trtpy"), "activation='Tanh'"),
]


@pytest.mark.parametrize("name,make,expected", CASES, ids=[c[0] for c in CASES])
def test_rule(name, make, expected):
    why = make()
    if expected is None:
        assert why is None, why
    else:
        assert why is not None and expected in why, why


def test_the_quantized_types_are_the_references():
    from ep_trtpy.quantize.numerics import QTYPES

    assert QUANTIZED == frozenset(QTYPES)


def _qdq_relu() -> Graph:
    g = Graph("t")
    x = g.add_value("x", FLOAT, (2, 3))
    g.inputs.append(x)
    s, z = g.add_constant(np.float32(0.1), "s"), g.add_constant(np.int8(0), "z")
    q = g.add_node("QuantizeLinear", [x, s, z], [g.add_value("q", INT8, (2, 3))], name="quant")
    d = g.add_node("DequantizeLinear", [q.outputs[0], s, z], [g.add_value("d", FLOAT, (2, 3))], name="dequant")
    r = g.add_node("Relu", [d.outputs[0]], [g.add_value("y", FLOAT, (2, 3))], name="relu")
    g.outputs.append(r.outputs[0])
    return g


def test_backend_refusals_leave_those_ops_to_the_cpu_with_the_reason():
    from ep_trtpy.builder.lowering.quantize import gpu_refusals

    g = _qdq_relu()
    assert [n.name for n in partition(g).claimed] == ["quant", "dequant", "relu"]
    result = partition(g, refused=gpu_refusals())
    assert [n.name for n in result.claimed] == ["relu"]
    assert result.reasons["quant"] == gpu_refusals()["QuantizeLinear"]
    assert "INT8/FP8 kernels are not implemented on the GPU yet" in result.reasons["dequant"]


def test_the_gpu_lowering_refuses_quantized_ops_with_the_reason():
    from ep_trtpy.builder.lowering import LoweringError, lower
    from ep_trtpy.builder.lowering.quantize import PENDING

    g = _qdq_relu()
    with pytest.raises(LoweringError, match="node 'quant': QuantizeLinear is left to the CPU provider on the GPU"):
        lower(g)
    assert set(PENDING) == {"QuantizeLinear", "DequantizeLinear", "ep_trtpy::QConv", "ep_trtpy::QMatMul"}
