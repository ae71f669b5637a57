"""ResNet-50 (v1.5, the torchvision layout) as the PyTorch exporter writes it at opset 17.

    x[batch,3,H,W] -> Conv 7x7/2 -> BatchNormalization -> Relu -> MaxPool 3x3/2
      -> 4 stages of bottleneck blocks (default [3, 4, 6, 3], planes 64/128/256/512, expansion 4):
           y = Relu(BN(Conv1x1(x))) -> Relu(BN(Conv3x3/s(y))) -> BN(Conv1x1(y))      (stride on the 3x3)
           out = Relu(y + shortcut),  shortcut = BN(Conv1x1/s(x)) on the first block of a stage, else x
      -> GlobalAveragePool -> Flatten -> Gemm(transB=1) -> logits[batch, num_classes]

BatchNormalization stays unfolded (exporters in eval mode write it after each bias-free Conv). Weights are He
initialised; BN statistics are near the identity, and the last BN of each residual branch has a smaller gamma
(0.3, in the spirit of torchvision's zero_init_residual) so activations stay O(1) through 16 residual additions.
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from ep_trtpy.models._graph import ELEM_FLOAT, GraphWriter, batch_norm, conv_weight, dense_weight

DEFAULTS = {"blocks": (3, 4, 6, 3), "width": 64, "num_classes": 1000, "image_size": 224}
CI = {"blocks": (1, 1, 1, 1), "width": 8, "num_classes": 10, "image_size": 64}


def _conv_bn(w: GraphWriter, x: str, c_in: int, c_out: int, k: int, stride: int, conv: str, bn: str,
             relu: bool, gamma: float = 1.0) -> str:
    with w.scope(conv):
        wt = conv_weight(w, "weight", c_out, c_in, (k, k))
        y = w.op("Conv", [x, wt], kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4,
                 dilations=[1, 1], group=1)
    y = batch_norm(w, y, c_out, gamma_mean=gamma, gamma_std=0.1 * gamma, name=bn)
    if relu:
        with w.scope(bn):
            y = w.op("Relu", [y], name="relu")
    return y


def _bottleneck(w: GraphWriter, x: str, c_in: int, planes: int, stride: int, downsample: bool) -> str:
    c_out = planes * 4
    y = _conv_bn(w, x, c_in, planes, 1, 1, "conv1", "bn1", relu=True)
    y = _conv_bn(w, y, planes, planes, 3, stride, "conv2", "bn2", relu=True)
    y = _conv_bn(w, y, planes, c_out, 1, 1, "conv3", "bn3", relu=False, gamma=0.3)
    if downsample:
        with w.scope("downsample"):
            shortcut = _conv_bn(w, x, c_in, c_out, 1, stride, "0", "1", relu=False)
    else:
        shortcut = x
    out = w.op("Add", [y, shortcut])
    return w.op("Relu", [out], name="relu")


def build(blocks: Sequence[int] = DEFAULTS["blocks"], width: int = DEFAULTS["width"],
          num_classes: int = DEFAULTS["num_classes"], image_size: int = DEFAULTS["image_size"],
          seed: int = 0) -> onnx.ModelProto:
    """ResNet-50 (or a reduced variant: fewer blocks per stage, a narrower base width).

    Inputs: ``input`` float32 [batch, 3, image_size, image_size]. Output: ``logits`` float32 [batch, num_classes].
    """
    blocks = tuple(int(b) for b in blocks)
    if len(blocks) != 4 or min(blocks) < 1:
        raise ValueError(f"resnet50: 'blocks' must be 4 positive counts (one per stage), got {blocks}")
    if width < 1 or image_size < 32:
        raise ValueError(f"resnet50: width must be >= 1 and image_size >= 32 (got width={width}, "
                         f"image_size={image_size})")
    w = GraphWriter("resnet50", seed)
    x = w.add_input("input", ELEM_FLOAT, ["batch", 3, image_size, image_size])
    y = _conv_bn(w, x, 3, width, 7, 2, "conv1", "bn1", relu=True)
    y = w.op("MaxPool", [y], name="maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
             ceil_mode=0, dilations=[1, 1])
    c_in = width
    for stage, n in enumerate(blocks):
        planes = width * (2 ** stage)
        with w.scope(f"layer{stage + 1}"):
            for b in range(n):
                stride = 2 if (stage > 0 and b == 0) else 1
                with w.scope(str(b)):
                    y = _bottleneck(w, y, c_in, planes, stride, downsample=(b == 0))
                c_in = planes * 4
    y = w.op("GlobalAveragePool", [y], name="avgpool")
    y = w.op("Flatten", [y], axis=1)
    with w.scope("fc"):
        fc_w = dense_weight(w, "weight", c_in, num_classes, std=0.5 / c_in ** 0.5, transposed=True)
        fc_b = w.normal("bias", (num_classes,), std=0.01)
        y = w.op("Gemm", [y, fc_w, fc_b], alpha=1.0, beta=1.0, transB=1)
    w.add_output(y, "logits", ELEM_FLOAT, ["batch", num_classes])
    return w.model(17, doc=f"ResNet-50 layout, blocks={list(blocks)}, width={width}, seed={seed}")
