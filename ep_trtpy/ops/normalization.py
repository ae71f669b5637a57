"""Normalizations and softmax: LayerNormalization, Softmax, LogSoftmax, BatchNormalization (inference).

All of them compute in float32 for float16/float32 data (float64 stays float64) and round once to the output type.

LayerNormalization (opset 17), normalized axes ``axis .. rank-1`` (``axis`` default -1)::

    mean = E[x],  inv = 1 / sqrt(E[(x - mean)^2] + epsilon),  Y = (x - mean) * inv * Scale + B

Scale and B (optional) broadcast unidirectionally to ``x.shape[axis:]``. The optional outputs Mean and InvStdDev
have shape ``x.shape[:axis] + [1] * (rank - axis)`` and the stash type (``stash_type``, default 1 = float32).

Softmax / LogSoftmax: opset >= 13 normalizes along one ``axis`` (default -1); opset < 13 coerces the input to 2-D
``[prod(shape[:axis]), prod(shape[axis:])]`` (``axis`` default 1) and normalizes each row::

    Softmax(x) = exp(x - m) / sum exp(x - m),   LogSoftmax(x) = x - m - log(sum exp(x - m)),   m = max x

NaN and infinities (README's "Numerics at the edges", shared with the GPU kernels): a row whose maximum is not
finite is all NaN, that is a row holding a NaN or a +inf (as ONNX Runtime's CPU provider and PyTorch give) and a
row of -inf only (as both give too); a -inf entry of any other row gives 0 (LogSoftmax: -inf). LayerNormalization
has no special case: a NaN or an infinity in a normalized row makes the whole row NaN (its mean is not finite).

BatchNormalization in inference (``training_mode`` 0, one output)::

    Y = (X - mean) / sqrt(var + epsilon) * scale + B     (parameters along axis 1; before opset 9 with spatial=0
                                                          they cover [C, D1, ...])
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.ops._common import fail, in_name, need_float, norm_axis, numel, opset, unidirectional
from ep_trtpy.ops.registry import Info, infer, reference
from graph_partitioner.ir import FLOAT, Node, dtype_name, np_dtype


def _f32(x: np.ndarray) -> np.ndarray:
    """The float compute copy: float32 unless x is float64."""
    return x if x.dtype == np.float64 else x.astype(np.float32)


# ------------------------------------------------------------------------------------ LayerNormalization --

def _ln_axis(node: Node, rank: int) -> int:
    return norm_axis(node, int(node.attr("axis", -1)), rank)


def _stash(node: Node) -> int:
    return int(node.attr("stash_type", FLOAT))


@reference("LayerNormalization")
def layer_norm_ref(node: Node, x: np.ndarray, scale: np.ndarray, bias: np.ndarray | None = None
                   ) -> tuple[np.ndarray, ...]:
    axis = _ln_axis(node, x.ndim)
    eps = float(node.attr("epsilon", 1e-5))
    st = np_dtype(_stash(node))
    axes = tuple(range(axis, x.ndim))
    xs = x.astype(st)
    n = numel(x.shape[axis:])
    if n == 0:
        mean = np.zeros(x.shape[:axis] + (1,) * len(axes), st)
        inv = np.full(mean.shape, 1.0 / np.sqrt(eps), st)
    else:
        mean = np.mean(xs, axis=axes, keepdims=True, dtype=st)
        with np.errstate(invalid="ignore"):  # an infinity in the row: inf - inf, a NaN row
            d = xs - mean
            var = np.mean(d * d, axis=axes, keepdims=True, dtype=st)
        inv = (st.type(1) / np.sqrt(var + st.type(eps))).astype(st)
    with np.errstate(invalid="ignore"):
        y = (xs - mean) * inv * scale.astype(st)
    if bias is not None:
        y = y + bias.astype(st)
    outs = (y.astype(x.dtype), mean, inv)
    return outs[:max(1, len(node.outputs))]


@infer("LayerNormalization")
def layer_norm_infer(node: Node, x: Info, scale: Info, bias: Info | None = None) -> list[Info]:
    need_float(node, x)
    axis = _ln_axis(node, len(x.shape))
    norm_shape = x.shape[axis:]
    if scale is None:
        raise fail(node, "LayerNormalization needs a Scale input")
    unidirectional(node, norm_shape, scale.shape, f"Scale {in_name(node, 1)}")
    if bias is not None:
        unidirectional(node, norm_shape, bias.shape, f"B {in_name(node, 2)}")
    st = _stash(node)
    try:
        np_dtype(st)
    except ValueError:
        raise fail(node, f"stash_type={st} ({dtype_name(st)}) is not supported") from None
    stat_shape = x.shape[:axis] + (1,) * len(norm_shape)
    outs = [Info(x.dtype, x.shape), Info(st, stat_shape), Info(st, stat_shape)]
    return outs[:max(1, len(node.outputs))]


# ---------------------------------------------------------------------------------- Softmax, LogSoftmax --

def _softmax_axis(node: Node, rank: int) -> int:
    default = 1 if opset(node) < 13 else -1
    return norm_axis(node, int(node.attr("axis", default)), max(rank, 1))


def softmax(x: np.ndarray, axis: int, log: bool) -> np.ndarray:
    """Softmax (or LogSoftmax) of float x along one axis, stable (max subtracted); a row whose maximum is NaN,
    +inf or -inf (all -inf) is all NaN: x - m is NaN at the maximum, and the NaN reaches the sum."""
    if x.size == 0:
        return x.copy()
    m = np.max(x, axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = x - m
        e = np.exp(z)
        s = np.sum(e, axis=axis, keepdims=True)
        return z - np.log(s) if log else e / s


@reference("Softmax", "LogSoftmax")
def softmax_ref(node: Node, x: np.ndarray) -> np.ndarray:
    axis = _softmax_axis(node, x.ndim)
    xf = _f32(x)
    log = node.op_type == "LogSoftmax"
    if x.size == 0:
        return x.copy()
    if x.ndim == 0:
        y = softmax(xf.reshape(1), 0, log).reshape(())
    elif opset(node) < 13:
        y = softmax(xf.reshape(numel(x.shape[:axis]), -1), 1, log).reshape(x.shape)
    else:
        y = softmax(xf, axis, log)
    return y.astype(x.dtype)


@infer("Softmax", "LogSoftmax")
def softmax_infer(node: Node, x: Info) -> Info:
    need_float(node, x)
    _softmax_axis(node, len(x.shape))
    return Info(x.dtype, x.shape)


# ---------------------------------------------------------------------------------- BatchNormalization --

def _bn_check(node: Node) -> None:
    if int(node.attr("training_mode", 0)):
        raise fail(node, "training_mode=1 is not supported (inference only)")
    if opset(node) < 7 and not int(node.attr("is_test", 0)):
        raise fail(node, "is_test=0 (training) is not supported (inference only)")
    if len(node.outputs) > 1:
        raise fail(node, f"has {len(node.outputs)} outputs; only inference (one output) is supported")


def _bn_param_shape(node: Node, x_rank: int, p_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape that broadcasts a parameter against X: [C] -> [C, 1, ...]; [C, D1, ...] (spatial=0) kept."""
    if x_rank < 2:
        return p_shape
    return tuple(p_shape) + (1,) * (x_rank - 1 - len(p_shape))


@reference("BatchNormalization")
def batch_norm_ref(node: Node, x: np.ndarray, scale: np.ndarray, b: np.ndarray, mean: np.ndarray,
                   var: np.ndarray) -> np.ndarray:
    _bn_check(node)
    eps = float(node.attr("epsilon", 1e-5))
    xf = _f32(x)
    ct = xf.dtype.type

    def p(a: np.ndarray) -> np.ndarray:
        return a.astype(ct).reshape(_bn_param_shape(node, x.ndim, a.shape))

    inv = ct(1) / np.sqrt(p(var) + ct(eps))
    y = (xf - p(mean)) * (inv * p(scale)) + p(b)
    return y.astype(x.dtype)


@infer("BatchNormalization")
def batch_norm_infer(node: Node, x: Info, scale: Info, b: Info, mean: Info, var: Info) -> Info:
    _bn_check(node)
    need_float(node, x)
    if len(x.shape) < 2:
        raise fail(node, f"{in_name(node, 0)} has rank {len(x.shape)}; BatchNormalization needs rank >= 2")
    for i, p in enumerate((scale, b, mean, var), start=1):
        if p is None:
            raise fail(node, f"{in_name(node, i)} is absent")
        want = (x.shape[1],) if len(p.shape) <= 1 else tuple(x.shape[1:1 + len(p.shape)])
        if tuple(p.shape) != want and not (len(p.shape) == 1 and p.shape[0] == x.shape[1]):
            raise fail(node, f"{in_name(node, i)} has shape {list(p.shape)} but X has {x.shape[1]} channels")
    return Info(x.dtype, x.shape)

