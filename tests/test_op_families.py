"""One op, one family, one name in every tree.

An op key has a support rule (graph_partitioner/support/rules_<family>.py), a numpy reference and an inference
(ep_trtpy/ops/<family>.py) and a lowering (ep_trtpy/builder/lowering/<family>.py) or a named rewrite pass that
removes it before lowering. Internal ops (domain ep_trtpy) may keep their rule and reference in the ``internal``
family and be lowered with the kernels they run on.
"""

from __future__ import annotations

from ep_trtpy.builder.lowering import lowerings
from ep_trtpy.builder.pipeline import pass_names
from ep_trtpy.ops.registry import all_ops
from graph_partitioner.support import rules

# The specification the support rules must cover (kept here by hand on purpose, and only here).
SPEC_OPS = """
Add Sub Mul Div Min Max Sum Mean Neg Abs Sign Relu Clip Where Mod Equal Less Greater LessOrEqual GreaterOrEqual Cast
Pow Sigmoid Tanh Erf Exp Log Sqrt Reciprocal Floor Ceil Round Sin Cos Softplus Softsign LeakyRelu PRelu HardSigmoid
HardSwish Elu Selu Celu ThresholdedRelu Gelu IsNaN IsInf And Or Xor Not
ReduceMean ReduceSum ReduceMax ReduceMin ReduceL2 ReduceProd ReduceL1 ReduceSumSquare ReduceLogSumExp
GlobalAveragePool GlobalMaxPool ArgMax ArgMin LayerNormalization Softmax LogSoftmax BatchNormalization
Conv ConvTranspose Gemm MatMul Einsum
Reshape Flatten Squeeze Unsqueeze Identity Dropout Transpose Concat Split Slice Gather GatherElements GatherND
Expand Tile Pad Shape Size
ConstantOfShape Range Constant Resize Upsample MaxPool AveragePool QuantizeLinear DequantizeLinear
ep_trtpy::Pointwise ep_trtpy::FusedConv ep_trtpy::FusedMatMul ep_trtpy::Pool ep_trtpy::Attention
ep_trtpy::AddLayerNorm ep_trtpy::QConv ep_trtpy::QMatMul ep_trtpy::CastTranspose
""".split()

REWRITTEN = {"Einsum": "rewrite_einsum"}
"""Ops with a rule but no lowering: the named pass of the pipeline rewrites them into lowered ops."""


def _family(fn: object, prefix: str = "") -> str:
    name = getattr(fn, "__module__", "").rsplit(".", 1)[-1]
    return name[len(prefix):] if name.startswith(prefix) else name


def test_every_spec_op_has_a_rule_with_a_docstring() -> None:
    registered = rules()
    assert sorted(set(SPEC_OPS) - set(registered)) == []
    assert sorted(set(registered) - set(SPEC_OPS)) == []
    assert all(r.doc for r in registered.values())


def test_every_rule_has_a_reference_an_inference_and_a_lowering_or_a_rewrite() -> None:
    """DESIGN §5: every op we claim has a support rule, a numpy reference and a GPU lowering side by side."""
    ops, lows, passes = all_ops(), lowerings(), pass_names()
    no_ref = sorted(k for k in rules() if k not in ops or ops[k].ref is None or ops[k].infer is None)
    assert no_ref == []
    no_lowering = sorted(k for k in rules() if k not in lows and k not in REWRITTEN)
    assert no_lowering == []
    assert sorted(k for k, p in REWRITTEN.items() if p not in passes or k in lows) == []


def test_every_lowering_has_a_rule() -> None:
    """A lowering without a rule is never claimed (Upsample had one)."""
    assert sorted(set(lowerings()) - set(rules())) == []


def test_each_op_has_one_family_name_in_every_tree() -> None:
    ops, lows = all_ops(), lowerings()
    drift = []
    for key, r in sorted(rules().items()):
        family = _family(r.fn, "rules_")
        names = {"reference": _family(ops[key].ref), "inference": _family(ops[key].infer)}
        if key in lows and not (family == "internal" and names["reference"] == "internal"):
            names["lowering"] = _family(lows[key])
        drift += [f"{key}: rules_{family}.py but {what} in {got}.py" for what, got in names.items() if got != family]
    assert drift == []
