// N-d transpose. A batched swap of the last two dims ([B, R, C] -> [B, C, R], which is what NCHW <-> NHWC and
// most attention transposes collapse to) goes through 32 x 32 shared-memory tiles so that both the reads and the
// writes are coalesced, unless one of the two dims is narrow (<= kNarrow: an image's 3 channels), where a tile
// would leave most of its threads idle (185 GB/s measured for [32, 3, 224 * 224] half on an H200): then each
// thread moves one row of the narrow dim, and a warp still reads and writes contiguous runs. Every other
// permutation is a strided copy (copy.cu).
// A converting transpose (a Cast fused into it: float32 <-> float16 / bfloat16) takes the same two paths with
// the conversion at the store; its other permutations run one thread per output element.
#include <type_traits>

#include "common.cuh"
#include "movement.h"

namespace tp {
namespace mv {
namespace {

using ll = long long;
constexpr int kTile = 32, kRows = 8;

template <typename In, typename Out>
__device__ __forceinline__ Out convert(In x) {
  if constexpr (std::is_same<In, Out>::value)
    return x;
  else
    return k::from_float<Out>(k::to_float(x));
}

template <typename In, typename Out>
__global__ void __launch_bounds__(kTile * kRows) tiled(const In* __restrict__ in, Out* __restrict__ out, ll batch,
                                                       ll r, ll c) {
  __shared__ In tile[kTile][kTile + 1];
  const ll tr = (r + kTile - 1) / kTile, tc = (c + kTile - 1) / kTile;
  const ll tiles = batch * tr * tc;
  for (ll t = blockIdx.x; t < tiles; t += gridDim.x) {
    const ll b = t / (tr * tc);
    const ll rem = t - b * tr * tc;
    const ll r0 = (rem / tc) * kTile, c0 = (rem % tc) * kTile;
    const In* src = in + b * r * c;
    Out* dst = out + b * r * c;
    __syncthreads();  // the previous tile's reads of `tile` are done
#pragma unroll
    for (int k = 0; k < kTile; k += kRows) {
      const ll rr = r0 + threadIdx.y + k, cc = c0 + threadIdx.x;
      if (rr < r && cc < c) tile[threadIdx.y + k][threadIdx.x] = src[rr * c + cc];
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kTile; k += kRows) {
      const ll cc = c0 + threadIdx.y + k, rr = r0 + threadIdx.x;
      if (rr < r && cc < c) dst[cc * r + rr] = convert<In, Out>(tile[threadIdx.x][threadIdx.y + k]);
    }
  }
}

constexpr int kNarrow = 8;

// [B, R, C] -> [B, C, R] with R <= kNarrow (reads: R coalesced rows; writes: R consecutive elements per thread) or
// C <= kNarrow (the mirror image). One thread per element of the wide dim.
template <typename In, typename Out, bool kNarrowRows>
__global__ void narrow(const In* __restrict__ in, Out* __restrict__ out, ll batch, ll r, ll c) {
  const ll wide = kNarrowRows ? c : r, thin = kNarrowRows ? r : c;
  const ll total = batch * wide;
  for (ll i = blockIdx.x * static_cast<ll>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<ll>(gridDim.x) * blockDim.x) {
    const ll b = i / wide, w = i - b * wide;
    const In* src = in + b * r * c;
    Out* dst = out + b * r * c;
    for (ll t = 0; t < thin; ++t) {
      if (kNarrowRows)
        dst[w * r + t] = convert<In, Out>(src[t * c + w]);  // in [t, w] -> out [w, t]
      else
        dst[t * r + w] = convert<In, Out>(src[w * c + t]);  // in [w, t] -> out [t, w]
    }
  }
}

template <typename In, typename Out>
cudaError_t run_tiled(const void* in, void* out, ll batch, ll r, ll c, cudaStream_t stream, ll max_blocks) {
  const In* x = static_cast<const In*>(in);
  Out* y = static_cast<Out*>(out);
  if (r <= kNarrow || c <= kNarrow) {
    constexpr int kThreads = 256;
    const unsigned grid = k::grid_1d(batch * (r <= kNarrow ? c : r), kThreads, max_blocks);
    if (r <= kNarrow)
      narrow<In, Out, true><<<grid, kThreads, 0, stream>>>(x, y, batch, r, c);
    else
      narrow<In, Out, false><<<grid, kThreads, 0, stream>>>(x, y, batch, r, c);
    return cudaGetLastError();
  }
  const ll tiles = batch * ((r + kTile - 1) / kTile) * ((c + kTile - 1) / kTile);
  tiled<In, Out><<<k::grid_1d(tiles, 1, max_blocks), dim3(kTile, kRows), 0, stream>>>(x, y, batch, r, c);
  return cudaGetLastError();
}

// Any permutation, converting: out element t (over dims[]) reads in[sum c_d * strides[d]].
struct Permute {
  int ndim = 0;
  ll dims[kMaxDims] = {}, strides[kMaxDims] = {};
};

template <typename In, typename Out, typename I>
__global__ void __launch_bounds__(256) permute(const In* __restrict__ in, Out* __restrict__ out, const Permute p,
                                               I n) {
  const I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I t = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; t < n; t += step) {
    I rem = t, src = 0;
#pragma unroll
    for (int d = kMaxDims - 1; d >= 0; --d)
      if (d < p.ndim) {
        const I dim = static_cast<I>(p.dims[d]);
        const I c = d == 0 ? rem : rem % dim;
        rem = d == 0 ? 0 : rem / dim;
        src += c * static_cast<I>(p.strides[d]);
      }
    out[t] = convert<In, Out>(in[src]);
  }
}

// [B, R, C] -> [B, C, R] (a 2-d transpose is B = 1): the shapes the tiled and narrow paths take.
bool swap_last_two(const TransposeArgs& a, ll* batch, ll* r, ll* c) {
  if (a.ndim == 2 && a.perm[0] == 1 && a.perm[1] == 0) {
    *batch = 1, *r = a.in_dims[0], *c = a.in_dims[1];
    return true;
  }
  if (a.ndim == 3 && a.perm[0] == 0 && a.perm[1] == 2 && a.perm[2] == 1) {
    *batch = a.in_dims[0], *r = a.in_dims[1], *c = a.in_dims[2];
    return true;
  }
  return false;
}

template <typename In, typename Out>
cudaError_t converting(const TransposeArgs& a, ll n, cudaStream_t stream, ll max_blocks) {
  ll batch = 0, r = 0, c = 0;
  if (swap_last_two(a, &batch, &r, &c)) return run_tiled<In, Out>(a.in, a.out, batch, r, c, stream, max_blocks);
  Permute p;
  p.ndim = a.ndim;
  ll in_strides[kMaxDims];
  ll s = 1;
  for (int d = a.ndim - 1; d >= 0; --d) {
    in_strides[d] = s;
    s *= a.in_dims[d];
  }
  for (int d = 0; d < a.ndim; ++d) {
    p.dims[d] = a.in_dims[a.perm[d]];
    p.strides[d] = in_strides[a.perm[d]];
  }
  const In* x = static_cast<const In*>(a.in);
  Out* y = static_cast<Out*>(a.out);
  const unsigned grid = k::grid_1d(n, 256, max_blocks);
  if (n < (1LL << 31))
    permute<In, Out, unsigned><<<grid, 256, 0, stream>>>(x, y, p, static_cast<unsigned>(n));
  else
    permute<In, Out, ll><<<grid, 256, 0, stream>>>(x, y, p, n);
  return cudaGetLastError();
}

}  // namespace

cudaError_t transpose(const TransposeArgs& a, cudaStream_t stream, long long max_blocks) {
  ll n = 1;
  for (int d = 0; d < a.ndim; ++d) n *= a.in_dims[d];
  if (n <= 0) return cudaSuccess;
  if (a.in_dtype != a.out_dtype) {
    if (a.in_dtype == k::kFloat && a.out_dtype == k::kHalf) return converting<float, __half>(a, n, stream, max_blocks);
    if (a.in_dtype == k::kFloat && a.out_dtype == k::kBFloat16)
      return converting<float, __nv_bfloat16>(a, n, stream, max_blocks);
    if (a.in_dtype == k::kHalf && a.out_dtype == k::kFloat) return converting<__half, float>(a, n, stream, max_blocks);
    if (a.in_dtype == k::kBFloat16 && a.out_dtype == k::kFloat)
      return converting<__nv_bfloat16, float>(a, n, stream, max_blocks);
    return cudaErrorInvalidValue;
  }
  ll batch = 0, r = 0, c = 0;
  if (swap_last_two(a, &batch, &r, &c)) {
    switch (a.esize) {
      case 1: return run_tiled<k::Bits<1>::type, k::Bits<1>::type>(a.in, a.out, batch, r, c, stream, max_blocks);
      case 2: return run_tiled<k::Bits<2>::type, k::Bits<2>::type>(a.in, a.out, batch, r, c, stream, max_blocks);
      case 4: return run_tiled<k::Bits<4>::type, k::Bits<4>::type>(a.in, a.out, batch, r, c, stream, max_blocks);
      case 8: return run_tiled<k::Bits<8>::type, k::Bits<8>::type>(a.in, a.out, batch, r, c, stream, max_blocks);
    }
    return cudaErrorInvalidValue;
  }
  CopyArgs cp;
  cp.in = a.in;
  cp.out = a.out;
  cp.esize = a.esize;
  cp.ndim = a.ndim;
  ll in_strides[kMaxDims];
  ll s = 1;
  for (int d = a.ndim - 1; d >= 0; --d) {
    in_strides[d] = s;
    s *= a.in_dims[d];
  }
  s = 1;
  for (int d = a.ndim - 1; d >= 0; --d) {
    cp.dims[d] = a.in_dims[a.perm[d]];
    cp.in_strides[d] = in_strides[a.perm[d]];
    cp.out_strides[d] = s;
    s *= cp.dims[d];
  }
  return copy(cp, stream, max_blocks);
}

}  // namespace mv
}  // namespace tp
