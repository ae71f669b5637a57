// The CUDA side of the quantized GEMM "qgemm": A's uint8 re-centring, the SIMT GEMM fallback and the epilogue
// (tp/qgemm_kernels.h has the math). The epilogue spells every rounding out (__fmul_rn, __fadd_rn, __fdiv_rn) so
// that nvcc cannot contract a multiply and an add into one FMA: the reference (ep_trtpy/ops/quantize.py) rounds
// after each step, and requantized outputs must match it bit for bit.
#include <cuda_fp8.h>

#include <cstdint>
#include <type_traits>

#include "activation.cuh"
#include "common.cuh"
#include "tp/qgemm_kernels.h"

namespace tp {
namespace lib {
namespace {

constexpr int kThreads = 256;
constexpr long long kMaxBlocks = 65535LL * 8;
constexpr int kTile = 16;

__global__ void flip_u8_kernel(const uint8_t* in, uint8_t* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = in[i] ^ uint8_t(0x80);
}

__device__ __forceinline__ float operand(const __nv_fp8_e4m3* p, int64_t i) { return static_cast<float>(p[i]); }

// One 16 x 16 output tile per block, K in steps of 16 through shared memory.
template <typename T, typename Acc>
__global__ void simt_kernel(const T* __restrict__ a, const T* __restrict__ b, Acc* __restrict__ acc, int64_t M,
                            int64_t N, int64_t K) {
  __shared__ T as[kTile][kTile + 1];
  __shared__ T bs[kTile][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t n = blockIdx.x * int64_t(kTile) + tx;
  for (int64_t m0 = blockIdx.y * int64_t(kTile); m0 < M; m0 += int64_t(gridDim.y) * kTile) {
    const int64_t m = m0 + ty;
    const int64_t nb = blockIdx.x * int64_t(kTile) + ty;  // the B row this thread loads
    uint32_t isum = 0;  // int8: wraps as the tensor cores' int32 does (unsigned: no overflow UB)
    float fsum = 0.f;
    for (int64_t k0 = 0; k0 < K; k0 += kTile) {
      const int64_t k = k0 + tx;
      as[ty][tx] = (m < M && k < K) ? a[m * K + k] : T{};
      bs[ty][tx] = (nb < N && k < K) ? b[nb * K + k] : T{};
      __syncthreads();
      const int kk_end = static_cast<int>(K - k0 < kTile ? K - k0 : kTile);
      for (int kk = 0; kk < kk_end; ++kk) {
        if constexpr (std::is_same<Acc, int32_t>::value) {
          isum += static_cast<uint32_t>(int32_t(as[ty][kk]) * int32_t(bs[tx][kk]));
        } else {
          fsum = __fadd_rn(fsum, __fmul_rn(operand(&as[ty][0], kk), operand(&bs[tx][0], kk)));
        }
      }
      __syncthreads();
    }
    if (m < M && n < N) {
      if constexpr (std::is_same<Acc, int32_t>::value) acc[m * N + n] = static_cast<Acc>(isum);
      else acc[m * N + n] = fsum;
    }
  }
}

template <typename T> __device__ __forceinline__ void put(T* y, int64_t i, float v, float ys, int yz);
template <> __device__ __forceinline__ void put<float>(float* y, int64_t i, float v, float, int) { y[i] = v; }
template <> __device__ __forceinline__ void put<__half>(__half* y, int64_t i, float v, float, int) {
  y[i] = __float2half_rn(v);
}
__device__ __forceinline__ float requant_int(float v, float ys, int yz, float lo, float hi) {
  const float r = __fdiv_rn(v, ys);
  if (r != r) return float(yz);
  return fminf(fmaxf(rintf(r) + float(yz), lo), hi);  // rint(r) is an integer: + yz is exact below 2^24
}
template <> __device__ __forceinline__ void put<int8_t>(int8_t* y, int64_t i, float v, float ys, int yz) {
  y[i] = static_cast<int8_t>(requant_int(v, ys, yz, -128.f, 127.f));
}
template <> __device__ __forceinline__ void put<uint8_t>(uint8_t* y, int64_t i, float v, float ys, int yz) {
  y[i] = static_cast<uint8_t>(requant_int(v, ys, yz, 0.f, 255.f));
}
template <>
__device__ __forceinline__ void put<__nv_fp8_e4m3>(__nv_fp8_e4m3* y, int64_t i, float v, float ys, int) {
  y[i].__x = __nv_cvt_float_to_fp8(__fdiv_rn(v, ys), __NV_SATFINITE, __NV_E4M3);
}

template <typename Y, bool kFloatAcc>
__global__ void epilogue_kernel(const void* acc_, Y* y, int64_t rows, int64_t cols, const float* scale,
                                const int32_t* bias_i32, const float* bias_f, float alpha, int act, float ys,
                                int yz) {
  const int64_t total = rows * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % cols;
    float v;
    if constexpr (kFloatAcc) {
      v = static_cast<const float*>(acc_)[i];
      if (bias_i32 != nullptr) v = __fadd_rn(v, float(bias_i32[c]));
    } else {
      uint32_t s = static_cast<uint32_t>(static_cast<const int32_t*>(acc_)[i]);
      if (bias_i32 != nullptr) s += static_cast<uint32_t>(bias_i32[c]);
      v = float(static_cast<int32_t>(s));  // int32 -> float32, round to nearest even
    }
    v = __fmul_rn(v, scale[c]);
    if (alpha != 1.f) v = __fmul_rn(v, alpha);
    if (bias_f != nullptr) v = __fadd_rn(v, bias_f[c]);
    v = activate(v, act, 0.f, 0.f);
    put<Y>(y, i, v, ys, yz);
  }
}

template <typename Y>
cudaError_t epilogue_as(const QEpilogueArgs& a, cudaStream_t stream) {
  const unsigned blocks = k::grid_1d(a.rows * a.cols, kThreads, kMaxBlocks);
  Y* y = static_cast<Y*>(a.y);
  if (a.acc_float)
    epilogue_kernel<Y, true><<<blocks, kThreads, 0, stream>>>(a.acc, y, a.rows, a.cols, a.scale, a.bias_i32,
                                                              a.bias_f, a.alpha, a.act, a.y_scale, a.y_zero);
  else
    epilogue_kernel<Y, false><<<blocks, kThreads, 0, stream>>>(a.acc, y, a.rows, a.cols, a.scale, a.bias_i32,
                                                               a.bias_f, a.alpha, a.act, a.y_scale, a.y_zero);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_flip_u8(const void* in, void* out, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  flip_u8_kernel<<<k::grid_1d(n, kThreads, kMaxBlocks), kThreads, 0, stream>>>(static_cast<const uint8_t*>(in),
                                                                               static_cast<uint8_t*>(out), n);
  return cudaGetLastError();
}

cudaError_t launch_qgemm_simt(const void* a, const void* b, void* acc, int64_t M, int64_t N, int64_t K, bool fp8,
                              cudaStream_t stream) {
  if (M <= 0 || N <= 0) return cudaSuccess;
  const int64_t gy = (M + kTile - 1) / kTile;
  const dim3 grid(static_cast<unsigned>((N + kTile - 1) / kTile), static_cast<unsigned>(gy < 65535 ? gy : 65535));
  const dim3 block(kTile, kTile);
  if (fp8)
    simt_kernel<__nv_fp8_e4m3, float><<<grid, block, 0, stream>>>(static_cast<const __nv_fp8_e4m3*>(a),
                                                                  static_cast<const __nv_fp8_e4m3*>(b),
                                                                  static_cast<float*>(acc), M, N, K);
  else
    simt_kernel<int8_t, int32_t><<<grid, block, 0, stream>>>(static_cast<const int8_t*>(a),
                                                             static_cast<const int8_t*>(b),
                                                             static_cast<int32_t*>(acc), M, N, K);
  return cudaGetLastError();
}

cudaError_t launch_qgemm_epilogue(const QEpilogueArgs& a, cudaStream_t stream) {
  if (a.rows <= 0 || a.cols <= 0) return cudaSuccess;
  switch (a.y_dtype) {
    case k::kFloat: return epilogue_as<float>(a, stream);
    case k::kHalf: return epilogue_as<__half>(a, stream);
    case k::kInt8: return epilogue_as<int8_t>(a, stream);
    case k::kUint8: return epilogue_as<uint8_t>(a, stream);
    case 17: return epilogue_as<__nv_fp8_e4m3>(a, stream);  // float8e4m3fn
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace lib
}  // namespace tp
