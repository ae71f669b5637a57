"""Shared helpers of the library-kernel tests: one-node IR graphs, float64 numpy references, ORT CPU references,
GPU runs through lower -> build_engine -> run_engine, and a comparison that explains its failures."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from ep_trtpy.options import Options
from graph_partitioner.ir import FLOAT, FLOAT16, Graph, Value, elem_type

GPU_SKIP_REASON = "needs an NVIDIA GPU with a CUDA 13 driver (ep_trtpy.has_gpu() is False here)"


def gpu_available() -> bool:
    try:
        import ep_trtpy

        return ep_trtpy.has_gpu()
    except Exception:  # noqa: BLE001 - a broken native build also means "no GPU path here"
        return False


# ------------------------------------------------------------------------------------------------- graphs --
class In:
    """A runtime graph input of this dtype and shape (an ndarray in the spec list makes a constant instead)."""

    def __init__(self, dtype: int, shape: Sequence[int]):
        self.dtype = dtype
        self.shape = tuple(int(d) for d in shape)


Spec = In | np.ndarray | None


def one_node_graph(op: str, inputs: Sequence[Spec], outputs: Sequence[tuple[int, Sequence[int]]],
                   attrs: dict[str, Any] | None = None, domain: str = "") -> Graph:
    """A graph with one node: spec i becomes input 'in{i}' (In), constant 'c{i}' (ndarray) or an absent input."""
    g = Graph("test", {"": 17, "ep_trtpy": 1})
    vals: list[Value | None] = []
    for i, s in enumerate(inputs):
        if s is None:
            vals.append(None)
        elif isinstance(s, In):
            v = g.add_value(f"in{i}", s.dtype, s.shape)
            g.inputs.append(v)
            vals.append(v)
        else:
            vals.append(g.add_value(f"c{i}", const=np.asarray(s)))
    outs = [g.add_value(f"out{k}", dt, tuple(int(d) for d in sh)) for k, (dt, sh) in enumerate(outputs)]
    g.add_node(op, vals, outs, attrs=attrs or {}, name=f"{op.lower()}_node", domain=domain)
    g.outputs.extend(outs)
    return g


def np_of(dtype: int) -> Any:
    return np.float16 if dtype == FLOAT16 else np.float32


def rand(rng: np.random.Generator, shape: Sequence[int], dtype: int) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, size=tuple(shape)).astype(np_of(dtype))


# -------------------------------------------------------------------------------------------- references --
def conv_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, pads_begin: Sequence[int],
             pads_end: Sequence[int], strides: Sequence[int], dilations: Sequence[int], group: int) -> np.ndarray:
    """ONNX Conv in float64 (cross-correlation, NC[spatial] layout)."""
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    k = x.ndim - 2
    xp = np.pad(x, [(0, 0), (0, 0)] + [(int(pb), int(pe)) for pb, pe in zip(pads_begin, pads_end)])
    n, c = x.shape[:2]
    cout, cg = w.shape[:2]
    ks = w.shape[2:]
    out_sp = [(xp.shape[2 + i] - dilations[i] * (ks[i] - 1) - 1) // strides[i] + 1 for i in range(k)]
    y = np.zeros((n, cout, *out_sp))
    og = cout // group
    for g in range(group):
        xg = xp[:, g * cg:(g + 1) * cg]
        wg = w[g * og:(g + 1) * og]
        for kidx in itertools.product(*[range(s) for s in ks]):
            sl = tuple(slice(kidx[i] * dilations[i], kidx[i] * dilations[i] + strides[i] * (out_sp[i] - 1) + 1,
                             strides[i]) for i in range(k))
            patch = xg[(slice(None), slice(None)) + sl]
            y[:, g * og:(g + 1) * og] += np.einsum("nc...,oc->no...", patch, wg[(slice(None), slice(None)) + kidx])
    if b is not None:
        y += b.astype(np.float64).reshape((1, cout) + (1,) * k)
    return y


def conv_transpose_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, pads_begin: Sequence[int],
                       pads_end: Sequence[int], strides: Sequence[int], dilations: Sequence[int],
                       output_padding: Sequence[int], group: int) -> np.ndarray:
    """ONNX ConvTranspose in float64: scatter every input element through the kernel, then crop the pads."""
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    k = x.ndim - 2
    n, cin = x.shape[:2]
    cg = w.shape[1]
    ks = w.shape[2:]
    d = x.shape[2:]
    full = [strides[i] * (d[i] - 1) + dilations[i] * (ks[i] - 1) + 1 + output_padding[i] for i in range(k)]
    cout = cg * group
    y = np.zeros((n, cout, *full))
    ig = cin // group
    for g in range(group):
        xg = x[:, g * ig:(g + 1) * ig]
        wg = w[g * ig:(g + 1) * ig]
        for kidx in itertools.product(*[range(s) for s in ks]):
            sl = tuple(slice(kidx[i] * dilations[i], kidx[i] * dilations[i] + strides[i] * (d[i] - 1) + 1,
                             strides[i]) for i in range(k))
            y[(slice(None), slice(g * cg, (g + 1) * cg)) + sl] += np.einsum(
                "nc...,co->no...", xg, wg[(slice(None), slice(None)) + kidx])
    crop = tuple(slice(int(pads_begin[i]), full[i] - int(pads_end[i])) for i in range(k))
    y = y[(slice(None), slice(None)) + crop]
    if b is not None:
        y = y + b.astype(np.float64).reshape((1, cout) + (1,) * k)
    return y


def gelu_ref(v: np.ndarray) -> np.ndarray:
    from math import erf, sqrt

    return 0.5 * v * (1.0 + np.vectorize(erf)(v / sqrt(2.0)))


def gelu_tanh_ref(v: np.ndarray) -> np.ndarray:
    return 0.5 * v * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (v + 0.044715 * v ** 3)))


def ort_reference(op: str, inputs: Sequence[tuple[str, np.ndarray, bool]], out_shape: Sequence[int] | None,
                  attrs: dict[str, Any], opset: int = 17) -> np.ndarray:
    """One ONNX node run by ONNX Runtime's CPU provider; inputs are (name, array, is_initializer). out_shape None
    leaves the output shape to ORT."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    feeds, graph_inputs, inits = {}, [], []
    for name, arr, is_init in inputs:
        if is_init:
            inits.append(numpy_helper.from_array(arr, name))
        else:
            feeds[name] = arr
            graph_inputs.append(helper.make_tensor_value_info(name, elem_type(arr.dtype), list(arr.shape)))
    node = helper.make_node(op, [n for n, _, _ in inputs], ["y"], **attrs)
    rank = inputs[0][1].ndim
    out = helper.make_tensor_value_info("y", elem_type(inputs[0][1].dtype),
                                        [f"y{i}" for i in range(rank)] if out_shape is None else list(out_shape))
    model = helper.make_model(helper.make_graph([node], "ref", graph_inputs, [out], inits),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


# ----------------------------------------------------------------------------------------------- running --
STRICT_FP32 = Options(tf32_enable=False)
"""Lowering options for exact float32 (no TF32 tensor-core math): the float32 tolerances below need them."""


def run_on_gpu(graph: Graph, feeds: Sequence[np.ndarray], device: int = 0,
               options: Options = STRICT_FP32) -> tuple[list[np.ndarray], Any, Any]:
    """lower -> build_engine -> run_engine on cupy copies of `feeds`; returns (host outputs, plan, engine)."""
    import cupy as cp

    from ep_trtpy.builder.lowering import lower
    from ep_trtpy.runtime import build_engine, run_engine

    plan, weights = lower(graph, options)
    engine = build_engine(plan, weights, device)
    with cp.cuda.Device(device):
        outs = run_engine(engine, [cp.asarray(a) for a in feeds])
        cp.cuda.get_current_stream().synchronize()
        host = [cp.asnumpy(o) for o in outs]
    return host, plan, engine


def tolerances(dtype: int) -> tuple[float, float]:
    """(rtol, atol as a fraction of max |ref|): FP32 must be exact to 1e-4 (so TF32 would fail), FP16 looser."""
    return (1e-4, 1e-4) if dtype == FLOAT else (5e-3, 5e-3)


def assert_close(got: np.ndarray, ref: np.ndarray, dtype: int, what: str, plan: Any = None) -> None:
    """|got - ref| <= rtol * |ref| + atol_frac * max|ref| elementwise, with a diagnosis when it fails."""
    rtol, atol_frac = tolerances(dtype)
    ref = np.asarray(ref, dtype=np.float64)
    got64 = np.asarray(got, dtype=np.float64)
    assert got64.shape == ref.shape, f"{what}: shape {got64.shape} != reference {ref.shape}"
    if ref.size == 0:
        return
    scale = float(np.max(np.abs(ref))) or 1.0
    err = np.abs(got64 - ref)
    bound = rtol * np.abs(ref) + atol_frac * scale
    bad = ~(err <= bound)  # NaN in got counts as bad
    if bad.any():
        worst = np.unravel_index(int(np.nanargmax(np.where(np.isnan(err), np.inf, err / bound))), err.shape)
        layers = "" if plan is None else "; layers: " + ", ".join(
            f"{lay.kernel}(tactic={lay.tactic}, ints={lay.ints})" for lay in plan.layers)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} elements off (dtype {'fp32' if dtype == FLOAT else 'fp16'}, "
            f"rtol {rtol}, atol {atol_frac}*{scale:.3g}); worst at {tuple(int(i) for i in worst)}: got "
            f"{got64[worst]!r}, expected {ref[worst]!r}; max abs err {float(np.nanmax(err)):.3g}, NaNs in result "
            f"{int(np.isnan(got64).sum())}{layers}")


# ------------------------------------------------------------------------------------------- test cases --
class ConvCase:
    """One convolution configuration (pads are ONNX order: all begins, then all ends)."""

    def __init__(self, name: str, x: Sequence[int], w: Sequence[int], pads: Sequence[int] | None = None,
                 strides: Sequence[int] | None = None, dilations: Sequence[int] | None = None, group: int = 1,
                 bias: bool = False, z: bool = False, act: str = "", output_padding: Sequence[int] | None = None):
        k = len(x) - 2
        self.name, self.x, self.w, self.group = name, tuple(x), tuple(w), group
        self.pads = list(pads) if pads is not None else [0] * (2 * k)
        self.strides = list(strides) if strides is not None else [1] * k
        self.dilations = list(dilations) if dilations is not None else [1] * k
        self.output_padding = list(output_padding) if output_padding is not None else [0] * k
        self.bias, self.z, self.act, self.k = bias, z, act, k

    def __repr__(self) -> str:
        return self.name

    def attrs(self, transpose: bool = False) -> dict[str, Any]:
        a: dict[str, Any] = {"pads": self.pads, "strides": self.strides, "dilations": self.dilations,
                             "group": self.group}
        if transpose:
            a["output_padding"] = self.output_padding
        return a


CONV_CASES = [
    ConvCase("2d_basic", (2, 3, 9, 9), (4, 3, 3, 3), pads=(1, 1, 1, 1)),
    ConvCase("2d_strided_dilated_asym_pads", (2, 4, 11, 10), (6, 4, 3, 2), pads=(0, 2, 3, 1), strides=(2, 3),
             dilations=(2, 1)),
    ConvCase("1d_asym_pads_dilated", (2, 3, 17), (5, 3, 4), pads=(2, 1), strides=(2,), dilations=(2,)),
    ConvCase("3d_asym_pads", (1, 2, 6, 7, 5), (3, 2, 3, 2, 3), pads=(1, 0, 1, 1, 1, 0), strides=(2, 1, 1)),
    ConvCase("3d_dilated", (2, 3, 7, 6, 6), (4, 3, 2, 2, 3), pads=(1, 1, 1, 1, 1, 1), dilations=(2, 1, 2)),
    ConvCase("groups", (2, 8, 7, 7), (4, 4, 3, 3), pads=(1, 1, 1, 1), group=2),
    ConvCase("depthwise", (1, 6, 10, 10), (6, 1, 5, 5), pads=(2, 2, 2, 2), group=6, bias=True),
    ConvCase("depthwise_strided_asym", (2, 4, 9, 8), (8, 1, 3, 3), pads=(0, 1, 1, 0), strides=(2, 2), group=4),
    ConvCase("wide_k576", (1, 64, 8, 8), (32, 64, 3, 3), pads=(1, 1, 1, 1)),
    ConvCase("pointwise_strided_bias", (2, 16, 9, 9), (8, 16, 1, 1), strides=(2, 2), bias=True),
    ConvCase("bias_relu", (2, 8, 8, 8), (16, 8, 3, 3), pads=(1, 1, 1, 1), bias=True, act="Relu"),
    ConvCase("bias_residual_relu", (2, 8, 8, 8), (8, 8, 3, 3), pads=(1, 1, 1, 1), bias=True, z=True, act="Relu"),
    ConvCase("bias_residual_no_act", (1, 4, 6, 6), (4, 4, 3, 3), pads=(1, 1, 1, 1), bias=True, z=True),
    ConvCase("residual_no_bias", (1, 4, 6, 6), (4, 4, 3, 3), pads=(1, 1, 1, 1), z=True),
    ConvCase("relu_no_bias_asym", (1, 4, 7, 7), (6, 4, 3, 3), pads=(2, 0, 0, 2), act="Relu"),
    ConvCase("1d_bias_relu_asym", (3, 5, 20), (7, 5, 3), pads=(0, 2), bias=True, act="Relu"),
]

CONV_TRANSPOSE_CASES = [
    ConvCase("2d_direct_op", (2, 4, 5, 5), (4, 3, 3, 3), pads=(1, 1, 1, 1), strides=(2, 2), output_padding=(1, 1),
             bias=True),
    ConvCase("2d_asym_pads_crop", (1, 3, 4, 6), (3, 2, 3, 3), pads=(0, 1, 2, 0), strides=(2, 1)),
    ConvCase("1d_dilated_op_direct", (2, 3, 7), (3, 4, 3), pads=(1, 1), strides=(3,), dilations=(3,),
             output_padding=(2,)),
    ConvCase("1d_asym_pads_op_crop", (2, 3, 7), (3, 4, 3), pads=(2, 0), strides=(2,), output_padding=(1,),
             bias=True),
    ConvCase("groups", (2, 6, 5, 4), (6, 2, 3, 3), pads=(1, 0, 1, 0), strides=(1, 2), group=3, bias=True),
    ConvCase("3d", (1, 2, 3, 4, 3), (2, 3, 2, 3, 2), pads=(0, 1, 0, 1, 1, 0), strides=(2, 1, 2)),
    ConvCase("dilated_no_stride", (1, 3, 6, 6), (3, 5, 3, 3), pads=(2, 2, 2, 2), dilations=(2, 2), bias=True),
    ConvCase("1d_plain", (2, 5, 9), (5, 2, 4), strides=(3,)),
    ConvCase("wide_k", (1, 64, 6, 6), (64, 16, 3, 3), pads=(1, 1, 1, 1), strides=(2, 2), output_padding=(1, 1)),
]


def conv_case_reference(case: ConvCase, x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                        z: np.ndarray | None) -> np.ndarray:
    k = case.k
    y = conv_ref(x, w, b, case.pads[:k], case.pads[k:], case.strides, case.dilations, case.group)
    if z is not None:
        y = y + z.astype(np.float64)
    if case.act == "Relu":
        y = np.maximum(y, 0.0)
    return y


def conv_case_output_shape(case: ConvCase) -> tuple[int, ...]:
    k = case.k
    out = [case.x[0], case.w[0]]
    for i in range(k):
        span = case.x[2 + i] + case.pads[i] + case.pads[k + i] - case.dilations[i] * (case.w[2 + i] - 1) - 1
        out.append(span // case.strides[i] + 1)
    return tuple(out)


def conv_transpose_case_reference(case: ConvCase, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    k = case.k
    return conv_transpose_ref(x, w, b, case.pads[:k], case.pads[k:], case.strides, case.dilations,
                              case.output_padding, case.group)

# ONNX allows output_padding >= stride (the extra outputs are bias only); ORT's CPU kernel rejects it, so these are
# checked against the numpy reference alone.
CONV_TRANSPOSE_NUMPY_ONLY_CASES = [
    ConvCase("1d_op_ge_stride", (2, 3, 7), (3, 4, 3), pads=(1, 1), strides=(2,), dilations=(3,),
             output_padding=(2,), bias=True),
]

# ConvTranspose attribute sets whose pad resolution (output_shape, auto_pad) is checked against ORT; input x
# [1, 3, 5, 4], W [3, 2, 3, 3], B [2].
CONV_TRANSPOSE_ORT_ATTRS = [
    {"strides": [2, 2], "output_shape": [10, 9]},
    {"strides": [2, 2], "output_shape": [10, 9], "auto_pad": "SAME_UPPER"},
    {"strides": [2, 2], "output_shape": [10, 9], "auto_pad": "SAME_LOWER"},
    {"strides": [2, 2], "output_shape": [9, 8], "output_padding": [1, 0]},
    # output_shape beyond the full result (x 5x4, k 3, s 3x2 -> full 15x9): the extra rows/cols get only the bias
    {"strides": [3, 2], "output_shape": [16, 10]},
    {"strides": [2, 3], "auto_pad": "SAME_UPPER"},
    {"strides": [2, 3], "auto_pad": "SAME_LOWER"},
    {"strides": [1, 2], "auto_pad": "VALID", "output_padding": [0, 1]},
]
