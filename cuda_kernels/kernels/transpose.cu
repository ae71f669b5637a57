// N-d transpose. A batched swap of the last two dims ([B, R, C] -> [B, C, R], which is what NCHW <-> NHWC and
// most attention transposes collapse to) goes through 32 x 32 shared-memory tiles so that both the reads and the
// writes are coalesced, unless one of the two dims is narrow (<= kNarrow: an image's 3 channels), where a tile
// would leave most of its threads idle (185 GB/s measured for [32, 3, 224 * 224] half on an H200): then each
// thread moves one row of the narrow dim, and a warp still reads and writes contiguous runs. Every other
// permutation is a strided copy (copy.cu).
#include "common.cuh"
#include "movement.h"

namespace tp {
namespace mv {
namespace {

using ll = long long;
constexpr int kTile = 32, kRows = 8;

template <typename E>
__global__ void __launch_bounds__(kTile * kRows) tiled(const E* __restrict__ in, E* __restrict__ out, ll batch, ll r,
                                                       ll c) {
  __shared__ E tile[kTile][kTile + 1];
  const ll tr = (r + kTile - 1) / kTile, tc = (c + kTile - 1) / kTile;
  const ll tiles = batch * tr * tc;
  for (ll t = blockIdx.x; t < tiles; t += gridDim.x) {
    const ll b = t / (tr * tc);
    const ll rem = t - b * tr * tc;
    const ll r0 = (rem / tc) * kTile, c0 = (rem % tc) * kTile;
    const E* src = in + b * r * c;
    E* dst = out + b * r * c;
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
      if (rr < r && cc < c) dst[cc * r + rr] = tile[threadIdx.x][threadIdx.y + k];
    }
  }
}

constexpr int kNarrow = 8;

// [B, R, C] -> [B, C, R] with R <= kNarrow (reads: R coalesced rows; writes: R consecutive elements per thread) or
// C <= kNarrow (the mirror image). One thread per element of the wide dim.
template <typename E, bool kNarrowRows>
__global__ void narrow(const E* __restrict__ in, E* __restrict__ out, ll batch, ll r, ll c) {
  const ll wide = kNarrowRows ? c : r, thin = kNarrowRows ? r : c;
  const ll total = batch * wide;
  for (ll i = blockIdx.x * static_cast<ll>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<ll>(gridDim.x) * blockDim.x) {
    const ll b = i / wide, w = i - b * wide;
    const E* src = in + b * r * c;
    E* dst = out + b * r * c;
    for (ll t = 0; t < thin; ++t) {
      if (kNarrowRows)
        dst[w * r + t] = src[t * c + w];  // in [t, w] -> out [w, t]
      else
        dst[t * r + w] = src[w * c + t];  // in [w, t] -> out [t, w]
    }
  }
}

template <typename E>
cudaError_t run_tiled(const void* in, void* out, ll batch, ll r, ll c, cudaStream_t stream, ll max_blocks) {
  if (r <= kNarrow || c <= kNarrow) {
    constexpr int kThreads = 256;
    const unsigned grid = k::grid_1d(batch * (r <= kNarrow ? c : r), kThreads, max_blocks);
    if (r <= kNarrow)
      narrow<E, true><<<grid, kThreads, 0, stream>>>(static_cast<const E*>(in), static_cast<E*>(out), batch, r, c);
    else
      narrow<E, false><<<grid, kThreads, 0, stream>>>(static_cast<const E*>(in), static_cast<E*>(out), batch, r, c);
    return cudaGetLastError();
  }
  const ll tiles = batch * ((r + kTile - 1) / kTile) * ((c + kTile - 1) / kTile);
  tiled<E><<<k::grid_1d(tiles, 1, max_blocks), dim3(kTile, kRows), 0, stream>>>(static_cast<const E*>(in),
                                                                                 static_cast<E*>(out), batch, r, c);
  return cudaGetLastError();
}

}  // namespace

cudaError_t transpose(const TransposeArgs& a, cudaStream_t stream, long long max_blocks) {
  ll n = 1;
  for (int d = 0; d < a.ndim; ++d) n *= a.in_dims[d];
  if (n <= 0) return cudaSuccess;
  ll batch = 0, r = 0, c = 0;
  if (a.ndim == 2 && a.perm[0] == 1 && a.perm[1] == 0) {
    batch = 1, r = a.in_dims[0], c = a.in_dims[1];
  } else if (a.ndim == 3 && a.perm[0] == 0 && a.perm[1] == 2 && a.perm[2] == 1) {
    batch = a.in_dims[0], r = a.in_dims[1], c = a.in_dims[2];
  }
  if (batch > 0) {
    switch (a.esize) {
      case 1: return run_tiled<k::Bits<1>::type>(a.in, a.out, batch, r, c, stream, max_blocks);
      case 2: return run_tiled<k::Bits<2>::type>(a.in, a.out, batch, r, c, stream, max_blocks);
      case 4: return run_tiled<k::Bits<4>::type>(a.in, a.out, batch, r, c, stream, max_blocks);
      case 8: return run_tiled<k::Bits<8>::type>(a.in, a.out, batch, r, c, stream, max_blocks);
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
