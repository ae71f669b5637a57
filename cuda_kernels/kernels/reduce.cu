// Reductions over the middle axis of a contiguous [outer, R, inner] tensor.
//
// inner == 1 (the reduced elements of one output are contiguous): one warp per row for R <= 1024, one block of 512
// threads per row above. inner > 1: blocks of 32 x 8 threads, the 32 lanes on consecutive inner positions
// (coalesced) and the 8 rows of the block splitting R, combined through shared memory.
// Float types accumulate in float32, integers in int64 (wrapping like the stored type for sum and prod).
// max/min propagate NaN (numpy); logsumexp subtracts the row maximum (0 when it is infinite) before exp.
// Empty reductions (R == 0) give the identity: 0 (sums, and the mean, as ONNX Runtime's CPU provider), -inf /
// lowest (max), +inf / highest (min), 1 (prod).
#include <limits>
#include <type_traits>

#include "common.cuh"
#include "reduce.h"

namespace tp {
namespace red {
namespace {

using ll = long long;
using ull = unsigned long long;

enum Kind { kAdd = 0, kMaxK = 1, kMinK = 2, kMul = 3 };

__device__ __forceinline__ int kind_of(int op) {
  switch (op) {
    case kMax: return kMaxK;
    case kMin: return kMinK;
    case kProd: return kMul;
    default: return kAdd;
  }
}

template <typename T> struct AccOf { using type = float; };
template <> struct AccOf<int> { using type = ll; };
template <> struct AccOf<ll> { using type = ll; };

__device__ __forceinline__ float load_acc(const float* p, ll i) { return p[i]; }
__device__ __forceinline__ float load_acc(const __half* p, ll i) { return __half2float(p[i]); }
__device__ __forceinline__ float load_acc(const __nv_bfloat16* p, ll i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ ll load_acc(const int* p, ll i) { return static_cast<ll>(p[i]); }
__device__ __forceinline__ ll load_acc(const ll* p, ll i) { return p[i]; }

__device__ __forceinline__ void store_acc(float* p, ll i, float v) { p[i] = v; }
__device__ __forceinline__ void store_acc(__half* p, ll i, float v) { p[i] = __float2half_rn(v); }
__device__ __forceinline__ void store_acc(__nv_bfloat16* p, ll i, float v) { p[i] = __float2bfloat16_rn(v); }
__device__ __forceinline__ void store_acc(int* p, ll i, ll v) {
  p[i] = static_cast<int>(static_cast<unsigned>(static_cast<ull>(v)));
}
__device__ __forceinline__ void store_acc(ll* p, ll i, ll v) { p[i] = v; }

template <typename T>
__device__ __forceinline__ typename AccOf<T>::type init(int kind) {
  using A = typename AccOf<T>::type;
  if constexpr (std::is_same<A, float>::value) {
    switch (kind) {
      case kMaxK: return -INFINITY;
      case kMinK: return INFINITY;
      case kMul: return 1.0f;
      default: return 0.0f;
    }
  } else {
    switch (kind) {
      case kMaxK: return static_cast<ll>(std::numeric_limits<T>::lowest());
      case kMinK: return static_cast<ll>(std::numeric_limits<T>::max());
      case kMul: return 1;
      default: return 0;
    }
  }
}

__device__ __forceinline__ float comb(int kind, float a, float b) {
  switch (kind) {
    case kMaxK: return k::nan_max(a, b);
    case kMinK: return k::nan_min(a, b);
    case kMul: return a * b;
    default: return a + b;
  }
}

__device__ __forceinline__ ll comb(int kind, ll a, ll b) {
  switch (kind) {
    case kMaxK: return a > b ? a : b;
    case kMinK: return a < b ? a : b;
    case kMul: return static_cast<ll>(static_cast<ull>(a) * static_cast<ull>(b));
    default: return static_cast<ll>(static_cast<ull>(a) + static_cast<ull>(b));
  }
}

__device__ __forceinline__ float pre(int op, float x, float shift) {
  switch (op) {
    case kL1: return fabsf(x);
    case kL2:
    case kSumSquare: return x * x;
    case kLogSumExp: return expf(x - shift);
    default: return x;
  }
}
__device__ __forceinline__ ll pre(int, ll x, ll) { return x; }

__device__ __forceinline__ float post(int op, float acc, ll r, float shift) {
  switch (op) {
    case kMean: return acc / static_cast<float>(r > 0 ? r : 1);
    case kL2: return sqrtf(acc);
    case kLogSumExp: return shift + logf(acc);
    default: return acc;
  }
}
__device__ __forceinline__ ll post(int, ll acc, ll, ll) { return acc; }

template <typename A>
__device__ __forceinline__ A warp_reduce(A v, int kind) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = comb(kind, v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// All threads of the block call this; every thread gets the result. `identity` fills the unused lanes.
template <typename A>
__device__ __forceinline__ A block_reduce(A v, int kind, A identity, A* smem /* >= 33 */) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
  v = warp_reduce(v, kind);
  __syncthreads();  // smem may still be read from a previous call
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  if (warp == 0) {
    A w = lane < nwarps ? smem[lane] : identity;
    w = warp_reduce(w, kind);
    if (lane == 0) smem[32] = w;
  }
  __syncthreads();
  return smem[32];
}

// ---------------------------------------------------------------------------------------------- rows: inner == 1 --
template <typename T>
__global__ void __launch_bounds__(256) rows_warp(const T* __restrict__ in, T* __restrict__ out, int op, ll rows, ll r) {
  using A = typename AccOf<T>::type;
  const int lane = threadIdx.x & 31;
  const int kind = kind_of(op);
  const ll nwarps = (static_cast<ll>(gridDim.x) * blockDim.x) >> 5;
  for (ll row = (static_cast<ll>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; row < rows; row += nwarps) {
    const T* p = in + row * r;
    A shift = 0;
    if constexpr (std::is_same<A, float>::value) {
      if (op == kLogSumExp) {
        float m = -INFINITY;
        for (ll j = lane; j < r; j += 32) m = k::nan_max(m, load_acc(p, j));
        m = warp_reduce(m, static_cast<int>(kMaxK));
        shift = isinf(m) ? 0.0f : m;
      }
    }
    A acc = init<T>(kind);
    for (ll j = lane; j < r; j += 32) acc = comb(kind, acc, pre(op, load_acc(p, j), shift));
    acc = warp_reduce(acc, kind);
    if (lane == 0) store_acc(out, row, post(op, acc, r, shift));
  }
}

template <typename T>
__global__ void __launch_bounds__(512) rows_block(const T* __restrict__ in, T* __restrict__ out, int op, ll rows,
                                                  ll r) {
  using A = typename AccOf<T>::type;
  __shared__ A smem[33];
  const int kind = kind_of(op);
  for (ll row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* p = in + row * r;
    A shift = 0;
    if constexpr (std::is_same<A, float>::value) {
      if (op == kLogSumExp) {
        float m = -INFINITY;
        for (ll j = threadIdx.x; j < r; j += blockDim.x) m = k::nan_max(m, load_acc(p, j));
        m = block_reduce(m, static_cast<int>(kMaxK), -INFINITY, smem);
        shift = isinf(m) ? 0.0f : m;
      }
    }
    A acc = init<T>(kind);
    for (ll j = threadIdx.x; j < r; j += blockDim.x) acc = comb(kind, acc, pre(op, load_acc(p, j), shift));
    acc = block_reduce(acc, kind, init<T>(kind), smem);
    if (threadIdx.x == 0) store_acc(out, row, post(op, acc, r, shift));
  }
}

// ------------------------------------------------------------------------------------------- columns: inner > 1 --
constexpr int kColX = 32, kColY = 8;

template <typename A>
__device__ __forceinline__ A column_combine(A v, int kind, A (*smem)[kColX + 1]) {
  __syncthreads();
  smem[threadIdx.y][threadIdx.x] = v;
  __syncthreads();
  if (threadIdx.y == 0) {
#pragma unroll
    for (int y = 1; y < kColY; ++y) v = comb(kind, v, smem[y][threadIdx.x]);
    smem[0][threadIdx.x] = v;
  }
  __syncthreads();
  return smem[0][threadIdx.x];
}

template <typename T>
__global__ void __launch_bounds__(kColX * kColY) columns(const T* __restrict__ in, T* __restrict__ out, int op,
                                                         ll outer, ll r, ll inner) {
  using A = typename AccOf<T>::type;
  __shared__ A smem[kColY][kColX + 1];
  const int kind = kind_of(op);
  const ll tiles_per_outer = (inner + kColX - 1) / kColX;
  const ll tiles = outer * tiles_per_outer;
  for (ll tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const ll o = tile / tiles_per_outer;
    const ll i = (tile - o * tiles_per_outer) * kColX + threadIdx.x;
    const bool valid = i < inner;
    const T* p = in + o * r * inner + (valid ? i : 0);
    A shift = 0;
    if constexpr (std::is_same<A, float>::value) {
      if (op == kLogSumExp) {
        float m = -INFINITY;
        if (valid)
          for (ll j = threadIdx.y; j < r; j += kColY) m = k::nan_max(m, load_acc(p, j * inner));
        m = column_combine(m, static_cast<int>(kMaxK), smem);
        shift = isinf(m) ? 0.0f : m;
      }
    }
    A acc = init<T>(kind);
    if (valid)
      for (ll j = threadIdx.y; j < r; j += kColY) acc = comb(kind, acc, pre(op, load_acc(p, j * inner), shift));
    acc = column_combine(acc, kind, smem);
    if (valid && threadIdx.y == 0) store_acc(out, o * inner + i, post(op, acc, r, shift));
  }
}

template <typename T>
cudaError_t run(const Args& a, cudaStream_t stream, ll max_blocks) {
  const T* in = static_cast<const T*>(a.in);
  T* out = static_cast<T*>(a.out);
  if (a.inner == 1) {
    if (a.r > 1024) {
      rows_block<T><<<k::grid_1d(a.outer, 1, max_blocks), 512, 0, stream>>>(in, out, a.op, a.outer, a.r);
    } else {
      rows_warp<T><<<k::grid_1d(a.outer * 32, 256, max_blocks), 256, 0, stream>>>(in, out, a.op, a.outer, a.r);
    }
  } else {
    const ll tiles = a.outer * ((a.inner + kColX - 1) / kColX);
    columns<T><<<k::grid_1d(tiles, 1, max_blocks), dim3(kColX, kColY), 0, stream>>>(in, out, a.op, a.outer, a.r,
                                                                                     a.inner);
  }
  return cudaGetLastError();
}

// -------------------------------------------------------------------------------------------------- arg max/min --
template <typename T> struct CmpOf { using type = float; };
template <> struct CmpOf<int> { using type = ll; };
template <> struct CmpOf<ll> { using type = ll; };

__device__ __forceinline__ bool is_nan(float x) { return x != x; }
__device__ __forceinline__ bool is_nan(ll) { return false; }

// Whether candidate (v, i) replaces the current best (bv, bi); index < 0 marks "none".
template <typename C>
__device__ __forceinline__ bool better(C bv, ll bi, C v, ll i, bool select_min, bool last) {
  if (i < 0) return false;
  if (bi < 0) return true;
  const bool bn = is_nan(bv), n = is_nan(v);
  if (bn || n) {
    if (bn && n) return last ? i > bi : i < bi;
    return n;  // NaN wins (numpy's argmax/argmin return the first NaN)
  }
  if (v == bv) return last ? i > bi : i < bi;
  return select_min ? v < bv : v > bv;
}

template <typename T>
__global__ void __launch_bounds__(256) arg_rows(const T* __restrict__ in, ll* __restrict__ out, int select_min,
                                                int last, ll rows, ll r) {
  using C = typename CmpOf<T>::type;
  const int lane = threadIdx.x & 31;
  const ll nwarps = (static_cast<ll>(gridDim.x) * blockDim.x) >> 5;
  for (ll row = (static_cast<ll>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; row < rows; row += nwarps) {
    const T* p = in + row * r;
    C bv = 0;
    ll bi = -1;
    for (ll j = lane; j < r; j += 32) {
      const C v = load_acc(p, j);
      if (better(bv, bi, v, j, select_min, last)) {
        bv = v;
        bi = j;
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const C ov = __shfl_xor_sync(0xffffffffu, bv, o);
      const ll oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (better(bv, bi, ov, oi, select_min, last)) {
        bv = ov;
        bi = oi;
      }
    }
    if (lane == 0) out[row] = bi < 0 ? 0 : bi;
  }
}

template <typename T>
__global__ void __launch_bounds__(256) arg_columns(const T* __restrict__ in, ll* __restrict__ out, int select_min,
                                                   int last, ll outer, ll r, ll inner) {
  using C = typename CmpOf<T>::type;
  const ll n = outer * inner;
  for (ll t = static_cast<ll>(blockIdx.x) * blockDim.x + threadIdx.x; t < n;
       t += static_cast<ll>(gridDim.x) * blockDim.x) {
    const ll o = t / inner, i = t - o * inner;
    const T* p = in + o * r * inner + i;
    C bv = 0;
    ll bi = -1;
    for (ll j = 0; j < r; ++j) {
      const C v = load_acc(p, j * inner);
      if (better(bv, bi, v, j, select_min, last)) {
        bv = v;
        bi = j;
      }
    }
    out[t] = bi < 0 ? 0 : bi;
  }
}

template <typename T>
cudaError_t run_arg(const ArgArgs& a, cudaStream_t stream, ll max_blocks) {
  const T* in = static_cast<const T*>(a.in);
  ll* out = static_cast<ll*>(a.out);
  if (a.inner == 1)
    arg_rows<T><<<k::grid_1d(a.outer * 32, 256, max_blocks), 256, 0, stream>>>(in, out, a.select_min,
                                                                                a.select_last, a.outer, a.r);
  else
    arg_columns<T><<<k::grid_1d(a.outer * a.inner, 256, max_blocks), 256, 0, stream>>>(
        in, out, a.select_min, a.select_last, a.outer, a.r, a.inner);
  return cudaGetLastError();
}

}  // namespace

cudaError_t reduce(const Args& a, cudaStream_t stream, long long max_blocks) {
  if (a.outer <= 0 || a.inner <= 0) return cudaSuccess;
  switch (a.dtype) {
    case k::kFloat: return run<float>(a, stream, max_blocks);
    case k::kHalf: return run<__half>(a, stream, max_blocks);
    case k::kBFloat16: return run<__nv_bfloat16>(a, stream, max_blocks);
    case k::kInt32: return run<int>(a, stream, max_blocks);
    case k::kInt64: return run<ll>(a, stream, max_blocks);
  }
  return cudaErrorInvalidValue;
}

cudaError_t arg_reduce(const ArgArgs& a, cudaStream_t stream, long long max_blocks) {
  if (a.outer <= 0 || a.inner <= 0) return cudaSuccess;
  switch (a.dtype) {
    case k::kFloat: return run_arg<float>(a, stream, max_blocks);
    case k::kHalf: return run_arg<__half>(a, stream, max_blocks);
    case k::kBFloat16: return run_arg<__nv_bfloat16>(a, stream, max_blocks);
    case k::kInt32: return run_arg<int>(a, stream, max_blocks);
    case k::kInt64: return run_arg<ll>(a, stream, max_blocks);
  }
  return cudaErrorInvalidValue;
}

}  // namespace red
}  // namespace tp
