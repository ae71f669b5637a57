"""Window geometry shared by Conv, ConvTranspose and the pools: explicit pads from ``auto_pad``, output sizes with
``ceil_mode``, and sliding-window views.

For a spatial axis of input size ``n``, kernel ``k``, stride ``s``, dilation ``d`` (effective kernel
``e = (k - 1) * d + 1``) and pads ``b`` (begin), ``a`` (end):

* ``NOTSET``: ``out = floor((n + b + a - e) / s) + 1`` (``ceil`` with ``ceil_mode=1``, minus one when the last
  window would start past ``n + b``, i.e. entirely in the end padding);
* ``VALID``: no padding, ``out = floor((n - e) / s) + 1``;
* a window larger than the padded input (``span = n + b + a - e < 0``) is an error for convolutions; for pools
  (``pooling=True``) it follows ONNX Runtime's CPU provider, which divides truncating toward zero:
  ``out = ceil(span / s) + 1`` (0 or 1: an empty output, or one window that holds what the input has), and an
  error only when that is negative (``span <= -2 * s``);
* ``SAME_UPPER`` / ``SAME_LOWER``: ``out = ceil(n / s)``, total padding ``max(0, (out - 1) * s + e - n)`` split in
  half, the odd one at the end (UPPER) or at the beginning (LOWER).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ep_trtpy.ops._common import fail, spatial_attr
from graph_partitioner.ir import Node

AUTO_PADS = ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")


def explicit_pads(node: Node, n_sp: int) -> list[int]:
    pads = node.attr("pads")
    if pads is None:
        return [0] * (2 * n_sp)
    pads = [int(p) for p in pads]
    if len(pads) != 2 * n_sp:
        raise fail(node, f"pads={pads} has {len(pads)} entries; {2 * n_sp} expected for {n_sp} spatial axes")
    if any(p < 0 for p in pads):
        raise fail(node, f"pads={pads} has a negative entry")
    return pads


def window_geometry(node: Node, in_sp: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
                    dilations: Sequence[int], ceil_mode: bool = False, pooling: bool = False
                    ) -> tuple[list[int], list[int], list[int]]:
    """(pads_begin, pads_end, output sizes) for a convolution or (``pooling``) pooling window (see the module
    docstring)."""
    n_sp = len(in_sp)
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad not in AUTO_PADS:
        raise fail(node, f"auto_pad={auto_pad!r} is not one of {', '.join(AUTO_PADS)}")
    if any(s <= 0 for s in strides) or any(d <= 0 for d in dilations) or any(k <= 0 for k in kernel):
        raise fail(node, f"kernel {list(kernel)}, strides {list(strides)} and dilations {list(dilations)} must be "
                         "positive")
    begin, end, out = [], [], []
    pads = explicit_pads(node, n_sp) if auto_pad == "NOTSET" else [0] * (2 * n_sp)
    for i in range(n_sp):
        n, k, s, d = int(in_sp[i]), int(kernel[i]), int(strides[i]), int(dilations[i])
        e = (k - 1) * d + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-n // s)
            total = max(0, (o - 1) * s + e - n)
            small = total // 2
            b, a = (small, total - small) if auto_pad == "SAME_UPPER" else (total - small, small)
        else:
            b, a = pads[i], pads[i + n_sp]
            span = n + b + a - e
            if span < 0 and (not pooling or span <= -2 * s):
                raise fail(node, f"window of {e} (kernel {k}, dilation {d}) is larger than spatial axis {i} of size "
                                 f"{n} with pads {b}+{a}" + (f" by {-span} (a pool allows less than twice the "
                                                            f"stride {s})" if pooling else ""))
            if ceil_mode or span < 0:  # for span < 0, ORT's division toward zero is the ceiling
                o = -(-span // s) + 1
                if ceil_mode and (o - 1) * s >= n + b:
                    o -= 1
            else:
                o = span // s + 1
        begin.append(b)
        end.append(a)
        out.append(o)
    return begin, end, out


def conv_params(node: Node, n_sp: int, kernel_from_w: Sequence[int] | None = None
                ) -> tuple[list[int], list[int], list[int]]:
    """(kernel_shape, strides, dilations) of a Conv/Pool node (kernel_shape falls back to W's spatial dims)."""
    if node.attr("kernel_shape") is not None:
        kernel = spatial_attr(node, "kernel_shape", n_sp, 1)
        if kernel_from_w is not None and list(kernel) != list(kernel_from_w):
            raise fail(node, f"kernel_shape={kernel} does not match W's spatial shape {list(kernel_from_w)}")
    elif kernel_from_w is not None:
        kernel = list(kernel_from_w)
    else:
        raise fail(node, "kernel_shape is required")
    return kernel, spatial_attr(node, "strides", n_sp, 1), spatial_attr(node, "dilations", n_sp, 1)


def pad_spatial(x: np.ndarray, begin: Sequence[int], end: Sequence[int], value: float | int = 0) -> np.ndarray:
    """x [N, C, *spatial] padded on the spatial axes with `value` (x itself when no padding)."""
    if not any(begin) and not any(end):
        return x
    width = [(0, 0), (0, 0)] + [(int(b), int(a)) for b, a in zip(begin, end)]
    return np.pad(x, width, mode="constant", constant_values=value)


def windows(xp: np.ndarray, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int],
            out: Sequence[int]) -> np.ndarray:
    """A read-only view [N, C, *out, *kernel] of the padded input's sliding windows (no copy)."""
    n_sp = len(kernel)
    st = xp.strides
    shape = xp.shape[:2] + tuple(out) + tuple(kernel)
    strides = st[:2] + tuple(st[2 + i] * strides[i] for i in range(n_sp)) + \
        tuple(st[2 + i] * dilations[i] for i in range(n_sp))
    if any(o == 0 for o in out) or xp.size == 0:
        return np.zeros(shape, xp.dtype)
    return np.lib.stride_tricks.as_strided(xp, shape=shape, strides=strides, writeable=False)


def overhang(in_sp: Sequence[int], begin: Sequence[int], end: Sequence[int], kernel: Sequence[int],
             strides: Sequence[int], dilations: Sequence[int], out: Sequence[int]) -> list[int]:
    """Per axis, how far the last window reaches past the end padding (> 0 only with ceil_mode)."""
    extra = []
    for i in range(len(in_sp)):
        need = (out[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 if out[i] > 0 else 0
        extra.append(max(0, need - (in_sp[i] + begin[i] + end[i])))
    return extra
