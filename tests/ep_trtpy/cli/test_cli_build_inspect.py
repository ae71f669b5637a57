"""ep-trtpy build / inspect on a small model, on this machine's backend (the reference backend without a GPU)."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import ep_trtpy
from ep_trtpy.cli import main
from ep_trtpy.engine.format import decode, to_artifact


@pytest.fixture
def model_path(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["t"], name="mm"),
         helper.make_node("Add", ["t", "b"], ["u"], name="add"),
         helper.make_node("Relu", ["u"], ["r"], name="relu"), helper.make_node("Sigmoid", ["r"], ["z"], name="sig")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    p = tmp_path / "tiny.onnx"
    p.write_bytes(m.SerializeToString())
    return str(p), w, b


def _engines(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".engine"))


def test_build_then_cache_hit_then_inspect(model_path, tmp_path, capsys):
    path, w, b = model_path
    cache = tmp_path / "cache"
    args = ["build", path, "--shapes", "x:3x8", "--cache-dir", str(cache)]
    assert main(args) == 0
    out = capsys.readouterr().out
    # every node of the session's graph is claimed (ORT fuses MatMul + Add into a Gemm before offering it)
    claimed = re.search(r"claimed (\d+) of (\d+) nodes in 1 subgraphs", out)
    assert claimed and claimed.group(1) == claimed.group(2) and "built in" in out
    files = _engines(cache)
    tail = "_cpu.engine" if not ep_trtpy.has_gpu() else ".engine"
    assert len(files) == 1 and files[0].startswith("TrtPy_") and files[0].endswith(tail)
    assert files[0] in out
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "cache hit" in out and "builds 0, cache hits 1" in out
    art = to_artifact(decode((cache / files[0]).read_bytes()))
    if art.backend == "reference":  # the engine is what the session would run: check its numbers against numpy
        import graph_runner

        x = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
        (z,) = graph_runner.run(art.graph, {art.input_names[0]: x})
        np.testing.assert_allclose(z, 1 / (1 + np.exp(-np.maximum(x @ w + b, 0))), rtol=1e-5, atol=1e-6)

    assert main(["inspect", str(cache / files[0])]) == 0
    text = capsys.readouterr().out
    assert f"backend {art.backend}" in text and "layers (" in text and "graph hash" in text
    assert "relu" in text  # fusions name the original nodes
    assert main(["inspect", str(cache / files[0]), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["header"]["inputs"][0]["shape"] == [3, 8]
    fused = [n for lay in d["layers"] for n in lay["fused"]]
    assert {"relu", "sig"} <= set(fused)
    assert d["memory"]["weights_bytes"] >= w.nbytes


def test_build_dump_passes(model_path, tmp_path, capsys):
    import onnx

    path, _, _ = model_path
    dump = tmp_path / "dump"
    assert main(["build", path, "--shapes", "x:2x8", "--cache-dir", str(tmp_path / "c"),
                 "--dump-passes", str(dump)]) == 0
    capsys.readouterr()
    (engine_dir,) = list(dump.iterdir())
    files = sorted(p.name for p in engine_dir.iterdir())
    assert any("fuse_matmul" in f for f in files) and all(f.endswith(".onnx") for f in files)
    last = onnx.load(str(engine_dir / files[-1]))
    assert {n.op_type for n in last.graph.node} <= {"FusedMatMul", "Pointwise"}


def test_build_defaults_a_dynamic_batch_with_a_note(model_path, tmp_path, capsys):
    path, _, _ = model_path
    rc = main(["build", path, "--cache-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert rc == 0 and "inputs x:1x8" in captured.out
    assert "note: dynamic batch dimension set to 1 for x [N, 8] (--shapes sets it)" in captured.err
    rc = main(["build", path, "--shapes", "nope:1x8", "--cache-dir", str(tmp_path)])
    assert rc == 2 and "'nope', which is not an input" in capsys.readouterr().err


def test_build_fp16_is_a_different_engine(model_path, tmp_path, capsys):
    path, _, _ = model_path
    base = ["build", path, "--shapes", "x:2x8", "--cache-dir", str(tmp_path)]
    assert main(base) == 0 and main(base + ["--fp16"]) == 0
    capsys.readouterr()
    files = _engines(tmp_path)
    assert len(files) == 2
    headers = [decode((tmp_path / f).read_bytes()).header for f in files]
    assert sorted(h["options"]["fp16_enable"] for h in headers) == [False, True]


@pytest.mark.parametrize("damage", ["truncate", "flip", "text"])
def test_inspect_corrupt_file_is_one_line_error(model_path, tmp_path, capsys, damage):
    path, _, _ = model_path
    assert main(["build", path, "--shapes", "x:2x8", "--cache-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    f = tmp_path / _engines(tmp_path)[0]
    data = f.read_bytes()
    bad = {"truncate": data[:100], "flip": data[:50] + bytes([data[50] ^ 1]) + data[51:], "text": b"hello"}[damage]
    f.write_bytes(bad)
    assert main(["inspect", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("ep-trtpy inspect: error:")


def test_parse_shapes():
    from ep_trtpy.cli.build import parse_shapes

    assert parse_shapes("a:1x3x224x224, b:1x128 ,s:") == {"a": (1, 3, 224, 224), "b": (1, 128), "s": ()}
    with pytest.raises(ValueError, match="'a:1xq': dimensions must be integers"):
        parse_shapes("a:1xq")
    with pytest.raises(ValueError, match="'1x3': expected NAME:D0xD1x"):
        parse_shapes("1x3")
    with pytest.raises(ValueError, match="gives 'a' twice"):
        parse_shapes("a:1,a:2")


def test_inspect_shows_the_layout_of_convolutions(tmp_path, capsys):
    rng = np.random.default_rng(2)
    nodes, inits, x = [], [], "x"
    for i in range(3):
        inits.append(numpy_helper.from_array(rng.standard_normal((4, 4, 3, 3)).astype(np.float32), f"w{i}"))
        nodes += [helper.make_node("Conv", [x, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1], name=f"conv{i}"),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}")]
        x = f"r{i}"
    nodes.append(helper.make_node("MaxPool", [x], ["y"], kernel_shape=[2, 2], strides=[2, 2], name="pool"))
    g = helper.make_graph(nodes, "convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])], inits)
    # the reference backend's layout decisions, whatever this machine's backend is: built through the builder
    from ep_trtpy.builder.build import get_or_build
    from ep_trtpy.options import parse
    from graph_partitioner.onnx_io import graph_from_onnx

    graph = graph_from_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
    got = get_or_build(graph, [(1, 4, 8, 8)], parse({"fp16_enable": "1", "engine_cache_enable": "1",
                                                      "engine_cache_path": str(tmp_path / "c")}), "reference")
    engine = str(got.path)
    assert main(["inspect", engine, "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    layouts = {lay["kernel"]: lay["layout"] for lay in layers}
    assert layouts["ep_trtpy::FusedConv"] == "NHWC" and layouts["ep_trtpy::Pool"] == "NHWC"
    assert layouts["ep_trtpy::CastTranspose"] == "" and "Transpose" not in layouts  # the edges' cast + transpose
    assert main(["inspect", engine]) == 0
    text = capsys.readouterr().out
    assert " layout " in text and any("FusedConv" in ln and " NHWC " in ln for ln in text.splitlines())


def test_inspect_lists_the_shortcut_add_fused_after_the_activation(tmp_path, capsys):
    """A CSP bottleneck's x + SiLU(conv(x)): the Add after the activation is one of the FusedConv's nodes."""
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Sigmoid", ["c"], ["s"], name="gate"), helper.make_node("Mul", ["c", "s"], ["a"],
                                                                                     name="silu"),
             helper.make_node("Add", ["x", "a"], ["y"], name="shortcut")]
    inits = [numpy_helper.from_array(rng.standard_normal((4, 4, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")]
    g = helper.make_graph(nodes, "csp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    from ep_trtpy.builder.build import get_or_build
    from ep_trtpy.options import parse
    from graph_partitioner.onnx_io import graph_from_onnx

    graph = graph_from_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
    got = get_or_build(graph, [(1, 4, 8, 8)], parse({"engine_cache_enable": "1",
                                                      "engine_cache_path": str(tmp_path / "c")}), "reference")
    assert main(["inspect", str(got.path), "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    convs = [lay for lay in layers if lay["kernel"] == "ep_trtpy::FusedConv"]
    assert len(convs) == 1 and set(convs[0]["fused"]) == {"conv", "gate", "silu", "shortcut"}, layers
    assert not any(lay["kernel"] == "Add" for lay in layers)
