"""``ep-trtpy calibrate MODEL --data DIR_OF_NPZ -o TABLE``: the INT8 (or FP8) calibration table of a float model.

``--data`` is a folder of ``.npz`` files, one batch each (arrays named as the model's inputs), read in name order.
The table (ep_trtpy's JSON, see ep_trtpy/quantize/table.py) is what ``int8_calibration_table_name`` takes;
``--tensorrt-cache FILE`` also writes it as a TensorRT calibration cache. ``--accuracy-target cosine:0.999`` (or
``top1:0.99``) runs the accuracy guard (ep_trtpy/calibration/guard.py) on the last ``--held-back`` batches and
keeps its most sensitive layers in float; ``--report FILE.html`` writes the per-layer sensitivity and the final
precision map. Progress goes to stderr (a bar on a terminal), the summary to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from ep_trtpy.cli import _errors

NAME = "calibrate"
HELP = ("Calibrate a float ONNX model for INT8 (or FP8) on batches of inputs (a folder of .npz files) and write the "
        "calibration table that int8_calibration_table_name reads.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ep_trtpy.quantize import methods

    p.add_argument("model", help="the float ONNX model")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="folder of .npz files, one calibration batch each (arrays named as the model's inputs)")
    p.add_argument("--method", choices=methods.METHODS, default="entropy",
                   help="entropy (TensorRT's KL divergence, default), percentile or minmax")
    p.add_argument("--percentile", type=float, default=methods.DEFAULT_PERCENTILE,
                   help=f"with --method percentile: the percentile of |x| kept (default {methods.DEFAULT_PERCENTILE})")
    p.add_argument("-o", "--output", required=True, metavar="TABLE", help="the calibration table to write (JSON)")
    p.add_argument("--precision", choices=("int8", "fp8"), default="int8", help="what the engine quantizes to")
    p.add_argument("--accuracy-target", metavar="METRIC:VALUE",
                   help="run the accuracy guard: cosine:0.999 (outputs' cosine) or top1:0.99 (argmax agreement)")
    p.add_argument("--held-back", type=int, metavar="N",
                   help="with --accuracy-target: batches held back to check it (default: a fifth, at least 1)")
    p.add_argument("--sensitivity-batches", type=int, default=4, metavar="N",
                   help="calibration batches each layer's sensitivity is measured on (default 4)")
    p.add_argument("--report", metavar="FILE.html", help="write the per-layer sensitivity and precision map")
    p.add_argument("--tensorrt-cache", metavar="FILE", help="also write the table as a TensorRT calibration cache")


class _Bar:
    """``calibrating [#####-----] 3/8 ranges: batch 3/4`` redrawn on a terminal; nothing otherwise."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.drawn = False

    def __call__(self, done: int, total: int, text: str) -> None:
        if not self.live:
            return
        width = 24
        filled = width * min(done, total) // max(total, 1)
        self.stream.write(f"\rcalibrating [{'#' * filled}{'-' * (width - filled)}] {done}/{total} {text}\x1b[K")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def _check(args: argparse.Namespace) -> None:
    from ep_trtpy.options import parse_accuracy_target

    _errors.input_file(args.model)
    _errors.output_file(args.output, "-o")
    for flag, path in (("--report", args.report), ("--tensorrt-cache", args.tensorrt_cache)):
        if path:
            _errors.output_file(path, flag)
    if not 0 < args.percentile <= 100:
        raise _errors.UsageError(f"--percentile {args.percentile:g} is outside (0, 100]")
    if args.accuracy_target is not None:
        try:
            parse_accuracy_target(args.accuracy_target)
        except ValueError as e:
            raise _errors.UsageError(f"--accuracy-target {args.accuracy_target!r}: {e}") from None
    elif args.held_back is not None:
        raise _errors.UsageError("--held-back needs --accuracy-target (held-back batches check the target)")
    if args.sensitivity_batches < 1:
        raise _errors.UsageError(f"--sensitivity-batches {args.sensitivity_batches} must be at least 1")


def run(args: argparse.Namespace) -> int:
    from ep_trtpy.calibration import CalibrationError, NpzFolderReader, calibrate

    _check(args)
    model = _errors.read_onnx(args.model)
    t0 = time.perf_counter()
    bar = _Bar()
    try:
        reader = NpzFolderReader(args.data)
        table = calibrate(model, reader, args.method, None, percentile=args.percentile, precision=args.precision,
                          accuracy_target=args.accuracy_target, held_back=args.held_back, report=None,
                          sensitivity_batches=args.sensitivity_batches, progress=bar)
    except CalibrationError as e:
        raise _errors.UsageError(str(e)) from None
    finally:
        bar.close()
    table.model_name = os.path.basename(args.model)
    table.save(args.output)
    if args.report:
        from ep_trtpy.calibration.report import write_report

        write_report(table, args.report)
    if args.tensorrt_cache:
        with open(args.tensorrt_cache, "w") as f:
            f.write(table.to_tensorrt_cache())
    quantized = [k for k, v in table.layers.items() if v.precision != "float"]
    print(f"calibrated {len(table.tensors)} tensors of {len(table.layers)} layers on {table.batches} batches "
          f"({args.method}, {args.precision}) in {time.perf_counter() - t0:.1f} s -> {args.output}")
    if table.guard:
        g = table.guard
        fell = ", ".join(f"{f['layer']} ({f['error']:.2e})" for f in g["fallback"]) or "none"
        print(f"accuracy guard {g['target']} on {g['held_back']} held-back batches: {g['all_quantized']:.6f} with "
              f"every layer quantized, {g['achieved']:.6f} with {len(quantized)} of {len(table.layers)} quantized; "
              f"kept in float: {fell}")
    for flag, path in (("report", args.report), ("TensorRT cache", args.tensorrt_cache)):
        if path:
            print(f"{flag}: {path}")
    return 0
