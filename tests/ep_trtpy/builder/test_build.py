"""build.py: optimize / build for both backends; the cuda path with test-only stand-ins for the lowering functions
and the native runtime (other helpers' work), so that plan annotation, tactic write-back, engine files with plans
and cache hits that re-create native engines are exercised here."""

from __future__ import annotations

import json
import logging
import sys
import types

import numpy as np
import pytest

import graph_runner
from builder_testutil import GB, check_same, feeds_for, ops
from ep_trtpy.builder import lowering as lowering_mod
from ep_trtpy.builder.build import BuildError, build, optimize, optimize_with_context
from ep_trtpy.builder.pipeline import PIPELINE, load_pass, pass_names
from ep_trtpy.engine.artifact import CPU, Device
from ep_trtpy.options import parse

H100 = Device(0, "NVIDIA H100 80GB HBM3", (9, 0))


def mlp():
    rng = np.random.default_rng(0)
    gb = GB()
    x = gb.input("x", ("N", 8))
    y = gb.op("MatMul", [x, gb.const(rng.standard_normal((8, 6)).astype(np.float32), "w")])
    y = gb.op("Relu", [gb.op("Add", [y, gb.const(rng.standard_normal(6).astype(np.float32), "b")])])
    y = gb.op("Mul", [gb.op("Sigmoid", [y]), gb.const(np.float32(2.0), "two")])
    return gb.output(y)


def test_every_pipeline_pass_loads_and_documents_itself():
    for name in pass_names():
        mod = load_pass(name)
        doc = mod.__doc__ or ""
        assert doc.startswith(f"{name}:"), name
        for word in ("Math", "Match", "Refusal", "Rewrite"):
            assert word in doc, f"{name} docstring lacks '{word}'"
    assert [s.name for s in PIPELINE][0] == "bind"


def test_optimize_does_not_touch_the_input_and_keeps_numbers():
    g = mlp()
    before_ops = ops(g)
    out = optimize(g, {"x": (3, 8)}, parse({}))
    assert ops(g) == before_ops and g.inputs[0].shape == ("N", 8)
    assert ops(out) == ["FusedMatMul", "Pointwise"]
    ref = optimize(g, [(3, 8)], None)  # shapes as a list in input order; no options
    assert ops(ref) == ops(out)
    check_same(mlp_bound(), out, feeds_for(mlp_bound()))


def mlp_bound():
    g = mlp()
    g.inputs[0].shape = (3, 8)
    from builder_testutil import apply

    apply(g, [])
    return g


def test_bad_shapes_are_build_errors():
    with pytest.raises(BuildError, match="1 input shapes given .* with 2 inputs"):
        gb = GB()
        a, b = gb.input("a", (2,)), gb.input("b", (2,))
        optimize(gb.output(gb.op("Add", [a, b])), [(2,)], None)
    with pytest.raises(BuildError, match="unknown backend 'tpu'"):
        build(mlp(), {"x": (3, 8)}, None, "tpu")


def test_detailed_log_and_dump_hook():
    dumps: list[str] = []
    records: list[logging.LogRecord] = []

    class H(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger("ep_trtpy.builder")
    h = H(logging.INFO)
    logger.addHandler(h)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        _, ctx = optimize_with_context(mlp(), {"x": (3, 8)}, parse({"detailed_build_log": "1"}),
                                       dump=lambda label, graph: dumps.append(label))
    finally:
        logger.removeHandler(h)
        logger.setLevel(old)
    msgs = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert any(m.startswith("pass fuse_matmul") and "changed" in m for m in msgs)
    assert any("optimized graph" in m for m in msgs)
    assert dumps and all(label.split("_", 1)[1] in pass_names() for label in dumps)
    assert len(ctx.records) >= len(pass_names())


def test_reference_build():
    g = mlp()
    art = build(g, {"x": (3, 8)}, parse({}), "reference")
    assert art.backend == "reference" and art.plan is None and art.engine is None
    assert art.input_shapes == [(3, 8)] and art.outputs == [(1, (3, 6))]
    fm = next(n for n in art.graph.nodes if n.op_type == "FusedMatMul")
    assert art.fusions[fm.name] == [n.name for n in g.nodes if n.op_type in ("MatMul", "Add", "Relu")]
    assert art.build_seconds > 0 and any(p["pass"] == "fuse_matmul" and p["changed"] for p in art.passes)


# ----------------------------------------------------------------------------------- cuda with stand-ins --

class FakeEngine:
    def __init__(self, plan, weights, device):
        self.plan, self.weights, self.device = plan, weights, device

    def tactics(self):
        return [10 + i for i in range(len(self.plan.layers))]

    def workspaces(self):
        return [64 * i for i in range(len(self.plan.layers))]


@pytest.fixture
def cuda_standins(monkeypatch):
    """Lowering functions for the two internal ops of mlp() (only where none is registered) and a fake
    ep_trtpy.runtime.build_engine."""
    import ep_trtpy

    existing = lowering_mod.lowerings()

    def lower_any(ctx, node):
        ctx.emit(node.op_type.lower(), [ctx.tensor(v) if v is not None else -1 for v in node.inputs],
                 [ctx.tensor(v) for v in node.outputs], name=node.name)

    for key in ("ep_trtpy::FusedMatMul", "ep_trtpy::Pointwise"):
        if key not in existing:
            monkeypatch.setitem(lowering_mod._LOWERINGS, key, lower_any)
    built: list[FakeEngine] = []
    fake = types.ModuleType("ep_trtpy.runtime")

    def build_engine(plan, weights, device, tuning_level=None, progress=None):
        built.append(FakeEngine(plan, weights, device))
        return built[-1]

    fake.build_engine = build_engine  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ep_trtpy.runtime", fake)
    monkeypatch.setattr(ep_trtpy, "runtime", fake, raising=False)
    return built


def test_cuda_build_lowers_annotates_and_writes_back_tactics(cuda_standins):
    art = build(mlp(), {"x": (3, 8)}, parse({}), "cuda", H100)
    assert art.plan is not None and isinstance(art.engine, FakeEngine) and art.engine.device == 0
    assert [lay.tactic for lay in art.plan.layers] == [10 + i for i in range(len(art.plan.layers))]
    assert [lay.workspace for lay in art.plan.layers] == [64 * i for i in range(len(art.plan.layers))]
    mm = next(lay for lay in art.plan.layers if lay.name.startswith("MatMul"))
    assert mm.meta["precision"] == "float32" and len(mm.meta["fused"]) == 3
    assert art.plan.weights_bytes == len(art.weights) > 0


def test_cuda_engine_file_and_cache_hit_recreate_the_engine(cuda_standins, tmp_path):
    from ep_trtpy.builder.build import get_or_build
    from ep_trtpy.engine.cache import Counters
    from ep_trtpy.engine.format import decode

    opts = parse({"engine_cache_enable": "1", "engine_cache_path": str(tmp_path)})
    c = Counters()
    first = get_or_build(mlp(), {"x": (3, 8)}, opts, "cuda", H100, counters=c)
    assert first.path.endswith("_sm90.engine") and first.source == "built"
    dec = decode(open(first.path, "rb").read(), expect_key=first.key)
    assert [lay.tactic for lay in dec.plan.layers] == [lay.tactic for lay in first.artifact.plan.layers]
    assert dec.weights == first.artifact.weights
    again = get_or_build(mlp(), {"x": (3, 8)}, opts, "cuda", H100, counters=c)
    assert again.source == "cache" and isinstance(again.artifact.engine, FakeEngine)
    assert again.artifact.engine.weights == first.artifact.weights and len(cuda_standins) == 2
    assert c.builds == 1 and c.engine_cache_hits == 1
    # another GPU generation is another engine
    other = get_or_build(mlp(), {"x": (3, 8)}, opts, "cuda", Device(0, "NVIDIA A100", (8, 0)), counters=c)
    assert other.source == "built" and other.path.endswith("_sm80.engine")


def test_host_cuda_backend_returns_native_engines(cuda_standins):
    from ep_trtpy import _host

    dev = json.dumps({"backend": "cuda", "devices": [{"device_id": 0, "name": H100.name, "cc": [9, 0]}]})
    ep, ordinal = _host.create_ep("{}", dev)
    assert ordinal == 0
    g = mlp()
    doc = {"name": "f", "opsets": {"": 17}, "inputs": ["x"], "outputs": [g.outputs[0].name],
           "initializers": [v.name for v in g.initializers],
           "values": {"x": {"dtype": 1, "shape": [-1, 8], "dims": ["N", ""]}},
           "nodes": [{"name": n.name, "op_type": n.op_type, "domain": "", "since_version": 13,
                      "inputs": [v.name for v in n.inputs], "outputs": [v.name for v in n.outputs], "attrs": {}}
                     for n in g.nodes],
           "fused_node": {"name": "f", "inputs": ["x"], "outputs": [g.outputs[0].name]}}
    pid, rt = _host.compile(ep, json.dumps(doc), [v.const for v in g.initializers])
    assert rt == [0] and not cuda_standins  # dynamic shape: nothing built yet
    e1 = _host.get_engine(pid, [(4, 8)])
    assert isinstance(e1, FakeEngine) and _host.get_engine(pid, [(4, 8)]) is e1
    assert _host.get_engine(pid, [(5, 8)]) is not e1
    _host.release_ep(ep)


def test_cpu_device_defaults():
    assert CPU.ordinal == -1 and CPU.sm == "sm00" and H100.sm == "sm90"


@pytest.mark.parametrize("fp16", ["0", "1"])
def test_zero_size_and_scalar_values(fp16):
    gb = GB()
    x, s = gb.input("x", ("N", 8)), gb.input("s", ())
    y = gb.op("MatMul", [x, gb.const(np.ones((8, 3), np.float32), "w")])
    y = gb.op("Relu", [gb.op("Add", [y, s])])
    z = gb.op("Sigmoid", [gb.op("Mul", [s, s])])
    g = gb.output(y, z)
    out = optimize(g, {"x": (0, 8)}, parse({"fp16_enable": fp16}))
    assert "FusedMatMul" in ops(out)
    y0, z0 = graph_runner.run(out, {"x": np.zeros((0, 8), np.float32), "s": np.float32(2.0)})
    assert y0.shape == (0, 3) and y0.dtype == np.float32
    assert z0.shape == () and abs(float(z0) - 1 / (1 + np.exp(-4.0))) < 1e-3
