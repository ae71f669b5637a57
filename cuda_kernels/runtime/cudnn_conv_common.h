// Shared pieces of the cuDNN-backed kernels "conv" and "conv_transpose": descriptor ownership, the 1-D -> 2-D
// mapping, checked int conversion and the math type policy.
//
// Math type policy: float32 convolutions use CUDNN_FMA_MATH (FMA kernels only: no TF32 tensor cores, so float32
// results match a float64 reference to ~1e-5 relative) unless TF32 is allowed (the layer's math flag, from the
// tf32_enable option: then CUDNN_DEFAULT_MATH, which lets cuDNN use TF32 tensor cores); float16 and bfloat16
// convolutions allow tensor cores (CUDNN_TENSOR_OP_MATH, float32 accumulation through a float compute type).
#pragma once

#include <cudnn.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace tp {
class Engine;
namespace lib {

struct CudnnConvDescs {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnActivationDescriptor_t act = nullptr;
  CudnnConvDescs() = default;
  CudnnConvDescs(const CudnnConvDescs&) = delete;
  CudnnConvDescs& operator=(const CudnnConvDescs&) = delete;
  ~CudnnConvDescs();
};

inline cudnnDataType_t cudnn_type(int onnx_dtype) {
  return onnx_dtype == 10 ? CUDNN_DATA_HALF : (onnx_dtype == 16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT);
}

inline bool is_16bit(int onnx_dtype) { return onnx_dtype == 10 || onnx_dtype == 16; }

inline cudnnMathType_t math_policy(int onnx_dtype, bool tf32 = false) {
  if (is_16bit(onnx_dtype)) return CUDNN_TENSOR_OP_MATH;
  return tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

// True when cuDNN reported math type `m` is acceptable for this dtype: strict float32 takes no tensor-core math;
// float32 with TF32 takes tensor cores but never CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION (its inputs read as float16).
inline bool math_allowed(int onnx_dtype, cudnnMathType_t m, bool tf32 = false) {
  if (is_16bit(onnx_dtype) || m == CUDNN_FMA_MATH || m == CUDNN_DEFAULT_MATH) return true;
  return tf32 && m == CUDNN_TENSOR_OP_MATH;
}

// Spatial geometry with 1-D lifted to 2-D (a leading unit dimension): cuDNN's Nd API wants 4-D or 5-D tensors.
struct ConvGeometry {
  int nsp = 0;  // ONNX spatial rank: 1, 2 or 3
  int csp = 0;  // cuDNN spatial rank: 2 or 3
  std::vector<int64_t> lift(const std::vector<int64_t>& spatial, int64_t unit) const;  // prepends `unit` for 1-D
};

// dims (N, C, spatial...) -> int with a range check (each dim and the element count); returns 0 or sets *err.
int to_int_dims(const std::vector<int64_t>& in, std::vector<int>* out, const std::string& what, std::string* err);

// pads / strides / dilations -> int with a range check.
int to_int_params(const std::vector<int64_t>& in, std::vector<int>* out, const std::string& what, std::string* err);

int set_tensor_nd(cudnnTensorDescriptor_t* d, cudnnDataType_t type, const std::vector<int>& dims, std::string* err);
int set_filter_nd(cudnnFilterDescriptor_t* d, cudnnDataType_t type, const std::vector<int>& dims, std::string* err);
int set_conv_nd(cudnnConvolutionDescriptor_t* d, const std::vector<int>& pads, const std::vector<int>& strides,
                const std::vector<int>& dilations, int group, cudnnMathType_t math, std::string* err);

std::string join(const std::vector<int64_t>& v);

// The descriptors of a forward convolution y = conv(x, w) (conv's X -> Y; conv_transpose's output -> its input):
// x [n, c, x_sp...], w [k, c/group, k_sp...], y [n, k, y_sp...], 1-D lifted to 2-D, every value range-checked,
// and cuDNN's output shape checked against y. `x_what`/`y_what` name the tensors in messages. Returns 0 or 1 with
// *err.
struct ForwardConvShape {
  int64_t n = 0, c = 0, k = 0, cg = 0;
  std::vector<int64_t> x_sp, k_sp, y_sp, pads, strides, dilations;
  int64_t group = 1;
};
int set_forward_descriptors(CudnnConvDescs* d, int onnx_dtype, bool tf32, const ForwardConvShape& f,
                            const char* x_what, const char* y_what, std::string* err);

// A tactic stored in the engine file is reused when cuDNN still accepts it within `max_workspace` (it may come from
// another cuDNN or GPU: then the caller searches again). True when *algo / *workspace were set.
template <typename Algo, typename WorkspaceFn>
bool reuse_tactic(int64_t tactic, int algo_count, size_t max_workspace, WorkspaceFn workspace_for, Algo* algo,
                  size_t* workspace) {
  if (tactic < 0 || tactic >= algo_count) return false;
  const auto a = static_cast<Algo>(tactic);
  size_t ws = 0;
  if (workspace_for(a, &ws) != CUDNN_STATUS_SUCCESS || ws > max_workspace) return false;
  *algo = a;
  *workspace = ws;
  return true;
}

// The largest workspace any algorithm needs, among those within `max_workspace` (the timed search gets that much).
template <typename Algo, typename WorkspaceFn>
size_t max_search_workspace(int algo_count, size_t max_workspace, WorkspaceFn workspace_for) {
  size_t ws_max = 0;
  for (int a = 0; a < algo_count; ++a) {
    size_t ws = 0;
    if (workspace_for(static_cast<Algo>(a), &ws) == CUDNN_STATUS_SUCCESS && ws <= max_workspace)
      ws_max = std::max(ws_max, ws);
  }
  return ws_max;
}

// Scratch buffers of a timed algorithm search: two inputs (zero-filled), one output and the workspace, from the
// engine's scratch pool; also puts `h` on the default stream for the search. Returns 0 or sets *err.
struct SearchBuffers {
  void* in0 = nullptr;
  void* in1 = nullptr;
  void* out = nullptr;
  void* workspace = nullptr;
};
int search_buffers(Engine& engine, cudnnHandle_t h, size_t in0_bytes, size_t in1_bytes, size_t out_bytes,
                   size_t workspace_bytes, SearchBuffers* b, std::string* err);

// Picks, from cuDNN's timed candidates (cudnnFind*AlgorithmEx results, fastest first), the first that succeeded,
// fits `max_workspace` and uses an allowed math type. float32 keeps FMA math whatever cuDNN reports; float16 takes
// the math type that was timed (set on `conv`). Shared by "conv" (forward) and "conv_transpose" (backward data).
template <typename Perf, typename Algo, typename WorkspaceFn>
int pick_timed_algo(const Perf* perf, int returned, int onnx_dtype, cudnnConvolutionDescriptor_t conv,
                    size_t max_workspace, WorkspaceFn workspace_for, const char* what, Algo* algo,
                    size_t* workspace, std::string* err, bool tf32 = false) {
  const cudnnMathType_t policy = math_policy(onnx_dtype, tf32);
  std::string skipped;
  for (int i = 0; i < returned; ++i) {
    const Perf& r = perf[i];
    const std::string label = " [algo " + std::to_string(static_cast<int>(r.algo)) + ": ";
    if (r.status != CUDNN_STATUS_SUCCESS || r.memory > max_workspace || !math_allowed(onnx_dtype, r.mathType, tf32)) {
      skipped += label + (r.status != CUDNN_STATUS_SUCCESS ? cudnnGetErrorString(r.status) : "math type or workspace") +
                 "]";
      continue;
    }
    cudnnStatus_t st = cudnnSetConvolutionMathType(conv, (is_16bit(onnx_dtype) || tf32) ? r.mathType : policy);
    if (st != CUDNN_STATUS_SUCCESS) {
      *err = std::string("cudnnSetConvolutionMathType: ") + cudnnGetErrorString(st);
      return 1;
    }
    size_t ws = 0;
    if (workspace_for(r.algo, &ws) != CUDNN_STATUS_SUCCESS || ws > max_workspace) {
      cudnnSetConvolutionMathType(conv, policy);
      skipped += label + "no workspace size]";
      continue;
    }
    *algo = r.algo;
    *workspace = ws;
    return 0;
  }
  *err = std::string("cuDNN found no usable ") + what + " algorithm (" + std::to_string(returned) + " tried:" +
         skipped + ")";
  return 1;
}

}  // namespace lib
}  // namespace tp
