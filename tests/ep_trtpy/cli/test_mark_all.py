"""``ep-trtpy compare --mark-all`` (ep_trtpy/cli/_mark_all.py): a layer planted to be slightly wrong is named, and
nothing before it; a clean model passes everywhere; an FP16 overflow is found at the layer that overflows. The
reference backend runs through the command line; the GPU path (tapped plans) runs through the numpy emulator of
our kernels with a planted wrong weight."""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from ep_trtpy.cli import _mark_all as mark
from ep_trtpy.cli import main
from ep_trtpy.ops import registry
from ep_trtpy.options import Options
from graph_partitioner.ir import np_dtype

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "builder", "lowering"))
from kernel_emulator import execute  # noqa: E402


def _model(nodes: list, inits: dict[str, np.ndarray], x_shape: list, opset: int = 17):  # noqa: ANN202
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def mlp(scale: float = 0.3):  # noqa: ANN201
    """MatMul + Add + Relu (one FusedMatMul layer) -> LayerNormalization -> MatMul -> Softmax -> Mul."""
    rng = np.random.default_rng(0)
    inits = {"w1": (rng.standard_normal((8, 16)) * scale).astype(np.float32),
             "b1": rng.standard_normal(16).astype(np.float32), "g": np.ones(16, np.float32),
             "beta": np.zeros(16, np.float32), "w2": (rng.standard_normal((16, 4)) * 0.3).astype(np.float32),
             "k": np.array(1e-3, np.float32)}
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["t"], name="mm1"),
             helper.make_node("Add", ["t", "b1"], ["u"], name="add1"),
             helper.make_node("Relu", ["u"], ["r"], name="relu1"),
             helper.make_node("LayerNormalization", ["r", "g", "beta"], ["n"], axis=-1, name="norm"),
             helper.make_node("MatMul", ["n", "w2"], ["v"], name="mm2"),
             helper.make_node("Softmax", ["v"], ["s"], axis=-1, name="softmax"),
             helper.make_node("Mul", ["s", "k"], ["y"], name="scale")]
    return _model(nodes, inits, ["N", 8])


def convnet():  # noqa: ANN201
    """Three convolutions (channels-last in FP16), a pool, a flatten and a GEMM."""
    rng = np.random.default_rng(1)
    inits = {"w1": (rng.standard_normal((8, 4, 3, 3)) * 0.3).astype(np.float32),
             "w2": (rng.standard_normal((8, 8, 3, 3)) * 0.2).astype(np.float32),
             "w3": (rng.standard_normal((8, 8, 1, 1)) * 0.3).astype(np.float32),
             "wg": (rng.standard_normal((128, 6)) * 0.2).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Add", ["c2", "r1"], ["s"], name="residual"),
             helper.make_node("Conv", ["s", "w3"], ["c3"], name="conv3"),
             helper.make_node("MaxPool", ["c3"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "wg"], ["y"], name="gemm")]
    return _model(nodes, inits, ["N", 4, 8, 8])


def amplifier():  # noqa: ANN201
    """MatMul -> Softmax -> Mul. The logits are large (about 80) and close to each other (within a few units): the
    softmax passes a relative error e of its logits on as about 80 e, and computes nothing wrong."""
    rng = np.random.default_rng(7)
    common = rng.standard_normal((8, 1)) * 30.0
    inits = {"w": (common + rng.standard_normal((8, 6)) * 0.3).astype(np.float32), "k": np.array(2.0, np.float32)}
    nodes = [helper.make_node("MatMul", ["x", "w"], ["l"], name="mm"),
             helper.make_node("Softmax", ["l"], ["s"], axis=-1, name="softmax"),
             helper.make_node("Mul", ["s", "k"], ["y"], name="scale")]
    return _model(nodes, inits, ["N", 8])


class Perturbed(mark.ReferenceBackend):
    """The reference backend whose engine runs with the weight of one layer multiplied by (1 + e * noise): a layer
    whose arithmetic is off (relative error about e), while the layer's own evaluation reads the built graph."""

    def __init__(self, layer: str, e: float) -> None:
        self.layer, self.e = layer, e

    def run(self, art, names, feeds):  # noqa: ANN001, ANN201
        g = art.graph.copy()
        w = next(n for n in g.nodes if n.name.startswith(self.layer)).inputs[1]
        noise = np.random.default_rng(1).standard_normal(w.const.shape)
        w.const = (w.const * (1 + self.e * noise)).astype(w.const.dtype)
        return super().run(dataclasses.replace(art, graph=g), names, feeds)


def _amplifier_report(e: float) -> tuple[mark.Report, dict[str, mark.Row]]:
    x = np.random.default_rng(2).uniform(0.5, 1.5, (3, 8)).astype(np.float32)
    report = mark.debug(amplifier(), {"x": x}, Options(), Perturbed("mm", e), "amp")
    return report, {r.value: r for r in report.rows}


def test_an_exact_layer_that_amplifies_inherited_error_is_not_blamed() -> None:
    report, rows = _amplifier_report(3e-5)
    mm, sm = rows["l"], rows["s"]
    assert mm.total_ok and mm.rms > 1e-6, mm  # the noisy layer: off, within fp32's tolerance
    assert not sm.total_ok and sm.rms > 10 * mm.rms, sm  # the softmax output fails against ORT ...
    assert sm.ok and sm.introduced.rms == 0 and sm.as_built.rms < 1e-6, sm  # ... but computes exactly
    assert not sm.inherited.ok and sm.inherited.rms == pytest.approx(sm.rms, rel=1e-2), sm
    assert report.first_failure is None, report.verdict()
    assert report.verdict().startswith("PASS: no layer") and "inherit error beyond tolerance" in report.verdict()


def test_a_layer_that_introduces_error_is_blamed_and_not_what_follows() -> None:
    report, rows = _amplifier_report(1e-2)
    mm, sm = rows["l"], rows["s"]
    assert report.first_failure is mm, report.verdict()
    assert not mm.introduced.ok and mm.introduced.rms > 1e-3 and mm.as_built.ok, mm
    assert not sm.total_ok and sm.ok, sm
    assert "introduced rel rms" in report.verdict() and "1 of 3 values fail" in report.verdict()


def test_mark_all_json_and_table_show_both_errors(tmp_path, monkeypatch, capsys) -> None:  # noqa: ANN001
    path = _save(tmp_path, mlp(), "mlp.onnx")
    _plant(monkeypatch, "Softmax", "softmax")
    rc, doc, text = _mark_all(tmp_path, path, "--shapes", "x:3x8", capsys=capsys)
    assert rc == 1
    rows = {r["value"]: r for r in doc["rows"]}
    assert {"ok", "max_abs", "max_rel", "rms", "cosine", "bad", "note", "value", "layer"} <= set(rows["s"])  # as before
    assert rows["n"]["total_ok"] and rows["n"]["introduced"] is None  # a passing value is not traced
    assert set(rows["s"]["as_built"]) >= {"ok", "rms", "max_rel"} and rows["s"]["inherited"]["rms"] < 1e-6
    assert not rows["y"]["total_ok"] and rows["y"]["ok"] and rows["y"]["inherited"]["rms"] > 1e-3
    first = next(ln for ln in text.splitlines() if "<- first failure" in ln)
    assert "FAIL (introduced rel rms 0, max rel 0; as built rel rms 0.01" in first
    last_row = next(ln for ln in text.splitlines() if ln.strip().startswith("4 "))
    assert " inherits (introduced rel rms 0" in last_row


def _save(tmp_path, model, name: str) -> str:  # noqa: ANN001
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return str(path)


def _plant(monkeypatch, key: str, layer_prefix: str, factor: float = 1.01) -> None:  # noqa: ANN001
    """Make the reference of op `key` wrong by `factor` for the layers whose name starts with `layer_prefix`."""
    entry = registry.get(key)
    good = entry.ref

    def bad(node, *args):  # noqa: ANN001, ANN002, ANN202
        out = good(node, *args)
        if not node.name.startswith(layer_prefix):
            return out
        first = out[0] if isinstance(out, (tuple, list)) else out  # LayerNormalization: (Y, mean, inv_std)
        wrong = (first * np.asarray(factor, first.dtype)).astype(first.dtype)
        return (wrong, *out[1:]) if isinstance(out, (tuple, list)) else wrong

    monkeypatch.setattr(entry, "ref", bad)


def _mark_all(tmp_path, path: str, *extra: str, capsys) -> tuple[int, dict, str]:  # noqa: ANN001
    out = tmp_path / "mark.json"
    rc = main(["compare", path, "--mark-all", "--backend", "reference", "--json", str(out), *extra])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and out.exists(), captured.err
    return rc, json.loads(out.read_text()), captured.out


@pytest.mark.parametrize("key,prefix,layer", [("LayerNormalization", "norm", "norm"), ("Softmax", "softmax", "softmax"),
                                              ("ep_trtpy::FusedMatMul", "mm2", "mm2")])
def test_names_exactly_the_planted_layer(tmp_path, monkeypatch, capsys, key, prefix, layer) -> None:  # noqa: ANN001
    path = _save(tmp_path, mlp(), "mlp.onnx")
    _plant(monkeypatch, key, prefix)
    rc, doc, text = _mark_all(tmp_path, path, "--shapes", "x:3x8", capsys=capsys)
    assert rc == 1
    first = doc["first_failure"]
    assert first["layer"] == layer and first["op"] == key, doc["verdict"]
    rows = doc["rows"]
    i = next(k for k, r in enumerate(rows) if r["layer"] == layer)
    assert all(r["ok"] for r in rows[:i]) and i > 0  # every layer before it passes
    assert text.strip().splitlines()[-1].startswith(f"FAIL: first failing layer '{layer}'")
    assert "<- first failure" in text
    planted = rows[i]  # the engine is the reference here: the layer as built differs from ORT, its arithmetic not
    assert not planted["total_ok"] and planted["introduced"]["rms"] == 0, planted
    assert not planted["as_built"]["ok"] and planted["as_built"]["rms"] > 1e-3, planted
    assert all(r["ok"] and r["as_built"]["ok"] for r in rows[i + 1:] if not r["total_ok"])  # inherited, not blamed


def test_clean_model_passes_every_value(tmp_path, capsys) -> None:  # noqa: ANN001
    path = _save(tmp_path, mlp(), "mlp.onnx")
    rc, doc, text = _mark_all(tmp_path, path, "--shapes", "x:3x8", capsys=capsys)
    assert rc == 0 and doc["first_failure"] is None and text.strip().splitlines()[-1].startswith("PASS")
    rows = {r["value"]: r for r in doc["rows"]}
    assert set(rows) == {"r", "n", "v", "s", "y"}  # t and u live inside the FusedMatMul layer
    assert rows["r"]["fused"] == ["mm1", "add1", "relu1"] and rows["r"]["op"] == "ep_trtpy::FusedMatMul"
    assert [r["value"] for r in doc["rows"]] == ["r", "n", "v", "s", "y"]  # execution order
    assert {s["value"]: s["reason"] for s in doc["skipped"]} == {
        "t": "inside a fused layer (never materialized)", "u": "inside a fused layer (never materialized)"}
    assert all(r["precision"] == "fp32" and r["max_rel"] < 1e-5 and r["rms"] < 1e-5 for r in doc["rows"])


@pytest.mark.parametrize("plant,engine", [("softmax", 1), ("mm1", 0)])
def test_two_engines_around_a_cpu_node(tmp_path, monkeypatch, capsys, plant, engine) -> None:  # noqa: ANN001
    path = _save(tmp_path, mlp(), "mlp.onnx")
    _plant(monkeypatch, "Softmax" if plant == "softmax" else "ep_trtpy::FusedMatMul", plant)
    rc, doc, text = _mark_all(tmp_path, path, "--shapes", "x:3x8", "--option",
                              "op_types_to_exclude=LayerNormalization", capsys=capsys)
    assert rc == 1 and doc["engines"] == 2 and doc["cpu_nodes"] == 1
    assert [r["engine"] for r in doc["rows"]] == [0, 1, 1, 1]  # n is computed by the CPU provider: not compared
    assert doc["first_failure"]["engine"] == engine and doc["first_failure"]["layer"].startswith(plant)
    assert "1 node(s) left to the CPU provider" in text


def test_execution_order_follows_dependencies_not_first_nodes() -> None:
    from graph_partitioner.ir import FLOAT, Graph

    g = Graph("order", {"": 17})
    x = g.add_value("x", FLOAT, (2,))
    g.inputs.append(x)
    a0 = g.add_node("Relu", [x], 1, name="a0")  # cluster A starts first ...
    b = g.add_node("Tanh", [x], 1, name="b")  # ... but reads B's output at its end
    a1 = g.add_node("Add", [a0.outputs[0], b.outputs[0]], 1, name="a1")
    g.outputs.append(a1.outputs[0])
    order = mark.execution_order(g, [[a0, a1], [b]])
    assert [[n.name for n in c] for c in order] == [["b"], ["a0", "a1"]]


@pytest.mark.parametrize("flag,precision", [("--fp16", "fp16"), ("--bf16", "bf16")])
def test_reduced_precision_engines_pass_with_their_tolerance(tmp_path, capsys, flag, precision) -> None:  # noqa
    path = _save(tmp_path, convnet(), "conv.onnx")
    rc, doc, _ = _mark_all(tmp_path, path, flag, "--shapes", "x:2x4x8x8", capsys=capsys)
    assert rc == 0, doc["verdict"]
    rows = {r["value"]: r for r in doc["rows"]}
    assert rows["r1"]["layout"] == "NHWC" and rows["r1"]["shape"] == [2, 8, 8, 8]  # compared in the model's NCHW
    assert {r["precision"] for r in doc["rows"]} == {precision}
    assert max(r["rms"] for r in doc["rows"]) > 1e-4  # the engine really ran in 16 bits: fp32 would fail


def test_planted_convolution_in_a_channels_last_low_precision(tmp_path, monkeypatch, capsys) -> None:  # noqa
    path = _save(tmp_path, convnet(), "conv.onnx")
    _plant(monkeypatch, "ep_trtpy::FusedConv", "conv2", factor=1.2)
    rc, doc, _ = _mark_all(tmp_path, path, "--fp16", "--shapes", "x:2x4x8x8", capsys=capsys)
    assert rc == 1 and doc["first_failure"]["layer"].startswith("conv2"), doc["verdict"]
    assert doc["first_failure"]["value"] == "s"  # conv2 absorbed the residual Add: its output is the ONNX value s
    assert doc["rows"][0]["value"] == "r1" and doc["rows"][0]["ok"]


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_fp16_overflow_is_the_failing_layer(tmp_path, capsys) -> None:  # noqa: ANN001
    path = _save(tmp_path, mlp(scale=3e4), "big.onnx")  # x @ w1 reaches ~1e5: beyond float16's 65504
    rc, doc, _ = _mark_all(tmp_path, path, "--shapes", "x:3x8", capsys=capsys)
    assert rc == 0, doc["verdict"]  # float32 holds it
    rc, doc, text = _mark_all(tmp_path, path, "--fp16", "--shapes", "x:3x8", capsys=capsys)
    assert rc == 1 and doc["first_failure"]["value"] == "r", doc["verdict"]
    assert "overflow" in doc["rows"][0]["note"] and "overflow" in text


def test_elementwise_tolerance_from_the_command_line(tmp_path, capsys) -> None:  # noqa: ANN001
    path = _save(tmp_path, mlp(), "mlp.onnx")
    rc, doc, _ = _mark_all(tmp_path, path, "--shapes", "x:3x8", "--rtol", "0", "--atol", "1e-12", "--absolute-atol",
                           capsys=capsys)
    assert rc == 1 and doc["elementwise"] == {"rtol": 0.0, "atol": 1e-12, "relative_to_max": False}
    assert doc["first_failure"]["value"] == "r" and "--rtol/--atol" in doc["verdict"]  # float rounding differs
    rc, doc, _ = _mark_all(tmp_path, path, "--shapes", "x:3x8", "--rtol", "1e-3", "--atol", "1e-4", capsys=capsys)
    assert rc == 0


def test_criteria_per_precision() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((4, 1024)).astype(np.float32)
    off = ref * np.float32(1.01)  # a 1 % error in scale: cosine 1, relative RMS 1e-2
    assert not mark.compare_value(off, ref, "fp32", False).ok
    m = mark.compare_value(off, ref, "fp16", False)
    assert m.ok and m.rms == pytest.approx(0.01, rel=1e-3) and m.cosine == pytest.approx(1.0)
    assert not mark.compare_value(ref * np.float32(1.06), ref, "fp16", False).ok
    spike = ref.copy()
    spike[0, 0] += 0.3 * np.abs(ref).max()  # one element far off: small RMS, large max rel
    assert mark.compare_value(spike, ref, "fp16", False).rms < 0.04
    assert not mark.compare_value(spike, ref, "fp16", False).ok
    nan = ref.copy()
    nan[1, 1] = np.nan
    m = mark.compare_value(nan, ref, "bf16", False)
    assert not m.ok and m.bad == 1 and "NaN/Inf" in m.note
    assert mark.compare_value(nan, nan, "fp32", False).ok  # NaN where the reference has NaN
    nhwc = rng.standard_normal((1, 3, 4, 5)).astype(np.float32)
    assert mark.compare_value(nhwc.transpose(0, 2, 3, 1), nhwc, "fp32", True).ok
    assert not mark.compare_value(np.array([1, 2]), np.array([1, 3]), "fp16", False).ok  # integers: exact


def test_masking_sentinel_matches_its_float16_clamp() -> None:
    ref = np.array([[0.0, -3.4028235e38, 1.5]], np.float32)
    clamped = np.array([[0.0, -np.inf, 1.5]], np.float16)
    assert mark.compare_value(clamped, ref, "fp16", False).ok
    overflow = mark.compare_value(np.array([[0.0, np.inf, 1.5]], np.float16),
                                  np.array([[0.0, 1e5, 1.5]], np.float32), "fp16", False)
    assert not overflow.ok and "overflow: 1 element" in overflow.note
    assert not mark.compare_value(clamped, ref, "fp32", False).ok  # only 16-bit engines clamp by design
    import ml_dtypes

    rounded = ref.astype(ml_dtypes.bfloat16)  # bfloat16 rounds -3.4e38 to -inf
    assert np.isneginf(rounded.astype(np.float32)[0, 1]) and mark.compare_value(rounded, ref, "bf16", False).ok
    assert not mark.compare_value(rounded, ref, "fp32", False).ok


# ------------------------------------------------------------------------------------------ the GPU path --
class EmulatedCuda(mark.CudaBackend):
    """The cuda backend's build (passes + lowering, without the native engine) and taps, run by the numpy
    emulator of our kernels; `wrong` scales the weights of the layer whose name starts with it."""

    def __init__(self, wrong: str = "") -> None:
        super().__init__()
        self.wrong = wrong

    def build(self, sub, shapes, options):  # noqa: ANN001, ANN201
        from ep_trtpy.builder.build import build
        from ep_trtpy.builder.lowering import lower

        art = build(sub, shapes, options, "reference")
        plan, weights = lower(art.graph, options)
        blob = bytearray(weights)
        for lay in plan.layers:
            if self.wrong and lay.name.startswith(self.wrong):
                w = plan.tensors[lay.inputs[1]]
                arr = np.frombuffer(bytes(blob[w.offset:w.offset + w.nbytes]), np_dtype(w.dtype))
                blob[w.offset:w.offset + w.nbytes] = (arr.astype(np.float32) * 1.25).astype(arr.dtype).tobytes()
        art.backend, art.plan, art.weights = "cuda", plan, bytes(blob)
        return art

    def execute(self, plan, weights, inputs):  # noqa: ANN001, ANN201
        return execute(plan, weights, inputs)


@pytest.mark.parametrize("options", [Options(fp16_enable=True), Options(bf16_enable=True), Options()],
                         ids=["fp16", "bf16", "tf32"])
def test_gpu_path_through_the_emulator(options: Options) -> None:
    x = np.random.default_rng(3).standard_normal((2, 4, 8, 8)).astype(np.float32)
    clean = mark.debug(convnet(), {"x": x}, options, EmulatedCuda(), "conv")
    assert clean.first_failure is None, clean.verdict()
    assert [r.value for r in clean.rows][:3] == ["r1", "s", "c3"]
    assert clean.precision == ("fp16" if options.fp16_enable else "bf16" if options.bf16_enable else "tf32")
    bad = mark.debug(convnet(), {"x": x}, options, EmulatedCuda(wrong="conv3"), "conv")
    first = bad.first_failure
    assert first is not None and first.layer.startswith("conv3"), bad.verdict()
    assert all(r.ok for r in bad.rows[:2])
    # the engine's weight is wrong, the built graph's is not: the engine's own arithmetic is to blame
    assert not first.introduced.ok and first.introduced.rms > 0.1 and first.as_built.ok, first
    assert all(r.ok and r.introduced.ok for r in bad.rows[bad.rows.index(first) + 1:] if not r.total_ok)


def test_plain_compare_writes_json_too(tmp_path, capsys) -> None:  # noqa: ANN001
    path = _save(tmp_path, mlp(), "mlp.onnx")
    out = tmp_path / "c.json"
    assert main(["compare", path, "--shapes", "x:3x8", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["verdict"] == "PASS" and [o["name"] for o in doc["outputs"]] == ["y"] and doc["outputs"][0]["ok"]
    capsys.readouterr()


def test_model_output_inside_a_channels_last_region_is_blamed_on_its_layer() -> None:
    """c3 is a model output computed channels-last in FP16: the engine keeps it as c3_fp16 -> cast -> c3_nhwc ->
    transpose -> c3. The row compares the NCHW float32 copy and names the convolution behind the copies."""
    m = convnet()
    g = m.graph
    g.initializer.append(numpy_helper.from_array(
        (np.random.default_rng(5).standard_normal((8, 8, 1, 1)) * 0.3).astype(np.float32), "w4"))
    nodes = list(g.node)
    pool = [n.name for n in nodes].index("pool")
    nodes[pool].input[0] = "c4"
    nodes.insert(pool, helper.make_node("Conv", ["c3", "w4"], ["c4"], name="conv4"))  # four convs: stays NHWC
    del g.node[:]
    g.node.extend(nodes)
    g.output.append(helper.make_tensor_value_info("c3", TensorProto.FLOAT, None))
    x = np.random.default_rng(0).standard_normal((2, 4, 8, 8)).astype(np.float32)
    for backend in (mark.ReferenceBackend(), EmulatedCuda(wrong="conv3")):
        report = mark.debug(m, {"x": x}, Options(fp16_enable=True), backend)
        rows = {r.value: r for r in report.rows}
        assert rows["c4"].layout == "NHWC" and rows["c3"].layout == ""
        assert (rows["c3"].layer, rows["c3"].op) == ("conv3", "ep_trtpy::FusedConv")
    assert report.first_failure is rows["c3"], report.verdict()


def test_command_line_mistakes_are_one_line(tmp_path, capsys) -> None:  # noqa: ANN001
    path = _save(tmp_path, mlp(), "mlp.onnx")
    assert main(["compare", path, "--backend", "reference", "--shapes", "x:3x8"]) == 2
    err = capsys.readouterr().err
    assert "--backend applies to --mark-all only" in err and len(err.strip().splitlines()) == 1
    assert main(["compare", path, "--mark-all", "--json", str(tmp_path / "no" / "x.json")]) == 2
    assert "folder" in capsys.readouterr().err
    import ep_trtpy

    if not ep_trtpy.has_gpu():
        assert main(["compare", path, "--mark-all", "--backend", "cuda", "--shapes", "x:3x8"]) == 1
        err = capsys.readouterr().err
        assert "needs a usable CUDA device" in err and "Traceback" not in err


@pytest.mark.parametrize("flag", ["--fp16", "--bf16"])
def test_hf_bert_export_with_padding_passes(tmp_path, capsys, flag) -> None:  # noqa: ANN001
    """A HuggingFace export whose mask adds float32's lowest (-3.4e38) to padded keys: 16-bit engines saturate it
    by design, and the debugger does not call that a failure."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures", "hf_bert",
                        "bert_tiny_eager_ts17.onnx")
    rng = np.random.default_rng(0)
    mask = np.ones((2, 16), np.int64)
    mask[:, 11:] = 0
    feeds = tmp_path / "feeds.npz"
    np.savez(feeds, input_ids=rng.integers(0, 100, (2, 16)).astype(np.int64), attention_mask=mask,
             token_type_ids=np.zeros((2, 16), np.int64))
    rc, doc, _ = _mark_all(tmp_path, path, flag, "--feeds", str(feeds), capsys=capsys)
    assert rc == 0, doc["verdict"]
    rows = {r["value"]: r for r in doc["rows"]}
    assert rows["/inner/Where_1_output_0"]["ok"] and rows["/inner/Where_1_output_0"]["max_abs"] == 0  # the mask
    assert sum(r["op"] == "ep_trtpy::Attention" for r in doc["rows"]) == 2  # one per encoder layer
