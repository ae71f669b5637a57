// Resize (resize.cu) and max / average pooling (pool.cu). float32 / float16 data, float32 arithmetic.
#pragma once

#include <cuda_runtime.h>

namespace tp {
namespace sp {

constexpr int kMaxDims = 8;

enum CoordMode : int { kHalfPixel = 0, kPytorchHalfPixel = 1, kAlignCorners = 2, kAsymmetric = 3,
                       kHalfPixelSymmetric = 4 };
// kSimple: Resize-10 / Upsample rounding: ceil for a dim scaled below 1, truncation otherwise.
enum NearestMode : int { kRoundPreferFloor = 0, kRoundPreferCeil = 1, kFloor = 2, kCeil = 3, kSimple = 4 };

struct ResizeArgs {
  const void* in = nullptr;
  void* out = nullptr;
  int dtype = 1;
  int linear = 0;        // 0 = nearest, 1 = linear
  int coord_mode = 0;    // CoordMode
  int nearest_mode = 0;  // NearestMode
  int ndim = 0;
  long long in_dims[kMaxDims] = {};
  long long out_dims[kMaxDims] = {};
  float scales[kMaxDims] = {};  // per dim; dims with resized[d] == 0 map index to index
  int resized[kMaxDims] = {};
};
cudaError_t resize(const ResizeArgs& a, cudaStream_t stream, long long max_blocks);

// Spatial dims padded to 3 (leading extent-1 dims with kernel 1, stride 1, no pads, dilation 1).
struct PoolArgs {
  const void* in = nullptr;
  void* out = nullptr;
  int dtype = 1;
  int average = 0;            // 0 = max, 1 = average
  int count_include_pad = 0;
  long long nc = 0;           // batch * channels
  long long in_sp[3] = {}, out_sp[3] = {};
  long long kernel[3] = {}, stride[3] = {}, pad_begin[3] = {}, pad_end[3] = {}, dilation[3] = {};
};
cudaError_t pool(const PoolArgs& a, cudaStream_t stream, long long max_blocks);

}  // namespace sp
}  // namespace tp
