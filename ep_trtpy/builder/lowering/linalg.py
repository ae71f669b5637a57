"""Lowering of the library-backed ops: convolutions (cuDNN) and matrix products (cuBLASLt).

Kernel parameter layouts (the native ``prepare`` in cuda_kernels/runtime/kernels_*.cpp checks them):

``conv`` -- Y = act(conv(X, W) + B + Z), or act(conv(X, W) + B) + Z, NCHW 1-D/2-D/3-D or NHWC 2-D (kernels_conv.cpp)
    inputs  [X, W, B or -1, Z or -1]   B [K], Z of Y's shape
    outputs [Y]
    ints    [k, group, act, layout, math, pb_1..pb_k, pe_1..pe_k, s_1..s_k, dil_1..dil_k] and, for a residual added
            after the activation (FusedConv residual_position "post_act"), one more int 1 (absent: before it, so a
            pre-activation layer's ints, and with them its timing-cache signature, are those of older engines)
    floats  [alpha, beta]              activation parameters (always two; 0 when unused)
    layout  0 NCHW: X [N, C, D1..Dk], W [K, C/group, R1..Rk], Y and Z [N, K, O1..Ok]
            1 NHWC: X [N, D1, D2, C], W [K, R1, R2, C/group] ("KRSC"), Y and Z [N, O1, O2, K]   (k = 2 only)
            O = floor((D + pb + pe - dil*(R-1) - 1) / s) + 1; asymmetric pads allowed
    act     0 none, 1 relu, 2 clip(y, alpha, beta) = min(max(y, alpha), beta) (ReLU6: 0, 6), 3 sigmoid,
            4 silu y*sigmoid(y), 5 leaky_relu (alpha = slope), 6 hardswish y*clip(y+3, 0, 6)/6, 7 tanh
            (the order of ep_trtpy.ops.internal.CONV_ACTIVATIONS)
    math    0 strict float32, 1 TF32 allowed for float32 operands (float32 data with tf32_enable; 0 for 16-bit)
    tactic  chosen at prepare (cuDNN graph-API engine configs, legacy algorithms, the depthwise kernel); -1 and
            an empty tactic_name let it choose
    meta    {"layout": "NCHW" | "NHWC", "activation": ..., "residual": bool, "residual_position": "pre_act" |
            "post_act" (with a residual)} (shown by ep-trtpy inspect)

``conv_transpose`` -- Y = conv_transpose(X, W) + B (kernels_conv_transpose.cpp)
    inputs  [X, W, B or -1]            X [N, Cin, D...], W [Cin, Cout/group, K...], B [Cout]
    outputs [Y]                        [N, Cout, O...], O = s*(D-1) + op + dil*(K-1) + 1 - pb - pe
    ints    [k, group, pb_1..pb_k, pe_1..pe_k, s_1..s_k, dil_1..dil_k, op_1..op_k]   op = output_padding
    floats  []
    tactic  cudnnConvolutionBwdDataAlgo_t (-1: found by timing)

``gemm`` -- Y[b] = act(alpha * op(A[b]) @ op(B[b]) + beta * C[b]), b < batch (kernels_gemm.cpp)
    inputs  [A, B] or [A, B, C]
    outputs [Y]                        contiguous [batch, M, N]
    ints    [M, N, K, batch, transA, transB, strideA, strideB, act, c_sb, c_sr, c_sc, math]
              A[b] = row-major [M, K] ([K, M] when transA) at element b*strideA of A; B[b] likewise ([K, N] /
              [N, K]) at b*strideB; stride 0 broadcasts. act: 0 none, 1 relu, 2 gelu (erf), 3 gelu (tanh).
              C[b, m, n] = element b*c_sb + m*c_sr + n*c_sc of C (a bias vector over N: 0, 0, 1).
              math: 1 lets float32 operands run on TF32 tensor cores (float32 data with tf32_enable), else 0
              (always 0 for float16 / bfloat16 data, which use their own tensor cores)
    dtypes  float32, float16 or bfloat16, one for A, B, C and Y
    floats  [alpha, beta]
    tactic  index into cuBLASLt's heuristic candidates (-1: timed at engine build)

Batch broadcasting (numpy ``matmul`` rules): the batch dims are merged where every operand's strides allow, the
innermost merged dim becomes the cuBLASLt batch (stride 0 for a broadcast operand) and any remaining outer dims are
unrolled into one ``gemm`` layer per index, on views of A, B and Y. A batch of matrices times one shared matrix
(``x @ W``) is folded into a single GEMM with batch * M rows.

Padding conventions follow the ONNX specification, as ONNX Runtime (>= 1.13, checked against 1.31 in the tests) does:
Conv ``auto_pad`` SAME_UPPER puts the odd pad at the end and SAME_LOWER at the beginning; ConvTranspose with
``output_shape`` or SAME_* puts it at the end for SAME_UPPER and at the beginning otherwise (NOTSET, SAME_LOWER).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ep_trtpy.builder.lowering import LowerCtx, LoweringError, lowering
from ep_trtpy.ops.internal import CONV_ACTIVATIONS, NCHW_OF_NHWC, NHWC_OF_NCHW, RESIDUAL_POSITIONS
from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT16, Node, Value, dtype_name, np_dtype

ACT_NONE, ACT_RELU, ACT_GELU, ACT_GELU_TANH = 0, 1, 2, 3
_MATMUL_ACTS = {"": ACT_NONE, "Relu": ACT_RELU, "Gelu": ACT_GELU, "GeluTanh": ACT_GELU_TANH}
MAX_UNROLLED_GEMMS = 1024


# --------------------------------------------------------------------------------------------------- helpers --
def _static(node: Node, v: Value | None, what: str) -> tuple[int, ...]:
    if v is None:
        raise LoweringError(f"node '{node.name}' ({node.key}): {what} is missing")
    if v.shape is None or not all(isinstance(d, int) for d in v.shape):
        raise LoweringError(f"node '{node.name}' ({node.key}): {what} '{v.name}' has no static shape")
    return tuple(int(d) for d in v.shape)


def _float_dtype(node: Node, values: Sequence[Value | None], allowed: Sequence[int] = (FLOAT, FLOAT16, BFLOAT16)) -> int:
    dts = {v.dtype for v in values if v is not None}
    if len(dts) != 1:
        names = ", ".join(f"{v.name}: {dtype_name(v.dtype)}" for v in values if v is not None)
        raise LoweringError(f"node '{node.name}' ({node.key}): operands must share one dtype ({names})")
    dt = dts.pop()
    if dt not in allowed:
        raise LoweringError(f"node '{node.name}' ({node.key}): {dtype_name(dt)} is not supported on the GPU path "
                            f"({', '.join(dtype_name(t) for t in allowed)} are)")
    return int(dt)


def _ints(node: Node, name: str, n: int, default: int) -> list[int]:
    v = node.attr(name)
    if v is None:
        return [default] * n
    v = [int(x) for x in v]
    if len(v) != n:
        raise LoweringError(f"node '{node.name}' ({node.key}): attribute {name} has {len(v)} values, expected {n}")
    return v


def _check_out(node: Node, expect: Sequence[int]) -> None:
    got = _static(node, node.outputs[0], "output")
    if tuple(got) != tuple(expect):
        raise LoweringError(f"node '{node.name}' ({node.key}): output '{node.outputs[0].name}' has shape "
                            f"{list(got)} but the attributes give {list(expect)}")


# ------------------------------------------------------------------------------------------------------ conv --
def conv_pads(node: Node, spatial: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
              dilations: Sequence[int]) -> tuple[list[int], list[int]]:
    """Explicit (begin, end) pads of a Conv from ``pads`` or ``auto_pad`` (resolved from the static shapes)."""
    k = len(spatial)
    auto_pad = node.attr("auto_pad", "NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    if auto_pad in ("NOTSET", ""):
        pads = _ints(node, "pads", 2 * k, 0)
        return pads[:k], pads[k:]
    if auto_pad == "VALID":
        return [0] * k, [0] * k
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for d, kk, s, dil in zip(spatial, kernel, strides, dilations):
            out = -(-d // s)
            total = max(0, (out - 1) * s + (kk - 1) * dil + 1 - d)
            small, large = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else large)
            end.append(large if auto_pad == "SAME_UPPER" else small)
        return begin, end
    raise LoweringError(f"node '{node.name}' ({node.key}): auto_pad '{auto_pad}' is not supported")


def _conv_activation(node: Node, activation: str) -> tuple[int, float, float]:
    """(act code, alpha, beta) of a FusedConv activation."""
    if activation not in CONV_ACTIVATIONS:
        raise LoweringError(f"node '{node.name}' ({node.key}): activation '{activation}' is not supported "
                            f"(supported: {', '.join(repr(a) for a in CONV_ACTIVATIONS)})")
    alpha, beta = float(node.attr("act_alpha", 0.0)), float(node.attr("act_beta", 0.0))
    if activation == "Clip" and not (math.isfinite(alpha) and math.isfinite(beta)):
        raise LoweringError(f"node '{node.name}' ({node.key}): Clip bounds [{alpha}, {beta}] must be finite")
    if activation not in ("Clip", "LeakyRelu"):
        alpha = beta = 0.0
    return CONV_ACTIVATIONS.index(activation), alpha, beta


def _lower_conv(ctx: LowerCtx, node: Node, activation: str, z: Value | None, position: str = "pre_act") -> None:
    x, w, b = node.input(0), node.input(1), node.input(2)
    xs, ws = _static(node, x, "X"), _static(node, w, "W")
    if len(xs) not in (3, 4, 5) or len(ws) != len(xs):
        raise LoweringError(f"node '{node.name}' ({node.key}): X {list(xs)} and W {list(ws)} must both have rank "
                            "3, 4 or 5 (1-D to 3-D convolution)")
    dtype = _float_dtype(node, [x, w, b, z, node.outputs[0]])
    nhwc = int(node.attr("channels_last", 0)) == 1
    if nhwc and len(xs) != 4:
        raise LoweringError(f"node '{node.name}' ({node.key}): channels_last needs a 2-D convolution, X is "
                            f"{list(xs)}")
    if nhwc:  # check the geometry in NCHW terms
        xs, ws = tuple(xs[p] for p in NCHW_OF_NHWC), tuple(ws[p] for p in NCHW_OF_NHWC)
    k = len(xs) - 2
    kernel = list(ws[2:])
    if node.attr("kernel_shape") is not None and _ints(node, "kernel_shape", k, 1) != kernel:
        raise LoweringError(f"node '{node.name}' ({node.key}): kernel_shape {node.attr('kernel_shape')} does not "
                            f"match W {list(_static(node, w, 'W'))}")
    strides = _ints(node, "strides", k, 1)
    dilations = _ints(node, "dilations", k, 1)
    group = int(node.attr("group", 1))
    if group < 1 or xs[1] != ws[1] * group or ws[0] % group:
        raise LoweringError(f"node '{node.name}' ({node.key}): group {group} does not fit X "
                            f"{list(_static(node, x, 'X'))} and W {list(_static(node, w, 'W'))}")
    act, alpha, beta = _conv_activation(node, activation)
    pb, pe = conv_pads(node, xs[2:], kernel, strides, dilations)
    out = [xs[0], ws[0]]
    for d, kk, s, dil, b0, e0 in zip(xs[2:], kernel, strides, dilations, pb, pe):
        span = d + b0 + e0 - dil * (kk - 1) - 1
        if span < 0:
            raise LoweringError(f"node '{node.name}' ({node.key}): the dilated kernel is larger than the padded input")
        out.append(span // s + 1)
    if nhwc:
        out = [out[p] for p in NHWC_OF_NCHW]
    _check_out(node, out)
    if b is not None and int(np.prod(_static(node, b, "B"))) != ws[0]:
        raise LoweringError(f"node '{node.name}' ({node.key}): bias '{b.name}' must hold {ws[0]} values")
    if z is not None and _static(node, z, "Z") != tuple(out):
        raise LoweringError(f"node '{node.name}' ({node.key}): residual '{z.name}' must have the output's shape")
    tf32 = int(dtype == FLOAT and ctx.options.tf32_enable)
    inputs = [ctx.tensor(x), ctx.tensor(w), ctx.tensor(b) if b is not None else -1,  # type: ignore[arg-type]
              ctx.tensor(z) if z is not None else -1]
    ints = [k, group, act, int(nhwc), tf32, *pb, *pe, *strides, *dilations]
    meta = {"op": node.key, "activation": activation, "residual": z is not None, "layout": "NHWC" if nhwc else "NCHW"}
    if z is not None:
        meta["residual_position"] = position
        if position == "post_act" and act != 0:  # without an activation both positions are one sum
            ints.append(1)
    ctx.emit("conv", inputs, [ctx.tensor(node.outputs[0])], ints=ints, floats=[alpha, beta], name=node.name,
             meta=meta)


@lowering("Conv")
def lower_conv(ctx: LowerCtx, node: Node) -> None:
    """ONNX Conv: FusedConv without activation or residual."""
    _lower_conv(ctx, node, "", None)


@lowering("ep_trtpy::FusedConv")
def lower_fused_conv(ctx: LowerCtx, node: Node) -> None:
    """ep_trtpy::FusedConv (X, W, B?, Z?): Y = act(conv(X, W) + B + Z), or with residual_position "post_act"
    act(conv(X, W) + B) + Z; NCHW or channels_last (NHWC / KRSC)."""
    activation = node.attr("activation", "") or ""
    if isinstance(activation, bytes):
        activation = activation.decode()
    position = node.attr("residual_position", "pre_act")
    if isinstance(position, bytes):
        position = position.decode()
    if position not in RESIDUAL_POSITIONS:
        raise LoweringError(f"node '{node.name}' ({node.key}): residual_position {position!r} is not one of "
                            f"{', '.join(map(repr, RESIDUAL_POSITIONS))}")
    _lower_conv(ctx, node, activation, node.input(3), position)


def conv_transpose_pads(node: Node, spatial: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
                        dilations: Sequence[int], output_padding: Sequence[int]
                        ) -> tuple[list[int], list[int], list[int]]:
    """Explicit (begin, end) pads of a ConvTranspose, resolving ``output_shape`` and ``auto_pad`` (ONNX spec, as ORT),
    and the output padding to use: an ``output_shape`` larger than the full result (negative total padding) grows
    the output at the end, where no input contributes (zeros, plus the bias), which is output padding."""
    k = len(spatial)
    auto_pad = node.attr("auto_pad", "NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    if auto_pad not in ("NOTSET", "", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise LoweringError(f"node '{node.name}' ({node.key}): auto_pad '{auto_pad}' is not supported")
    output_shape = node.attr("output_shape")
    targets: list[int] | None = None
    if output_shape is not None and len(output_shape) > 0:
        os_ = [int(v) for v in output_shape]
        if len(os_) == k + 2:
            os_ = os_[2:]
        if len(os_) != k:
            raise LoweringError(f"node '{node.name}' ({node.key}): output_shape {output_shape} does not have "
                                f"{k} spatial values")
        targets = os_
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        targets = [d * s for d, s in zip(spatial, strides)]
    if targets is None:
        if auto_pad == "VALID":
            return [0] * k, [0] * k, list(output_padding)
        pads = _ints(node, "pads", 2 * k, 0)
        return pads[:k], pads[k:], list(output_padding)
    begin, end, out_pad = [], [], []
    for d, kk, s, dil, op, t in zip(spatial, kernel, strides, dilations, output_padding, targets):
        total = (d - 1) * s + op + (kk - 1) * dil + 1 - t
        out_pad.append(op + max(0, -total))
        total = max(0, total)
        small, large = total // 2, total - total // 2
        begin.append(small if auto_pad == "SAME_UPPER" else large)
        end.append(large if auto_pad == "SAME_UPPER" else small)
    return begin, end, out_pad


@lowering("ConvTranspose")
def lower_conv_transpose(ctx: LowerCtx, node: Node) -> None:
    """ONNX ConvTranspose (X, W, B?)."""
    x, w, b = node.input(0), node.input(1), node.input(2)
    xs, ws = _static(node, x, "X"), _static(node, w, "W")
    if len(xs) not in (3, 4, 5) or len(ws) != len(xs):
        raise LoweringError(f"node '{node.name}' ({node.key}): X {list(xs)} and W {list(ws)} must both have rank "
                            "3, 4 or 5")
    _float_dtype(node, [x, w, b, node.outputs[0]], allowed=(FLOAT, FLOAT16))  # no bfloat16 conv_transpose
    k = len(xs) - 2
    kernel = list(ws[2:])
    if node.attr("kernel_shape") is not None and _ints(node, "kernel_shape", k, 1) != kernel:
        raise LoweringError(f"node '{node.name}' ({node.key}): kernel_shape does not match W {list(ws)}")
    strides = _ints(node, "strides", k, 1)
    dilations = _ints(node, "dilations", k, 1)
    output_padding = _ints(node, "output_padding", k, 0)
    group = int(node.attr("group", 1))
    if group < 1 or ws[0] != xs[1] or xs[1] % group:
        raise LoweringError(f"node '{node.name}' ({node.key}): group {group} does not fit X {list(xs)} and W "
                            f"{list(ws)}")
    pb, pe, output_padding = conv_transpose_pads(node, xs[2:], kernel, strides, dilations, output_padding)
    cout = ws[1] * group
    out = [xs[0], cout] + [s * (d - 1) + op + dil * (kk - 1) + 1 - b0 - e0
                           for d, kk, s, dil, op, b0, e0 in zip(xs[2:], kernel, strides, dilations, output_padding,
                                                                pb, pe)]
    _check_out(node, out)
    if b is not None and int(np.prod(_static(node, b, "B"))) != cout:
        raise LoweringError(f"node '{node.name}' ({node.key}): bias '{b.name}' must hold {cout} values")
    inputs = [ctx.tensor(x), ctx.tensor(w), ctx.tensor(b) if b is not None else -1]  # type: ignore[arg-type]
    ints = [k, group, *pb, *pe, *strides, *dilations, *output_padding]
    ctx.emit("conv_transpose", inputs, [ctx.tensor(node.outputs[0])], ints=ints, name=node.name,
             meta={"op": node.key})


# ---------------------------------------------------------------------------------------------------- matmul --
def _broadcast(node: Node, a: Sequence[int], b: Sequence[int]) -> list[int]:
    n = max(len(a), len(b))
    a = [1] * (n - len(a)) + list(a)
    b = [1] * (n - len(b)) + list(b)
    out = []
    for x, y in zip(a, b):
        if x != y and x != 1 and y != 1:
            raise LoweringError(f"node '{node.name}' ({node.key}): batch dims {a} and {b} do not broadcast")
        out.append(y if x == 1 else x)
    return out


def _batch_strides(batch: Sequence[int], out_batch: Sequence[int], matrix: int) -> list[int]:
    """Element strides of an operand's batch dims, aligned right to `out_batch` (0 where it broadcasts)."""
    n = len(out_batch)
    full = [1] * (n - len(batch)) + list(batch)
    strides = [0] * n
    acc = matrix
    for i in range(n - 1, -1, -1):
        strides[i] = acc if full[i] > 1 else 0
        acc *= full[i]
    return strides


def matmul_batches(node: Node, a_batch: Sequence[int], b_batch: Sequence[int], mk: int, kn: int,
                   mn: int) -> list[tuple[int, int, int, int]]:
    """Merged batch dims as (size, strideA, strideB, strideY), outermost first, size-1 dims dropped."""
    out_batch = _broadcast(node, a_batch, b_batch)
    sa = _batch_strides(a_batch, out_batch, mk)
    sb = _batch_strides(b_batch, out_batch, kn)
    sy = _batch_strides(out_batch, out_batch, mn)
    dims = [(n, x, y, z) for n, x, y, z in zip(out_batch, sa, sb, sy) if n != 1]
    merged: list[tuple[int, int, int, int]] = []
    for d in dims:
        if merged:
            n0, a0, b0, y0 = merged[-1]
            n1, a1, b1, y1 = d
            if a0 == a1 * n1 and b0 == b1 * n1 and y0 == y1 * n1:
                merged[-1] = (n0 * n1, a1, b1, y1)
                continue
        merged.append(d)
    return merged


def emit_gemm(ctx: LowerCtx, node: Node, a: int, b: int, y: int, *, dtype: int, m: int, n: int, k: int,
              a_batch: Sequence[int], b_batch: Sequence[int], trans_a: bool, trans_b: bool, alpha: float, act: int,
              c: int = -1, c_rows: int = 1, c_cols: int = 1, beta: float = 1.0) -> None:
    """Emit the ``gemm`` layer(s) of Y = act(alpha * op(A) @ op(B) + beta * C) with numpy batch broadcasting.

    `a_batch`/`b_batch` are the operands' batch dims; C (tensor id or -1) is a [c_rows, c_cols] matrix broadcast
    over the batch, with c_rows in {1, M} and c_cols in {1, N}.
    """
    es = np_dtype(dtype).itemsize
    dims = matmul_batches(node, a_batch, b_batch, m * k, k * n, m * n)
    c_sr = c_cols if (c >= 0 and c_rows > 1) else 0
    c_sc = 1 if (c >= 0 and c_cols == n) else 0
    inner = dims[-1] if dims else (1, 0, 0, m * n)
    outer = dims[:-1]
    batch, s_a, s_b, _ = inner
    rows = m
    # x @ W with one shared W: one GEMM of batch*M rows (Y's layout is the same), unless C varies per row.
    if batch > 1 and s_b == 0 and s_a == m * k and not trans_a and not (c >= 0 and c_rows > 1):
        rows, batch, s_a = m * batch, 1, 0
    count = math.prod(d[0] for d in outer)
    if count > MAX_UNROLLED_GEMMS:
        raise LoweringError(f"node '{node.name}' ({node.key}): batch broadcasting of A{list(a_batch)} and "
                            f"B{list(b_batch)} needs {count} GEMM launches (limit {MAX_UNROLLED_GEMMS})")
    math_flag = int(dtype == FLOAT and ctx.options.tf32_enable)
    ints_tail = [int(trans_a), int(trans_b), s_a, s_b, act, 0, c_sr, c_sc, math_flag]
    floats = [float(alpha), float(beta)]
    ins_c = [c] if c >= 0 else []
    if not outer:
        ctx.emit("gemm", [a, b, *ins_c], [y], ints=[rows, n, k, batch, *ints_tail], floats=floats, name=node.name,
                 meta={"op": node.key})
        return
    a_extent = (batch - 1) * s_a + rows * k
    b_extent = (batch - 1) * s_b + k * n
    y_extent = batch * rows * n
    for flat in range(count):
        rem, off_a, off_b, off_y = flat, 0, 0, 0
        for size, st_a, st_b, st_y in reversed(outer):
            i = rem % size
            rem //= size
            off_a += i * st_a
            off_b += i * st_b
            off_y += i * st_y
        va = ctx.view(a, dtype, [a_extent], off_a * es, name=f"{node.name}:A[{flat}]")
        vb = ctx.view(b, dtype, [b_extent], off_b * es, name=f"{node.name}:B[{flat}]")
        vy = ctx.view(y, dtype, [y_extent], off_y * es, name=f"{node.name}:Y[{flat}]")
        ctx.emit("gemm", [va, vb, *ins_c], [vy], ints=[rows, n, k, batch, *ints_tail], floats=floats,
                 name=f"{node.name}[{flat}]", meta={"op": node.key})


def _lower_matmul(ctx: LowerCtx, node: Node, trans_a: bool, trans_b: bool, alpha: float, act: int,
                  bias: Value | None) -> None:
    av, bv, yv = node.input(0), node.input(1), node.outputs[0]
    a_shape, b_shape = _static(node, av, "A"), _static(node, bv, "B")
    dtype = _float_dtype(node, [av, bv, bias, yv])
    if not a_shape or not b_shape:
        raise LoweringError(f"node '{node.name}' ({node.key}): matmul operands cannot be scalars")
    a_vec, b_vec = len(a_shape) == 1, len(b_shape) == 1
    if (a_vec and trans_a) or (b_vec and trans_b):
        raise LoweringError(f"node '{node.name}' ({node.key}): transA/transB need a matrix operand, got a vector")
    a2 = (1, a_shape[0]) if a_vec else a_shape[-2:]
    b2 = (b_shape[0], 1) if b_vec else b_shape[-2:]
    m, ka = (a2[1], a2[0]) if trans_a else (a2[0], a2[1])
    kb, n = (b2[1], b2[0]) if trans_b else (b2[0], b2[1])
    if ka != kb:
        raise LoweringError(f"node '{node.name}' ({node.key}): inner dims differ: A {list(a_shape)} "
                            f"(transA={int(trans_a)}) and B {list(b_shape)} (transB={int(trans_b)})")
    a_batch = () if a_vec else a_shape[:-2]
    b_batch = () if b_vec else b_shape[:-2]
    out = _broadcast(node, a_batch, b_batch) + ([] if a_vec else [m]) + ([] if b_vec else [n])
    _check_out(node, out)
    c, c_rows, c_cols = -1, 1, 1
    if bias is not None:
        bs = _static(node, bias, "bias")
        b2d = (1,) * max(0, 2 - len(bs)) + tuple(bs)
        if any(d != 1 for d in b2d[:-2]) or b2d[-1] not in (1, n) or b2d[-2] not in (1, m):
            raise LoweringError(f"node '{node.name}' ({node.key}): bias {list(bs)} must broadcast to [M, N] = "
                                f"[{m}, {n}] without batch dims")
        c, c_rows, c_cols = ctx.tensor(bias), b2d[-2], b2d[-1]
    emit_gemm(ctx, node, ctx.tensor(av), ctx.tensor(bv), ctx.tensor(yv), dtype=dtype, m=m, n=n, k=ka,  # type: ignore[arg-type]
              a_batch=a_batch, b_batch=b_batch, trans_a=trans_a, trans_b=trans_b, alpha=alpha, act=act, c=c,
              c_rows=c_rows, c_cols=c_cols, beta=1.0)


@lowering("MatMul")
def lower_matmul(ctx: LowerCtx, node: Node) -> None:
    """ONNX MatMul (numpy matmul semantics: 1-D operands, broadcast batch dims)."""
    _lower_matmul(ctx, node, False, False, 1.0, ACT_NONE, None)


@lowering("ep_trtpy::FusedMatMul")
def lower_fused_matmul(ctx: LowerCtx, node: Node) -> None:
    """ep_trtpy::FusedMatMul (A, B, bias?): Y = act(alpha * op(A) @ op(B) + bias)."""
    activation = node.attr("activation", "") or ""
    if isinstance(activation, bytes):
        activation = activation.decode()
    if activation not in _MATMUL_ACTS:
        raise LoweringError(f"node '{node.name}' ({node.key}): activation '{activation}' is not supported "
                            f"(supported: {sorted(_MATMUL_ACTS)})")
    _lower_matmul(ctx, node, bool(node.attr("transA", 0)), bool(node.attr("transB", 0)),
                  float(node.attr("alpha", 1.0)), _MATMUL_ACTS[activation], node.input(2))


@lowering("Gemm")
def lower_gemm(ctx: LowerCtx, node: Node) -> None:
    """ONNX Gemm: Y = alpha * op(A) @ op(B) + beta * C, C unidirectionally broadcastable to [M, N].

    A constant C is folded with beta into a weight: a row vector becomes a bias (cuBLASLt BIAS epilogue), any
    other shape is materialized as a full [M, N] matrix (cuBLASLt's C operand). A runtime C is passed with its
    broadcast strides and beta.
    """
    av, bv, cv, yv = node.input(0), node.input(1), node.input(2), node.outputs[0]
    a_shape, b_shape = _static(node, av, "A"), _static(node, bv, "B")
    dtype = _float_dtype(node, [av, bv, cv, yv])
    if len(a_shape) != 2 or len(b_shape) != 2:
        raise LoweringError(f"node '{node.name}' (Gemm): A {list(a_shape)} and B {list(b_shape)} must be 2-D")
    trans_a, trans_b = bool(node.attr("transA", 0)), bool(node.attr("transB", 0))
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    m, ka = (a_shape[1], a_shape[0]) if trans_a else a_shape
    kb, n = (b_shape[1], b_shape[0]) if trans_b else b_shape
    if ka != kb:
        raise LoweringError(f"node '{node.name}' (Gemm): inner dims differ: A {list(a_shape)} (transA="
                            f"{int(trans_a)}), B {list(b_shape)} (transB={int(trans_b)})")
    _check_out(node, [m, n])
    c, c_rows, c_cols, c_beta = -1, 1, 1, 1.0
    if cv is not None and beta != 0.0:
        cs = _static(node, cv, "C")
        if len(cs) > 2:
            raise LoweringError(f"node '{node.name}' (Gemm): C {list(cs)} has more than 2 dims")
        c2 = (1,) * (2 - len(cs)) + tuple(cs)
        if c2[0] not in (1, m) or c2[1] not in (1, n):
            raise LoweringError(f"node '{node.name}' (Gemm): C {list(cs)} does not broadcast to [{m}, {n}]")
        if cv.const is not None:
            folded = np.asarray(cv.const, dtype=np.float32).reshape(c2) * np.float32(beta)
            if c2[0] == 1 and c2[1] == n:
                c, c_rows, c_cols = ctx.weight(folded.reshape(n), f"{cv.name}:beta", dtype=dtype), 1, n
            else:
                full = np.ascontiguousarray(np.broadcast_to(folded, (m, n)))
                c, c_rows, c_cols = ctx.weight(full, f"{cv.name}:beta", dtype=dtype), m, n
        else:
            c, c_rows, c_cols, c_beta = ctx.tensor(cv), c2[0], c2[1], beta
    emit_gemm(ctx, node, ctx.tensor(av), ctx.tensor(bv), ctx.tensor(yv), dtype=dtype, m=m, n=n, k=ka,  # type: ignore[arg-type]
              a_batch=(), b_batch=(), trans_a=trans_a, trans_b=trans_b, alpha=alpha, act=ACT_NONE, c=c,
              c_rows=c_rows, c_cols=c_cols, beta=c_beta)
