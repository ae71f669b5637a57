"""Each engine layer's work and its achieved rate against the GPU's limits, for ``ep-trtpy profile``.

Work of a layer (from the plan: kernel parameters and tensor shapes):

* ``gemm`` (ints ``[M, N, K, batch, ...]``): 2·M·N·K·batch floating-point operations;
* ``conv`` (X, W [K, C/g, R...] or [K, R..., C/g] -> Y): 2·N·K·P·Q·(C/g)·R·S = 2·|Y|·|W|/K, whatever the layout;
* ``conv_transpose`` (X [N, C, H, W], W [C, K/g, R, S]): 2·|X|·|W|/C;
* ``attention`` (ints ``[B, H, Sq, Skv, D, Dv, ...]``): 2·B·H·Sq·Skv·(D + Dv), the two products (4·B·H·Sq·Skv·D
  when Dv = D);
* every layer: the bytes of its inputs and outputs (each distinct tensor once, weights included).

A compute layer (the four kernels above) is judged in TFLOP/s, every other layer in GB/s. Its roofline time is
the larger of flops / peak and bytes / bandwidth (a memory layer: bytes / bandwidth); the *share* is roofline time
over measured time (100 % = at the limit).

The limits are one place, :data:`H200`: readings on this workplace's H200 machines
(``/work/.library/device/KINDS.md``, 2026-10-28 and 2026-11-04): a device-to-device copy through PyTorch moved
about 4.3 TB/s counting bytes read and written; an 8192x8192x8192 bf16 matrix product ran at 769-798 TFLOP/s on
random data (790 taken). FP16 is taken at the BF16 rate (the same tensor-core rate on Hopper) and TF32 at half
of it (NVIDIA's ratio, not measured here). float32 layers are held to the TF32 rate even in strict FP32 engines
(then the share is optimistic about what remains).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

COMPUTE_KERNELS = ("gemm", "conv", "conv_transpose", "attention")
ELEMENT_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}
"""ONNX element type -> bytes."""


@dataclass(frozen=True)
class Limits:
    """A GPU's measured limits."""

    name: str
    bytes_per_s: float
    flops_16bit: float
    flops_tf32: float
    source: str


H200 = Limits("NVIDIA H200", 4.3e12, 790e12, 395e12,
              "measured on this workplace's H200s (/work/.library/device/KINDS.md): copy 4.3 TB/s, bf16 GEMM "
              "790 TFLOP/s on random data; TF32 taken as half")


@dataclass(frozen=True)
class Work:
    """What one layer has to do."""

    flops: float
    """Floating-point operations (0 for a memory layer)."""
    bytes: int
    """Bytes of its inputs and outputs."""
    dtype: int
    """ONNX element type of its first input (the compute layers' operand type)."""

    @property
    def compute(self) -> bool:
        return self.flops > 0


def _numel(shape: Sequence[int]) -> int:
    return math.prod(int(d) for d in shape)


def tensor_bytes(tensor: Any) -> int:
    return _numel(tensor.shape) * ELEMENT_BYTES.get(int(tensor.dtype), 4)


def layer_flops(kernel: str, ints: Sequence[int], shapes_in: Sequence[Sequence[int] | None],
                shapes_out: Sequence[Sequence[int]]) -> float:
    """Floating-point operations of one layer (0 for kernels that are not :data:`COMPUTE_KERNELS`)."""
    if kernel == "gemm":
        m, n, k, batch = ints[:4]
        return 2.0 * m * n * k * batch
    if kernel == "conv":
        w, y = shapes_in[1], shapes_out[0]
        return 2.0 * _numel(y) * _numel(w) / w[0] if w else 0.0
    if kernel == "conv_transpose":
        x, w = shapes_in[0], shapes_in[1]
        return 2.0 * _numel(x) * _numel(w) / w[0] if x and w else 0.0
    if kernel == "attention":
        b, h, sq, skv, d, dv = ints[:6]
        return 2.0 * b * h * sq * skv * (d + dv)
    return 0.0


def layer_work(layer: Any, tensors: Sequence[Any]) -> Work:
    """The :class:`Work` of a plan layer (``LayerSpec``) over the plan's tensors (``TensorSpec``)."""
    ins = [tensors[i] if i >= 0 else None for i in layer.inputs]
    outs = [tensors[i] for i in layer.outputs]
    flops = layer_flops(layer.kernel, layer.ints, [t.shape if t is not None else None for t in ins],
                        [t.shape for t in outs])
    seen = {t.id: t for t in [*ins, *outs] if t is not None}
    first = next((t for t in ins if t is not None), outs[0] if outs else None)
    return Work(flops, sum(tensor_bytes(t) for t in seen.values()), int(first.dtype) if first is not None else 1)


def roofline_ms(work: Work, limits: Limits = H200) -> float:
    """The fastest this work can run on a GPU with ``limits``, in ms."""
    memory = work.bytes / limits.bytes_per_s
    if not work.compute:
        return memory * 1e3
    peak = limits.flops_16bit if ELEMENT_BYTES.get(work.dtype, 4) <= 2 else limits.flops_tf32
    return max(memory, work.flops / peak) * 1e3


@dataclass(frozen=True)
class Achieved:
    value: float
    unit: str
    """TFLOP/s for a compute layer, GB/s otherwise."""
    share: float
    """Roofline time / measured time."""

    def text(self) -> str:
        return f"{self.value:8.1f} {self.unit:7s} {self.share:6.1%}"


def achieved(work: Work, ms: float, limits: Limits = H200) -> Achieved:
    """What one layer achieved in ``ms`` and its share of the roofline."""
    seconds = max(ms, 1e-9) * 1e-3
    if work.compute:
        value, unit = work.flops / seconds / 1e12, "TFLOP/s"
    else:
        value, unit = work.bytes / seconds / 1e9, "GB/s"
    return Achieved(value, unit, roofline_ms(work, limits) / max(ms, 1e-9))
