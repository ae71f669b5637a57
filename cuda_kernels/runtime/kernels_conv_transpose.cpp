// Kernel "conv_transpose": ONNX ConvTranspose through cuDNN's backward-data convolution, NCHW, 1-D/2-D/3-D.
//
//   Y = conv_transpose(X, W) + B
//
// Parameter layout (mirrored by ep_trtpy/builder/lowering/linalg.py):
//   inputs  [X, W, B]      X [N, Cin, D1..Dk]; W [Cin, Cout / group, K1..Kk]; B [Cout] optional (-1).
//                          All float32 or all float16 (ONNX dtypes 1, 10).
//   outputs [Y]            [N, Cout, O1..Ok], Oi = s_i (Di - 1) + op_i + dil_i (Ki - 1) + 1 - pb_i - pe_i
//   ints    [k, group, pb_1..pb_k, pe_1..pe_k, s_1..s_k, dil_1..dil_k, op_1..op_k]
//             k = spatial rank (1..3); pb/pe = pads at the beginning/end; op = output_padding.
//   floats  []
//   tactic  a cudnnConvolutionBwdDataAlgo_t; < 0 = cudnnFindConvolutionBackwardDataAlgorithmEx at prepare.
//           workspace: set by prepare.
//
// A transposed convolution is the data gradient of the convolution that maps Y's shape to X's shape with the
// same filter: cuDNN's dy is our X (Cin channels), its dx is our Y (Cout channels), its filter [Cin, Cout/group,
// K...] is W as stored. Direct path (pads symmetric and op < stride in every dim): cuDNN writes Y itself with
// pad p = pb = pe (a dx of the size O is consistent with dy exactly when op < stride), then our epilogue adds B.
// Crop path (otherwise): cuDNN writes the full, unpadded result F (Fi = s_i (Di - 1) + dil_i (Ki - 1) + 1) into
// the workspace and our window-copy kernel writes Y[o] = F[o + pb] (zero beyond F: the output_padding region)
// plus B in one pass. 1-D runs as 2-D with a leading unit dimension. An X with no elements gives Y = B.
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

enum class Mode { Empty, NoInput, Direct, Crop };

struct ConvTState {
  Mode mode = Mode::Direct;
  int dtype = 1;
  size_t esize = 4;
  bool has_bias = false;
  int64_t N = 0, Cout = 0, out_plane = 0;
  CudnnConvDescs d;  // d.x = cuDNN's dx (our Y or the full result F), d.y = cuDNN's dy (our X)
  cudnnConvolutionBwdDataAlgo_t algo = CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
  size_t cudnn_ws = 0;
  size_t full_offset = 0;  // byte offset of F in the workspace (crop path)
  WindowCopyArgs crop;
};

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

void convt_release(Layer& layer) {
  delete static_cast<ConvTState*>(layer.state);
  layer.state = nullptr;
}

int choose_algorithm(Engine& engine, Layer& layer, ConvTState& s, cudnnHandle_t h, size_t x_bytes, size_t w_bytes,
                     size_t dx_bytes, std::string* err) {
  auto workspace_for = [&](cudnnConvolutionBwdDataAlgo_t a, size_t* ws) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(h, s.d.w, s.d.y, s.d.conv, s.d.x, a, ws);
  };
  if (reuse_tactic(layer.tactic, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, kMaxWorkspace, workspace_for, &s.algo,
                   &s.cudnn_ws))
    return 0;
  const size_t ws_max = max_search_workspace<cudnnConvolutionBwdDataAlgo_t>(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                                                            kMaxWorkspace, workspace_for);
  // the timed search reads dy (the layer's X) and W, and writes dx (the layer's output before any crop)
  SearchBuffers b;
  if (search_buffers(engine, h, x_bytes, w_bytes, dx_bytes, ws_max, &b, err) != 0) return 1;
  cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  int returned = 0;
  TP_TRY_CUDNN(cudnnFindConvolutionBackwardDataAlgorithmEx(h, s.d.w, b.in1, s.d.y, b.in0, s.d.conv, s.d.x, b.out,
                                                           CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &returned, perf,
                                                           b.workspace, ws_max));
  return pick_timed_algo(perf, returned, s.dtype, s.d.conv, kMaxWorkspace, workspace_for, "backward-data", &s.algo,
                         &s.cudnn_ws, err);
}

int convt_prepare(Engine& engine, Layer& layer, std::string* err) {
  TP_REQUIRE(layer.inputs.size() >= 2 && layer.inputs.size() <= 3 && layer.outputs.size() == 1,
             "expects inputs [X, W, B?] and outputs [Y]");
  TP_REQUIRE(!layer.ints.empty(), "expects ints [k, group, pads_begin, pads_end, strides, dilations, output_padding]");
  const int64_t k = layer.ints[0];
  TP_REQUIRE(k >= 1 && k <= 3, "spatial rank must be 1, 2 or 3, got " + std::to_string(k));
  const size_t nsp = static_cast<size_t>(k);
  TP_REQUIRE(layer.ints.size() == 2 + 5 * nsp,
             "expects " + std::to_string(2 + 5 * nsp) +
                 " ints [k, group, pads_begin, pads_end, strides, dilations, output_padding]");
  TP_REQUIRE(layer.inputs[0] >= 0 && layer.inputs[1] >= 0, "X and W are required");
  auto* s = new ConvTState();
  layer.state = s;
  const int64_t group = layer.ints[1];
  std::vector<int64_t> pb(nsp), pe(nsp), st(nsp), dil(nsp), op(nsp);
  for (size_t i = 0; i < nsp; ++i) {
    pb[i] = layer.ints[2 + i];
    pe[i] = layer.ints[2 + nsp + i];
    st[i] = layer.ints[2 + 2 * nsp + i];
    dil[i] = layer.ints[2 + 3 * nsp + i];
    op[i] = layer.ints[2 + 4 * nsp + i];
    TP_REQUIRE(pb[i] >= 0 && pe[i] >= 0 && st[i] >= 1 && dil[i] >= 1 && op[i] >= 0,
               "pads and output_padding must be >= 0, strides and dilations >= 1");
  }
  const TensorDesc& X = engine.tensor(layer.inputs[0]);
  const TensorDesc& W = engine.tensor(layer.inputs[1]);
  const TensorDesc& Y = engine.tensor(layer.outputs[0]);
  s->has_bias = layer.inputs.size() > 2 && layer.inputs[2] >= 0;
  s->dtype = Y.dtype;
  TP_REQUIRE(s->dtype == 1 || s->dtype == 10, "Y must be float32 or float16");
  TP_REQUIRE(X.dtype == s->dtype && W.dtype == s->dtype, "X, W and Y must have the same dtype");
  s->esize = dtype_size(s->dtype);
  TP_REQUIRE(X.dims.size() == nsp + 2 && W.dims.size() == nsp + 2 && Y.dims.size() == nsp + 2,
             "X " + join(X.dims) + ", W " + join(W.dims) + " and Y " + join(Y.dims) + " must have rank " +
                 std::to_string(nsp + 2));
  const int64_t N = X.dims[0], Cin = X.dims[1], Cg = W.dims[1];
  TP_REQUIRE(group >= 1 && W.dims[0] == Cin && Cin % group == 0,
             "channels do not match: X " + join(X.dims) + ", W " + join(W.dims) + ", group " + std::to_string(group));
  const int64_t Cout = Cg * group;
  std::vector<int64_t> expect = {N, Cout}, full(nsp);
  for (size_t i = 0; i < nsp; ++i) {
    full[i] = st[i] * (X.dims[2 + i] - 1) + dil[i] * (W.dims[2 + i] - 1) + 1;
    expect.push_back(full[i] + op[i] - pb[i] - pe[i]);
  }
  TP_REQUIRE(Y.dims == expect, "Y is " + join(Y.dims) + ", the transposed convolution gives " + join(expect));
  if (s->has_bias) {
    const TensorDesc& B = engine.tensor(layer.inputs[2]);
    TP_REQUIRE(B.dtype == s->dtype && B.numel() == Cout, "B must hold Cout = " + std::to_string(Cout) +
                                                             " values of Y's dtype, got " + join(B.dims));
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
    s->mode = Mode::NoInput;
    layer.tactic = 0;
    return 0;
  }
  bool direct = true;
  for (size_t i = 0; i < nsp; ++i)
    if (pb[i] != pe[i] || op[i] >= st[i]) direct = false;
  s->mode = direct ? Mode::Direct : Mode::Crop;

  // cuDNN computes the transposed convolution as the backward data pass of the forward convolution dx -> dy.
  ForwardConvShape f;
  f.n = N;
  f.c = Cout;
  f.k = Cin;
  f.cg = Cg;
  f.group = group;
  f.strides = st;
  f.dilations = dil;
  std::vector<int64_t> dxsp(nsp);
  for (size_t i = 0; i < nsp; ++i) {
    f.y_sp.push_back(X.dims[2 + i]);
    f.k_sp.push_back(W.dims[2 + i]);
    dxsp[i] = direct ? Y.dims[2 + i] : full[i];
    f.pads.push_back(direct ? pb[i] : 0);
  }
  f.x_sp = dxsp;
  if (set_forward_descriptors(&s->d, s->dtype, false, f, direct ? "Y" : "the uncropped result", "X", err)) return 1;

  int64_t dx_elems = N * Cout;
  for (size_t i = 0; i < nsp; ++i) dx_elems *= dxsp[i];
  const size_t dx_bytes = static_cast<size_t>(dx_elems) * s->esize;
  cudnnHandle_t h = nullptr;
  if (engine.handles().cudnn(&h, err)) return 1;
  if (choose_algorithm(engine, layer, *s, h, static_cast<size_t>(X.nbytes), static_cast<size_t>(W.nbytes), dx_bytes,
                       err))
    return 1;
  layer.tactic = static_cast<int64_t>(s->algo);
  s->full_offset = align256(s->cudnn_ws);
  layer.workspace = s->full_offset + (direct ? 0 : align256(dx_bytes));
  if (!direct) {
    s->crop.dtype = s->dtype;
    s->crop.nsp = static_cast<int>(nsp);
    s->crop.n = N;
    s->crop.c = Cout;
    for (size_t i = 0; i < nsp; ++i) {
      s->crop.in_dims[i] = full[i];
      s->crop.out_dims[i] = Y.dims[2 + i];
      s->crop.shift[i] = pb[i];
    }
  }
  return 0;
}

int convt_launch(const Engine& engine, const Layer& layer, const void* const* in, void* const* out,
                 const LaunchContext& ctx, std::string* err) {
  auto* s = static_cast<ConvTState*>(layer.state);
  if (s->mode == Mode::Empty) return 0;
  const void* X = in[0];
  const void* W = in[1];
  const void* B = s->has_bias ? in[2] : nullptr;
  void* Y = out[0];
  EpilogueArgs e;
  e.y = Y;
  e.dtype = s->dtype;
  e.batch = s->N;
  e.rows = s->Cout;
  e.cols = s->out_plane;
  e.add = B;
  e.add_sb = 0;
  e.add_sr = 1;
  e.add_sc = 0;
  if (s->mode == Mode::NoInput) {
    TP_TRY_CUDA(cudaMemsetAsync(Y, 0, static_cast<size_t>(s->N * s->Cout * s->out_plane) * s->esize, ctx.stream));
    if (s->has_bias) TP_TRY_CUDA(launch_epilogue(e, ctx.stream));
    return 0;
  }
  TP_REQUIRE(layer.workspace <= ctx.workspace_bytes, "workspace smaller than the layer needs");
  cudnnHandle_t h = nullptr;
  if (engine.handles().cudnn(&h, err)) return 1;
  TP_TRY_CUDNN(cudnnSetStream(h, ctx.stream));
  void* ws = s->cudnn_ws ? ctx.workspace : nullptr;
  void* dx = s->mode == Mode::Direct ? Y : static_cast<char*>(ctx.workspace) + s->full_offset;
  const float one = 1.f, zero = 0.f;
  TP_TRY_CUDNN(cudnnConvolutionBackwardData(h, &one, s->d.w, W, s->d.y, X, s->d.conv, s->algo, ws, s->cudnn_ws, &zero,
                                            s->d.x, dx));
  if (s->mode == Mode::Direct) {
    if (s->has_bias) TP_TRY_CUDA(launch_epilogue(e, ctx.stream));
    return 0;
  }
  WindowCopyArgs a = s->crop;
  a.in = dx;
  a.out = Y;
  a.bias = B;
  TP_TRY_CUDA(launch_window_copy(a, ctx.stream));
  return 0;
}

const KernelDef kConvTranspose = {"conv_transpose", convt_prepare, convt_launch, convt_release};
TP_REGISTER_KERNEL(kConvTranspose);

}  // namespace
}  // namespace tp
