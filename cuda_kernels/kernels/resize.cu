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
#include "common.cuh"
#include "spatial.h"

namespace tp {
namespace sp {
namespace {

using ll = long long;

__device__ __forceinline__ float original(int mode, ll xi, float scale, ll out_len, ll in_len) {
  const float x = static_cast<float>(xi);
  const float lo = static_cast<float>(out_len), li = static_cast<float>(in_len);
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

template <typename T>
__global__ void __launch_bounds__(256) resize_kernel(const __grid_constant__ ResizeArgs a, ll n) {
  const T* in = static_cast<const T*>(a.in);
  T* out = static_cast<T*>(a.out);
  const ll step = static_cast<ll>(gridDim.x) * blockDim.x;
  for (ll t = static_cast<ll>(blockIdx.x) * blockDim.x + threadIdx.x; t < n; t += step) {
    ll i0[kMaxDims], i1[kMaxDims], stride[kMaxDims];
    float w0[kMaxDims], w1[kMaxDims];
    unsigned two = 0;  // dims with two distinct neighbours
    ll rem = t, s = 1;
#pragma unroll
    for (int d = kMaxDims - 1; d >= 0; --d) {
      i0[d] = i1[d] = 0;
      w0[d] = 1.0f;
      w1[d] = 0.0f;
      stride[d] = 0;
      if (d < a.ndim) {
        const ll od = a.out_dims[d], id = a.in_dims[d];
        const ll c = d == 0 ? rem : rem % od;
        rem = d == 0 ? 0 : rem / od;
        stride[d] = s;
        s *= id;
        if (!a.resized[d]) {
          i0[d] = i1[d] = c;
        } else {
          float x = original(a.coord_mode, c, a.scales[d], od, id);
          if (!a.linear) {
            ll j = nearest(a.nearest_mode, x, a.scales[d]);
            j = j < 0 ? 0 : (j > id - 1 ? id - 1 : j);
            i0[d] = i1[d] = j;
          } else {
            x = fmaxf(0.0f, fminf(x, static_cast<float>(id - 1)));
            const ll lo = min(static_cast<ll>(x), id - 1);
            const ll hi = min(lo + 1, id - 1);
            i0[d] = lo;
            i1[d] = hi;
            if (lo == hi) {
              w0[d] = 1.0f;
              w1[d] = 0.0f;
            } else {
              w0[d] = fabsf(x - static_cast<float>(hi));
              w1[d] = fabsf(x - static_cast<float>(lo));
              two |= 1u << d;
            }
          }
        }
      }
    }
    if (two == 0) {
      ll off = 0;
#pragma unroll
      for (int d = 0; d < kMaxDims; ++d) off += i0[d] * stride[d];
      out[t] = in[off];
      continue;
    }
    float acc = 0.0f;
    for (unsigned mask = two;; mask = (mask - 1) & two) {  // every subset of `two`
      float w = 1.0f;
      ll off = 0;
#pragma unroll
      for (int d = 0; d < kMaxDims; ++d) {
        const bool hi = (mask >> d) & 1u;
        w *= hi ? w1[d] : w0[d];
        off += (hi ? i1[d] : i0[d]) * stride[d];
      }
      acc += w * k::to_float(in[off]);
      if (mask == 0) break;
    }
    out[t] = k::from_float<T>(acc);
  }
}

template <typename T>
cudaError_t run(const ResizeArgs& a, ll n, cudaStream_t stream, ll max_blocks) {
  resize_kernel<T><<<k::grid_1d(n, 256, max_blocks), 256, 0, stream>>>(a, n);
  return cudaGetLastError();
}

}  // namespace

cudaError_t resize(const ResizeArgs& a, cudaStream_t stream, long long max_blocks) {
  ll n = 1;
  for (int d = 0; d < a.ndim; ++d) n *= a.out_dims[d];
  if (n <= 0) return cudaSuccess;
  if (a.dtype == k::kFloat) return run<float>(a, n, stream, max_blocks);
  if (a.dtype == k::kHalf) return run<__half>(a, n, stream, max_blocks);
  if (a.dtype == k::kBFloat16) return run<__nv_bfloat16>(a, n, stream, max_blocks);
  return cudaErrorInvalidValue;
}

}  // namespace sp
}  // namespace tp
