"""The tuner around the native engine's finalize, on CPU: the real builder, lowering and runtime.build_engine with a
fake native engine (fake_engine.py) in place of ep_trtpy._kernels.Engine."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest

import fake_engine
from builder_testutil import GB
from ep_trtpy import tuner
from ep_trtpy.builder.build import build
from ep_trtpy.engine.artifact import Device
from ep_trtpy.options import parse
from ep_trtpy.tuner.timing_cache import TimingCache, current_environment

H200 = Device(0, "NVIDIA H200", (9, 0))


def mlp():
    rng = np.random.default_rng(0)
    gb = GB()
    x = gb.input("x", ("N", 8))
    h = gb.op("Relu", [gb.op("MatMul", [x, gb.const(rng.standard_normal((8, 16)).astype(np.float32), "w1")])])
    y = gb.op("MatMul", [h, gb.const(rng.standard_normal((16, 4)).astype(np.float32), "w2")])
    return gb.output(gb.op("Sigmoid", [y]))


@pytest.fixture
def native(monkeypatch):
    """ep_trtpy._kernels.Engine replaced by the fake; returns a function giving the candidates timed since."""
    from ep_trtpy import _kernels

    monkeypatch.setattr(_kernels, "Engine", fake_engine.FakeEngine)
    fake_engine.FakeEngine.tactics_timed = 0
    tuner.reset_stats()

    def timed() -> int:
        n = fake_engine.FakeEngine.tactics_timed
        fake_engine.FakeEngine.tactics_timed = 0
        return n

    return timed


def _opts(tmp_path, **kw):
    raw = {"timing_cache_enable": "1", "timing_cache_path": str(tmp_path)}
    raw.update({k: str(v) for k, v in kw.items()})
    return parse(raw)


def _tunable(art):
    return [lay for lay in art.plan.layers if lay.kernel in fake_engine.TUNABLE]


def test_a_warm_timing_cache_times_nothing(native, tmp_path):
    cold = build(mlp(), {"x": (4, 8)}, _opts(tmp_path), "cuda", H200)
    layers = _tunable(cold)
    assert len(layers) == 2 and native() == 2 * fake_engine.TOP_K[3]
    for lay in layers:
        best = min(fake_engine.candidate_ms(lay.ints, k) for k in range(fake_engine.TOP_K[3]))
        assert lay.tactic_name == f"gemm_alg{lay.tactic}" and lay.meta["tactic_ms"] == pytest.approx(best)
        assert lay.meta["tactic_source"] == "timed"
    assert {lay.tactic for lay in layers} != {0}  # the made-up times do not all favour the first candidate
    env = current_environment(H200.name, H200.cc)
    assert set(os.listdir(tmp_path)) == {env.file_name, env.file_name + ".lock"}
    assert len(TimingCache(str(tmp_path), env).load()) == 2
    assert tuner.stats()["timing_cache_writes"] == 2 and tuner.stats()["timing_cache_misses"] == 2

    warm = build(mlp(), {"x": (4, 8)}, _opts(tmp_path), "cuda", H200)
    assert native() == 0
    assert [(lay.tactic, lay.tactic_name) for lay in _tunable(warm)] == [(x.tactic, x.tactic_name) for x in layers]
    assert all(lay.meta["tactic_source"] == "timing cache" for lay in _tunable(warm))
    assert [lay.meta["tactic_ms"] for lay in _tunable(warm)] == [lay.meta["tactic_ms"] for lay in layers]
    assert tuner.stats()["timing_cache_hits"] == 2 and tuner.stats()["timing_cache_writes"] == 2


def test_another_shape_or_level_is_timed_and_added(native, tmp_path):
    build(mlp(), {"x": (4, 8)}, _opts(tmp_path), "cuda", H200)
    native()
    build(mlp(), {"x": (6, 8)}, _opts(tmp_path), "cuda", H200)  # other M: other signatures
    assert native() == 2 * fake_engine.TOP_K[3]
    art = build(mlp(), {"x": (4, 8)}, _opts(tmp_path, builder_optimization_level=5), "cuda", H200)
    assert native() == 2 * fake_engine.TOP_K[5] and art.engine.level == 5
    assert len(TimingCache(str(tmp_path), current_environment(H200.name, H200.cc)).load()) == 6


def test_level_0_times_nothing_and_writes_nothing(native, tmp_path):
    art = build(mlp(), {"x": (4, 8)}, _opts(tmp_path, builder_optimization_level=0), "cuda", H200)
    assert native() == 0 and art.engine.level == 0 and os.listdir(tmp_path) == []
    assert all(lay.tactic_name == "gemm_alg0" and "tactic_ms" not in lay.meta for lay in _tunable(art))


def test_without_the_timing_cache_every_build_times(native, tmp_path):
    opts = parse({"engine_cache_path": str(tmp_path)})
    build(mlp(), {"x": (4, 8)}, opts, "cuda", H200)
    build(mlp(), {"x": (4, 8)}, opts, "cuda", H200)
    assert native() == 2 * 2 * fake_engine.TOP_K[3] and os.listdir(tmp_path) == []


def test_the_engine_cache_keeps_tactic_names_and_times_and_a_hit_times_nothing(native, tmp_path):
    from ep_trtpy.builder.build import get_or_build
    from ep_trtpy.engine.cache import Counters

    opts = parse({"engine_cache_enable": "1", "engine_cache_path": str(tmp_path)})
    c = Counters()
    first = get_or_build(mlp(), {"x": (4, 8)}, opts, "cuda", H200, counters=c)
    assert native() > 0
    again = get_or_build(mlp(), {"x": (4, 8)}, opts, "cuda", H200, counters=c)
    assert again.source == "cache" and native() == 0
    got = [(lay.tactic, lay.tactic_name, lay.meta.get("tactic_ms")) for lay in _tunable(again.artifact)]
    assert got == [(lay.tactic, lay.tactic_name, lay.meta.get("tactic_ms")) for lay in _tunable(first.artifact)]
    assert [lay["tactic_name"] for lay in again.artifact.engine.layers if lay["kernel"] == "gemm"] == \
        [g[1] for g in got]  # the names reached Engine.add_layer
    states = [lay.tactic_state for lay in _tunable(first.artifact)]
    assert states and all(states)
    assert [lay["tactic_state"] for lay in again.artifact.engine.layers if lay["kernel"] == "gemm"] == states


def test_detailed_build_log_lists_candidates_and_the_winner(native, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="ep_trtpy.tuner"):
        art = build(mlp(), {"x": (4, 8)}, _opts(tmp_path, detailed_build_log=1), "cuda", H200)
    lay = _tunable(art)[0]
    line = next(r.getMessage() for r in caplog.records if f"'{lay.name}'" in r.getMessage())
    assert f"{fake_engine.TOP_K[3]} candidates" in line and "gemm_alg5 failed" in line
    assert line.endswith(f"-> {lay.tactic_name} ({lay.meta['tactic_ms']:.4f} ms)")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ep_trtpy.tuner"):
        build(mlp(), {"x": (4, 8)}, _opts(tmp_path, detailed_build_log=1), "cuda", H200)
    assert f"tactic {lay.tactic_name} ({lay.meta['tactic_ms']:.4f} ms) from the timing cache" in caplog.text


def test_a_corrupt_timing_cache_is_a_warning_then_rewritten(native, tmp_path, caplog):
    env = current_environment(H200.name, H200.cc)
    (tmp_path / env.file_name).write_text('{"format": "ep_trtpy timing cache", "vers')
    with caplog.at_level(logging.WARNING, logger="ep_trtpy.tuner"):
        build(mlp(), {"x": (4, 8)}, _opts(tmp_path), "cuda", H200)
    assert native() > 0 and caplog.text.count("timing cache: ignoring") == 1
    assert json.loads((tmp_path / env.file_name).read_text())["version"] == 1


def test_the_finalize_progress_callback_reaches_the_engine(native, tmp_path):
    art = build(mlp(), {"x": (4, 8)}, _opts(tmp_path), "cuda", H200)
    n = len(art.plan.layers)
    assert [c[:2] for c in art.engine.progress_calls] == [(i, n) for i in range(n)]


def test_the_reference_backend_has_no_tuner(native, tmp_path):
    art = build(mlp(), {"x": (4, 8)}, _opts(tmp_path), "reference")
    assert art.engine is None and art.plan is None and os.listdir(tmp_path) == [] and native() == 0


def test_runtime_stats_carry_the_tuner_counters(native, tmp_path):
    import ep_trtpy

    build(mlp(), {"x": (4, 8)}, _opts(tmp_path), "cuda", H200)
    build(mlp(), {"x": (4, 8)}, _opts(tmp_path), "cuda", H200)
    stats = ep_trtpy.runtime_stats()
    assert (stats["timing_cache_misses"], stats["timing_cache_hits"], stats["timing_cache_writes"]) == (2, 2, 2)
    ep_trtpy.reset_runtime_stats()
    assert ep_trtpy.runtime_stats()["timing_cache_hits"] == 0


def test_inspect_shows_each_layers_tactic_name_and_time(native, tmp_path, capsys):
    from ep_trtpy.cli import main
    from ep_trtpy.builder.build import get_or_build

    raw = {"engine_cache_enable": "1", "engine_cache_path": str(tmp_path / "e"), "timing_cache_enable": "1",
           "timing_cache_path": str(tmp_path / "t")}
    first = get_or_build(mlp(), {"x": (4, 8)}, parse(raw), "cuda", H200)
    assert native() > 0
    assert main(["inspect", first.path, "--json"]) == 0
    shown = [lay for lay in json.loads(capsys.readouterr().out)["layers"] if lay["kernel"] == "gemm"]
    want = _tunable(first.artifact)
    assert [(s["tactic_name"], s["tactic_ms"], s["tactic_source"]) for s in shown] == \
        [(w.tactic_name, w.meta["tactic_ms"], "timed") for w in want]
    assert main(["inspect", first.path]) == 0
    text = capsys.readouterr().out
    for w in want:
        row = next(line for line in text.splitlines() if f" {w.name}" in line and " gemm " in line)
        assert f" {w.tactic_name} " in row and f" {w.meta['tactic_ms']:.4f} " in row
    # the same engine built again elsewhere takes its tactics from the timing cache, and says so
    second = get_or_build(mlp(), {"x": (4, 8)}, parse({**raw, "engine_cache_path": str(tmp_path / "e2")}), "cuda",
                          H200)
    assert second.source == "built" and native() == 0
    assert main(["inspect", second.path]) == 0
    text = capsys.readouterr().out
    assert f"*{want[0].tactic_name}" in text and "tactic from the timing cache" in text
