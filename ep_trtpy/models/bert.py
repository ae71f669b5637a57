"""A BERT-base encoder (HuggingFace ``BertModel`` without the pooler) as the PyTorch exporter writes it.

Inputs ``input_ids`` int64 [batch, sequence], ``attention_mask`` int64 [batch, sequence] and, when
``token_type_ids=True``, ``token_type_ids`` int64 [batch, sequence]. Output ``last_hidden_state`` float32
[batch, sequence, hidden].

    embeddings: Gather(word, input_ids) + Gather(token_type, ids) + Gather(position, Slice(arange, 0, seq)) -> LN
    extended mask (in-graph, as exporters write it):
        m = Mul(Sub(1, Cast<float>(Unsqueeze(Unsqueeze(attention_mask, 1), 2))), -10000)       [batch,1,1,seq]
    each layer:
        q, k, v = h @ Wq + bq, h @ Wk + bk, h @ Wv + bv                                         (MatMul + Add)
        head split: Reshape(x, Concat(Gather(Shape(x), 0), Gather(Shape(x), 1), [heads], [d]))  [b,s,h,d]
                    -> Transpose(0,2,1,3) (q, v) / Transpose(0,2,3,1) (k)
        p = Softmax(q @ k^T / sqrt(d) + m, axis=-1);  ctx = p @ v -> Transpose(0,2,1,3) -> Reshape [b,s,hidden]
        h = LN(h + ctx @ Wo + bo);   h = LN(h + GELU(h @ W1 + b1) @ W2 + b2)

Spellings (numerically the same model for the same seed; weights are drawn per parameter name):

* ``form="fused"``: ``LayerNormalization`` (opset 17). GELU is the ``Gelu`` op when ``opset >= 20`` (it exists
  from opset 20 only), else the Erf form below. **Choice:** the default model stays opset 17 like the other
  architectures, so default 'fused' means LayerNormalization + Erf-GELU; pass ``opset=20`` for the Gelu op.
* ``form="decomposed"``: LayerNorm as older exporters write it,
  ``(x - ReduceMean(x)) / Sqrt(ReduceMean(Pow(x - ReduceMean(x), 2)) + eps) * gamma + beta``, and the Erf GELU
  ``Mul(Mul(x, Add(Erf(Div(x, sqrt 2)), 1)), 0.5)``.
* ``attention="einsum"``: QK^T and P.V as ``Einsum('bhid,bhjd->bhij')`` / ``Einsum('bhij,bhjd->bhid')`` (K is then
  transposed to [b,h,s,d] like Q) instead of MatMul.

Initialisation: projections N(0, 1/fan_in), query and key N(0, 2.25/fan_in) so attention logits have a spread of a
few units (a uniform softmax would hide errors),
embeddings N(0, 0.02), LayerNorm gamma ~ N(1, 0.05), beta ~ N(0, 0.02).
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto

from ep_trtpy.models._graph import ELEM_FLOAT, ELEM_INT64, GraphWriter, dense_weight

DEFAULTS = {"layers": 12, "hidden": 768, "heads": 12, "intermediate": None, "vocab_size": 30522,
            "max_position": 512, "form": "fused", "attention": "matmul", "token_type_ids": False, "opset": 17}
CI = {"layers": 2, "hidden": 64, "heads": 4, "vocab_size": 1000, "max_position": 128}
FORMS = ("fused", "decomposed")
ATTENTION = ("matmul", "einsum")
EPS = 1e-12


def _layer_norm(w: GraphWriter, x: str, hidden: int, form: str, opset: int) -> str:
    gamma = w.normal("weight", (hidden,), std=0.05, mean=1.0)
    beta = w.normal("bias", (hidden,), std=0.02)
    if form == "fused":
        return w.op("LayerNormalization", [x, gamma, beta], axis=-1, epsilon=EPS)
    mean = _reduce_mean_last(w, x, opset)
    d = w.op("Sub", [x, mean])
    p = w.op("Pow", [d, w.const(2.0, np.float32)])
    var = _reduce_mean_last(w, p, opset)
    std = w.op("Sqrt", [w.op("Add", [var, w.const(EPS, np.float32)])])
    n = w.op("Div", [d, std])
    return w.op("Add", [w.op("Mul", [n, gamma]), beta])


def _reduce_mean_last(w: GraphWriter, x: str, opset: int) -> str:
    """ReduceMean over the last axis, keepdims: axes is an attribute before opset 18 and an input from 18 on."""
    if opset >= 18:
        return w.op("ReduceMean", [x, w.const([-1])], keepdims=1)
    return w.op("ReduceMean", [x], axes=[-1], keepdims=1)


def _gelu(w: GraphWriter, x: str, form: str, opset: int) -> str:
    if form == "fused" and opset >= 20:
        return w.op("Gelu", [x], approximate="none")
    e = w.op("Erf", [w.op("Div", [x, w.const(math.sqrt(2.0), np.float32)])])
    return w.op("Mul", [w.op("Mul", [x, w.op("Add", [e, w.const(1.0, np.float32)])]), w.const(0.5, np.float32)])


def _linear(w: GraphWriter, x: str, fan_in: int, fan_out: int, scope: str, gain: float = 1.0) -> str:
    """torch.nn.Linear on a 3-D input as exported: MatMul(x, W^T) then Add(bias, .); W ~ N(0, gain^2/fan_in)."""
    with w.scope(scope):
        # stored [in, out]: the exporter writes the transposed weight as the MatMul operand
        wt = dense_weight(w, "weight", fan_in, fan_out, std=gain / math.sqrt(fan_in))
        b = w.normal("bias", (fan_out,), std=0.02)
        return w.op("Add", [b, w.op("MatMul", [x, wt])])


def _dims(w: GraphWriter, x: str) -> tuple[str, str]:
    """[batch] and [sequence] of a [b, s, ...] value as 1-D int64 tensors, the way exporters compute them."""
    shape = w.op("Shape", [x])
    b = w.op("Unsqueeze", [w.op("Gather", [shape, w.const(0)], axis=0), w.const([0])])
    s = w.op("Unsqueeze", [w.op("Gather", [shape, w.const(1)], axis=0), w.const([0])])
    return b, s


def _split_heads(w: GraphWriter, x: str, heads: int, head_dim: int, perm: list[int]) -> str:
    b, s = _dims(w, x)
    shape = w.op("Concat", [b, s, w.const([heads]), w.const([head_dim])], axis=0)
    return w.op("Transpose", [w.op("Reshape", [x, shape], allowzero=0)], perm=perm)


def _attention(w: GraphWriter, h: str, mask: str, hidden: int, heads: int, attention: str) -> str:
    d = hidden // heads
    with w.scope("self"):
        q = _linear(w, h, hidden, hidden, "query", gain=1.5)
        k = _linear(w, h, hidden, hidden, "key", gain=1.5)
        v = _linear(w, h, hidden, hidden, "value")
        qh = _split_heads(w, q, heads, d, [0, 2, 1, 3])
        vh = _split_heads(w, v, heads, d, [0, 2, 1, 3])
        if attention == "einsum":
            kh = _split_heads(w, k, heads, d, [0, 2, 1, 3])
            scores = w.op("Einsum", [qh, kh], equation="bhid,bhjd->bhij")
        else:
            kt = _split_heads(w, k, heads, d, [0, 2, 3, 1])
            scores = w.op("MatMul", [qh, kt])
        scores = w.op("Div", [scores, w.const(math.sqrt(d), np.float32)])
        scores = w.op("Add", [scores, mask])
        probs = w.op("Softmax", [scores], axis=-1)
        if attention == "einsum":
            ctx = w.op("Einsum", [probs, vh], equation="bhij,bhjd->bhid")
        else:
            ctx = w.op("MatMul", [probs, vh])
        ctx = w.op("Transpose", [ctx], perm=[0, 2, 1, 3])
        b, s = _dims(w, ctx)
        ctx = w.op("Reshape", [ctx, w.op("Concat", [b, s, w.const([hidden])], axis=0)], allowzero=0)
    return ctx


def build(layers: int = 12, hidden: int = 768, heads: int = 12, intermediate: int | None = None,
          vocab_size: int = 30522, max_position: int = 512, form: str = "fused", attention: str = "matmul",
          token_type_ids: bool = False, opset: int = 17, seed: int = 0) -> onnx.ModelProto:
    """A BERT encoder; BERT-base by default, any size through the knobs (``intermediate`` defaults to 4*hidden)."""
    if form not in FORMS:
        raise ValueError(f"bert: form must be one of {FORMS}, got {form!r}")
    if attention not in ATTENTION:
        raise ValueError(f"bert: attention must be one of {ATTENTION}, got {attention!r}")
    if hidden % heads:
        raise ValueError(f"bert: hidden ({hidden}) must be a multiple of heads ({heads})")
    if opset < 17:
        raise ValueError(f"bert: opset must be >= 17 (LayerNormalization), got {opset}")
    inter = int(intermediate or 4 * hidden)
    w = GraphWriter("bert", seed)
    ids = w.add_input("input_ids", ELEM_INT64, ["batch", "sequence"])
    am = w.add_input("attention_mask", ELEM_INT64, ["batch", "sequence"])
    tt_in = w.add_input("token_type_ids", ELEM_INT64, ["batch", "sequence"]) if token_type_ids else None

    with w.scope("embeddings"):
        word = w.op("Gather", [w.normal("word_embeddings.weight", (vocab_size, hidden), 0.02), ids], axis=0)
        seq = w.op("Unsqueeze", [w.op("Gather", [w.op("Shape", [ids]), w.const(1)], axis=0), w.const([0])])
        if tt_in is None:
            buf = w.weight("token_type_ids", np.zeros((1, max_position), np.int64))
            tt_ids = w.op("Slice", [buf, w.const([0]), seq, w.const([1]), w.const([1])])
            tt_in = w.op("Expand", [tt_ids, w.op("Shape", [ids])])
        tt = w.op("Gather", [w.normal("token_type_embeddings.weight", (2, hidden), 0.02), tt_in], axis=0)
        pos_buf = w.weight("position_ids", np.arange(max_position, dtype=np.int64)[None, :])
        pos_ids = w.op("Slice", [pos_buf, w.const([0]), seq, w.const([1]), w.const([1])])
        pos = w.op("Gather", [w.normal("position_embeddings.weight", (max_position, hidden), 0.02), pos_ids],
                   axis=0)
        e = w.op("Add", [w.op("Add", [word, tt]), pos])
        with w.scope("LayerNorm"):
            h = _layer_norm(w, e, hidden, form, opset)

    m = w.op("Unsqueeze", [w.op("Unsqueeze", [am, w.const([1])]), w.const([2])])
    m = w.op("Cast", [m], to=TensorProto.FLOAT)
    m = w.op("Sub", [w.const(1.0, np.float32), m])
    mask = w.op("Mul", [m, w.const(-10000.0, np.float32)])

    with w.scope("encoder"):
        for i in range(layers):
            with w.scope(f"layer.{i}"):
                with w.scope("attention"):
                    ctx = _attention(w, h, mask, hidden, heads, attention)
                    with w.scope("output"):
                        a = w.op("Add", [_linear(w, ctx, hidden, hidden, "dense"), h])
                        with w.scope("LayerNorm"):
                            h = _layer_norm(w, a, hidden, form, opset)
                with w.scope("intermediate"):
                    f = _gelu(w, _linear(w, h, hidden, inter, "dense"), form, opset)
                with w.scope("output"):
                    a = w.op("Add", [_linear(w, f, inter, hidden, "dense"), h])
                    with w.scope("LayerNorm"):
                        h = _layer_norm(w, a, hidden, form, opset)
    w.add_output(h, "last_hidden_state", ELEM_FLOAT, ["batch", "sequence", hidden])
    return w.model(opset, doc=f"BERT encoder: layers={layers}, hidden={hidden}, heads={heads}, "
                              f"intermediate={inter}, form={form}, attention={attention}, seed={seed}")


def make_feeds(batch: int, sequence: int, seed: int = 0, vocab_size: int = 30522,
               token_type_ids: bool = False, **_: object) -> dict[str, np.ndarray]:
    """Random token ids; the attention mask pads the tail of every other sequence (a quarter of its length) so
    the masked-softmax path matters; token types are 0 then 1 (two segments)."""
    rng = np.random.default_rng(seed)
    feeds = {"input_ids": rng.integers(0, vocab_size, size=(batch, sequence), dtype=np.int64)}
    mask = np.ones((batch, sequence), np.int64)
    pad = sequence // 4
    if pad:
        mask[1::2, sequence - pad:] = 0
    feeds["attention_mask"] = mask
    if token_type_ids:
        tt = np.zeros((batch, sequence), np.int64)
        tt[:, sequence // 2:] = 1
        feeds["token_type_ids"] = tt
    return feeds
