// N-d Pad: out[c] = in[c - pads_begin] where that lies inside the input; elsewhere the constant (mode 0), the
// mirror image without repeating the edge (mode 1, reflect: -1 -> 1, n -> n - 2, periodic beyond), or the
// nearest edge element (mode 2). Negative pads crop.
#include "common.cuh"
#include "movement.h"

namespace tp {
namespace mv {
namespace {

using ll = long long;

__device__ __forceinline__ ll reflect(ll i, ll n) {
  if (n == 1) return 0;
  const ll period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i >= n ? period - i : i;
}

template <typename E>
__global__ void __launch_bounds__(256) pad_kernel(const __grid_constant__ PadArgs a, ll n) {
  const E* in = static_cast<const E*>(a.in);
  E* out = static_cast<E*>(a.out);
  const E value = static_cast<E>(a.bits);
  const ll step = static_cast<ll>(gridDim.x) * blockDim.x;
  for (ll t = static_cast<ll>(blockIdx.x) * blockDim.x + threadIdx.x; t < n; t += step) {
    ll rem = t, src = 0, in_stride = 1;
    bool inside = true;
#pragma unroll
    for (int d = kMaxDims - 1; d >= 0; --d)
      if (d < a.ndim) {
        const ll od = a.out_dims[d], id = a.in_dims[d];
        const ll c = d == 0 ? rem : rem % od;
        rem = d == 0 ? 0 : rem / od;
        ll i = c - a.pads_begin[d];
        if (i < 0 || i >= id) {
          if (a.mode == 1)
            i = reflect(i, id);
          else if (a.mode == 2)
            i = i < 0 ? 0 : id - 1;
          else
            inside = false;
        }
        src += i * in_stride;
        in_stride *= id;
      }
    out[t] = inside ? in[src] : value;
  }
}

template <typename E>
cudaError_t run(const PadArgs& a, ll n, cudaStream_t stream, ll max_blocks) {
  pad_kernel<E><<<k::grid_1d(n, 256, max_blocks), 256, 0, stream>>>(a, n);
  return cudaGetLastError();
}

}  // namespace

cudaError_t pad(const PadArgs& a, cudaStream_t stream, long long max_blocks) {
  ll n = 1;
  for (int d = 0; d < a.ndim; ++d) n *= a.out_dims[d];
  if (n <= 0) return cudaSuccess;
  switch (a.esize) {
    case 1: return run<k::Bits<1>::type>(a, n, stream, max_blocks);
    case 2: return run<k::Bits<2>::type>(a, n, stream, max_blocks);
    case 4: return run<k::Bits<4>::type>(a, n, stream, max_blocks);
    case 8: return run<k::Bits<8>::type>(a, n, stream, max_blocks);
  }
  return cudaErrorInvalidValue;
}

}  // namespace mv
}  // namespace tp
