// Small CUDA kernels used around the library calls of the "gemm", "conv" and "conv_transpose" kernels
// (cuda_kernels/kernels/library_epilogues.cu): epilogues cuBLASLt/cuDNN cannot fuse exactly, and the zero-padded /
// cropped window copies that turn asymmetric padding into what cuDNN accepts. float32, float16 and bfloat16 (ONNX
// dtypes 1, 10 and 16); arithmetic in float32. Launchers return the launch status and never synchronize.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tp {
namespace lib {

// Activation codes of the epilogue (the gemm layout uses 0-3 directly; the conv layout maps its own codes).
enum EpilogueAct : int {
  kActNone = 0,
  kActRelu = 1,
  kActGelu = 2,
  kActGeluTanh = 3,
  kActClip = 4,       // min(max(v, alpha), beta)
  kActSigmoid = 5,
  kActSilu = 6,       // v * sigmoid(v)
  kActLeakyRelu = 7,  // v >= 0 ? v : alpha * v
  kActHardSwish = 8,  // v * clip(v + 3, 0, 6) / 6
  kActTanh = 9,
};

// y is contiguous [batch, rows, cols]. For every element (b, r, c):
//   v = y[b, r, c]
//   v += add_scale * add[b * add_sb + r * add_sr + c * add_sc]     if add != nullptr  (strides in elements; 0 =
//                                                                   broadcast: bias vectors, Gemm's C, ...)
//   v += residual[b, r, c]                                          if residual != nullptr (same layout as y)
//                                                                   and !residual_after_act
//   v = act(v)                          relu: max(v, 0) (NaN stays NaN); gelu: 0.5 v (1 + erf(v / sqrt 2));
//                                       gelu_tanh: 0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))); the others as
//                                       EpilogueAct says, with act_alpha / act_beta
//   v += residual[b, r, c]                                          if residual != nullptr && residual_after_act
//   y[b, r, c] = v
struct EpilogueArgs {
  void* y = nullptr;
  int dtype = 1;
  int64_t batch = 1, rows = 1, cols = 1;
  const void* add = nullptr;
  int64_t add_sb = 0, add_sr = 0, add_sc = 0;
  float add_scale = 1.f;
  const void* residual = nullptr;
  bool residual_after_act = false;  // a CSP bottleneck's shortcut: act(conv + bias) + residual
  int act = kActNone;
  float act_alpha = 0.f, act_beta = 0.f;
};
cudaError_t launch_epilogue(const EpilogueArgs& a, cudaStream_t stream);

// out is contiguous [n, c, out_dims[0..nsp)], in is contiguous [n, c, in_dims[0..nsp)]. For every output element:
//   j = o + shift (per spatial dim);  out[n, c, o] = (0 <= j < in_dim in every dim) ? in[n, c, j] : 0
//   then out += bias[c] if bias != nullptr
// shift = -pad_begin zero-pads an input (Conv with asymmetric pads); shift = +crop_begin crops a full output
// (ConvTranspose with asymmetric pads or a large output_padding).
struct WindowCopyArgs {
  const void* in = nullptr;
  void* out = nullptr;
  int dtype = 1;
  int nsp = 1;  // 1..3
  int64_t n = 1, c = 1;
  int64_t in_dims[3] = {1, 1, 1};
  int64_t out_dims[3] = {1, 1, 1};
  int64_t shift[3] = {0, 0, 0};
  const void* bias = nullptr;
};
cudaError_t launch_window_copy(const WindowCopyArgs& a, cudaStream_t stream);

}  // namespace lib
}  // namespace tp
