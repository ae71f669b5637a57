"""GPU tests of the 64-bit index paths: tensors of more than 2^31 one-byte elements through the pointwise kernel
(vector path and broadcast path), the copy kernel (Expand) and the tiled transpose. Each needs about 8 GB of
device memory and a few seconds; references are computed with cupy on the device."""

from __future__ import annotations

import numpy as np
import pytest
from kernel_harness import HAVE_GPU

from ep_trtpy.builder.lowering import lower
from graph_partitioner.ir import BOOL, FLOAT16, UINT8, Graph, np_dtype

pytestmark = [pytest.mark.gpu, pytest.mark.slow,
              pytest.mark.skipif(not HAVE_GPU, reason="needs an NVIDIA GPU with a CUDA 13 driver and ~8 GB free")]

M = 715_827_883  # 3 * M = 2^31 + 1 elements


def _run(graph: Graph, inputs: list) -> list:  # noqa: ANN001
    import cupy as cp

    from ep_trtpy.runtime import build_engine

    plan, weights = lower(graph)
    engine = build_engine(plan, weights, 0)
    outs = []
    for k in range(plan.n_outputs):
        t = next(t for t in plan.tensors if t.kind == "output" and t.index == k)
        buf = cp.empty(tuple(t.shape), dtype=np_dtype(t.dtype))
        buf.reshape(-1).view(cp.uint8).fill(0xA5)
        outs.append(buf)
    cp.cuda.Device().synchronize()
    engine.run([int(x.data.ptr) for x in inputs], [int(y.data.ptr) for y in outs], 0)
    cp.cuda.Device().synchronize()
    return outs


def _graph(op: str, in_shapes: list[tuple[int, ...]], out_shape: tuple[int, ...], dtype: int, attrs: dict | None = None,
           consts: list | None = None) -> Graph:
    g = Graph(op, {"": 17})
    vals = []
    for k, s in enumerate(in_shapes):
        v = g.add_value(f"x{k}", dtype, s)
        g.inputs.append(v)
        vals.append(v)
    for c in consts or []:
        vals.append(g.add_constant(c))
    y = g.add_value("y", dtype, out_shape)
    g.add_node(op, vals, [y], attrs=attrs or {}, name=op.lower())
    g.outputs = [y]
    return g


def test_pointwise_vector_path_beyond_2g() -> None:
    """float compute on float16 data, same shape: the 4-wide vector path with 64-bit element indices."""
    import cupy as cp

    x = (cp.random.default_rng(0).random(size=(3 * M,), dtype=cp.float32) - 0.5).astype(cp.float16)
    (y,) = _run(_graph("Relu", [(3 * M,)], (3 * M,), FLOAT16), [x])
    assert bool(cp.all(y == cp.maximum(x, 0)))


def test_pointwise_int_path_beyond_2g() -> None:
    """int64 compute (bool data): the scalar path with 64-bit element indices."""
    import cupy as cp

    x = cp.random.default_rng(4).integers(0, 2, size=(3 * M,), dtype=cp.uint8).astype(cp.bool_)
    (y,) = _run(_graph("Not", [(3 * M,)], (3 * M,), BOOL), [x])
    assert bool(cp.all(y == ~x))


def test_pointwise_broadcast_path_beyond_2g() -> None:
    import cupy as cp

    rng = cp.random.default_rng(1)
    a = rng.integers(0, 2, size=(3, M), dtype=cp.uint8).astype(cp.bool_)
    b = rng.integers(0, 2, size=(1, M), dtype=cp.uint8).astype(cp.bool_)
    (y,) = _run(_graph("Xor", [(3, M), (1, M)], (3, M), BOOL), [a, b])
    assert bool(cp.all(y == (a ^ b)))


def test_copy_beyond_2g() -> None:
    import cupy as cp

    x = cp.random.default_rng(2).integers(0, 2, size=(1, M), dtype=cp.uint8).astype(cp.bool_)
    (y,) = _run(_graph("Expand", [(1, M)], (3, M), BOOL, consts=[np.array([3, M], np.int64)]), [x])
    assert bool(cp.all(y == cp.broadcast_to(x, (3, M))))


def test_transpose_beyond_2g() -> None:
    import cupy as cp

    x = cp.random.default_rng(3).integers(0, 255, size=(M, 3), dtype=cp.uint8)
    (y,) = _run(_graph("Transpose", [(M, 3)], (3, M), UINT8, attrs={"perm": [1, 0]}), [x])
    assert bool(cp.all(y == x.T))
