"""GPU tests of the "attention" kernel from hand-written layers (direct_plan.py) against a float64 numpy
reference: Q, K, V as views of one packed QKV tensor or separate tensors, masks broadcast in every way an exporter
makes them, float16 / bfloat16 (cuDNN flash attention, and the "unfused" and "packed" GEMM tactics by name) and
float32 (both GEMM tactics, timed against each other). The packed tactic's own cases: the operands it reaches in
place (Sq == 1, B == 1), head widths that narrow its copy's vectors, TF32, and the tuner's choice between the two."""

from __future__ import annotations

import math

import numpy as np
import pytest

from direct_plan import Input, View, run_layer
from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT16, np_dtype
from lib_kernel_helpers import GPU_SKIP_REASON, gpu_available

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason=GPU_SKIP_REASON)]

TOL = {FLOAT16: 2e-2, BFLOAT16: 6e-2, FLOAT: 1e-4}


def reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, m: np.ndarray | None, scale: float) -> np.ndarray:
    """q [B, Sq, H, D], k [B, Skv, H, D], v [B, Skv, H, Dv], m broadcastable to [B, H, Sq, Skv] -> [B, Sq, H*Dv]."""
    s = np.einsum("bihd,bjhd->bhij", q.astype(np.float64), k.astype(np.float64)) * scale
    if m is not None:
        s = s + m.astype(np.float64)
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    o = np.einsum("bhij,bjhd->bihd", p, v.astype(np.float64))
    return o.reshape(o.shape[0], o.shape[1], -1)


def _mask(rng: np.random.Generator, kind: str, b: int, h: int, sq: int, skv: int, dtype) -> tuple:
    """(array or None, strides (m_sb, m_sh, m_sq, m_sk), broadcast view for the reference)."""
    if kind == "none":
        return None, (0, 0, 0, 0), None
    if kind == "b11s":  # HF padding mask: (1 - mask) * min, per batch row
        keep = np.ones((b, skv))
        keep[-1, skv // 2:] = 0
        m = ((1 - keep) * -10000.0).astype(dtype).reshape(b, 1, 1, skv)
        return m, (skv, 0, 0, 1), m
    if kind == "b1ss":
        m = rng.uniform(-3, 0, (b, 1, sq, skv)).astype(dtype)
        return m, (sq * skv, 0, skv, 1), m
    if kind == "11ss":
        m = rng.uniform(-3, 0, (1, 1, sq, skv)).astype(dtype)
        return m, (0, 0, skv, 1), m
    if kind == "bhss":
        m = rng.uniform(-3, 0, (b, h, sq, skv)).astype(dtype)
        return m, (h * sq * skv, sq * skv, skv, 1), m
    raise AssertionError(kind)


@pytest.mark.parametrize("tactic", ["", "unfused", "packed"], ids=["auto", "unfused", "packed"])
@pytest.mark.parametrize("dtype", [FLOAT16, BFLOAT16, FLOAT], ids=["fp16", "bf16", "fp32"])
@pytest.mark.parametrize("mask_kind", ["none", "b11s", "b1ss", "11ss", "bhss"])
@pytest.mark.parametrize("b, h, s, d", [(2, 4, 64, 64), (3, 2, 77, 32)])
def test_attention_packed_qkv(b: int, h: int, s: int, d: int, mask_kind: str, dtype: int, tactic: str) -> None:
    rng = np.random.default_rng(b * 100 + s)
    npd = np_dtype(dtype)
    qkv = rng.uniform(-1, 1, (b, s, 3, h, d)).astype(npd)
    m, (msb, msh, msq, msk), mref = _mask(rng, mask_kind, b, h, s, s, npd if dtype != FLOAT else np.float32)
    es = npd.itemsize
    n = qkv.size
    specs = [Input(qkv.reshape(b, s, 3 * h * d)), View(0, 0, (n,)), View(0, h * d * es, (n - h * d,)),
             View(0, 2 * h * d * es, (n - 2 * h * d,)), Input(m) if m is not None else None]
    scale = 1 / math.sqrt(d)
    ints = [b, h, s, s, d, d, 3 * h * d, 3 * h * d, 3 * h * d, msb, msh, msq, msk]
    (o,), eng = run_layer("attention", specs, [(dtype, (b, s, h * d))], ints, [scale], tactic_name=tactic)
    ref = reference(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], mref, scale)
    err = float(np.max(np.abs(o.astype(np.float64) - ref)))
    assert err <= TOL[dtype], f"max |err| {err:.3g} (tactic {eng.tactic_names()[0]})"
    if tactic:
        assert eng.tactic_names()[0] == tactic


@pytest.mark.parametrize("tactic", ["", "unfused", "packed"], ids=["auto", "unfused", "packed"])
@pytest.mark.parametrize("dtype", [FLOAT16, FLOAT], ids=["fp16", "fp32"])
def test_attention_separate_inputs_cross(dtype: int, tactic: str) -> None:
    """Sq != Skv, Dv != D, separate Q/K/V tensors with their own row strides, a float32 mask in a 16-bit run."""
    rng = np.random.default_rng(5)
    npd = np_dtype(dtype)
    b, h, sq, skv, d, dv = 2, 3, 16, 40, 32, 64
    q = rng.uniform(-1, 1, (b, sq, h, d)).astype(npd)
    k = rng.uniform(-1, 1, (b, skv, h, d)).astype(npd)
    v = rng.uniform(-1, 1, (b, skv, h, dv)).astype(npd)
    m = rng.uniform(-2, 0, (b, 1, 1, skv)).astype(np.float32)
    ints = [b, h, sq, skv, d, dv, h * d, h * d, h * dv, skv, 0, 0, 1]
    (o,), eng = run_layer("attention", [Input(q), Input(k), Input(v), Input(m)], [(dtype, (b, sq, h * dv))], ints,
                          [0.2], tactic_name=tactic)
    ref = reference(q, k, v, m, 0.2)
    err = float(np.max(np.abs(o.astype(np.float64) - ref)))
    assert err <= TOL[dtype], f"max |err| {err:.3g} (tactic {eng.tactic_names()[0]})"
    if tactic:
        assert eng.tactic_names()[0] == tactic


def test_attention_refuses_short_tensors() -> None:
    q = np.zeros((1, 4, 8), np.float16)
    with pytest.raises(RuntimeError, match="smaller than its strides reach"):
        run_layer("attention", [Input(q), Input(q), Input(q[:, :2]), None], [(FLOAT16, (1, 4, 8))],
                  [1, 1, 4, 4, 8, 8, 8, 8, 8, 0, 0, 0, 0], [1.0])
    with pytest.raises(RuntimeError, match="varying must be 0 or 1"):
        run_layer("attention", [Input(q), Input(q), Input(q), None], [(FLOAT16, (1, 4, 8))],
                  [1, 1, 4, 4, 8, 8, 8, 8, 8, 0, 0, 0, 0, 0, 2], [1.0])


@pytest.mark.parametrize("tactic", ["", "unfused", "packed"], ids=["auto", "unfused", "packed"])
def test_attention_fully_masked_row_is_zero(tactic: str) -> None:
    """A query whose every key is masked (-inf) gives a zero row, as ep_trtpy::Attention defines it."""
    rng = np.random.default_rng(9)
    b, h, s, d = 2, 2, 16, 64
    qkv = rng.uniform(-1, 1, (b, s, 3, h, d)).astype(np.float16)
    m = np.zeros((b, 1, s, s), np.float16)
    m[1, 0, 3, :] = -np.inf
    n = qkv.size
    specs = [Input(qkv.reshape(b, s, 3 * h * d)), View(0, 0, (n,)), View(0, h * d * 2, (n - h * d,)),
             View(0, 2 * h * d * 2, (n - 2 * h * d,)), Input(m)]
    ints = [b, h, s, s, d, d, 3 * h * d, 3 * h * d, 3 * h * d, s * s, 0, s, 1]
    (o,), eng = run_layer("attention", specs, [(FLOAT16, (b, s, h * d))], ints, [0.125], tactic_name=tactic)
    assert np.all(o[1, 3] == 0), f"masked row: {o[1, 3][:8]} (tactic {eng.tactic_names()[0]})"
    ref = reference(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], np.where(np.isinf(m), 0, m), 0.125)
    keep = np.ones(o.shape, bool)
    keep[1, 3] = False
    assert float(np.max(np.abs(o.astype(np.float64) - ref)[keep])) <= TOL[FLOAT16]


def test_attention_tactic_state_restores_the_cudnn_plan() -> None:
    """A cuDNN attention tactic comes back from the bytes its build wrote without building a plan."""
    from ep_trtpy import _kernels

    rng = np.random.default_rng(11)
    b, h, s, d = 2, 4, 64, 64
    qkv = rng.uniform(-1, 1, (b, s, 3, h, d)).astype(np.float16)
    m, (msb, msh, msq, msk), mref = _mask(rng, "b11s", b, h, s, s, np.float16)
    n, es = qkv.size, 2
    specs = [Input(qkv.reshape(b, s, 3 * h * d)), View(0, 0, (n,)), View(0, h * d * es, (n - h * d,)),
             View(0, 2 * h * d * es, (n - 2 * h * d,)), Input(m)]
    ints = [b, h, s, s, d, d, 3 * h * d, 3 * h * d, 3 * h * d, msb, msh, msq, msk]
    ref = reference(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], mref, 0.125)
    # level 0 takes the first candidate that builds: cuDNN's first plan
    (o1,), eng1 = run_layer("attention", specs, [(FLOAT16, (b, s, h * d))], ints, [0.125], tuning_level=0)
    chosen, state = eng1.tactic_names()[0], eng1.tactic_states()[0]
    assert chosen.startswith("cudnn:") and len(state) > 64, (chosen, len(state))
    before = _kernels.counters()
    (o2,), eng2 = run_layer("attention", specs, [(FLOAT16, (b, s, h * d))], ints, [0.125], tactic_name=chosen,
                            tactic_state=state)
    after = _kernels.counters()
    assert after["plans_restored"] == before["plans_restored"] + 1 and after["plans_built"] == before["plans_built"]
    assert eng2.tactic_names()[0] == chosen and eng2.tactic_states()[0] == state
    for o in (o1, o2):
        assert float(np.max(np.abs(o.astype(np.float64) - ref))) <= TOL[FLOAT16]


def _run_separate(dtype: int, b: int, h: int, sq: int, skv: int, d: int, dv: int, mask_kind: str, tactic: str,
                  seed: int, ints_tail: tuple = (), level: int = 3) -> tuple[np.ndarray, np.ndarray, object]:
    """Separate Q [B, Sq, H*D], K [B, Skv, H*D], V [B, Skv, H*Dv]: (O, the float64 reference, the engine)."""
    rng = np.random.default_rng(seed)
    npd = np_dtype(dtype)
    q = rng.uniform(-1, 1, (b, sq, h, d)).astype(npd)
    k = rng.uniform(-1, 1, (b, skv, h, d)).astype(npd)
    v = rng.uniform(-1, 1, (b, skv, h, dv)).astype(npd)
    m, strides, mref = _mask(rng, mask_kind, b, h, sq, skv, npd if dtype != FLOAT else np.float32)
    scale = 1 / math.sqrt(d)
    ints = [b, h, sq, skv, d, dv, h * d, h * d, h * dv, *strides, *ints_tail]
    specs = [Input(q.reshape(b, sq, h * d)), Input(k.reshape(b, skv, h * d)), Input(v.reshape(b, skv, h * dv)),
             Input(m) if m is not None else None]
    (o,), eng = run_layer("attention", specs, [(dtype, (b, sq, h * dv))], ints, [scale], tactic_name=tactic,
                          tuning_level=level)
    return o, reference(q, k, v, mref, scale), eng


def _check(o: np.ndarray, ref: np.ndarray, tol: float, eng: object, tactic: str = "packed") -> None:
    err = float(np.max(np.abs(o.astype(np.float64) - ref)))
    assert err <= tol, f"max |err| {err:.3g} (tactic {eng.tactic_names()[0]})"
    assert eng.tactic_names()[0] == tactic


@pytest.mark.parametrize("mask_kind", ["b11s", "bhss"])
@pytest.mark.parametrize("dtype", [FLOAT16, FLOAT], ids=["fp16", "fp32"])
@pytest.mark.parametrize("b, h, sq, skv, d, dv", [(3, 4, 1, 40, 32, 32), (1, 6, 24, 24, 32, 64), (4, 1, 24, 30, 32, 32)],
                         ids=["sq1", "b1", "h1"])
def test_attention_packed_in_place_operands(b: int, h: int, sq: int, skv: int, d: int, dv: int, dtype: int,
                                            mask_kind: str) -> None:
    """The operands one batch stride over b*H + h reaches are used without a copy: Q and O when Sq == 1, all four
    when B == 1 or H == 1."""
    o, ref, eng = _run_separate(dtype, b, h, sq, skv, d, dv, mask_kind, "packed", seed=b * 10 + h)
    _check(o, ref, TOL[dtype], eng)


def test_attention_packed_sq1_merged_qkv_copies_q_only() -> None:
    """Sq == 1 in a merged QKV tensor: Q's rows are 3*H*D apart, so Q is copied while O is written in place."""
    rng = np.random.default_rng(13)
    b, h, s, d = 5, 4, 1, 32
    qkv = rng.uniform(-1, 1, (b, s, 3, h, d)).astype(np.float32)
    n = qkv.size
    specs = [Input(qkv.reshape(b, s, 3 * h * d)), View(0, 0, (n,)), View(0, h * d * 4, (n - h * d,)),
             View(0, 2 * h * d * 4, (n - 2 * h * d,)), None]
    ints = [b, h, s, s, d, d, 3 * h * d, 3 * h * d, 3 * h * d, 0, 0, 0, 0]
    (o,), eng = run_layer("attention", specs, [(FLOAT, (b, s, h * d))], ints, [0.25], tactic_name="packed")
    _check(o, reference(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], None, 0.25), TOL[FLOAT], eng)


@pytest.mark.parametrize("dtype, d, dv", [(FLOAT16, 20, 12), (FLOAT16, 17, 17), (FLOAT, 17, 24), (BFLOAT16, 8, 8)],
                         ids=["fp16-8byte", "fp16-2byte", "fp32-4byte", "bf16-16byte"])
def test_attention_packed_narrow_heads(dtype: int, d: int, dv: int) -> None:
    """Head rows of 40/24, 34, 68/96 and 16 bytes: the heads copy moves 8, 2, 4 and 16 bytes at a time."""
    o, ref, eng = _run_separate(dtype, 3, 5, 19, 23, d, dv, "b1ss", "packed", seed=d)
    _check(o, ref, TOL[dtype], eng)


def test_attention_packed_tf32() -> None:
    """math = 1: both GEMMs on TF32 tensor cores (operands rounded to 10 mantissa bits)."""
    o, ref, eng = _run_separate(FLOAT, 4, 3, 48, 48, 64, 64, "b11s", "packed", seed=3, ints_tail=(1,))
    _check(o, ref, 3e-3, eng)


def test_attention_tuner_times_both_gemm_tactics_on_bert_base() -> None:
    """BERT-base's attention (B 32, S 128, H 12, D 64, float32, merged QKV, HF padding mask): the tuner times
    "unfused" against "packed" and keeps the faster; the named tactic comes back without timing. Run with -s to see
    the two times (the packed tactic is expected well under the unfused one)."""
    rng = np.random.default_rng(17)
    b, h, s, d = 32, 12, 128, 64
    qkv = rng.uniform(-1, 1, (b, s, 3, h, d)).astype(np.float32)
    m, (msb, msh, msq, msk), mref = _mask(rng, "b11s", b, h, s, s, np.float32)
    n = qkv.size
    specs = [Input(qkv.reshape(b, s, 3 * h * d)), View(0, 0, (n,)), View(0, h * d * 4, (n - h * d,)),
             View(0, 2 * h * d * 4, (n - 2 * h * d,)), Input(m)]
    ints = [b, h, s, s, d, d, 3 * h * d, 3 * h * d, 3 * h * d, msb, msh, msq, msk]
    ref = reference(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], mref, 0.125)
    (o,), eng = run_layer("attention", specs, [(FLOAT, (b, s, h * d))], ints, [0.125])
    timings = dict(eng.layer_timings()[0])
    print("attention tactic timings (ms):", timings)
    assert set(timings) == {"unfused", "packed"} and all(math.isfinite(t) for t in timings.values()), timings
    chosen = eng.tactic_names()[0]
    assert chosen == min(timings, key=timings.get), (chosen, timings)
    _check(o, ref, TOL[FLOAT], eng, chosen)
    (o2,), eng2 = run_layer("attention", specs, [(FLOAT, (b, s, h * d))], ints, [0.125], tactic_name="packed")
    assert eng2.layer_timings() == [[]] and eng2.tactic_states()[0] == b""
    _check(o2, ref, TOL[FLOAT], eng2)
    copies = 3 * b * h * s * d * 4  # packed Q (later packed O), K, V
    assert eng2.workspaces()[0] >= b * h * s * s * 4 + copies, eng2.workspaces()


@pytest.mark.parametrize("dtype", [FLOAT16, BFLOAT16], ids=["fp16", "bf16"])
def test_attention_varying_lengths_build_dynamic_cudnn_graphs(dtype: int) -> None:
    """varying = 1 (a specialized engine's layer): one topology at several batch and sequence lengths, each
    built for dynamic shapes through the process's kernel cache (or statically where cuDNN refuses that),
    correct at every length, and no plan bytes written."""
    for b, s in ((2, 24), (1, 57), (3, 40), (2, 24)):
        o, ref, eng = _run_separate(dtype, b, 4, s, s, 64, 64, "b11s", "", seed=s, ints_tail=(0, 1), level=0)
        err = float(np.max(np.abs(o.astype(np.float64) - ref)))
        assert err <= TOL[dtype], f"b={b} s={s}: max |err| {err:.3g} (tactic {eng.tactic_names()[0]})"
        assert eng.tactic_names()[0].startswith("cudnn:") and eng.tactic_states()[0] == b""
