// Softmax / LogSoftmax over the middle axis of a contiguous [outer, R, inner] tensor.
//
//   softmax(x)_j = exp(x_j - m) / sum_k exp(x_k - m),   logsoftmax(x)_j = x_j - m - log(sum_k exp(x_k - m)),
//   m = max_k x_k, all in float32.
// One pass keeps an online (max, sum) pair per thread (the sum is rescaled when the max grows), pairs are
// combined across the warp / block, and a second pass writes the outputs.
// A row whose maximum is not finite is all NaN (ep_trtpy/ops/normalization.py): a NaN poisons the sum (m never
// takes a NaN), a +inf maximum sets the sum to NaN in finish_row, and a row of -inf only has m = -inf, s = 0.
// inner == 1: a warp per row for R <= 1024, a block of 512 threads per row above. inner > 1: 32 x 8 blocks, the
// 32 lanes on consecutive inner positions and the 8 rows of the block splitting R.
#include "common.cuh"
#include "norm.h"

namespace tp {
namespace norm {
namespace {

using ll = long long;

struct MS {
  float m, s;
};

__device__ __forceinline__ void ms_add(MS& a, float x) {
  if (x > a.m) {
    a.s = a.s * expf(a.m - x) + 1.0f;  // a.m == -inf: 0 * 0 + 1
    a.m = x;
  } else if (x != -INFINITY) {
    a.s += expf(x - a.m);  // NaN (x or a.m) poisons the sum
  }
}

// A pair whose m is -inf has s = 0, or NaN when it met a NaN: either is its share of the combined sum.
__device__ __forceinline__ MS ms_combine(MS a, MS b) {
  const float m = a.m > b.m ? a.m : b.m;
  const float sa = a.m == m || a.m == -INFINITY ? a.s : a.s * expf(a.m - m);
  const float sb = b.m == m || b.m == -INFINITY ? b.s : b.s * expf(b.m - m);
  return {m, sa + sb};
}

__device__ __forceinline__ MS ms_warp(MS v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    MS w;
    w.m = __shfl_xor_sync(0xffffffffu, v.m, o);
    w.s = __shfl_xor_sync(0xffffffffu, v.s, o);
    v = ms_combine(v, w);
  }
  return v;
}

// The row's pair made ready for finish: a +inf maximum makes the whole row NaN (as ONNX Runtime and PyTorch).
__device__ __forceinline__ MS finish_row(MS ms) {
  if (ms.m == INFINITY) ms.s = NAN;
  return ms;
}

__device__ __forceinline__ float finish(float x, MS ms, int log) {
  return log ? (x - ms.m) - logf(ms.s) : expf(x - ms.m) / ms.s;
}

template <typename T>
__global__ void __launch_bounds__(256) sm_rows_warp(const T* __restrict__ in, T* __restrict__ out, int log, ll rows,
                                                    ll r) {
  const int lane = threadIdx.x & 31;
  const ll nwarps = (static_cast<ll>(gridDim.x) * blockDim.x) >> 5;
  for (ll row = (static_cast<ll>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; row < rows; row += nwarps) {
    const T* p = in + row * r;
    T* q = out + row * r;
    MS ms = {-INFINITY, 0.0f};
    for (ll j = lane; j < r; j += 32) ms_add(ms, k::to_float(p[j]));
    ms = finish_row(ms_warp(ms));
    for (ll j = lane; j < r; j += 32) q[j] = k::from_float<T>(finish(k::to_float(p[j]), ms, log));
  }
}

template <typename T>
__global__ void __launch_bounds__(512) sm_rows_block(const T* __restrict__ in, T* __restrict__ out, int log, ll rows,
                                                     ll r) {
  __shared__ MS smem[33];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  for (ll row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* p = in + row * r;
    T* q = out + row * r;
    MS ms = {-INFINITY, 0.0f};
    for (ll j = threadIdx.x; j < r; j += blockDim.x) ms_add(ms, k::to_float(p[j]));
    ms = ms_warp(ms);
    __syncthreads();
    if (lane == 0) smem[warp] = ms;
    __syncthreads();
    if (warp == 0) {
      MS w = lane < nwarps ? smem[lane] : MS{-INFINITY, 0.0f};
      w = ms_warp(w);
      if (lane == 0) smem[32] = w;
    }
    __syncthreads();
    ms = finish_row(smem[32]);
    for (ll j = threadIdx.x; j < r; j += blockDim.x) q[j] = k::from_float<T>(finish(k::to_float(p[j]), ms, log));
  }
}

constexpr int kColX = 32, kColY = 8;

template <typename T>
__global__ void __launch_bounds__(kColX * kColY) sm_columns(const T* __restrict__ in, T* __restrict__ out, int log,
                                                            ll outer, ll r, ll inner) {
  __shared__ MS smem[kColY][kColX + 1];
  const ll tiles_per_outer = (inner + kColX - 1) / kColX;
  const ll tiles = outer * tiles_per_outer;
  for (ll tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const ll o = tile / tiles_per_outer;
    const ll i = (tile - o * tiles_per_outer) * kColX + threadIdx.x;
    const bool valid = i < inner;
    const ll base = o * r * inner + (valid ? i : 0);
    MS ms = {-INFINITY, 0.0f};
    if (valid)
      for (ll j = threadIdx.y; j < r; j += kColY) ms_add(ms, k::to_float(in[base + j * inner]));
    __syncthreads();
    smem[threadIdx.y][threadIdx.x] = ms;
    __syncthreads();
    if (threadIdx.y == 0) {
#pragma unroll
      for (int y = 1; y < kColY; ++y) ms = ms_combine(ms, smem[y][threadIdx.x]);
      smem[0][threadIdx.x] = ms;
    }
    __syncthreads();
    ms = finish_row(smem[0][threadIdx.x]);
    if (valid)
      for (ll j = threadIdx.y; j < r; j += kColY)
        out[base + j * inner] = k::from_float<T>(finish(k::to_float(in[base + j * inner]), ms, log));
  }
}

template <typename T>
cudaError_t run(const SoftmaxArgs& a, cudaStream_t stream, ll max_blocks) {
  const T* in = static_cast<const T*>(a.in);
  T* out = static_cast<T*>(a.out);
  if (a.inner == 1) {
    if (a.r > 1024)
      sm_rows_block<T><<<k::grid_1d(a.outer, 1, max_blocks), 512, 0, stream>>>(in, out, a.log, a.outer, a.r);
    else
      sm_rows_warp<T><<<k::grid_1d(a.outer * 32, 256, max_blocks), 256, 0, stream>>>(in, out, a.log, a.outer, a.r);
  } else {
    const ll tiles = a.outer * ((a.inner + kColX - 1) / kColX);
    sm_columns<T><<<k::grid_1d(tiles, 1, max_blocks), dim3(kColX, kColY), 0, stream>>>(in, out, a.log, a.outer, a.r,
                                                                                        a.inner);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t softmax(const SoftmaxArgs& a, cudaStream_t stream, long long max_blocks) {
  if (a.outer <= 0 || a.r <= 0 || a.inner <= 0) return cudaSuccess;
  if (a.dtype == k::kFloat) return run<float>(a, stream, max_blocks);
  if (a.dtype == k::kHalf) return run<__half>(a, stream, max_blocks);
  if (a.dtype == k::kBFloat16) return run<__nv_bfloat16>(a, stream, max_blocks);
  return cudaErrorInvalidValue;
}

}  // namespace norm
}  // namespace tp
