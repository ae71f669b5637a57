"""The accuracy guard: which layers to keep in float so that the quantized model keeps an accuracy target.

Targets (the option ``int8_accuracy_target``, ``calibrate(accuracy_target=...)``), measured against the FP32 model's
outputs on ORT's CPU provider:

* ``cosine:T``: the cosine similarity of every output of every batch (flattened) is at least T (the minimum over
  outputs and batches counts);
* ``top1:T``: the argmax over the last axis of the first output agrees with FP32's on at least a fraction T of its
  rows (all batches together).

Steps, on the reference backend (exact integer and FP8 emulation, the numbers the GPU computes):

1. sensitivity: for each quantized layer, the error (1 - score) of the model with only that layer quantized, on
   the calibration batches (at most ``sensitivity_batches`` of them);
2. the score of the model with every layer quantized, on the held-back batches (never used for the ranges);
3. while that score misses the target, the most sensitive layer still quantized falls back to float, and the
   held-back batches are scored again.

The result is written into the table: each layer's ``sensitivity`` and ``precision`` ("float" for a fallback), and
``guard`` (target, achieved score, score with every layer quantized, the fallback list with each layer's error).
A target that float itself misses (the reference backend's FP32 differs more than asked) is an error.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ep_trtpy.calibration.collect import CalibrationError
from ep_trtpy.options import parse, parse_accuracy_target
from ep_trtpy.quantize.table import CalibrationTable, Layer, QuantizationError

Feeds = dict[str, np.ndarray]
Outputs = list[np.ndarray]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    x, y = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
    if nx == 0.0 or ny == 0.0:
        return 1.0 if nx == ny else 0.0
    return float(np.dot(x, y) / (nx * ny))


def score(metric: str, reference: list[Outputs], got: list[Outputs]) -> float:
    """The target's measure of `got` against `reference` (lists of per-batch outputs); higher is better."""
    if metric == "cosine":
        return min(cosine(r, g) for ref_b, got_b in zip(reference, got) for r, g in zip(ref_b, got_b))
    if metric == "top1":
        agree = total = 0
        for ref_b, got_b in zip(reference, got):
            r, g = np.asarray(ref_b[0]), np.asarray(got_b[0])
            if r.ndim == 0:
                raise CalibrationError("top1 needs an output with a class axis; the first output is a scalar")
            agree += int(np.sum(np.argmax(r, axis=-1) == np.argmax(g, axis=-1)))
            total += int(np.prod(r.shape[:-1], dtype=np.int64))
        return agree / max(total, 1)
    raise CalibrationError(f"unknown accuracy metric {metric!r}")


@dataclass
class Fallback:
    layer: str
    error: float


@dataclass
class GuardResult:
    target: str
    achieved: float
    all_quantized: float
    held_back: int
    sensitivity: dict[str, float]
    fallback: list[Fallback] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "achieved": self.achieved, "all_quantized": self.all_quantized,
                "held_back": self.held_back, "fallback": [{"layer": f.layer, "error": f.error} for f in self.fallback]}


class Evaluator:
    """Runs the model quantized with the table, some layers kept in float, on the reference backend."""

    def __init__(self, model: Any, model_path: str, table: CalibrationTable, precision: str) -> None:
        from graph_partitioner.onnx_io import graph_from_onnx

        self.graph = graph_from_onnx(model)
        self.graph.model_path = model_path
        self.table = table
        self.flag = "fp8_enable" if precision == "fp8" else "int8_enable"
        self.folder = tempfile.mkdtemp(prefix="ep_trtpy_guard_")
        self._graphs: dict[Any, Any] = {}
        self._files: dict[frozenset[str], str] = {}

    def _table_file(self, floats: frozenset[str]) -> str:
        if floats not in self._files:
            layers = {k: Layer(v.op, list(v.inputs), v.weight, "float" if k in floats else self.table.precision,
                               v.sensitivity) for k, v in self.table.layers.items()}
            t = dataclasses.replace(self.table, layers=layers, guard=None)
            path = os.path.join(self.folder, f"table_{len(self._files)}.json")
            t.save(path)
            self._files[floats] = path
        return self._files[floats]

    def run(self, floats: frozenset[str], batches: list[Feeds]) -> list[Outputs]:
        from ep_trtpy.builder.build import optimize
        from ep_trtpy.ops.executor import run_graph

        options = parse({self.flag: "1", "int8_calibration_table_name": self._table_file(floats)})
        out = []
        for feeds in batches:
            shapes = {k: tuple(v.shape) for k, v in feeds.items()}
            key = (floats, tuple(sorted(shapes.items())))
            try:
                g = self._graphs.get(key)
                if g is None:
                    g = self._graphs[key] = optimize(self.graph, shapes, options)
                out.append([np.asarray(a) for a in run_graph(g, feeds)])
            except QuantizationError:
                raise
            except (ValueError, TypeError) as e:  # an op without a numpy reference, a shape the builder refuses
                raise CalibrationError(f"the accuracy guard runs the whole model on the reference backend, which "
                                       f"cannot run it: {e}") from None
        return out

    def close(self) -> None:
        for path in self._files.values():
            if os.path.exists(path):
                os.unlink(path)
        if os.path.isdir(self.folder):
            os.rmdir(self.folder)


def sensitivities(ev: Evaluator, layers: list[str], metric: str, batches: list[Feeds], reference: list[Outputs],
                  progress: Callable[[str], None] | None = None) -> dict[str, float]:
    """layer -> the error (1 - score) of the model with only that layer quantized."""
    out: dict[str, float] = {}
    everyone = frozenset(layers)
    for k, name in enumerate(layers):
        if progress is not None:
            progress(f"sensitivity {k + 1}/{len(layers)}: {name}")
        out[name] = 1.0 - score(metric, reference, ev.run(everyone - {name}, batches))
    return out


def guard(ev: Evaluator, layers: list[str], target: str, calib: list[Feeds], calib_ref: list[Outputs],
          held: list[Feeds], held_ref: list[Outputs], progress: Callable[[str], None] | None = None
          ) -> GuardResult:
    """The fallback list that makes the held-back batches meet `target` (module docstring)."""
    parsed = parse_accuracy_target(target)
    if parsed is None:
        raise CalibrationError("no accuracy target given")
    metric, threshold = parsed
    sens = sensitivities(ev, layers, metric, calib, calib_ref, progress)
    floats: frozenset[str] = frozenset()
    s = first = score(metric, held_ref, ev.run(floats, held))
    result = GuardResult(f"{metric}:{threshold:g}", s, first, len(held), sens)
    for name in sorted(layers, key=lambda n: (-sens[n], layers.index(n))):
        if s >= threshold:
            break
        floats = floats | {name}
        result.fallback.append(Fallback(name, sens[name]))
        if progress is not None:
            progress(f"fallback {len(floats)}: {name} ({metric} {s:.6f} < {threshold:g})")
        s = score(metric, held_ref, ev.run(floats, held))
    if s < threshold:
        raise CalibrationError(f"accuracy target {metric}:{threshold:g} is out of reach: with every layer in float "
                               f"the reference backend scores {s:.6f} against ORT's FP32 on the held-back batches")
    result.achieved = s
    return result


def apply(table: CalibrationTable, result: GuardResult | None, sens: dict[str, float] | None = None) -> None:
    """Write the guard's result (or sensitivities alone) into the table."""
    sens = result.sensitivity if result is not None else (sens or {})
    kept = {f.layer for f in result.fallback} if result is not None else set()
    for name, layer in table.layers.items():
        if name in sens:
            layer.sensitivity = float(sens[name])
        if name in kept:
            layer.precision = "float"
    table.guard = result.to_dict() if result is not None else None
