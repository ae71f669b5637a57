"""Internal ops made by the builder's passes (domain ``ep_trtpy``): Pointwise, FusedConv, FusedMatMul, Pool,
AddLayerNorm, CastTranspose.

``ep_trtpy::Pointwise``: see :mod:`ep_trtpy.ops.pointwise_program` (the attribute ``program`` is its JSON).

``ep_trtpy::FusedConv`` inputs (X, W, B?, Z?), attributes kernel_shape, strides, pads (explicit, begin..end),
dilations, group, activation (one of :data:`CONV_ACTIVATIONS`), act_alpha, act_beta, channels_last (0 | 1),
residual_position (one of :data:`RESIDUAL_POSITIONS`, default "pre_act"; where Z is added)::

    Y = act(conv(X, W) + B + Z)            residual_position "pre_act"; Z has Y's shape; B is [M]
    Y = act(conv(X, W) + B) + Z            residual_position "post_act" (a CSP / YOLO bottleneck's shortcut)

    activation   act(y)                               activation   act(y)
    ""           y                                    "Silu"       y * sigmoid(y)
    "Relu"       max(y, 0)                            "LeakyRelu"  y if y >= 0 else act_alpha * y
    "Clip"       min(max(y, act_alpha), act_beta)     "HardSwish"  y * min(max(y + 3, 0), 6) / 6
    "Sigmoid"    1 / (1 + exp(-y))                    "Tanh"       tanh(y)

With channels_last=1 (2-D only) X, Z and Y are NHWC ([N, H, W, C]) and W is KRSC ([M, R, S, C/group]); the
numbers are those of the NCHW op on the transposed tensors.

``ep_trtpy::FusedMatMul`` inputs (A, B, bias?), attributes transA, transB (transpose the last two axes of a
rank >= 2 operand), alpha, activation ("" | "Relu" | "Gelu" | "GeluTanh")::

    Y = act(alpha * op(A) @ op(B) + bias)  numpy matmul broadcasting of batch axes; bias [N] over rows

``ep_trtpy::Pool`` input X [N, H, W, C] (channels-last), attributes mode ("max" | "average"), kernel_shape,
strides, pads (explicit), dilations, ceil_mode, count_include_pad, channels_last (1): MaxPool / AveragePool with
the same window attributes computed on NHWC data (made by the layout pass)::

    Y = transpose(pool(transpose(X, [0, 3, 1, 2])), [0, 2, 3, 1])      Y [N, P, Q, C]

``ep_trtpy::AddLayerNorm`` inputs (X, R, scale, bias?), attributes axis (default -1), epsilon (default 1e-5),
outputs (Y) or (Y, S): the LayerNormalization (stash_type 1) of the residual sum, X and R of one shape::

    S = X + R (rounded to X's type, as the unfused Add stores it)    Y = LayerNormalization(S, scale, bias)

``ep_trtpy::CastTranspose`` input X, attributes perm (as Transpose's; required) and to (an ONNX float dtype code),
made by fuse_cast_transpose from a Transpose and a float cast on either side of it::

    Y = Cast(Transpose(X, perm), to) = Transpose(Cast(X, to), perm)      float32 <-> float16 / bfloat16

FusedConv and FusedMatMul compute in float32 for float16/float32 data and round once at the end (the GPU
epilogues do the same), so they may differ from their unfused decomposition by the intermediate float16 roundings
only.
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.ops import pointwise_program
from ep_trtpy.ops._common import broadcast, fail, in_name, need_float, same_dtype, unidirectional
from ep_trtpy.ops.linalg import _cfloat, conv2, conv_plan, matmul_shape
from ep_trtpy.ops.normalization import layer_norm_infer, layer_norm_ref
from ep_trtpy.ops.pooling import average_pool_ref, max_pool_ref, pool_plan
from ep_trtpy.ops.pointwise_program import IO_DTYPES, Program
from ep_trtpy.ops.registry import Info, infer, reference
from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT16, Node, dtype_name, elem_type, np_dtype

DOMAIN = "ep_trtpy"
CONV_ACTIVATIONS = ("", "Relu", "Clip", "Sigmoid", "Silu", "LeakyRelu", "HardSwish", "Tanh")
"""FusedConv activations, in the order of the native ``conv`` kernel's act codes (0..7)."""
RESIDUAL_POSITIONS = ("pre_act", "post_act")
"""Where FusedConv adds its residual Z: before the activation (the default) or after it."""
NHWC_OF_NCHW = (0, 2, 3, 1)
NCHW_OF_NHWC = (0, 3, 1, 2)
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


def apply_activation(y: np.ndarray, act: str, alpha: float = 0.0, beta: float = 0.0) -> np.ndarray:
    """The epilogue activation in the compute type (Gelu: 0.5x(1+erf(x/sqrt2)); GeluTanh: the tanh form; the
    FusedConv activations as in the module docstring, alpha and beta being act_alpha and act_beta)."""
    if act == "":
        return y
    ct = y.dtype.type
    if act == "Relu":
        return np.maximum(y, ct(0))
    if act == "Clip":
        return np.minimum(np.maximum(y, ct(alpha)), ct(beta))
    if act in ("Sigmoid", "Silu"):
        with np.errstate(over="ignore"):
            s = ct(1) / (ct(1) + np.exp(-y))
        return s if act == "Sigmoid" else y * s
    if act == "LeakyRelu":
        return np.where(y >= 0, y, y * ct(alpha))
    if act == "HardSwish":
        return y * np.minimum(np.maximum(y + ct(3), ct(0)), ct(6)) / ct(6)
    if act == "Tanh":
        return np.tanh(y)
    if act == "Gelu":
        return (ct(0.5) * y * (ct(1) + pointwise_program.erf(y / ct(np.sqrt(2.0))).astype(y.dtype))).astype(y.dtype)
    if act == "GeluTanh":
        c = ct(np.sqrt(2.0 / np.pi))
        return (ct(0.5) * y * (ct(1) + np.tanh(c * (y + ct(0.044715) * y * y * y)))).astype(y.dtype)
    raise AssertionError(act)


def residual_position(node: Node) -> str:
    """FusedConv's residual_position attribute, checked (absent: "pre_act")."""
    pos = node.attr("residual_position", "pre_act")
    if isinstance(pos, bytes):
        pos = pos.decode()
    if pos not in RESIDUAL_POSITIONS:
        raise fail(node, f"residual_position={pos!r} is not one of {RESIDUAL_POSITIONS}")
    return str(pos)


def _channels_last(node: Node, x_rank: int) -> bool:
    flag = int(node.attr("channels_last", 0))
    if flag not in (0, 1):
        raise fail(node, f"channels_last={flag} is not 0 or 1")
    if flag and x_rank != 4:
        raise fail(node, f"channels_last=1 needs a 2-D convolution (X of rank 4), X has rank {x_rank}")
    return bool(flag)


def _nchw(shape: tuple[int, ...], perm: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(shape[p] for p in perm)


@reference(f"{DOMAIN}::FusedConv")
def fused_conv_ref(node: Node, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                   z: np.ndarray | None = None) -> np.ndarray:
    act = _activation(node, CONV_ACTIVATIONS)
    post = residual_position(node) == "post_act"
    last = _channels_last(node, x.ndim)
    if last:  # the NCHW op on the transposed tensors
        x, w = x.transpose(NCHW_OF_NHWC), w.transpose(NCHW_OF_NHWC)
        z = None if z is None else z.transpose(NCHW_OF_NHWC)
    kernel, strides, dils, begin, end, out, group = conv_plan(node, x.shape, w.shape)
    ct = _cfloat(x, w, b, z)
    y = conv2(x.astype(ct, copy=False), w.astype(ct, copy=False), kernel, strides, dils, begin, end, out, group)
    if b is not None:
        y = y + b.astype(ct).reshape((1, -1) + (1,) * len(kernel))
    if z is not None and not post:
        y = y + z.astype(ct)
    y = apply_activation(y, act, float(node.attr("act_alpha", 0.0)), float(node.attr("act_beta", 0.0)))
    if z is not None and post:
        y = y + z.astype(ct)
    y = y.astype(x.dtype)
    return np.ascontiguousarray(y.transpose(NHWC_OF_NCHW)) if last else y


@infer(f"{DOMAIN}::FusedConv")
def fused_conv_infer(node: Node, x: Info, w: Info, b: Info | None = None, z: Info | None = None) -> Info:
    _activation(node, CONV_ACTIVATIONS)
    residual_position(node)
    need_float(node, x)
    same_dtype(node, [x, w, b, z])
    last = _channels_last(node, len(x.shape))
    if last and len(w.shape) != 4:
        raise fail(node, f"W {in_name(node, 1)} has rank {len(w.shape)}; channels_last=1 needs [M, R, S, C]")
    xs, ws = (_nchw(x.shape, NCHW_OF_NHWC), _nchw(w.shape, NCHW_OF_NHWC)) if last else (x.shape, w.shape)
    *_, out, group = conv_plan(node, xs, ws)
    shape = (xs[0], ws[0], *out)
    if last:
        shape = _nchw(shape, NHWC_OF_NCHW)
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


# ------------------------------------------------------------------------------------------------- Pool --
POOL_MODES = ("max", "average")


def _pool_as_onnx(node: Node, x_rank: int) -> Node:
    """The ONNX MaxPool / AveragePool whose numbers Pool computes on channels-last data (same window attributes)."""
    mode = str(node.attr("mode", ""))
    if mode not in POOL_MODES:
        raise fail(node, f"mode={mode!r} is not one of {POOL_MODES}")
    if int(node.attr("channels_last", 0)) != 1:
        raise fail(node, f"channels_last={node.attr('channels_last', 0)!r}; Pool is channels-last only (1)")
    if x_rank != 4:
        raise fail(node, f"X {in_name(node, 0)} has rank {x_rank}; Pool takes [N, H, W, C]")
    attrs = {k: v for k, v in node.attrs.items() if k not in ("mode", "channels_last")}
    if mode == "max":
        attrs.pop("count_include_pad", None)
    proxy = Node("MaxPool" if mode == "max" else "AveragePool", node.name, "", attrs)
    proxy.outputs = node.outputs[:1]
    return proxy


@reference(f"{DOMAIN}::Pool")
def pool_ref(node: Node, x: np.ndarray) -> np.ndarray:
    proxy = _pool_as_onnx(node, x.ndim)
    nchw = np.ascontiguousarray(x.transpose(NCHW_OF_NHWC))
    y = max_pool_ref(proxy, nchw) if proxy.op_type == "MaxPool" else average_pool_ref(proxy, nchw)
    return np.ascontiguousarray(np.asarray(y).transpose(NHWC_OF_NCHW))


@infer(f"{DOMAIN}::Pool")
def pool_infer(node: Node, x: Info) -> Info:
    proxy = _pool_as_onnx(node, len(x.shape))
    need_float(node, x)
    n, h, w, c = x.shape
    *_, out = pool_plan(proxy, (n, c, h, w))
    return Info(x.dtype, (n, *out, c))


# ----------------------------------------------------------------------------------------- AddLayerNorm --

def _as_layer_norm(node: Node) -> Node:
    """The one-output LayerNormalization whose numbers AddLayerNorm computes on X + R."""
    attrs = {"axis": int(node.attr("axis", -1)), "epsilon": float(node.attr("epsilon", 1e-5))}
    proxy = Node("LayerNormalization", node.name, "", attrs)
    proxy.outputs = node.outputs[:1]
    return proxy


def _add_layer_norm_outputs(node: Node) -> int:
    n = len(node.outputs) or 1
    if n > 2:
        raise fail(node, f"has {n} outputs; AddLayerNorm makes Y and optionally S = X + R")
    return n


@reference(f"{DOMAIN}::AddLayerNorm")
def add_layer_norm_ref(node: Node, x: np.ndarray, r: np.ndarray, scale: np.ndarray,
                       bias: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    if x.shape != r.shape:
        raise fail(node, f"X {list(x.shape)} and R {list(r.shape)} differ in shape (AddLayerNorm does not broadcast)")
    s = (x.astype(np.float32) + r.astype(np.float32)).astype(x.dtype)
    (y,) = layer_norm_ref(_as_layer_norm(node), s, scale, bias)
    return (y, s)[:_add_layer_norm_outputs(node)]


@infer(f"{DOMAIN}::AddLayerNorm")
def add_layer_norm_infer(node: Node, x: Info, r: Info, scale: Info, bias: Info | None = None) -> list[Info]:
    same_dtype(node, [x, r, scale, bias])
    if tuple(x.shape) != tuple(r.shape):
        raise fail(node, f"X {in_name(node, 0)} {list(x.shape)} and R {in_name(node, 1)} {list(r.shape)} differ in "
                         f"shape (AddLayerNorm does not broadcast)")
    (y,) = layer_norm_infer(_as_layer_norm(node), x, scale, bias)
    return [y, Info(x.dtype, x.shape)][:_add_layer_norm_outputs(node)]


# ---------------------------------------------------------------------------------------- CastTranspose --

CAST_TRANSPOSE_DTYPES = ((FLOAT, FLOAT16), (FLOAT, BFLOAT16), (FLOAT16, FLOAT), (BFLOAT16, FLOAT))
"""(input, output) dtypes of CastTranspose: the conversions of the native converting transpose."""


def _cast_transpose(node: Node, dtype: int, rank: int) -> tuple[list[int], int]:
    perm = node.attr("perm")
    if perm is None or sorted(int(p) for p in perm) != list(range(rank)):
        raise fail(node, f"perm={perm} is not a permutation of the {rank} axes")
    to = int(node.attr("to", 0))
    if (dtype, to) not in CAST_TRANSPOSE_DTYPES:
        raise fail(node, f"converts {dtype_name(dtype)} to {dtype_name(to) if to else 'no dtype'}; CastTranspose "
                         f"converts float32 to or from float16 / bfloat16")
    return [int(p) for p in perm], to


@reference(f"{DOMAIN}::CastTranspose")
def cast_transpose_ref(node: Node, x: np.ndarray) -> np.ndarray:
    perm, to = _cast_transpose(node, elem_type(x.dtype), x.ndim)
    return np.ascontiguousarray(np.transpose(x, perm)).astype(np_dtype(to))


@infer(f"{DOMAIN}::CastTranspose")
def cast_transpose_infer(node: Node, x: Info) -> Info:
    perm, to = _cast_transpose(node, x.dtype, len(x.shape))
    return Info(to, tuple(x.shape[p] for p in perm))
