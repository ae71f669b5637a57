"""merge_duplicates: equal expressions are computed once; what must stay distinct stays distinct."""

import numpy as np

from builder_testutil import GB, apply, check_same, feeds_for, ops
from graph_partitioner.ir import BOOL


def test_per_layer_mask_wheres_with_equal_constants_merge():
    """HuggingFace's spelling: every layer turns the same boolean mask into an additive one with its own scalars."""
    gb = GB()
    x = gb.input("x", (2, 4))
    m = gb.input("m", (2, 4), BOOL)
    outs = []
    for layer in range(3):
        zero = gb.const(np.array(0.0, np.float32), f"zero{layer}")
        low = gb.const(np.array(-3.0e38, np.float32), f"low{layer}")
        bias = gb.op("Where", [m, zero, low])
        scale = gb.const(np.float32(layer + 1.0), f"scale{layer}")
        outs.append(gb.op("Mul", [gb.op("Add", [x, bias]), scale]))
    g = gb.output(*outs)
    before = g.copy()
    ctx = apply(g, ["merge_duplicates", "eliminate_dead_nodes"])
    assert ops(g).count("Where") == 1
    assert ops(g).count("Add") == 1  # the Adds read the same x and (now) the same Where: one is left
    assert ops(g).count("Mul") == 3  # each layer's own scale
    where = next(n for n in g.nodes if n.op_type == "Where")
    assert len(ctx.origin(where.name)) == 3
    apply(before, [])
    check_same(before, g, feeds_for(before))


def test_different_constants_attributes_or_inputs_stay_apart():
    gb = GB()
    x = gb.input("x", (3, 4))
    y = gb.input("y", (3, 4))
    a = gb.op("Add", [x, gb.const(np.float32(1.0), "one")])
    b = gb.op("Add", [x, gb.const(np.float32(2.0), "two")])
    c = gb.op("Add", [x, gb.const(np.float16(1.0), "one_h")])  # same number, other dtype: not equal
    d = gb.op("Softmax", [x], {"axis": 0})
    e = gb.op("Softmax", [x], {"axis": 1})
    f = gb.op("Relu", [x])
    h = gb.op("Relu", [y])
    g = gb.output(a, b, c, d, e, f, h)
    apply(g, ["merge_duplicates", "eliminate_dead_nodes"])
    assert sorted(ops(g)) == sorted(["Add", "Add", "Add", "Softmax", "Softmax", "Relu", "Relu"])


def test_chains_merge_in_one_run():
    gb = GB()
    x = gb.input("x", (5,))
    tails = []
    for _ in range(2):
        s = gb.op("Sigmoid", [x])
        t = gb.op("Mul", [x, s])
        tails.append(gb.op("Neg", [t]))
    g = gb.output(gb.op("Sub", tails))
    before = g.copy()
    apply(g, ["merge_duplicates", "eliminate_dead_nodes"])
    assert ops(g) == ["Sigmoid", "Mul", "Neg", "Sub"]
    sub = g.nodes[-1]
    assert sub.inputs[0] is sub.inputs[1]
    apply(before, [])
    check_same(before, g, feeds_for(before))


def test_random_transpose_and_graph_outputs_are_kept():
    gb = GB()
    x = gb.input("x", (2, 3))
    t1 = gb.op("Transpose", [x], {"perm": [1, 0]})
    t2 = gb.op("Transpose", [x], {"perm": [1, 0]})
    r1 = gb.op("Dropout", [x])
    r2 = gb.op("Dropout", [x])
    o1 = gb.op("Relu", [x])
    o2 = gb.op("Relu", [x])
    g = gb.output(gb.op("MatMul", [t1, x]), gb.op("MatMul", [t2, x]), r1, r2, o1, o2)
    apply(g, ["merge_duplicates", "eliminate_dead_nodes"])
    assert ops(g).count("Transpose") == 2 and ops(g).count("Dropout") == 2
    assert ops(g).count("Relu") == 2 and g.outputs[4] is not g.outputs[5]
    # the two MatMuls read different Transposes, so they are not duplicates either
    assert ops(g).count("MatMul") == 2


def test_large_constants_compare_by_identity_only():
    gb = GB()
    x = gb.input("x", (1, 200))
    w = np.ones((200, 200), np.float32)  # 160 kB: beyond the content comparison
    a = gb.op("MatMul", [x, gb.const(w, "w1")])
    b = gb.op("MatMul", [x, gb.const(w.copy(), "w2")])
    shared = gb.const(w, "w3")
    c = gb.op("MatMul", [x, shared])
    d = gb.op("MatMul", [x, shared])
    g = gb.output(gb.op("Add", [a, b]), gb.op("Add", [c, d]))
    apply(g, ["merge_duplicates", "eliminate_dead_nodes"])
    assert ops(g).count("MatMul") == 3
