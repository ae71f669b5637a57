"""``ep-trtpy build``: the engines it writes are the ones a session loads, it learns the shapes that only ORT's CPU
provider computes, and ``-o`` writes an EPContext model that a fresh process loads without building (a generated
model, the tiny HuggingFace BERT exports of tests/fixtures, and BERT-base where torch is installed)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from context_testutil import attrs, context_nodes, cpu_shape_feeds, cpu_shape_model, load_in_fresh_process

import ep_trtpy
from ep_trtpy.cli import harness, main

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hf_bert"


def _tf32() -> bool:
    """Whether our float32 engines here use TF32 math (a GPU's default): judged with the 16-bit criterion."""
    return harness.engine_math({}, ep_trtpy.has_gpu()) == "tf32"


def _engines(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("TrtPy_*.engine"))


def test_engines_built_into_a_cache_dir_are_what_a_session_loads(tmp_path: Path, capsys) -> None:
    model = cpu_shape_model(tmp_path / "m.onnx")
    cache = tmp_path / "cache"
    assert main(["build", model, "--shapes", "x:2x6,mask:2x6", "--cache-dir", str(cache)]) == 0
    assert "builds 1, cache hits 0" in capsys.readouterr().out
    assert len(_engines(cache)) == 1

    before = ep_trtpy.runtime_stats()
    sess = harness.create_session(model, "trtpy", ep_options={"engine_cache_enable": "1",
                                                              "engine_cache_path": str(cache)})
    sess.run(None, cpu_shape_feeds(2, 6, seed=3))
    after = ep_trtpy.runtime_stats()
    assert after["builds"] - before["builds"] == 0, "the session rebuilt what `ep-trtpy build` had built"
    assert after["engine_cache_hits"] - before["engine_cache_hits"] == 1
    assert len(_engines(cache)) == 1


def test_build_learns_shapes_computed_on_the_cpu_and_writes_a_context_model(tmp_path: Path, capsys) -> None:
    model = cpu_shape_model(tmp_path / "m.onnx")
    ctx = tmp_path / "ship" / "m_ctx.onnx"
    assert main(["build", model, "--shapes", "x:2x6,mask:2x6", "--cache-dir", str(tmp_path / "c"),
                 "-o", str(ctx)]) == 0
    out = capsys.readouterr().out
    assert "inputs x:2x6 pos:2x6" in out  # pos = CumSum(mask) ran on ORT's CPU provider
    assert f"context model: {ctx} (1 EPContext nodes, embed mode 1)" in out
    (node,) = context_nodes(ctx)
    assert list(node.input) == ["x", "pos"]
    assert '"model_shapes": "x:2x6,mask:2x6"' in attrs(node)["notes"].decode()

    feeds = cpu_shape_feeds(2, 6, seed=4)
    expected = harness.create_session(model, "cpu").run(None, feeds)[0]
    got = load_in_fresh_process(ctx, feeds, tmp_path)
    assert "error" not in got, got.get("error")
    assert got["stats"]["builds"] == 0 and got["stats"]["context_engines"] == 1
    assert got["placement"]["positions"] == "CPUExecutionProvider"
    assert harness.compare("y", got["outputs"][0], expected).ok

    # shapes other than the engine's: an error naming both, not a build
    other = load_in_fresh_process(ctx, cpu_shape_feeds(2, 9), tmp_path)
    assert "holds an engine for x:2x6, pos:2x6, not x:2x9, pos:2x9" in other["error"]


def test_build_output_with_engine_files_beside_the_model(tmp_path: Path, capsys) -> None:
    model = cpu_shape_model(tmp_path / "m.onnx")
    ctx = tmp_path / "ship" / "m_ctx.onnx"
    assert main(["build", model, "--shapes", "x:1x4,mask:1x4", "--cache-dir", str(tmp_path / "c"),
                 "-o", str(ctx), "--embed-mode", "0"]) == 0
    assert "engine files beside it" in capsys.readouterr().out
    (node,) = context_nodes(ctx)
    files = sorted(p.name for p in ctx.parent.iterdir())
    assert files == sorted(["m_ctx.onnx", attrs(node)["ep_cache_context"].decode()])
    got = load_in_fresh_process(ctx, cpu_shape_feeds(1, 4), tmp_path)
    assert "error" not in got and got["stats"]["builds"] == 0


def test_build_without_shapes_for_dynamic_inputs_lists_them(tmp_path: Path, capsys) -> None:
    model = cpu_shape_model(tmp_path / "m.onnx")
    assert main(["build", model, "--shapes", "x:2x6", "--cache-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "dynamic dimensions without --shapes: mask [B, S]" in err and "Traceback" not in err
    assert main(["build", model, "--shapes", "x:2x6,mask:2x6", "--cache-dir", str(tmp_path / "c"),
                 "-o", model]) == 2
    assert "would overwrite the model itself" in capsys.readouterr().err


@pytest.mark.parametrize("fixture", ["bert_tiny_eager_ts17", "bert_tiny_notype_dynamo18_dyn"])
def test_hf_bert_export_with_cpu_parts_builds_into_a_context_model(tmp_path: Path, capsys, fixture: str) -> None:
    """Range and Expand left to the CPU (as an op the EP cannot take would be): the claimed subgraphs read
    position ids and masks whose shapes ORT's CPU provider computes."""
    model = str(FIXTURES / f"{fixture}.onnx")
    names = [i.name for i in onnx.load(model).graph.input]
    shapes = ",".join(f"{n}:2x8" for n in names)
    ctx = tmp_path / f"{fixture}_ctx.onnx"
    assert main(["build", model, "--shapes", shapes, "--cache-dir", str(tmp_path / "c"), "-o", str(ctx),
                 "--option", "op_types_to_exclude=Range,Expand"]) == 0
    out = capsys.readouterr().out
    assert "context model:" in out
    n_engines = len(context_nodes(ctx))
    assert n_engines >= 1
    cpu = {n.op_type for n in onnx.load(str(ctx)).graph.node if n.op_type != "EPContext"}
    assert cpu & {"Range", "Expand"}

    feeds = harness.random_feeds(onnx.load(model), {n: (2, 8) for n in names}, seed=2)
    expected = harness.create_session(model, "cpu").run(None, feeds)
    got = load_in_fresh_process(ctx, feeds, tmp_path)
    assert "error" not in got, got.get("error")
    assert got["stats"]["builds"] == 0 and got["stats"]["context_engines"] == n_engines
    for k, (g, e) in enumerate(zip(got["outputs"], expected)):
        assert harness.compare(f"output {k}", g, e, network=True, low_precision=_tf32()).ok


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None,
                    reason="torch and transformers are not installed here (the package does not depend on them)")
def test_hf_bert_base_context_model(tmp_path: Path, capsys) -> None:
    ctx = tmp_path / "bert_ctx.onnx"
    shapes = "input_ids:1x16,attention_mask:1x16,token_type_ids:1x16"
    assert main(["build", "--model", "hf:bert-base", "--export-dir", str(tmp_path / "export"), "--shapes", shapes,
                 "--cache-dir", str(tmp_path / "c"), "-o", str(ctx)]) == 0
    capsys.readouterr()
    (source,) = [p for p in (tmp_path / "export").glob("*.onnx")]
    names = {n: (1, 16) for n in ("input_ids", "attention_mask", "token_type_ids")}
    feeds = harness.random_feeds(onnx.load(str(source), load_external_data=False), names, seed=5)
    expected = harness.create_session(str(source), "cpu").run(None, feeds)
    got = load_in_fresh_process(ctx, feeds, tmp_path)
    assert "error" not in got, got.get("error")
    assert got["stats"]["builds"] == 0 and got["stats"]["context_engines"] == len(context_nodes(ctx))
    # GPU engines: tactics and cuDNN plans come from the engine file, nothing is timed or compiled again
    assert got["stats"]["tactics_timed"] == 0 and got["stats"].get("plans_built", 0) == 0
    for k, (g, e) in enumerate(zip(got["outputs"], expected)):
        assert harness.compare(f"output {k}", g, e, network=True, low_precision=_tf32()).ok
    assert os.path.getsize(ctx) > 0 and np.isfinite(got["outputs"][0]).all()
