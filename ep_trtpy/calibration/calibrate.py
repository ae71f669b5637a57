"""``calibrate(model, data_reader, method=..., table=...)``: the calibration table of a float model.

    import ep_trtpy
    table = ep_trtpy.calibrate("model.onnx", reader, method="entropy", table="model.calib.json")
    sess = ort.InferenceSession("model.onnx", providers=[("TrtPyExecutionProvider", {
        "int8_enable": "1", "int8_calibration_table_name": "model.calib.json"}), "CPUExecutionProvider"])

Steps: read every batch of the reader (held-back batches, when an accuracy target asks for them, are the last
ones and are not used for the ranges); run the FP32 model on ORT's CPU provider once for the ranges (min, max) of
the calibrated tensors and, for entropy and percentile, once more for their histograms over [0, amax]; the amax of
each tensor by the method (ep_trtpy/quantize/methods.py); then, with an accuracy target (or a report), the
accuracy guard (guard.py). Weights are not in the table: their per-channel scales are computed when the engine is
built; the table records each weight's hash, so that a changed model is caught.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from ep_trtpy.calibration import collect
from ep_trtpy.calibration.collect import CalibrationError
from ep_trtpy.options import parse_accuracy_target
from ep_trtpy.quantize import methods
from ep_trtpy.quantize.table import CalibrationTable, Layer, model_sha256, weight_sha256

Progress = Callable[[int, int, str], None]
"""progress(done, total, text): called as the work goes (calibration batches, then guard evaluations)."""


def _load(model: Any) -> tuple[Any, str]:
    import onnx

    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise CalibrationError(f"model file '{path}' does not exist")
        return onnx.load(path), os.path.abspath(path)
    if not hasattr(model, "graph"):
        raise CalibrationError(f"model is {type(model).__name__}; give an ONNX file path or an onnx.ModelProto")
    return model, ""


def _split(n: int, target: str | None, held_back: int | None) -> int:
    """How many of the n batches are held back for the accuracy guard."""
    if target is None:
        if held_back:
            raise CalibrationError("held_back batches are only used with an accuracy target")
        return 0
    if n < 2:
        raise CalibrationError(f"an accuracy target needs at least 2 calibration batches (some are held back to "
                               f"check it); the data reader gave {n}")
    k = max(1, n // 5) if held_back is None else int(held_back)
    if not 1 <= k < n:
        raise CalibrationError(f"held_back={held_back} must leave at least one of the {n} batches for calibration "
                               f"and hold back at least one")
    return k


def _weights(model: Any, layers: list[collect.LayerInfo]) -> dict[str, str]:
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    return {layer.weight: weight_sha256(numpy_helper.to_array(inits[layer.weight]))
            for layer in layers if layer.weight is not None and layer.weight in inits}


def calibrate(model: Any, data_reader: Any, method: str = "entropy", table: str | None = None, *,
              percentile: float = methods.DEFAULT_PERCENTILE, precision: str = "int8",
              accuracy_target: str | None = None, held_back: int | None = None, report: str | None = None,
              sensitivity_batches: int = 4, progress: Progress | None = None) -> CalibrationTable:
    """Calibrate `model` (a path or an onnx.ModelProto) on the batches of `data_reader` and return the table,
    also written to `table` (a path) when given. `method`: entropy, percentile (at `percentile`) or minmax;
    `precision`: int8 or fp8; `accuracy_target` (cosine:T or top1:T) runs the accuracy guard on `held_back` batches
    (default a fifth); `report`: an HTML file with the per-layer sensitivity and the final precision map."""
    t0 = time.perf_counter()
    methods.check_method(method, percentile)
    if precision not in ("int8", "fp8"):
        raise CalibrationError(f"precision {precision!r} is not int8 or fp8")
    if accuracy_target is not None:
        try:
            parsed = parse_accuracy_target(accuracy_target)
        except ValueError as e:
            raise CalibrationError(f"accuracy target {accuracy_target!r}: {e}") from None
        accuracy_target = None if parsed is None else f"{parsed[0]}:{parsed[1]:g}"
    proto, path = _load(model)
    feeds = collect.batches(data_reader, proto)
    n_held = _split(len(feeds), accuracy_target, held_back)
    calib, held = feeds[:len(feeds) - n_held], feeds[len(feeds) - n_held:]
    layers = collect.quantizable_layers(proto)
    if not layers:
        raise CalibrationError("the model has no Conv, MatMul or Gemm layer to quantize")
    runner = collect.ActivationRunner(proto, collect.calibrated_tensors(layers))
    passes = 2 if methods.needs_histograms(method) else 1
    total = passes * len(calib) + len(held)
    tick = progress or (lambda done, tot, text: None)

    ranges = methods.RangeCollector()
    calib_ref = []
    for k, batch in enumerate(calib):
        tick(k, total, f"ranges: batch {k + 1}/{len(calib)}")
        outs, values = runner.run(batch)
        calib_ref.append(outs)
        for name, value in values.items():
            ranges.add(name, value)
    hists = None
    if passes == 2:
        hists = methods.HistogramCollector({n: ranges.amax(n) for n in ranges.hi})
        for k, batch in enumerate(calib):
            tick(len(calib) + k, total, f"histograms: batch {k + 1}/{len(calib)}")
            for name, value in runner.run(batch)[1].items():
                hists.add(name, value)
    held_ref = []
    for k, batch in enumerate(held):
        tick(passes * len(calib) + k, total, f"held back: batch {k + 1}/{len(held)}")
        held_ref.append(runner.run(batch)[0])
    tick(total, total, "ranges done")

    from ep_trtpy._version import __version__

    out = CalibrationTable(method=method, precision=precision, producer=str(__version__), batches=len(calib),
                           params={"bins": methods.NUM_BINS, "percentile": percentile if method == "percentile"
                                   else None, "held_back": len(held)},
                           model_name=os.path.basename(path) if path else getattr(proto.graph, "name", ""),
                           model_sha256=model_sha256(proto), weights=_weights(proto, layers))
    for name in ranges.hi:
        out.tensors[name] = {"amax": methods.amax_of(method, ranges, hists, name, percentile),
                             "min": ranges.lo[name], "max": ranges.hi[name]}
    for layer in layers:
        out.layers[layer.name] = Layer(layer.op, list(layer.inputs), layer.weight, precision)
    if accuracy_target is not None or report is not None:
        _guard(proto, path, out, layers, accuracy_target, calib[:max(1, sensitivity_batches)],
               calib_ref[:max(1, sensitivity_batches)], held, held_ref, progress)
    out.params["seconds"] = round(time.perf_counter() - t0, 3)
    if table is not None:
        out.save(table)
    if report is not None:
        from ep_trtpy.calibration.report import write_report

        write_report(out, report)
    return out


def _guard(proto: Any, path: str, table: CalibrationTable, layers: list[collect.LayerInfo], target: str | None,
           calib: list, calib_ref: list, held: list, held_ref: list, progress: Progress | None) -> None:
    from ep_trtpy.calibration import guard as g

    quantized = [layer.name for layer in layers if all(table.amax(t) is not None for t in layer.inputs)]
    ev = g.Evaluator(proto, path, table, table.precision)
    steps = [0]

    def say(text: str) -> None:  # sensitivities, then the fallbacks (as many as it takes)
        steps[0] += 1
        if progress is not None:
            progress(steps[0], max(steps[0], len(quantized) + 1), text)

    try:
        if target is None:
            g.apply(table, None, g.sensitivities(ev, quantized, "cosine", calib, calib_ref, say))
        else:
            g.apply(table, g.guard(ev, quantized, target, calib, calib_ref, held, held_ref, say))
    finally:
        ev.close()
