// Shared pieces of the cuDNN-backed kernels "conv" and "conv_transpose": descriptor ownership, the 1-D -> 2-D
// mapping, checked int conversion and the math type policy.
//
// Math type policy: float32 convolutions use CUDNN_FMA_MATH (FMA kernels only: no TF32 tensor cores, so float32
// results match a float64 reference to ~1e-5 relative); float16 convolutions allow tensor cores
// (CUDNN_TENSOR_OP_MATH, float32 accumulation through a float compute type).
#pragma once

#include <cudnn.h>

#include <cstdint>
#include <string>
#include <vector>

namespace tp {
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

inline cudnnDataType_t cudnn_type(int onnx_dtype) { return onnx_dtype == 10 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT; }

inline cudnnMathType_t math_policy(int onnx_dtype) {
  return onnx_dtype == 10 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
}

// True when cuDNN reported math type `m` is acceptable for this dtype (float32: no tensor-core math).
inline bool math_allowed(int onnx_dtype, cudnnMathType_t m) {
  return onnx_dtype == 10 || m == CUDNN_FMA_MATH || m == CUDNN_DEFAULT_MATH;
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

}  // namespace lib
}  // namespace tp
