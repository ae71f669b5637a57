"""The native engine's Python API (ep_trtpy._kernels.Engine) and runtime queries, on any machine: assembly,
validation messages raised by finalize() before any device is touched, and the GPU-free queries."""

from __future__ import annotations

import pytest

from ep_trtpy import _kernels

from lib_kernel_helpers import gpu_available


def _engine_xy(nbytes_x: int = 24) -> _kernels.Engine:
    e = _kernels.Engine(0)
    assert e.add_tensor("x", 1, [2, 3], "input", 0, 0, nbytes_x) == 0
    assert e.add_tensor("y", 1, [2, 3], "output", 0, 0, 24) == 1
    return e


def test_kernel_names_include_library_kernels() -> None:
    names = _kernels.kernel_names()
    assert {"memcpy", "gemm", "conv", "conv_transpose", "qgemm", "qdq"} <= set(names)


def test_library_versions_without_gpu() -> None:
    v = _kernels.library_versions()
    assert set(v) >= {"cudnn", "cublaslt", "cudart", "driver"}
    assert v["cudnn"] >= 90000 and v["cublaslt"] >= 130000 and v["cudart"] >= 13000


def test_device_memory_stats_shape() -> None:
    stats = _kernels.device_memory_stats(0)
    assert len(stats) == 3 and all(isinstance(x, int) and x >= 0 for x in stats)


@pytest.mark.skipif(gpu_available(), reason="checks the behaviour without a GPU")
def test_device_info_raises_without_gpu() -> None:
    with pytest.raises(RuntimeError, match="device_info"):
        _kernels.device_info(0)


def test_io_info_and_counts_before_finalize() -> None:
    e = _engine_xy()
    assert (e.num_inputs, e.num_outputs) == (1, 1)
    assert e.io_info(False, 0) == (1, [2, 3])
    with pytest.raises(RuntimeError, match="out of range"):
        e.io_info(True, 3)
    assert isinstance(e._handle(), int) and e._handle() != 0


def test_unknown_kind_and_unknown_kernel() -> None:
    e = _kernels.Engine(0)
    with pytest.raises(RuntimeError, match="unknown tensor kind 'scratch'"):
        e.add_tensor("x", 1, [1], "scratch", 0, 0, 4)
    e = _engine_xy()
    e.add_layer("no_such_kernel", [0], [1], [24], [], -1, 0, "L0")
    with pytest.raises(RuntimeError, match=r"layer 'L0' \(no_such_kernel\): no native kernel.*memcpy"):
        e.finalize()


@pytest.mark.parametrize("build, message", [
    (lambda e: e.add_tensor("z", 1, [2, 3], "activation", -1, 0, 24), r"tensor 2 'z' \(activation\) spans bytes"),
    (lambda e: e.add_tensor("v", 1, [2, 3], "alias", 5, 0, 24), "not an earlier tensor"),
    (lambda e: e.add_tensor("v", 1, [3, 3], "alias", 0, 0, 36), r"views bytes \[0, 36\)"),
    (lambda e: e.add_tensor("w", 1, [2], "weight", -1, 0, 8), "weights blob of 0 bytes"),
    (lambda e: e.add_tensor("q", 77, [2], "activation", -1, 0, 8), "unsupported ONNX element type 77"),
    (lambda e: e.add_tensor("x2", 10, [2, 3], "input", 0, 0, 12), "another dtype or shape"),
    (lambda e: e.add_tensor("x3", 1, [1], "input", 2, 0, 4), "input slot 1 has no tensor"),
    (lambda e: e.add_layer("memcpy", [0], [0], [24], [], -1, 0, "writes_input"), "lives in an engine input"),
    (lambda e: e.add_layer("memcpy", [0], [9], [24], [], -1, 0, "bad_id"), "output tensor id 9 is out of range"),
])
def test_finalize_validation_messages(build, message: str) -> None:  # noqa: ANN001 - lambdas
    e = _engine_xy()
    e.set_arena_bytes(16)
    build(e)
    with pytest.raises(RuntimeError, match=message):
        e.finalize()


def test_bad_nbytes_is_reported() -> None:
    with pytest.raises(RuntimeError, match=r"nbytes 20 != 6 elements x 4 bytes"):
        _engine_xy(nbytes_x=20).finalize()


def test_run_before_finalize_and_wrong_pointer_counts() -> None:
    e = _engine_xy()
    with pytest.raises(RuntimeError, match="expects 1 input pointers, got 0"):
        e.run([], [0], 0)
    with pytest.raises(RuntimeError, match="before a successful finalize"):
        e.run([0], [0], 0)


@pytest.mark.skipif(gpu_available(), reason="checks the behaviour without a GPU")
def test_finalize_without_gpu_names_the_device() -> None:
    e = _engine_xy()
    e.add_layer("memcpy", [0], [1], [24], [], -1, 0, "copy")
    with pytest.raises(RuntimeError, match="cannot use CUDA device 0"):
        e.finalize()


def test_share_weights_needs_a_finalized_base() -> None:
    base = _kernels.Engine(0)
    e = _engine_xy()
    e.add_tensor("w", 1, [6], "weight", -1, 0, 24)
    e.add_layer("memcpy", [2], [1], [24], [], -1, 0, "copy")
    e.share_weights(base, 256)
    with pytest.raises(RuntimeError, match="share_weights.*finalized engine on device 0"):
        e.finalize()


def _two_weight_engine(base: _kernels.Engine | None, own_offset: int, own: bytes,
                       shared_bytes: int = 0) -> _kernels.Engine:
    """y0 = the weight at offset 0 (the base's when sharing), y1 = the weight at `own_offset` (this engine's blob,
    which starts at `shared_bytes` when sharing)."""
    e = _kernels.Engine(0)
    e.add_tensor("x", 1, [6], "input", 0, 0, 24)
    e.add_tensor("y0", 1, [6], "output", 0, 0, 24)
    e.add_tensor("y1", 1, [6], "output", 1, 0, 24)
    e.add_tensor("w_shared", 1, [6], "weight", -1, 0, 24)
    e.add_tensor("w_own", 1, [6], "weight", -1, own_offset, 24)
    e.add_layer("memcpy", [3], [1], [24], [], -1, 0, "copy_shared")
    e.add_layer("memcpy", [4], [2], [24], [], -1, 0, "copy_own")
    if base is not None:
        e.share_weights(base, shared_bytes)
    e.set_weights(own)
    return e


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs an NVIDIA GPU")
def test_share_weights_reads_the_base_and_keeps_it_alive() -> None:
    import gc

    import cupy as cp
    import numpy as np

    from ep_trtpy.runtime import run_engine

    w0 = np.arange(6, dtype=np.float32) + 1
    w1 = -np.arange(6, dtype=np.float32) - 10
    base = _two_weight_engine(None, 256, w0.tobytes() + b"\0" * (256 - 24) + w1.tobytes())  # 280 bytes
    base.finalize()
    e = _two_weight_engine(base, 512, (w1 * 3).tobytes(), shared_bytes=512)  # own blob: offset 512 is its byte 0
    e.finalize()
    assert (e.weights_bytes, e.shared_weights_bytes) == (24, 512)
    x = cp.zeros(6, dtype=cp.float32)
    y0, y1 = run_engine(e, [x])
    np.testing.assert_array_equal(cp.asnumpy(y0), w0)
    np.testing.assert_array_equal(cp.asnumpy(y1), w1 * 3)
    del base
    gc.collect()
    y0, y1 = run_engine(e, [x])  # the base's device weights outlive the base engine
    np.testing.assert_array_equal(cp.asnumpy(y0), w0)


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs an NVIDIA GPU")
def test_share_weights_range_checks() -> None:
    base = _two_weight_engine(None, 256, bytes(280))
    base.finalize()
    e = _two_weight_engine(base, 512, bytes(8), shared_bytes=512)  # own blob too short for w_own
    with pytest.raises(RuntimeError, match=r"'w_own'.*weights blob of 8 bytes starting at offset 512"):
        e.finalize()
    e = _two_weight_engine(base, 512, bytes(280), shared_bytes=128)  # shared range smaller than the base's weights
    with pytest.raises(RuntimeError, match="must cover its 280 bytes"):
        e.finalize()
