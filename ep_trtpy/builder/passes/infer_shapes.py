"""infer_shapes: bind the concrete input shapes and give every value a static dtype and shape.

Math: engines are built per concrete input shape, so for graph inputs x_k with given shapes s_k, every value is a
function of (s_0, ..., s_{n-1}) and the constants. Walking the nodes in topological order, each node's registered
inference (ep_trtpy.ops.registry) maps the Infos of its inputs (dtype, shape, and the value when it is known) to
the Infos of its outputs.

Match: every node. A node all of whose outputs come back with a ``value`` (``Shape``, ``Size``, shape arithmetic
over them, ``Constant``) is replaced by constants, as long as the values are no larger than ``ctx.fold_limit``
elements (a huge ConstantOfShape stays a node), except QuantizeLinear and DequantizeLinear, which fold_qdq reads
next (the folding of the rest is fold_constants').

Refusal: a bound shape that contradicts a static dimension of the model, a graph input without a static shape and
without a bound one, or an inferred dtype/shape that contradicts what the model declared all raise ValueError
naming the value (building on a wrong shape would give wrong answers).

Rewrite: sets ``Value.dtype``/``Value.shape`` in place, turns fully known outputs into constants.
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.builder.passes._patterns import as_dtype, contiguous
from ep_trtpy.builder.pipeline import PassContext
from graph_partitioner.ir import Graph, Node, Value, dtype_name, is_static, shape_str

NAME = "infer_shapes"

QUANTIZATION = frozenset({"QuantizeLinear", "DequantizeLinear"})
"""Never folded here, even of constants: fold_qdq reads a QDQ model's quantized weights and scales from them."""


class ShapeError(ValueError):
    """The bound input shapes do not fit the graph (the message names the value)."""


def _bind_inputs(graph: Graph, ctx: PassContext) -> bool:
    changed = False
    known = {v.name for v in graph.inputs}
    for name in ctx.input_shapes:
        if name not in known:
            raise ShapeError(f"a shape was given for '{name}', which is not an input of graph '{graph.name}' "
                             f"(inputs: {', '.join(sorted(known)) or 'none'})")
    for v in graph.inputs:
        given = ctx.input_shapes.get(v.name)
        if given is None:
            if not is_static(v.shape):
                raise ShapeError(f"graph input '{v.name}' has the dynamic shape {shape_str(v.shape)} and no concrete "
                                 f"shape was given for it")
            continue
        given = tuple(int(d) for d in given)
        if any(d < 0 for d in given):
            raise ShapeError(f"shape {list(given)} given for input '{v.name}' has a negative dimension")
        if v.shape is not None:
            if len(v.shape) != len(given):
                raise ShapeError(f"input '{v.name}' has rank {len(v.shape)} ({shape_str(v.shape)}) but the shape "
                                 f"{list(given)} was given")
            for k, (d, g) in enumerate(zip(v.shape, given)):
                if isinstance(d, int) and d >= 0 and d != g:
                    raise ShapeError(f"input '{v.name}' has static dimension {k} = {d} but the shape {list(given)} "
                                     f"was given")
        if v.shape != given:
            v.shape = given
            changed = True
    return changed


def _info(v: Value | None):  # -> Info | None
    from ep_trtpy.ops.registry import Info

    if v is None:
        return None
    if v.dtype is None or not is_static(v.shape):
        raise ShapeError(f"value '{v.name}' has no known dtype and static shape ({v!r}) when it is used")
    return Info(int(v.dtype), tuple(v.shape), v.const)  # type: ignore[arg-type]


def _check_and_set(node: Node, v: Value, dtype: int, shape: tuple[int, ...]) -> bool:
    if v.dtype not in (None, 0) and v.dtype != dtype:
        raise ShapeError(f"node '{node.name}' ({node.key}): output '{v.name}' is declared {dtype_name(v.dtype)} but "
                         f"infers to {dtype_name(dtype)}")
    if v.shape is not None:
        if len(v.shape) != len(shape) or any(isinstance(d, int) and d >= 0 and d != s for d, s in zip(v.shape, shape)):
            raise ShapeError(f"node '{node.name}' ({node.key}): output '{v.name}' is declared {shape_str(v.shape)} but "
                             f"infers to {shape_str(shape)} for these input shapes")
    changed = v.dtype != dtype or v.shape != shape
    v.dtype, v.shape = dtype, shape
    return changed


def run(graph: Graph, ctx: PassContext) -> bool:
    from ep_trtpy.ops.registry import OpError, run_infer

    changed = _bind_inputs(graph, ctx)
    for node in list(graph.nodes):
        infos = [_info(v) for v in node.inputs]
        try:
            outs = run_infer(node, infos)
        except OpError as e:
            raise ShapeError(f"node '{node.name}' ({node.key}): {e}") from None
        if len(outs) < len(node.outputs):
            raise ShapeError(f"node '{node.name}' ({node.key}): inference gave {len(outs)} outputs for "
                             f"{len(node.outputs)}")
        for v, info in zip(node.outputs, outs):
            changed |= _check_and_set(node, v, int(info.dtype), tuple(int(d) for d in info.shape))
        values = [info.value for info in outs[:len(node.outputs)]]
        if node.outputs and all(x is not None for x in values) and node.key not in QUANTIZATION and \
                all(np.asarray(x).size <= ctx.fold_limit for x in values):
            graph.remove_node(node)
            for v, x in zip(node.outputs, values):
                arr = np.asarray(x)
                v.const = contiguous(as_dtype(arr, v.dtype).reshape(v.shape))
            changed = True
    return changed
