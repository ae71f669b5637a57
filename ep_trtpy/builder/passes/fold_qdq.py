"""fold_qdq: QuantizeLinear/DequantizeLinear pairs around Conv, MatMul and Gemm -> ep_trtpy::QConv / QMatMul.

Math: a QDQ model spells an int8 layer in float: ``Q_y(act(conv(DQ_x(Xq), DQ_w(Wq)) + DQ_b(Bq)))``. Since
``DQ(q) = (q - z) * s``, the convolution of the dequantized operands is ``s_x * s_w[m] * sum (Xq - z_x)(Wq - z_w)``:
an integer sum scaled once. QConv / QMatMul (ep_trtpy/ops/quantize.py) compute exactly that, then the bias, the
activation and the output quantization, so the int8 tensors themselves flow from layer to layer. A bias quantized
as int32 with scale ``s_x * s_w`` (as onnxruntime.quantization writes it) is added to the integer sum; any other
constant bias in float32. Data movement between quantized layers (``Q(op(DQ(q)))`` with op one of
:data:`PASS_THROUGH` and the same scale and zero point on both sides) is done on the int8 values directly, which is
exact: DQ is increasing and Q(DQ(q)) = q.

Match (each layer L = Conv, MatMul or Gemm with static shapes):
* input 0 is DequantizeLinear(Xq, scalar scale, scalar zero point) of a quantized tensor (int8, uint8, FP8);
* the weight is DequantizeLinear of a constant, per-tensor or per-axis along the output channels (Conv: axis 0;
  Gemm: N, axis 0 with transB=1, else 1; MatMul: its last axis), or for MatMul a runtime tensor per-tensor;
* the bias (Conv's B, Gemm's C as a row vector, scaled by beta) is absent, DequantizeLinear of a constant, or a
  constant;
* for a MatMul, optionally an Add of a float32 constant row vector (its bias) reading only L's output;
* then optionally one activation of FusedConv's / FusedMatMul's set that reads only L's output, and a
  QuantizeLinear (scalar scale and zero point) that is the only reader of what L computes: it becomes L's quantized
  output; without one L's output stays float32.

Refusal (the layer stays float, with its Q/DQ nodes, and computes the same numbers): per-axis activation scales,
a weight quantized along another axis, a runtime bias, a Gemm C that is not a row vector, float16 scales. Each
sentence names the node and the value.

Rewrite: one QConv / QMatMul node replacing L (and the absorbed activation and QuantizeLinear); the scales become
attributes. DequantizeLinear nodes nobody reads any more are removed by eliminate_dead_nodes.
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.builder.passes._patterns import DOMAIN, add_const, const_scalar, is_op, replace_nodes, sole_consumer
from ep_trtpy.builder.passes.fuse_conv import explicit_pads
from ep_trtpy.builder.pipeline import PassContext
from ep_trtpy.quantize.numerics import QTYPES, dequantize
from graph_partitioner.ir import FLOAT, FLOAT8E4M3FN, INT32, Graph, Node, Value

NAME = "fold_qdq"

PASS_THROUGH = ("Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "MaxPool")
CONV_ACTS = {"Relu": "Relu", "Clip": "Clip", "LeakyRelu": "LeakyRelu", "Sigmoid": "Sigmoid", "Tanh": "Tanh",
             "HardSwish": "HardSwish"}
MATMUL_ACTS = {"Relu": "Relu"}
QUANTIZED_KEYS = ("QuantizeLinear", "DequantizeLinear", f"{DOMAIN}::QConv", f"{DOMAIN}::QMatMul")


def _dq(v: Value | None) -> Node | None:
    """The DequantizeLinear producing v, if one does."""
    p = None if v is None else v.producer
    return p if is_op(p, "DequantizeLinear") else None


def _scalar_params(node: Node) -> tuple[float, int] | None:
    """(scale, zero point) of a per-tensor Q/DQ with constant float32 scale, else None."""
    s, z = node.input(1), node.input(2)
    if s is None or s.const is None or s.dtype != FLOAT or s.const.size != 1:
        return None
    if z is not None and (z.const is None or z.const.size != 1):
        return None
    zero = 0 if z is None or z.dtype == FLOAT8E4M3FN else int(np.asarray(z.const).reshape(()))
    return float(np.asarray(s.const, np.float32).reshape(())), zero


def _q_type(node: Node) -> int | None:
    """The quantized element type a Q produces / a DQ reads."""
    v = node.outputs[0] if is_op(node, "QuantizeLinear") else node.input(0)
    return v.dtype if v is not None and v.dtype in QTYPES else None


def _vector_params(node: Node, rank: int, axis: int) -> tuple[list[float], list[int]] | str:
    """Scales and zero points of a weight DQ, per-tensor or along `axis`; a sentence when not usable."""
    s, z = node.input(1), node.input(2)
    if s is None or s.const is None or s.dtype != FLOAT or (z is not None and z.const is None):
        return f"DequantizeLinear '{node.name}' has no constant float32 scale and zero point"
    scale = np.asarray(s.const, np.float32).reshape(-1)
    if scale.size > 1:
        q_axis = int(node.attr("axis", 1))
        q_axis = q_axis + rank if q_axis < 0 else q_axis
        if q_axis != axis:
            return (f"DequantizeLinear '{node.name}' quantizes the weight along axis {q_axis}, not along its output "
                    f"channels (axis {axis})")
    if z is None or z.dtype == FLOAT8E4M3FN:
        zero = np.zeros(scale.shape, np.int64)
    else:
        zero = np.asarray(z.const, np.int64).reshape(-1)
    return [float(v) for v in scale], [int(v) for v in np.broadcast_to(zero, scale.shape)]


def _activation(graph: Graph, v: Value, allowed: dict[str, str]) -> tuple[Node, dict] | None:
    """A single-node activation reading only v (with its FusedConv attributes), else None."""
    nxt = sole_consumer(graph, v)
    if nxt is None or not is_op(nxt, *allowed) or nxt.input(0) is not v:
        return None
    attrs: dict = {"activation": allowed[nxt.op_type]}
    if nxt.op_type == "LeakyRelu":
        attrs["act_alpha"] = float(nxt.attr("alpha", 0.01))
    if nxt.op_type == "Clip":
        lo, hi = nxt.input(1), nxt.input(2)
        if "min" in nxt.attrs or "max" in nxt.attrs:
            attrs["act_alpha"], attrs["act_beta"] = float(nxt.attr("min", -3.4e38)), float(nxt.attr("max", 3.4e38))
        else:
            bounds = [const_scalar(b) if b is not None else d for b, d in ((lo, -3.4028234663852886e38),
                                                                          (hi, 3.4028234663852886e38))]
            if any(b is None or np.isnan(b) for b in bounds):
                return None
            attrs["act_alpha"], attrs["act_beta"] = bounds
    return nxt, attrs


def _output(graph: Graph, start: Value, allowed: dict[str, str]) -> tuple[list[Node], Value, dict]:
    """The activation and QuantizeLinear that L's output flows into (absorbed nodes, final value, attributes)."""
    nodes: list[Node] = []
    attrs: dict = {"activation": ""}
    cur = start
    found = _activation(graph, cur, allowed)
    if found is not None:
        act, more = found
        nodes.append(act)
        attrs.update(more)
        cur = act.outputs[0]
    q = sole_consumer(graph, cur)
    if is_op(q, "QuantizeLinear") and q.input(0) is cur and (p := _scalar_params(q)) is not None \
            and _q_type(q) is not None:
        nodes.append(q)
        attrs.update(y_scale=p[0], y_zero_point=p[1], y_type=int(_q_type(q)))  # type: ignore[arg-type]
        cur = q.outputs[0]
    return nodes, cur, attrs


def _bias(graph: Graph, layer: Node, b: Value | None, x_scale: float, w_scale: list[float], beta: float,
          int_ok: bool, ctx: PassContext) -> Value | None | str:
    """The bias input of the quantized layer: int32 when it was quantized with scale x_scale * w_scale, else a
    float32 constant (times beta); a sentence when it cannot be folded."""
    if b is None:
        return None
    channels = len(w_scale)
    d = _dq(b)
    if d is not None and d.input(0) is not None and d.input(0).const is not None and d.input(0).dtype == INT32:
        scale = np.asarray(d.input(1).const, np.float32).reshape(-1)  # type: ignore[union-attr]
        want = (np.float32(x_scale) * np.asarray(w_scale, np.float32)).astype(np.float32)
        zero = d.input(2)
        zero_ok = zero is None or (zero.const is not None and not np.any(zero.const))
        if int_ok and beta == 1.0 and zero_ok and np.array_equal(np.broadcast_to(scale, want.shape), want):
            return add_const(graph, np.asarray(d.input(0).const, np.int32).reshape(-1), f"{layer.name}_bias_q")
        value = dequantize(d.input(0).const, scale, None if zero is None else zero.const.reshape(-1),  # type: ignore
                           0 if scale.size > 1 else None)
    elif b.const is not None:
        value = np.asarray(b.const, np.float32)
    else:
        return f"its bias '{b.name}' is not a constant"
    flat = value.reshape(-1)
    if flat.size not in (1, channels) or (value.ndim > 1 and value.shape[-1] != flat.size):
        return f"its bias '{b.name}' {list(value.shape)} is not a vector over the {channels} outputs"
    return add_const(graph, (np.broadcast_to(flat, (channels,)) * np.float32(beta)).astype(np.float32),
                     f"{layer.name}_bias")


def _row_bias(graph: Graph, y: Value) -> tuple[Node, np.ndarray] | None:
    """(Add, bias [N]) when y's only reader adds a float32 constant broadcast along y's rows."""
    add = sole_consumer(graph, y)
    if not is_op(add, "Add"):
        return None
    c = add.input(1) if add.input(0) is y else add.input(0)
    if c is None or c is y or c.const is None or c.dtype != FLOAT:
        return None
    n = y.static_shape[-1]
    shape = tuple(c.static_shape)
    if not shape or shape[-1] != n or any(d != 1 for d in shape[:-1]) or len(shape) > len(y.static_shape):
        return None
    return add, np.asarray(c.const, np.float32).reshape(n)


def _weight_axis(layer: Node, w: Value) -> int:
    if is_op(layer, "Conv"):
        return 0
    if is_op(layer, "Gemm"):
        return 0 if int(layer.attr("transB", 0)) else 1
    return len(w.static_shape) - 1


def _fold(graph: Graph, layer: Node, ctx: PassContext) -> bool:
    what = f"{layer.op_type} '{layer.name}'"
    x, w = layer.input(0), layer.input(1)
    dx, dw = _dq(x), _dq(w)
    if dx is None or dw is None:
        return False
    px = _scalar_params(dx)
    if px is None or _q_type(dx) is None or dx.outputs[0].dtype != FLOAT:
        ctx.refuse(f"{what} stays float: its input DequantizeLinear '{dx.name}' is not per-tensor int8/uint8/FP8 "
                   f"with a constant float32 scale")
        return False
    if _q_type(dw) is None or dw.outputs[0].dtype != FLOAT:
        ctx.refuse(f"{what} stays float: its weight DequantizeLinear '{dw.name}' does not read int8/uint8/FP8")
        return False
    wq = dw.input(0)
    assert wq is not None and w is not None
    if wq.const is None and not is_op(layer, "MatMul"):
        ctx.refuse(f"{what} stays float: its weight '{wq.name}' is not a constant")
        return False
    params = _vector_params(dw, len(wq.static_shape), _weight_axis(layer, w))
    if isinstance(params, str):
        ctx.refuse(f"{what} stays float: {params}")
        return False
    w_scale, w_zero = params
    if wq.const is None and len(w_scale) > 1:
        ctx.refuse(f"{what} stays float: its runtime operand '{wq.name}' has per-axis scales")
        return False
    is_conv = is_op(layer, "Conv")
    attrs: dict = {}
    if is_conv:
        attrs.update(explicit_pads(layer, x.static_shape, w.static_shape))  # type: ignore[union-attr]
        attrs["group"] = int(layer.attr("group", 1))
        attrs.update(x_scale=px[0], x_zero_point=px[1], w_scale=w_scale, w_zero_point=w_zero)
        bias_in, beta, alpha = layer.input(2), 1.0, 1.0
    else:
        if any(len(v.static_shape) < 2 for v in (x, w)):  # type: ignore[union-attr]
            ctx.refuse(f"{what} stays float: a 1-D operand")
            return False
        gemm = is_op(layer, "Gemm")
        alpha, beta = (float(layer.attr("alpha", 1.0)), float(layer.attr("beta", 1.0))) if gemm else (1.0, 1.0)
        attrs.update(transA=int(layer.attr("transA", 0)) if gemm else 0,
                     transB=int(layer.attr("transB", 0)) if gemm else 0, alpha=alpha,
                     a_scale=px[0], a_zero_point=px[1], b_scale=w_scale, b_zero_point=w_zero)
        bias_in = layer.input(2) if gemm else None
    channels = w.static_shape[0 if is_conv else _weight_axis(layer, w)]  # type: ignore[union-attr]
    if len(w_scale) not in (1, channels):
        return False
    bias = _bias(graph, layer, bias_in, px[0], w_scale if len(w_scale) > 1 else w_scale * channels, beta,
                 alpha == 1.0, ctx)
    if isinstance(bias, str):
        ctx.refuse(f"{what} stays float: {bias}")
        return False
    start, pre = layer.outputs[0], []
    if bias is None and not is_conv and (found := _row_bias(graph, start)) is not None:
        add, vec = found
        bias, start, pre = add_const(graph, vec, f"{layer.name}_bias"), add.outputs[0], [add]
    absorbed, out, more = _output(graph, start, CONV_ACTS if is_conv else MATMUL_ACTS)
    absorbed = pre + absorbed
    attrs.update(more)
    inputs: list[Value | None] = [dx.input(0), wq] + ([bias] if bias is not None else [])
    op = "QConv" if is_conv else "QMatMul"
    new = replace_nodes(graph, [layer] + absorbed, op, inputs, [out], attrs, domain=DOMAIN, name=layer.name)
    ctx.record_fusion(new.name, [layer] + absorbed)
    ctx.info("%s: %s -> %s (%s output)", NAME, what, op, "quantized" if "y_scale" in attrs else "float32")
    return True


def _same(a: Node, b: Node) -> bool:
    pa, pb = _scalar_params(a), _scalar_params(b)
    return pa is not None and pa == pb and _q_type(a) == _q_type(b)


def _pass_through(graph: Graph, node: Node, ctx: PassContext) -> bool:
    """Q(op(DQ(q))) with equal scale and zero point -> op(q)."""
    d = _dq(node.input(0))
    q = sole_consumer(graph, node.outputs[0]) if len(node.outputs) == 1 else None
    if d is None or not is_op(q, "QuantizeLinear") or q.input(0) is not node.outputs[0] or not _same(d, q):
        return False
    src = d.input(0)
    assert src is not None and q is not None
    inputs = [src] + list(node.inputs[1:])
    new = replace_nodes(graph, [node, q], node.op_type, inputs, [q.outputs[0]], dict(node.attrs), name=node.name)
    ctx.record_fusion(new.name, [node, q])
    return True


def run(graph: Graph, ctx: PassContext) -> bool:
    if not any(is_op(n, "DequantizeLinear") for n in graph.nodes) or not all(ctx.runs(k) for k in QUANTIZED_KEYS):
        return False
    changed = False
    for node in list(graph.nodes):
        if is_op(node, *PASS_THROUGH) and node in graph.nodes:
            changed |= _pass_through(graph, node, ctx)
    for node in list(graph.nodes):
        if node in graph.nodes and is_op(node, "Conv", "MatMul", "Gemm") and all(
                v is not None and v.shape is not None and all(isinstance(d, int) for d in v.shape)
                for v in (node.input(0), node.input(1), node.outputs[0])):
            changed |= _fold(graph, node, ctx)
    return changed
