"""Generated ONNX architectures for tests, samples and benchmarks (no PyTorch needed).

Every generator writes the graph the way a framework exporter does (opset 17, unless a knob asks otherwise), with
seeded random weights at realistic scales, a dynamic ``batch`` dimension (and ``sequence`` for the encoder), and
passes ``onnx.checker``::

    from ep_trtpy import models
    model = models.build("resnet50")                     # onnx.ModelProto, full size
    small = models.build("bert", ci=True, form="decomposed")
    feeds = models.make_feeds("bert", batch=2, seed=0, ci=True)

or ``python -m ep_trtpy.models NAME -o FILE.onnx [--ci] [--KNOB VALUE ...]`` (``--list`` shows the knobs).

``ci=True`` selects the reduced size each architecture declares (seconds on the CPU reference backend); explicit
keyword arguments override either size.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from ep_trtpy.models import bert, mobilenet, resnet, yolo

__all__ = ["ARCHS", "Arch", "build", "input_specs", "make_feeds", "names"]


def _image_feeds(input_name: str, distribution: str) -> Callable[..., dict[str, np.ndarray]]:
    def feeds(batch: int, seed: int = 0, image_size: int = 224, **_: Any) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        shape = (batch, 3, image_size, image_size)
        if distribution == "normal":  # an ImageNet-normalised image
            x = rng.standard_normal(shape, dtype=np.float32)
        else:  # pixels / 255
            x = rng.uniform(0.0, 1.0, shape).astype(np.float32)
        return {input_name: x}

    return feeds


@dataclass(frozen=True)
class Arch:
    """One generated architecture: its builder, knob defaults (full and reduced) and its feeds."""

    name: str
    builder: Callable[..., onnx.ModelProto]
    defaults: dict[str, Any]
    ci: dict[str, Any]
    feeds: Callable[..., dict[str, np.ndarray]]
    description: str
    feed_defaults: dict[str, Any] = field(default_factory=dict)
    """Knobs that only shape the feeds (the encoder's ``sequence``), with their full-size defaults."""
    feed_ci: dict[str, Any] = field(default_factory=dict)

    def knobs(self, ci: bool = False, **overrides: Any) -> dict[str, Any]:
        """Resolved builder + feed knobs (defaults, then the reduced size when ``ci``, then ``overrides``)."""
        k = {**self.defaults, **self.feed_defaults}
        if ci:
            k.update(self.ci)
            k.update(self.feed_ci)
        unknown = set(overrides) - set(k)
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)} for architecture '{self.name}'; valid: "
                             f"{sorted(k)}")
        k.update(overrides)
        return k

    def build_kwargs(self, knobs: dict[str, Any]) -> dict[str, Any]:
        params = inspect.signature(self.builder).parameters
        return {k: v for k, v in knobs.items() if k in params}


ARCHS: dict[str, Arch] = {
    "resnet50": Arch("resnet50", resnet.build, dict(resnet.DEFAULTS), dict(resnet.CI),
                     _image_feeds("input", "normal"),
                     "ResNet-50 v1.5 (torchvision layout, unfolded BatchNormalization), logits [batch, classes]"),
    "mobilenetv2": Arch("mobilenetv2", mobilenet.build, dict(mobilenet.DEFAULTS), dict(mobilenet.CI),
                        _image_feeds("input", "normal"),
                        "MobileNetV2 (depthwise convs, Clip(0,6) as ReLU6, BatchNormalization), logits"),
    "bert": Arch("bert", bert.build, dict(bert.DEFAULTS), dict(bert.CI), bert.make_feeds,
                 "BERT-base encoder (fused: LayerNormalization, or decomposed; MatMul or Einsum attention), "
                 "last_hidden_state [batch, sequence, hidden]",
                 feed_defaults={"sequence": 128}, feed_ci={"sequence": 16}),
    "yolo": Arch("yolo", yolo.build, dict(yolo.DEFAULTS), dict(yolo.CI), _image_feeds("images", "uniform"),
                 "YOLO-style detector (SiLU, C2f with Split/Concat, SPPF, Resize x2, DFL Softmax head), "
                 "output0 [batch, 4 + classes, anchors]"),
}


def names() -> list[str]:
    return list(ARCHS)


def _arch(name: str) -> Arch:
    try:
        return ARCHS[name]
    except KeyError:
        raise ValueError(f"unknown architecture '{name}'; available: {', '.join(ARCHS)}") from None


def build(name: str, ci: bool = False, seed: int = 0, **overrides: Any) -> onnx.ModelProto:
    """The ONNX model of architecture ``name`` (full size, or the reduced CI size), knobs overridable."""
    arch = _arch(name)
    knobs = arch.knobs(ci, **overrides)
    return arch.builder(**arch.build_kwargs(knobs), seed=seed)


def make_feeds(name: str, batch: int = 1, seed: int = 0, ci: bool = False, **overrides: Any) -> dict[str, np.ndarray]:
    """Seeded inputs for ``build(name, ci, **overrides)`` at this batch size (same knobs as the model)."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    arch = _arch(name)
    knobs = arch.knobs(ci, **overrides)
    return arch.feeds(batch, seed=seed, **knobs)


def input_specs(name: str, batch: int = 1, ci: bool = False, **overrides: Any) -> dict[str, tuple[tuple[int, ...],
                                                                                             np.dtype]]:
    """Default input shapes and dtypes: {input name: (shape, dtype)}."""
    return {k: (tuple(v.shape), v.dtype) for k, v in make_feeds(name, batch, 0, ci, **overrides).items()}
