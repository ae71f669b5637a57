"""Lowering of Resize (opset 10 to 19) onto the ``resize`` kernel (cuda_kernels/runtime/kernels_spatial.cpp)::

    resize  inputs [X] outputs [Y] (float32 / float16)
            ints   [linear, coord_mode, nearest_mode, ndim, in_dims[ndim], out_dims[ndim], resized[ndim]]
            floats [scales[ndim]]
            linear: 0 nearest, 1 linear; coord_mode: 0 half_pixel, 1 pytorch_half_pixel, 2 align_corners,
            3 asymmetric, 4 half_pixel_symmetric; nearest_mode: 0 round_prefer_floor, 1 round_prefer_ceil, 2 floor,
            3 ceil, 4 opset 10's rule (ceil where the dim's scale < 1, else truncation); resized[d] = 0 when
            dim d keeps its extent with scale 1 (index maps to itself)

Per dim, the scale is the `scales` input's value when given (float32), else out / in from `sizes` (as ONNX Runtime
computes it, in float32); the output extents are the output value's shape, checked against
floor(in * scale) when scales are given. Refused with a reason: cubic, tf_crop_and_resize, antialias,
keep_aspect_ratio_policy other than stretch, exclude_outside. Opset 10 (and Upsample) is asymmetric, with
nearest rounding as ONNX Runtime does it there (ceil on dims scaled below 1, truncation elsewhere).
"""

from __future__ import annotations

import numpy as np

from ep_trtpy.builder.lowering import LowerCtx, LoweringError, lowering
from ep_trtpy.builder.lowering._util import check_dtype, const_input, normalize_axis, op_version, shape_of
from graph_partitioner.ir import FLOAT, FLOAT16, Node

COORD_MODES = {"half_pixel": 0, "pytorch_half_pixel": 1, "align_corners": 2, "asymmetric": 3,
               "half_pixel_symmetric": 4}
NEAREST_MODES = {"round_prefer_floor": 0, "round_prefer_ceil": 1, "floor": 2, "ceil": 3, "simple": 4}


def _s(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


@lowering("Resize", "Upsample")
def lower_resize(ctx: LowerCtx, node: Node) -> None:
    """Resize (nearest / linear) and the deprecated Upsample."""
    x, y = node.inputs[0], node.outputs[0]
    assert x is not None
    check_dtype(node, x, (FLOAT, FLOAT16), "input")
    xs, ys = shape_of(x), shape_of(y)
    rank = len(xs)
    if len(ys) != rank or rank == 0:
        raise LoweringError(f"node '{node.name}' ({node.op_type}): output rank {len(ys)} differs from input rank "
                            f"{rank}")
    version = op_version(ctx, node)
    old = version < 11 or node.op_type == "Upsample"
    mode = _s(node.attr("mode", "nearest"))
    if mode not in ("nearest", "linear", "bilinear"):
        raise LoweringError(f"node '{node.name}' ({node.op_type}): mode {mode!r} is not supported (nearest, linear)")
    linear = 0 if mode == "nearest" else 1
    coord = "asymmetric" if old else _s(node.attr("coordinate_transformation_mode", "half_pixel"))
    if coord not in COORD_MODES:
        raise LoweringError(f"node '{node.name}' ({node.op_type}): coordinate_transformation_mode {coord!r} is not "
                            f"supported ({', '.join(COORD_MODES)})")
    nearest = "simple" if old else _s(node.attr("nearest_mode", "round_prefer_floor"))
    if nearest not in NEAREST_MODES or (nearest == "simple" and not old):
        raise LoweringError(f"node '{node.name}' ({node.op_type}): nearest_mode {nearest!r} is not supported")
    if int(node.attr("antialias", 0)):
        raise LoweringError(f"node '{node.name}' ({node.op_type}): antialias=1 is not supported")
    if _s(node.attr("keep_aspect_ratio_policy", "stretch")) != "stretch":
        raise LoweringError(f"node '{node.name}' ({node.op_type}): keep_aspect_ratio_policy "
                            f"{_s(node.attr('keep_aspect_ratio_policy'))!r} is not supported (stretch only)")
    if int(node.attr("exclude_outside", 0)):
        raise LoweringError(f"node '{node.name}' ({node.op_type}): exclude_outside=1 is not supported")
    axes_attr = node.attr("axes", None)
    axes = list(range(rank)) if axes_attr is None else [normalize_axis(a, rank, node, "axes entry")
                                                         for a in axes_attr]
    if node.op_type == "Upsample" and node.input(1) is None:
        scales = np.asarray(node.attr("scales", []), dtype=np.float32)
        sizes = None
    elif old:
        scales = const_input(ctx, node, 1, "scales")
        sizes = None
    else:
        scales = const_input(ctx, node, 2, "scales")
        sizes = const_input(ctx, node, 3, "sizes")
    if scales is not None and np.asarray(scales).size == 0:
        scales = None
    if sizes is not None and np.asarray(sizes).size == 0:
        sizes = None
    if scales is None and sizes is None:
        raise LoweringError(f"node '{node.name}' ({node.op_type}) has neither scales nor sizes")
    scale = [np.float32(1.0)] * rank
    if scales is not None:
        sv = np.asarray(scales, dtype=np.float32).reshape(-1)
        if len(sv) != len(axes):
            raise LoweringError(f"node '{node.name}' ({node.op_type}): {len(sv)} scales for {len(axes)} axes")
        for a, s in zip(axes, sv):
            scale[a] = np.float32(s)
        for d in range(rank):
            expect = int(np.float32(scale[d]) * np.float32(xs[d]))
            if expect != ys[d]:
                raise LoweringError(f"node '{node.name}' ({node.op_type}): output dim {d} is {ys[d]} but "
                                    f"scale {float(scale[d])} of {xs[d]} gives {expect}")
    else:
        for d in range(rank):
            scale[d] = np.float32(1.0) if xs[d] == 0 else np.float32(np.float32(ys[d]) / np.float32(xs[d]))
    resized = [0 if (xs[d] == ys[d] and float(scale[d]) == 1.0) else 1 for d in range(rank)]
    if any(resized[d] and float(scale[d]) <= 0.0 for d in range(rank)):
        raise LoweringError(f"node '{node.name}' ({node.op_type}): scales must be positive")
    if rank > 8:
        raise LoweringError(f"node '{node.name}' ({node.op_type}): rank {rank} (limit 8)")
    ints = [linear, COORD_MODES[coord], NEAREST_MODES[nearest], rank] + list(xs) + list(ys) + resized
    ctx.emit("resize", [ctx.tensor(x)], [ctx.tensor(y)], ints=ints, floats=[float(s) for s in scale], name=node.name)
