"""Resize: our reference against onnxruntime's CPU provider for every coordinate transformation, nearest mode,
scales and sizes, opsets 10 to 19; and the deprecated Upsample (opsets 7 and 9)."""

from __future__ import annotations

import numpy as np
import pytest
from ops_harness import Case, case, check

RNG = np.random.default_rng(21)
X = RNG.standard_normal((1, 2, 5, 7)).astype(np.float32)
NONE = np.zeros((0,), np.float32)


def scales(*v: float) -> np.ndarray:
    return np.array(v, np.float32)


def sizes(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


CASES: list[Case] = []
for coord in ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "half_pixel_symmetric",
              "tf_half_pixel_for_nn"):
    opset = 13 if coord == "tf_half_pixel_for_nn" else 19
    modes = [("nearest", nm) for nm in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")]
    if coord != "tf_half_pixel_for_nn":
        modes.append(("linear", None))
    for mode, near in modes:
        attrs = {"mode": mode, "coordinate_transformation_mode": coord}
        if near:
            attrs["nearest_mode"] = near
        tag = f"{coord}-{mode}" + (f"-{near}" if near else "")
        CASES += [
            case(f"{tag}-upscale", "Resize", [X, NONE, scales(1, 1, 2, 1.5)], attrs, const=(1, 2), opset=opset),
            case(f"{tag}-downscale", "Resize", [X, NONE, scales(1, 1, 0.6, 0.5)], attrs, const=(1, 2), opset=opset),
            case(f"{tag}-sizes", "Resize", [X, NONE, NONE, sizes(1, 2, 3, 11)], attrs, const=(1, 2, 3), opset=opset),
            case(f"{tag}-sizes-to-1", "Resize", [X, NONE, NONE, sizes(1, 2, 1, 9)], attrs, const=(1, 2, 3),
                 opset=opset),
        ]
CASES += [
    case("opset10-nearest-up", "Resize", [X, scales(1, 1, 2, 1.5)], {"mode": "nearest"}, const=(1,), opset=10),
    case("opset10-nearest-down", "Resize", [X, scales(1, 1, 0.6, 0.5)], {"mode": "nearest"}, const=(1,), opset=10),
    case("opset10-linear", "Resize", [X, scales(1, 1, 2, 1.5)], {"mode": "linear"}, const=(1,), opset=10),
    case("opset11-linear-scales", "Resize", [X, NONE, scales(1, 1, 2, 1.5)], {"mode": "linear"}, const=(1, 2),
         opset=11),
    case("opset11-linear-sizes", "Resize", [X, NONE, NONE, sizes(1, 2, 8, 3)], {"mode": "linear"}, const=(1, 2, 3),
         opset=11),
    case("default-attrs-nearest", "Resize", [X, NONE, scales(1, 1, 3, 3)], {}, const=(1, 2), opset=13),
    case("f16-linear", "Resize", [X.astype(np.float16), NONE, scales(1, 1, 2, 2)], {"mode": "linear"}, const=(1, 2),
         opset=13),
    case("3d-trilinear", "Resize", [RNG.standard_normal((1, 1, 3, 4, 5)).astype(np.float32), NONE,
                                    scales(1, 1, 2, 0.5, 1.5)], {"mode": "linear"}, const=(1, 2), opset=13),
    case("opset18-axes", "Resize", [X, NONE, scales(2, 3)], {"mode": "linear", "axes": [-2, -1]}, const=(1, 2),
         opset=18),
    case("opset18-not-larger", "Resize", [X, NONE, NONE, sizes(10, 10)],
         {"mode": "linear", "axes": [2, 3], "keep_aspect_ratio_policy": "not_larger"}, const=(1, 2, 3), opset=18),
    case("opset18-not-smaller", "Resize", [X, NONE, NONE, sizes(10, 10)],
         {"mode": "nearest", "axes": [2, 3], "keep_aspect_ratio_policy": "not_smaller"}, const=(1, 2, 3), opset=18),
    case("int32-nearest", "Resize", [(X * 10).astype(np.int32), NONE, scales(1, 1, 2, 2)], {"mode": "nearest"},
         const=(1, 2), opset=13),
    case("absent-roi", "Resize", [X, None, scales(1, 1, 2, 2)], {"mode": "nearest"}, const=(2,), opset=13),
]
# Upsample (deprecated since opset 10) is Resize-10 with the scales as an input (9) or an attribute (7).
CASES += [
    case("upsample9-nearest", "Upsample", [X, scales(1, 1, 2, 3)], {"mode": "nearest"}, const=(1,), opset=9),
    case("upsample9-nearest-fractional", "Upsample", [X, scales(1, 1, 1.5, 2.5)], {"mode": "nearest"}, const=(1,),
         opset=9),
    case("upsample9-linear", "Upsample", [X, scales(1, 1, 2, 1.5)], {"mode": "linear"}, const=(1,), opset=9),
    case("upsample7-attribute", "Upsample", [X], {"mode": "nearest", "scales": [1.0, 1.0, 2.0, 2.0]}, opset=7),
    case("upsample7-linear", "Upsample", [X], {"mode": "linear", "scales": [1.0, 1.0, 1.5, 2.0]}, opset=7),
]


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_resize_against_onnxruntime(c: Case) -> None:
    check(c)
