"""The calibration table: JSON round trip, validation, TensorRT caches, file resolution, staleness."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import onnx
import pytest

import qmodels
from ep_trtpy.quantize import table as t


def _table() -> t.CalibrationTable:
    return t.CalibrationTable(tensors={"x": {"amax": 2.5, "min": -2.5, "max": 1.0}, "r1": {"amax": 0.75}},
                              method="entropy", params={"bins": 2048}, model_name="m.onnx", model_sha256="ab" * 32,
                              weights={"w1": "cd" * 32},
                              layers={"conv1": t.Layer("Conv", ["x"], "w1", "int8", 1e-4),
                                      "fc": t.Layer("Gemm", ["r1"], "wf", "float", 3e-2)},
                              guard={"target": "cosine:0.999", "achieved": 0.9995, "all_quantized": 0.99,
                                     "held_back": 1, "fallback": [{"layer": "fc", "error": 3e-2}]},
                              batches=4, producer="0.1.0")


def test_json_round_trip(tmp_path):
    path = str(tmp_path / "t.json")
    _table().save(path)
    doc = json.loads(open(path).read())
    assert doc["format"] == t.FORMAT and doc["version"] == t.VERSION and doc["created"].endswith("Z")
    back = t.load(path)
    assert back.to_dict() == doc
    assert back.amax("x") == 2.5 and back.amax("nope") is None and back.fallback() == {"fc"}
    assert back.layer_for("conv1", None).weight == "w1" and back.layer_for("renamed", "w1") is back.layers["conv1"]
    assert len(back.digest) == 64


def test_load_is_cached_by_file_identity(tmp_path):
    path = str(tmp_path / "t.json")
    _table().save(path)
    first = t.load(path)
    assert t.load(path) is first
    changed = _table()
    changed.tensors["x"]["amax"] = 9.0
    changed.save(path)
    os.utime(path, ns=(1, 1))  # a different mtime whatever the clock's resolution
    assert t.load(path).amax("x") == 9.0


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("format"), "is not an ep_trtpy calibration table"),
    (lambda d: d.update(version=99), "has version 99, newer than this ep_trtpy reads"),
    (lambda d: d.update(precision="int4"), "has precision 'int4'"),
    (lambda d: d["tensors"]["x"].update(amax=-1.0), "tensor 'x' has amax -1.0"),
    (lambda d: d["tensors"]["x"].update(amax=float("nan")), "tensor 'x' has amax nan"),
    (lambda d: d["layers"]["fc"].update(precision="int3"), "layer 'fc' needs a precision among int8, fp8, float"),
])
def test_bad_tables_are_one_sentence_naming_the_file_and_field(tmp_path, mutate, message):
    doc = _table().to_dict()
    mutate(doc)
    path = str(tmp_path / "bad.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    with pytest.raises(t.TableError, match=message) as e:
        t.load(path)
    assert path in str(e.value) and "\n" not in str(e.value)


def test_a_tensorrt_cache_given_as_json_says_which_option_reads_it(tmp_path):
    path = str(tmp_path / "calib.cache")
    with open(path, "w") as f:
        f.write("TRT-8601-EntropyCalibration2\nx: 3c010a14\n")
    with pytest.raises(t.TableError, match="set int8_use_native_calibration_table=1"):
        t.load(path)
    assert t.load(path, native=True).amax("x") == pytest.approx(struct.unpack(">f", bytes.fromhex("3c010a14"))[0] * 127)


def test_tensorrt_cache_reading_and_writing():
    scale = np.float32(0.0123)
    text = f"TRT-8601-EntropyCalibration2\ninput.1: {struct.pack('>f', scale).hex()}\nconv:out:0: 3d000000\n"
    table = t.read_tensorrt_cache(text, "c.cache")
    assert table.amax("input.1") == pytest.approx(float(scale) * 127, rel=1e-7)
    assert table.amax("conv:out:0") == pytest.approx(0.03125 * 127)  # a name holding ':' splits at the last one
    assert table.source == "tensorrt" and table.method == "EntropyCalibration2" and table.model_sha256 is None
    again = t.read_tensorrt_cache(_table().to_tensorrt_cache())
    assert again.amax("x") == pytest.approx(2.5, rel=1e-6) and again.amax("r1") == pytest.approx(0.75, rel=1e-6)
    with pytest.raises(t.TableError, match="does not start with a 'TRT-<version>-<calibrator>' line"):
        t.read_tensorrt_cache("x: 3c010a14\n")
    with pytest.raises(t.TableError, match="line 2 is not '<tensor>: <8 hex digits>'"):
        t.read_tensorrt_cache("TRT-8601-MinMaxCalibration\nx 3c01\n")


def test_resolve_looks_in_the_engine_cache_folder_too(tmp_path, monkeypatch):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "calib.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert t.resolve("calib.json", str(tmp_path / "cache")) == str(tmp_path / "cache" / "calib.json")
    with pytest.raises(t.TableError, match="calibration table 'nope.json' does not exist \\(looked for .*nope.json "
                                           "and .*cache/nope.json\\)"):
        t.resolve("nope.json", str(tmp_path / "cache"))


def test_staleness_names_the_model_or_weight_that_changed(tmp_path):
    model = qmodels.conv_net()
    path = qmodels.save(model, tmp_path, "m.onnx")
    w1 = onnx.numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "w1"))
    table = _table()
    table.model_sha256 = t.model_sha256(model)
    table.weights = {"w1": t.weight_sha256(w1)}
    table.path = "t.json"
    t.check_fresh(table, path, {"w1": w1})  # fresh: no error
    assert t.model_file_sha256(path) == t.model_sha256(onnx.load(path))
    with pytest.raises(t.StaleTableError, match="weight 'w1' differs from the one it was calibrated with"):
        t.check_fresh(table, "", {"w1": w1 + 1e-3})
    changed = qmodels.conv_net(seed=5)
    other = qmodels.save(changed, tmp_path, "m2.onnx")
    with pytest.raises(t.StaleTableError, match=f"made for a model with hash {table.model_sha256[:16]} .* but "
                                                f"'{other}' has hash {t.model_sha256(changed)[:16]}"):
        t.check_fresh(table, other, {})
    trt = t.read_tensorrt_cache("TRT-8601-EntropyCalibration2\nx: 3c010a14\n")
    t.check_fresh(trt, other, {"w1": w1 + 1})  # a TensorRT cache has nothing to check
