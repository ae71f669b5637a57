// Direct channels-last convolution for C_in 1..4 (conv_small_c.h).
//
// Work split: block (slice, b, n) computes the output channels [slice * kv * cg, ...) of the pixels
// [b * m, (b + 1) * m) of image n, pixels counted row-major over P x Q, so no block wastes threads on a partial
// tile except the last of each image. Warp (cgi, wri) takes channel group cgi; lane l of it the pixels
// b * m + (j * wr + wri) * 32 + l, j < 4: consecutive lanes read consecutive input pixels from shared memory (a lane
// stride of sw * C_in elements: 3 words for float16 C_in 3 stride 2, no bank conflict) and all lanes of a warp read
// the same weights (a broadcast). Per tap and input channel a thread does KV / 4 float4 weight loads, 4 input loads
// and 4 * KV FMAs.
//
// Shared memory: w_s [R*S*C_in][kv*cg] float32, then the input rows the block's pixels touch, each held as
// [lead zeros | W * C_in elements | zeros], stored in X's type; rows outside the image are zeros. Padding is thus
// read as zeros with no bounds checks in the FMA loop.
#include <algorithm>
#include <cstdint>
#include <string>

#include "activation.cuh"
#include "common.cuh"
#include "conv_small_c.h"

namespace tp {
namespace nhwc {
namespace {

using ll = long long;

constexpr int kPx = 4;                      // output pixels per thread
constexpr size_t kSmemBudget = 100 * 1024;  // two blocks still fit an SM (228 KB)
constexpr size_t kSmemDefault = 48 * 1024;  // more needs the opt-in attribute
constexpr size_t kWeightBudget = 24 * 1024;

template <typename T>
struct alignas(16) Pack16 {
  T v[16 / sizeof(T)];
};

// KV consecutive elements -> float; 16-byte loads when `vec` (16-byte aligned pointer).
template <typename T, int KV>
__device__ __forceinline__ void load_k(const T* p, bool vec, float (&out)[KV]) {
  constexpr int E = 16 / sizeof(T);
  if (vec) {
#pragma unroll
    for (int i = 0; i < KV / E; ++i) {
      const Pack16<T> pk = reinterpret_cast<const Pack16<T>*>(p)[i];
#pragma unroll
      for (int e = 0; e < E; ++e) out[i * E + e] = k::to_float(pk.v[e]);
    }
  } else {
#pragma unroll
    for (int i = 0; i < KV; ++i) out[i] = k::to_float(p[i]);
  }
}

template <typename T, int KV>
__device__ __forceinline__ void store_k(T* p, bool vec, const float (&in)[KV]) {
  constexpr int E = 16 / sizeof(T);
  if (vec) {
#pragma unroll
    for (int i = 0; i < KV / E; ++i) {
      Pack16<T> pk;
#pragma unroll
      for (int e = 0; e < E; ++e) pk.v[e] = k::from_float<T>(in[i * E + e]);
      reinterpret_cast<Pack16<T>*>(p)[i] = pk;
    }
  } else {
#pragma unroll
    for (int i = 0; i < KV; ++i) p[i] = k::from_float<T>(in[i]);
  }
}

struct Geom {
  Window g;
  ll cout;
  SmallCPlan pl;
  bool vec_x;   // X rows copy 16 bytes at a time (x 16-byte aligned, W * C_in * esize % 16 == 0)
  bool vec_io;  // y, z, bias 16-byte aligned
  bool z_after_act;
};

template <typename T, int CIN, int KV>
__global__ void __launch_bounds__(256, 2) small_c_kernel(Geom G, const T* __restrict__ x, const T* __restrict__ w,
                                                         const T* __restrict__ bias, const T* __restrict__ z,
                                                         T* __restrict__ y, int act, float alpha, float beta) {
  extern __shared__ __align__(16) unsigned char smem[];
  const Window& g = G.g;
  const SmallCPlan& pl = G.pl;
  const int ks = KV * pl.cg;
  const int taps = g.kh * g.kw * CIN;
  float* w_s = reinterpret_cast<float*>(smem);
  T* x_s = reinterpret_cast<T*>(smem + (static_cast<size_t>(taps) * ks * sizeof(float) + 15) / 16 * 16);
  const int tid = threadIdx.x, nthreads = blockDim.x;
  const ll k_base = static_cast<ll>(blockIdx.x) * ks;
  const ll n = blockIdx.z;

  // The weights of this slice as w_s[tap][k] (KRSC in global: w[k][tap]); channels past K read as zeros.
  for (int i = tid; i < taps * ks; i += nthreads) {
    const int kk = i % ks, t = i / ks;
    w_s[i] = k_base + kk < G.cout ? k::to_float(w[(k_base + kk) * taps + t]) : 0.f;
  }
  // The input rows of this block's pixels, zero-padded.
  const ll pq = g.p * g.q;
  const ll m0 = static_cast<ll>(blockIdx.y) * pl.m, m_end = min(m0 + pl.m, pq);
  const ll p_first = m0 / g.q, p_last = (m_end - 1) / g.q;
  const ll row0 = p_first * g.sh - g.ph;
  const int rows = static_cast<int>((p_last - p_first) * g.sh) + (g.kh - 1) * g.dh + 1;
  constexpr int E = 16 / sizeof(T);
  const int vpr = pl.row_stride / E;
  const int row_elems = static_cast<int>(g.w) * CIN;
  for (int v = tid; v < rows * vpr; v += nthreads) {
    const int rr = v / vpr, col = (v - rr * vpr) * E;
    const int e0 = col - pl.lead;
    const ll hi = row0 + rr;
    T* dst = x_s + rr * pl.row_stride + col;
    const bool row_ok = hi >= 0 && hi < g.h;
    const T* src = x + ((n * g.h + (row_ok ? hi : 0)) * g.w) * CIN;
    if (G.vec_x && row_ok && e0 >= 0 && e0 + E <= row_elems) {
      *reinterpret_cast<Pack16<T>*>(dst) = *reinterpret_cast<const Pack16<T>*>(src + e0);
    } else {
#pragma unroll
      for (int j = 0; j < E; ++j) {
        const int e = e0 + j;
        dst[j] = row_ok && e >= 0 && e < row_elems ? src[e] : k::from_float<T>(0.f);
      }
    }
  }
  __syncthreads();

  const int warp = tid / 32, lane = tid % 32;
  const int cgi = warp % pl.cg, wri = warp / pl.cg;
  const ll k0 = k_base + static_cast<ll>(cgi) * KV;
  if (k0 >= G.cout) return;  // a slice past K's last group (no barrier follows)
  int base[kPx];
  bool valid[kPx];
#pragma unroll
  for (int j = 0; j < kPx; ++j) {
    const ll m = m0 + static_cast<ll>(j * pl.wr + wri) * 32 + lane;
    valid[j] = m < m_end;
    const ll mc = valid[j] ? m : m_end - 1;  // idle lanes read in-bounds and store nothing
    const ll p = mc / g.q, q = mc - p * g.q;
    base[j] = static_cast<int>((p - p_first) * g.sh) * pl.row_stride + pl.lead +
              static_cast<int>(q * g.sw - g.pw) * CIN;
  }
  float acc[kPx][KV];
#pragma unroll
  for (int j = 0; j < kPx; ++j)
#pragma unroll
    for (int i = 0; i < KV; ++i) acc[j][i] = 0.f;
  for (int r = 0; r < g.kh; ++r) {
    for (int s = 0; s < g.kw; ++s) {
      const int off = r * g.dh * pl.row_stride + s * g.dw * CIN;
      const float* wt = w_s + (r * g.kw + s) * CIN * ks + cgi * KV;
#pragma unroll
      for (int c = 0; c < CIN; ++c) {
        float wv[KV];
#pragma unroll
        for (int i = 0; i < KV / 4; ++i) {
          const float4 f = reinterpret_cast<const float4*>(wt + c * ks)[i];
          wv[4 * i] = f.x;
          wv[4 * i + 1] = f.y;
          wv[4 * i + 2] = f.z;
          wv[4 * i + 3] = f.w;
        }
#pragma unroll
        for (int j = 0; j < kPx; ++j) {
          const float xv = k::to_float(x_s[base[j] + off + c]);
#pragma unroll
          for (int i = 0; i < KV; ++i) acc[j][i] = fmaf(xv, wv[i], acc[j][i]);
        }
      }
    }
  }
  float bv[KV];
#pragma unroll
  for (int i = 0; i < KV; ++i) bv[i] = 0.f;
  if (bias != nullptr) load_k<T, KV>(bias + k0, G.vec_io, bv);
#pragma unroll
  for (int j = 0; j < kPx; ++j) {
    if (!valid[j]) continue;
    const ll o = (n * pq + m0 + static_cast<ll>(j * pl.wr + wri) * 32 + lane) * G.cout + k0;
    float v[KV];
#pragma unroll
    for (int i = 0; i < KV; ++i) v[i] = acc[j][i] + bv[i];
    float zv[KV];
    if (z != nullptr) load_k<T, KV>(z + o, G.vec_io, zv);
    if (z != nullptr && !G.z_after_act) {
#pragma unroll
      for (int i = 0; i < KV; ++i) v[i] += zv[i];
    }
#pragma unroll
    for (int i = 0; i < KV; ++i) v[i] = lib::activate(v[i], act, alpha, beta);
    if (z != nullptr && G.z_after_act) {
#pragma unroll
      for (int i = 0; i < KV; ++i) v[i] += zv[i];
    }
    store_k<T, KV>(y + o, G.vec_io, v);
  }
}

ll round_up(ll v, ll to) { return (v + to - 1) / to * to; }

bool aligned16(const void* p) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0; }

size_t dtype_bytes(int dtype) { return dtype == 1 ? 4 : 2; }

template <typename T, int CIN>
cudaError_t launch_cin(const Geom& G, const SmallCArgs& a, dim3 grid, unsigned threads, cudaStream_t stream) {
  auto run = [&](auto kernel) {
    if (G.pl.smem > kSmemDefault) {  // a host-side attribute, no stream work: legal while a graph is captured
      const cudaError_t e =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(G.pl.smem));
      if (e != cudaSuccess) return e;
    }
    kernel<<<grid, threads, G.pl.smem, stream>>>(G, static_cast<const T*>(a.x), static_cast<const T*>(a.w),
                                                 static_cast<const T*>(a.bias), static_cast<const T*>(a.z),
                                                 static_cast<T*>(a.y), a.act, a.alpha, a.beta);
    return cudaGetLastError();
  };
  return G.pl.kv == 16 ? run(small_c_kernel<T, CIN, 16>) : run(small_c_kernel<T, CIN, 8>);
}

}  // namespace

std::string small_c_plan(const Window& g, int64_t cout, int dtype, SmallCPlan* plan) {
  if (dtype != 1 && dtype != 10 && dtype != 16) return "dtype " + std::to_string(dtype) + " is not a float type";
  if (g.c < 1 || g.c > 4) return "C_in is " + std::to_string(g.c) + ", small_c takes 1 to 4 input channels";
  if (cout < 8 || cout % 8 != 0) return "C_out is " + std::to_string(cout) + ", not a multiple of 8";
  if (g.kh < 1 || g.kw < 1 || g.kh > 7 || g.kw > 7)
    return "the kernel is " + std::to_string(g.kh) + "x" + std::to_string(g.kw) + ", small_c takes up to 7x7";
  if (g.sh < 1 || g.sw < 1 || g.dh < 1 || g.dw < 1 || g.sh > 4 || g.sw > 4 || g.dh > 4 || g.dw > 4)
    return "strides and dilations must lie in 1..4";
  if (g.p < 1 || g.q < 1) return "the output is empty";
  if (g.n > 65535) return "N is " + std::to_string(g.n) + ", more than 65535 images";
  SmallCPlan pl;
  const size_t es = dtype_bytes(dtype);
  const ll e16 = static_cast<ll>(16 / es);
  pl.kv = cout % 16 == 0 ? 16 : 8;
  const ll groups = cout / pl.kv;
  const ll taps = static_cast<ll>(g.kh) * g.kw * g.c;
  pl.cg = static_cast<int>(std::min<ll>(groups, 8));
  while (pl.cg > 1 && static_cast<size_t>(taps * pl.kv * pl.cg) * 4 > kWeightBudget) --pl.cg;
  const size_t w_bytes = static_cast<size_t>(round_up(taps * pl.kv * pl.cg * 4, 16));
  // The held row spans the leftmost and rightmost columns any output pixel reads.
  const ll max_col = (g.q - 1) * g.sw - g.pw + static_cast<ll>(g.kw - 1) * g.dw;
  pl.lead = static_cast<int>(round_up(static_cast<ll>(g.pw) * g.c, e16));
  const ll stride = round_up(pl.lead + std::max<ll>(g.w, max_col + 1) * g.c, e16);
  if (stride > (1 << 20)) return "an input row of " + std::to_string(g.w) + " pixels is too wide";
  pl.row_stride = static_cast<int>(stride);
  for (pl.wr = std::max(1, 8 / pl.cg);; pl.wr /= 2) {
    pl.m = 32LL * kPx * pl.wr;
    const ll orows = std::min<ll>(g.p, (pl.m - 1) / g.q + 2);
    pl.rows = static_cast<int>((orows - 1) * g.sh + static_cast<ll>(g.kh - 1) * g.dh + 1);
    pl.smem = w_bytes + static_cast<size_t>(pl.rows) * pl.row_stride * es;
    if (pl.smem <= kSmemBudget) break;
    if (pl.wr == 1)
      return "input rows of " + std::to_string(g.w) + " pixels x " + std::to_string(g.c) +
             " channels need " + std::to_string(pl.smem) + " bytes of shared memory, more than " +
             std::to_string(kSmemBudget);
  }
  const ll blocks = (g.p * g.q + pl.m - 1) / pl.m;
  if (blocks > 65535) return "P*Q = " + std::to_string(g.p * g.q) + " output pixels make too many blocks";
  pl.blocks = static_cast<unsigned>(blocks);
  pl.slices = static_cast<unsigned>((groups + pl.cg - 1) / pl.cg);
  if (plan != nullptr) *plan = pl;
  return "";
}

cudaError_t small_c(const SmallCArgs& a, cudaStream_t stream) {
  Geom G;
  G.g = a.g;
  G.cout = a.cout;
  if (a.g.n * a.g.p * a.g.q == 0) return cudaSuccess;
  if (!small_c_plan(a.g, a.cout, a.dtype, &G.pl).empty()) return cudaErrorInvalidValue;
  const size_t es = dtype_bytes(a.dtype);
  G.vec_x = aligned16(a.x) && (a.g.w * a.g.c * static_cast<ll>(es)) % 16 == 0;
  G.vec_io = aligned16(a.y) && aligned16(a.z) && aligned16(a.bias);
  G.z_after_act = a.z_after_act;
  const dim3 grid(G.pl.slices, G.pl.blocks, static_cast<unsigned>(a.g.n));
  const unsigned threads = static_cast<unsigned>(32 * G.pl.cg * G.pl.wr);
  cudaError_t e = cudaErrorInvalidValue;
  k::dispatch_float(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    switch (a.g.c) {
      case 1: e = launch_cin<T, 1>(G, a, grid, threads, stream); break;
      case 2: e = launch_cin<T, 2>(G, a, grid, threads, stream); break;
      case 3: e = launch_cin<T, 3>(G, a, grid, threads, stream); break;
      default: e = launch_cin<T, 4>(G, a, grid, threads, stream); break;
    }
  });
  return e;
}

}  // namespace nhwc
}  // namespace tp
