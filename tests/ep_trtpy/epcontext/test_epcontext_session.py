"""EPContext models through real ORT sessions: written by a session with ep.context_enable=1 (engines embedded or
beside the model), loaded in a fresh process without building anything, and refused, with what differs and how to
rebuild, when the engine does not fit this session. Runs on this machine's backend (reference without a GPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from context_testutil import (attrs, context_nodes, cpu_shape_model, edit_context_engines, edit_header, engine_of,
                              load_in_fresh_process, set_format_version, three_output_model, write_with_session)

import ep_trtpy
from ep_trtpy.cli import harness
from ep_trtpy.engine.format import FORMAT_VERSION, decode
from ep_trtpy.epcontext import SOURCE

BACKEND = "cuda" if ep_trtpy.has_gpu() else "reference"


def _feeds(seed: int = 0) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((2, 5)).astype(np.float32)}


@pytest.fixture
def model(tmp_path: Path) -> str:
    return three_output_model(tmp_path / "three.onnx")


def test_source_is_the_ep_name() -> None:
    assert SOURCE == ep_trtpy.EP_NAME


@pytest.mark.parametrize("embed_mode", [1, 0])
def test_written_context_loads_in_a_fresh_process_without_building(model: str, tmp_path: Path,
                                                                   embed_mode: int) -> None:
    ctx = tmp_path / "out" / "three_ctx.onnx"
    ctx.parent.mkdir()
    write_with_session(model, ctx, embed_mode)
    (node,) = context_nodes(ctx)
    a = attrs(node)
    assert node.domain == "com.microsoft" and a["source"] == SOURCE.encode() and a["main_context"] == 1
    assert a["embed_mode"] == embed_mode and a["ep_sdk_version"] == ep_trtpy.__version__.encode()
    assert a["hardware_architecture"] == (b"cpu" if BACKEND == "reference" else b"sm%d%d" % tuple(
        decode(engine_of(ctx, node)).header["device"]["cc"]))
    if embed_mode == 0:  # a file beside the context model, named relative to it
        assert (ctx.parent / a["ep_cache_context"].decode()).is_file() and b"/" not in a["ep_cache_context"]
    header = decode(engine_of(ctx, node)).header  # our engine file, whole and checksummed
    assert header["backend"] == BACKEND and header["format_version"] == FORMAT_VERSION
    cpu_ops = [n.op_type for n in onnx.load(str(ctx)).graph.node if n.op_type != "EPContext"]
    assert cpu_ops == ["CumSum", "CumSum"]

    feeds = _feeds(1)
    expected = harness.create_session(model, "cpu").run(None, feeds)
    got = load_in_fresh_process(ctx, feeds, tmp_path)
    assert "error" not in got, got.get("error")
    assert got["stats"]["builds"] == 0 and got["stats"]["context_engines"] == 1
    assert got["stats"]["engine_cache_hits"] == 0 and got["stats"]["engine_cache_misses"] == 0
    assert got["stats"]["tactics_timed"] == 0  # GPU engines keep the tactics their plan carries
    assert got["placement"][node.name] == ep_trtpy.EP_NAME
    # ORT orders the loaded node's outputs differently from the writer's: each must still land where it belongs
    for name, g, e in zip(["cc", "b", "ca"], got["outputs"], expected):
        assert harness.compare(name, g, e).ok, name


def test_loading_claims_only_the_epcontext_nodes(model: str, tmp_path: Path) -> None:
    """Nodes the writer left to ORT stay there, even where the loading session could claim them (and build)."""
    ctx = tmp_path / "ctx.onnx"
    write_with_session(model, ctx, 1, op_types_to_exclude="Tanh")
    got = load_in_fresh_process(ctx, _feeds(2), tmp_path)
    assert "error" not in got, got.get("error")
    assert got["stats"]["builds"] == 0 and got["placement"]["tanh"] == "CPUExecutionProvider"


def test_dynamic_subgraph_needs_concrete_shapes(tmp_path: Path) -> None:
    model = cpu_shape_model(tmp_path / "dyn.onnx")
    with pytest.raises(Exception, match=r"dynamic input shapes \(.*pos.*ep-trtpy build MODEL --shapes"):
        write_with_session(model, tmp_path / "dyn_ctx.onnx", 1)
    assert not (tmp_path / "dyn_ctx.onnx").exists()


def test_a_context_model_is_not_written_again(model: str, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx.onnx"
    write_with_session(model, ctx, 1)
    with pytest.raises(Exception, match="already is an EPContext model"):
        write_with_session(str(ctx), tmp_path / "ctx2.onnx", 1)


def _refusal(ctx: Path, feeds: dict[str, np.ndarray]) -> str:
    before = ep_trtpy.runtime_stats()["builds"]
    with pytest.raises(Exception) as info:
        harness.create_session(str(ctx), "trtpy").run(None, feeds)
    assert ep_trtpy.runtime_stats()["builds"] == before, "a refused context model must not trigger a build"
    return str(info.value)


def _cuda_like(engine: bytes) -> bytes:
    """The engine dressed as a GPU engine for a Tesla T4 (compute capability 7.5): a minimal valid plan."""
    from ep_trtpy.engine import format as fmt
    from ep_trtpy.engine.plan import Plan, TensorSpec, nbytes_of

    weights_bytes = fmt._PREFIX.unpack_from(engine, 0)[4]  # what the file carries (a GPU engine's own weights)

    def edit(h: dict) -> None:
        tensors = [TensorSpec(k, io["name"], io["dtype"], tuple(io["shape"]), kind, k if kind == "input" else
                              k - len(h["inputs"]), 0, nbytes_of(io["dtype"], io["shape"]))
                   for k, (io, kind) in enumerate([(io, "input") for io in h["inputs"]] +
                                                  [(io, "output") for io in h["outputs"]])]
        h["plan"] = Plan(tensors=tensors, layers=[], n_inputs=len(h["inputs"]), n_outputs=len(h["outputs"]),
                         arena_bytes=0, weights_bytes=weights_bytes).to_dict()
        h["tactic_states"] = []  # one span per layer (format version 2)
        h["backend"], h["device"] = "cuda", {"name": "Tesla T4", "cc": [7, 5]}

    return edit_header(engine, edit)


@pytest.mark.parametrize("change, says", [
    (lambda e: edit_header(e, lambda h: h["producers"].update(ep_trtpy="0.0.1")),
     r"ep_trtpy version: the engine was made by 0\.0\.1, this is " + ep_trtpy.__version__),
    (lambda e: edit_header(e, lambda h: h.update(device={"name": "Tesla T4", "cc": [7, 5]})),
     r"GPU: the engine is for Tesla T4 \(compute capability 7\.5\)"),
    (lambda e: set_format_version(e, FORMAT_VERSION + 7),
     rf"unsupported engine format version {FORMAT_VERSION + 7} \(this ep_trtpy reads version {FORMAT_VERSION}\)"),
    (_cuda_like, r"compute capability 7\.5"),
], ids=["ep_trtpy_version", "device", "format_version", "gpu_engine"])
@pytest.mark.parametrize("embed_mode", [1, 0])
def test_incompatible_engine_is_refused_with_what_differs(model: str, tmp_path: Path, change, says: str,
                                                          embed_mode: int) -> None:
    ctx = tmp_path / "three_ctx.onnx"
    write_with_session(model, ctx, embed_mode)
    edit_context_engines(ctx, change)
    message = _refusal(ctx, _feeds())
    import re

    assert re.search(says, message), message
    assert "ep-trtpy build three.onnx --shapes" in message and "-o three_ctx.onnx" in message, message
    assert "Traceback" not in message


def test_engine_file_that_is_missing_or_outside_the_folder(model: str, tmp_path: Path) -> None:
    ctx = tmp_path / "three_ctx.onnx"
    write_with_session(model, ctx, 0)
    (node,) = context_nodes(ctx)
    engine = tmp_path / attrs(node)["ep_cache_context"].decode()
    engine.unlink()
    assert f"cannot open its engine file {engine}" in _refusal(ctx, _feeds())

    m = onnx.load(str(ctx))
    for a in m.graph.node[0].attribute if m.graph.node[0].op_type == "EPContext" else []:
        if a.name == "ep_cache_context":
            a.s = b"../elsewhere.engine"
    onnx.save(m, str(ctx))
    assert "lies outside the context model's folder" in _refusal(ctx, _feeds())


def test_engine_files_of_a_context_model_loaded_from_bytes(model: str, tmp_path: Path) -> None:
    ctx = tmp_path / "three_ctx.onnx"
    write_with_session(model, ctx, 0)
    with pytest.raises(Exception, match="loaded from bytes: set ep.context_file_path"):
        harness.create_session(ctx.read_bytes(), "trtpy")
    so = harness.session_options(config={"ep.context_file_path": str(ctx)})
    before = ep_trtpy.runtime_stats()
    sess = harness.create_session(ctx.read_bytes(), "trtpy", sess_options=so)
    outs = sess.run(None, _feeds(3))
    assert ep_trtpy.runtime_stats()["builds"] == before["builds"]
    expected = harness.create_session(model, "cpu").run(None, _feeds(3))
    assert all(harness.compare(str(k), g, e).ok for k, (g, e) in enumerate(zip(outs, expected)))


def test_bad_embed_mode_setting_is_an_error(model: str, tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"ep.context_embed_mode is '2'; use 1 .* or 0"):
        write_with_session(model, tmp_path / "ctx.onnx", 2)
