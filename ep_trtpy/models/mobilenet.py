"""MobileNetV2 (the torchvision layout) as the PyTorch exporter writes it at opset 17.

    x[batch,3,H,W] -> Conv 3x3/2 (32 ch) -> BN -> ReLU6
      -> inverted residual blocks, settings (t expansion, c channels, n repeats, s stride):
           (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1)
         block: [Conv1x1 expand -> BN -> ReLU6 when t != 1] -> depthwise Conv3x3/s (group = channels) -> BN -> ReLU6
                -> Conv1x1 project -> BN;  + x when stride 1 and channels unchanged
      -> Conv1x1 (1280 ch) -> BN -> ReLU6 -> GlobalAveragePool -> Flatten -> Gemm(transB=1) -> logits

ReLU6 is ``Clip(x, 0, 6)`` with min and max as initializer inputs (opset >= 11). Channel counts are multiplied by
``width`` and rounded to a multiple of 8 as torchvision's ``_make_divisible`` does; the last channel count is
``1280 * max(1, width)``.
"""

from __future__ import annotations

import numpy as np
import onnx

from ep_trtpy.models._graph import ELEM_FLOAT, GraphWriter, batch_norm, conv_weight, dense_weight

SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1))
DEFAULTS = {"width": 1.0, "num_classes": 1000, "image_size": 224, "repeats": None}
CI = {"width": 0.25, "num_classes": 10, "image_size": 64, "repeats": 1}


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of `divisor`, never going below 90% of v (torchvision's rule)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _conv_bn(w: GraphWriter, x: str, c_in: int, c_out: int, k: int, stride: int, group: int, relu6: bool,
             gamma: float = 1.0) -> str:
    with w.scope("0"):
        wt = conv_weight(w, "weight", c_out, c_in // group, (k, k))
        y = w.op("Conv", [x, wt], kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4,
                 dilations=[1, 1], group=group)
    y = batch_norm(w, y, c_out, gamma_mean=gamma, gamma_std=0.1 * gamma, name="1")
    if relu6:
        with w.scope("2"):
            y = w.op("Clip", [y, w.const(0.0, np.float32), w.const(6.0, np.float32)])
    return y


def build(width: float = 1.0, num_classes: int = 1000, image_size: int = 224, repeats: int | None = None,
          seed: int = 0) -> onnx.ModelProto:
    """MobileNetV2 (or a reduced variant: width multiplier, ``repeats`` caps the blocks per setting).

    Inputs: ``input`` float32 [batch, 3, image_size, image_size]. Output: ``logits`` float32 [batch, num_classes].
    """
    if width <= 0 or image_size < 32:
        raise ValueError(f"mobilenetv2: width must be > 0 and image_size >= 32 (got {width}, {image_size})")
    w = GraphWriter("mobilenetv2", seed)
    x = w.add_input("input", ELEM_FLOAT, ["batch", 3, image_size, image_size])
    c_in = make_divisible(32 * width)
    last = make_divisible(1280 * max(1.0, width))
    idx = 0
    with w.scope("features"):
        with w.scope(str(idx)):
            y = _conv_bn(w, x, 3, c_in, 3, 2, 1, relu6=True)
        idx += 1
        for t, c, n, s in SETTINGS:
            c_out = make_divisible(c * width)
            for i in range(n if repeats is None else min(n, int(repeats))):
                stride = s if i == 0 else 1
                hidden = int(round(c_in * t))
                with w.scope(str(idx)), w.scope("conv"):
                    h = y
                    layers = 0
                    if t != 1:
                        with w.scope(str(layers)):
                            h = _conv_bn(w, h, c_in, hidden, 1, 1, 1, relu6=True)
                        layers += 1
                    with w.scope(str(layers)):
                        h = _conv_bn(w, h, hidden, hidden, 3, stride, hidden, relu6=True)
                    with w.scope(str(layers + 1)):
                        h = _conv_bn(w, h, hidden, c_out, 1, 1, 1, relu6=False, gamma=0.5)
                if stride == 1 and c_in == c_out:
                    with w.scope(str(idx)):
                        h = w.op("Add", [y, h])
                y = h
                c_in = c_out
                idx += 1
        with w.scope(str(idx)):
            y = _conv_bn(w, y, c_in, last, 1, 1, 1, relu6=True)
    y = w.op("GlobalAveragePool", [y])
    y = w.op("Flatten", [y], axis=1)
    with w.scope("classifier"), w.scope("1"):
        fc_w = dense_weight(w, "weight", last, num_classes, std=2.0 / last ** 0.5, transposed=True)
        fc_b = w.normal("bias", (num_classes,), std=0.01)
        y = w.op("Gemm", [y, fc_w, fc_b], alpha=1.0, beta=1.0, transB=1)
    w.add_output(y, "logits", ELEM_FLOAT, ["batch", num_classes])
    return w.model(17, doc=f"MobileNetV2 layout, width={width}, repeats={repeats}, seed={seed}")
