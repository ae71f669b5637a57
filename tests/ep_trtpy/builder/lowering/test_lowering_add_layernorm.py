"""ep_trtpy::AddLayerNorm lowered onto the ``layernorm`` kernel's residual form (inputs [X, scale, bias | -1, R],
outputs [Y] or [Y, S]), checked for its layout and run by the kernel emulator against the op's numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
from kernel_emulator import execute

from ep_trtpy.builder.lowering import LoweringError, lower
from ep_trtpy.ops.registry import run_reference
from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT16, Graph, np_dtype


def add_layernorm_graph(dtype: int, shape: tuple[int, ...], axis: int, bias: bool, with_sum: bool,
                        r_shape: tuple[int, ...] | None = None) -> Graph:
    g = Graph("aln", {"": 17})
    x, r = g.add_value("x", dtype, shape), g.add_value("r", dtype, r_shape or shape)
    g.inputs += [x, r]
    rng = np.random.default_rng(4)
    norm = shape[axis:]
    params = [g.add_constant(rng.uniform(0.5, 1.5, norm).astype(np_dtype(dtype)), "scale")]
    if bias:
        params.append(g.add_constant(rng.standard_normal(norm).astype(np_dtype(dtype)), "bias"))
    outs = [g.add_value("y", dtype, shape)] + ([g.add_value("s", dtype, shape)] if with_sum else [])
    g.add_node("AddLayerNorm", [x, r, *params], outs, attrs={"axis": axis, "epsilon": 1e-5}, name="aln",
               domain="ep_trtpy")
    g.outputs = list(outs)
    return g


@pytest.mark.parametrize("dtype", [FLOAT, FLOAT16, BFLOAT16])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("with_sum", [False, True])
def test_add_layernorm_runs_the_residual_layernorm(dtype: int, bias: bool, with_sum: bool) -> None:
    g = add_layernorm_graph(dtype, (2, 3, 16), -1, bias, with_sum)
    plan, weights = lower(g)
    (lay,) = plan.layers
    assert lay.kernel == "layernorm" and lay.ints == [6, 16] and lay.floats == [pytest.approx(1e-5)]
    assert len(lay.inputs) == 4 and (lay.inputs[2] == -1) == (not bias)
    assert [plan.tensors[t].kind for t in (lay.inputs[0], lay.inputs[3])] == ["input", "input"]
    assert len(lay.outputs) == 1 + with_sum
    rng = np.random.default_rng(5)
    feeds = [(rng.standard_normal((2, 3, 16)) * 3).astype(np_dtype(dtype)) for _ in range(2)]
    got = execute(plan, weights, feeds)
    node = g.nodes[0]
    want = run_reference(node, feeds + [v.const for v in node.inputs[2:]])
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a.astype(np.float32), b.astype(np.float32), rtol=1e-5, atol=1e-5)


def test_two_normalized_axes_read_as_rows_of_their_product() -> None:
    g = add_layernorm_graph(FLOAT, (4, 3, 5), 1, True, False)
    (lay,) = lower(g)[0].layers
    assert lay.ints == [4, 15]


def test_residual_of_another_shape_is_refused() -> None:
    g = add_layernorm_graph(FLOAT, (2, 8), -1, True, False, r_shape=(1, 8))
    with pytest.raises(LoweringError, match=r"'aln'.*residual 'r' must have the shape and dtype of 'x' \[2, 8\]"):
        lower(g)
