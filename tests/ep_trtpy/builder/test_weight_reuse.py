"""Weight reuse across the builds of one program (ep_trtpy/builder/weight_reuse.py): the memo of weight transforms
that the passes consult, and lowering against the weights of the program's first engine."""

from __future__ import annotations

import gc
import threading
import weakref

import numpy as np
import pytest

from ep_trtpy.builder.weight_reuse import SMALL_BYTES, ConstMemo, WeightBase, assemble, operand
from ep_trtpy.engine.plan import Plan, TensorSpec
from graph_partitioner.ir import FLOAT, FLOAT16


def test_same_key_gives_the_same_object_computed_once_and_read_only():
    memo, calls = ConstMemo(), []
    a = np.arange(6, dtype=np.float32)

    def cast(dtype):
        calls.append(dtype)
        return a.astype(dtype)

    first = memo.get(("cast", a, "float16"), lambda: cast(np.float16))
    again = memo.get(("cast", a, "float16"), lambda: cast(np.float16))
    other = memo.get(("cast", a, "float64"), lambda: cast(np.float64))
    assert first is again and other is not first and len(calls) == 2
    assert not first.flags.writeable
    equal_copy = np.arange(6, dtype=np.float32)  # same bytes, another object: identity keys do not match it
    assert memo.get(("cast", equal_copy, "float16"), lambda: cast(np.float16)) is not first
    assert (memo.hits, memo.misses, len(memo)) == (1, 3, 3)


def test_the_memo_keeps_the_arrays_of_its_keys_alive():
    memo = ConstMemo()
    a = np.ones(4, np.float32)
    ref = weakref.ref(a)
    memo.get(("cast", a), lambda: np.zeros(4, np.float16))
    key_id = id(a)
    del a
    gc.collect()
    assert ref() is not None and id(ref()) == key_id  # an id in a key is never another array's


def test_small_operands_are_keyed_by_content_large_ones_by_identity():
    small = np.arange(4, dtype=np.int64)
    assert operand(small) == operand(small.copy())
    big = np.zeros(SMALL_BYTES // 4 + 1, np.float32)
    assert operand(big) is big
    memo = ConstMemo()
    first = memo.intern(np.array([1.5, 2.5], np.float32))
    assert memo.intern(np.array([1.5, 2.5], np.float32)) is first
    assert memo.intern(np.array([1.5, 2.5], np.float16)) is not first


def test_unhashable_keys_are_computed_without_memo():
    memo = ConstMemo()
    out = [memo.get(("f", {"a": set()}), lambda: np.zeros(1)) for _ in range(2)]
    assert out[0] is not out[1] and len(memo) == 0


def test_threads_asking_for_one_key_get_one_object():
    memo, results = ConstMemo(), []
    a = np.ones(1000, np.float32)
    barrier = threading.Barrier(8)

    def work():
        barrier.wait()
        results.append(memo.get(("cast", a), lambda: a.astype(np.float16)))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and all(r is results[0] for r in results) and len(memo) == 1


# --------------------------------------------------------------------------------------------- the base --

def _base_of(arrays: dict[str, np.ndarray]) -> tuple[Plan, bytearray]:
    plan, blob = Plan(), bytearray()
    for k, (name, arr) in enumerate(arrays.items()):
        blob += bytes((-len(blob)) % 256)
        plan.tensors.append(TensorSpec(k, name, FLOAT16 if arr.dtype == np.float16 else FLOAT, arr.shape, "weight",
                                       offset=len(blob), nbytes=arr.nbytes))
        blob += arr.tobytes()
    plan.weights_bytes = len(blob)
    return plan, blob


def test_find_by_identity_then_content_preferring_the_same_name():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 4)).astype(np.float32)
    dup = np.ones(16, np.float32)
    plan, blob = _base_of({"w": w, "a": dup, "b": dup})
    offsets = {t.name: t.offset for t in plan.tensors}
    base = WeightBase(plan, blob, {(id(w), FLOAT): (w, offsets["w"])})
    assert base.shared_bytes == len(blob) + (-len(blob)) % 256 and base.shared_bytes % 256 == 0
    assert base.find(w, FLOAT, "anything") == offsets["w"]
    assert base.find(w.copy(), FLOAT, "w") == offsets["w"]  # by content
    assert base.find(np.ones(16, np.float32), FLOAT, "b") == offsets["b"]
    assert base.find(np.ones(16, np.float32), FLOAT, "a") == offsets["a"]
    assert base.find(w + 1, FLOAT, "w") is None
    assert base.find(w.astype(np.float16), FLOAT16, "w") is None  # no float16 weight of that size
    assert base.find(np.ones(16, np.float64).astype(np.float32), FLOAT, "x") in (offsets["a"], offsets["b"])


def test_assemble_pads_the_base_and_refuses_a_plan_of_another_base():
    plan, blob = _base_of({"w": np.ones(3, np.float32)})
    base = WeightBase(plan, blob)
    shared = Plan(shared_weights_bytes=base.shared_bytes)
    full = assemble(shared, b"tail", base)
    assert full[:len(blob)] == blob and full[base.shared_bytes:] == b"tail"
    assert not any(full[len(blob):base.shared_bytes])
    with pytest.raises(ValueError, match="shares 512 weight bytes"):
        assemble(Plan(shared_weights_bytes=512), b"", base)
    with pytest.raises(ValueError, match="must be an ordinary engine"):
        WeightBase(shared, b"")


def test_plan_round_trips_shared_weights_bytes_and_reads_old_dicts():
    p = Plan(weights_bytes=7, shared_weights_bytes=512)
    assert Plan.from_dict(p.to_dict()).shared_weights_bytes == 512
    old = p.to_dict()
    del old["shared_weights_bytes"]
    assert Plan.from_dict(old).shared_weights_bytes == 0
