"""The whole pass pipeline on exporter-style blocks (a BERT encoder layer with dynamic shape arithmetic, a ResNet
basic block), compared with ONNX Runtime's CPU provider on the original model, in FP32, FP16 and BF16; the 16-bit
graphs lower to plans of 16-bit tensors."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from ep_trtpy.builder.build import optimize_with_context
from ep_trtpy.options import parse
from graph_partitioner.ir import BFLOAT16, FLOAT16, Graph

import graph_runner


class M:
    """A tiny ONNX model writer."""

    def __init__(self, seed: int = 0) -> None:
        self.nodes: list = []
        self.inits: list = []
        self.rng = np.random.default_rng(seed)
        self.k = 0

    def name(self, base: str) -> str:
        self.k += 1
        return f"{base}_{self.k}"

    def const(self, arr, base: str = "c") -> str:
        n = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def w(self, *shape, scale: float = 0.2) -> str:
        return self.const((self.rng.standard_normal(shape) * scale).astype(np.float32), "w")

    def op(self, op: str, *ins: str, n_out: int = 1, **attrs):
        outs = [self.name(op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, list(ins), outs, name=self.name(op), **attrs))
        return outs[0] if n_out == 1 else outs

    def f(self, v: float) -> str:
        return self.const(np.float32(v), "s")

    def model(self, inputs, outputs, opset: int = 17) -> bytes:
        g = helper.make_graph(self.nodes, "m", inputs, outputs, self.inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8).SerializeToString()


def layer_norm(m: M, x: str, d: int) -> str:
    mean = m.op("ReduceMean", x, axes=[-1])
    dev = m.op("Sub", x, mean)
    var = m.op("ReduceMean", m.op("Pow", dev, m.f(2.0)), axes=[-1])
    std = m.op("Sqrt", m.op("Add", var, m.f(1e-12)))
    y = m.op("Div", dev, std)
    return m.op("Add", m.op("Mul", y, m.const(m.rng.uniform(0.5, 1.5, d).astype(np.float32), "gamma")),
                m.const(m.rng.standard_normal(d).astype(np.float32) * 0.1, "beta"))


def bert_layer(d: int = 32, heads: int = 4, ffn: int = 64) -> bytes:
    m = M(1)
    x, mask = "x", "mask"
    hd = d // heads
    # shape arithmetic as exporters write it: batch and sequence from Shape -> Gather
    shp = m.op("Shape", x)
    b = m.op("Unsqueeze", m.op("Gather", shp, m.const(np.int64(0), "i0"), axis=0), m.const(np.array([0], np.int64)))
    s = m.op("Unsqueeze", m.op("Gather", shp, m.const(np.int64(1), "i1"), axis=0), m.const(np.array([0], np.int64)))
    split_shape = m.op("Concat", b, s, m.const(np.array([heads, hd], np.int64)), axis=0)
    merge_shape = m.op("Concat", b, s, m.const(np.array([d], np.int64)), axis=0)

    def proj(inp: str, n_in: int, n_out: int) -> str:
        return m.op("Add", m.op("MatMul", inp, m.w(n_in, n_out)), m.const(m.rng.standard_normal(n_out).astype(
            np.float32) * 0.1, "bias"))

    def heads_of(t: str, perm):
        return m.op("Transpose", m.op("Reshape", t, split_shape), perm=perm)

    q = heads_of(proj(x, d, d), [0, 2, 1, 3])
    k = heads_of(proj(x, d, d), [0, 2, 3, 1])
    v = heads_of(proj(x, d, d), [0, 2, 1, 3])
    scores = m.op("Div", m.op("MatMul", q, k), m.f(math.sqrt(hd)))
    # mask [B, S] of 0/1 -> additive -10000 bias, as BERT exporters do
    ext = m.op("Unsqueeze", m.op("Unsqueeze", mask, m.const(np.array([1], np.int64))), m.const(np.array([2],
                                                                                                    np.int64)))
    bias = m.op("Mul", m.op("Sub", m.f(1.0), m.op("Cast", ext, to=TensorProto.FLOAT)), m.f(-10000.0))
    probs = m.op("Softmax", m.op("Add", scores, bias), axis=-1)
    ctx = m.op("Reshape", m.op("Transpose", m.op("MatMul", probs, v), perm=[0, 2, 1, 3]), merge_shape)
    h1 = layer_norm(m, m.op("Add", proj(ctx, d, d), x), d)
    # FFN with erf GELU spelled as PyTorch exports it
    f = proj(h1, d, ffn)
    gelu = m.op("Mul", m.op("Mul", f, m.op("Add", m.op("Erf", m.op("Div", f, m.f(1.4142135381698608))), m.f(1.0))),
                m.f(0.5))
    out = layer_norm(m, m.op("Add", proj(gelu, ffn, d), h1), d)
    return m.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "S", d]),
                    helper.make_tensor_value_info("mask", TensorProto.INT64, ["B", "S"])],
                   [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["B", "S", d])])


def resnet_block(c: int = 8) -> bytes:
    m = M(2)

    def conv_bn(x: str, cin: int, cout: int, k: int, stride: int = 1) -> str:
        y = m.op("Conv", x, m.w(cout, cin, k, k, scale=0.3), kernel_shape=[k, k], strides=[stride, stride],
                 pads=[k // 2] * 4)
        return m.op("BatchNormalization", y, m.const(m.rng.uniform(0.5, 1.5, cout).astype(np.float32)),
                    m.const(m.rng.standard_normal(cout).astype(np.float32) * 0.1),
                    m.const(m.rng.standard_normal(cout).astype(np.float32) * 0.1),
                    m.const(m.rng.uniform(0.5, 1.5, cout).astype(np.float32)), epsilon=1e-5)

    x = m.op("Relu", conv_bn("x", 3, c, 3))
    y = m.op("Relu", conv_bn(x, c, c, 3))
    y = conv_bn(y, c, c, 3)
    z = m.op("Relu", m.op("Add", y, x))
    p = m.op("Flatten", m.op("GlobalAveragePool", z), axis=1)
    out = m.op("Gemm", p, m.w(10, c), m.const(np.linspace(-1, 1, 10).astype(np.float32)), transB=1)
    return m.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
                   [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", 10])])


def _ort(model: bytes, feeds: dict) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"]).run(None, feeds)


PRECISIONS = {"fp32": ({}, 1e-4, None), "fp16": ({"fp16_enable": "1"}, 3e-2, FLOAT16),
              "bf16": ({"bf16_enable": "1"}, 8e-2, BFLOAT16)}  # option, tolerance, the 16-bit type


def _optimized(model: bytes, shapes: dict, precision: str = "fp32"):
    from graph_partitioner import onnx_io
    import onnx

    g: Graph = onnx_io.graph_from_onnx(onnx.load_from_string(model))
    return optimize_with_context(g, shapes, parse(PRECISIONS[precision][0]))


def _check_16bit_plan(g: Graph, low: int) -> None:
    """Lowered for the GPU, the library kernels run on 16-bit tensors of this type."""
    from ep_trtpy.builder.lowering import lower

    plan, _ = lower(g)
    for layer in plan.layers:
        if layer.kernel in ("gemm", "conv", "layernorm", "softmax"):
            assert plan.tensors[layer.inputs[0]].dtype == low, (layer.kernel, layer.name)
    assert sum(t.dtype == low for t in plan.tensors) > len(plan.tensors) // 2


@pytest.mark.parametrize("precision", sorted(PRECISIONS))
def test_bert_layer(precision):
    model = bert_layer()
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 7, 32)).astype(np.float32)
    mask = np.ones((2, 7), np.int64)
    mask[1, 5:] = 0
    g, ctx = _optimized(model, {"x": x.shape, "mask": mask.shape}, precision)
    kinds = [n.op_type for n in g.nodes]
    assert kinds.count("AddLayerNorm") == 2  # both residual sums ride in their LayerNorm's kernel
    assert "LayerNormalization" not in kinds
    assert kinds.count("FusedMatMul") == 4  # Q, K and V as one, out, FFN1 (+Gelu), FFN2
    (att,) = [n for n in g.nodes if n.op_type == "Attention"]  # the two attention products, mask and softmax
    assert att.attrs["qkv_packed"] == 1 and att.attrs["num_heads"] == 4
    assert "Shape" not in kinds and "Concat" not in kinds and "Erf" not in kinds and "Gather" not in kinds
    ffn1 = [n for n in g.nodes if n.op_type == "FusedMatMul" and n.attrs.get("activation") == "Gelu"]
    assert len(ffn1) == 1
    (want,) = _ort(model, {"x": x, "mask": mask})
    (got,) = graph_runner.run(g, {"x": x, "mask": mask})
    assert got.dtype == np.float32 and got.shape == want.shape
    _, tol, low = PRECISIONS[precision]
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    if low is not None:
        _check_16bit_plan(g, low)


@pytest.mark.parametrize("precision", sorted(PRECISIONS))
def test_resnet_block(precision):
    model = resnet_block()
    x = np.random.default_rng(6).standard_normal((2, 3, 16, 16)).astype(np.float32)
    g, ctx = _optimized(model, {"x": x.shape}, precision)
    kinds = [n.op_type for n in g.nodes]
    assert "BatchNormalization" not in kinds and "Conv" not in kinds
    convs = [n for n in g.nodes if n.op_type == "FusedConv"]
    assert len(convs) == 3 and [c.attrs["activation"] for c in convs] == ["Relu", "Relu", "Relu"]
    assert len(convs[2].inputs) == 4  # the residual rides in the last conv
    assert "FusedMatMul" in kinds
    (want,) = _ort(model, {"x": x})
    (got,) = graph_runner.run(g, {"x": x})
    _, tol, low = PRECISIONS[precision]
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    if low is not None:
        _check_16bit_plan(g, low)


def pre_ln_block(d: int = 32, ffn: int = 64) -> bytes:
    """h = x + attn_out; y = h + FFN(LN(h)); out = LN(y) (pre-LN: each sum is both normalized and reused; the
    first one is also a graph output), with a runtime weight read transposed (Transpose -> MatMul)."""
    m = M(3)
    proj = m.op("MatMul", "x", m.op("Transpose", "w", perm=[1, 0]))
    h = m.op("Add", "x", proj)
    ln1 = m.op("LayerNormalization", h, m.const(m.rng.uniform(0.5, 1.5, d).astype(np.float32)),
               m.const(m.rng.standard_normal(d).astype(np.float32) * 0.1), axis=-1, epsilon=1e-5)
    f = m.op("Relu", m.op("MatMul", ln1, m.w(d, ffn)))
    y = m.op("Add", m.op("MatMul", f, m.w(ffn, d)), h)
    out = m.op("LayerNormalization", y, m.const(np.ones(d, np.float32)), axis=-1, epsilon=1e-5)
    return m.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "S", d]),
                    helper.make_tensor_value_info("w", TensorProto.FLOAT, [d, d])],
                   [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["B", "S", d]),
                    helper.make_tensor_value_info(h, TensorProto.FLOAT, ["B", "S", d])])


@pytest.mark.parametrize("precision", sorted(PRECISIONS))
def test_pre_ln_block_keeps_the_sums_it_reuses(precision):
    model = pre_ln_block()
    rng = np.random.default_rng(8)
    feeds = {"x": rng.standard_normal((2, 5, 32)).astype(np.float32),
             "w": (rng.standard_normal((32, 32)) * 0.2).astype(np.float32)}
    g, ctx = _optimized(model, {k: v.shape for k, v in feeds.items()}, precision)
    fused = [n for n in g.nodes if n.op_type == "AddLayerNorm"]
    assert len(fused) == 2 and [len(n.outputs) for n in fused] == [2, 1]
    assert "LayerNormalization" not in [n.op_type for n in g.nodes]
    assert "Transpose" not in [n.op_type for n in g.nodes]
    assert [n.attrs["transB"] for n in g.nodes if n.op_type == "FusedMatMul"] == [1, 0, 0]
    want = _ort(model, feeds)
    got = graph_runner.run(g, feeds)
    _, tol, low = PRECISIONS[precision]
    for a, b in zip(got, want):
        assert a.dtype == np.float32 and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    if low is not None:
        _check_16bit_plan(g, low)
