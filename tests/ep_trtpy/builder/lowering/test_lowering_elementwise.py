"""CPU tests of the pointwise lowering: the native encoding (opcode numbering shared with the CUDA code, register
allocation, lazy loads and early stores, dim collapsing) checked by executing the emitted layers with the numpy
emulator and comparing with pointwise_program.run (the semantics) and onnx's reference evaluator."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from kernel_emulator import execute
from lowering_testutil import In, ir_graph, node_case, rand

from ep_trtpy.builder.lowering import LoweringError, lower
from ep_trtpy.builder.lowering._util import broadcast_strides, collapse
from ep_trtpy.builder.lowering.elementwise import LOAD, STORE, encode_program
from ep_trtpy.ops import pointwise_program as pp
from graph_partitioner.ir import BOOL, FLOAT, FLOAT16, INT32, INT64, Graph, np_dtype

ROOT = Path(__file__).resolve().parents[4]


def test_native_opcode_table_is_generated_from_the_program_spec() -> None:
    """pointwise_ops.inc is what OPS and INT_OPS generate, and the C++ enum (pointwise.h) and arity table
    (kernels_pointwise.cpp) are built from it alone."""
    table = (ROOT / pp.NATIVE_OP_TABLE).read_text()
    assert table == pp.native_op_table(), (f"{pp.NATIVE_OP_TABLE} is stale; regenerate it with "
                                           f"python -m ep_trtpy.ops.pointwise_program --native > {pp.NATIVE_OP_TABLE}")
    rows = re.findall(r"^TP_PW_OP\(k(\w+), (\d), (true|false)\)$", table, re.M)
    assert [name.lower() for name, _, _ in rows] == [name.replace("_", "") for name in pp.OPCODES]
    for (_, nsrc, int_ok), name in zip(rows, pp.OPCODES):
        assert int(nsrc) == pp.OPS[name][0] and (int_ok == "true") == (name in pp.INT_OPS), name
    header = (ROOT / "cuda_kernels/kernels/pointwise.h").read_text()
    enum = header[header.index("enum Op"):header.index("kNumOps")]
    assert re.findall(r"\bk[A-Z]\w*", enum) == [] and '#include "pointwise_ops.inc"' in enum
    glue = (ROOT / "cuda_kernels/runtime/kernels_pointwise.cpp").read_text()
    arity = glue[glue.index("kOps[pw::kNumOps]"):]
    assert '#include "../kernels/pointwise_ops.inc"' in arity[:arity.index("};")]


def _single_op_program(name: str, compute: str, out_t: int) -> pp.Program:
    n_src, n_imm = pp.OPS[name]
    imms = {"mod": [0.0], "cast": [float(INT32)], "clip": [-1.0, 1.5], "hard_sigmoid": [0.2, 0.5],
            "selu": [1.6732, 1.0507]}.get(name, [0.7] * n_imm)
    if name == "const":
        return pp.Program(1, compute, [["const", 1, 2.5], ["add", 2, 0, 1]], [(2, out_t)])
    return pp.Program(max(n_src, 1), compute, [[name, n_src, *range(n_src), *imms]] if n_src else [],
                      [(n_src, out_t)])


def _program_inputs(program: pp.Program, shapes: list[tuple[int, ...]], dtypes: list, seed: int) -> list[np.ndarray]:
    return [rand(s, dt, seed + k, low=-4, high=4) for k, (s, dt) in enumerate(zip(shapes, dtypes))]


def _graph_for_program(program: pp.Program, inputs: list[np.ndarray], out_shape: tuple[int, ...]) -> Graph:
    from graph_partitioner.ir import elem_type

    g = Graph("pw", {"": 17})
    ins = []
    for k, a in enumerate(inputs):
        v = g.add_value(f"x{k}", elem_type(a.dtype), a.shape)
        g.inputs.append(v)
        ins.append(v)
    outs = [g.add_value(f"y{k}", t, out_shape) for k, (_, t) in enumerate(program.outputs)]
    g.add_node("Pointwise", ins, outs, attrs={"program": program.to_json()}, domain="ep_trtpy", name="pw")
    g.outputs = outs
    return g


def _check(program: pp.Program, inputs: list[np.ndarray]) -> None:
    out_shape = np.broadcast_shapes(*[a.shape for a in inputs])
    plan, weights = lower(_graph_for_program(program, inputs, out_shape))
    assert [lay.kernel for lay in plan.layers] == ["pointwise"]
    got = execute(plan, weights, inputs)
    want = pp.run(program, inputs)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


FLOAT_OPS = sorted(pp.OPS)
INT_OPS = sorted(pp.INT_OPS)


@pytest.mark.parametrize("name", FLOAT_OPS)
def test_every_opcode_float_compute(name: str) -> None:
    program = _single_op_program(name, "float", FLOAT)
    n = program.n_inputs
    inputs = _program_inputs(program, [(3, 5)] * n, [np.float32] * n, seed=hash(name) % 1000)
    if name == "where":
        inputs[0] = rand((3, 5), np.bool_, 7)
    _check(program, inputs)


@pytest.mark.parametrize("name", INT_OPS)
def test_every_opcode_int64_compute(name: str) -> None:
    program = _single_op_program(name, "int64", INT64)
    n = program.n_inputs
    _check(program, _program_inputs(program, [(4, 3)] * n, [np.int64] * n, seed=3))


@pytest.mark.parametrize("in_t", [FLOAT, FLOAT16, INT32, INT64, BOOL])
@pytest.mark.parametrize("out_t", [FLOAT, FLOAT16, INT32, INT64, BOOL])
@pytest.mark.parametrize("compute", ["float", "int64"])
def test_io_dtype_conversions(in_t: int, out_t: int, compute: str) -> None:
    program = pp.Program(2, compute, [["add", 2, 0, 1]], [(2, out_t), (0, out_t)])
    a = rand((2, 7), np_dtype(in_t), 1, low=-50, high=50)
    b = rand((7,), np_dtype(in_t), 2, low=-50, high=50)
    _check(program, [a, b])


def test_register_allocation_reuses_registers() -> None:
    """A chain of 40 instructions over 16 inputs needs few live registers (lazy loads, early frees)."""
    code = []
    acc = 0
    for k in range(1, 16):
        code.append(["add", 16 + k, acc, k])
        acc = 16 + k
    for k in range(25):
        code.append(["mul" if k % 2 else "sub", 31, acc, k % 2])
        acc = 31
    program = pp.Program(16, "float", code, [(acc, FLOAT), (3, FLOAT16)])
    enc = encode_program(program)
    assert enc.nreg == 8
    loads = [row for row in enc.code if row[0] == LOAD]
    stores = [row for row in enc.code if row[0] == STORE]
    assert len(loads) == 16 and len(stores) == 2
    inputs = [rand((5,), np.float32, k) for k in range(16)]
    _check(program, inputs)


def test_dead_code_and_overwritten_inputs() -> None:
    program = pp.Program(2, "float", [["exp", 5, 0], ["add", 0, 0, 1], ["neg", 1, 0], ["mul", 6, 1, 1]],
                         [(1, FLOAT), (0, FLOAT)])
    enc = encode_program(program)
    ops = [row[0] for row in enc.code]
    assert pp.OPCODES["exp"] not in ops and pp.OPCODES["mul"] not in ops  # dead
    _check(program, [rand((4,), np.float32, 1), rand((4,), np.float32, 2)])


def test_output_is_an_input() -> None:
    program = pp.Program(2, "float", [["add", 2, 0, 1]], [(1, FLOAT16), (2, FLOAT)])
    _check(program, [rand((3, 1), np.float32, 1), rand((1, 4), np.float32, 2)])


@pytest.mark.parametrize("shapes", [
    [(2, 3, 4), (3, 1), ()],
    [(1,), (5, 1, 7)],
    [(2, 1, 4, 1), (1, 3, 1, 5)],
    [(0, 3), (3,)],
    [(), ()],
    [(6, 1), (6, 1)],
])
def test_broadcasting(shapes: list[tuple[int, ...]]) -> None:
    program = pp.Program(len(shapes), "float", [["add", 9, 0, 1]] + [["mul", 9, 9, k] for k in range(2, len(shapes))],
                         [(9, FLOAT)])
    _check(program, [rand(s, np.float32, k) for k, s in enumerate(shapes)])


def test_collapse_merges_walkable_dims() -> None:
    out = (2, 3, 4, 5)
    s_full = broadcast_strides(out, out)
    s_bias = broadcast_strides((4, 5), out)
    dims, (a, b) = collapse(out, [s_full, s_bias])
    assert dims == [6, 20] and a == [20, 1] and b == [0, 1]
    dims, (a,) = collapse((1, 1, 7), [[0, 0, 1]])
    assert dims == [7] and a == [1]
    dims, (a,) = collapse((3, 0, 2), [[2, 2, 1]])
    assert dims == [0]


def test_same_shape_program_is_one_dimensional() -> None:
    program = pp.Program(2, "float", [["add", 2, 0, 1]], [(2, FLOAT)])
    g = _graph_for_program(program, [rand((4, 8, 16)), rand((4, 8, 16))], (4, 8, 16))
    plan, _ = lower(g)
    ints = plan.layers[0].ints
    assert ints[:5] == [0, 8, 1, 4, 512]  # float, nreg 8, ndim 1, 4 instructions (2 loads, add, store), 512
    assert ints[5:7] == [1, 1]


@pytest.mark.parametrize("op,attrs,n_in", [
    ("Add", {}, 2), ("Sub", {}, 2), ("Mul", {}, 2), ("Div", {}, 2), ("Pow", {}, 2), ("Max", {}, 3),
    ("Min", {}, 2), ("Sum", {}, 3), ("Mean", {}, 3), ("Relu", {}, 1), ("Sigmoid", {}, 1), ("Tanh", {}, 1),
    ("Exp", {}, 1), ("Abs", {}, 1), ("Neg", {}, 1), ("Floor", {}, 1), ("Ceil", {}, 1), ("Round", {}, 1),
    ("Sign", {}, 1), ("Softsign", {}, 1), ("Softplus", {}, 1), ("HardSwish", {}, 1), ("Erf", {}, 1),
    ("LeakyRelu", {"alpha": 0.3}, 1), ("Elu", {"alpha": 0.7}, 1), ("Selu", {}, 1), ("Celu", {"alpha": 1.3}, 1),
    ("ThresholdedRelu", {"alpha": 0.5}, 1), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, 1),
    ("Gelu", {}, 1), ("Gelu", {"approximate": "tanh"}, 1), ("PRelu", {}, 2),
    ("Mod", {"fmod": 1}, 2),
])
def test_onnx_elementwise_nodes(op: str, attrs: dict, n_in: int) -> None:
    """Plain ONNX nodes lower through program_for_node and match onnx's reference evaluator."""
    shapes = [(3, 4), (4,), (1, 4)][:n_in]
    inputs = [In(f"x{k}", rand(s, np.float32, k, low=0.2 if op == "Pow" and k == 0 else -3)) for k, s in
              enumerate(shapes)]
    case = node_case(op, inputs, attrs, opset=20 if op == "Gelu" else 18)
    plan, weights = lower(case.graph)
    got = execute(plan, weights, case.feeds)
    np.testing.assert_allclose(got[0], case.expected[0], rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("fmod", [0, 1])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_integer_mod(fmod: int, dtype: type) -> None:
    a, b = rand((4, 5), dtype, 1, low=-20, high=20), rand((5,), dtype, 2, low=-6, high=6)
    case = node_case("Mod", [In("a", a), In("b", b)], {"fmod": fmod})
    plan, weights = lower(case.graph)
    np.testing.assert_array_equal(execute(plan, weights, case.feeds)[0], case.expected[0])


@pytest.mark.parametrize("to", [FLOAT, FLOAT16, INT32, INT64, BOOL])
@pytest.mark.parametrize("src", [np.float32, np.float16, np.int32, np.int64, np.bool_])
def test_cast(src: type, to: int) -> None:
    x = rand((5, 3), src, 4, low=-20, high=20)
    case = node_case("Cast", [In("x", x)], {"to": to})
    plan, weights = lower(case.graph)
    got = execute(plan, weights, case.feeds)
    np.testing.assert_array_equal(got[0], case.expected[0])


def test_where_and_comparisons() -> None:
    c = rand((2, 3), np.bool_, 1)
    a, b = rand((2, 3), np.int64, 2), rand((3,), np.int64, 3)
    case = node_case("Where", [In("c", c), In("a", a), In("b", b)])
    plan, weights = lower(case.graph)
    np.testing.assert_array_equal(execute(plan, weights, case.feeds)[0], case.expected[0])
    for op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"):
        case = node_case(op, [In("a", a), In("b", b)])
        plan, weights = lower(case.graph)
        np.testing.assert_array_equal(execute(plan, weights, case.feeds)[0], case.expected[0])


def test_clip_constant_and_runtime_bounds() -> None:
    x = rand((4, 5), np.float32, 1)
    lo, hi = np.array(-1.0, np.float32), np.array(0.5, np.float32)
    case = node_case("Clip", [In("x", x), In("lo", lo, const=True), In("hi", hi, const=True)])
    plan, weights = lower(case.graph)
    assert len(plan.layers[0].inputs) == 1  # bounds are immediates
    np.testing.assert_array_equal(execute(plan, weights, case.feeds)[0], case.expected[0])
    case = node_case("Clip", [In("x", x), In("lo", lo), None])
    plan, weights = lower(case.graph)
    np.testing.assert_array_equal(execute(plan, weights, case.feeds)[0], case.expected[0])


@pytest.mark.parametrize("const_stats", [True, False])
def test_batchnorm(const_stats: bool) -> None:
    x = rand((2, 3, 4, 5), np.float32, 1)
    stats = [rand((3,), np.float32, 2), rand((3,), np.float32, 3), rand((3,), np.float32, 4),
             rand((3,), np.float32, 5, low=0.5, high=2.0)]
    ins = [In("x", x)] + [In(n, s, const=const_stats) for n, s in zip(("scale", "b", "mean", "var"), stats)]
    case = node_case("BatchNormalization", ins, {"epsilon": 1e-3}, opset=15)
    plan, weights = lower(case.graph)
    assert [lay.kernel for lay in plan.layers] == ["pointwise"]
    np.testing.assert_allclose(execute(plan, weights, case.feeds)[0], case.expected[0], rtol=1e-5, atol=1e-5)


def test_constant_inputs_fold() -> None:
    a = np.arange(6, dtype=np.int64).reshape(2, 3)
    b = np.array([2], dtype=np.int64)
    g = ir_graph("Mul", [In("a", a, const=True), In("b", b, const=True)], {}, [a * b], 17)
    plan, weights = lower(g)
    assert [lay.kernel for lay in plan.layers] == ["memcpy"]  # weight copied into the output slot
    assert execute(plan, weights, [])[0].tolist() == (a * b).tolist()


def test_program_errors_name_the_node() -> None:
    g = Graph("pw", {"": 17})
    x = g.add_value("x", FLOAT, (3,))
    g.inputs.append(x)
    y = g.add_value("y", FLOAT, (3,))
    g.add_node("Pointwise", [x], [y], attrs={"program": json.dumps({"compute": "float", "code": [["nope", 1, 0]],
                                                                     "outputs": [[1, 1]]})},
               domain="ep_trtpy", name="bad_pw")
    g.outputs = [y]
    with pytest.raises(LoweringError, match="bad_pw"):
        lower(g)


def test_too_many_inputs_is_a_lowering_error() -> None:
    g = Graph("sum", {"": 17})
    xs = []
    for k in range(17):
        v = g.add_value(f"x{k}", FLOAT, (2,))
        g.inputs.append(v)
        xs.append(v)
    y = g.add_value("y", FLOAT, (2,))
    g.add_node("Sum", xs, [y], name="big_sum")
    g.outputs = [y]
    with pytest.raises(LoweringError, match="big_sum"):
        lower(g)
