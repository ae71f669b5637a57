// Depthwise convolution tiled through shared memory: the "depthwise:tiled" tactic (conv_nhwc.h).
//
// The one-pixel-per-thread kernel (conv_nhwc.cu) reads each input pixel R*S times through L1/L2 and reaches 12-35%
// of the memory roofline on MobileNetV2. Here a block owns a tile of TP x TQ output pixels of one image and a slice
// of CT channels (8..64, the size that wastes the fewest channels of C). It loads the tile's input window (halo
// included) into shared memory once, as float, with 16-byte global loads, then each thread computes kOQ outputs
// along W for 2 channels. For 3x3 and 5x5 windows with stride 1 or 2 and no dilation the weights stay in registers
// and the thread keeps a whole window row in registers, so one shared-memory read serves up to S outputs; other
// windows read every tap from shared memory (and the weights through L1). The tile's shape is chosen once per layer
// (depthwise_tiled_plan) by a cost model: idle threads, halo loads, and the last wave of blocks.
//
// Padding is zeros in shared memory, so a tap over padding adds 0 * w, as the ONNX definition does; the one-pixel
// kernel skips such taps instead, which differs only for an infinite or NaN weight. NaN and inf inputs reach the
// outputs whose windows hold them; the epilogue (bias, residual before or after the activation, activation) is the
// one-pixel kernel's.
//
// Shared memory layout: [IH rows][pitch floats], a row being IW pixels of CT channels plus a pad chosen so that the
// groups of one half-warp (consecutive output rows, 2 channels per lane) fall on different banks.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "activation.cuh"
#include "common.cuh"
#include "conv_nhwc.h"
#include "conv_nhwc_vec.cuh"

namespace tp {
namespace nhwc {
namespace {

using ll = long long;

constexpr int kThreads = 256;
constexpr int kOQ = 4;                         // outputs along W per thread
constexpr int kBatch = 4;                      // input vectors each thread loads at once
constexpr int kMaxTileFloats = 48 * 1024 / 4;  // dynamic shared memory without the opt-in attribute

struct Tiling {
  int ct = 8;                          // channels per block, a multiple of 8 (whole 16-byte vectors)
  int tp = 1, tq = kOQ;                // output rows and columns per block (tq a multiple of kOQ)
  int ih = 1, iw = 1, pitch = 0;       // the input window in shared memory: rows, pixels per row, floats per row
  ll slices = 1, tiles_p = 1, tiles_q = 1;

  ll blocks(ll n) const { return n * tiles_p * tiles_q * slices; }
  ll floats() const { return static_cast<ll>(ih) * pitch; }
};

// Channels per block: the candidate that pads C least, the larger one on a tie.
int channel_slice(ll c) {
  int best = 64;
  ll best_padded = (c + 63) / 64 * 64;
  for (int ct : {32, 16, 8}) {
    const ll padded = (c + ct - 1) / ct * ct;
    if (padded < best_padded) best = ct, best_padded = padded;
  }
  return best;
}

// Floats per shared-memory row: sh * pitch = ct (mod 32), so the half-warp's groups on consecutive output rows
// read disjoint banks (ct >= 32 puts a whole half-warp in one group and needs no pad).
int row_pitch(int iw, int ct, int sh) {
  const int base = iw * ct;
  if (ct >= 32) return base;
  if (sh == 1) return base + ((ct - base) % 32 + 32) % 32;
  if (sh == 2) return base + ((ct / 2 - base) % 16 + 16) % 16;
  return base;
}

void set_extent(const Window& g, int tp, int tq, Tiling* t) {
  t->tp = tp;
  t->tq = tq;
  t->ih = static_cast<int>((tp - 1) * g.sh + (g.kh - 1) * g.dh + 1);
  t->iw = static_cast<int>((tq - 1) * g.sw + (g.kw - 1) * g.dw + 1);
  t->pitch = row_pitch(t->iw, t->ct, g.sh);
  t->tiles_p = (g.p + tp - 1) / tp;
  t->tiles_q = (g.q + tq - 1) / tq;
}

// Estimated instructions per element (per thread) of computing one output, idle threads included, and of loading
// one input of the window into shared memory; the shared memory of a multiprocessor.
constexpr double kComputeCost = 15.0, kLoadCost = 5.0;
constexpr ll kSmemPerSm = 227 * 1024;

// The register-blocked variant for a window (3 or 5: K x K, stride 1 or 2, no dilation), or 0 (generic).
int blocked_window(const Window& g) {
  const bool square = g.dh == 1 && g.dw == 1 && g.kh == g.kw && g.sh == g.sw && (g.sh == 1 || g.sh == 2);
  return square && (g.kh == 3 || g.kh == 5) ? g.kh : 0;
}

// Blocks resident per multiprocessor by registers (__launch_bounds__): 64 registers a thread, 128 for 5x5's weights.
constexpr int blocks_per_sm(int k) { return k == 5 ? 2 : 4; }

Tiling slice_only(const Window& g) {
  Tiling t;
  t.ct = channel_slice(g.c);
  t.slices = (g.c + t.ct - 1) / t.ct;
  return t;
}

// Estimated cost of tiling t per useful output: compute (whole kOQ groups, threads idle in the last round
// included) and loads, over the fraction of the last wave of blocks that is busy.
double tile_cost(const Window& g, const Tiling& t, int sms) {
  const ll groups = kThreads / (t.ct / 2), units = t.tp * (t.tq / kOQ);
  const ll tiles = t.tiles_p * t.tiles_q;
  const double compute = kComputeCost * tiles * ((units + groups - 1) / groups) * groups * kOQ;
  const double load = kLoadCost * tiles * t.ih * t.iw;
  double busy = 1.0;
  if (sms > 0) {
    const ll per_sm = std::min<ll>(blocks_per_sm(blocked_window(g)), kSmemPerSm / (t.floats() * 4 + 1024));
    const double waves = static_cast<double>(t.blocks(g.n)) / (static_cast<double>(sms) * per_sm);
    busy = waves / std::ceil(waves);
  }
  return (compute + load) / (static_cast<double>(g.p) * g.q * busy);
}

// The cheapest tile (tile_cost) of 2048..8192 outputs (one to four groups of kOQ outputs per thread; fewer where
// the image is smaller) whose window fits shared memory. Rows and columns are tried only at values that split P and
// Q into equal parts (ceil(P / k)), columns rounded up to kOQ.
Tiling plan_tiles(const Window& g, int sms) {
  Tiling best = slice_only(g), t = best;
  const ll q_span = (g.q + kOQ - 1) / kOQ * kOQ;
  const ll min_px = std::min<ll>(2048 / t.ct, g.p * q_span), max_px = 8192 / t.ct;
  double best_cost = -1;
  for (ll kp = 1, last_p = 0; kp <= g.p; ++kp) {
    const ll tp = (g.p + kp - 1) / kp;
    if (tp == last_p) continue;
    last_p = tp;
    if (tp * q_span < min_px) break;
    for (ll kq = 1, last_q = 0; kq <= g.q; ++kq) {
      const ll tq = ((g.q + kq - 1) / kq + kOQ - 1) / kOQ * kOQ;
      if (tq == last_q) continue;
      last_q = tq;
      if (tp * tq < min_px) break;
      if (tp * tq > max_px) continue;
      set_extent(g, static_cast<int>(tp), static_cast<int>(tq), &t);
      if (t.floats() > kMaxTileFloats) continue;
      const double cost = tile_cost(g, t, sms);
      if (best_cost < 0 || cost < best_cost) {
        best = t;
        best_cost = cost;
      }
    }
  }
  if (best_cost < 0) set_extent(g, 1, kOQ, &best);
  return best;
}

// V elements (8, 4 or 1) to shared memory as floats. Eight threads store 16 bytes each in one pass; with V = 8
// consecutive threads' vectors lie 32 bytes apart, so threads 4-7 of each eight store their upper half first and
// the eight stores of a pass cover all 32 banks once.
template <typename T, int V>
__device__ __forceinline__ void store_floats(float* dst, const Pack<T, V>& raw) {
  float v[V];
#pragma unroll
  for (int i = 0; i < V; ++i) v[i] = k::to_float(raw.v[i]);
  float4* d = reinterpret_cast<float4*>(dst);
  if constexpr (V == 8) {
    const float4 lo = make_float4(v[0], v[1], v[2], v[3]), hi = make_float4(v[4], v[5], v[6], v[7]);
    const int upper_first = (threadIdx.x >> 2) & 1;
    d[upper_first] = upper_first ? hi : lo;
    d[1 - upper_first] = upper_first ? lo : hi;
  } else if constexpr (V == 4) {
    d[0] = make_float4(v[0], v[1], v[2], v[3]);
  } else {
    static_assert(V == 1, "vectors of 8, 4 or 1 elements");
    dst[0] = v[0];
  }
}

// Two channels (c, c + 1) of a [.., C] row, zero past C; `wide` when C is even and the pointer 4-byte aligned.
template <typename T, bool wide>
__device__ __forceinline__ float2 load_pair(const T* p, ll c, ll cmax) {
  if constexpr (wide) {
    float v[2] = {0.f, 0.f};
    if (c < cmax) load_vec<T, 2>(p + c, v);
    return make_float2(v[0], v[1]);
  } else {
    return make_float2(c < cmax ? k::to_float(p[c]) : 0.f, c + 1 < cmax ? k::to_float(p[c + 1]) : 0.f);
  }
}

__device__ __forceinline__ void fma2(float2 x, float2 w, float2* acc) {
  acc->x = fmaf(x.x, w.x, acc->x);
  acc->y = fmaf(x.y, w.y, acc->y);
}

// V: elements per global access (16 bytes, or 1 when C or a pointer does not allow it). K, S: the window and
// stride of the register-blocked variants (square, no dilation); K == 0 reads Window's geometry at run time.
template <typename T, int V, int K, int S>
__global__ void __launch_bounds__(kThreads, blocks_per_sm(K))
    tiled_kernel(Window g, Tiling t, const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                 const T* __restrict__ z, bool z_after_act, T* __restrict__ y, int act, float alpha, float beta) {
  extern __shared__ float4 smem[];
  float* tile = reinterpret_cast<float*>(smem);
  constexpr bool kWide = V >= 2;
  ll b = blockIdx.x;
  const ll c0 = (b % t.slices) * t.ct;
  b /= t.slices;
  const ll q0 = (b % t.tiles_q) * t.tq;
  b /= t.tiles_q;
  const ll p0 = (b % t.tiles_p) * t.tp;
  const ll n = b / t.tiles_p;
  const ll h0 = p0 * g.sh - g.ph, w0 = q0 * g.sw - g.pw;

  // Thread i loads vectors i, i + kThreads, ... of the window (channel vectors fastest, then pixels of a row, then
  // rows), kBatch in flight (kept in their stored type) before their shared-memory stores. vecs divides kThreads,
  // so a thread's channel vector stays and its pixel advances by a fixed step.
  const int vecs = t.ct / V, step = kThreads / vecs, step_rows = step / t.iw, step_cols = step % t.iw;
  const int cv = threadIdx.x % vecs;
  const ll c_in = c0 + static_cast<ll>(cv) * V;
  int row = threadIdx.x / vecs / t.iw, col = threadIdx.x / vecs % t.iw;
  while (row < t.ih) {
    Pack<T, V> raw[kBatch];
    int at[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const ll hi = h0 + row, wi = w0 + col;
      at[u] = row < t.ih ? row * t.pitch + col * t.ct + cv * V : -1;
      if (at[u] >= 0 && hi >= 0 && hi < g.h && wi >= 0 && wi < g.w && c_in < g.c) {
        raw[u] = *reinterpret_cast<const Pack<T, V>*>(x + ((n * g.h + hi) * g.w + wi) * g.c + c_in);
      } else {
#pragma unroll
        for (int j = 0; j < V; ++j) raw[u].v[j] = k::from_float<T>(0.f);
      }
      col += step_cols;
      row += step_rows;
      if (col >= t.iw) {
        col -= t.iw;
        ++row;
      }
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u)
      if (at[u] >= 0) store_floats<T, V>(tile + at[u], raw[u]);
  }

  const int lanes = t.ct / 2, lane = threadIdx.x % lanes, group = threadIdx.x / lanes, groups = kThreads / lanes;
  const ll c = c0 + 2 * lane;
  float2 wr[K > 0 ? K * K : 1];
  if constexpr (K > 0) {
#pragma unroll
    for (int i = 0; i < K * K; ++i) wr[i] = load_pair<T, kWide>(w + static_cast<ll>(i) * g.c, c, g.c);
  }
  const float2 bv = bias != nullptr ? load_pair<T, kWide>(bias, c, g.c) : make_float2(0.f, 0.f);
  __syncthreads();

  const int sh = S > 0 ? S : g.sh, sw = S > 0 ? S : g.sw;
  const int units = t.tp * (t.tq / kOQ);
  for (int e = group; e < units; e += groups) {
    const int pp = e % t.tp, qq = e / t.tp * kOQ;  // output rows fastest: see row_pitch
    const ll p = p0 + pp;
    if (p >= g.p) continue;
    const float* base = tile + pp * sh * t.pitch + qq * sw * t.ct + 2 * lane;
    float2 acc[kOQ];
#pragma unroll
    for (int o = 0; o < kOQ; ++o) acc[o] = make_float2(0.f, 0.f);
    if constexpr (K > 0) {
      constexpr int kSpan = (kOQ - 1) * S + K;
#pragma unroll
      for (int r = 0; r < K; ++r) {
        float2 xs[kSpan];  // the window row under this thread's kOQ outputs
#pragma unroll
        for (int i = 0; i < kSpan; ++i) xs[i] = *reinterpret_cast<const float2*>(base + r * t.pitch + i * t.ct);
#pragma unroll
        for (int s = 0; s < K; ++s)
#pragma unroll
          for (int o = 0; o < kOQ; ++o) fma2(xs[o * S + s], wr[r * K + s], &acc[o]);
      }
    } else {
      for (int r = 0; r < g.kh; ++r) {
        for (int s = 0; s < g.kw; ++s) {
          const float2 wv = load_pair<T, kWide>(w + static_cast<ll>(r * g.kw + s) * g.c, c, g.c);
          const float* tap = base + r * g.dh * t.pitch + s * g.dw * t.ct;
#pragma unroll
          for (int o = 0; o < kOQ; ++o) fma2(*reinterpret_cast<const float2*>(tap + o * sw * t.ct), wv, &acc[o]);
        }
      }
    }
#pragma unroll
    for (int o = 0; o < kOQ; ++o) {
      const ll q = q0 + qq + o;
      if (q >= g.q || c >= g.c) break;
      const ll at = ((n * g.p + p) * g.q + q) * g.c;
      float v[2] = {acc[o].x + bv.x, acc[o].y + bv.y};
      const float2 zv = z != nullptr ? load_pair<T, kWide>(z + at, c, g.c) : make_float2(0.f, 0.f);
      if (z != nullptr && !z_after_act) {
        v[0] += zv.x;
        v[1] += zv.y;
      }
      v[0] = lib::activate(v[0], act, alpha, beta);
      v[1] = lib::activate(v[1], act, alpha, beta);
      if (z != nullptr && z_after_act) {  // a CSP bottleneck's shortcut: act(conv + bias) + z
        v[0] += zv.x;
        v[1] += zv.y;
      }
      if constexpr (kWide) {
        store_vec<T, 2>(y + at + c, v);
      } else {
        y[at + c] = k::from_float<T>(v[0]);
        if (c + 1 < g.c) y[at + c + 1] = k::from_float<T>(v[1]);
      }
    }
  }
}

template <typename T, int V>
void launch(const DepthwiseArgs& a, const Tiling& t, cudaStream_t stream) {
  const Window& g = a.g;
  auto go = [&](auto kernel) {
    const size_t smem = static_cast<size_t>(t.floats()) * sizeof(float);
    kernel<<<static_cast<unsigned>(t.blocks(g.n)), kThreads, smem, stream>>>(
        g, t, static_cast<const T*>(a.x), static_cast<const T*>(a.w_rsc), static_cast<const T*>(a.bias),
        static_cast<const T*>(a.z), a.z_after_act, static_cast<T*>(a.y), a.act, a.alpha, a.beta);
  };
  switch (blocked_window(g) * 10 + g.sh) {
    case 31: go(tiled_kernel<T, V, 3, 1>); break;
    case 32: go(tiled_kernel<T, V, 3, 2>); break;
    case 51: go(tiled_kernel<T, V, 5, 1>); break;
    case 52: go(tiled_kernel<T, V, 5, 2>); break;
    default: go(tiled_kernel<T, V, 0, 0>); break;
  }
}

}  // namespace

DepthwiseTile depthwise_tiled_plan(const Window& g, int sms) {
  if (g.kh < 1 || g.kw < 1 || g.sh < 1 || g.sw < 1 || g.dh < 1 || g.dw < 1 || g.c < 1) return {};
  Tiling t = slice_only(g);
  set_extent(g, 1, kOQ, &t);
  if (t.floats() > kMaxTileFloats || t.blocks(g.n) > 2147483647LL) return {};
  t = plan_tiles(g, sms);
  return {t.tp, t.tq};
}

cudaError_t depthwise_tiled(const DepthwiseArgs& a, DepthwiseTile tile, cudaStream_t stream) {
  const Window& g = a.g;
  if (g.n * g.p * g.q * g.c == 0) return cudaSuccess;
  if (tile.rows < 1 || tile.cols < kOQ || tile.cols % kOQ != 0) return cudaErrorInvalidValue;
  Tiling t = slice_only(g);
  set_extent(g, tile.rows, tile.cols, &t);
  if (t.floats() > kMaxTileFloats || t.blocks(g.n) > 2147483647LL) return cudaErrorInvalidValue;
  const bool ok = k::dispatch_float(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    constexpr int kVec = static_cast<int>(16 / sizeof(T));
    if (vector_width<T>(g.c, {a.x, a.w_rsc, a.bias, a.z, a.y}) == kVec)
      launch<T, kVec>(a, t, stream);
    else
      launch<T, 1>(a, t, stream);
  });
  return ok ? cudaGetLastError() : cudaErrorInvalidValue;
}

}  // namespace nhwc
}  // namespace tp
