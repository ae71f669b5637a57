"""GPU tests of the ``resize`` and ``pool`` kernels (cuda_kernels/kernels/resize.cu, pool.cu) against ONNX
Runtime's CPU provider: Resize nearest (4 rounding modes) and linear (2-D and 3-D) under the 5 coordinate
transformation modes, up- and down-sampling, scales and sizes, float16; MaxPool / AveragePool 1-D/2-D/3-D with
strides, asymmetric pads, dilations, ceil_mode, auto_pad, count_include_pad, float16. See kernel_harness.py."""

from __future__ import annotations

import numpy as np
import pytest
from kernel_harness import In, check_case, fp16_case, gpu_marks, node_case, rand

pytestmark = gpu_marks

COORDS = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "half_pixel_symmetric"]
NEAREST = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
SCALES = [[1, 1, 2, 2], [1, 1, 3, 1.5], [1, 1, 0.5, 0.5], [1, 1, 0.6, 1.7], [1, 1, 1, 4]]


@pytest.mark.parametrize("scales", SCALES)
@pytest.mark.parametrize("nearest", NEAREST)
@pytest.mark.parametrize("coord", COORDS)
def test_resize_nearest_scales(coord: str, nearest: str, scales: list[float]) -> None:
    x = rand((2, 3, 6, 10), np.float32, 1)
    ins = [In("x", x), None, In("scales", np.array(scales, np.float32), const=True)]
    check_case(node_case("Resize", ins, {"mode": "nearest", "coordinate_transformation_mode": coord,
                                         "nearest_mode": nearest}, opset=19), exact=True, kernels=["resize"])


@pytest.mark.parametrize("scales", SCALES)
@pytest.mark.parametrize("coord", COORDS)
def test_resize_linear_scales(coord: str, scales: list[float]) -> None:
    x = rand((2, 3, 6, 10), np.float32, 2)
    ins = [In("x", x), None, In("scales", np.array(scales, np.float32), const=True)]
    check_case(node_case("Resize", ins, {"mode": "linear", "coordinate_transformation_mode": coord}, opset=19),
               rtol=1e-5, atol=1e-5, kernels=["resize"])


@pytest.mark.parametrize("sizes", [[2, 3, 12, 20], [2, 3, 7, 13], [2, 3, 3, 4], [2, 3, 1, 1], [2, 3, 6, 10]])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("coord", COORDS)
def test_resize_sizes(sizes: list[int], mode: str, coord: str) -> None:
    x = rand((2, 3, 6, 10), np.float32, 3)
    ins = [In("x", x), None, None, In("sizes", np.array(sizes, np.int64), const=True)]
    check_case(node_case("Resize", ins, {"mode": mode, "coordinate_transformation_mode": coord}, opset=19),
               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_3d_and_float16(mode: str) -> None:
    x = rand((1, 2, 3, 4, 5), np.float32, 4)
    ins = [In("x", x), None, In("scales", np.array([1, 1, 2, 1.5, 0.8], np.float32), const=True)]
    check_case(node_case("Resize", ins, {"mode": mode}, opset=19), rtol=1e-5, atol=1e-5, kernels=["resize"])
    x2 = rand((1, 4, 16, 16), np.float32, 5)
    ins2 = [In("x", x2), None, In("scales", np.array([1, 1, 2, 2], np.float32), const=True)]
    check_case(fp16_case("Resize", ins2, {"mode": mode}, opset=19, cast_inputs=[0]), rtol=3e-3, atol=3e-3,
               kernels=["resize"])


def test_resize_opset11_and_opset10() -> None:
    x = rand((1, 2, 5, 7), np.float32, 6)
    check_case(node_case("Resize", [In("x", x), In("roi", np.zeros(0, np.float32), const=True),
                                    In("scales", np.array([1, 1, 2, 2], np.float32), const=True)],
                         {"mode": "linear", "coordinate_transformation_mode": "align_corners"}, opset=11),
               rtol=1e-5, atol=1e-5)
    for scales in ([1, 1, 2, 3], [1, 1, 0.5, 0.6], [1, 1, 1.5, 0.75]):
        for mode in ("nearest", "linear"):
            check_case(node_case("Resize", [In("x", x), In("scales", np.array(scales, np.float32), const=True)],
                                 {"mode": mode}, opset=10), rtol=1e-5, atol=1e-5, kernels=["resize"])


POOL_2D = [
    {"kernel_shape": [3, 3]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [2, 3], "strides": [2, 1], "pads": [0, 1, 1, 0]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
    {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
    {"kernel_shape": [3, 2], "auto_pad": "SAME_UPPER", "strides": [2, 2]},
    {"kernel_shape": [3, 2], "auto_pad": "SAME_LOWER", "strides": [2, 1]},
    {"kernel_shape": [2, 2], "auto_pad": "VALID", "strides": [2, 2]},
    {"kernel_shape": [2, 2], "dilations": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [3, 3], "dilations": [2, 1], "strides": [1, 2]},
    {"kernel_shape": [7, 7], "strides": [1, 1]},
]


@pytest.mark.parametrize("attrs", POOL_2D)
def test_maxpool_2d(attrs: dict) -> None:
    x = rand((2, 3, 11, 12), np.float32, 7)
    check_case(node_case("MaxPool", [In("x", x)], attrs, opset=12), exact=True, kernels=["pool"])


@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("attrs", POOL_2D)
def test_averagepool_2d(attrs: dict, count_include_pad: int) -> None:
    x = rand((2, 3, 11, 12), np.float32, 8)
    check_case(node_case("AveragePool", [In("x", x)], dict(attrs, count_include_pad=count_include_pad), opset=19),
               rtol=1e-5, atol=1e-6, kernels=["pool"])


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("attrs", [{"kernel_shape": [3], "strides": [2], "pads": [1, 0]},
                                   {"kernel_shape": [4], "strides": [3], "ceil_mode": 1, "pads": [1, 1]},
                                   {"kernel_shape": [2], "dilations": [3]}])
def test_pool_1d(op: str, attrs: dict) -> None:
    x = rand((2, 5, 17), np.float32, 9)
    check_case(node_case(op, [In("x", x)], attrs, opset=19 if op == "AveragePool" else 12), rtol=1e-5, atol=1e-6,
               kernels=["pool"])


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("attrs", [{"kernel_shape": [2, 3, 2], "strides": [1, 2, 2], "pads": [0, 1, 1, 1, 0, 0]},
                                   {"kernel_shape": [3, 3, 3], "strides": [2, 2, 2], "pads": [1, 1, 1, 1, 1, 1],
                                    "ceil_mode": 1}])
def test_pool_3d(op: str, attrs: dict) -> None:
    x = rand((1, 2, 6, 7, 8), np.float32, 10)
    check_case(node_case(op, [In("x", x)], attrs, opset=19 if op == "AveragePool" else 12), rtol=1e-5, atol=1e-6,
               kernels=["pool"])


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_float16_and_resnet_stem(op: str) -> None:
    x = rand((2, 64, 56, 56), np.float32, 11)
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    check_case(fp16_case(op, [In("x", x)], attrs, opset=12 if op == "MaxPool" else 19), rtol=3e-3, atol=3e-3,
               kernels=["pool"])
    check_case(node_case(op, [In("x", x)], attrs, opset=12 if op == "MaxPool" else 19), rtol=1e-5, atol=1e-6,
               kernels=["pool"])


def test_pool_zero_batch() -> None:
    x = np.zeros((0, 3, 8, 8), np.float32)
    check_case(node_case("MaxPool", [In("x", x)], {"kernel_shape": [2, 2]}, opset=12), exact=True)
