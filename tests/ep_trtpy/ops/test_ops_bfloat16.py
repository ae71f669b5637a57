"""bfloat16 in the numpy references, wherever float16 works: every float16 case of the op tests, run again with
bfloat16 data. ORT's CPU provider has almost no bfloat16 kernels, so the expectation is our 16-bit definition
itself: the same op on the same values widened to float32, rounded once to bfloat16. Inference must give
bfloat16 where it gives float16."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import test_ops_elementwise
import test_ops_linalg
import test_ops_movement
import test_ops_normalization
import test_ops_pooling
import test_ops_reduce
import test_ops_resize
from onnx import helper
from ops_harness import Case, infos_of, ir_node

from ep_trtpy.ops import registry
from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT16, elem_type

BF16 = np.dtype(ml_dtypes.bfloat16)
MODULES = (test_ops_elementwise, test_ops_linalg, test_ops_movement, test_ops_normalization, test_ops_pooling,
           test_ops_reduce, test_ops_resize)
FP16_CASES = [c for m in MODULES for c in m.CASES if any(a is not None and a.dtype == np.float16 for a in c.inputs)]


def _with(c: Case, dtype: np.dtype) -> list[np.ndarray | None]:
    """The case's inputs with float16 data turned into `dtype` (bfloat16 values, so both runs see the same)."""
    return [None if a is None else a.astype(np.float32).astype(BF16).astype(dtype) if a.dtype == np.float16 else a
            for a in c.inputs]


def _run(c: Case, inputs: list[np.ndarray | None]) -> tuple[list[int], list[np.ndarray]]:
    attrs = dict(c.attrs)
    if c.op == "Cast" and attrs.get("to") == FLOAT16:  # the 16-bit type of the run, as the data's
        attrs["to"] = next((elem_type(a.dtype) for a in inputs if a is not None), FLOAT16)
    proto = helper.make_node(c.op, [f"x{i}" if a is not None else "" for i, a in enumerate(inputs)],
                             [f"y{k}" for k in range(c.n_outputs)], domain=c.domain, **attrs)
    probe = Case(c.id, c.op, inputs, c.attrs, c.opset, c.const, c.n_outputs)
    infos = registry.run_infer(ir_node(proto, inputs, c.const, c.opset), infos_of(probe, with_values=False))
    dtypes = [i.dtype for i in infos]
    node = ir_node(proto, inputs, c.const, c.opset, dtypes)
    return dtypes, registry.run_reference(node, [None if a is None else a.copy() for a in inputs])


def test_there_are_float16_cases_of_every_family():
    assert len(FP16_CASES) >= 30
    assert {c.op for c in FP16_CASES} >= {"Conv", "MatMul", "Gemm", "LayerNormalization", "Softmax", "MaxPool",
                                         "ReduceMean", "Transpose", "Resize", "Add"}


@pytest.mark.parametrize("c", FP16_CASES, ids=lambda c: c.id.replace("f16", "bf16"))
def test_bfloat16_where_float16_works(c: Case) -> None:
    dt16, _ = _run(c, [None if a is None else a for a in c.inputs])
    dtb, got = _run(c, _with(c, BF16))
    assert dtb == [BFLOAT16 if t == FLOAT16 else t for t in dt16], "inference must give bfloat16 for float16"
    dt32, want = _run(c, _with(c, np.dtype(np.float32)))
    assert dt32 == [FLOAT if t == FLOAT16 else t for t in dt16]
    for k, (g, w, t) in enumerate(zip(got, want, dtb)):
        assert elem_type(g.dtype) == t, f"output {k}: {g.dtype}"
        w = w.astype(BF16) if t == BFLOAT16 else w
        g64, w64 = g.astype(np.float64), w.astype(np.float64)
        scale = max(float(np.max(np.abs(w64[np.isfinite(w64)]), initial=0.0)), 1e-30)
        # one bfloat16 rounding apart at most (2^-8 relative), plus summation-order noise near zero
        np.testing.assert_allclose(g64, w64, rtol=2 ** -7, atol=1e-3 * scale, equal_nan=True, err_msg=f"output {k}")
