"""fold_constants: constant subgraphs are evaluated; big broadcasts stay nodes."""

import numpy as np

from builder_testutil import GB, apply, check_same, feeds_for, ops
from ep_trtpy.builder.pipeline import PassContext


def test_folds_constant_chain():
    gb = GB()
    x = gb.input("x", (4, 3))
    w = gb.const(np.arange(12, dtype=np.float32).reshape(3, 4), "w")
    wt = gb.op("Transpose", [w], {"perm": [1, 0]})
    w2 = gb.op("Mul", [wt, gb.const(2.0, "two")])
    y = gb.op("Add", [x, w2])
    g = gb.output(y)
    before = g.copy()
    apply(g, ["fold_constants"])
    assert ops(g) == ["Add"]
    folded = g.nodes[0].inputs[1]
    np.testing.assert_array_equal(folded.const, np.arange(12, dtype=np.float32).reshape(3, 4).T * 2)
    assert folded.const.dtype == np.float32
    apply(before, [])
    check_same(before, g, feeds_for(before))


def test_large_expand_stays_a_node():
    gb = GB()
    x = gb.input("x", (64, 64))
    big = gb.op("Expand", [gb.const(np.float32(1.5), "s"), gb.const(np.array([64, 64], np.int64), "shape")])
    y = gb.op("Add", [x, big])
    g = gb.output(y)
    before = g.copy()
    ctx = PassContext(fold_limit=1000)
    apply(g, ["fold_constants"], ctx)
    assert ops(g) == ["Expand", "Add"]
    assert any("exceed the fold limit of 1000" in r and "Expand" in r for r in ctx.refusals)
    # with a larger limit it folds
    ctx2 = PassContext(fold_limit=1 << 20)
    g2 = before.copy()
    apply(g2, ["fold_constants"], ctx2)
    assert ops(g2) == ["Add"]
    apply(before, [])
    check_same(before, g, feeds_for(before))
    check_same(before, g2, feeds_for(before))


def test_big_transpose_of_a_weight_folds_under_a_small_limit():
    gb = GB()
    x = gb.input("x", (2, 50))
    w = gb.const(np.random.default_rng(0).standard_normal((40, 50)).astype(np.float32), "w")
    y = gb.op("MatMul", [x, gb.op("Transpose", [w], {"perm": [1, 0]})])
    g = gb.output(y)
    apply(g, ["fold_constants"], PassContext(fold_limit=100))
    assert ops(g) == ["MatMul"]  # 2000 elements > 100, but no bigger than the weight it comes from


def test_graph_output_can_become_constant():
    gb = GB()
    x = gb.input("x", (2,))
    c = gb.op("Add", [gb.const(np.ones(2, np.float32), "a"), gb.const(np.ones(2, np.float32), "b")])
    y = gb.op("Relu", [x])
    g = gb.output(y, c)
    before = g.copy()
    apply(g, ["fold_constants"])
    assert ops(g) == ["Relu"] and g.outputs[1].const is not None
    apply(before, [])
    check_same(before, g, feeds_for(before))


def test_with_a_memo_a_later_build_gets_the_same_folded_arrays():
    from ep_trtpy.builder.weight_reuse import SMALL_BYTES, ConstMemo

    gb = GB()
    x = gb.input("x", (64, 128))
    w = gb.const(np.arange(128 * 64, dtype=np.float32).reshape(64, 128), "w")  # above SMALL_BYTES: by identity
    y = gb.op("Add", [x, gb.op("Transpose", [gb.op("Transpose", [w], {"perm": [1, 0]})], {"perm": [1, 0]})])
    program = gb.output(y)
    assert w.const.nbytes > SMALL_BYTES
    memo = ConstMemo()
    plain, first, second = program.copy(), program.copy(), program.copy()
    apply(plain, ["fold_constants"])
    apply(first, ["fold_constants"], PassContext(memo=memo))
    apply(second, ["fold_constants"], PassContext(memo=memo))
    got = [g.nodes[0].inputs[1].const for g in (plain, first, second)]
    assert ops(first) == ops(plain) == ["Add"] and got[1] is got[2] and got[0] is not got[1]
    np.testing.assert_array_equal(got[0], got[1])
    assert memo.names() == {"fold"} and (memo.misses, memo.hits) == (2, 2)
