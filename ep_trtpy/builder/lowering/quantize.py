"""Lowering of the quantization family: none yet. QuantizeLinear, DequantizeLinear, ``ep_trtpy::QConv`` and
``ep_trtpy::QMatMul`` run on the reference backend only (exact integer and FP8 emulation, ep_trtpy/ops/quantize.py).

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
* ``ep_trtpy::QMatMul`` (A, B int8/FP8, bias int32 or float32 [N]): cuBLASLt IMMA (int8, int32 accumulation) or
  FP8 GEMM with the same epilogue and per-column b_scale (a vector alpha); transA/transB/alpha as FusedMatMul.
* QuantizeLinear / DequantizeLinear (per-tensor or per-axis) as pointwise kernels at the precision boundaries.
"""

from __future__ import annotations

from ep_trtpy.builder.lowering import LowerCtx, LoweringError, lowering
from graph_partitioner.ir import Node

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
