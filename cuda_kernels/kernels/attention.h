// Pieces of the unfused attention path ("attention" kernel, kernels_attention.cpp): the row softmax of the scores
// with the additive mask, and a dtype cast (attention.cu). Arithmetic in float32.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tp {
namespace attn {

// For every row (b, h, i) of scores S [B, H, Sq, Skv] (float32, already scaled):
//   v_j = S[b, h, i, j] + M[b * m_sb + h * m_sh + i * m_sq + j * m_sk]   (M optional; m_dtype 1, 10 or 16)
//   P[b, h, i, j] = exp(v_j - max v) / sum exp(v - max v)             (P: p_dtype 1, 10 or 16; may alias S
//                                                                       when p_dtype is float32); a row whose
//                                                                       every v is -inf gives zeros
struct MaskedSoftmaxArgs {
  const float* s = nullptr;
  void* p = nullptr;
  int p_dtype = 1;
  const void* m = nullptr;
  int m_dtype = 1;
  int64_t b = 0, h = 0, sq = 0, skv = 0;
  int64_t m_sb = 0, m_sh = 0, m_sq = 0, m_sk = 0;
};
cudaError_t masked_softmax(const MaskedSoftmaxArgs& a, cudaStream_t stream, long long max_blocks);

// out[i] = in[i] converted, for n elements (float dtypes 1, 10, 16).
cudaError_t cast(const void* in, int in_dtype, void* out, int out_dtype, int64_t n, cudaStream_t stream);

}  // namespace attn
}  // namespace tp
