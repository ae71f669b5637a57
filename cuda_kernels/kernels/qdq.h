// ONNX QuantizeLinear / DequantizeLinear as one elementwise kernel (qdq.cu; the layer is runtime/kernels_qdq.cpp).
// The element c of the scale and zero point that applies to element i of x is (i / inner) % channels: x read as
// [outer, channels, inner] (per-tensor: channels = 1).
//
//   quantize    y = clamp(rint(x / scale[c]) + zero[c])     int8 / uint8: ties to even, NaN gives zero[c]
//               y = fp8_satfinite(x / scale[c])              float8e4m3fn: nearest even, saturated to +-448,
//                                                            NaN stays NaN
//   dequantize  y = float32(x - zero[c]) * scale[c]          x - zero[c] exact (int64 for int32 x; FP8: x), one
//                                                            rounding at the product, then y's float type
//                                                            (nearest even)
// x / scale and the product are IEEE float32 operations (__fdiv_rn, __fmul_rn), as ep_trtpy/quantize/numerics.py
// computes them, so every output matches the reference bit for bit (NaN payloads aside).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tp {
namespace qdq {

struct QdqArgs {
  const void* x = nullptr;
  void* y = nullptr;
  const float* scale = nullptr;    // [channels]
  const int32_t* zero = nullptr;   // [channels], or nullptr: zero points 0
  int mode = 0;                    // 0 quantize, 1 dequantize
  int x_dtype = 1, y_dtype = 3;    // ONNX element types
  long long outer = 0, channels = 1, inner = 0;
};

// Enqueues the conversion; cudaErrorInvalidValue for a dtype pair the kernel lacks.
cudaError_t qdq(const QdqArgs& a, cudaStream_t stream, long long max_blocks);

}  // namespace qdq
}  // namespace tp
