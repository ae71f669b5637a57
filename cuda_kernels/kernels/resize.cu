// Resize, nearest and N-linear, following ONNX Runtime's CPU arithmetic (float32 coordinates):
//   half_pixel            x_in = (x + 0.5) / scale - 0.5
//   pytorch_half_pixel    x_in = out > 1 ? (x + 0.5) / scale - 0.5 : 0
//   align_corners         x_in = out == 1 ? 0 : x * (in - 1) / (out - 1)
//   asymmetric            x_in = x / scale
//   half_pixel_symmetric  x_in = in/2 * (1 - out / (scale * in)) + (x + 0.5) / scale - 0.5
// nearest: round_prefer_floor (halves go down, other values round half away from zero), round_prefer_ceil
// (round half away from zero), floor, ceil, and opset 10's rule (ceil when the dim is scaled below 1, else
// truncation); then clamped to [0, in - 1].
// linear: x_in clamped to [0, in - 1], neighbours i0 = floor, i1 = min(i0 + 1, in - 1) with weights |x_in - i1| and
// |x_in - i0| (0.5 each when i0 == i1); the output is the sum over the 2^k corners of the k interpolated dims.
// Dims with resized[d] == 0 (same extent, scale 1) map each index to itself.
//
// Two ways to run it, with the same arithmetic (and the same order of the linear sum):
//   rows     when the trailing dims that are not resized hold >= kMinRow elements (NHWC: the channels), every
//            output row of those dims is one source row (nearest) or a blend of up to 8 (linear, <= 3
//            interpolated dims): a group of threads finds the source rows once and moves the row in words of
//            up to 16 bytes (the widest that the row size and both pointers allow);
//   elements one thread per output element (any layout).
// Index arithmetic is 32-bit when the input and output hold fewer than 2^31 elements (the rows path needs it).
#include <cstring>

#include "common.cuh"
#include "spatial.h"

namespace tp {
namespace sp {
namespace {

using ll = long long;
constexpr int kThreads = 256;
constexpr ll kMinRow = 4;
constexpr int kMaxCorners = 8;  // the rows path blends at most 2^3 source rows

__device__ __forceinline__ float original(int mode, float x, float scale, float lo, float li) {
  switch (mode) {
    case kPytorchHalfPixel: return lo > 1.0f ? (x + 0.5f) / scale - 0.5f : 0.0f;
    case kAlignCorners: return lo == 1.0f ? 0.0f : x * (li - 1.0f) / (lo - 1.0f);
    case kAsymmetric: return x / scale;
    case kHalfPixelSymmetric: {
      const float output_width = scale * li;
      const float adjustment = lo / output_width;
      const float center = li / 2.0f;
      const float offset = center * (1.0f - adjustment);
      return static_cast<float>(offset + (static_cast<double>(x) + 0.5) / scale - 0.5);
    }
    default: return (x + 0.5f) / scale - 0.5f;
  }
}

__device__ __forceinline__ ll nearest(int mode, float x, float scale) {
  switch (mode) {
    case kSimple: return scale < 1.0f ? static_cast<ll>(ceilf(x)) : static_cast<ll>(x);
    case kRoundPreferCeil: return static_cast<ll>(roundf(x));
    case kFloor: return static_cast<ll>(floorf(x));
    case kCeil: return static_cast<ll>(ceilf(x));
    default:
      if (x == static_cast<float>(static_cast<ll>(x)) + 0.5f) return static_cast<ll>(floorf(x));
      return static_cast<ll>(roundf(x));
  }
}

// The source neighbours i0 <= i1 (weights w0, w1) of output index c along dim d; true when they differ.
template <typename I>
__device__ __forceinline__ bool neighbours(const ResizeArgs& a, int d, I c, I& i0, I& i1, float& w0, float& w1) {
  w0 = 1.0f;
  w1 = 0.0f;
  if (!a.resized[d]) {
    i0 = i1 = c;
    return false;
  }
  const ll id = a.in_dims[d];
  float x = original(a.coord_mode, static_cast<float>(c), a.scales[d], static_cast<float>(a.out_dims[d]),
                     static_cast<float>(id));
  if (!a.linear) {
    ll j = nearest(a.nearest_mode, x, a.scales[d]);
    j = j < 0 ? 0 : (j > id - 1 ? id - 1 : j);
    i0 = i1 = static_cast<I>(j);
    return false;
  }
  x = fmaxf(0.0f, fminf(x, static_cast<float>(id - 1)));
  const ll lo = min(static_cast<ll>(x), id - 1);
  const ll hi = min(lo + 1, id - 1);
  i0 = static_cast<I>(lo);
  i1 = static_cast<I>(hi);
  if (lo == hi) return false;
  w0 = fabsf(x - static_cast<float>(hi));
  w1 = fabsf(x - static_cast<float>(lo));
  return true;
}

// Per dim of a.ndim: the neighbours of the output index `t` and the input strides; returns the dims with two
// distinct neighbours as a bit mask. I is unsigned int (32-bit arithmetic) or long long.
template <typename I>
__device__ __forceinline__ unsigned locate(const ResizeArgs& a, I t, I (&i0)[kMaxDims], I (&i1)[kMaxDims],
                                           I (&stride)[kMaxDims], float (&w0)[kMaxDims], float (&w1)[kMaxDims]) {
  unsigned two = 0;
  I rem = t, s = 1;
#pragma unroll
  for (int d = kMaxDims - 1; d >= 0; --d) {
    i0[d] = i1[d] = 0;
    w0[d] = 1.0f;
    w1[d] = 0.0f;
    stride[d] = 0;
    if (d < a.ndim) {
      const I od = static_cast<I>(a.out_dims[d]);
      const I c = d == 0 ? rem : rem % od;
      rem = d == 0 ? 0 : rem / od;
      stride[d] = s;
      s *= static_cast<I>(a.in_dims[d]);
      if (neighbours(a, d, c, i0[d], i1[d], w0[d], w1[d])) two |= 1u << d;
    }
  }
  return two;
}

// The input offset read by output index `t` of a nearest resize over a.ndim dims (no per-dim arrays: fewer
// registers).
template <typename I>
__device__ __forceinline__ I nearest_offset(const ResizeArgs& a, I t) {
  I rem = t, s = 1, off = 0;
#pragma unroll
  for (int d = kMaxDims - 1; d >= 0; --d)
    if (d < a.ndim) {
      const I od = static_cast<I>(a.out_dims[d]);
      const I c = d == 0 ? rem : rem % od;
      rem = d == 0 ? 0 : rem / od;
      I j, unused;
      float w0, w1;
      neighbours(a, d, c, j, unused, w0, w1);
      off += j * s;
      s *= static_cast<I>(a.in_dims[d]);
    }
  return off;
}

// The weight and input offset of one corner (`mask`: the dims that take their upper neighbour).
template <typename I>
__device__ __forceinline__ float corner(unsigned mask, const I (&i0)[kMaxDims], const I (&i1)[kMaxDims],
                                        const I (&stride)[kMaxDims], const float (&w0)[kMaxDims],
                                        const float (&w1)[kMaxDims], I& off) {
  float w = 1.0f;
  off = 0;
#pragma unroll
  for (int d = 0; d < kMaxDims; ++d) {
    const bool hi = (mask >> d) & 1u;
    w *= hi ? w1[d] : w0[d];
    off += (hi ? i1[d] : i0[d]) * stride[d];
  }
  return w;
}

template <typename T, typename I>
__global__ void __launch_bounds__(kThreads) elements(const __grid_constant__ ResizeArgs a, I n) {
  const T* in = static_cast<const T*>(a.in);
  T* out = static_cast<T*>(a.out);
  const I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I t = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; t < n; t += step) {
    if (!a.linear) {
      out[t] = in[nearest_offset(a, t)];
      continue;
    }
    I i0[kMaxDims], i1[kMaxDims], stride[kMaxDims];
    float w0[kMaxDims], w1[kMaxDims];
    const unsigned two = locate(a, t, i0, i1, stride, w0, w1);
    float acc = 0.0f;
    for (unsigned mask = two;; mask = (mask - 1) & two) {  // every subset of `two`; one when nothing blends
      I off;
      const float w = corner(mask, i0, i1, stride, w0, w1, off);
      if (two == 0) {
        out[t] = in[off];
        break;
      }
      acc += w * k::to_float(in[off]);
      if (mask == 0) {
        out[t] = k::from_float<T>(acc);
        break;
      }
    }
  }
}

// The rows path (32-bit indices): a.ndim counts the dims down to the last resized one; each of their `rows`
// output indices is a row of `words` words of W, shared by a group of 2^group_log2 threads.
struct Rows {
  unsigned rows = 0, words = 0;
  int group_log2 = 0;
};

// This thread's first row, the row step, its lane in the row's group and the group's size.
struct Walk {
  unsigned first, step, lane, group;
};
__device__ __forceinline__ Walk walk(const Rows& rw) {
  const unsigned group = 1u << rw.group_log2, per_block = kThreads >> rw.group_log2;
  return {blockIdx.x * per_block + (threadIdx.x >> rw.group_log2), gridDim.x * per_block,
          threadIdx.x & (group - 1), group};
}

// Nearest: every output row is one source row, copied word by word.
template <typename W>
__global__ void __launch_bounds__(kThreads) copy_rows(const __grid_constant__ ResizeArgs a, Rows rw) {
  const W* __restrict__ in = static_cast<const W*>(a.in);
  W* __restrict__ out = static_cast<W*>(a.out);
  const Walk wk = walk(rw);
  for (unsigned r = wk.first; r < rw.rows; r += wk.step) {
    const W* src = in + nearest_offset(a, r) * rw.words;
    W* dst = out + r * rw.words;
#pragma unroll 4
    for (unsigned w = wk.lane; w < rw.words; w += wk.group) dst[w] = src[w];
  }
}

// Linear: the sum over up to 8 corner rows (in the elements path's order), element by element in float.
template <typename T, typename W>
__global__ void __launch_bounds__(kThreads) blend_rows(const __grid_constant__ ResizeArgs a, Rows rw) {
  constexpr int kElems = sizeof(W) / sizeof(T);
  const W* __restrict__ in = static_cast<const W*>(a.in);
  W* __restrict__ out = static_cast<W*>(a.out);
  const Walk wk = walk(rw);
  for (unsigned r = wk.first; r < rw.rows; r += wk.step) {
    unsigned i0[kMaxDims], i1[kMaxDims], stride[kMaxDims];
    float w0[kMaxDims], w1[kMaxDims];
    const unsigned two = locate(a, r, i0, i1, stride, w0, w1);
    const int corners = 1 << __popc(two);
    float cw[kMaxCorners];
    const W* src[kMaxCorners];
    unsigned mask = two;
#pragma unroll
    for (int c = 0; c < kMaxCorners; ++c) {
      unsigned off = 0;
      cw[c] = c < corners ? corner(mask, i0, i1, stride, w0, w1, off) : 0.0f;
      src[c] = in + off * rw.words;
      mask = (mask - 1) & two;
    }
    W* dst = out + r * rw.words;
    for (unsigned w = wk.lane; w < rw.words; w += wk.group) {
      float acc[kElems];
#pragma unroll
      for (int e = 0; e < kElems; ++e) acc[e] = 0.0f;
#pragma unroll
      for (int c = 0; c < kMaxCorners; ++c) {
        if (c >= corners) break;
        const W v = src[c][w];
        T x[kElems];
        memcpy(x, &v, sizeof(W));
#pragma unroll
        for (int e = 0; e < kElems; ++e) acc[e] += cw[c] * k::to_float(x[e]);
      }
      T y[kElems];
#pragma unroll
      for (int e = 0; e < kElems; ++e) y[e] = k::from_float<T>(acc[e]);
      W v;
      memcpy(&v, y, sizeof(W));
      dst[w] = v;
    }
  }
}

template <typename T, typename W>
cudaError_t run_rows(const ResizeArgs& a, ll rows, ll words, cudaStream_t stream, ll max_blocks) {
  Rows rw;
  rw.rows = static_cast<unsigned>(rows);
  rw.words = static_cast<unsigned>(words);
  while ((1LL << rw.group_log2) * 4 < words && (1 << rw.group_log2) < kThreads) ++rw.group_log2;  // ~4 words each
  const unsigned grid = k::grid_1d(rows, kThreads >> rw.group_log2, max_blocks);
  if (a.linear)
    blend_rows<T, W><<<grid, kThreads, 0, stream>>>(a, rw);
  else
    copy_rows<W><<<grid, kThreads, 0, stream>>>(a, rw);
  return cudaGetLastError();
}

// The rows path with the widest word (16, 8 or 4 bytes, else one element) that divides the row and both
// pointers' alignment.
template <typename T>
cudaError_t rows_by_word(const ResizeArgs& a, ll rows, ll inner, cudaStream_t stream, ll max_blocks) {
  const ll row_bytes = inner * static_cast<ll>(sizeof(T));
  const uintptr_t where = reinterpret_cast<uintptr_t>(a.in) | reinterpret_cast<uintptr_t>(a.out);
  for (ll wb = 16; wb > static_cast<ll>(sizeof(T)); wb /= 2)
    if (row_bytes % wb == 0 && where % wb == 0) {
      const ll words = row_bytes / wb;
      if (wb == 16) return run_rows<T, uint4>(a, rows, words, stream, max_blocks);
      if (wb == 8) return run_rows<T, k::Bits<8>::type>(a, rows, words, stream, max_blocks);
      return run_rows<T, k::Bits<4>::type>(a, rows, words, stream, max_blocks);
    }
  return run_rows<T, T>(a, rows, inner, stream, max_blocks);
}

template <typename T>
cudaError_t run(const ResizeArgs& a, ll n_in, ll n_out, cudaStream_t stream, ll max_blocks) {
  const bool narrow = n_in < (1LL << 31) && n_out < (1LL << 31);
  int last = a.ndim - 1;  // the last resized dim
  while (last >= 0 && !a.resized[last]) --last;
  ll inner = 1, blended = 0;
  for (int d = last + 1; d < a.ndim; ++d) inner *= a.out_dims[d];
  for (int d = 0; d <= last; ++d) blended += a.resized[d];
  if (narrow && inner >= kMinRow && (!a.linear || blended <= 3)) {
    ResizeArgs r = a;
    r.ndim = last + 1;
    return rows_by_word<T>(r, n_out / inner, inner, stream, max_blocks);
  }
  const unsigned grid = k::grid_1d(n_out, kThreads, max_blocks);
  if (narrow)
    elements<T, unsigned><<<grid, kThreads, 0, stream>>>(a, static_cast<unsigned>(n_out));
  else
    elements<T, ll><<<grid, kThreads, 0, stream>>>(a, n_out);
  return cudaGetLastError();
}

}  // namespace

cudaError_t resize(const ResizeArgs& a, cudaStream_t stream, long long max_blocks) {
  ll n_in = 1, n_out = 1;
  for (int d = 0; d < a.ndim; ++d) {
    n_in *= a.in_dims[d];
    n_out *= a.out_dims[d];
  }
  if (n_out <= 0) return cudaSuccess;
  if (a.dtype == k::kFloat) return run<float>(a, n_in, n_out, stream, max_blocks);
  if (a.dtype == k::kHalf) return run<__half>(a, n_in, n_out, stream, max_blocks);
  if (a.dtype == k::kBFloat16) return run<__nv_bfloat16>(a, n_in, n_out, stream, max_blocks);
  return cudaErrorInvalidValue;
}

}  // namespace sp
}  // namespace tp
