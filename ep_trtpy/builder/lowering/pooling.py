"""Lowering of MaxPool and AveragePool (1-D, 2-D, 3-D) onto the ``pool`` kernel
(cuda_kernels/runtime/kernels_spatial.cpp), of the channels-last ep_trtpy::Pool onto ``pool_nhwc``, and of
GlobalAveragePool / GlobalMaxPool onto the ``reduce`` kernel (mean / max over the spatial dims, read as
[N*C, prod(spatial), 1]; layout in reduce.py)::

    pool  inputs [X] outputs [Y] (float32 / float16)
          ints [average, count_include_pad, nc, in_sp[3], out_sp[3], kernel[3], stride[3], pad_begin[3],
                pad_end[3], dilation[3]]
          X = [nc, in_sp...], Y = [nc, out_sp...]; fewer than 3 spatial dims get leading extent-1 dims (kernel 1,
          stride 1, no pads, dilation 1)

    pool_nhwc  inputs [X] outputs [Y] (float32 / float16 / bfloat16, one dtype)
          ints [average, count_include_pad, N, C, H, W, P, Q, kh, kw, sh, sw, pbh, pbw, peh, pew, dh, dw]
          X = [N, H, W, C], Y = [N, P, Q, C]; max ignores padding; average sums the window positions inside
          [0, H) x [0, W) and divides by their count, or with count_include_pad by the count of positions
          inside [-pbh, H + peh) x [-pbw, W + pew) (a ceil_mode window's part beyond the end padding never counts)

Output extents follow the ONNX spec: with explicit pads
``out = floor_or_ceil((in + pad_begin + pad_end - ((kernel - 1) * dilation + 1)) / stride) + 1``, and in ceil
mode the last window must start inside the input or the left padding (else out -= 1); VALID has no pads; a window
larger than the padded input divides toward zero (0 or 1 windows), as ONNX Runtime's CPU provider and the
reference (``ops/_spatial.py``) do;
SAME_UPPER / SAME_LOWER give ``out = ceil(in / stride)`` with the total padding
``max(0, (out - 1) * stride + (kernel - 1) * dilation + 1 - in)`` split evenly, the odd element at the end
(UPPER) or the beginning (LOWER). They are checked against the output value's shape.
"""

from __future__ import annotations

from collections.abc import Sequence

from ep_trtpy.builder.lowering import LowerCtx, LoweringError, lowering
from ep_trtpy.builder.lowering._util import FLOATS, check_dtype, check_out_shape, numel, shape_of
from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT16, Node


def pool_geometry(in_sp: Sequence[int], kernel: Sequence[int], strides: Sequence[int], pads: Sequence[int],
                  dilations: Sequence[int], ceil_mode: int, auto_pad: str
                  ) -> tuple[list[int], list[int], list[int]]:
    """(out extents, pads at the beginning, pads at the end) per spatial dim, per the ONNX spec."""
    n = len(in_sp)
    out: list[int] = []
    pb: list[int] = []
    pe: list[int] = []
    for d in range(n):
        i, k, s, dil = int(in_sp[d]), int(kernel[d]), int(strides[d]), int(dilations[d])
        eff = (k - 1) * dil + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-i // s)
            total = max(0, (o - 1) * s + eff - i)
            small = total // 2
            b, e = (small, total - small) if auto_pad == "SAME_UPPER" else (total - small, small)
        else:
            b, e = (0, 0) if auto_pad == "VALID" else (int(pads[d]), int(pads[n + d]))
            span = i + b + e - eff
            o = (-(-span // s) if ceil_mode or span < 0 else span // s) + 1  # span < 0: toward zero, as ORT
            if ceil_mode and (o - 1) * s >= i + b:
                o -= 1
        out.append(max(o, 0))
        pb.append(b)
        pe.append(e)
    return out, pb, pe


@lowering("MaxPool", "AveragePool")
def lower_pool(ctx: LowerCtx, node: Node) -> None:
    """MaxPool / AveragePool(kernel_shape, strides, pads, dilations, ceil_mode, auto_pad, count_include_pad)."""
    x, y = node.inputs[0], node.outputs[0]
    assert x is not None
    check_dtype(node, x, FLOATS, "input")
    xs, ys = shape_of(x), shape_of(y)
    nsp = len(xs) - 2
    if not 1 <= nsp <= 3:
        raise LoweringError(f"node '{node.name}' ({node.op_type}): {nsp} spatial dims (1 to 3 supported)")
    if node.op_type == "MaxPool" and len(node.outputs) > 1:
        ind = node.outputs[1]
        if ind.consumers or ctx.graph.is_graph_output(ind):
            raise LoweringError(f"node '{node.name}' (MaxPool): the Indices output is used; it is not computed")
    if node.op_type == "MaxPool" and int(node.attr("storage_order", 0)) != 0:
        raise LoweringError(f"node '{node.name}' (MaxPool): storage_order must be 0")
    kernel = [int(k) for k in node.attr("kernel_shape", [])]
    if len(kernel) != nsp or any(k < 1 for k in kernel):
        raise LoweringError(f"node '{node.name}' ({node.op_type}): kernel_shape {kernel} does not fit {nsp} spatial "
                            f"dims")
    strides = [int(s) for s in node.attr("strides", [1] * nsp)]
    dilations = [int(s) for s in node.attr("dilations", [1] * nsp)]
    pads = [int(p) for p in node.attr("pads", [0] * (2 * nsp))]
    auto_pad = node.attr("auto_pad", "NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    if len(strides) != nsp or len(dilations) != nsp or len(pads) != 2 * nsp:
        raise LoweringError(f"node '{node.name}' ({node.op_type}): strides/dilations/pads do not fit {nsp} dims")
    if any(s < 1 for s in strides) or any(d < 1 for d in dilations) or any(p < 0 for p in pads):
        raise LoweringError(f"node '{node.name}' ({node.op_type}): strides and dilations must be >= 1, pads >= 0")
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise LoweringError(f"node '{node.name}' ({node.op_type}): auto_pad {auto_pad!r} is not valid")
    out, pb, pe = pool_geometry(xs[2:], kernel, strides, pads, dilations, int(node.attr("ceil_mode", 0)), auto_pad)
    if list(ys) != list(xs[:2]) + out:
        raise LoweringError(f"node '{node.name}' ({node.op_type}): output '{y.name}' {list(ys)} differs from the "
                            f"computed {list(xs[:2]) + out}")
    lead = 3 - nsp

    def pad3(v: Sequence[int], fill: int) -> list[int]:
        return [fill] * lead + [int(a) for a in v]

    average = 1 if node.op_type == "AveragePool" else 0
    ints = [average, int(node.attr("count_include_pad", 0)) if average else 0, xs[0] * xs[1]]
    ints += pad3(xs[2:], 1) + pad3(out, 1) + pad3(kernel, 1) + pad3(strides, 1) + pad3(pb, 0) + pad3(pe, 0)
    ints += pad3(dilations, 1)
    ctx.emit("pool", [ctx.tensor(x)], [ctx.tensor(y)], ints=ints, name=node.name,
             meta={"op": node.key, "layout": "NCHW"})


@lowering("ep_trtpy::Pool")
def lower_pool_nhwc(ctx: LowerCtx, node: Node) -> None:
    """ep_trtpy::Pool(mode, kernel_shape, strides, pads, dilations, ceil_mode, count_include_pad), X [N, H, W, C]."""
    x, y = node.inputs[0], node.outputs[0]
    assert x is not None
    check_dtype(node, x, (FLOAT, FLOAT16, BFLOAT16), "input")
    xs, ys = shape_of(x), shape_of(y)
    mode = str(node.attr("mode", ""))
    if mode not in ("max", "average") or int(node.attr("channels_last", 0)) != 1 or len(xs) != 4:
        raise LoweringError(f"node '{node.name}' (ep_trtpy::Pool): mode {mode!r}, channels_last "
                            f"{node.attr('channels_last')!r} and X {list(xs)}; 'max' or 'average', 1 and [N, H, W, C] "
                            "are needed")
    kernel = [int(k) for k in node.attr("kernel_shape", [])]
    strides = [int(s) for s in node.attr("strides", [1, 1])]
    dilations = [int(s) for s in node.attr("dilations", [1, 1])]
    pads = [int(p) for p in node.attr("pads", [0, 0, 0, 0])]
    if len(kernel) != 2 or len(strides) != 2 or len(dilations) != 2 or len(pads) != 4 or min(kernel + strides
                                                                                              + dilations) < 1:
        raise LoweringError(f"node '{node.name}' (ep_trtpy::Pool): kernel_shape {kernel}, strides {strides}, "
                            f"dilations {dilations} and pads {pads} do not describe a 2-D window")
    n, h, w, c = xs
    out, pb, pe = pool_geometry((h, w), kernel, strides, pads, dilations, int(node.attr("ceil_mode", 0)), "NOTSET")
    if list(ys) != [n, *out, c]:
        raise LoweringError(f"node '{node.name}' (ep_trtpy::Pool): output '{y.name}' {list(ys)} differs from the "
                            f"computed {[n, *out, c]}")
    average = int(mode == "average")
    ints = [average, int(node.attr("count_include_pad", 0)) if average else 0, n, c, h, w, *out, *kernel, *strides,
            *pb, *pe, *dilations]
    ctx.emit("pool_nhwc", [ctx.tensor(x)], [ctx.tensor(y)], ints=ints, name=node.name,
             meta={"op": node.key, "layout": "NHWC"})


@lowering("GlobalAveragePool", "GlobalMaxPool")
def lower_global_pool(ctx: LowerCtx, node: Node) -> None:
    """Mean / max over every spatial dim of [N, C, ...] (keeping them as extent 1)."""
    x, y = node.inputs[0], node.outputs[0]
    assert x is not None
    xs = shape_of(x)
    if len(xs) < 3:
        raise LoweringError(f"node '{node.name}' ({node.op_type}): input '{x.name}' must have rank >= 3")
    check_dtype(node, x, FLOATS, "input")
    check_out_shape(node, y, list(xs[:2]) + [1] * (len(xs) - 2))
    op = 1 if node.op_type == "GlobalAveragePool" else 2
    ctx.emit("reduce", [ctx.tensor(x)], [ctx.tensor(y)], ints=[op, xs[0] * xs[1], numel(xs[2:]), 1],
             name=node.name)
