"""Run and infer whole graphs with the op registry (the reference backend's core).

:func:`run_graph` executes ``graph.nodes`` in order with each op's numpy reference. Graph inputs come from
``feeds`` (by value name), constants from ``Value.const``; an intermediate array is dropped as soon as its last
consumer has run (graph outputs are kept), so peak memory follows the live set rather than the whole graph.
The returned arrays own their memory (an output that would be a view of a feed, a constant or another output is
copied).

:func:`infer_graph` fills ``Value.dtype`` and ``Value.shape`` (concrete) of every value from the graph inputs'
dtypes and the given input shapes, and returns the :class:`~ep_trtpy.ops.registry.Info` of every value, whose
``value`` is set where it follows from constants and shapes (see :func:`ep_trtpy.ops.registry.run_infer`); the
constant-folding pass uses those values. Both raise :class:`~ep_trtpy.ops.registry.OpError` naming the node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ep_trtpy.ops.registry import Info, OpError, run_infer, run_reference
from graph_partitioner.ir import Graph, Node, Value, dtype_name, elem_type, np_dtype, shape_str


def _where(node: Node) -> str:
    return f"{node.key} node '{node.name}'"


def _last_uses(graph: Graph) -> dict[int, int]:
    """id(Value) -> index of the last node reading it."""
    last: dict[int, int] = {}
    for k, node in enumerate(graph.nodes):
        for v in node.inputs:
            if v is not None:
                last[id(v)] = k
    return last


def run_graph(graph: Graph, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Evaluate `graph` on `feeds` (graph input name -> array); one array per graph output, in order.

    Feeds are checked against the graph inputs' dtypes (when known) and ranks/static dims (when known)."""
    env: dict[int, np.ndarray] = {}
    for v in graph.inputs:
        if v.name not in feeds:
            if v.const is not None:
                continue
            raise OpError(f"graph '{graph.name}': no feed for input '{v.name}'")
        arr = np.asarray(feeds[v.name])
        try:
            _check_feed(v, arr)
        except ValueError as e:
            if isinstance(e, OpError):
                raise
            raise OpError(f"feed for input '{v.name}' has the unsupported dtype {arr.dtype}") from None
        env[id(v)] = arr
    keep = {id(v) for v in graph.outputs}
    borrowed = {id(a) for a in env.values()} | {id(v.const) for v in graph.values.values() if v.const is not None}
    last = _last_uses(graph)
    for k, node in enumerate(graph.nodes):
        args: list[np.ndarray | None] = []
        for i, v in enumerate(node.inputs):
            if v is None:
                args.append(None)
            elif id(v) in env:
                args.append(env[id(v)])
            elif v.const is not None:
                args.append(v.const)
            else:
                raise OpError(f"{_where(node)}: input {i} ('{v.name}') has no value (not a graph input, constant "
                              "or output of an earlier node)")
        try:
            outs = run_reference(node, args)
        except OpError:
            raise
        except Exception as e:  # a numpy error inside a reference: name the node
            raise OpError(f"{_where(node)}: reference evaluation failed: {type(e).__name__}: {e}") from e
        if len(outs) < len(node.outputs):
            raise OpError(f"{_where(node)}: reference returned {len(outs)} outputs for {len(node.outputs)}")
        for v, a in zip(node.outputs, outs):
            env[id(v)] = np.asarray(a)
        for v in node.inputs:
            if v is not None and last.get(id(v)) == k and id(v) not in keep:
                env.pop(id(v), None)
        for v in node.outputs:  # outputs nobody reads
            if id(v) not in last and id(v) not in keep:
                env.pop(id(v), None)
    result = []
    for v in graph.outputs:
        if id(v) in env:
            a = env[id(v)]
        elif v.const is not None:
            a = v.const
        else:
            raise OpError(f"graph '{graph.name}': output '{v.name}' was not computed")
        # outputs own their memory: never a view of a constant, a feed or another output
        result.append(a if a.base is None and id(a) not in borrowed and a.flags.c_contiguous else np.array(a))
        borrowed.add(id(result[-1]))
    return result


def _check_feed(v: Value, arr: np.ndarray) -> None:
    if v.dtype is not None and elem_type(arr.dtype) != v.dtype:
        raise OpError(f"feed for input '{v.name}' is {arr.dtype}; the graph declares {dtype_name(v.dtype)}")
    if v.shape is not None:
        if len(v.shape) != arr.ndim or any(isinstance(d, int) and d != s for d, s in zip(v.shape, arr.shape)):
            raise OpError(f"feed for input '{v.name}' has shape {list(arr.shape)}; the graph declares "
                          f"{shape_str(v.shape)}")


def infer_graph(graph: Graph, input_shapes: Mapping[str, Sequence[int]] | None = None) -> dict[str, Info]:
    """Fill dtype and concrete shape of every value; returns name -> Info (with folded values where known).

    A graph input's shape comes from `input_shapes` (by name) or, if absent there, from its static
    ``Value.shape``; its dtype must be known."""
    input_shapes = dict(input_shapes or {})
    infos: dict[int, Info] = {}
    by_name: dict[str, Info] = {}
    for v in graph.inputs:
        if v.const is not None:
            continue
        if v.dtype is None:
            raise OpError(f"graph '{graph.name}': input '{v.name}' has no known dtype")
        if v.name in input_shapes:
            shape = tuple(int(d) for d in input_shapes[v.name])
            if v.shape is not None and (len(v.shape) != len(shape) or any(
                    isinstance(d, int) and d != s for d, s in zip(v.shape, shape))):
                raise OpError(f"graph '{graph.name}': shape {list(shape)} given for input '{v.name}' does not fit "
                              f"its declared shape {shape_str(v.shape)}")
        elif v.shape is not None and all(isinstance(d, int) for d in v.shape):
            shape = tuple(int(d) for d in v.shape)  # type: ignore[arg-type]
        else:
            raise OpError(f"graph '{graph.name}': no concrete shape for input '{v.name}' "
                          f"(declared {shape_str(v.shape)})")
        np_dtype(v.dtype)
        info = Info(v.dtype, shape)
        v.shape = shape
        infos[id(v)] = info
        by_name[v.name] = info
    unknown = set(input_shapes) - {v.name for v in graph.inputs}
    if unknown:
        raise OpError(f"graph '{graph.name}': input_shapes names {sorted(unknown)}, which are not graph inputs")

    def info_of(v: Value) -> Info:
        if id(v) in infos:
            return infos[id(v)]
        if v.const is not None:
            c = np.asarray(v.const)
            info = Info(elem_type(c.dtype), tuple(int(d) for d in c.shape), c)
            infos[id(v)] = info
            by_name[v.name] = info
            v.dtype, v.shape = info.dtype, info.shape
            return info
        raise KeyError(v.name)

    for node in graph.nodes:
        args: list[Info | None] = []
        for i, v in enumerate(node.inputs):
            if v is None:
                args.append(None)
                continue
            try:
                args.append(info_of(v))
            except KeyError:
                raise OpError(f"{_where(node)}: input {i} ('{v.name}') is not known (not a graph input, constant "
                              "or output of an earlier node)") from None
        try:
            outs = run_infer(node, args)
        except OpError:
            raise
        except Exception as e:
            raise OpError(f"{_where(node)}: shape inference failed: {type(e).__name__}: {e}") from e
        if len(outs) < len(node.outputs):
            raise OpError(f"{_where(node)}: inference gave {len(outs)} outputs for {len(node.outputs)}")
        for v, info in zip(node.outputs, outs):
            infos[id(v)] = info
            by_name[v.name] = info
            v.dtype, v.shape = info.dtype, tuple(info.shape)
    for v in graph.outputs:
        if id(v) not in infos:
            try:
                info_of(v)
            except KeyError:
                raise OpError(f"graph '{graph.name}': output '{v.name}' is never produced") from None
    return by_name
