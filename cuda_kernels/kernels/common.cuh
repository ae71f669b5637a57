// Device-side helpers shared by our CUDA kernels: ONNX dtype codes, element types by size, launch geometry.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace tp {
namespace k {

// ONNX TensorProto element types used by the kernels.
constexpr int kFloat = 1;
constexpr int kUint8 = 2;
constexpr int kInt8 = 3;
constexpr int kInt32 = 6;
constexpr int kInt64 = 7;
constexpr int kBool = 9;
constexpr int kHalf = 10;
constexpr int kBFloat16 = 16;

// An unsigned integer type of N bytes: data movement kernels move raw elements of 1, 2, 4 or 8 bytes.
template <int N> struct Bits;
template <> struct Bits<1> { using type = uint8_t; };
template <> struct Bits<2> { using type = uint16_t; };
template <> struct Bits<4> { using type = uint32_t; };
template <> struct Bits<8> { using type = unsigned long long; };

// Number of blocks of `threads` threads for a grid-stride loop over n items, capped at max_blocks.
inline unsigned grid_1d(long long n, int threads, long long max_blocks) {
  long long b = (n + threads - 1) / threads;
  if (b > max_blocks) b = max_blocks;
  if (b < 1) b = 1;
  if (b > 2147483647LL) b = 2147483647LL;
  return static_cast<unsigned>(b);
}

// Conversions between the stored element type and float (the accumulation / compute type of float kernels).
__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// Calls f(T{}) with the element type of a float ONNX dtype (float32, float16, bfloat16); false for others.
template <typename F>
inline bool dispatch_float(int dtype, F&& f) {
  switch (dtype) {
    case kFloat: f(float{}); return true;
    case kHalf: f(__half{}); return true;
    case kBFloat16: f(__nv_bfloat16{}); return true;
    default: return false;
  }
}

// Warp-wide reductions (all 32 lanes participate).
template <typename F>
__device__ __forceinline__ float warp_all_reduce(float v, F op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// NaN-propagating max/min (numpy's maximum/minimum).
__device__ __forceinline__ float nan_max(float a, float b) { return (a != a) ? a : ((b != b) ? b : (a > b ? a : b)); }
__device__ __forceinline__ float nan_min(float a, float b) { return (a != a) ? a : ((b != b) ? b : (a < b ? a : b)); }

}  // namespace k
}  // namespace tp
