"""fold_constants: evaluate at build time every node whose inputs are all constants.

Math: for a node f whose every present input is a constant c_i, f(c_0, ..., c_n) is the same on every run, so the
node's outputs can be replaced by the arrays its numpy reference (ep_trtpy.ops.registry) returns.

Match: a node of a known op with a numpy reference, all present inputs constant, not nondeterministic
(Random*, Multinomial, Bernoulli).

Refusal (the node stays): an output larger than ``ctx.fold_limit`` elements that is also larger than the
constants it is computed from (ConstantOfShape, Expand, Tile and friends would turn a few bytes into megabytes of
weights; a Transpose or Cast of a big weight folds, since it costs no extra memory); a reference that fails
(the reason is logged, the node is left for the engine to compute).

Rewrite: the outputs become constants (converted to their inferred dtype, checked against the inferred shape),
the node is removed.
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.builder.passes._patterns import as_dtype, contiguous
from ep_trtpy.builder.pipeline import PassContext
from ep_trtpy.builder.weight_reuse import operand
from graph_partitioner.ir import Graph, Node, elem_type, shape_str

NAME = "fold_constants"

NONDETERMINISTIC = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                              "Multinomial", "Bernoulli"})


def _elements(shape) -> int | None:
    if shape is None or not all(isinstance(d, int) for d in shape):
        return None
    return int(np.prod(shape, dtype=np.int64))


def _foldable(node: Node, ctx: PassContext) -> bool:
    if node.op_type in NONDETERMINISTIC or not node.outputs:
        return False
    if any(v is not None and v.const is None for v in node.inputs):
        return False
    in_elems = sum(int(v.const.size) for v in node.inputs if v is not None and v.const is not None)
    for v in node.outputs:
        n = _elements(v.shape)
        if n is None:
            continue
        if n > ctx.fold_limit and n > in_elems:
            ctx.refuse(f"'{v.name}' ({node.key} '{node.name}') is not folded: {n} elements exceed the fold limit "
                       f"of {ctx.fold_limit} and the {in_elems} elements it is computed from")
            return False
    return True


class _Mismatch(ValueError):
    """A reference disagrees with shape inference (a bug to surface, not a node to leave unfolded)."""


def _evaluate(node: Node, consts: list) -> tuple[np.ndarray, ...]:
    """The node's outputs from its numpy reference, in their inferred dtypes, checked against inferred shapes."""
    from ep_trtpy.ops.registry import run_reference

    outs = run_reference(node, consts)
    if len(outs) < len(node.outputs):
        raise _Mismatch(f"fold_constants: the reference of {node.key} returned {len(outs)} arrays for node "
                         f"'{node.name}' with {len(node.outputs)} outputs")
    arrays = []
    for v, arr in zip(node.outputs, outs):
        arr = np.asarray(as_dtype(np.asarray(arr), v.dtype))
        if v.shape is not None and all(isinstance(d, int) for d in v.shape) and tuple(arr.shape) != v.shape:
            raise _Mismatch(f"fold_constants: node '{node.name}' ({node.key}) computed '{v.name}' with shape "
                             f"{list(arr.shape)} but inference says {shape_str(v.shape)}")
        arrays.append(contiguous(arr))
    return tuple(arrays)


def run(graph: Graph, ctx: PassContext) -> bool:
    from ep_trtpy.ops.registry import OpError, all_ops

    known = all_ops()
    changed = False
    for node in list(graph.nodes):
        d = known.get(node.key)
        if d is None or d.ref is None or not _foldable(node, ctx):
            continue
        consts = [None if v is None else v.const for v in node.inputs]
        key = ("fold", node.key, node.attrs, tuple(None if c is None else operand(c) for c in consts),
               tuple((v.dtype, v.shape) for v in node.outputs))
        try:
            arrays = ctx.derived(key, lambda: _evaluate(node, consts))
        except _Mismatch:
            raise
        except (OpError, ValueError, TypeError, IndexError, ZeroDivisionError, FloatingPointError) as e:
            ctx.refuse(f"node '{node.name}' ({node.key}) has constant inputs but its reference failed: {e}")
            continue
        graph.remove_node(node)
        for v, arr in zip(node.outputs, arrays):
            v.const = arr
            v.shape = tuple(int(d) for d in arr.shape)
            if v.dtype is None:
                v.dtype = elem_type(arr.dtype)
        changed = True
    return changed
