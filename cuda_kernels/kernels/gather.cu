// Axis gather: out[o, j, i] = data[o, idx[j], i] (idx[j] < 0 counts from the end). An index still outside
// [0, axis) after that writes zeros: ONNX makes it an error, which a kernel cannot raise.
// GatherElements: out[c] = data[c with c[axis] = idx[c]], same rules for the index.
#include "common.cuh"
#include "movement.h"

namespace tp {
namespace mv {
namespace {

using ll = long long;

template <typename E>
__global__ void __launch_bounds__(256) gather_kernel(const E* __restrict__ data, const void* __restrict__ indices,
                                                     E* __restrict__ out, int idx64, ll outer, ll axis, ll inner,
                                                     ll n_idx) {
  const ll n = outer * n_idx * inner;
  const ll step = static_cast<ll>(gridDim.x) * blockDim.x;
  for (ll t = static_cast<ll>(blockIdx.x) * blockDim.x + threadIdx.x; t < n; t += step) {
    const ll i = t % inner;
    const ll oj = t / inner;
    const ll j = oj % n_idx;
    const ll o = oj / n_idx;
    ll idx = idx64 ? static_cast<const ll*>(indices)[j] : static_cast<ll>(static_cast<const int*>(indices)[j]);
    if (idx < 0) idx += axis;
    out[t] = (idx >= 0 && idx < axis) ? data[(o * axis + idx) * inner + i] : E(0);
  }
}

template <typename E>
cudaError_t run(const GatherArgs& a, cudaStream_t stream, ll max_blocks) {
  const ll n = a.outer * a.n_idx * a.inner;
  gather_kernel<E><<<k::grid_1d(n, 256, max_blocks), 256, 0, stream>>>(
      static_cast<const E*>(a.data), a.indices, static_cast<E*>(a.out), a.idx64, a.outer, a.axis, a.inner, a.n_idx);
  return cudaGetLastError();
}

struct Dims8 {
  ll v[kMaxGatherRank];
};

template <typename E>
__global__ void __launch_bounds__(256) gather_elements_kernel(const E* __restrict__ data,
                                                              const void* __restrict__ indices, E* __restrict__ out,
                                                              int idx64, int rank, int axis, Dims8 ddims,
                                                              Dims8 idims, ll n) {
  const ll step = static_cast<ll>(gridDim.x) * blockDim.x;
  for (ll t = static_cast<ll>(blockIdx.x) * blockDim.x + threadIdx.x; t < n; t += step) {
    ll idx = idx64 ? static_cast<const ll*>(indices)[t] : static_cast<ll>(static_cast<const int*>(indices)[t]);
    const ll extent = ddims.v[axis];
    if (idx < 0) idx += extent;
    bool inside = idx >= 0 && idx < extent;
    ll rest = t, src = 0, stride = 1;
    for (int d = rank - 1; d >= 0; --d) {
      const ll c = rest % idims.v[d];
      rest /= idims.v[d];
      const ll coord = d == axis ? idx : c;
      if (coord >= ddims.v[d]) inside = false;
      src += coord * stride;
      stride *= ddims.v[d];
    }
    out[t] = inside ? data[src] : E(0);
  }
}

template <typename E>
cudaError_t run_elements(const GatherElementsArgs& a, cudaStream_t stream, ll max_blocks) {
  Dims8 dd{}, id{};
  ll n = 1;
  for (int d = 0; d < a.rank; ++d) {
    dd.v[d] = a.data_dims[d];
    id.v[d] = a.idx_dims[d];
    n *= a.idx_dims[d];
  }
  if (n <= 0) return cudaSuccess;
  gather_elements_kernel<E><<<k::grid_1d(n, 256, max_blocks), 256, 0, stream>>>(
      static_cast<const E*>(a.data), a.indices, static_cast<E*>(a.out), a.idx64, a.rank, a.axis, dd, id, n);
  return cudaGetLastError();
}

}  // namespace

cudaError_t gather_elements(const GatherElementsArgs& a, cudaStream_t stream, long long max_blocks) {
  if (a.rank < 1 || a.rank > kMaxGatherRank || a.axis < 0 || a.axis >= a.rank) return cudaErrorInvalidValue;
  switch (a.esize) {
    case 1: return run_elements<k::Bits<1>::type>(a, stream, max_blocks);
    case 2: return run_elements<k::Bits<2>::type>(a, stream, max_blocks);
    case 4: return run_elements<k::Bits<4>::type>(a, stream, max_blocks);
    case 8: return run_elements<k::Bits<8>::type>(a, stream, max_blocks);
  }
  return cudaErrorInvalidValue;
}

cudaError_t gather(const GatherArgs& a, cudaStream_t stream, long long max_blocks) {
  if (a.outer <= 0 || a.n_idx <= 0 || a.inner <= 0) return cudaSuccess;
  switch (a.esize) {
    case 1: return run<k::Bits<1>::type>(a, stream, max_blocks);
    case 2: return run<k::Bits<2>::type>(a, stream, max_blocks);
    case 4: return run<k::Bits<4>::type>(a, stream, max_blocks);
    case 8: return run<k::Bits<8>::type>(a, stream, max_blocks);
  }
  return cudaErrorInvalidValue;
}

}  // namespace mv
}  // namespace tp
