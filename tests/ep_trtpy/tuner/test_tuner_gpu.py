"""The tuner with the native engine on the GPU: a cold build times candidates, a warm timing cache times nothing."""

from __future__ import annotations

import numpy as np
import pytest

import ep_trtpy
from builder_testutil import GB
from ep_trtpy.builder.build import build
from ep_trtpy.engine.artifact import Device
from ep_trtpy.options import parse

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not ep_trtpy.has_gpu(), reason="needs an NVIDIA GPU with a CUDA 13 driver")]


def _device() -> Device:
    import cupy as cp

    props = cp.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return Device(0, name, (int(props["major"]), int(props["minor"])))


def _model():
    rng = np.random.default_rng(0)
    gb = GB()
    x = gb.input("x", (64, 256))
    h = gb.op("Relu", [gb.op("MatMul", [x, gb.const(rng.standard_normal((256, 512)).astype(np.float32), "w1")])])
    return gb.output(gb.op("MatMul", [h, gb.const(rng.standard_normal((512, 128)).astype(np.float32), "w2")]))


def _timed() -> int:
    return int(ep_trtpy.runtime_stats().get("tactics_timed", -1))


def test_a_warm_timing_cache_times_nothing_on_the_gpu(tmp_path):
    from ep_trtpy import _kernels

    if not hasattr(_kernels.Engine, "set_tuning_level"):
        pytest.skip("the native module predates the tuner interface (perf-design.md)")
    opts = parse({"timing_cache_enable": "1", "timing_cache_path": str(tmp_path)})
    dev = _device()
    before = _timed()
    cold = build(_model(), {"x": (64, 256)}, opts, "cuda", dev)
    assert _timed() > before, "the cold build timed no candidates"
    gemms = [lay for lay in cold.plan.layers if lay.kernel == "gemm"]
    assert gemms and all(lay.tactic_name and lay.meta.get("tactic_source") == "timed" for lay in gemms)
    before = _timed()
    warm = build(_model(), {"x": (64, 256)}, opts, "cuda", dev)
    assert _timed() == before, "the warm build timed candidates"
    assert [lay.tactic_name for lay in warm.plan.layers] == [lay.tactic_name for lay in cold.plan.layers]
