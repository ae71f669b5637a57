"""Lowering of the quantization family. QuantizeLinear, DequantizeLinear, ``ep_trtpy::QConv`` and
``ep_trtpy::QMatMul`` run on the reference backend only (exact integer and FP8 emulation, ep_trtpy/ops/quantize.py)
while their key is in :data:`PENDING`.

Each lowering below refuses with the reason in :data:`PENDING`, and the same reasons keep those ops from being
claimed on the GPU at all (:func:`gpu_refusals`, passed to the partitioner by ep_trtpy/_host.py) and keep the
builder from quantizing a float model for the cuda backend (passes/quantize_calibrated.py): a QDQ model on the GPU
runs its Q/DQ nodes on ORT's CPU provider and its layers in float on our kernels, as before quantization existed.

What the GPU lowering must implement (then drop the op's entry from PENDING):

* ``ep_trtpy::QConv`` (X int8/uint8/FP8 NCHW, or NHWC with channels_last=1; W [M, C/g, R, S] constant;
  B int32 or float32 [M]): cuDNN INT8 convolution with int32 accumulation (or FP8 E4M3 with float32 accumulation
  on sm_89+), epilogue ``float(acc [+ B_int32]) * (x_scale * w_scale[m]) [+ B_float]``, FusedConv's activation,
  and the requantization ``round_half_even(y / y_scale) + y_zero_point`` saturated to y_type, or a float output
  when y_scale is absent. A non-zero x_zero_point (ORT's asymmetric activations) adds the per-channel constant
  ``-x_zero_point * sum(W[m] - w_zero_point[m])`` to ``sum X * (W - w_zero_point)``, exact when the padding holds
  x_zero_point (the padding of the dequantized input is 0.0, i.e. the quantized value x_zero_point).
* ``ep_trtpy::QMatMul``: written (:func:`lower_qmatmul`, the ``qgemm`` kernel of
  cuda_kernels/runtime/kernels_qgemm.cpp), checked on the CPU through the plan emulator
  (tests/ep_trtpy/builder/lowering/test_lowering_qmatmul.py), and its 53 GPU cases
  (tests/cuda_kernels/test_qgemm_gpu.py) passed on an H200 on 2026-12-03. Its PENDING entry goes together with
  QuantizeLinear's and DequantizeLinear's (the layers at its boundaries; a calibrated model's QMatMul reads a
  QuantizeLinear's output): delete the three lines of PENDING once a quantized session has run on the GPU end to
  end, and flip the expectation in ``test_qmatmul_is_still_refused_on_the_gpu``.
* QuantizeLinear / DequantizeLinear (per-tensor or per-axis): written (:func:`lower_quantize_linear`,
  :func:`lower_dequantize_linear`, the ``qdq`` kernel of cuda_kernels/runtime/kernels_qdq.cpp) and checked on the
  CPU through the plan emulator (tests/ep_trtpy/builder/lowering/test_lowering_qdq.py), not yet on a GPU. **Before
  removing their PENDING entries** the next GPU session runs ``CUDAARCHS=90 pip install --no-build-isolation
  --no-deps -e .`` and ``python -m pytest tests/cuda_kernels/test_qdq_gpu.py -m gpu -q`` on the H200; when every
  case passes (and a quantized session has run end to end, as QMatMul's entry asks), delete the
  ``"QuantizeLinear"`` and ``"DequantizeLinear"`` lines of PENDING and flip ``test_qdq_is_still_refused_on_the_gpu``.
  Blocked quantization (block_size) and runtime scales or zero points stay refused (LoweringError; the support
  rules of graph_partitioner/support/rules_quantize.py do not claim such nodes either).

``qgemm`` -- Y = epilogue(A @ B^T), the quantized matrix product (kernels_qgemm.cpp has the cuBLASLt choices)
    inputs  [A, B, scale, bias_i32 or -1, bias_f or -1]
              A        [M, K] row-major, int8, uint8 or float8e4m3fn (a runtime tensor; transA is a transpose
                       layer before it, batch dims are folded into M)
              B        [N, K] row-major weight, B_q - b_zero_point packed at build time: int8 (int8 or uint8 A;
                       refused when B_q - b_zero_point leaves int8) or float8e4m3fn (FP8 A)
              scale    float32 [N]: float32(a_scale * b_scale[n]) (a per-tensor b_scale repeated)
              bias_i32 int32 [N]: the node's int32 bias + (shift - a_zero_point) * sum_k B[n, k], where
                       shift = 128 for a uint8 A (the kernel reads it as int8, a - 128) and 0 otherwise; absent
                       when the node has no int32 bias and shift == a_zero_point
              bias_f   float32 [N]: the node's float32 bias
    outputs [Y]        [M, N] row-major: float32 / float16, or int8 / uint8 / float8e4m3fn (requantized)
    ints    [M, N, K, act, y_zero_point]     act: 0 none, 1 relu, 2 gelu (erf), 3 gelu (tanh)
    floats  [alpha, y_scale]                 y_scale 0 for a float Y
    math    acc = sum_k A[m, k] * B[n, k] (int32; FP8: float32); v = float32(acc + bias_i32[n]) * scale[n];
            v = v * alpha (alpha != 1); v = v + bias_f[n]; v = act(v); Y = v, or
            saturate(round_half_even(v / y_scale) + y_zero_point) (FP8: nearest even, saturated to +-448):
            the reference's steps and roundings, so integer outputs match it bit for bit
    tactic  "lt:<i>" (cuBLASLt heuristic candidate i, IMMA or FP8 kernels; K and N multiples of 16) or "simt"
            (our kernel: any shape, and launches whose A is less than 16-byte aligned)

``qdq`` -- ONNX QuantizeLinear (mode 0) / DequantizeLinear (mode 1), elementwise (kernels_qdq.cpp, kernels/qdq.h)
    inputs  [X, scale, zero_point or -1]
              X          mode 0: float32, float16 or bfloat16; mode 1: int8, uint8, int32 or float8e4m3fn
              scale      float32 [channels]: the node's constant scale (float16 / bfloat16 ones converted exactly)
              zero_point int32 [channels]: the node's constant zero point; absent when it is missing or all zero,
                         and always for float8e4m3fn data (zero point 0)
    outputs [Y]          X's shape; mode 0: the zero point's type (else output_dtype, else uint8); mode 1: the
                         scale's type (float32, float16 or bfloat16)
    ints    [mode, outer, channels, inner]   X as [outer, channels, inner]: per-tensor [1, 1, n], per-axis
                         [prod(shape[:axis]), shape[axis], prod(shape[axis+1:])]; element i uses entry
                         (i / inner) % channels
    math    quantize: clamp(rint(x / scale) + zero) for int8 / uint8 (float32 division, ties to even, NaN gives
            the zero point), fp8_satfinite(x / scale) for float8e4m3fn (nearest even, +-448, NaN kept);
            dequantize: float32(x - zero) * scale, one rounding, then Y's type: ep_trtpy/quantize/numerics.py's
            steps, so outputs match the reference bit for bit (NaN payloads aside)

No quantize/dequantize helper layer is needed at a QMatMul's boundaries: its inputs are quantized tensors and its
output is the float or quantized tensor the node declares.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ep_trtpy.builder.lowering import LowerCtx, LoweringError, lowering
from ep_trtpy.builder.lowering.movement import emit_transpose
from ep_trtpy.ops.internal import MATMUL_ACTIVATIONS
from ep_trtpy.ops.quantize import QLayer, quant_axis, quantize_output_type
from ep_trtpy.ops.registry import OpError
from graph_partitioner.ir import (BFLOAT16, FLOAT, FLOAT8E4M3FN, FLOAT16, INT8, INT32, UINT8, Node, Value,
                                  dtype_name, elem_type)

_WHY = ("INT8/FP8 kernels are not implemented on the GPU yet; quantized layers run on the reference backend "
        "only")
PENDING: dict[str, str] = {
    "ep_trtpy::QConv": f"ep_trtpy::QConv has no GPU kernel: {_WHY}",
    "ep_trtpy::QMatMul": f"ep_trtpy::QMatMul has no GPU kernel: {_WHY}",
    "QuantizeLinear": f"QuantizeLinear is left to the CPU provider on the GPU: {_WHY}",
    "DequantizeLinear": f"DequantizeLinear is left to the CPU provider on the GPU: {_WHY}",
}
"""Op key -> why the cuda backend cannot run it (yet)."""


def gpu_refusals() -> dict[str, str]:
    """Op keys the cuda backend refuses, with the reason (for the partitioner and the builder passes)."""
    return dict(PENDING)


@lowering(*PENDING)
def refuse(ctx: LowerCtx, node: Node) -> None:
    raise LoweringError(f"node '{node.name}': {PENDING[node.key]}")


# ------------------------------------------------------------------------------------------------- QMatMul --
def _fail(node: Node, why: str) -> LoweringError:
    return LoweringError(f"node '{node.name}' ({node.key}): {why}")


def _shape(node: Node, v: Value | None, what: str) -> tuple[int, ...]:
    if v is None or v.shape is None or not all(isinstance(d, int) for d in v.shape):
        raise _fail(node, f"{what} has no static shape")
    return tuple(int(d) for d in v.shape)


def _packed_weight(node: Node, b: np.ndarray, trans_b: bool, zero: np.ndarray, fp8: bool) -> np.ndarray:
    """B as the kernel reads it: row-major [N, K], b_zero_point subtracted (int8), or as is (FP8)."""
    bt = b.T if trans_b else b  # [K, N]
    if fp8:
        return np.ascontiguousarray(bt.T)
    centred = bt.astype(np.int64) - zero.reshape(1, -1)
    if centred.size and (centred.min() < -128 or centred.max() > 127):
        raise _fail(node, f"B - b_zero_point spans {centred.min()}..{centred.max()}, outside int8: the IMMA "
                          f"kernels need int8 weights (a uint8 B needs b_zero_point 128)")
    return np.ascontiguousarray(centred.T.astype(np.int8))


def lower_qmatmul(ctx: LowerCtx, node: Node) -> None:
    """ep_trtpy::QMatMul (A, B, bias?) -> one ``qgemm`` layer (after a ``transpose`` of A when transA=1).

    B and the bias must be build-time constants: B is packed into the [N, K] int8/FP8 layout the tensor cores read,
    and the zero points become the int32 bias term (see ``qgemm`` in the module docstring)."""
    av, bv, biasv, yv = node.input(0), node.input(1), node.input(2), node.outputs[0]
    q = QLayer.of(node)
    act = str(node.attr("activation", "") or "")
    if act not in MATMUL_ACTIVATIONS:
        raise _fail(node, f"activation {act!r} is not one of {MATMUL_ACTIVATIONS}")
    a_shape, b_shape, y_shape = _shape(node, av, "A"), _shape(node, bv, "B"), _shape(node, yv, "the output")
    b = ctx.const_value(bv)
    if b is None:
        raise _fail(node, f"B '{bv.name}' is not a constant; the GPU path packs B at build time")
    if len(a_shape) < 2 or len(b_shape) < 2 or any(d != 1 for d in b_shape[:-2]):
        raise _fail(node, f"A {list(a_shape)} and B {list(b_shape)}: A of rank >= 2 and a 2-D B expected")
    b = np.asarray(b).reshape(b_shape[-2:])
    a_t, b_t = av.dtype, int(bv.dtype)  # type: ignore[union-attr]
    fp8 = a_t == FLOAT8E4M3FN
    if (fp8 or b_t == FLOAT8E4M3FN) and not (fp8 and b_t == FLOAT8E4M3FN):
        raise _fail(node, f"A is {dtype_name(a_t)} and B {dtype_name(b_t)}; FP8 needs both float8e4m3fn")
    if a_t not in (INT8, UINT8, FLOAT8E4M3FN) or b_t not in (INT8, UINT8, FLOAT8E4M3FN):
        raise _fail(node, f"A is {dtype_name(a_t)} and B {dtype_name(b_t)}; int8, uint8 or float8e4m3fn expected")
    trans_a, trans_b = bool(int(node.attr("transA", 0))), bool(int(node.attr("transB", 0)))
    k, m = (a_shape[-2], a_shape[-1]) if trans_a else (a_shape[-1], a_shape[-2])
    kb, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if k != kb:
        raise _fail(node, f"inner dims differ: A {list(a_shape)} (transA={int(trans_a)}) and B {list(b_shape)} "
                          f"(transB={int(trans_b)})")
    rows = int(np.prod(a_shape[:-2], dtype=np.int64)) * m
    if int(np.prod(y_shape, dtype=np.int64)) != rows * n or y_shape[-1] != n:
        raise _fail(node, f"output {list(y_shape)} does not hold the [{rows}, {n}] product")
    q.check_channels(node, n)
    packed = _packed_weight(node, b, trans_b, np.broadcast_to(q.w_zero, (n,)), fp8)
    scale = np.broadcast_to((np.float32(q.in_scale) * q.w_scale).astype(np.float32), (n,))

    bias = ctx.const_value(biasv)
    if biasv is not None and bias is None:
        raise _fail(node, f"bias '{biasv.name}' is not a constant; the GPU path folds it at build time")
    shift = 128 if a_t == UINT8 else 0
    bias_i32 = bias_f = None
    if bias is not None and bias.dtype == np.float32:
        bias_f = np.asarray(bias, np.float32).reshape(n)
    if (bias is not None and bias.dtype == np.int32) or (not fp8 and shift != q.in_zero):
        total = np.zeros(n, np.int64) if bias is None or bias.dtype != np.int32 else bias.astype(np.int64)
        if not fp8:
            total = total + (shift - q.in_zero) * packed.astype(np.int64).sum(axis=1)
        if total.size and (total.min() < -2**31 or total.max() >= 2**31):
            raise _fail(node, "the int32 bias with the zero-point terms leaves int32")
        bias_i32 = total.reshape(n).astype(np.int32)

    y_t = int(yv.dtype)  # type: ignore[arg-type]
    if q.y_scale is None and y_t not in (FLOAT, FLOAT16):
        raise _fail(node, f"the output is {dtype_name(y_t)} without y_scale; float32 or float16 expected")
    if q.y_scale is not None and y_t != q.y_type:
        raise _fail(node, f"the output is {dtype_name(y_t)} but y_type says {dtype_name(q.y_type)}")

    a_id = ctx.tensor(av)  # type: ignore[arg-type]
    if trans_a:
        lead = a_shape[:-2]
        tmp = ctx.temp(a_t, (*lead, m, k), name=f"{node.name}:A^T")
        if emit_transpose(ctx, a_id, tmp, a_shape, [*range(len(lead)), len(lead) + 1, len(lead)],
                          f"{node.name}:transA"):
            a_id = tmp
    weights = [ctx.weight(packed, f"{node.name}:B[N,K]", dtype=FLOAT8E4M3FN if fp8 else INT8),
               ctx.weight(np.ascontiguousarray(scale), f"{node.name}:scale", dtype=FLOAT),
               -1 if bias_i32 is None else ctx.weight(bias_i32, f"{node.name}:bias_i32", dtype=INT32),
               -1 if bias_f is None else ctx.weight(bias_f, f"{node.name}:bias_f", dtype=FLOAT)]
    a_view = ctx.view(a_id, a_t, [rows, k], name=f"{node.name}:A[M,K]")
    y_id = ctx.tensor(yv)
    act_code = MATMUL_ACTIVATIONS.index(act)
    ctx.emit("qgemm", [a_view, *weights], [y_id], ints=[rows, n, k, act_code, q.y_zero],
             floats=[float(node.attr("alpha", 1.0)), 0.0 if q.y_scale is None else q.y_scale], name=node.name,
             meta={"op": node.key, "activation": act, "precision": "fp8" if fp8 else "int8",
                   "a_type": dtype_name(a_t), "y_type": dtype_name(y_t)})


# ------------------------------------------------------------------------ QuantizeLinear / DequantizeLinear --
_FLOATS = (FLOAT, FLOAT16, BFLOAT16)


def _const_operand(ctx: LowerCtx, node: Node, i: int, what: str) -> np.ndarray | None:
    v = node.input(i)
    if v is None:
        return None
    arr = ctx.const_value(v)
    if arr is None:
        raise _fail(node, f"{what} '{v.name}' is not a constant; the GPU path reads it from the plan's weights")
    return np.asarray(arr)


def _lower_qdq(ctx: LowerCtx, node: Node, mode: int) -> None:
    """One ``qdq`` layer (see the module docstring): mode 0 quantizes, mode 1 dequantizes."""
    xv, yv = node.input(0), node.outputs[0]
    x_shape, y_shape = _shape(node, xv, "the input"), _shape(node, yv, "the output")
    scale = _const_operand(ctx, node, 1, "scale")
    zero = _const_operand(ctx, node, 2, "zero point")
    if scale is None:
        raise _fail(node, "has no scale input")
    if x_shape != y_shape:
        raise _fail(node, f"the input {list(x_shape)} and the output {list(y_shape)} differ in shape")
    try:
        axis = quant_axis(node, scale.shape, x_shape)
        q_t = quantize_output_type(node, None if zero is None else elem_type(zero.dtype)) if mode == 0 else None
    except OpError as e:
        raise LoweringError(str(e)) from None
    x_t, y_t = int(xv.dtype), int(yv.dtype)  # type: ignore[union-attr,arg-type]
    if mode == 0:
        if x_t not in _FLOATS or y_t != q_t:
            raise _fail(node, f"quantizes {dtype_name(x_t)} to {dtype_name(y_t)}; float32, float16 or bfloat16 "
                              f"to {dtype_name(q_t)} (the zero point's or output_dtype's type) expected")
    elif x_t not in (INT8, UINT8, INT32, FLOAT8E4M3FN) or y_t not in _FLOATS or y_t != elem_type(scale.dtype):
        s_t = dtype_name(elem_type(scale.dtype))
        raise _fail(node, f"dequantizes {dtype_name(x_t)} to {dtype_name(y_t)} with a {s_t} scale; int8, uint8, "
                          f"int32 or float8e4m3fn to the scale's type (float32, float16 or bfloat16) expected")
    n = int(np.prod(x_shape, dtype=np.int64))
    if n == 0:
        ctx.tensor(yv)
        return
    if axis is None:
        outer, channels, inner = 1, 1, n
    else:
        outer, channels = int(np.prod(x_shape[:axis], dtype=np.int64)), x_shape[axis]
        inner = int(np.prod(x_shape[axis + 1:], dtype=np.int64))
    fp8 = FLOAT8E4M3FN in (x_t, y_t)
    z_id = -1
    if zero is not None and not fp8 and np.any(zero):
        z_id = ctx.weight(np.ascontiguousarray(np.broadcast_to(zero.astype(np.int32).reshape(-1), (channels,))),
                          f"{node.name}:zero_point", dtype=INT32)
    s_id = ctx.weight(np.ascontiguousarray(scale.astype(np.float32).reshape(channels)), f"{node.name}:scale",
                      dtype=FLOAT)
    ctx.emit("qdq", [ctx.tensor(xv), s_id, z_id], [ctx.tensor(yv)],  # type: ignore[arg-type]
             ints=[mode, outer, channels, inner], name=node.name,
             meta={"op": node.key, "axis": -1 if axis is None else axis, "x_type": dtype_name(x_t),
                   "y_type": dtype_name(y_t)})


def lower_quantize_linear(ctx: LowerCtx, node: Node) -> None:
    """QuantizeLinear (x, y_scale, y_zero_point?) -> one ``qdq`` layer of mode 0; the scale and zero point must be
    build-time constants (per-tensor or per-axis; block_size is refused)."""
    _lower_qdq(ctx, node, 0)


def lower_dequantize_linear(ctx: LowerCtx, node: Node) -> None:
    """DequantizeLinear (x, x_scale, x_zero_point?) -> one ``qdq`` layer of mode 1, constants as for Quantize."""
    _lower_qdq(ctx, node, 1)


_READY: dict[str, Callable[[LowerCtx, Node], None]] = {"ep_trtpy::QMatMul": lower_qmatmul,
                                                       "QuantizeLinear": lower_quantize_linear,
                                                       "DequantizeLinear": lower_dequantize_linear}
"""GPU lowerings that are written; each is registered once its op key leaves :data:`PENDING`."""

for _key, _fn in _READY.items():
    if _key not in PENDING:
        lowering(_key)(_fn)
