// Pieces of the GEMM-based attention paths ("attention" kernel, kernels_attention.cpp): the row softmax of the
// scores with the additive mask, a dtype cast, and the copy of heads to and from the packed layout (attention.cu).
// Arithmetic in float32.
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

// One tensor of a heads copy. `heads` is [B, S, row] with head h's W elements at h*W of each row: element
// (b, i, h, e) at b*S*row + i*row + h*W + e. `packed` is [B, H, S, W], contiguous: element (b, h, i, e) at
// ((b*H + h)*S + i)*W + e.
struct HeadsTensor {
  void* heads = nullptr;
  void* packed = nullptr;
  int64_t s = 0, w = 0, row = 0;
};
// Copies up to three tensors (count) of elem_bytes-byte elements in one launch: heads -> packed when to_packed,
// else packed -> heads. Moves 16, 8, 4 or 2 bytes at a time, the most that W, row and both pointers allow.
// Requires S*W < 2^32 per tensor.
struct HeadsCopyArgs {
  HeadsTensor t[3];
  int count = 0;
  int64_t b = 0, h = 0;
  int elem_bytes = 4;
  bool to_packed = true;
};
cudaError_t heads_copy(const HeadsCopyArgs& a, cudaStream_t stream);

}  // namespace attn
}  // namespace tp
