"""Support rules: elementwise ops (all become ep_trtpy::Pointwise; numpy broadcasting, any ranks)."""

from __future__ import annotations

from graph_partitioner.ir import BOOL, FLOAT, FLOAT16, FLOAT_TYPES, INT32, INT64, Node, dtype_name
from graph_partitioner.support import common
from graph_partitioner.support.registry import FLOATS, INTS, NUMERIC, RuleFn, SupportContext, rule

BOOLS = frozenset({BOOL})
CAST_TYPES = frozenset({FLOAT, FLOAT16, INT32, INT64, BOOL})


def _plain(op: str, dtypes: frozenset[int], doc: str, exempt_outputs: tuple[int, ...] = ()) -> None:
    """Register a rule with nothing to check beyond dtypes (and, for exempt outputs, that they are bool)."""

    def fn(node: Node, ctx: SupportContext) -> str | None:
        for i in exempt_outputs:
            if why := common.dtype_in(node, node.outputs[i] if i < len(node.outputs) else None, BOOLS, "output"):
                return why
        return None

    fn.__doc__ = doc
    fn.__name__ = f"rule_{op}"
    rule(op, dtypes=dtypes, exempt_outputs=exempt_outputs)(fn)


for _op in ("Add", "Sub", "Mul", "Div"):
    _plain(_op, NUMERIC, "Binary arithmetic with numpy broadcasting (integer division truncates toward zero).")
for _op in ("Neg", "Abs", "Sign", "Relu"):
    _plain(_op, NUMERIC, "Unary, any rank (0-d and zero-size included).")
for _op in ("Sigmoid", "Tanh", "Erf", "Exp", "Log", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round", "Sin", "Cos",
            "Softplus", "Softsign", "HardSwish"):
    _plain(_op, FLOATS, "Unary float math, computed in float32.")
for _op in ("LeakyRelu", "Elu", "Selu", "Celu", "ThresholdedRelu", "HardSigmoid"):
    _plain(_op, FLOATS, "Activation; its attributes (alpha, beta, gamma as the op has them) become immediates.")
_plain("PRelu", FLOATS, "slope broadcasts to X (numpy rules).")
for _op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"):
    _plain(_op, NUMERIC, "Comparison with broadcasting; output bool.", exempt_outputs=(0,))
_plain("IsNaN", FLOATS, "Float classification; output bool.", exempt_outputs=(0,))
_plain("IsInf", FLOATS, "Float classification with detect_positive/detect_negative; output bool.",
       exempt_outputs=(0,))
for _op in ("And", "Or", "Xor", "Not"):
    _plain(_op, BOOLS, "Logic on bool tensors with broadcasting.")


def _variadic(op: str, doc: str) -> RuleFn:
    def fn(node: Node, ctx: SupportContext) -> str | None:
        n = sum(1 for v in node.inputs if v is not None)
        if n == 0:
            return f"{op} node has no inputs"
        if n > common.MAX_POINTWISE_INPUTS:
            return (f"{op} with {n} inputs exceeds the {common.MAX_POINTWISE_INPUTS} inputs one pointwise kernel "
                    f"reads")
        return None

    fn.__doc__ = doc
    fn.__name__ = f"rule_{op}"
    return rule(op, dtypes=NUMERIC)(fn)


for _op in ("Sum", "Mean", "Min", "Max"):
    _variadic(_op, f"Variadic (up to {common.MAX_POINTWISE_INPUTS} inputs) with numpy broadcasting.")


@rule("Clip", dtypes=NUMERIC)
def clip(node: Node, ctx: SupportContext) -> str | None:
    """min/max inputs optional, constant or runtime (opset >= 11); the opset-6 min/max attributes are refused."""
    if common.version(node, ctx) < 11:
        return (f"Clip-{common.version(node, ctx)} with min/max attributes is not supported (the opset 11+ form "
                f"with min/max inputs is)")
    return None


@rule("Where", dtypes=NUMERIC, exempt_inputs=(0,))
def where(node: Node, ctx: SupportContext) -> str | None:
    """condition bool; X and Y broadcast with it."""
    return common.dtype_in(node, node.input(0), BOOLS, "condition")


@rule("Mod", dtypes=NUMERIC)
def mod(node: Node, ctx: SupportContext) -> str | None:
    """fmod=0 (sign of the divisor, integers) or fmod=1 (C fmod); float inputs need fmod=1 as ONNX says."""
    if why := common.flag(node, "fmod"):
        return why
    x = node.input(0)
    if node.attr("fmod", 0) == 0 and x is not None and x.dtype in FLOAT_TYPES:
        return f"Mod with fmod=0 on float input '{x.name}' is invalid ONNX (floating-point Mod requires fmod=1)"
    return None


@rule("Cast", dtypes=CAST_TYPES)
def cast(node: Node, ctx: SupportContext) -> str | None:
    """Between float32, float16, int32, int64 and bool (float to int truncates toward zero)."""
    to = node.attr("to")
    if to is None:
        return "Cast has no 'to' attribute"
    if to not in CAST_TYPES:
        return (f"Cast to {dtype_name(int(to))} is not supported (float32, float16, int32, int64 and bool are)")
    return None


@rule("Pow", dtypes=FLOATS, exempt_inputs=(1,))
def pow_(node: Node, ctx: SupportContext) -> str | None:
    """Float base; exponent float or integer (float16/float32/int32/int64)."""
    return common.dtype_in(node, node.input(1), FLOATS | INTS, "exponent")


@rule("Gelu", dtypes=FLOATS)
def gelu(node: Node, ctx: SupportContext) -> str | None:
    """approximate 'none' (erf) or 'tanh'."""
    return common.attr_in(node, "approximate", "none", ("none", "tanh"), "'none' and 'tanh' are")
