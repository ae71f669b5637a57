// Kernel "conv": forward convolution for ep_trtpy::FusedConv (and ONNX Conv), NCHW or channels-last.
//
//   Y = act(conv(X, W) + B + Z)        or, with post = 1,        Y = act(conv(X, W) + B) + Z
//
// Parameter layout (mirrored by ep_trtpy/builder/lowering/linalg.py):
//   inputs  [X, W, B, Z]   B [K] optional (-1); Z optional (-1), of Y's shape. All float32, float16 or bfloat16.
//   outputs [Y]
//   ints    [k, group, act, layout, math, pb_1..pb_k, pe_1..pe_k, s_1..s_k, dil_1..dil_k] or the same and post
//             k = spatial rank (1..3); pb/pe = pads at the beginning/end of each spatial dim
//             layout 0 (NCHW): X [N, C, D1..Dk], W [K, C/group, R1..Rk], Y and Z [N, K, O1..Ok]
//             layout 1 (NHWC, k = 2 only): X [N, D1, D2, C], W [K, R1, R2, C/group], Y and Z [N, O1, O2, K]
//             act: 0 none, 1 relu, 2 clip(alpha, beta), 3 sigmoid, 4 silu, 5 leaky_relu(alpha), 6 hardswish,
//                  7 tanh
//             math: 1 lets float32 use TF32 tensor cores (ignored for 16-bit data)
//             post: 1 adds Z after the activation (FusedConv residual_position "post_act"); absent or 0 before it
//   floats  [alpha, beta]  activation parameters
//   tactic / tactic_name: chosen at prepare (see conv_nchw.cpp and conv_nhwc.cpp); names are "legacy:<algo>",
//           "fused:<cuDNN plan>", "bias:<cuDNN plan>", "conv:<cuDNN plan>", "depthwise" and "depthwise:tiled".
//
//   Oi = floor((Di + pb_i + pe_i - dil_i (Ki - 1) - 1) / s_i) + 1
// An X with no elements (C == 0 or an empty spatial dim) gives Y = act(B + Z) (post: act(B) + Z).
#include <algorithm>
#include <string>
#include <vector>

#include "conv_common.h"
#include "tp/engine.h"
#include "tp/library_support.h"

namespace tp {
namespace lib {

int epilogue_act(int conv_act) {
  switch (conv_act) {
    case kConvRelu: return kActRelu;
    case kConvClip: return kActClip;
    case kConvSigmoid: return kActSigmoid;
    case kConvSilu: return kActSilu;
    case kConvLeakyRelu: return kActLeakyRelu;
    case kConvHardSwish: return kActHardSwish;
    case kConvTanh: return kActTanh;
    default: return kActNone;
  }
}

ConvState::~ConvState() {
  if (w_rsc != nullptr) tp_cuda_free(device, w_rsc);
}

int conv_epilogue(const ConvState& s, void* y, const void* bias, const void* z, bool bias_on, bool residual_on,
                  bool act_on, cudaStream_t stream, std::string* err) {
  const ConvParams& p = s.p;
  if (!(bias_on && p.has_bias) && !(residual_on && p.has_z) && !(act_on && p.act != kConvNone)) return 0;
  EpilogueArgs e;
  e.y = y;
  e.dtype = p.dtype;
  if (p.nhwc) {
    e.batch = 1;
    e.rows = p.n * p.out_plane;
    e.cols = p.cout;
    e.add_sc = 1;
  } else {
    e.batch = p.n;
    e.rows = p.cout;
    e.cols = p.out_plane;
    e.add_sr = 1;
  }
  if (bias_on && p.has_bias) e.add = bias;
  if (residual_on && p.has_z) {
    e.residual = z;
    e.residual_after_act = p.z_after_act;
  }
  if (act_on) {
    e.act = epilogue_act(p.act);
    e.act_alpha = p.alpha;
    e.act_beta = p.beta;
  }
  TP_TRY_CUDA(launch_epilogue(e, stream));
  return 0;
}

namespace {

void conv_release(Layer& layer) {
  delete static_cast<ConvState*>(layer.state);
  layer.state = nullptr;
}

int conv_prepare(Engine& engine, Layer& layer, std::string* err) {
  TP_REQUIRE(layer.inputs.size() >= 2 && layer.inputs.size() <= 4 && layer.outputs.size() == 1,
             "expects inputs [X, W, B?, Z?] and outputs [Y]");
  TP_REQUIRE(layer.ints.size() >= 5, "expects ints [k, group, act, layout, math, pads_begin, pads_end, strides, "
                                     "dilations]");
  const int64_t k = layer.ints[0];
  TP_REQUIRE(k >= 1 && k <= 3, "spatial rank must be 1, 2 or 3, got " + std::to_string(k));
  const size_t nsp = static_cast<size_t>(k);
  TP_REQUIRE(layer.ints.size() == 5 + 4 * nsp || layer.ints.size() == 6 + 4 * nsp,
             "expects " + std::to_string(5 + 4 * nsp) + " or " + std::to_string(6 + 4 * nsp) +
                 " ints [k, group, act, layout, math, pads_begin, pads_end, strides, dilations, post?]");
  TP_REQUIRE(layer.floats.size() == 2, "expects floats [alpha, beta]");
  TP_REQUIRE(layer.inputs[0] >= 0 && layer.inputs[1] >= 0, "X and W are required");
  auto* s = new ConvState();
  layer.state = s;
  s->device = engine.device();
  ConvParams& p = s->p;
  p.k = static_cast<int>(k);
  p.group = layer.ints[1];
  p.act = static_cast<int>(layer.ints[2]);
  TP_REQUIRE(p.act >= 0 && p.act < kConvActCount, "act must be 0..7, got " + std::to_string(p.act));
  TP_REQUIRE(layer.ints[3] == 0 || layer.ints[3] == 1, "layout must be 0 (NCHW) or 1 (NHWC)");
  p.nhwc = layer.ints[3] == 1;
  TP_REQUIRE(layer.ints[4] == 0 || layer.ints[4] == 1, "math must be 0 or 1");
  p.tf32 = layer.ints[4] == 1;
  p.alpha = static_cast<float>(layer.floats[0]);
  p.beta = static_cast<float>(layer.floats[1]);
  TP_REQUIRE(p.act != kConvClip || p.alpha <= p.beta, "clip bounds must satisfy alpha <= beta");
  if (layer.ints.size() == 6 + 4 * nsp) {
    const int64_t post = layer.ints[5 + 4 * nsp];
    TP_REQUIRE(post == 0 || post == 1, "post (the residual after the activation) must be 0 or 1, got " +
                                           std::to_string(post));
    p.z_after_act = post == 1;
  }
  p.pb.resize(nsp);
  p.pe.resize(nsp);
  p.st.resize(nsp);
  p.dil.resize(nsp);
  for (size_t i = 0; i < nsp; ++i) {
    p.pb[i] = layer.ints[5 + i];
    p.pe[i] = layer.ints[5 + nsp + i];
    p.st[i] = layer.ints[5 + 2 * nsp + i];
    p.dil[i] = layer.ints[5 + 3 * nsp + i];
    TP_REQUIRE(p.pb[i] >= 0 && p.pe[i] >= 0 && p.st[i] >= 1 && p.dil[i] >= 1,
               "pads must be >= 0, strides and dilations >= 1");
  }
  const TensorDesc& X = engine.tensor(layer.inputs[0]);
  const TensorDesc& W = engine.tensor(layer.inputs[1]);
  const TensorDesc& Y = engine.tensor(layer.outputs[0]);
  p.has_bias = layer.inputs.size() > 2 && layer.inputs[2] >= 0;
  p.has_z = layer.inputs.size() > 3 && layer.inputs[3] >= 0;
  p.dtype = Y.dtype;
  TP_REQUIRE(p.dtype == 1 || p.dtype == 10 || p.dtype == 16, "Y must be float32, float16 or bfloat16");
  TP_REQUIRE(X.dtype == p.dtype && W.dtype == p.dtype, "X, W and Y must have the same dtype");
  p.esize = dtype_size(p.dtype);
  TP_REQUIRE(X.dims.size() == nsp + 2 && W.dims.size() == nsp + 2 && Y.dims.size() == nsp + 2,
             "X " + join(X.dims) + ", W " + join(W.dims) + " and Y " + join(Y.dims) + " must have rank " +
                 std::to_string(nsp + 2));
  TP_REQUIRE(!p.nhwc || nsp == 2, "the NHWC layout is for 2-D convolutions only");
  // Channel and spatial positions of the two layouts.
  const size_t ch = p.nhwc ? nsp + 1 : 1, sp0 = p.nhwc ? 1 : 2, wsp0 = p.nhwc ? 1 : 2, wch = p.nhwc ? nsp + 1 : 1;
  p.n = X.dims[0];
  p.c = X.dims[ch];
  p.cout = W.dims[0];
  p.cg = W.dims[wch];
  TP_REQUIRE(p.group >= 1 && p.c == p.cg * p.group && p.cout % p.group == 0,
             "channels do not match: X " + join(X.dims) + ", W " + join(W.dims) + ", group " +
                 std::to_string(p.group));
  std::vector<int64_t> expect(nsp + 2);
  expect[0] = p.n;
  expect[ch] = p.cout;
  p.out_plane = 1;
  for (size_t i = 0; i < nsp; ++i) {
    p.in_sp.push_back(X.dims[sp0 + i]);
    p.k_sp.push_back(W.dims[wsp0 + i]);
    const int64_t span = p.in_sp[i] + p.pb[i] + p.pe[i] - p.dil[i] * (p.k_sp[i] - 1) - 1;
    TP_REQUIRE(span >= 0, "the dilated kernel is larger than the padded input in spatial dim " + std::to_string(i));
    p.out_sp.push_back(span / p.st[i] + 1);
    expect[sp0 + i] = p.out_sp[i];
    p.out_plane *= p.out_sp[i];
  }
  TP_REQUIRE(Y.dims == expect, "Y is " + join(Y.dims) + ", the convolution gives " + join(expect));
  if (p.has_bias) {
    const TensorDesc& B = engine.tensor(layer.inputs[2]);
    TP_REQUIRE(B.dtype == p.dtype && B.numel() == p.cout,
               "B must hold K = " + std::to_string(p.cout) + " values of Y's dtype, got " + join(B.dims));
  }
  if (p.has_z) {
    const TensorDesc& Z = engine.tensor(layer.inputs[3]);
    TP_REQUIRE(Z.dtype == p.dtype && Z.dims == Y.dims, "Z must have Y's dtype and shape, got " + join(Z.dims));
  }
  layer.workspace = 0;
  if (Y.numel() == 0) {
    s->mode = ConvMode::Empty;
    layer.tactic = 0;
    layer.tactic_name = "empty";
    return 0;
  }
  if (X.numel() == 0 || W.numel() == 0) {
    s->mode = ConvMode::NoInput;  // the convolution sums nothing: Y = act(B + Z)
    layer.tactic = 0;
    layer.tactic_name = "no-input";
    return 0;
  }
  return p.nhwc ? conv_nhwc_prepare(engine, layer, *s, err) : conv_nchw_prepare(engine, layer, *s, err);
}

int conv_launch(const Engine& engine, const Layer& layer, const void* const* in, void* const* out,
                const LaunchContext& ctx, std::string* err) {
  auto* s = static_cast<ConvState*>(layer.state);
  if (s->mode == ConvMode::Empty) return 0;
  if (s->mode == ConvMode::NoInput) {
    const ConvParams& p = s->p;
    TP_TRY_CUDA(cudaMemsetAsync(out[0], 0, static_cast<size_t>(p.n * p.cout * p.out_plane) * p.esize, ctx.stream));
    return conv_epilogue(*s, out[0], p.has_bias ? in[2] : nullptr, p.has_z ? in[3] : nullptr, true, true, true,
                         ctx.stream, err);
  }
  TP_REQUIRE(layer.workspace <= ctx.workspace_bytes, "workspace smaller than the layer needs");
  return s->p.nhwc ? conv_nhwc_launch(engine, layer, *s, in, out, ctx, err)
                   : conv_nchw_launch(engine, layer, *s, in, out, ctx, err);
}

const KernelDef kConv = {"conv", conv_prepare, conv_launch, conv_release};
TP_REGISTER_KERNEL(kConv);

}  // namespace
}  // namespace lib
}  // namespace tp
