"""Support rules: Resize and its deprecated form Upsample (kernel "resize")."""

from __future__ import annotations

from graph_partitioner.ir import Node
from graph_partitioner.support import common
from graph_partitioner.support.registry import FLOATS, SupportContext, rule

RESIZE_MODES = ("nearest", "linear")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
COORD_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "half_pixel_symmetric")


@rule("Resize", dtypes=FLOATS, exempt_inputs=(1, 2, 3))
def resize(node: Node, ctx: SupportContext) -> str | None:
    """mode nearest (nearest_mode round_prefer_floor/round_prefer_ceil/floor/ceil) or linear (any number of resized
    dims); coordinate_transformation_mode half_pixel, pytorch_half_pixel, align_corners, asymmetric,
    half_pixel_symmetric; scales or sizes computable at build time. Refused: cubic, tf_crop_and_resize,
    antialias=1, keep_aspect_ratio_policy other than stretch, axes not covering all dims."""
    ver = common.version(node, ctx)
    mode = node.attr("mode", "nearest")
    if mode not in RESIZE_MODES:
        return f"Resize mode {mode!r} is not supported (nearest and linear are)"
    if mode == "nearest" and ver >= 11:
        nm = node.attr("nearest_mode", "round_prefer_floor")
        if nm not in NEAREST_MODES:
            return (f"Resize nearest_mode {nm!r} is not supported (round_prefer_floor, round_prefer_ceil, floor "
                    f"and ceil are)")
    ctm = node.attr("coordinate_transformation_mode", "half_pixel")
    if ver >= 11 and ctm not in COORD_MODES:
        return (f"Resize coordinate_transformation_mode {ctm!r} is not supported (half_pixel, pytorch_half_pixel, "
                f"align_corners, asymmetric and half_pixel_symmetric are)")
    if node.attr("antialias", 0) != 0:
        return "Resize antialias=1 is not supported (only antialias=0 is)"
    policy = node.attr("keep_aspect_ratio_policy", "stretch")
    if policy != "stretch":
        return f"Resize keep_aspect_ratio_policy {policy!r} is not supported (only 'stretch' is)"
    x = node.input(0)
    axes = node.attr("axes")
    if axes is not None:
        r = common.rank(x)
        if r is None:
            return (f"Resize axes={axes} cannot be checked because the rank of '{x.name}' is unknown (the kernel "
                    f"resizes every dim, so axes must cover all of them)")
        if why := common.check_axes(node, axes, r):
            return why
        if sorted(int(a) % r for a in axes) != list(range(r)):
            return (f"Resize axes={axes} does not cover all {r} dims of '{x.name}' (the kernel resizes every dim; "
                    f"list them all, with scale 1 where unchanged)")
    if ver < 11:
        scales = node.input(1)
        if scales is None:
            return "Resize-10 has no scales input"
        return common.computable_input(node, 1, ctx, "scales")
    scales, sizes = node.input(2), node.input(3)
    has_scales, has_sizes = not common.is_empty_input(scales), not common.is_empty_input(sizes)
    if has_scales and has_sizes:
        return f"Resize has both scales '{scales.name}' and sizes '{sizes.name}'; ONNX allows only one"
    if not has_scales and not has_sizes:
        return "Resize has neither scales nor sizes"
    return common.computable_input(node, 2 if has_scales else 3, ctx, "scales" if has_scales else "sizes")


@rule("Upsample", dtypes=FLOATS, exempt_inputs=(1,))
def upsample(node: Node, ctx: SupportContext) -> str | None:
    """Opsets 7 and 9 (deprecated since 10): mode nearest or linear, asymmetric like Resize-10; scales (an
    attribute in opset 7, an input computable at build time in 9) covering every dim."""
    ver = common.version(node, ctx)
    if ver >= 10:
        return f"Upsample is deprecated since opset 10 (this node is opset {ver}); use Resize"
    mode = node.attr("mode", "nearest")
    if mode not in RESIZE_MODES:
        return f"Upsample mode {mode!r} is not supported (nearest and linear are)"
    if node.input(1) is None:
        scales = node.attr("scales")
        return None if isinstance(scales, list) and scales else "Upsample has neither a scales input nor attribute"
    return common.computable_input(node, 1, ctx, "scales")
