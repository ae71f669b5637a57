"""GPU tests of the ``resize`` and ``pool`` kernels (cuda_kernels/kernels/resize.cu, pool.cu) against ONNX
Runtime's CPU provider: Resize nearest (4 rounding modes) and linear (2-D and 3-D) under the 5 coordinate
transformation modes, up- and down-sampling, scales and sizes, float16; channels-last tensors, whose unresized
trailing dims take resize.cu's rows path (rows of 5 to 1000 elements, words of 16/8/4 bytes or one element, 1 to 3
interpolated dims); MaxPool / AveragePool 1-D/2-D/3-D with
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


# The rows path of resize.cu: the trailing dims that keep their extent (NHWC: C; or W and C when only H is resized)
# are whole rows moved in words of 16, 8 or 4 bytes or single elements, depending on the row's size in bytes.
NHWC_ROWS = [(2, 5, 7, 5), (1, 4, 6, 6), (2, 3, 5, 8), (1, 4, 4, 12), (2, 3, 3, 64), (1, 2, 3, 1000)]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("shape", NHWC_ROWS)
@pytest.mark.parametrize("coord", ["asymmetric", "half_pixel"])
def test_resize_nhwc_nearest_rows(shape: tuple[int, ...], dtype: type, coord: str) -> None:
    x = rand(shape, np.float32, 11)
    ins = [In("x", x), None, In("scales", np.array([1, 2, 2, 1], np.float32), const=True)]
    attrs = {"mode": "nearest", "coordinate_transformation_mode": coord, "nearest_mode": "floor"}
    case = node_case("Resize", ins, attrs, opset=19) if dtype == np.float32 else \
        fp16_case("Resize", ins, attrs, opset=19, cast_inputs=[0])
    check_case(case, exact=True, kernels=["resize"])


@pytest.mark.parametrize("scales", [[1, 2, 1, 1], [1, 0.5, 1, 1], [1, 3, 1, 1]])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_resize_rows_of_several_dims(scales: list[float], dtype: type) -> None:
    """Only H resized: a row is W * C elements (7 * 3 = 21, not a multiple of 8)."""
    x = rand((2, 6, 7, 3), np.float32, 12)
    ins = [In("x", x), None, In("scales", np.array(scales, np.float32), const=True)]
    for mode in ("nearest", "linear"):
        case = node_case("Resize", ins, {"mode": mode}, opset=19) if dtype == np.float32 else \
            fp16_case("Resize", ins, {"mode": mode}, opset=19, cast_inputs=[0])
        check_case(case, exact=mode == "nearest", rtol=3e-3 if dtype == np.float16 else 1e-5,
                   atol=3e-3 if dtype == np.float16 else 1e-5, kernels=["resize"])


@pytest.mark.parametrize("scales", [[1, 2, 2, 1], [1, 0.6, 1.7, 1], [1, 3, 1.5, 1]])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("shape", NHWC_ROWS[:5])
@pytest.mark.parametrize("coord", ["half_pixel", "align_corners", "asymmetric"])
def test_resize_nhwc_linear_rows(shape: tuple[int, ...], dtype: type, scales: list[float], coord: str) -> None:
    x = rand(shape, np.float32, 13)
    ins = [In("x", x), None, In("scales", np.array(scales, np.float32), const=True)]
    attrs = {"mode": "linear", "coordinate_transformation_mode": coord}
    if dtype == np.float32:
        check_case(node_case("Resize", ins, attrs, opset=19), rtol=1e-5, atol=1e-5, kernels=["resize"])
    else:
        check_case(fp16_case("Resize", ins, attrs, opset=19, cast_inputs=[0]), rtol=3e-3, atol=3e-3,
                   kernels=["resize"])


def test_resize_trilinear_channels_last_rows() -> None:
    """Three interpolated dims in front of the channels: the rows path blends 8 source rows."""
    x = rand((1, 3, 4, 5, 8), np.float32, 14)
    ins = [In("x", x), None, In("scales", np.array([1, 2, 1.5, 0.8, 1], np.float32), const=True)]
    check_case(node_case("Resize", ins, {"mode": "linear"}, opset=19, ref="onnx"), rtol=1e-5, atol=1e-5,
               kernels=["resize"])


def test_resize_yolo_upsample_rows() -> None:
    """The detector's upsample: NHWC [32, 20, 20, 256] float16, 2x nearest (rows of 32 sixteen-byte words)."""
    x = rand((32, 20, 20, 256), np.float32, 15)
    ins = [In("x", x), None, In("scales", np.array([1, 2, 2, 1], np.float32), const=True)]
    check_case(fp16_case("Resize", ins, {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                                         "nearest_mode": "floor"}, opset=19, cast_inputs=[0]),
               exact=True, kernels=["resize"])


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
