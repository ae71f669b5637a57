// Direct channels-last convolution for few input channels ("small_c": the stem convolution of image networks,
// C_in 1..4, group 1), with the fused epilogue of the other conv tactics. float32 / float16 / bfloat16 data,
// float32 arithmetic (no TF32 rounding).
//
// cuDNN serves NHWC with C_in = 3 through its generic engines at about 15 % of the memory roofline; this kernel
// reads X once into shared memory (whole padded rows, copied 16 bytes at a time), keeps the weights of the block's
// output-channel slice in shared memory as float32, and lets every thread compute 4 output pixels x KV (8 or 16)
// output channels, so stores are 16 to 64 bytes per pixel and every weight read feeds 4 x KV FMAs.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "conv_nhwc.h"

namespace tp {
namespace nhwc {

// How one launch is cut (small_c_plan).
struct SmallCPlan {
  int kv = 16;           // output channels per thread (8 or 16)
  int cg = 1;            // channel groups (warps along K) per block; the block's slice is kv * cg channels
  int wr = 8;            // warps along pixels per block
  int64_t m = 0;         // output pixels per block (32 lanes x 4 pixels x wr), a run of one image's P*Q
  int rows = 0;          // input rows a block holds at most
  int row_stride = 0;    // elements of one held input row: lead, W*C_in, end padding, rounded to 16 bytes
  int lead = 0;          // elements before the row's first pixel (>= begin padding * C_in, 16-byte aligned)
  size_t smem = 0;       // dynamic shared memory bytes: the weights, then the rows
  unsigned slices = 0, blocks = 0;  // grid: channel slices x pixel blocks per image x images
};

// "" when small_c runs this geometry (g.c = C_in; g.p, g.q the output extents, which imply the end padding),
// else one sentence naming the value it refuses. Fills *plan when it runs.
std::string small_c_plan(const Window& g, int64_t cout, int dtype, SmallCPlan* plan);

// y[n,p,q,k] = act(sum_{r,s,c} x[n, p*sh-ph+r*dh, q*sw-pw+s*dw, c] * w[k,r,s,c] + bias[k] + z[n,p,q,k])
// or, with z_after_act, act(sum + bias[k]) + z[n,p,q,k].
// x [N,H,W,C], w [K,R,S,C] (the layer's own KRSC weights, no reorder), y and z [N,P,Q,K]; bias, z may be null;
// act: EpilogueAct. NaN and infinity propagate as in the other conv paths (the activation keeps NaN).
struct SmallCArgs : ConvEpilogue {
  Window g;
  int64_t cout = 0;
  const void* x = nullptr;
  const void* w = nullptr;
};
// cudaErrorInvalidValue when small_c_plan refuses the geometry.
cudaError_t small_c(const SmallCArgs& a, cudaStream_t stream);

}  // namespace nhwc
}  // namespace tp
