"""The ``gemm`` math flag (ints[12]) end to end on the kernel emulator: float32 with tf32_enable (the default) reads
its operands as TF32 (10 mantissa bits), tf32_enable=0 keeps strict float32; a transposed operand (transA / transB,
as fold_transposes makes them) reads the same numbers."""

from __future__ import annotations

import numpy as np
import pytest
from kernel_emulator import _tf32, execute

from ep_trtpy.builder.lowering import lower
from ep_trtpy.options import Options
from graph_partitioner.ir import FLOAT, Graph


def matmul_graph(trans_a: int, trans_b: int) -> Graph:
    g = Graph("mm", {"": 17})
    a = g.add_value("a", FLOAT, (3, 64, 32) if trans_a else (3, 32, 64))
    b = g.add_value("b", FLOAT, (3, 16, 64) if trans_b else (3, 64, 16))
    y = g.add_value("y", FLOAT, (3, 32, 16))
    g.inputs += [a, b]
    g.add_node("FusedMatMul", [a, b], [y], {"transA": trans_a, "transB": trans_b, "alpha": 1.0, "activation": ""},
               name="mm", domain="ep_trtpy")
    g.outputs = [y]
    return g


@pytest.mark.parametrize("trans_a, trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("tf32", [True, False])
def test_gemm_reads_float32_as_tf32_only_when_allowed(trans_a: int, trans_b: int, tf32: bool) -> None:
    g = matmul_graph(trans_a, trans_b)
    rng = np.random.default_rng(7)
    a = rng.standard_normal(g.inputs[0].shape).astype(np.float32)
    b = rng.standard_normal(g.inputs[1].shape).astype(np.float32)
    plan, weights = lower(g, Options(tf32_enable=tf32))
    (lay,) = plan.layers
    assert lay.ints[4:6] == [trans_a, trans_b] and lay.ints[12] == int(tf32)
    (got,) = execute(plan, weights, [a, b])

    def product(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x, y = x.astype(np.float64), y.astype(np.float64)
        return (x.swapaxes(-1, -2) if trans_a else x) @ (y.swapaxes(-1, -2) if trans_b else y)

    strict, rounded = product(a, b), product(_tf32(a), _tf32(b))
    np.testing.assert_allclose(got, rounded if tf32 else strict, rtol=1e-6, atol=1e-5)
    assert (np.abs(got - strict).max() > 1e-3) == tf32  # TF32's 2^-11 relative rounding shows at K = 64
