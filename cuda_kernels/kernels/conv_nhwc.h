// Our channels-last (NHWC) kernels: depthwise convolution with a fused epilogue (two variants: conv_nhwc.cu,
// depthwise_tiled.cu), 2-D pooling, and the weight reorder the depthwise kernels read (conv_nhwc.cu).
// float32 / float16 / bfloat16, float32 arithmetic.
// In conv_nhwc.cu every thread computes V consecutive channels of one output pixel (V = 16 bytes of elements when C
// allows it), so loads and stores are 16 bytes wide and coalesced along C.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tp {
namespace nhwc {

// 2-D geometry of a sliding window over [N, H, W, C] giving [N, P, Q, C].
struct Window {
  int64_t n = 0, c = 0, h = 0, w = 0, p = 0, q = 0;
  int kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;  // ph/pw: pads at the beginning
};

// The fused epilogue of our direct convolutions: y = act(acc + bias[c] + z) or, with z_after_act,
// act(acc + bias[c]) + z; bias and z may be null; act: EpilogueAct with its alpha/beta; dtype: y's ONNX type.
struct ConvEpilogue {
  const void* bias = nullptr;
  const void* z = nullptr;
  bool z_after_act = false;
  void* y = nullptr;
  int dtype = 10;
  int act = 0;
  float alpha = 0.f, beta = 0.f;
};

// y[n,p,q,c] = act(sum_{r,s} x[n, p*sh-ph+r*dh, q*sw-pw+s*dw, c] * w_rsc[r, s, c] + bias[c] + z[n,p,q,c])
// or, with z_after_act, act(sum + bias[c]) + z[n,p,q,c].
// w_rsc: the weights as [R, S, C] (see reorder_depthwise_weights).
struct DepthwiseArgs : ConvEpilogue {
  Window g;
  const void* x = nullptr;
  const void* w_rsc = nullptr;
};
cudaError_t depthwise(const DepthwiseArgs& a, cudaStream_t stream, long long max_blocks);

// The same convolution, tiled through shared memory (depthwise_tiled.cu): a block loads the input window of a tile
// of output pixels x a slice of channels once, and each thread computes several outputs along W from registers.
// depthwise_tiled_plan picks the tile for a device of `sms` multiprocessors (small layers get smaller tiles, so
// that every one has work); rows == 0 where the tiled kernel does not apply (even the smallest tile's input window
// overflows 48 KiB of shared memory: large dilations). depthwise_tiled returns cudaErrorInvalidValue for such a tile.
struct DepthwiseTile {
  int rows = 0, cols = 0;  // output pixels per block; cols a multiple of 4
};
DepthwiseTile depthwise_tiled_plan(const Window& g, int sms);
cudaError_t depthwise_tiled(const DepthwiseArgs& a, DepthwiseTile tile, cudaStream_t stream);

// [C, R, S] (the KRSC weights of a depthwise convolution, K = C) -> [R, S, C].
cudaError_t reorder_depthwise_weights(const void* w_crs, void* w_rsc, int dtype, int64_t c, int64_t rs,
                                      cudaStream_t stream);

// Max or average pooling. Max ignores padding, propagates NaN and gives -inf for a window of padding only;
// average divides by the count of window positions inside the input, or with count_include_pad inside the padded
// input [-ph, h + peh) x [-pw, w + pew) (a ceil_mode window's part beyond the end padding never counts).
struct PoolArgs {
  Window g;
  const void* x = nullptr;
  void* y = nullptr;
  int dtype = 10;
  bool average = false, count_include_pad = false;
  int peh = 0, pew = 0;  // pads at the end
};
cudaError_t pool(const PoolArgs& a, cudaStream_t stream, long long max_blocks);

}  // namespace nhwc
}  // namespace tp
