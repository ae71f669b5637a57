"""Optimization profiles and buckets in a session, on whichever backend this machine has: one tuned engine per
profile (built with the session) serves every length inside it through specialized engines; a length outside
every profile builds an engine of its own with a warning, or with profile_strict=1 is an error naming the
profiles; without profiles the lengths fall into power-of-two buckets, one tuned engine each. Every output is
checked against ORT's CPU provider, and the GPU path is asserted where there is a GPU."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

import ep_trtpy
from ep_trtpy import models
from ep_trtpy.cli import harness



pytestmark = pytest.mark.gpu  # these run on any backend; the marker makes `pytest -m gpu` on a GPU run them too
STRICT = {"tf32_enable": "0"}  # float32 compared tightly on a GPU as on the reference backend
INPUTS = ("input_ids", "attention_mask")  # the generated BERT at CI size has no token_type_ids


@pytest.fixture(scope="module")
def bert() -> bytes:
    return models.build("bert", ci=True).SerializeToString()


def _profile(lo: int, opt: int, hi: int) -> dict[str, str]:
    def text(n: int) -> str:
        return ",".join(f"{k}:1x{n}" for k in INPUTS)

    return {"profile_min_shapes": text(lo), "profile_opt_shapes": text(opt), "profile_max_shapes": text(hi)}


def _feeds(n: int, seed: int) -> dict[str, np.ndarray]:
    return models.make_feeds("bert", batch=1, seed=seed, ci=True, sequence=n)


def _run_checked(sess, cpu, lengths: list[int]) -> None:  # noqa: ANN001 - ORT sessions
    for k, n in enumerate(lengths):
        feeds = _feeds(n, k)
        got, want = sess.run(None, feeds), cpu.run(None, feeds)
        for g, w in zip(got, want):
            assert g.shape == w.shape == (1, n, 64)
            np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-4)


def _stats() -> dict[str, int]:
    st = ep_trtpy.runtime_stats()
    return {k: st.get(k, 0) for k in ("builds", "specializations", "gpu_engine_runs", "reference_runs")}


def test_one_profile_engine_serves_every_length_inside_it(bert: bytes) -> None:
    cpu = harness.create_session(bert, "cpu")
    ep_trtpy.reset_runtime_stats()
    sess = harness.create_session(bert, "trtpy", ep_options={**STRICT, **_profile(4, 16, 32)})
    assert _stats()["builds"] == 1  # the profile's engine, at opt, with the session
    _run_checked(sess, cpu, [5, 16, 9, 32, 9, 4])
    st = _stats()
    assert st["builds"] == 1
    assert st["specializations"] == 4  # 5, 9, 32, 4: every length but opt, once each
    assert st["gpu_engine_runs" if ep_trtpy.has_gpu() else "reference_runs"] == 6


def test_a_length_outside_the_profiles_builds_its_own_engine_and_says_so(bert: bytes, caplog) -> None:  # noqa: ANN001
    cpu = harness.create_session(bert, "cpu")
    ep_trtpy.reset_runtime_stats()
    sess = harness.create_session(bert, "trtpy", ep_options={**STRICT, **_profile(4, 8, 16)})
    with caplog.at_level(logging.WARNING, logger="ep_trtpy"):
        _run_checked(sess, cpu, [20, 20, 12])
    st = _stats()
    assert (st["builds"], st["specializations"]) == (2, 1)  # opt 8, then 20 on its own; 12 from the profile
    outside = [r.getMessage() for r in caplog.records if "outside every optimization profile" in r.getMessage()]
    assert len(outside) == 1 and "1x20" in outside[0]


def test_profile_strict_makes_a_length_outside_an_error_naming_the_profiles(bert: bytes) -> None:
    sess = harness.create_session(bert, "trtpy", ep_options={**STRICT, **_profile(4, 8, 16), "profile_strict": "1"})
    sess.run(None, _feeds(10, 0))
    with pytest.raises(Exception) as info:
        sess.run(None, _feeds(17, 0))
    text = str(info.value)
    assert "input_ids:1x17" in text and "outside every optimization profile" in text
    assert "profile 0: input_ids 1x4..1x16 (opt 1x8)" in text
    assert "Traceback" not in text


def test_without_profiles_lengths_fall_into_power_of_two_buckets(bert: bytes) -> None:
    cpu = harness.create_session(bert, "cpu")
    ep_trtpy.reset_runtime_stats()
    sess = harness.create_session(bert, "trtpy", ep_options=STRICT)
    assert _stats()["builds"] == 0  # nothing is known to build before the first run
    _run_checked(sess, cpu, [5, 6, 7, 8, 9, 16, 3, 6])
    st = _stats()
    assert st["builds"] == 3  # buckets 5..8, 9..16 and 3..4, each tuned at its first length
    assert st["specializations"] == 4  # 6, 7, 8 and 16


def test_profile_engines_are_not_built_for_inputs_the_profiles_do_not_name(bert: bytes) -> None:
    with pytest.raises(Exception, match=r"profile_min_shapes.*'input_idz'"):
        harness.create_session(bert, "trtpy", ep_options={
            "profile_min_shapes": "input_idz:1x4", "profile_opt_shapes": "input_idz:1x8",
            "profile_max_shapes": "input_idz:1x16"})


def test_a_failed_specialization_falls_back_to_an_engine_of_its_own(bert: bytes, monkeypatch, caplog) -> None:  # noqa: ANN001
    from ep_trtpy.builder import specialize

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003
        raise RuntimeError("planted failure")

    monkeypatch.setattr(specialize, "specialize", broken)
    cpu = harness.create_session(bert, "cpu")
    ep_trtpy.reset_runtime_stats()
    sess = harness.create_session(bert, "trtpy", ep_options={**STRICT, **_profile(4, 8, 16)})
    with caplog.at_level(logging.WARNING, logger="ep_trtpy"):
        _run_checked(sess, cpu, [12])
    assert (_stats()["builds"], _stats()["specializations"]) == (2, 0)
    assert any("could not be specialized" in r.getMessage() and "planted failure" in r.getMessage()
               for r in caplog.records)


HF = os.path.join(os.path.dirname(__file__), "..", "fixtures", "hf_bert")


@pytest.mark.parametrize("name", ["bert_tiny_eager_ts17.onnx", "bert_tiny_sdpa_ts17.onnx",
                                  "bert_tiny_notype_dynamo18_dyn.onnx"])
@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_hf_bert_exports_serve_a_profile(name: str, precision: str) -> None:
    """HF exports (freshly initialized: equal constants such as zero biases, which once crashed the FP16 build of
    an engine with the weight memo) through a profile in FP16 and FP32: one tuned build, the other lengths
    specialized, every output close to ORT's CPU provider."""
    import onnx

    from test_hf_bert import bert_feeds

    model = onnx.load(os.path.join(HF, name))
    data = model.SerializeToString()
    names = [i.name for i in model.graph.input]

    def text(n: int) -> str:
        return ",".join(f"{k}:2x{n}" for k in names)

    opts = {"profile_min_shapes": text(3), "profile_opt_shapes": text(8), "profile_max_shapes": text(16),
            **({"fp16_enable": "1"} if precision == "fp16" else STRICT)}
    cpu = harness.create_session(data, "cpu")
    ep_trtpy.reset_runtime_stats()
    sess = harness.create_session(data, "trtpy", ep_options=opts)
    for k, n in enumerate([5, 8, 16, 3, 5]):
        feeds = bert_feeds(model, 2, n, seed=k)
        for g, w in zip(sess.run(None, feeds), cpu.run(None, feeds)):
            assert g.shape == w.shape
            if precision == "fp32":
                np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-4)
            else:
                g64, w64 = g.astype(np.float64).ravel(), w.astype(np.float64).ravel()
                assert g64 @ w64 / (np.linalg.norm(g64) * np.linalg.norm(w64)) >= 0.999
    st = _stats()
    assert (st["builds"], st["specializations"]) == (1, 3)  # opt 8 built with the session; 5, 16 and 3
    assert st["gpu_engine_runs" if ep_trtpy.has_gpu() else "reference_runs"] == 5
