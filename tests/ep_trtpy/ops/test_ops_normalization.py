"""LayerNormalization, Softmax/LogSoftmax, BatchNormalization: our references against onnxruntime's CPU provider."""

from __future__ import annotations

import numpy as np
import pytest
from ops_harness import Case, case, check

RNG = np.random.default_rng(5)
F32, F16 = np.float32, np.float16


def rnd(*shape: int, dtype: type = F32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


X = rnd(2, 3, 4)
CASES: list[Case] = []
TOL = dict(rtol=1e-5, atol=1e-5)
for op in ("Softmax", "LogSoftmax"):
    for opset in (11, 13):
        CASES.append(case(f"{op}-opset{opset}-default-axis", op, [X], {}, opset=opset, **TOL))
        for axis in (0, 1, -1):
            CASES.append(case(f"{op}-opset{opset}-axis{axis}", op, [X], {"axis": axis}, opset=opset, **TOL))
    CASES.append(case(f"{op}-f16", op, [X.astype(F16)], {"axis": -2}, opset=13))
    CASES.append(case(f"{op}-large-values", op, [np.array([[1000.0, 0.0, -1000.0], [3.0, 3.0, 3.0]], F32)], {},
                      opset=13, **TOL))
    CASES.append(case(f"{op}-zero-size", op, [np.zeros((0, 5), F32)], {}, opset=13))
    CASES.append(case(f"{op}-1d", op, [rnd(7)], {}, opset=13, **TOL))
    CASES.append(case(f"{op}-opset11-zero-size", op, [np.zeros((3, 0), F32)], {}, opset=11))

S4, B4 = rnd(4), rnd(4)
CASES += [
    case("LayerNorm-last-axis", "LayerNormalization", [X, S4, B4], {}, **TOL),
    case("LayerNorm-no-bias", "LayerNormalization", [X, S4], {"epsilon": 1e-3}, **TOL),
    case("LayerNorm-axis1-all-outputs", "LayerNormalization", [X, rnd(3, 4), rnd(3, 4)], {"axis": 1}, n_outputs=3,
         **TOL),
    case("LayerNorm-axis-neg2-broadcast-scale", "LayerNormalization", [X, rnd(1, 4), rnd(4)], {"axis": -2},
         n_outputs=3, **TOL),
    case("LayerNorm-f16", "LayerNormalization", [X.astype(F16), S4.astype(F16), B4.astype(F16)], {}, n_outputs=3),
    case("LayerNorm-zero-rows", "LayerNormalization", [np.zeros((0, 4), F32), S4, B4], {}),
    case("LayerNorm-constant-rows", "LayerNormalization", [np.ones((2, 4), F32), S4, B4], {}, n_outputs=3, **TOL),
]

XB = rnd(2, 3, 4, 5)
P = [rnd(3), rnd(3), rnd(3), np.abs(rnd(3)) + 0.1]
CASES += [
    case("BatchNorm-opset15", "BatchNormalization", [XB] + P, {"epsilon": 1e-3}, opset=15, **TOL),
    case("BatchNorm-opset14", "BatchNormalization", [XB] + P, {}, opset=14, **TOL),
    case("BatchNorm-opset9-3d", "BatchNormalization", [XB[:, :, 0]] + P, {}, opset=9, **TOL),
    case("BatchNorm-opset7", "BatchNormalization", [XB] + P, {}, opset=7, **TOL),
    case("BatchNorm-f16", "BatchNormalization", [XB.astype(F16)] + [p.astype(F16) for p in P], {}, opset=15),
    case("BatchNorm-f16-f32-params", "BatchNormalization", [XB.astype(F16)] + P, {}, opset=15),
    case("BatchNorm-const-params", "BatchNormalization", [XB] + P, {}, opset=15, const=(1, 2, 3, 4), **TOL),
    case("BatchNorm-rank2", "BatchNormalization", [rnd(4, 3)] + P, {}, opset=15, **TOL),
    case("BatchNorm-zero-batch", "BatchNormalization", [np.zeros((0, 3, 2), F32)] + P, {}, opset=15),
]


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_normalization_against_onnxruntime(c: Case) -> None:
    check(c)
