"""MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool: our references against onnxruntime's CPU provider."""

from __future__ import annotations

import numpy as np
import pytest
from ops_harness import Case, case, check

RNG = np.random.default_rng(3)
F32, F16 = np.float32, np.float16


def rnd(*shape: int, dtype: type = F32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


X = rnd(2, 3, 7, 8)
WINDOWS = {
    "k3": {"kernel_shape": [3, 3]},
    "k3x2-s2-pads": {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 1, 1]},
    "ceil": {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
    "ceil-pads": {"kernel_shape": [3, 3], "strides": [2, 3], "pads": [1, 1, 1, 1], "ceil_mode": 1},
    "same-upper": {"kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
    "same-lower": {"kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "SAME_LOWER"},
    "valid": {"kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "VALID"},
}
CASES: list[Case] = []
for op in ("MaxPool", "AveragePool"):
    for name, attrs in WINDOWS.items():
        CASES.append(case(f"{op}-{name}", op, [X], attrs))
    # the last ceil_mode window would start in the end padding: dropped
    CASES.append(case(f"{op}-ceil-window-in-padding", op, [rnd(1, 1, 5, 5)],
                      {"kernel_shape": [2, 2], "strides": [3, 3], "pads": [1, 1, 1, 1], "ceil_mode": 1}))
    CASES.append(case(f"{op}-dilations", op, [X], {"kernel_shape": [2, 2], "dilations": [2, 3], "pads": [1, 1, 1, 1]},
                      opset=19))
    CASES.append(case(f"{op}-1d", op, [rnd(2, 3, 9)], {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}))
    CASES.append(case(f"{op}-3d", op, [rnd(1, 2, 5, 6, 4)], {"kernel_shape": [2, 3, 2], "strides": [2, 1, 2]}))
    CASES.append(case(f"{op}-f16", op, [X.astype(F16)], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}))
    CASES.append(case(f"{op}-zero-batch", op, [np.zeros((0, 3, 4, 4), F32)], {"kernel_shape": [2, 2]}))
for cip in (0, 1):
    CASES += [
        case(f"AveragePool-cip{cip}-pads", "AveragePool", [X],
             {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": cip}),
        case(f"AveragePool-cip{cip}-ceil", "AveragePool", [X],
             {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": cip,
              "ceil_mode": 1}),
        case(f"AveragePool-cip{cip}-ceil-asymmetric-pads", "AveragePool", [rnd(1, 1, 5, 5)],
             {"kernel_shape": [3, 3], "strides": [3, 3], "pads": [0, 0, 1, 1], "count_include_pad": cip,
              "ceil_mode": 1}),
        case(f"AveragePool-cip{cip}-same-upper", "AveragePool", [X],
             {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER", "count_include_pad": cip}),
        case(f"AveragePool-cip{cip}-dilations", "AveragePool", [X],
             {"kernel_shape": [2, 3], "dilations": [2, 2], "pads": [1, 2, 1, 2], "count_include_pad": cip},
             opset=19),
    ]
CASES += [
    case("MaxPool-indices-pads", "MaxPool", [X], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
         n_outputs=2),
    case("MaxPool-indices-storage-order1", "MaxPool", [X], {"kernel_shape": [3, 3], "strides": [2, 2],
                                                             "storage_order": 1}, n_outputs=2),
    case("MaxPool-indices-3d", "MaxPool", [rnd(2, 2, 5, 6, 4)], {"kernel_shape": [2, 3, 2], "strides": [2, 1, 2]},
         n_outputs=2),
    case("MaxPool-indices-1d", "MaxPool", [rnd(2, 2, 9)], {"kernel_shape": [3], "strides": [2]}, n_outputs=2),
    case("MaxPool-i8", "MaxPool", [(X * 10).astype(np.int8)], {"kernel_shape": [3, 3]}, opset=12),
    case("MaxPool-u8-pads", "MaxPool", [(np.abs(X) * 10).astype(np.uint8)], {"kernel_shape": [3, 3],
                                                                             "pads": [1, 1, 1, 1]}, opset=12),
    case("MaxPool-opset8", "MaxPool", [X], {"kernel_shape": [2, 2], "strides": [2, 2]}, opset=8),
]
for op in ("GlobalAveragePool", "GlobalMaxPool"):
    CASES += [case(f"{op}-2d", op, [X]), case(f"{op}-1d", op, [rnd(2, 3, 4)]),
              case(f"{op}-3d-f16", op, [rnd(1, 2, 3, 4, 5, dtype=F16)])]


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_pooling_against_onnxruntime(c: Case) -> None:
    check(c)
