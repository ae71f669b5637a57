"""Support rules: Conv, ConvTranspose (cuDNN), Gemm, MatMul (cuBLASLt), Einsum (rewritten to MatMul etc.)."""

from __future__ import annotations

from graph_partitioner.ir import Node, Value
from graph_partitioner.support import common
from graph_partitioner.support.registry import FLOATS, SupportContext, rule

AUTO_PADS = ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")


def spatial_dims(node: Node, x: Value | None, w: Value | None = None) -> int | None:
    """Number of spatial dims from X's rank, W's rank or kernel_shape (whichever is known first)."""
    for v in (x, w):
        r = common.rank(v)
        if r is not None:
            return r - 2
    ks = node.attr("kernel_shape")
    return len(ks) if isinstance(ks, list) else None


def window_attrs(node: Node, k: int | None, dilations: bool = True) -> str | None:
    """auto_pad, strides, pads, dilations, kernel_shape of convolution and pooling ops."""
    if k is not None and not 1 <= k <= 3:
        return f"{node.key} with {k} spatial dims is not supported (1-D, 2-D and 3-D are)"
    if why := common.attr_in(node, "auto_pad", "NOTSET", AUTO_PADS, "NOTSET, VALID, SAME_UPPER and SAME_LOWER are"):
        return why
    if why := common.ints_attr(node, "kernel_shape", k, 1):
        return why
    if why := common.ints_attr(node, "strides", k, 1):
        return why
    if why := common.ints_attr(node, "pads", None if k is None else 2 * k, 0):
        return why
    if dilations and (why := common.ints_attr(node, "dilations", k, 1)):
        return why
    return None


def _dim(v: Value | None, i: int) -> int | None:
    if v is None or v.shape is None or i >= len(v.shape) or not isinstance(v.shape[i], int):
        return None
    return v.shape[i]  # type: ignore[return-value]


@rule("Conv", dtypes=FLOATS)
def conv(node: Node, ctx: SupportContext) -> str | None:
    """1-D/2-D/3-D; group (depthwise included); strides, pads, dilations, auto_pad (resolved to explicit pads at
    build); W constant or runtime; B optional."""
    x, w = node.input(0), node.input(1)
    k = spatial_dims(node, x, w)
    if (rx := common.rank(x)) is not None and (rw := common.rank(w)) is not None and rx != rw:
        return f"Conv input '{x.name}' (rank {rx}) and weight '{w.name}' (rank {rw}) differ in rank"
    if why := window_attrs(node, k):
        return why
    group = node.attr("group", 1)
    if not isinstance(group, int) or group < 1:
        return f"Conv group={group!r} is not valid (a positive integer is needed)"
    c, wc, m = _dim(x, 1), _dim(w, 1), _dim(w, 0)
    if c is not None and wc is not None and c != wc * group:
        return f"Conv input '{x.name}' has {c} channels but weight '{w.name}' expects {wc} x group {group}"
    if m is not None and m % group:
        return f"Conv weight '{w.name}' has {m} output channels, not a multiple of group {group}"
    if (rb := common.rank(node.input(2))) not in (None, 1):
        return f"Conv bias '{node.inputs[2].name}' has rank {rb}; a 1-D bias is needed"
    return None


@rule("ConvTranspose", dtypes=FLOATS)
def conv_transpose(node: Node, ctx: SupportContext) -> str | None:
    """1-D/2-D/3-D; group; strides, pads, dilations, output_padding, output_shape (resolved to pads at build),
    auto_pad; B optional."""
    x, w = node.input(0), node.input(1)
    k = spatial_dims(node, x, w)
    if why := window_attrs(node, k):
        return why
    if why := common.ints_attr(node, "output_padding", k, 0):
        return why
    if why := common.ints_attr(node, "output_shape", k, 1):
        return why
    group = node.attr("group", 1)
    if not isinstance(group, int) or group < 1:
        return f"ConvTranspose group={group!r} is not valid (a positive integer is needed)"
    c, wc = _dim(x, 1), _dim(w, 0)
    if c is not None and wc is not None and c != wc:
        return f"ConvTranspose input '{x.name}' has {c} channels but weight '{w.name}' expects {wc}"
    if (rb := common.rank(node.input(2))) not in (None, 1):
        return f"ConvTranspose bias '{node.inputs[2].name}' has rank {rb}; a 1-D bias is needed"
    return None


@rule("Gemm", dtypes=FLOATS)
def gemm(node: Node, ctx: SupportContext) -> str | None:
    """A and B 2-D; transA, transB, alpha, beta; C optional, unidirectionally broadcastable to [M, N]."""
    a, b, c = node.input(0), node.input(1), node.input(2)
    for what, v in (("A", a), ("B", b)):
        if (r := common.rank(v)) not in (None, 2):
            return f"Gemm {what} '{v.name}' has rank {r}; Gemm needs 2-D A and B"
    for name in ("transA", "transB"):
        if why := common.flag(node, name):
            return why
    if c is None or c.shape is None:
        return None
    if len(c.shape) > 2:
        return f"Gemm C '{c.name}' has rank {len(c.shape)}; it must broadcast to [M, N] (rank <= 2)"
    m = _dim(a, 1 if node.attr("transA", 0) else 0)
    n = _dim(b, 0 if node.attr("transB", 0) else 1)
    want = (m, n)[2 - len(c.shape):]
    for got, exp in zip(c.shape, want):
        if isinstance(got, int) and isinstance(exp, int) and got not in (1, exp):
            return f"Gemm C '{c.name}' of shape {list(c.shape)} does not broadcast to [M, N] = [{m}, {n}]"
    return None


@rule("MatMul", dtypes=FLOATS)
def matmul(node: Node, ctx: SupportContext) -> str | None:
    """numpy matmul: any ranks (1-D operands promoted and squeezed), batch dims broadcast."""
    for v in node.inputs[:2]:
        if common.rank(v) == 0:
            return f"MatMul operand '{v.name}' is a 0-d scalar; MatMul needs rank >= 1"
    return None


def parse_einsum(equation: str) -> tuple[list[str], str | None]:
    """(input terms, output term or None when implicit) of an equation with spaces removed."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    return lhs.split(","), (rhs if arrow else None)


@rule("Einsum", dtypes=FLOATS)
def einsum(node: Node, ctx: SupportContext) -> str | None:
    """1 or 2 operands; explicit ('->') or implicit output; no index repeated within one operand (no traces or
    diagonals); no ellipsis. Rewritten into Transpose/Reshape/MatMul/ReduceSum."""
    eq = node.attr("equation")
    if not isinstance(eq, str):
        return "Einsum has no equation attribute"
    if "..." in eq:
        return f"Einsum equation '{eq}' uses an ellipsis ('...'), which is not supported"
    terms, out = parse_einsum(eq)
    operands = [v for v in node.inputs if v is not None]
    if len(terms) not in (1, 2):
        return f"Einsum equation '{eq}' has {len(terms)} operands; 1 or 2 are supported"
    if len(terms) != len(operands):
        return f"Einsum equation '{eq}' names {len(terms)} operands but the node has {len(operands)} inputs"
    for term, v in zip(terms, operands):
        if not term.isalpha() and term != "":
            return f"Einsum equation '{eq}': operand term '{term}' has characters other than letters"
        repeated = sorted({ch for ch in term if term.count(ch) > 1})
        if repeated:
            return (f"Einsum equation '{eq}' repeats index '{repeated[0]}' within operand '{term}' (a trace or "
                    f"diagonal), which is not supported")
        if (r := common.rank(v)) is not None and r != len(term):
            return f"Einsum equation '{eq}': operand '{v.name}' has rank {r} but term '{term}' has {len(term)}"
    if out is not None:
        if not out.isalpha() and out != "":
            return f"Einsum equation '{eq}': output term '{out}' has characters other than letters"
        if len(set(out)) != len(out):
            return f"Einsum equation '{eq}' repeats an index in its output '{out}'"
        missing = [ch for ch in out if ch not in "".join(terms)]
        if missing:
            return f"Einsum equation '{eq}': output index '{missing[0]}' appears in no operand"
    return None
