// Channels-last depthwise convolution and pooling (conv_nhwc.h).
//
// Depthwise convolutions (MobileNet's 3x3 layers) are memory-bound: about 2 bytes read and 2 written per output
// element in half precision against 2*R*S flops, so the aim is one read of X (the R*S re-reads of a pixel's
// neighbours hit L1/L2) and one write of Y, 16 bytes per access. cuDNN 9.19 offers runtime-compiled depthwise
// engines for the bare convolution but only a slow generic engine once bias and an activation are fused
// (measured: 500 us for [32,144,56,56] against 28 us unfused; cuda_kernels/tools/probe_fusion.cpp), hence ours.
#include <cstdint>

#include "activation.cuh"
#include "common.cuh"
#include "conv_nhwc.h"
#include "conv_nhwc_vec.cuh"

namespace tp {
namespace nhwc {
namespace {

using ll = long long;

// Thread index -> (pixel, channel group) with the channel group fastest.
template <int V>
__device__ __forceinline__ void split(ll i, ll cgroups, const Window& g, ll* n, ll* p, ll* q, ll* c) {
  *c = (i % cgroups) * V;
  ll pix = i / cgroups;
  *q = pix % g.q;
  pix /= g.q;
  *p = pix % g.p;
  *n = pix / g.p;
}

template <typename T, int V>
__global__ void __launch_bounds__(256) depthwise_kernel(Window g, const T* __restrict__ x, const T* __restrict__ w,
                                                        const T* __restrict__ bias, const T* __restrict__ z,
                                                        bool z_after_act, T* __restrict__ y, int act, float alpha,
                                                        float beta) {
  const ll cgroups = g.c / V;
  const ll total = g.n * g.p * g.q * cgroups;
  for (ll i = static_cast<ll>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<ll>(gridDim.x) * blockDim.x) {
    ll n, p, q, c;
    split<V>(i, cgroups, g, &n, &p, &q, &c);
    float acc[V];
#pragma unroll
    for (int j = 0; j < V; ++j) acc[j] = 0.f;
    const ll h0 = p * g.sh - g.ph, w0 = q * g.sw - g.pw;
    for (int r = 0; r < g.kh; ++r) {
      const ll hi = h0 + static_cast<ll>(r) * g.dh;
      if (hi < 0 || hi >= g.h) continue;
      for (int s = 0; s < g.kw; ++s) {
        const ll wi = w0 + static_cast<ll>(s) * g.dw;
        if (wi < 0 || wi >= g.w) continue;
        float xv[V], wv[V];
        load_vec<T, V>(x + ((n * g.h + hi) * g.w + wi) * g.c + c, xv);
        load_vec<T, V>(w + (static_cast<ll>(r) * g.kw + s) * g.c + c, wv);
#pragma unroll
        for (int j = 0; j < V; ++j) acc[j] = fmaf(xv[j], wv[j], acc[j]);
      }
    }
    const ll o = ((n * g.p + p) * g.q + q) * g.c + c;
    if (bias != nullptr) {
      float bv[V];
      load_vec<T, V>(bias + c, bv);
#pragma unroll
      for (int j = 0; j < V; ++j) acc[j] += bv[j];
    }
    float zv[V];
    if (z != nullptr) load_vec<T, V>(z + o, zv);
    if (z != nullptr && !z_after_act) {
#pragma unroll
      for (int j = 0; j < V; ++j) acc[j] += zv[j];
    }
#pragma unroll
    for (int j = 0; j < V; ++j) acc[j] = lib::activate(acc[j], act, alpha, beta);
    if (z != nullptr && z_after_act) {  // a CSP bottleneck's shortcut: act(conv + bias) + z
#pragma unroll
      for (int j = 0; j < V; ++j) acc[j] += zv[j];
    }
    store_vec<T, V>(y + o, acc);
  }
}

// Window positions along one axis that lie inside the padded extent [-pad_begin, n + pad_end).
__device__ __forceinline__ int padded_count(ll start, int k, int d, ll limit) {
  int cnt = 0;
  for (int r = 0; r < k; ++r) cnt += start + static_cast<ll>(r) * d < limit;
  return cnt;
}

template <typename T, int V>
__global__ void __launch_bounds__(256) pool_kernel(Window g, const T* __restrict__ x, T* __restrict__ y, bool average,
                                                   bool count_pad, int peh, int pew) {
  const ll cgroups = g.c / V;
  const ll total = g.n * g.p * g.q * cgroups;
  for (ll i = static_cast<ll>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<ll>(gridDim.x) * blockDim.x) {
    ll n, p, q, c;
    split<V>(i, cgroups, g, &n, &p, &q, &c);
    float acc[V];
#pragma unroll
    for (int j = 0; j < V; ++j) acc[j] = average ? 0.f : -INFINITY;
    int count = 0;
    bool nan[V] = {};
    const ll h0 = p * g.sh - g.ph, w0 = q * g.sw - g.pw;
    for (int r = 0; r < g.kh; ++r) {
      const ll hi = h0 + static_cast<ll>(r) * g.dh;
      if (hi < 0 || hi >= g.h) continue;
      for (int s = 0; s < g.kw; ++s) {
        const ll wi = w0 + static_cast<ll>(s) * g.dw;
        if (wi < 0 || wi >= g.w) continue;
        float xv[V];
        load_vec<T, V>(x + ((n * g.h + hi) * g.w + wi) * g.c + c, xv);
        ++count;
#pragma unroll
        for (int j = 0; j < V; ++j) {
          if (average) {
            acc[j] += xv[j];
          } else {
            nan[j] = nan[j] || xv[j] != xv[j];  // NaN propagates, as the NCHW pool kernel and numpy do
            acc[j] = fmaxf(acc[j], xv[j]);
          }
        }
      }
    }
    if (average) {
      const int positions =
          count_pad ? padded_count(h0, g.kh, g.dh, g.h + peh) * padded_count(w0, g.kw, g.dw, g.w + pew) : count;
      const float div = static_cast<float>(positions > 0 ? positions : 1);
#pragma unroll
      for (int j = 0; j < V; ++j) acc[j] /= div;
    } else {
#pragma unroll
      for (int j = 0; j < V; ++j)
        if (nan[j]) acc[j] = __int_as_float(0x7fc00000);
    }
    store_vec<T, V>(y + ((n * g.p + p) * g.q + q) * g.c + c, acc);
  }
}

template <typename T>
__global__ void reorder_kernel(const T* __restrict__ in, T* __restrict__ out, ll c, ll rs) {
  const ll total = c * rs;
  for (ll i = static_cast<ll>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<ll>(gridDim.x) * blockDim.x) {
    const ll ch = i % c, pos = i / c;  // out[pos, ch] = in[ch, pos]
    out[i] = in[ch * rs + pos];
  }
}

}  // namespace

cudaError_t depthwise(const DepthwiseArgs& a, cudaStream_t stream, long long max_blocks) {
  const Window& g = a.g;
  if (g.n * g.p * g.q * g.c == 0) return cudaSuccess;
  const bool ok = k::dispatch_float(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    const int v = vector_width<T>(g.c, {a.x, a.w_rsc, a.bias, a.z, a.y});
    const ll total = g.n * g.p * g.q * (g.c / v);
    const unsigned grid = k::grid_1d(total, 256, max_blocks);
    auto launch = [&](auto kernel) {
      kernel<<<grid, 256, 0, stream>>>(g, static_cast<const T*>(a.x), static_cast<const T*>(a.w_rsc),
                                       static_cast<const T*>(a.bias), static_cast<const T*>(a.z), a.z_after_act,
                                       static_cast<T*>(a.y), a.act, a.alpha, a.beta);
    };
    switch (v) {
      case 8: launch(depthwise_kernel<T, 8>); break;
      case 4: launch(depthwise_kernel<T, 4>); break;
      case 2: launch(depthwise_kernel<T, 2>); break;
      default: launch(depthwise_kernel<T, 1>); break;
    }
  });
  return ok ? cudaGetLastError() : cudaErrorInvalidValue;
}

cudaError_t reorder_depthwise_weights(const void* w_crs, void* w_rsc, int dtype, int64_t c, int64_t rs,
                                      cudaStream_t stream) {
  const bool ok = k::dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    reorder_kernel<T><<<k::grid_1d(c * rs, 256, 4096), 256, 0, stream>>>(static_cast<const T*>(w_crs),
                                                                         static_cast<T*>(w_rsc), c, rs);
  });
  return ok ? cudaGetLastError() : cudaErrorInvalidValue;
}

cudaError_t pool(const PoolArgs& a, cudaStream_t stream, long long max_blocks) {
  const Window& g = a.g;
  if (g.n * g.p * g.q * g.c == 0) return cudaSuccess;
  const bool ok = k::dispatch_float(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    const int v = vector_width<T>(g.c, {a.x, a.y});
    const ll total = g.n * g.p * g.q * (g.c / v);
    const unsigned grid = k::grid_1d(total, 256, max_blocks);
    auto launch = [&](auto kernel) {
      kernel<<<grid, 256, 0, stream>>>(g, static_cast<const T*>(a.x), static_cast<T*>(a.y), a.average,
                                       a.count_include_pad, a.peh, a.pew);
    };
    switch (v) {
      case 8: launch(pool_kernel<T, 8>); break;
      case 4: launch(pool_kernel<T, 4>); break;
      case 2: launch(pool_kernel<T, 2>); break;
      default: launch(pool_kernel<T, 1>); break;
    }
  });
  return ok ? cudaGetLastError() : cudaErrorInvalidValue;
}

}  // namespace nhwc
}  // namespace tp
