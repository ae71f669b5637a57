// "conv" in NCHW (layout 0) through cuDNN's legacy API, 1-D/2-D/3-D (kernels_conv.cpp has the layout).
//
// 1-D convolutions run as 2-D with a leading unit spatial dimension. cuDNN only takes symmetric pads: with pads
// (pb, pe) we give cuDNN p = min(pb, pe) and first copy X into the workspace zero-padded by pb - p before and
// pe - p after (our window-copy kernel), so the result is exactly the asymmetric convolution.
// Tactic: a cudnnConvolutionFwdAlgo_t ("legacy:<algo>"); found by cudnnFindConvolutionForwardAlgorithmEx when
// the layer has none (at tuning level 0: cudnnGetConvolutionForwardAlgorithm_v7's first choice, untimed).
// Bias and activation: cudnnConvolutionBiasActivationForward when there is a bias and either ReLU (any algorithm)
// or no activation with IMPLICIT_PRECOMP_GEMM (cuDNN's IDENTITY activation restriction), checked by a trial call
// at prepare; otherwise cudnnConvolutionForward followed by our epilogue kernel (tp/library_epilogues.h). cuDNN's
// fused call adds Z before the activation only: a residual after it (post) is added by our epilogue afterwards.
// Math: float32 with CUDNN_FMA_MATH unless the math flag allows TF32; 16-bit types with tensor cores.
#include <algorithm>
#include <string>
#include <vector>

#include "conv_common.h"
#include "tp/library_support.h"

namespace tp {
namespace lib {
namespace {

constexpr size_t kMaxWorkspace = size_t(256) << 20;

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

std::string legacy_name(cudnnConvolutionFwdAlgo_t a) { return "legacy:" + std::to_string(static_cast<int>(a)); }

// The algorithm a tactic name or number names, or -1.
int64_t named_algo(const Layer& layer) {
  if (!layer.tactic_name.empty()) {
    const std::string pre = "legacy:";
    if (layer.tactic_name.compare(0, pre.size(), pre) != 0) return -1;
    try {
      return std::stoll(layer.tactic_name.substr(pre.size()));
    } catch (...) {
      return -1;
    }
  }
  return layer.tactic;
}

// Choose s.algo (and the math type on the descriptor) and s.cudnn_ws.
int choose_algorithm(Engine& engine, Layer& layer, ConvState& s, cudnnHandle_t h, size_t x_bytes, size_t w_bytes,
                     size_t y_bytes, std::string* err) {
  const ConvParams& p = s.p;
  auto workspace_for = [&](cudnnConvolutionFwdAlgo_t a, size_t* ws) {
    return cudnnGetConvolutionForwardWorkspaceSize(h, s.d.x, s.d.w, s.d.conv, s.d.y, a, ws);
  };
  if (reuse_tactic(named_algo(layer), CUDNN_CONVOLUTION_FWD_ALGO_COUNT, kMaxWorkspace, workspace_for, &s.algo,
                   &s.cudnn_ws))
    return 0;
  if (engine.tuning_level() == 0) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int returned = 0;
    TP_TRY_CUDNN(cudnnGetConvolutionForwardAlgorithm_v7(h, s.d.x, s.d.w, s.d.conv, s.d.y,
                                                        CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf));
    return pick_timed_algo(perf, returned, p.dtype, s.d.conv, kMaxWorkspace, workspace_for, "forward", &s.algo,
                           &s.cudnn_ws, err, p.tf32);
  }
  const size_t ws_max =
      max_search_workspace<cudnnConvolutionFwdAlgo_t>(CUDNN_CONVOLUTION_FWD_ALGO_COUNT, kMaxWorkspace, workspace_for);
  SearchBuffers b;
  if (search_buffers(engine, h, x_bytes, w_bytes, y_bytes, ws_max, &b, err) != 0) return 1;
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int returned = 0;
  TP_TRY_CUDNN(cudnnFindConvolutionForwardAlgorithmEx(h, s.d.x, b.in0, s.d.w, b.in1, s.d.conv, s.d.y, b.out,
                                                      CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf, b.workspace,
                                                      ws_max));
  tp_counter_add(TP_COUNTER_TACTICS_TIMED, static_cast<uint64_t>(std::max(returned, 0)));
  for (int i = 0; i < returned; ++i)
    layer.timings.emplace_back(legacy_name(perf[i].algo),
                               perf[i].status == CUDNN_STATUS_SUCCESS ? static_cast<double>(perf[i].time) : 1e300);
  return pick_timed_algo(perf, returned, p.dtype, s.d.conv, kMaxWorkspace, workspace_for, "forward", &s.algo,
                         &s.cudnn_ws, err, p.tf32);
}

}  // namespace

int conv_nchw_prepare(Engine& engine, Layer& layer, ConvState& s, std::string* err) {
  s.mode = ConvMode::Legacy;
  const ConvParams& p = s.p;
  const size_t nsp = p.in_sp.size();
  std::vector<int64_t> xsp(nsp), psym(nsp);
  for (size_t i = 0; i < nsp; ++i) {
    psym[i] = std::min(p.pb[i], p.pe[i]);
    xsp[i] = p.in_sp[i] + (p.pb[i] - psym[i]) + (p.pe[i] - psym[i]);
    if (p.pb[i] != p.pe[i]) s.prepad = true;
  }
  ForwardConvShape f;
  f.n = p.n;
  f.c = p.c;
  f.k = p.cout;
  f.cg = p.cg;
  f.x_sp = xsp;
  f.k_sp = p.k_sp;
  f.y_sp = p.out_sp;
  f.pads = psym;
  f.strides = p.st;
  f.dilations = p.dil;
  f.group = p.group;
  if (set_forward_descriptors(&s.d, p.dtype, p.tf32, f, "X (padded)", "Y", err)) return 1;
  const cudnnDataType_t type = cudnn_type(p.dtype);
  if (s.prepad) {
    s.pad.dtype = p.dtype;
    s.pad.nsp = static_cast<int>(nsp);
    s.pad.n = p.n;
    s.pad.c = p.c;
    for (size_t i = 0; i < nsp; ++i) {
      s.pad.in_dims[i] = p.in_sp[i];
      s.pad.out_dims[i] = xsp[i];
      s.pad.shift[i] = -(p.pb[i] - psym[i]);
    }
  }

  cudnnHandle_t h = nullptr;
  if (engine.handles().cudnn(&h, err)) return 1;
  int64_t x_elems = p.n * p.c;
  for (size_t i = 0; i < nsp; ++i) x_elems *= xsp[i];
  const size_t x_bytes = static_cast<size_t>(x_elems) * p.esize;
  int64_t k_elems = p.cout * p.cg;
  for (int64_t v : p.k_sp) k_elems *= v;
  const size_t w_bytes = static_cast<size_t>(k_elems) * p.esize;
  const size_t y_bytes = static_cast<size_t>(p.n * p.cout * p.out_plane) * p.esize;
  if (choose_algorithm(engine, layer, s, h, x_bytes, w_bytes, y_bytes, err)) return 1;
  layer.tactic = static_cast<int64_t>(s.algo);
  layer.tactic_name = legacy_name(s.algo);
  s.pad_offset = align256(s.cudnn_ws);
  layer.workspace = s.pad_offset + (s.prepad ? align256(x_bytes) : 0);

  // ---- fused bias/activation: only where cuDNN supports it, confirmed by a trial call ---------------------
  const bool relu = p.act == kConvRelu;
  if (p.has_bias && (relu || (p.act == kConvNone && s.algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM))) {
    std::vector<int> bd(p.out_sp.size() == 1 ? 4 : p.out_sp.size() + 2, 1);
    bd[1] = static_cast<int>(p.cout);
    if (set_tensor_nd(&s.d.bias, type, bd, err)) return 1;
    TP_TRY_CUDNN(cudnnCreateActivationDescriptor(&s.d.act));
    TP_TRY_CUDNN(cudnnSetActivationDescriptor(s.d.act, relu ? CUDNN_ACTIVATION_RELU : CUDNN_ACTIVATION_IDENTITY,
                                              CUDNN_PROPAGATE_NAN, 0.0));
    void* X0 = engine.scratch_buffer(0, x_bytes);
    void* W0 = engine.scratch_buffer(1, w_bytes);
    void* Y0 = engine.scratch_buffer(2, align256(y_bytes) + align256(static_cast<size_t>(p.cout) * p.esize));
    void* WS = s.cudnn_ws ? engine.scratch_buffer(3, s.cudnn_ws) : nullptr;
    TP_REQUIRE(X0 && W0 && Y0 && (WS || !s.cudnn_ws), std::string("cannot allocate scratch buffers: ") +
                                                          tp_last_error());
    void* B0 = static_cast<char*>(Y0) + align256(y_bytes);
    TP_TRY_CUDA(cudaMemset(X0, 0, x_bytes));
    TP_TRY_CUDA(cudaMemset(W0, 0, w_bytes));
    TP_TRY_CUDA(cudaMemset(Y0, 0, align256(y_bytes) + align256(static_cast<size_t>(p.cout) * p.esize)));
    TP_TRY_CUDNN(cudnnSetStream(h, nullptr));
    const float one = 1.f, zero = 0.f;
    const bool z_fused = p.has_z && !p.z_after_act;
    cudnnStatus_t trial = cudnnConvolutionBiasActivationForward(
        h, &one, s.d.x, X0, s.d.w, W0, s.d.conv, s.algo, WS, s.cudnn_ws, z_fused ? &one : &zero, s.d.y, Y0,
        s.d.bias, B0, s.d.act, s.d.y, Y0);
    if (trial == CUDNN_STATUS_SUCCESS) {
      TP_TRY_CUDA(cudaDeviceSynchronize());
      s.fused = true;
    } else {
      cudaGetLastError();
    }
  }
  return 0;
}

int conv_nchw_launch(const Engine& engine, const Layer& layer, ConvState& s, const void* const* in, void* const* out,
                     const LaunchContext& ctx, std::string* err) {
  (void)layer;
  const ConvParams& p = s.p;
  const void* X = in[0];
  const void* W = in[1];
  const void* B = p.has_bias ? in[2] : nullptr;
  const void* Z = p.has_z ? in[3] : nullptr;
  void* Y = out[0];
  void* ws = s.cudnn_ws ? ctx.workspace : nullptr;
  if (s.prepad) {
    void* padded = static_cast<char*>(ctx.workspace) + s.pad_offset;
    WindowCopyArgs a = s.pad;
    a.in = X;
    a.out = padded;
    TP_TRY_CUDA(launch_window_copy(a, ctx.stream));
    X = padded;
  }
  cudnnHandle_t h = nullptr;
  if (engine.handles().cudnn(&h, err)) return 1;
  TP_TRY_CUDNN(cudnnSetStream(h, ctx.stream));
  const float one = 1.f, zero = 0.f;
  if (s.fused) {
    const bool z_fused = p.has_z && !p.z_after_act;
    cudnnStatus_t st = cudnnConvolutionBiasActivationForward(
        h, &one, s.d.x, X, s.d.w, W, s.d.conv, s.algo, ws, s.cudnn_ws, z_fused ? &one : &zero, s.d.y,
        z_fused ? Z : Y, s.d.bias, B, s.d.act, s.d.y, Y);
    if (st == CUDNN_STATUS_SUCCESS)
      return z_fused ? 0 : conv_epilogue(s, Y, B, Z, false, true, false, ctx.stream, err);  // post: + Z
    // Refused at run time (it passed the trial at prepare): the unfused path computes the same.
  }
  TP_TRY_CUDNN(cudnnConvolutionForward(h, &one, s.d.x, X, s.d.w, W, s.d.conv, s.algo, ws, s.cudnn_ws, &zero,
                                       s.d.y, Y));
  return conv_epilogue(s, Y, B, Z, true, true, true, ctx.stream, err);
}

}  // namespace lib
}  // namespace tp
