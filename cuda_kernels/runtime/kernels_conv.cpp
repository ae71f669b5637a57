// Kernel "conv": cuDNN forward convolution for ep_trtpy::FusedConv (and ONNX Conv), NCHW, 1-D/2-D/3-D.
//
//   Y = act(conv(X, W) + B + Z)
//
// Parameter layout (mirrored by ep_trtpy/builder/lowering/linalg.py):
//   inputs  [X, W, B, Z]   X [N, C, D1..Dk]; W [Cout, C / group, K1..Kk]; B [Cout] optional (-1); Z optional (-1),
//                          of Y's shape. All float32 or all float16 (ONNX dtypes 1, 10).
//   outputs [Y]            [N, Cout, O1..Ok], Oi = floor((Di + pb_i + pe_i - dil_i (Ki - 1) - 1) / s_i) + 1
//   ints    [k, group, act, pb_1..pb_k, pe_1..pe_k, s_1..s_k, dil_1..dil_k]
//             k = spatial rank (1..3); act 0 none, 1 relu; pb/pe = pads at the beginning/end of each spatial dim.
//   floats  []
//   tactic  a cudnnConvolutionFwdAlgo_t; < 0 = cudnnFindConvolutionForwardAlgorithmEx at prepare (timed on scratch
//           buffers) and keep the fastest admissible algorithm. workspace: set by prepare.
//
// 1-D convolutions run as 2-D with a leading unit spatial dimension. cuDNN only takes symmetric pads: with
// pads (pb, pe) we give cuDNN p = min(pb, pe) and first copy X into the workspace zero-padded by pb - p before
// and pe - p after (our window-copy kernel), so the result is exactly the asymmetric convolution.
// Bias, residual and ReLU: cudnnConvolutionBiasActivationForward when there is a bias and either ReLU (any
// algorithm) or no activation with IMPLICIT_PRECOMP_GEMM (cuDNN's IDENTITY activation restriction), checked by
// a trial call at prepare; otherwise cudnnConvolutionForward followed by our epilogue kernel
// (tp/library_epilogues.h). An X with no elements (C == 0 or an empty spatial dim) gives Y = act(B + Z).
// Math: float32 with CUDNN_FMA_MATH (no TF32), float16 with tensor cores (cudnn_conv_common.h).
#include <algorithm>
#include <string>
#include <vector>

#include "cudnn_conv_common.h"
#include "tp/engine.h"
#include "tp/library_epilogues.h"
#include "tp/library_support.h"

namespace tp {
namespace {
using namespace ::tp::lib;  // NOLINT: this file's helpers

constexpr size_t kMaxWorkspace = size_t(256) << 20;

enum class Mode { Empty, NoInput, Cudnn };

struct ConvState {
  Mode mode = Mode::Cudnn;
  int dtype = 1;
  size_t esize = 4;
  int act = kActNone;
  bool has_bias = false, has_z = false;
  int64_t N = 0, Cout = 0, out_plane = 0;
  CudnnConvDescs d;
  cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  size_t cudnn_ws = 0;
  bool prepad = false;
  WindowCopyArgs pad;       // in/out pointers filled at launch
  size_t pad_offset = 0;    // byte offset of the padded X in the workspace
  bool fused = false;       // cudnnConvolutionBiasActivationForward
};

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

void conv_release(Layer& layer) {
  delete static_cast<ConvState*>(layer.state);
  layer.state = nullptr;
}

int run_epilogue(const ConvState& s, void* y, const void* bias, const void* z, cudaStream_t stream, std::string* err) {
  if (!s.has_bias && !s.has_z && s.act == kActNone) return 0;
  EpilogueArgs e;
  e.y = y;
  e.dtype = s.dtype;
  e.batch = s.N;
  e.rows = s.Cout;
  e.cols = s.out_plane;
  if (s.has_bias) {
    e.add = bias;
    e.add_sb = 0;
    e.add_sr = 1;
    e.add_sc = 0;
  }
  e.residual = s.has_z ? z : nullptr;
  e.act = s.act;
  TP_TRY_CUDA(launch_epilogue(e, stream));
  return 0;
}

// Choose s.algo (and the math type on the descriptor) and s.cudnn_ws.
int choose_algorithm(Engine& engine, Layer& layer, ConvState& s, cudnnHandle_t h, size_t x_bytes, size_t w_bytes,
                     size_t y_bytes, std::string* err) {
  auto workspace_for = [&](cudnnConvolutionFwdAlgo_t a, size_t* ws) {
    return cudnnGetConvolutionForwardWorkspaceSize(h, s.d.x, s.d.w, s.d.conv, s.d.y, a, ws);
  };
  if (reuse_tactic(layer.tactic, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, kMaxWorkspace, workspace_for, &s.algo,
                   &s.cudnn_ws))
    return 0;
  const size_t ws_max =
      max_search_workspace<cudnnConvolutionFwdAlgo_t>(CUDNN_CONVOLUTION_FWD_ALGO_COUNT, kMaxWorkspace, workspace_for);
  SearchBuffers b;
  if (search_buffers(engine, h, x_bytes, w_bytes, y_bytes, ws_max, &b, err) != 0) return 1;
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int returned = 0;
  TP_TRY_CUDNN(cudnnFindConvolutionForwardAlgorithmEx(h, s.d.x, b.in0, s.d.w, b.in1, s.d.conv, s.d.y, b.out,
                                                      CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf, b.workspace,
                                                      ws_max));
  return pick_timed_algo(perf, returned, s.dtype, s.d.conv, kMaxWorkspace, workspace_for, "forward", &s.algo,
                         &s.cudnn_ws, err);
}

int conv_prepare(Engine& engine, Layer& layer, std::string* err) {
  TP_REQUIRE(layer.inputs.size() >= 2 && layer.inputs.size() <= 4 && layer.outputs.size() == 1,
             "expects inputs [X, W, B?, Z?] and outputs [Y]");
  TP_REQUIRE(!layer.ints.empty(), "expects ints [k, group, act, pads_begin, pads_end, strides, dilations]");
  const int64_t k = layer.ints[0];
  TP_REQUIRE(k >= 1 && k <= 3, "spatial rank must be 1, 2 or 3, got " + std::to_string(k));
  const size_t nsp = static_cast<size_t>(k);
  TP_REQUIRE(layer.ints.size() == 3 + 4 * nsp, "expects " + std::to_string(3 + 4 * nsp) +
                                                    " ints [k, group, act, pads_begin, pads_end, strides, dilations]");
  TP_REQUIRE(layer.inputs[0] >= 0 && layer.inputs[1] >= 0, "X and W are required");
  auto* s = new ConvState();
  layer.state = s;
  const int64_t group = layer.ints[1];
  s->act = static_cast<int>(layer.ints[2]);
  TP_REQUIRE(s->act == kActNone || s->act == kActRelu, "act must be 0 (none) or 1 (relu)");
  std::vector<int64_t> pb(nsp), pe(nsp), st(nsp), dil(nsp);
  for (size_t i = 0; i < nsp; ++i) {
    pb[i] = layer.ints[3 + i];
    pe[i] = layer.ints[3 + nsp + i];
    st[i] = layer.ints[3 + 2 * nsp + i];
    dil[i] = layer.ints[3 + 3 * nsp + i];
    TP_REQUIRE(pb[i] >= 0 && pe[i] >= 0 && st[i] >= 1 && dil[i] >= 1,
               "pads must be >= 0, strides and dilations >= 1");
  }
  const TensorDesc& X = engine.tensor(layer.inputs[0]);
  const TensorDesc& W = engine.tensor(layer.inputs[1]);
  const TensorDesc& Y = engine.tensor(layer.outputs[0]);
  s->has_bias = layer.inputs.size() > 2 && layer.inputs[2] >= 0;
  s->has_z = layer.inputs.size() > 3 && layer.inputs[3] >= 0;
  s->dtype = Y.dtype;
  TP_REQUIRE(s->dtype == 1 || s->dtype == 10, "Y must be float32 or float16");
  TP_REQUIRE(X.dtype == s->dtype && W.dtype == s->dtype, "X, W and Y must have the same dtype");
  s->esize = dtype_size(s->dtype);
  TP_REQUIRE(X.dims.size() == nsp + 2 && W.dims.size() == nsp + 2 && Y.dims.size() == nsp + 2,
             "X " + join(X.dims) + ", W " + join(W.dims) + " and Y " + join(Y.dims) + " must have rank " +
                 std::to_string(nsp + 2));
  const int64_t N = X.dims[0], C = X.dims[1], Cout = W.dims[0], Cg = W.dims[1];
  TP_REQUIRE(group >= 1 && C == Cg * group && Cout % group == 0,
             "channels do not match: X " + join(X.dims) + ", W " + join(W.dims) + ", group " + std::to_string(group));
  std::vector<int64_t> expect = {N, Cout};
  for (size_t i = 0; i < nsp; ++i) {
    const int64_t span = X.dims[2 + i] + pb[i] + pe[i] - dil[i] * (W.dims[2 + i] - 1) - 1;
    TP_REQUIRE(span >= 0, "the dilated kernel is larger than the padded input in spatial dim " + std::to_string(i));
    expect.push_back(span / st[i] + 1);
  }
  TP_REQUIRE(Y.dims == expect, "Y is " + join(Y.dims) + ", the convolution gives " + join(expect));
  if (s->has_bias) {
    const TensorDesc& B = engine.tensor(layer.inputs[2]);
    TP_REQUIRE(B.dtype == s->dtype && B.numel() == Cout, "B must hold Cout = " + std::to_string(Cout) +
                                                             " values of Y's dtype, got " + join(B.dims));
  }
  if (s->has_z) {
    const TensorDesc& Z = engine.tensor(layer.inputs[3]);
    TP_REQUIRE(Z.dtype == s->dtype && Z.dims == Y.dims, "Z must have Y's dtype and shape, got " + join(Z.dims));
  }
  s->N = N;
  s->Cout = Cout;
  s->out_plane = 1;
  for (size_t i = 0; i < nsp; ++i) s->out_plane *= Y.dims[2 + i];
  layer.workspace = 0;
  if (Y.numel() == 0) {
    s->mode = Mode::Empty;
    layer.tactic = 0;
    return 0;
  }
  if (X.numel() == 0 || W.numel() == 0) {
    s->mode = Mode::NoInput;  // the convolution sums nothing: Y = act(B + Z)
    layer.tactic = 0;
    return 0;
  }

  // ---- cuDNN geometry: symmetric pads, the rest by pre-padding X ------------------------------------------
  ConvGeometry g;
  g.nsp = static_cast<int>(nsp);
  std::vector<int64_t> xsp(nsp), ksp(nsp), ysp(nsp), psym(nsp);
  for (size_t i = 0; i < nsp; ++i) {
    psym[i] = std::min(pb[i], pe[i]);
    xsp[i] = X.dims[2 + i] + (pb[i] - psym[i]) + (pe[i] - psym[i]);
    ksp[i] = W.dims[2 + i];
    ysp[i] = Y.dims[2 + i];
    if (pb[i] != pe[i]) s->prepad = true;
  }
  std::vector<int64_t> xd = {N, C}, wd = {Cout, Cg}, yd = {N, Cout};
  for (int64_t v : g.lift(xsp, 1)) xd.push_back(v);
  for (int64_t v : g.lift(ksp, 1)) wd.push_back(v);
  for (int64_t v : g.lift(ysp, 1)) yd.push_back(v);
  std::vector<int> xi, wi, yi, pads, strides, dils;
  if (to_int_dims(xd, &xi, "X (padded)", err) || to_int_dims(wd, &wi, "W", err) || to_int_dims(yd, &yi, "Y", err) ||
      to_int_params(g.lift(psym, 0), &pads, "pad", err) || to_int_params(g.lift(st, 1), &strides, "stride", err) ||
      to_int_params(g.lift(dil, 1), &dils, "dilation", err))
    return 1;
  const cudnnDataType_t type = cudnn_type(s->dtype);
  if (set_tensor_nd(&s->d.x, type, xi, err) || set_filter_nd(&s->d.w, type, wi, err) ||
      set_tensor_nd(&s->d.y, type, yi, err) ||
      set_conv_nd(&s->d.conv, pads, strides, dils, static_cast<int>(group), math_policy(s->dtype), err))
    return 1;
  std::vector<int> got(yi.size(), 0);
  TP_TRY_CUDNN(cudnnGetConvolutionNdForwardOutputDim(s->d.conv, s->d.x, s->d.w, static_cast<int>(got.size()),
                                                     got.data()));
  TP_REQUIRE(got == yi, "cuDNN computes another output shape than Y " + join(Y.dims));
  if (s->prepad) {
    s->pad.dtype = s->dtype;
    s->pad.nsp = static_cast<int>(nsp);
    s->pad.n = N;
    s->pad.c = C;
    for (size_t i = 0; i < nsp; ++i) {
      s->pad.in_dims[i] = X.dims[2 + i];
      s->pad.out_dims[i] = xsp[i];
      s->pad.shift[i] = -(pb[i] - psym[i]);
    }
  }

  cudnnHandle_t h = nullptr;
  if (engine.handles().cudnn(&h, err)) return 1;
  int64_t x_elems = N * C, w_elems = W.numel();
  for (size_t i = 0; i < nsp; ++i) x_elems *= xsp[i];
  const size_t x_bytes = static_cast<size_t>(x_elems) * s->esize;
  const size_t w_bytes = static_cast<size_t>(w_elems) * s->esize;
  const size_t y_bytes = static_cast<size_t>(Y.nbytes);
  if (choose_algorithm(engine, layer, *s, h, x_bytes, w_bytes, y_bytes, err)) return 1;
  layer.tactic = static_cast<int64_t>(s->algo);
  s->pad_offset = align256(s->cudnn_ws);
  layer.workspace = s->pad_offset + (s->prepad ? align256(x_bytes) : 0);

  // ---- fused bias/activation: only where cuDNN supports it, confirmed by a trial call ---------------------
  const bool relu = s->act == kActRelu;
  if (s->has_bias && (relu || s->algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM)) {
    std::vector<int> bd(yi.size(), 1);
    bd[1] = static_cast<int>(Cout);
    if (set_tensor_nd(&s->d.bias, type, bd, err)) return 1;
    TP_TRY_CUDNN(cudnnCreateActivationDescriptor(&s->d.act));
    TP_TRY_CUDNN(cudnnSetActivationDescriptor(s->d.act, relu ? CUDNN_ACTIVATION_RELU : CUDNN_ACTIVATION_IDENTITY,
                                              CUDNN_PROPAGATE_NAN, 0.0));
    void* X0 = engine.scratch_buffer(0, x_bytes);
    void* W0 = engine.scratch_buffer(1, w_bytes);
    void* Y0 = engine.scratch_buffer(2, align256(y_bytes) + align256(static_cast<size_t>(Cout) * s->esize));
    void* WS = s->cudnn_ws ? engine.scratch_buffer(3, s->cudnn_ws) : nullptr;
    TP_REQUIRE(X0 && W0 && Y0 && (WS || !s->cudnn_ws), std::string("cannot allocate scratch buffers: ") +
                                                           tp_last_error());
    void* B0 = static_cast<char*>(Y0) + align256(y_bytes);
    TP_TRY_CUDA(cudaMemset(X0, 0, x_bytes));
    TP_TRY_CUDA(cudaMemset(W0, 0, w_bytes));
    TP_TRY_CUDA(cudaMemset(Y0, 0, align256(y_bytes) + align256(static_cast<size_t>(Cout) * s->esize)));
    TP_TRY_CUDNN(cudnnSetStream(h, nullptr));
    const float one = 1.f, zero = 0.f;
    cudnnStatus_t trial = cudnnConvolutionBiasActivationForward(
        h, &one, s->d.x, X0, s->d.w, W0, s->d.conv, s->algo, WS, s->cudnn_ws, s->has_z ? &one : &zero, s->d.y, Y0,
        s->d.bias, B0, s->d.act, s->d.y, Y0);
    if (trial == CUDNN_STATUS_SUCCESS) {
      TP_TRY_CUDA(cudaDeviceSynchronize());
      s->fused = true;
    } else {
      cudaGetLastError();
    }
  }
  return 0;
}

int conv_launch(const Engine& engine, const Layer& layer, const void* const* in, void* const* out,
                const LaunchContext& ctx, std::string* err) {
  auto* s = static_cast<ConvState*>(layer.state);
  if (s->mode == Mode::Empty) return 0;
  const void* X = in[0];
  const void* W = in[1];
  const void* B = s->has_bias ? in[2] : nullptr;
  const void* Z = s->has_z ? in[3] : nullptr;
  void* Y = out[0];
  if (s->mode == Mode::NoInput) {
    TP_TRY_CUDA(cudaMemsetAsync(Y, 0, static_cast<size_t>(s->N * s->Cout * s->out_plane) * s->esize, ctx.stream));
    return run_epilogue(*s, Y, B, Z, ctx.stream, err);
  }
  TP_REQUIRE(layer.workspace <= ctx.workspace_bytes, "workspace smaller than the layer needs");
  void* ws = s->cudnn_ws ? ctx.workspace : nullptr;
  if (s->prepad) {
    void* padded = static_cast<char*>(ctx.workspace) + s->pad_offset;
    WindowCopyArgs a = s->pad;
    a.in = X;
    a.out = padded;
    TP_TRY_CUDA(launch_window_copy(a, ctx.stream));
    X = padded;
  }
  cudnnHandle_t h = nullptr;
  if (engine.handles().cudnn(&h, err)) return 1;
  TP_TRY_CUDNN(cudnnSetStream(h, ctx.stream));
  const float one = 1.f, zero = 0.f;
  if (s->fused) {
    cudnnStatus_t st = cudnnConvolutionBiasActivationForward(
        h, &one, s->d.x, X, s->d.w, W, s->d.conv, s->algo, ws, s->cudnn_ws, s->has_z ? &one : &zero, s->d.y,
        s->has_z ? Z : Y, s->d.bias, B, s->d.act, s->d.y, Y);
    if (st == CUDNN_STATUS_SUCCESS) return 0;
    // Refused at run time (it passed the trial at prepare): the unfused path computes the same.
  }
  TP_TRY_CUDNN(cudnnConvolutionForward(h, &one, s->d.x, X, s->d.w, W, s->d.conv, s->algo, ws, s->cudnn_ws, &zero,
                                       s->d.y, Y));
  return run_epilogue(*s, Y, B, Z, ctx.stream, err);
}

const KernelDef kConv = {"conv", conv_prepare, conv_launch, conv_release};
TP_REGISTER_KERNEL(kConv);

}  // namespace
}  // namespace tp
