// The GEMM-based attention paths' kernels (attention.h). The softmax: one warp per score row; the row is read three
// times (max, sum, write), from L1/L2 after the first. They serve float32 engines and shapes cuDNN's flash attention
// refuses.
#include <algorithm>

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

// Grid: y walks the (b, h) pairs (grid-stride past 65535), z picks the tensor, x walks the S*W vectors of one pair
// row by row, so reads and writes both come in runs of W. W and row arrive in units of V.
template <typename V, bool kToPacked>
__global__ void __launch_bounds__(256) heads_copy_kernel(HeadsCopyArgs a) {
  const HeadsTensor t = a.t[blockIdx.z];
  const unsigned wv = static_cast<unsigned>(t.w), n = static_cast<unsigned>(t.s * t.w);
  V* heads = static_cast<V*>(t.heads);
  V* packed = static_cast<V*>(t.packed);
  for (ll bh = blockIdx.y; bh < a.b * a.h; bh += gridDim.y) {
    const ll hbase = (bh / a.h) * t.s * t.row + (bh % a.h) * t.w, pbase = bh * t.s * t.w;
    for (unsigned e = blockIdx.x * blockDim.x + threadIdx.x; e < n; e += gridDim.x * blockDim.x) {
      const ll ho = hbase + static_cast<ll>(e / wv) * t.row + e % wv;
      if (kToPacked) packed[pbase + e] = heads[ho];
      else heads[ho] = packed[pbase + e];
    }
  }
}

}  // namespace

cudaError_t heads_copy(const HeadsCopyArgs& a, cudaStream_t stream) {
  if (a.count < 1 || a.count > 3 || a.elem_bytes < 1) return cudaErrorInvalidValue;
  if (a.b * a.h <= 0) return cudaSuccess;
  const int64_t eb = a.elem_bytes;
  unsigned long long bits = 16;  // the lowest set bit of the OR: the largest power of two (<= 16) dividing all
  int64_t most = 0;
  for (int i = 0; i < a.count; ++i) {
    const HeadsTensor& t = a.t[i];
    if (t.s * t.w >= (1LL << 31)) return cudaErrorInvalidValue;
    bits |= reinterpret_cast<uintptr_t>(t.heads) | reinterpret_cast<uintptr_t>(t.packed) |
            static_cast<unsigned long long>(t.w * eb) | static_cast<unsigned long long>(t.row * eb);
    most = std::max(most, t.s * t.w);
  }
  const int64_t vb = static_cast<int64_t>(bits & (~bits + 1));
  HeadsCopyArgs u = a;
  for (int i = 0; i < a.count; ++i) {
    u.t[i].w = a.t[i].w * eb / vb;
    u.t[i].row = a.t[i].row * eb / vb;
  }
  const dim3 grid(k::grid_1d(most * eb / vb, 256, 4096), static_cast<unsigned>(std::min<int64_t>(a.b * a.h, 65535)),
                  static_cast<unsigned>(a.count));
  auto launch = [&](auto tag) {
    using V = decltype(tag);
    if (a.to_packed) heads_copy_kernel<V, true><<<grid, 256, 0, stream>>>(u);
    else heads_copy_kernel<V, false><<<grid, 256, 0, stream>>>(u);
  };
  switch (vb) {
    case 16: launch(uint4{}); break;
    case 8: launch(uint2{}); break;
    case 4: launch(uint32_t{}); break;
    case 2: launch(uint16_t{}); break;
    default: launch(uint8_t{}); break;
  }
  return cudaGetLastError();
}

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
