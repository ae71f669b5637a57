// The unfused attention path's kernels (attention.h): one warp per score row; the row is read three times (max,
// sum, write), from L1/L2 after the first. It serves float32 engines and shapes cuDNN's flash attention refuses.
#include "attention.h"
#include "common.cuh"

namespace tp {
namespace attn {
namespace {

using ll = long long;

template <typename M>
__device__ __forceinline__ float mask_at(const M* m, ll i) {
  return m == nullptr ? 0.f : k::to_float(m[i]);
}

template <typename P, typename M>
__global__ void __launch_bounds__(256) softmax_rows(const float* s, P* p, const M* m, ll rows, ll h, ll sq, ll skv,
                                                    ll m_sb, ll m_sh, ll m_sq, ll m_sk) {
  const int lane = threadIdx.x & 31;
  const ll warps = (static_cast<ll>(gridDim.x) * blockDim.x) >> 5;
  for (ll row = (static_cast<ll>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; row < rows; row += warps) {
    const ll i = row % sq, bh = row / sq, hh = bh % h, bb = bh / h;
    const ll mbase = bb * m_sb + hh * m_sh + i * m_sq;
    const float* srow = s + row * skv;
    float mx = -INFINITY;
    for (ll j = lane; j < skv; j += 32) mx = k::nan_max(mx, srow[j] + mask_at(m, mbase + j * m_sk));
    mx = k::warp_all_reduce(mx, [](float a, float b) { return k::nan_max(a, b); });
    const bool dead = mx == -INFINITY;  // a fully masked row: every exp below is 0 ...
    if (dead) mx = 0.f;
    float sum = 0.f;  // NaN when the row holds a NaN or a +inf (inf - inf): the row is NaN, as Softmax's rule
    for (ll j = lane; j < skv; j += 32) sum += __expf(srow[j] + mask_at(m, mbase + j * m_sk) - mx);
    sum = k::warp_all_reduce(sum, [](float a, float b) { return a + b; });
    const float inv = dead ? 0.f : 1.f / sum;  // ... and the row is zeros (ep_trtpy::Attention's definition)
    P* prow = p + row * skv;
    for (ll j = lane; j < skv; j += 32) prow[j] = k::from_float<P>(__expf(srow[j] + mask_at(m, mbase + j * m_sk) - mx) * inv);
  }
}

template <typename O, typename I>
__global__ void cast_kernel(const I* in, O* out, ll n) {
  for (ll i = static_cast<ll>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += static_cast<ll>(gridDim.x) * blockDim.x)
    out[i] = k::from_float<O>(k::to_float(in[i]));
}

}  // namespace

cudaError_t masked_softmax(const MaskedSoftmaxArgs& a, cudaStream_t stream, long long max_blocks) {
  const ll rows = a.b * a.h * a.sq;
  if (rows <= 0 || a.skv <= 0) return cudaSuccess;
  const unsigned grid = k::grid_1d(rows * 32, 256, max_blocks);
  bool ok = k::dispatch_float(a.p_dtype, [&](auto ptag) {
    using P = decltype(ptag);
    auto launch = [&](auto mtag) {
      using M = decltype(mtag);
      softmax_rows<P, M><<<grid, 256, 0, stream>>>(a.s, static_cast<P*>(a.p), static_cast<const M*>(a.m), rows,
                                                    a.h, a.sq, a.skv, a.m_sb, a.m_sh, a.m_sq, a.m_sk);
    };
    if (a.m == nullptr || !k::dispatch_float(a.m_dtype, launch)) launch(float{});
  });
  return ok ? cudaGetLastError() : cudaErrorInvalidValue;
}

cudaError_t cast(const void* in, int in_dtype, void* out, int out_dtype, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  const unsigned grid = k::grid_1d(n, 256, 65535LL * 8);
  bool inner_ok = true;
  const bool ok = k::dispatch_float(out_dtype, [&](auto otag) {
    using O = decltype(otag);
    inner_ok = k::dispatch_float(in_dtype, [&](auto itag) {
      using I = decltype(itag);
      cast_kernel<O, I><<<grid, 256, 0, stream>>>(static_cast<const I*>(in), static_cast<O*>(out), n);
    });
  });
  return ok && inner_ok ? cudaGetLastError() : cudaErrorInvalidValue;
}

}  // namespace attn
}  // namespace tp
