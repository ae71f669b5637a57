"""GPU tests of the ``pointwise`` kernel (cuda_kernels/kernels/pointwise.cu) against pointwise_program.run (the
semantics) and ONNX Runtime's CPU provider: every opcode in both compute types, every IO dtype conversion,
broadcasting (0-d, empty, rank 8), the vectorized path (aligned, misaligned views, tails), register files of 8, 16
and 32 slots, and the special values (NaN, infinities, halves, float16 ties). See kernel_harness.py."""

from __future__ import annotations

import numpy as np
import pytest
from kernel_harness import In, check_case, compare, fp16_case, gpu_marks, node_case, rand, run_plan

from ep_trtpy.builder.lowering import lower
from ep_trtpy.ops import pointwise_program as pp
from graph_partitioner.ir import BOOL, FLOAT, FLOAT16, INT32, INT64, Graph, elem_type, np_dtype

pytestmark = gpu_marks

# Ops whose float32 result is correctly rounded on both sides (IEEE +,-,*,/,sqrt, exact ops): compared bitwise.
EXACT = {"mov", "const", "neg", "abs", "relu", "floor", "ceil", "round", "sign", "isnan", "isinf", "not", "add",
         "sub", "mul", "div", "min", "max", "mod", "eq", "lt", "gt", "le", "ge", "and", "or", "xor", "prelu", "where",
         "leaky_relu", "thresholded_relu", "clip", "cast", "sqrt", "reciprocal", "softsign"}
POSITIVE = {"log", "sqrt", "pow", "reciprocal"}
IMMS = {"mod": [1.0], "cast": [float(FLOAT16)], "clip": [-1.25, 2.5], "hard_sigmoid": [0.2, 0.5],
        "selu": [1.6732632, 1.0507009], "leaky_relu": [0.1], "elu": [0.9], "celu": [1.3], "thresholded_relu": [0.4]}


def program_graph(program: pp.Program, inputs: list[np.ndarray], name: str = "pw") -> Graph:
    """One ep_trtpy::Pointwise node over graph inputs."""
    out_shape = np.broadcast_shapes(*[a.shape for a in inputs])
    g = Graph("pw", {"": 17})
    ins = []
    for k, a in enumerate(inputs):
        v = g.add_value(f"x{k}", elem_type(a.dtype), a.shape)
        g.inputs.append(v)
        ins.append(v)
    outs = [g.add_value(f"y{k}", t, out_shape) for k, (_, t) in enumerate(program.outputs)]
    g.add_node("Pointwise", ins, outs, attrs={"program": program.to_json()}, domain="ep_trtpy", name=name)
    g.outputs = outs
    return g


def check_program(program: pp.Program, inputs: list[np.ndarray], rtol: float = 0.0, atol: float = 0.0,
                  exact: bool = True, nreg: int | None = None) -> None:
    plan, weights = lower(program_graph(program, inputs))
    assert [lay.kernel for lay in plan.layers] == ["pointwise"]
    if nreg is not None:
        assert plan.layers[0].ints[1] == nreg, plan.layers[0].ints[:4]
    got = run_plan(plan, weights, inputs)
    want = pp.run(program, inputs)
    for k, (g, w) in enumerate(zip(got, want)):
        compare(g, w, rtol, atol, f"program {program.to_json()} output {k}", plan, exact=exact)


def op_inputs(name: str, dtype: type, shape: tuple[int, ...] = (5, 37)) -> list[np.ndarray]:
    n_src = max(pp.OPS[name][0], 1)
    low, high = (0.1, 4.0) if name in POSITIVE else (-4.0, 4.0)
    xs = [rand(shape, dtype, 11 + k, low=low, high=high) for k in range(n_src)]
    if name == "pow":
        xs[1] = rand(shape, dtype, 99, low=-2.0, high=2.0)
    if name == "where":
        xs[0] = rand(shape, np.bool_, 5)
    return xs


def single(name: str, compute: str, out_t: int) -> pp.Program:
    n_src, n_imm = pp.OPS[name]
    if name == "const":
        return pp.Program(1, compute, [["const", 1, 2.75], ["mul", 2, 0, 1]], [(2, out_t)])
    imm = IMMS.get(name, [0.5] * n_imm)
    if compute == "int64" and name == "clip":
        imm = [-2.0, 3.0]
    return pp.Program(n_src, compute, [[name, n_src, *range(n_src), *imm]], [(n_src, out_t)])


@pytest.mark.parametrize("io", [np.float32, np.float16])
@pytest.mark.parametrize("name", sorted(pp.OPS))
def test_every_opcode_float_compute(name: str, io: type) -> None:
    out_t = elem_type(io)
    program = single(name, "float", out_t)
    exact = name in EXACT
    if io == np.float16:
        check_program(program, op_inputs(name, io), rtol=0 if exact else 2e-3, atol=0 if exact else 1e-3,
                      exact=exact)
    else:
        check_program(program, op_inputs(name, io), rtol=0 if exact else 2e-6, atol=0 if exact else 2e-6,
                      exact=exact)


@pytest.mark.parametrize("io", [np.int64, np.int32])
@pytest.mark.parametrize("name", sorted(pp.INT_OPS))
def test_every_opcode_int64_compute(name: str, io: type) -> None:
    xs = op_inputs(name, io) if name != "pow" else [rand((5, 37), io, 1, -5, 6), rand((5, 37), io, 2, 0, 4)]
    if name == "where":
        xs[0] = rand((5, 37), np.bool_, 5)
    check_program(single(name, "int64", elem_type(io)), xs)


@pytest.mark.parametrize("compute", ["float", "int64"])
@pytest.mark.parametrize("out_t", [FLOAT, FLOAT16, INT32, INT64, BOOL])
@pytest.mark.parametrize("in_t", [FLOAT, FLOAT16, INT32, INT64, BOOL])
def test_io_dtype_conversions(in_t: int, out_t: int, compute: str) -> None:
    """Load (to the compute type) and store (rounding to nearest even for float16, truncation for ints, != 0
    for bool) conversions, through mov and add, with fractional and negative values."""
    dt = np_dtype(in_t)
    if dt.kind == "f":
        a = np.array([-2.75, -1.5, -0.5, -0.0, 0.25, 0.5, 1.5, 2.5, 100.7, -33000.2, 65504.0, 7.0], dt).reshape(3, 4)
    elif dt.kind == "b":
        a = np.array([True, False, True, True, False, False, True, False, True, True, False, True]).reshape(3, 4)
    else:
        a = np.array([-7, -1, 0, 1, 2, 3, 100, -100, 30000, -30000, 16777217, 5], dt).reshape(3, 4)
    b = rand((4,), dt, 3, low=-3, high=3)
    program = pp.Program(2, compute, [["add", 2, 0, 1]], [(0, out_t), (2, out_t)])
    check_program(program, [a, b])


@pytest.mark.parametrize("shapes", [
    [(2, 3, 4), (3, 1), ()],
    [(1,), (5, 1, 7)],
    [(2, 1, 4, 1), (1, 3, 1, 5)],
    [(0, 3), (3,)],
    [(), ()],
    [(2, 1, 2, 1, 2, 1, 2, 3), (1, 2, 1, 2, 1, 2, 1, 3)],
    [(7, 1, 9), (7, 5, 9), (1, 5, 1)],
    [(1000, 3), (1000, 1)],
])
def test_broadcasting(shapes: list[tuple[int, ...]]) -> None:
    code = [["mul", 9, 0, 1]] + [["add", 9, 9, k] for k in range(2, len(shapes))] + [["sub", 10, 9, 0]]
    program = pp.Program(len(shapes), "float", code, [(9, FLOAT), (10, FLOAT16), (1, INT32)])
    check_program(program, [rand(s, np.float32, k) for k, s in enumerate(shapes)])


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 63, 64, 65, 1023, 4097, 1 << 20])
@pytest.mark.parametrize("io", [np.float32, np.float16])
def test_vector_path_lengths(n: int, io: type) -> None:
    """Same-shape and scalar inputs collapse to 1-D: the vectorized path, with every tail length."""
    program = pp.Program(3, "float", [["mul", 3, 0, 1], ["add", 4, 3, 2], ["relu", 5, 4]],
                         [(5, elem_type(io)), (4, BOOL)])
    check_program(program, [rand((n,), io, 1), rand((n,), io, 2), rand((), io, 3)], rtol=1e-3, atol=1e-3,
                  exact=False)


@pytest.mark.parametrize("offset", [1, 2, 4])
def test_misaligned_views(offset: int) -> None:
    """A Slice view starting `offset` floats into its input feeds a pointwise node: a pointer that is not
    16-byte aligned must take the scalar path (offset 4 is aligned again)."""
    x = rand((4 * 64 + 8,), np.float32, 7)
    g = Graph("mis", {"": 17})
    xv = g.add_value("x", FLOAT, x.shape)
    g.inputs.append(xv)
    s = g.add_value("s", FLOAT, (4 * 64,))
    g.add_node("Slice", [xv, g.add_constant(np.array([offset], np.int64)),
                         g.add_constant(np.array([offset + 4 * 64], np.int64))], [s], name="slice")
    y = g.add_value("y", FLOAT, (4 * 64,))
    g.add_node("Sigmoid", [s], [y], name="sig")
    g.outputs = [y]
    plan, weights = lower(g)
    assert [lay.kernel for lay in plan.layers] == ["pointwise"]  # the slice is a view
    got = run_plan(plan, weights, [x])[0]
    want = pp.run(pp.Program(1, "float", [["sigmoid", 1, 0]], [(1, FLOAT)]), [x[offset:offset + 256]])[0]
    compare(got, want, 2e-6, 2e-6, "sigmoid of a view", plan)


@pytest.mark.parametrize("width,nreg", [(3, 8), (7, 16), (15, 32)])
@pytest.mark.parametrize("compute", ["float", "int64"])
def test_register_file_sizes(width: int, nreg: int, compute: str) -> None:
    """Products of neighbours all kept live, then summed: 2*width+1 live values select the register file."""
    n = width + 1
    code = [["mul", n + k, k, k + 1] for k in range(width)]
    acc = n + width
    code.append(["mov", acc, n])
    for k in range(1, width):
        code.append(["add", acc, acc, n + k])
    code.append(["add", acc, acc, 0])
    out_t = FLOAT if compute == "float" else INT64
    program = pp.Program(n, compute, code, [(acc, out_t)] + [(n + k, out_t) for k in range(min(width, 7))])
    dt = np.float32 if compute == "float" else np.int64
    check_program(program, [rand((3, 33), dt, k, -3, 3) for k in range(n)], rtol=1e-6, atol=1e-6,
                  exact=compute != "float", nreg=nreg)


def test_special_values_float() -> None:
    """NaN propagation (numpy's min/max), infinities, signed zeros, round-half-to-even, float16 ties on store."""
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 0.5, 1.5, 2.5, -0.5, -2.5, 1e-45, 3.4e38, 1e6, -7.25,
                         1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, 65519.0, 65520.0], np.float32)
    a = specials.reshape(-1, 1)
    b = np.array([np.nan, 1.0, -0.0, 2.0], np.float32).reshape(1, -1)
    for name in ("min", "max", "add", "mul", "div", "eq", "lt", "mod"):
        program = pp.Program(2, "float", [[name, 2, 0, 1] + ([1.0] if name == "mod" else [])],
                             [(2, FLOAT), (2, FLOAT16), (2, BOOL)])
        check_program(program, [a, b])
    for name in ("relu", "round", "floor", "sign", "isnan", "isinf", "not", "neg", "abs", "sqrt", "exp", "log",
                 "softplus", "hard_swish", "sigmoid", "tanh", "sin", "cos", "erf"):
        program = pp.Program(1, "float", [[name, 1, 0]], [(1, FLOAT), (1, FLOAT16), (1, BOOL)])
        check_program(program, [specials], rtol=2e-6, atol=1e-6, exact=name in EXACT)
    program = pp.Program(1, "float", [["clip", 1, 0, -1.0, 1.0], ["hard_sigmoid", 2, 0, 0.2, 0.5]],
                         [(1, FLOAT), (2, FLOAT)])
    check_program(program, [specials], rtol=1e-6, atol=1e-7, exact=False)
    program = pp.Program(1, "float", [["cast", 1, 0, float(FLOAT16)], ["cast", 2, 0, float(BOOL)]],
                         [(1, FLOAT), (2, FLOAT)])
    check_program(program, [specials])


def test_special_values_int64() -> None:
    """Division and modulo by zero give 0, as numpy does; C truncating division; Python-sign modulo; wrapping."""
    a = np.array([7, -7, 7, -7, 0, 5, np.iinfo(np.int64).max, np.iinfo(np.int64).min, 3], np.int64).reshape(-1, 1)
    b = np.array([2, -2, 0, 3, -1], np.int64).reshape(1, -1)
    for code in (["div", 2, 0, 1], ["mod", 2, 0, 1, 0.0], ["mod", 2, 0, 1, 1.0], ["add", 2, 0, 1], ["mul", 2, 0, 1],
                 ["sub", 2, 0, 1], ["min", 2, 0, 1], ["max", 2, 0, 1]):
        if code[0] == "div" or code[0] == "mod":  # numpy's int64 min // -1 overflows differently: keep it out
            aa = a[a[:, 0] != np.iinfo(np.int64).min]
        else:
            aa = a
        check_program(pp.Program(2, "int64", [code], [(2, INT64), (2, INT32), (2, BOOL)]), [aa, b])
    big = 9.3e18
    check_program(pp.Program(1, "int64", [["clip", 1, 0, -big, big], ["const", 2, big], ["add", 3, 1, 2]],
                             [(1, INT64), (3, INT64)]), [a])


@pytest.mark.parametrize("op,attrs,n_in", [
    ("Add", {}, 2), ("Sub", {}, 2), ("Mul", {}, 2), ("Div", {}, 2), ("Pow", {}, 2), ("Max", {}, 3),
    ("Min", {}, 2), ("Sum", {}, 3), ("Mean", {}, 3), ("Relu", {}, 1), ("Sigmoid", {}, 1), ("Tanh", {}, 1),
    ("Exp", {}, 1), ("Log", {}, 1), ("Sqrt", {}, 1), ("Reciprocal", {}, 1), ("Abs", {}, 1), ("Neg", {}, 1),
    ("Floor", {}, 1), ("Ceil", {}, 1), ("Round", {}, 1), ("Sign", {}, 1), ("Softsign", {}, 1),
    ("Softplus", {}, 1), ("HardSwish", {}, 1), ("Erf", {}, 1), ("Sin", {}, 1), ("Cos", {}, 1),
    ("LeakyRelu", {"alpha": 0.3}, 1), ("Elu", {"alpha": 0.7}, 1), ("Selu", {}, 1), ("Celu", {"alpha": 1.3}, 1),
    ("ThresholdedRelu", {"alpha": 0.5}, 1), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, 1),
    ("Gelu", {}, 1), ("Gelu", {"approximate": "tanh"}, 1), ("PRelu", {}, 2), ("Mod", {"fmod": 1}, 2),
    ("IsNaN", {}, 1), ("IsInf", {}, 1), ("IsInf", {"detect_negative": 0}, 1),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_onnx_float_nodes_vs_ort(op: str, attrs: dict, n_in: int, dtype: type) -> None:
    positive = op in ("Log", "Sqrt", "Reciprocal", "Pow")
    shapes = [(4, 33), (33,), (1, 33)][:n_in]
    xs = [rand(s, np.float32, k, low=0.2 if positive else -3, high=3) for k, s in enumerate(shapes)]
    if op in ("IsNaN", "IsInf"):
        xs[0].reshape(-1)[::5] = np.inf
        xs[0].reshape(-1)[1::5] = -np.inf
        xs[0].reshape(-1)[2::5] = np.nan
    inputs = [In(f"x{k}", x) for k, x in enumerate(xs)]
    opset = 20 if op == "Gelu" else 18
    if dtype == np.float16:
        check_case(fp16_case(op, inputs, attrs, opset=opset), rtol=3e-3, atol=2e-3, kernels=["pointwise"])
    else:
        check_case(node_case(op, inputs, attrs, opset=opset), rtol=3e-6, atol=3e-6, kernels=["pointwise"])


@pytest.mark.parametrize("op,attrs", [("Add", {}), ("Sub", {}), ("Mul", {}), ("Div", {}), ("Max", {}),
                                      ("Min", {}), ("Neg", {}), ("Abs", {}), ("Mod", {"fmod": 0}),
                                      ("Mod", {"fmod": 1}), ("Equal", {}), ("Less", {}), ("Greater", {}),
                                      ("LessOrEqual", {}), ("GreaterOrEqual", {}), ("Sign", {}), ("Relu", {})])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_onnx_int_nodes_vs_ort(op: str, attrs: dict, dtype: type) -> None:
    unary = op in ("Neg", "Abs", "Sign", "Relu")
    ins = [In("a", rand((3, 17), dtype, 1, -50, 50))] + ([] if unary else [In("b", rand((17,), dtype, 2, -9, 9))])
    check_case(node_case(op, ins, attrs), exact=True, kernels=["pointwise"])


@pytest.mark.parametrize("op", ["And", "Or", "Xor", "Not"])
def test_onnx_bool_nodes_vs_ort(op: str) -> None:
    ins = [In("a", rand((5, 9), np.bool_, 1))] + ([] if op == "Not" else [In("b", rand((9,), np.bool_, 2))])
    check_case(node_case(op, ins), exact=True, kernels=["pointwise"])


@pytest.mark.parametrize("to", [FLOAT, FLOAT16, INT32, INT64, BOOL])
@pytest.mark.parametrize("src", [np.float32, np.float16, np.int32, np.int64, np.bool_])
def test_cast_vs_ort(src: type, to: int) -> None:
    x = rand((6, 11), src, 4, low=-300, high=300)
    if np.dtype(src).kind == "f":
        x = (x + np.float32(0.37)).astype(src)
    check_case(node_case("Cast", [In("x", x)], {"to": to}), exact=True, kernels=["pointwise"])


@pytest.mark.parametrize("src, to", [(np.float32, FLOAT16), (np.float16, FLOAT), (np.float16, FLOAT16)])
@pytest.mark.parametrize("shape", [(3, 1000, 37), (8, 16), (5,)])
def test_cast_conversion_copy_vs_ort(src: type, to: int, shape: tuple) -> None:
    # an engine-boundary Cast runs as a 16-byte conversion copy (with a scalar tail), not through the interpreter
    x = (rand(shape, np.float32, 6, low=-70000, high=70000) * np.float32(1.37)).astype(src)
    check_case(node_case("Cast", [In("x", x)], {"to": to}), exact=True, kernels=["pointwise"])


def test_where_clip_vs_ort() -> None:
    c = rand((2, 3, 8), np.bool_, 1)
    a, b = rand((3, 8), np.float32, 2), rand((2, 1, 8), np.float32, 3)
    check_case(node_case("Where", [In("c", c), In("a", a), In("b", b)]), exact=True, kernels=["pointwise"])
    x = rand((4, 9), np.float32, 4)
    check_case(node_case("Clip", [In("x", x), In("lo", np.array(-0.5, np.float32)), In("hi", np.array(1.0,
                                                                                                      np.float32))]),
               exact=True, kernels=["pointwise"])
    check_case(node_case("Clip", [In("x", x), In("lo", np.array(-0.5, np.float32), const=True), None]), exact=True,
               kernels=["pointwise"])


@pytest.mark.parametrize("const_stats", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_batchnorm_vs_ort(const_stats: bool, dtype: type) -> None:
    x = rand((2, 3, 5, 7), np.float32, 1)
    stats = [rand((3,), np.float32, 2), rand((3,), np.float32, 3), rand((3,), np.float32, 4),
             rand((3,), np.float32, 5, low=0.5, high=2.0)]
    ins = [In("x", x)] + [In(n, s, const=const_stats) for n, s in zip(("scale", "b", "mean", "var"), stats)]
    if dtype == np.float16:
        check_case(fp16_case("BatchNormalization", ins, {"epsilon": 1e-3}, opset=15), rtol=3e-3, atol=3e-3,
                   kernels=["pointwise"])
    else:
        check_case(node_case("BatchNormalization", ins, {"epsilon": 1e-3}, opset=15), rtol=1e-5, atol=1e-5,
                   kernels=["pointwise"])
