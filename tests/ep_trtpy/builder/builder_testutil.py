"""Helpers for pass tests: build small graphs, run passes, compare numbers before and after."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import graph_runner
from ep_trtpy.builder.pipeline import PassContext, run_pass
from ep_trtpy.options import Options
from graph_partitioner.ir import FLOAT, Graph, Value


class GB:
    """A tiny graph builder: values made by op() get their dtype/shape from infer_shapes."""

    def __init__(self, opset: int = 17, name: str = "t") -> None:
        self.g = Graph(name, {"": opset})

    def input(self, name: str, shape: Sequence[int], dtype: int = FLOAT) -> Value:
        v = self.g.add_value(name, dtype, tuple(shape), unique=False)
        self.g.inputs.append(v)
        return v

    def const(self, arr: Any, name: str = "c", dtype: Any = None) -> Value:
        a = np.asarray(arr, dtype=dtype if dtype is not None else (np.float32 if np.asarray(arr).dtype.kind == "f"
                                                                  else None))
        return self.g.add_value(name, const=a)

    def op(self, op_type: str, inputs: Sequence[Value | None], attrs: dict | None = None, n_out: int = 1,
           domain: str = "", name: str = "") -> Any:
        node = self.g.add_node(op_type, list(inputs), n_out, attrs=attrs, domain=domain,
                               name=name or self.g.fresh_node_name(op_type))
        return node.outputs[0] if n_out == 1 else node.outputs

    def output(self, *vals: Value) -> Graph:
        self.g.outputs.extend(vals)
        return self.g


def ctx_for(options: Options | None = None, **kw: Any) -> PassContext:
    return PassContext(options=options if options is not None else Options(), **kw)


def apply(graph: Graph, passes: Sequence[str], ctx: PassContext | None = None,
          shapes: dict[str, tuple[int, ...]] | None = None) -> PassContext:
    """infer_shapes then `passes`, in place."""
    ctx = ctx or PassContext()
    if shapes:
        ctx.input_shapes = dict(shapes)
    run_pass("infer_shapes", graph, ctx)
    for p in passes:
        run_pass(p, graph, ctx)
    return ctx


def feeds_for(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for v in graph.inputs:
        from graph_partitioner.ir import np_dtype

        dt = np_dtype(v.dtype)
        if dt.kind == "f":
            out[v.name] = rng.standard_normal(v.shape).astype(dt)
        elif dt.kind == "b":
            out[v.name] = rng.random(v.shape) > 0.5
        else:
            out[v.name] = rng.integers(-5, 5, v.shape).astype(dt)
    return out


def run(graph: Graph, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return graph_runner.run(graph, feeds)


def check_same(before: Graph, after: Graph, feeds: dict[str, np.ndarray], rtol: float = 1e-5,
               atol: float = 1e-5) -> None:
    """Outputs of both graphs agree (same count, dtypes and shapes, close values)."""
    a, b = run(before, feeds), run(after, feeds)
    assert len(a) == len(b)
    for k, (x, y) in enumerate(zip(a, b)):
        assert x.dtype == y.dtype, f"output {k}: dtype {x.dtype} vs {y.dtype}"
        assert x.shape == y.shape, f"output {k}: shape {x.shape} vs {y.shape}"
        np.testing.assert_allclose(y.astype(np.float64), x.astype(np.float64), rtol=rtol, atol=atol,
                                   err_msg=f"output {k}")


def ops(graph: Graph) -> list[str]:
    return [n.op_type for n in graph.nodes]
