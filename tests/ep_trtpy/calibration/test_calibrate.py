"""ep_trtpy.calibrate: data readers, the ranges each method gives (against numpy on activations computed here),
the table it writes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import qmodels
from ep_trtpy.calibration import CalibrationError, NpzFolderReader, calibrate
from ep_trtpy.calibration.collect import quantizable_layers
from ep_trtpy.quantize import methods
from ep_trtpy.quantize.table import load, model_sha256


def _mlp_activations(model: onnx.ModelProto, batches: list[dict]) -> dict[str, np.ndarray]:
    """x and r1 = relu(x @ w1 + b1) of the MLP, in numpy (float64)."""
    w = {t.name: onnx.numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    x = np.concatenate([b["x"] for b in batches]).astype(np.float64)
    m1 = x @ w["w1"]
    r1 = np.maximum(m1 + w["b1"], 0)
    return {"x": x, "m1": m1, "r1": r1, "m2": r1 @ w["w2"]}


class _Reader:
    def __init__(self, items):
        self.items = iter(items)

    def get_next(self):
        return next(self.items, None)


def test_minmax_ranges_are_the_activations_largest_magnitudes(tmp_path):
    model = qmodels.mlp()
    data = qmodels.batches(model, 3, batch=4)
    table = calibrate(model, _Reader(data), "minmax", str(tmp_path / "t.json"))
    acts = _mlp_activations(model, data)
    assert set(table.tensors) == {"x", "r1", "m1", "m2"}
    for name, a in acts.items():
        assert table.amax(name) == pytest.approx(np.abs(a).max(), rel=1e-5), name
        assert table.tensors[name]["min"] == pytest.approx(a.min(), rel=1e-5, abs=1e-6)
    assert [layer.name for layer in quantizable_layers(model)] == ["fc1", "fc2"]
    assert table.layers["fc2"].inputs == ["r1"] and table.layers["fc2"].weight == "w2"
    assert table.model_sha256 == model_sha256(model) and set(table.weights) == {"w1", "w2"}
    assert load(str(tmp_path / "t.json")).to_dict() == table.to_dict()


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_methods_match_their_definition_on_the_activations(method):
    model = qmodels.mlp()
    data = qmodels.batches(model, 4, batch=8, seed=3)
    table = calibrate(model, data, method, percentile=99.0)
    for name, a in _mlp_activations(model, data).items():
        h = methods.Histogram(float(np.abs(a).max()))
        h.add(a)
        want = methods.entropy_amax(h) if method == "entropy" else methods.percentile_amax(h, 99.0)
        assert table.amax(name) == pytest.approx(want, rel=1e-4, abs=h.width * 1.01), name
        assert table.amax(name) <= np.abs(a).max() * (1 + 1e-6)


def test_npz_folder_reader(tmp_path):
    model = qmodels.mlp()
    data = qmodels.batches(model, 3)
    for k, feeds in enumerate(data):
        np.savez(tmp_path / f"b{k}.npz", **feeds)
    reader = NpzFolderReader(str(tmp_path))
    got = [reader.get_next() for _ in range(4)]
    assert got[3] is None and all(np.array_equal(g["x"], d["x"]) for g, d in zip(got, data))
    with pytest.raises(CalibrationError, match="calibration data folder '.*missing' does not exist"):
        NpzFolderReader(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match="'.*empty' holds no .npz files"):
        NpzFolderReader(str(tmp_path / "empty"))


@pytest.mark.parametrize("reader, message", [
    ([], "the data reader gave no calibration batches"),
    ([{"y": np.zeros((1, 16), np.float32)}], "calibration batch 0 lacks input 'x' \\(it holds 'y'\\)"),
    ([np.zeros(3)], "calibration batch 0 is ndarray, not a dict"),
    ({"x": np.zeros((1, 16), np.float32)}, "is one dict of feeds"),
    (42, "has no get_next\\(\\) and is not iterable"),
])
def test_reader_mistakes_are_one_sentence(reader, message):
    with pytest.raises(CalibrationError, match=message):
        calibrate(qmodels.mlp(), reader, "minmax")


def test_argument_mistakes():
    model, data = qmodels.mlp(), qmodels.batches(qmodels.mlp(), 2)
    with pytest.raises(ValueError, match="unknown calibration method 'kl'"):
        calibrate(model, data, "kl")
    with pytest.raises(CalibrationError, match="needs at least 2 calibration batches"):
        calibrate(model, data[:1], "minmax", accuracy_target="cosine:0.99")
    with pytest.raises(CalibrationError, match="held_back=2 must leave at least one of the 2 batches"):
        calibrate(model, data, "minmax", accuracy_target="cosine:0.99", held_back=2)
    with pytest.raises(CalibrationError, match="accuracy target 'psnr:30'"):
        calibrate(model, data, "minmax", accuracy_target="psnr:30")
    with pytest.raises(CalibrationError, match="model file 'nope.onnx' does not exist"):
        calibrate("nope.onnx", data)


def test_the_package_face_calibrates():
    import ep_trtpy

    model = qmodels.mlp()
    table = ep_trtpy.calibrate(model, qmodels.batches(model, 2), method="minmax")
    assert table.method == "minmax" and set(table.layers) == {"fc1", "fc2"}
