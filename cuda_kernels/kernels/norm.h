// Softmax / LogSoftmax over the middle axis of [outer, R, inner] (softmax.cu) and LayerNormalization over the
// trailing `cols` elements of each row (layernorm.cu). float32 / float16 / bfloat16 data, float32 arithmetic.
#pragma once

#include <cuda_runtime.h>

namespace tp {
namespace norm {

struct SoftmaxArgs {
  const void* in = nullptr;
  void* out = nullptr;
  int dtype = 1;  // float32 or float16 (in and out)
  int log = 0;    // 1 = LogSoftmax
  long long outer = 0, r = 0, inner = 0;
};
cudaError_t softmax(const SoftmaxArgs& a, cudaStream_t stream, long long max_blocks);

struct LayerNormArgs {
  const void* x = nullptr;
  const void* scale = nullptr;  // [cols], X's dtype
  const void* bias = nullptr;   // [cols] or nullptr
  const void* residual = nullptr;  // X's shape or nullptr: the row normalized is x + residual
  void* y = nullptr;
  void* sum = nullptr;          // X's shape or nullptr: receives x + residual
  int dtype = 1;
  long long rows = 0, cols = 0;
  float epsilon = 1e-5f;
};
cudaError_t layernorm(const LayerNormArgs& a, cudaStream_t stream, long long max_blocks);

}  // namespace norm
}  // namespace tp
