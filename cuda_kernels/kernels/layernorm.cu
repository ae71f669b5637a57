// LayerNormalization over the trailing `cols` elements of each of `rows` rows, of x or of x + residual (then the
// sum may also be written out, for pre-LN blocks that reuse it):
//   mean = sum(x) / cols,  var = sum((x - mean)^2) / cols   (two passes, float32: no cancellation, and fp16
//   inputs of magnitude 1e4 square to 1e8, far inside float32's range),
//   y = (x - mean) * (1 / sqrt(var + epsilon)) * scale + bias.
// cols <= 1024: one warp per row holding the row in registers (ELEMS per lane, a compile-time count, so the array
// stays in registers); with cols a multiple of 16 bytes' worth and aligned pointers (up to 256 chunks of 16 bytes)
// the same on 16-byte accesses; larger rows: one block of 512 threads per row, re-reading the row from cache.
#include "common.cuh"
#include "norm.h"

namespace tp {
namespace norm {
namespace {

using ll = long long;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The row element x + residual, rounded to T as the unfused Add would store it.
template <typename T>
__device__ __forceinline__ float row_value(const T* x, const T* res, T* sum, ll i) {
  if (res == nullptr) return k::to_float(x[i]);
  const T v = k::from_float<T>(k::to_float(x[i]) + k::to_float(res[i]));
  if (sum != nullptr) sum[i] = v;
  return k::to_float(v);
}

template <typename T, int ELEMS>
__global__ void __launch_bounds__(256) ln_warp(const T* __restrict__ x, const T* __restrict__ res,
                                               const T* __restrict__ scale, const T* __restrict__ bias,
                                               T* __restrict__ y, T* __restrict__ sum, ll rows, int cols,
                                               float eps) {
  const int lane = threadIdx.x & 31;
  const ll nwarps = (static_cast<ll>(gridDim.x) * blockDim.x) >> 5;
  for (ll row = (static_cast<ll>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; row < rows; row += nwarps) {
    const ll base = row * cols;
    float v[ELEMS];
    float total = 0.0f;
#pragma unroll
    for (int t = 0; t < ELEMS; ++t) {
      const int j = lane + t * 32;
      v[t] = j < cols ? row_value(x, res, sum, base + j) : 0.0f;
      total += v[t];
    }
    const float mean = warp_sum(total) / static_cast<float>(cols);
    float sq = 0.0f;
#pragma unroll
    for (int t = 0; t < ELEMS; ++t) {
      const int j = lane + t * 32;
      const float d = v[t] - mean;
      if (j < cols) sq += d * d;
    }
    const float inv = 1.0f / sqrtf(warp_sum(sq) / static_cast<float>(cols) + eps);
    T* q = y + row * cols;
#pragma unroll
    for (int t = 0; t < ELEMS; ++t) {
      const int j = lane + t * 32;
      if (j < cols) {
        float o = (v[t] - mean) * inv * k::to_float(scale[j]);
        if (bias) o += k::to_float(bias[j]);
        q[j] = k::from_float<T>(o);
      }
    }
  }
}

// The same as ln_warp on 16-byte chunks: lane l holds chunks l, l + 32, ... (CHUNKS of them, V = 16 / sizeof(T)
// elements each), so every load and store is 16 bytes wide. Needs cols % V == 0 and 16-byte aligned pointers.
template <typename T, int CHUNKS>
__global__ void __launch_bounds__(256) ln_warp_vec(const T* __restrict__ x, const T* __restrict__ res,
                                                   const T* __restrict__ scale, const T* __restrict__ bias,
                                                   T* __restrict__ y, T* __restrict__ sum, ll rows, int cols,
                                                   float eps) {
  constexpr int V = 16 / sizeof(T);
  using Pack = uint4;
  const int lane = threadIdx.x & 31;
  const int chunks = cols / V;
  const ll nwarps = (static_cast<ll>(gridDim.x) * blockDim.x) >> 5;
  for (ll row = (static_cast<ll>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; row < rows; row += nwarps) {
    const Pack* xr = reinterpret_cast<const Pack*>(x + row * cols);
    const Pack* rr = res != nullptr ? reinterpret_cast<const Pack*>(res + row * cols) : nullptr;
    Pack* sr = sum != nullptr ? reinterpret_cast<Pack*>(sum + row * cols) : nullptr;
    float v[CHUNKS][V];
    float total = 0.0f;
#pragma unroll
    for (int t = 0; t < CHUNKS; ++t) {
      const int c = lane + t * 32;
      if (c < chunks) {
        Pack xp = xr[c];
        T* xv = reinterpret_cast<T*>(&xp);
        if (rr != nullptr) {
          const Pack rp = rr[c];
          const T* rv = reinterpret_cast<const T*>(&rp);
#pragma unroll
          for (int e = 0; e < V; ++e) xv[e] = k::from_float<T>(k::to_float(xv[e]) + k::to_float(rv[e]));
          if (sr != nullptr) sr[c] = xp;
        }
#pragma unroll
        for (int e = 0; e < V; ++e) {
          v[t][e] = k::to_float(xv[e]);
          total += v[t][e];
        }
      } else {
#pragma unroll
        for (int e = 0; e < V; ++e) v[t][e] = 0.0f;
      }
    }
    const float mean = warp_sum(total) / static_cast<float>(cols);
    float sq = 0.0f;
#pragma unroll
    for (int t = 0; t < CHUNKS; ++t) {
      if (lane + t * 32 < chunks) {
#pragma unroll
        for (int e = 0; e < V; ++e) {
          const float d = v[t][e] - mean;
          sq += d * d;
        }
      }
    }
    const float inv = 1.0f / sqrtf(warp_sum(sq) / static_cast<float>(cols) + eps);
    Pack* yr = reinterpret_cast<Pack*>(y + row * cols);
#pragma unroll
    for (int t = 0; t < CHUNKS; ++t) {
      const int c = lane + t * 32;
      if (c < chunks) {
        const Pack gp = reinterpret_cast<const Pack*>(scale)[c];
        const T* gv = reinterpret_cast<const T*>(&gp);
        Pack bp = make_uint4(0u, 0u, 0u, 0u);
        if (bias != nullptr) bp = reinterpret_cast<const Pack*>(bias)[c];
        const T* bv = reinterpret_cast<const T*>(&bp);
        Pack op;
        T* ov = reinterpret_cast<T*>(&op);
#pragma unroll
        for (int e = 0; e < V; ++e) {
          float o = (v[t][e] - mean) * inv * k::to_float(gv[e]);
          if (bias != nullptr) o += k::to_float(bv[e]);
          ov[e] = k::from_float<T>(o);
        }
        yr[c] = op;
      }
    }
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

__device__ __forceinline__ float block_sum(float v, float* smem /* 33 */) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float w = lane < nwarps ? smem[lane] : 0.0f;
    w = warp_sum(w);
    if (lane == 0) smem[32] = w;
  }
  __syncthreads();
  return smem[32];
}

// With a residual, the first pass writes x + residual into `sum` (or into y when the sum is not wanted) and the
// later passes read it back from there.
template <typename T>
__global__ void __launch_bounds__(512) ln_block(const T* __restrict__ x, const T* __restrict__ res,
                                                const T* __restrict__ scale, const T* __restrict__ bias,
                                                T* __restrict__ y, T* __restrict__ sum, ll rows, ll cols,
                                                float eps) {
  __shared__ float smem[33];
  T* stash = sum != nullptr ? sum : y;
  for (ll row = blockIdx.x; row < rows; row += gridDim.x) {
    const ll base = row * cols;
    float total = 0.0f;
    for (ll j = threadIdx.x; j < cols; j += blockDim.x) total += row_value(x, res, res ? stash : sum, base + j);
    const T* p = (res ? stash : x) + base;
    const float mean = block_sum(total, smem) / static_cast<float>(cols);
    float sq = 0.0f;
    for (ll j = threadIdx.x; j < cols; j += blockDim.x) {
      const float d = k::to_float(p[j]) - mean;
      sq += d * d;
    }
    const float inv = 1.0f / sqrtf(block_sum(sq, smem) / static_cast<float>(cols) + eps);
    T* q = y + base;
    for (ll j = threadIdx.x; j < cols; j += blockDim.x) {
      float o = (k::to_float(p[j]) - mean) * inv * k::to_float(scale[j]);
      if (bias) o += k::to_float(bias[j]);
      q[j] = k::from_float<T>(o);
    }
  }
}

template <typename T>
cudaError_t run(const LayerNormArgs& a, cudaStream_t stream, ll max_blocks) {
  const T* x = static_cast<const T*>(a.x);
  const T* res = static_cast<const T*>(a.residual);
  T* sum = static_cast<T*>(a.sum);
  const T* scale = static_cast<const T*>(a.scale);
  const T* bias = static_cast<const T*>(a.bias);
  T* y = static_cast<T*>(a.y);
  const unsigned warp_grid = k::grid_1d(a.rows * 32, 256, max_blocks);
  const int cols = static_cast<int>(a.cols);
  constexpr int V = 16 / sizeof(T);
  const bool vec = a.cols % V == 0 && a.cols <= 8 * 32 * V && aligned16(x) && aligned16(y) && aligned16(scale) &&
                   (res == nullptr || aligned16(res)) && (sum == nullptr || aligned16(sum)) &&
                   (bias == nullptr || aligned16(bias));
  if (vec) {
    const int chunks = (cols / V + 31) / 32;
    auto go = [&](auto kern) { kern<<<warp_grid, 256, 0, stream>>>(x, res, scale, bias, y, sum, a.rows, cols, a.epsilon); };
    if (chunks <= 1) go(ln_warp_vec<T, 1>);
    else if (chunks <= 2) go(ln_warp_vec<T, 2>);
    else if (chunks <= 3) go(ln_warp_vec<T, 3>);
    else if (chunks <= 4) go(ln_warp_vec<T, 4>);
    else if (chunks <= 6) go(ln_warp_vec<T, 6>);
    else go(ln_warp_vec<T, 8>);
    return cudaGetLastError();
  }
  if (a.cols <= 128)
    ln_warp<T, 4><<<warp_grid, 256, 0, stream>>>(x, res, scale, bias, y, sum, a.rows, cols, a.epsilon);
  else if (a.cols <= 256)
    ln_warp<T, 8><<<warp_grid, 256, 0, stream>>>(x, res, scale, bias, y, sum, a.rows, cols, a.epsilon);
  else if (a.cols <= 512)
    ln_warp<T, 16><<<warp_grid, 256, 0, stream>>>(x, res, scale, bias, y, sum, a.rows, cols, a.epsilon);
  else if (a.cols <= 1024)
    ln_warp<T, 32><<<warp_grid, 256, 0, stream>>>(x, res, scale, bias, y, sum, a.rows, cols, a.epsilon);
  else
    ln_block<T><<<k::grid_1d(a.rows, 1, max_blocks), 512, 0, stream>>>(x, res, scale, bias, y, sum, a.rows,
                                                                         a.cols, a.epsilon);
  return cudaGetLastError();
}

}  // namespace

cudaError_t layernorm(const LayerNormArgs& a, cudaStream_t stream, long long max_blocks) {
  if (a.rows <= 0 || a.cols <= 0) return cudaSuccess;
  if (a.dtype == k::kFloat) return run<float>(a, stream, max_blocks);
  if (a.dtype == k::kHalf) return run<__half>(a, stream, max_blocks);
  if (a.dtype == k::kBFloat16) return run<__nv_bfloat16>(a, stream, max_blocks);
  return cudaErrorInvalidValue;
}

}  // namespace norm
}  // namespace tp
