// Strided N-d copy (Slice, Concat, Split, Expand, Tile, generic views) and constant fill.
// One thread per element in a grid-stride loop; the element's index over `dims` is decomposed innermost first
// (32-bit arithmetic when the element count allows it), then dotted with each side's strides.
#include "common.cuh"
#include "movement.h"

namespace tp {
namespace mv {
namespace {

using ll = long long;

template <typename E>
__global__ void __launch_bounds__(256) copy_kernel(const __grid_constant__ CopyArgs a, ll n) {
  const E* in = static_cast<const E*>(a.in);
  E* out = static_cast<E*>(a.out);
  const ll step = static_cast<ll>(gridDim.x) * blockDim.x;
  for (ll t = static_cast<ll>(blockIdx.x) * blockDim.x + threadIdx.x; t < n; t += step) {
    ll src = a.in_off, dst = a.out_off;
    if (n <= 0x7fffffffLL) {
      unsigned rem = static_cast<unsigned>(t);
#pragma unroll
      for (int d = kCopyMaxDims - 1; d >= 1; --d)
        if (d < a.ndim) {
          const unsigned dim = static_cast<unsigned>(a.dims[d]);
          const unsigned c = rem % dim;
          rem /= dim;
          src += static_cast<ll>(c) * a.in_strides[d];
          dst += static_cast<ll>(c) * a.out_strides[d];
        }
      src += static_cast<ll>(rem) * a.in_strides[0];
      dst += static_cast<ll>(rem) * a.out_strides[0];
    } else {
      ll rem = t;
#pragma unroll
      for (int d = kCopyMaxDims - 1; d >= 1; --d)
        if (d < a.ndim) {
          const ll c = rem % a.dims[d];
          rem /= a.dims[d];
          src += c * a.in_strides[d];
          dst += c * a.out_strides[d];
        }
      src += rem * a.in_strides[0];
      dst += rem * a.out_strides[0];
    }
    out[dst] = in[src];
  }
}

template <typename E>
__global__ void __launch_bounds__(256) fill_kernel(E* out, ll n, E value) {
  const ll step = static_cast<ll>(gridDim.x) * blockDim.x;
  for (ll t = static_cast<ll>(blockIdx.x) * blockDim.x + threadIdx.x; t < n; t += step) out[t] = value;
}

template <typename E>
cudaError_t run_copy(const CopyArgs& a, ll n, cudaStream_t stream, ll max_blocks) {
  copy_kernel<E><<<k::grid_1d(n, 256, max_blocks), 256, 0, stream>>>(a, n);
  return cudaGetLastError();
}

}  // namespace

cudaError_t copy(const CopyArgs& a, cudaStream_t stream, long long max_blocks) {
  ll n = 1;
  for (int d = 0; d < a.ndim; ++d) n *= a.dims[d];
  if (n <= 0) return cudaSuccess;
  switch (a.esize) {
    case 1: return run_copy<k::Bits<1>::type>(a, n, stream, max_blocks);
    case 2: return run_copy<k::Bits<2>::type>(a, n, stream, max_blocks);
    case 4: return run_copy<k::Bits<4>::type>(a, n, stream, max_blocks);
    case 8: return run_copy<k::Bits<8>::type>(a, n, stream, max_blocks);
  }
  return cudaErrorInvalidValue;
}

cudaError_t fill(void* out, int esize, long long n, unsigned long long bits, cudaStream_t stream,
                 long long max_blocks) {
  if (n <= 0) return cudaSuccess;
  const unsigned g = k::grid_1d(n, 256, max_blocks);
  switch (esize) {
    case 1: fill_kernel<uint8_t><<<g, 256, 0, stream>>>(static_cast<uint8_t*>(out), n, static_cast<uint8_t>(bits));
      break;
    case 2: fill_kernel<uint16_t><<<g, 256, 0, stream>>>(static_cast<uint16_t*>(out), n,
                                                         static_cast<uint16_t>(bits));
      break;
    case 4: fill_kernel<uint32_t><<<g, 256, 0, stream>>>(static_cast<uint32_t*>(out), n,
                                                         static_cast<uint32_t>(bits));
      break;
    case 8: fill_kernel<unsigned long long><<<g, 256, 0, stream>>>(static_cast<unsigned long long*>(out), n, bits);
      break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace mv
}  // namespace tp
