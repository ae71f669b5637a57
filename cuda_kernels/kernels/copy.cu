// Strided N-d copy (Slice, Expand, Tile, generic views), batched row copy (Concat, Split) and constant fill.
// copy: one thread per element in a grid-stride loop; the element's index over `dims` is decomposed innermost
// first (32-bit arithmetic when the element count allows it), then dotted with each side's strides.
// copy_batch: every segment's rows are cut into words of 16, 8, 4, 2 or 1 bytes (the widest that its row size,
// strides and pointers allow; each segment chooses its own); one thread per word over all segments together.
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

// A segment in words: `start` is its first word in the launch's numbering, `shift` log2 of its word size.
struct WordSegment {
  const char* src;
  char* dst;
  ll start, words, src_stride, dst_stride;  // words per row; strides in bytes
  int shift;
};
struct WordBatch {
  int n;
  ll total;
  WordSegment seg[kMaxSegments];
};

template <typename W, typename I>
__device__ __forceinline__ void move_word(const WordSegment& g, I row, I w) {
  const W* src = reinterpret_cast<const W*>(g.src + static_cast<ll>(row) * g.src_stride);
  W* dst = reinterpret_cast<W*>(g.dst + static_cast<ll>(row) * g.dst_stride);
  dst[w] = src[w];
}

template <typename I>
__global__ void __launch_bounds__(256) copy_batch_kernel(const __grid_constant__ WordBatch b) {
  const I total = static_cast<I>(b.total), step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I t = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += step) {
    int s = 0;
    while (s + 1 < b.n && t >= static_cast<I>(b.seg[s + 1].start)) ++s;
    const WordSegment& g = b.seg[s];
    const I local = t - static_cast<I>(g.start), words = static_cast<I>(g.words);
    const I row = local / words, w = local - row * words;
    switch (g.shift) {
      case 4: move_word<uint4>(g, row, w); break;
      case 3: move_word<k::Bits<8>::type>(g, row, w); break;
      case 2: move_word<k::Bits<4>::type>(g, row, w); break;
      case 1: move_word<k::Bits<2>::type>(g, row, w); break;
      default: move_word<k::Bits<1>::type>(g, row, w); break;
    }
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

// Copy w consecutive elements as one wider element (up to 16 bytes) when the innermost dim is contiguous on both
// sides and every offset, stride and pointer keeps the wide elements aligned: w times fewer index computations
// and 16-byte memory transactions (attention's 0213 transposes, Concat/Slice along outer axes, row Expand).
static CopyArgs widen(const CopyArgs& a) {
  const int last = a.ndim - 1;
  if (a.ndim < 1 || a.in_strides[last] != 1 || a.out_strides[last] != 1) return a;
  for (int w = 16 / a.esize; w >= 2; w /= 2) {
    const ll wb = static_cast<ll>(w) * a.esize;
    bool ok = a.dims[last] % w == 0 && a.in_off % w == 0 && a.out_off % w == 0 &&
              reinterpret_cast<uintptr_t>(a.in) % wb == 0 && reinterpret_cast<uintptr_t>(a.out) % wb == 0;
    for (int d = 0; ok && d < last; ++d) ok = a.in_strides[d] % w == 0 && a.out_strides[d] % w == 0;
    if (!ok) continue;
    CopyArgs b = a;
    b.esize = static_cast<int>(wb);
    b.dims[last] = a.dims[last] / w;
    b.in_off = a.in_off / w;
    b.out_off = a.out_off / w;
    for (int d = 0; d < last; ++d) {
      b.in_strides[d] = a.in_strides[d] / w;
      b.out_strides[d] = a.out_strides[d] / w;
    }
    return b;
  }
  return a;
}

cudaError_t copy(const CopyArgs& args, cudaStream_t stream, long long max_blocks) {
  ll n = 1;
  for (int d = 0; d < args.ndim; ++d) n *= args.dims[d];
  if (n <= 0) return cudaSuccess;
  const CopyArgs a = widen(args);
  n = 1;
  for (int d = 0; d < a.ndim; ++d) n *= a.dims[d];
  switch (a.esize) {
    case 1: return run_copy<k::Bits<1>::type>(a, n, stream, max_blocks);
    case 2: return run_copy<k::Bits<2>::type>(a, n, stream, max_blocks);
    case 4: return run_copy<k::Bits<4>::type>(a, n, stream, max_blocks);
    case 8: return run_copy<k::Bits<8>::type>(a, n, stream, max_blocks);
    case 16: return run_copy<uint4>(a, n, stream, max_blocks);
  }
  return cudaErrorInvalidValue;
}

cudaError_t copy_batch(const CopyBatchArgs& a, cudaStream_t stream, long long max_blocks) {
  if (a.n < 0 || a.n > kMaxSegments) return cudaErrorInvalidValue;
  WordBatch b{};
  for (int s = 0; s < a.n; ++s) {
    const Segment& g = a.seg[s];
    if (g.rows <= 0 || g.row_bytes <= 0) continue;
    const uintptr_t where = reinterpret_cast<uintptr_t>(g.src) | reinterpret_cast<uintptr_t>(g.dst);
    const ll sizes = g.row_bytes | (g.rows > 1 ? (g.src_stride | g.dst_stride) : 0);
    int shift = 4;
    while (shift > 0 && ((sizes | static_cast<ll>(where)) & ((1LL << shift) - 1))) --shift;
    WordSegment& w = b.seg[b.n++];
    w = {static_cast<const char*>(g.src), static_cast<char*>(g.dst), b.total, g.row_bytes >> shift, g.src_stride,
         g.dst_stride, shift};
    b.total += g.rows * w.words;
  }
  if (b.total == 0) return cudaSuccess;
  const unsigned grid = k::grid_1d(b.total, 256, max_blocks);
  if (b.total < (1LL << 31))
    copy_batch_kernel<unsigned><<<grid, 256, 0, stream>>>(b);
  else
    copy_batch_kernel<ll><<<grid, 256, 0, stream>>>(b);
  return cudaGetLastError();
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
