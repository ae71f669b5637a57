"""Internal ops made by the builder's passes (domain ``ep_trtpy``): Pointwise, FusedConv, FusedMatMul.

``ep_trtpy::Pointwise``: see :mod:`ep_trtpy.ops.pointwise_program` (the attribute ``program`` is its JSON).

``ep_trtpy::FusedConv`` inputs (X, W, B?, Z?), attributes kernel_shape, strides, pads (explicit, begin..end),
dilations, group, activation ("" | "Relu")::

    Y = act(conv(X, W) + B + Z)            Z has Y's shape; B is [M]

``ep_trtpy::FusedMatMul`` inputs (A, B, bias?), attributes transA, transB (transpose the last two axes of a
rank >= 2 operand), alpha, activation ("" | "Relu" | "Gelu" | "GeluTanh")::

    Y = act(alpha * op(A) @ op(B) + bias)  numpy matmul broadcasting of batch axes; bias [N] over rows

Both compute in float32 for float16/float32 data and round once at the end (the GPU epilogues do the same), so
they may differ from their unfused decomposition by the intermediate float16 roundings only.
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.ops import pointwise_program
from ep_trtpy.ops._common import broadcast, fail, in_name, need_float, same_dtype, unidirectional
from ep_trtpy.ops.linalg import _cfloat, conv2, conv_plan, matmul_shape
from ep_trtpy.ops.pointwise_program import IO_DTYPES, Program
from ep_trtpy.ops.registry import Info, infer, reference
from graph_partitioner.ir import Node, dtype_name

DOMAIN = "ep_trtpy"
CONV_ACTIVATIONS = ("", "Relu")
MATMUL_ACTIVATIONS = ("", "Relu", "Gelu", "GeluTanh")


# -------------------------------------------------------------------------------------------- Pointwise --

def _program(node: Node, n_inputs: int) -> Program:
    text = node.attr("program")
    if not isinstance(text, str):
        raise fail(node, "has no 'program' attribute")
    try:
        prog = Program.from_json(text, n_inputs)
    except (ValueError, KeyError, TypeError) as e:
        raise fail(node, f"bad program: {e}") from None
    if len(prog.outputs) != len(node.outputs) and node.outputs:
        raise fail(node, f"the program has {len(prog.outputs)} outputs but the node has {len(node.outputs)}")
    return prog


@reference(f"{DOMAIN}::Pointwise")
def pointwise_ref(node: Node, *xs: np.ndarray) -> list[np.ndarray]:
    return pointwise_program.run(_program(node, len(xs)), list(xs))


@infer(f"{DOMAIN}::Pointwise")
def pointwise_infer(node: Node, *xs: Info) -> list[Info]:
    if any(x is None for x in xs):
        raise fail(node, "has an absent input")
    for i, x in enumerate(xs):
        if x.dtype not in IO_DTYPES:
            raise fail(node, f"{in_name(node, i)} is {dtype_name(x.dtype)}, which Pointwise does not take")
    prog = _program(node, len(xs))
    shape = broadcast(node, *[x.shape for x in xs])
    return [Info(t, shape) for _, t in prog.outputs]


# -------------------------------------------------------------------------------------------- FusedConv --

def _activation(node: Node, allowed: tuple[str, ...]) -> str:
    act = str(node.attr("activation", ""))
    if act not in allowed:
        raise fail(node, f"activation={act!r} is not one of {allowed}")
    return act


def apply_activation(y: np.ndarray, act: str) -> np.ndarray:
    """The epilogue activation in the compute type (Gelu: 0.5x(1+erf(x/sqrt2)); GeluTanh: the tanh form)."""
    if act == "":
        return y
    if act == "Relu":
        return np.maximum(y, y.dtype.type(0))
    ct = y.dtype.type
    if act == "Gelu":
        return (ct(0.5) * y * (ct(1) + pointwise_program.erf(y / ct(np.sqrt(2.0))).astype(y.dtype))).astype(y.dtype)
    if act == "GeluTanh":
        c = ct(np.sqrt(2.0 / np.pi))
        return (ct(0.5) * y * (ct(1) + np.tanh(c * (y + ct(0.044715) * y * y * y)))).astype(y.dtype)
    raise AssertionError(act)


@reference(f"{DOMAIN}::FusedConv")
def fused_conv_ref(node: Node, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                   z: np.ndarray | None = None) -> np.ndarray:
    act = _activation(node, CONV_ACTIVATIONS)
    kernel, strides, dils, begin, end, out, group = conv_plan(node, x.shape, w.shape)
    ct = _cfloat(x, w, b, z)
    y = conv2(x.astype(ct, copy=False), w.astype(ct, copy=False), kernel, strides, dils, begin, end, out, group)
    if b is not None:
        y = y + b.astype(ct).reshape((1, -1) + (1,) * len(kernel))
    if z is not None:
        y = y + z.astype(ct)
    return apply_activation(y, act).astype(x.dtype)


@infer(f"{DOMAIN}::FusedConv")
def fused_conv_infer(node: Node, x: Info, w: Info, b: Info | None = None, z: Info | None = None) -> Info:
    _activation(node, CONV_ACTIVATIONS)
    need_float(node, x)
    same_dtype(node, [x, w, b, z])
    *_, out, group = conv_plan(node, x.shape, w.shape)
    shape = (x.shape[0], w.shape[0], *out)
    if b is not None and tuple(b.shape) != (w.shape[0],):
        raise fail(node, f"B {in_name(node, 2)} has shape {list(b.shape)}; [{w.shape[0]}] expected")
    if z is not None and tuple(z.shape) != shape:
        raise fail(node, f"Z {in_name(node, 3)} has shape {list(z.shape)}; Y's shape {list(shape)} expected")
    return Info(x.dtype, shape)


# ------------------------------------------------------------------------------------------ FusedMatMul --

def _op(x: np.ndarray, trans: bool) -> np.ndarray:
    return np.swapaxes(x, -1, -2) if trans and x.ndim >= 2 else x


def _op_shape(shape: tuple[int, ...], trans: bool) -> tuple[int, ...]:
    return shape[:-2] + (shape[-1], shape[-2]) if trans and len(shape) >= 2 else shape


@reference(f"{DOMAIN}::FusedMatMul")
def fused_matmul_ref(node: Node, a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    act = _activation(node, MATMUL_ACTIVATIONS)
    ta, tb = bool(int(node.attr("transA", 0))), bool(int(node.attr("transB", 0)))
    matmul_shape(node, _op_shape(a.shape, ta), _op_shape(b.shape, tb))
    ct = _cfloat(a, b, bias)
    y = np.matmul(_op(a.astype(ct, copy=False), ta), _op(b.astype(ct, copy=False), tb))
    alpha = float(node.attr("alpha", 1.0))
    if alpha != 1.0:
        y = y * ct(alpha)
    if bias is not None:
        y = y + bias.astype(ct)
    return np.asarray(apply_activation(np.asarray(y), act)).astype(a.dtype)


@infer(f"{DOMAIN}::FusedMatMul")
def fused_matmul_infer(node: Node, a: Info, b: Info, bias: Info | None = None) -> Info:
    _activation(node, MATMUL_ACTIVATIONS)
    need_float(node, a)
    same_dtype(node, [a, b, bias])
    ta, tb = bool(int(node.attr("transA", 0))), bool(int(node.attr("transB", 0)))
    shape = matmul_shape(node, _op_shape(a.shape, ta), _op_shape(b.shape, tb))
    if bias is not None:
        unidirectional(node, shape, bias.shape, f"bias {in_name(node, 2)}")
    return Info(a.dtype, shape)
