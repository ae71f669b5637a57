// Max / average pooling over up to 3 spatial dims, one thread per output element: window start = o * stride -
// pad_begin, positions every `dilation` inside [start, start + kernel * dilation), positions outside the input
// skipped (the windows of ONNX Runtime's CPU provider; the numbers follow ep_trtpy/ops/pooling.py).
//   max:     the maximum of the valid elements; a NaN among them gives NaN (numpy's max, where ORT's CPU provider
//            keeps a NaN only when it comes first), and a window without one gives -inf (ORT: lowest()).
//   average: sum of the valid elements / (count_include_pad ? prod_d (1 + (end_d - start_d - 1) / dilation_d),
//            with end_d clipped to in_d + pad_end_d : number of valid elements); an empty window gives 0.
#include "common.cuh"
#include "spatial.h"

namespace tp {
namespace sp {
namespace {

using ll = long long;

template <typename T>
__global__ void __launch_bounds__(256) pool_kernel(const __grid_constant__ PoolArgs a, ll n) {
  const T* in = static_cast<const T*>(a.in);
  T* out = static_cast<T*>(a.out);
  const ll step = static_cast<ll>(gridDim.x) * blockDim.x;
  const ll in_plane = a.in_sp[0] * a.in_sp[1] * a.in_sp[2];
  for (ll t = static_cast<ll>(blockIdx.x) * blockDim.x + threadIdx.x; t < n; t += step) {
    ll rem = t;
    ll o[3];
    o[2] = rem % a.out_sp[2];
    rem /= a.out_sp[2];
    o[1] = rem % a.out_sp[1];
    rem /= a.out_sp[1];
    o[0] = rem % a.out_sp[0];
    const ll c = rem / a.out_sp[0];
    ll start[3], end[3];
#pragma unroll
    for (int d = 0; d < 3; ++d) {
      start[d] = o[d] * a.stride[d] - a.pad_begin[d];
      end[d] = start[d] + a.kernel[d] * a.dilation[d];
      if (a.average) end[d] = min(end[d], a.in_sp[d] + a.pad_end[d]);
    }
    const T* base = in + c * in_plane;
    float acc = a.average ? 0.0f : -INFINITY;
    ll count = 0;
    for (ll z = start[0]; z < end[0]; z += a.dilation[0]) {
      if (z < 0 || z >= a.in_sp[0]) continue;
      for (ll y = start[1]; y < end[1]; y += a.dilation[1]) {
        if (y < 0 || y >= a.in_sp[1]) continue;
        const T* row = base + (z * a.in_sp[1] + y) * a.in_sp[2];
        for (ll x = start[2]; x < end[2]; x += a.dilation[2]) {
          if (x < 0 || x >= a.in_sp[2]) continue;
          const float v = k::to_float(row[x]);
          if (a.average) {
            acc += v;
            ++count;
          } else if (v > acc || v != v) {  // once acc is NaN, nothing replaces it
            acc = v;
          }
        }
      }
    }
    if (a.average) {
      if (count == 0) {
        acc = 0.0f;
      } else if (a.count_include_pad) {
        ll div = 1;
#pragma unroll
        for (int d = 0; d < 3; ++d) div *= 1 + (end[d] - start[d] - 1) / a.dilation[d];
        acc /= static_cast<float>(div);
      } else {
        acc /= static_cast<float>(count);
      }
    }
    out[t] = k::from_float<T>(acc);
  }
}

template <typename T>
cudaError_t run(const PoolArgs& a, ll n, cudaStream_t stream, ll max_blocks) {
  pool_kernel<T><<<k::grid_1d(n, 256, max_blocks), 256, 0, stream>>>(a, n);
  return cudaGetLastError();
}

}  // namespace

cudaError_t pool(const PoolArgs& a, cudaStream_t stream, long long max_blocks) {
  const ll n = a.nc * a.out_sp[0] * a.out_sp[1] * a.out_sp[2];
  if (n <= 0) return cudaSuccess;
  if (a.dtype == k::kFloat) return run<float>(a, n, stream, max_blocks);
  if (a.dtype == k::kHalf) return run<__half>(a, n, stream, max_blocks);
  if (a.dtype == k::kBFloat16) return run<__nv_bfloat16>(a, n, stream, max_blocks);
  return cudaErrorInvalidValue;
}

}  // namespace sp
}  // namespace tp
