// The CUDA side of kernel "qdq" (qdq.h has the math). Two grid-stride kernels per dtype pair: four elements per
// step through one vector load and store where the pointers are aligned and four neighbours share a channel, one
// element per step elsewhere. Indices are int32 unless the tensor is too large for them.
#include <cuda_fp8.h>

#include <cstdint>
#include <limits>

#include "common.cuh"
#include "qdq.h"

namespace tp {
namespace qdq {
namespace {

constexpr int kThreads = 256;
constexpr int kFp8 = 17;  // ONNX float8e4m3fn

// x - zero as float32: exact for 8-bit values, one rounding (nearest even) for int32 ones.
__device__ __forceinline__ float centred(int8_t q, int z) { return float(int(q) - z); }
__device__ __forceinline__ float centred(uint8_t q, int z) { return float(int(q) - z); }
__device__ __forceinline__ float centred(int32_t q, int z) { return __ll2float_rn((long long)q - z); }
__device__ __forceinline__ float centred(__nv_fp8_e4m3 q, int) { return static_cast<float>(q); }

// rint(r) + z clamped to [lo, hi]; a NaN r gives z (clamped). rint(r) is clamped first so that the int sum cannot
// overflow; any value beyond +-1024 saturates either way.
__device__ __forceinline__ int saturated(float r, int z, int lo, int hi) {
  const int q = r != r ? z : int(fminf(fmaxf(rintf(r), -1024.f), 1024.f)) + z;
  return q < lo ? lo : (q > hi ? hi : q);
}

template <typename Y> __device__ __forceinline__ Y quantized(float r, int z);
template <> __device__ __forceinline__ int8_t quantized<int8_t>(float r, int z) {
  return static_cast<int8_t>(saturated(r, z, -128, 127));
}
template <> __device__ __forceinline__ uint8_t quantized<uint8_t>(float r, int z) {
  return static_cast<uint8_t>(saturated(r, z, 0, 255));
}
template <> __device__ __forceinline__ __nv_fp8_e4m3 quantized<__nv_fp8_e4m3>(float r, int) {
  __nv_fp8_e4m3 q;
  q.__x = __nv_cvt_float_to_fp8(r, __NV_SATFINITE, __NV_E4M3);
  return q;
}

template <typename X, typename Y>
struct Quantize {
  __device__ __forceinline__ Y operator()(X x, float s, int z) const {
    return quantized<Y>(__fdiv_rn(k::to_float(x), s), z);
  }
};

template <typename X, typename Y>
struct Dequantize {
  __device__ __forceinline__ Y operator()(X x, float s, int z) const {
    return k::from_float<Y>(__fmul_rn(centred(x, z), s));
  }
};

template <typename T>
struct alignas(4 * sizeof(T)) Vec4 {
  T v[4];
};

template <typename Op, typename X, typename Y, typename I>
__global__ void qdq_scalar(const X* __restrict__ x, Y* __restrict__ y, const float* __restrict__ scale,
                           const int32_t* __restrict__ zero, I n, I channels, I inner) {
  const Op op;
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < n; i += I(gridDim.x) * I(blockDim.x)) {
    const I c = channels == 1 ? I(0) : (i / inner) % channels;
    y[i] = op(x[i], scale[c], zero != nullptr ? zero[c] : 0);
  }
}

// n4 vectors of four elements whose channel is the same (channels == 1, or inner % 4 == 0), then the n % 4 tail
// elements (channels == 1 only) by the first threads of block 0.
template <typename Op, typename X, typename Y>
__global__ void qdq_vec4(const X* __restrict__ x, Y* __restrict__ y, const float* __restrict__ scale,
                         const int32_t* __restrict__ zero, int n, int channels, int inner) {
  const Op op;
  const int n4 = n / 4;
  const auto* xv = reinterpret_cast<const Vec4<X>*>(x);
  auto* yv = reinterpret_cast<Vec4<Y>*>(y);
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += int(gridDim.x * blockDim.x)) {
    const int c = channels == 1 ? 0 : (4 * i / inner) % channels;
    const float s = scale[c];
    const int z = zero != nullptr ? zero[c] : 0;
    const Vec4<X> in = xv[i];
    Vec4<Y> out;
#pragma unroll
    for (int j = 0; j < 4; ++j) out.v[j] = op(in.v[j], s, z);
    yv[i] = out;
  }
  const int tail = 4 * n4 + static_cast<int>(threadIdx.x);
  if (blockIdx.x == 0 && tail < n) y[tail] = op(x[tail], scale[0], zero != nullptr ? zero[0] : 0);
}

template <typename X, typename Y, template <typename, typename> class Op>
cudaError_t launch(const QdqArgs& a, cudaStream_t stream, long long max_blocks) {
  const long long n = a.outer * a.channels * a.inner;
  if (n == 0) return cudaSuccess;
  const X* x = static_cast<const X*>(a.x);
  Y* y = static_cast<Y*>(a.y);
  const auto aligned = [](const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; };
  const bool vec = (a.channels == 1 || a.inner % 4 == 0) && aligned(x, 4 * sizeof(X)) && aligned(y, 4 * sizeof(Y));
  const long long items = vec ? n / 4 : n;
  const unsigned blocks = k::grid_1d(items > 0 ? items : 1, kThreads, max_blocks);
  const long long stride = static_cast<long long>(blocks) * kThreads;
  if (n + 4 * stride <= std::numeric_limits<int32_t>::max()) {
    if (vec)
      qdq_vec4<Op<X, Y>, X, Y><<<blocks, kThreads, 0, stream>>>(x, y, a.scale, a.zero, int(n), int(a.channels),
                                                                 int(a.inner));
    else
      qdq_scalar<Op<X, Y>, X, Y, int><<<blocks, kThreads, 0, stream>>>(x, y, a.scale, a.zero, int(n),
                                                                       int(a.channels), int(a.inner));
  } else {
    qdq_scalar<Op<X, Y>, X, Y, long long><<<blocks, kThreads, 0, stream>>>(x, y, a.scale, a.zero, n, a.channels,
                                                                           a.inner);
  }
  return cudaGetLastError();
}

template <typename X>
cudaError_t quantize_from(const QdqArgs& a, cudaStream_t stream, long long max_blocks) {
  switch (a.y_dtype) {
    case k::kInt8: return launch<X, int8_t, Quantize>(a, stream, max_blocks);
    case k::kUint8: return launch<X, uint8_t, Quantize>(a, stream, max_blocks);
    case kFp8: return launch<X, __nv_fp8_e4m3, Quantize>(a, stream, max_blocks);
    default: return cudaErrorInvalidValue;
  }
}

template <typename X>
cudaError_t dequantize_from(const QdqArgs& a, cudaStream_t stream, long long max_blocks) {
  switch (a.y_dtype) {
    case k::kFloat: return launch<X, float, Dequantize>(a, stream, max_blocks);
    case k::kHalf: return launch<X, __half, Dequantize>(a, stream, max_blocks);
    case k::kBFloat16: return launch<X, __nv_bfloat16, Dequantize>(a, stream, max_blocks);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

cudaError_t qdq(const QdqArgs& a, cudaStream_t stream, long long max_blocks) {
  if (a.mode == 0) {
    switch (a.x_dtype) {
      case k::kFloat: return quantize_from<float>(a, stream, max_blocks);
      case k::kHalf: return quantize_from<__half>(a, stream, max_blocks);
      case k::kBFloat16: return quantize_from<__nv_bfloat16>(a, stream, max_blocks);
      default: return cudaErrorInvalidValue;
    }
  }
  switch (a.x_dtype) {
    case k::kInt8: return dequantize_from<int8_t>(a, stream, max_blocks);
    case k::kUint8: return dequantize_from<uint8_t>(a, stream, max_blocks);
    case k::kInt32: return dequantize_from<int32_t>(a, stream, max_blocks);
    case kFp8: return dequantize_from<__nv_fp8_e4m3>(a, stream, max_blocks);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace qdq
}  // namespace tp
