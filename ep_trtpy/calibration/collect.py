"""What calibration reads: the batches of a data reader, the quantizable layers of a float model, and the
activations those layers see, computed by ONNX Runtime's CPU provider on the FP32 model.

A data reader follows ``onnxruntime.quantization.CalibrationDataReader``: ``get_next()`` returns one batch of feeds
(input name -> array) and ``None`` at the end. An iterable of such dicts works too; :class:`NpzFolderReader` reads
one ``.npz`` file per batch from a folder (the command line's ``--data``).

The layers quantized are Conv, MatMul and Gemm of the main graph; the tensors calibrated are their data inputs
(and a MatMul's second operand when it is not a constant) and their outputs. To see them, the model gets them as
extra outputs and runs with every graph optimization off, so each keeps its name and FP32 value.
"""

from __future__ import annotations

import copy
import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

QUANTIZABLE = ("Conv", "MatMul", "Gemm")


class CalibrationError(ValueError):
    """Calibration cannot run as asked (the message names the batch, input, file or value)."""


@dataclass
class LayerInfo:
    """A quantizable layer of the model: its node name, op, the activations it reads, its weight initializer."""

    name: str
    op: str
    inputs: list[str]
    weight: str | None
    output: str


def model_inputs(model: Any) -> list[str]:
    inits = {t.name for t in model.graph.initializer}
    return [vi.name for vi in model.graph.input if vi.name not in inits]


def quantizable_layers(model: Any) -> list[LayerInfo]:
    """Conv, MatMul and Gemm nodes with a constant weight (or, for MatMul, two activations), in graph order."""
    inits = {t.name for t in model.graph.initializer}
    consts = inits | {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    layers: list[LayerInfo] = []
    for k, node in enumerate(model.graph.node):
        if node.domain not in ("", "ai.onnx") or node.op_type not in QUANTIZABLE or len(node.input) < 2:
            continue
        x, w = node.input[0], node.input[1]
        if x in consts:
            continue
        if w in consts:
            weight, inputs = (w if w in inits else None), [x]
        elif node.op_type == "MatMul":
            weight, inputs = None, [x, w]
        else:
            continue
        layers.append(LayerInfo(node.name or f"{node.op_type}_{k}", node.op_type, inputs, weight, node.output[0]))
    return layers


def calibrated_tensors(layers: list[LayerInfo]) -> list[str]:
    out: list[str] = []
    for layer in layers:
        out += [t for t in layer.inputs + [layer.output] if t not in out]
    return out


def batches(reader: Any, model: Any) -> list[dict[str, np.ndarray]]:
    """Every batch of `reader` (module docstring), checked against the model's inputs."""
    names = model_inputs(model)
    if hasattr(reader, "get_next"):
        items: Iterator[Any] = iter(reader.get_next, None)
    elif isinstance(reader, dict):
        raise CalibrationError("the data reader is one dict of feeds; give a list of them, or a reader with "
                               "get_next()")
    else:
        try:
            items = iter(reader)
        except TypeError:
            raise CalibrationError(f"the data reader ({type(reader).__name__}) has no get_next() and is not "
                                   f"iterable") from None
    out = []
    for k, feeds in enumerate(items):
        if not isinstance(feeds, dict):
            raise CalibrationError(f"calibration batch {k} is {type(feeds).__name__}, not a dict of input name -> "
                                   f"array")
        missing = [n for n in names if n not in feeds]
        if missing:
            raise CalibrationError(f"calibration batch {k} lacks input {', '.join(repr(m) for m in missing)} (it "
                                   f"holds {', '.join(map(repr, feeds)) or 'nothing'})")
        out.append({n: np.asarray(feeds[n]) for n in names})
    if not out:
        raise CalibrationError("the data reader gave no calibration batches")
    return out


class NpzFolderReader:
    """A CalibrationDataReader over the ``.npz`` files of a folder (sorted by name), one batch per file."""

    def __init__(self, folder: str) -> None:
        if not os.path.isdir(folder):
            raise CalibrationError(f"calibration data folder '{folder}' does not exist")
        self.files = sorted(glob.glob(os.path.join(folder, "*.npz")))
        if not self.files:
            raise CalibrationError(f"calibration data folder '{folder}' holds no .npz files (one per batch, arrays "
                                   f"named as the model's inputs)")
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self.files):
            return None
        path = self.files[self._next]
        self._next += 1
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except Exception as e:  # noqa: BLE001 - zip and format errors: all about the file
            raise CalibrationError(f"calibration file '{path}' is not an .npz file of arrays "
                                   f"({str(e).split('. ')[0] or type(e).__name__})") from None

    def rewind(self) -> None:
        self._next = 0


class ActivationRunner:
    """Runs the FP32 model on ORT's CPU provider, returning its outputs and the calibrated tensors."""

    def __init__(self, model: Any, tensors: list[str]) -> None:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper

        m = copy.deepcopy(model)
        self.outputs = [o.name for o in m.graph.output]
        existing = set(self.outputs)
        try:
            inferred = onnx.shape_inference.infer_shapes(m)
            types = {vi.name: vi.type.tensor_type.elem_type for vi in inferred.graph.value_info}
        except Exception:  # noqa: BLE001 - shapes are a nicety here; ORT checks the model itself
            types = {}
        self.tensors = []
        for name in tensors:
            if name in existing:
                self.tensors.append(name)
                continue
            if types.get(name, TensorProto.FLOAT) != TensorProto.FLOAT:
                continue  # only float32 activations are calibrated
            m.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
            self.tensors.append(name)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.log_severity_level = 3
        self.session = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        self.names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
        """(the model's own outputs, calibrated tensor name -> value) for one batch."""
        values = dict(zip(self.names, self.session.run(None, feeds)))
        return [values[n] for n in self.outputs], {n: values[n] for n in self.tensors if n in values}
