"""quantize_calibrated: with int8_enable (or fp8_enable) and a calibration table, quantize a float model's
convolutions and matrix products by inserting the Q/DQ pairs a QDQ model would have; fold_qdq (next in the same
stage) turns them into ep_trtpy::QConv / QMatMul.

Math: for a layer L = Conv, Gemm or MatMul whose data input X has amax a in the table, X is replaced by
``DQ(Q(X, s, 0), s, 0)`` with the symmetric scale ``s = a / 127`` (FP8: ``a / 448``), and a constant weight W by
``DQ(Wq, s_w)`` with ``Wq = Q(W, s_w)`` and one symmetric scale per output channel (``max |W[m]| / 127``; Gemm:
along N; MatMul: along its last axis). A runtime second MatMul operand needs its own amax (per-tensor). The bias
stays float32. Because the Q of a tensor is shared by all the layers reading it, a layer whose output (after its
activation) is read only by quantized layers hands them int8 directly once folded: Q/DQ remain only where
precision changes.

Match: the options ``int8_enable`` or ``fp8_enable`` (FP8 wins) and ``int8_calibration_table_name``; layers with
float32 operands and static shapes.

Refusal (the layer stays float; the sentence names it): no amax for its input in the table, a layer the table
keeps in float (the accuracy guard's fallback), a backend without quantized kernels (the cuda backend today:
the engine is built in float and a warning says so once).

Rewrite: QuantizeLinear + DequantizeLinear after each calibrated activation (one pair per tensor), a constant
DequantizeLinear of the int8 (FP8) weight with its per-channel scales; fold_qdq does the rest.

Errors (the build stops; one sentence): int8_enable without a table and without Q/DQ nodes (it says how to
calibrate), a table that cannot be read or is stale (the model changed since calibration), an
int8_accuracy_target the table was not calibrated for, fp8_enable on a GPU below compute capability 8.9.
"""

from __future__ import annotations

import logging

import numpy as np

from ep_trtpy.builder.passes._patterns import add_const, is_op, static
from ep_trtpy.builder.passes.fold_qdq import QUANTIZED_KEYS
from ep_trtpy.builder.pipeline import PassContext
from ep_trtpy.options import Options, parse_accuracy_target
from ep_trtpy.quantize import numerics, table as tables
from ep_trtpy.quantize.table import CalibrationTable, QuantizationError

__all__ = ["QuantizationError", "require_scales", "run"]
from graph_partitioner.ir import FLOAT, FLOAT8E4M3FN, INT8, Graph, Node, Value, np_dtype

NAME = "quantize_calibrated"

log = logging.getLogger("ep_trtpy.builder")
_warned: set[str] = set()

HOW_TO_CALIBRATE = ("make a calibration table with 'ep-trtpy calibrate MODEL.onnx --data DIR_OF_NPZ -o table.json' "
                    "(or ep_trtpy.calibrate(model, data_reader, table='table.json')) and pass "
                    "int8_calibration_table_name=table.json, or give a QDQ model "
                    "(onnxruntime.quantization.quantize_static)")


def _wanted(ctx: PassContext) -> int | None:
    """The precision the options ask for: FLOAT8E4M3FN, INT8 or None."""
    o = ctx.options
    if o.fp8_enable:
        if ctx.backend == "cuda" and ctx.device_cc < (8, 9):
            raise QuantizationError(f"fp8_enable needs a GPU of compute capability 8.9 or newer (Ada, Hopper); this "
                                    f"one is {ctx.device_cc[0]}.{ctx.device_cc[1]}: use int8_enable")
        return FLOAT8E4M3FN
    return INT8 if o.int8_enable else None


def _check_target(ctx: PassContext, table: CalibrationTable, precision: str) -> None:
    wanted = parse_accuracy_target(ctx.options.int8_accuracy_target)
    if wanted is None:
        return
    metric, threshold = wanted
    redo = (f"recalibrate with --accuracy-target {metric}:{threshold:g} (ep-trtpy calibrate MODEL --data DIR "
            f"--accuracy-target {metric}:{threshold:g} -o {table.path})")
    guard = table.guard or {}
    got = parse_accuracy_target(str(guard.get("target", ""))) if guard else None
    if got is None:
        raise QuantizationError(f"int8_accuracy_target {metric}:{threshold:g}: calibration table '{table.path}' was "
                                f"made without an accuracy guard; {redo}")
    if got[0] != metric or got[1] < threshold or table.precision != precision:
        raise QuantizationError(f"int8_accuracy_target {metric}:{threshold:g}: calibration table '{table.path}' "
                                f"guards {got[0]}:{got[1]:g} for {table.precision}, not {metric}:{threshold:g} for "
                                f"{precision}; {redo}")


def load_table(ctx: PassContext, graph: Graph, precision: str) -> CalibrationTable:
    o = ctx.options
    table = tables.load(tables.resolve(o.int8_calibration_table_name, o.engine_cache_path),
                        o.int8_use_native_calibration_table)
    _check_target(ctx, table, precision)
    floats = {v.name: v.const for v in graph.values.values()
              if v.const is not None and v.dtype == FLOAT and v.name in table.weights}
    tables.check_fresh(table, graph.model_path, floats)
    return table


class _Inserter:
    def __init__(self, graph: Graph, table: CalibrationTable, elem: int, ctx: PassContext) -> None:
        self.graph, self.table, self.elem, self.ctx = graph, table, elem, ctx
        self.done: dict[int, Value] = {}

    def _zero(self, shape: tuple[int, ...] = ()) -> np.ndarray:
        return np.zeros(shape, np_dtype(self.elem))

    def activation(self, x: Value, before: Node) -> Value | None:
        """DQ(Q(x)) with x's calibrated scale (shared by every layer reading x); None without an amax."""
        if id(x) in self.done:
            return self.done[id(x)]
        amax = self.table.amax(x.name)
        if amax is None:
            return None
        g = self.graph
        scale = add_const(g, np.float32(numerics.symmetric_scale(amax, self.elem)), f"{x.name}_scale")
        zero = add_const(g, self._zero(), f"{x.name}_zero_point")
        q = g.add_value(f"{x.name}_quantized", self.elem, x.shape)
        g.add_node("QuantizeLinear", [x, scale, zero], [q], name=g.fresh_node_name(f"{x.name}_Quantize"),
                   before=before)
        dq = g.add_value(f"{x.name}_dequantized", FLOAT, x.shape)
        g.add_node("DequantizeLinear", [q, scale, zero], [dq], name=g.fresh_node_name(f"{x.name}_Dequantize"),
                   before=before)
        self.done[id(x)] = dq
        return dq

    def weight(self, w: Value, axis: int, before: Node) -> Value:
        g = self.graph
        wq, scales = numerics.quantize_weights(np.asarray(w.const), axis, self.elem)
        qv = add_const(g, wq, f"{w.name}_quantized")
        sv = add_const(g, scales, f"{w.name}_scale")
        zv = add_const(g, self._zero(scales.shape), f"{w.name}_zero_point")
        out = g.add_value(f"{w.name}_dequantized", FLOAT, w.shape)
        g.add_node("DequantizeLinear", [qv, sv, zv], [out], {"axis": axis},
                   name=g.fresh_node_name(f"{w.name}_Dequantize"), before=before)
        return out


def _weight_axis(node: Node, w: Value) -> int:
    if is_op(node, "Conv"):
        return 0
    if is_op(node, "Gemm"):
        return 0 if int(node.attr("transB", 0)) else 1
    return len(w.static_shape) - 1


def _candidate(node: Node) -> bool:
    if not is_op(node, "Conv", "MatMul", "Gemm"):
        return False
    x, w = node.input(0), node.input(1)
    if x is None or w is None or not (static(x) and static(w) and static(node.outputs[0])):
        return False
    if x.dtype != FLOAT or w.dtype != FLOAT or (not is_op(node, "MatMul") and w.const is None):
        return False
    return is_op(node, "Conv") or (len(x.static_shape) >= 2 and len(w.static_shape) >= 2)


def _quantize(graph: Graph, table: CalibrationTable, elem: int, ctx: PassContext) -> bool:
    ins = _Inserter(graph, table, elem, ctx)
    kept = table.fallback()
    changed = False
    for node in [n for n in graph.nodes if _candidate(n)]:
        x, w = node.input(0), node.input(1)
        assert x is not None and w is not None
        entry = table.layer_for(node.name, w.name if w.const is not None else None)
        label = f"{node.op_type} '{node.name}'"
        if entry is not None and (node.name in kept or entry.precision == "float"):
            ctx.refuse(f"{label} stays float: the calibration table keeps it in float (accuracy guard)")
            continue
        missing = [v.name for v in (x, w) if v.const is None and table.amax(v.name) is None]
        if missing:
            ctx.refuse(f"{label} stays float: calibration table '{table.path}' has no amax for "
                       f"{' and '.join(repr(m) for m in missing)}")
            continue
        graph.set_input(node, 0, ins.activation(x, node))
        if w.const is not None:
            graph.set_input(node, 1, ins.weight(w, _weight_axis(node, w), node))
        else:
            graph.set_input(node, 1, ins.activation(w, node))
        changed = True
    return changed


def require_scales(options: Options, graph: Graph, what: str) -> None:
    """With int8_enable or fp8_enable, raise QuantizationError (saying how to calibrate) unless a calibration table
    is named or `graph` has QuantizeLinear/DequantizeLinear nodes. The EP also checks the whole model when it
    partitions it (ep_trtpy/_host.py), where a QDQ model's Q/DQ nodes are visible on every backend."""
    if not (options.int8_enable or options.fp8_enable) or options.int8_calibration_table_name:
        return
    if any(n.key in QUANTIZED_KEYS for n in graph.nodes):
        return
    flag = "fp8_enable" if options.fp8_enable else "int8_enable"
    raise QuantizationError(f"{flag}=1 but {what} has no scales: it has no QuantizeLinear/DequantizeLinear nodes and "
                            f"no int8_calibration_table_name is set; {HOW_TO_CALIBRATE}")


def run(graph: Graph, ctx: PassContext) -> bool:
    elem = _wanted(ctx)
    if elem is None:
        return False
    runs = all(ctx.runs(k) for k in QUANTIZED_KEYS)
    if runs:  # (on the cuda backend a QDQ model's Q/DQ nodes are not in the engine: the EP checked the model)
        require_scales(ctx.options, graph, f"engine '{graph.name}'")
    precision = "fp8" if elem == FLOAT8E4M3FN else "int8"
    table = load_table(ctx, graph, precision) if ctx.options.int8_calibration_table_name else None
    if not runs:
        key = table.path if table is not None else ctx.backend
        if key not in _warned:
            _warned.add(key)
            log.warning("%s: the %s backend has no %s kernels yet; engine '%s' is built in float%s", NAME,
                        ctx.backend, precision.upper(), graph.name,
                        f" (the calibration table '{table.path}' was read and checked)" if table else "")
        ctx.refuse(f"engine '{graph.name}' is not quantized: the {ctx.backend} backend has no {precision} kernels")
        return False
    if table is None:  # a QDQ model: fold_qdq did the work
        return False
    return _quantize(graph, table, elem, ctx)
