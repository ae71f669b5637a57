// N-d transpose. A batched swap of the last two dims ([B, R, C] -> [B, C, R], which is what NCHW <-> NHWC and
// most attention transposes collapse to) goes through 32 x 32 shared-memory tiles so that both the reads and the
// writes are coalesced; every other permutation is a strided copy (copy.cu).
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

template <typename E>
cudaError_t run_tiled(const void* in, void* out, ll batch, ll r, ll c, cudaStream_t stream, ll max_blocks) {
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
