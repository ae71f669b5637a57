// Data movement kernels on raw elements of 1, 2, 4 or 8 bytes: strided copy, batched row copy and constant fill
// (copy.cu), N-d transpose (transpose.cu), pad (pad.cu), axis gather (gather.cu).
#pragma once

#include <cuda_runtime.h>

namespace tp {
namespace mv {

constexpr int kMaxDims = 8;       // transpose, pad
constexpr int kCopyMaxDims = 12;  // copy (Tile of a rank-6 tensor views its output as 12 dims)

// out[out_off + sum_d c_d * out_strides[d]] = in[in_off + sum_d c_d * in_strides[d]] for every index c of dims.
// Offsets and strides count elements; input strides may be negative or 0.
struct CopyArgs {
  const void* in = nullptr;
  void* out = nullptr;
  int esize = 4;
  int ndim = 0;
  long long dims[kCopyMaxDims] = {};
  long long in_off = 0, out_off = 0;
  long long in_strides[kCopyMaxDims] = {};
  long long out_strides[kCopyMaxDims] = {};
};
cudaError_t copy(const CopyArgs& a, cudaStream_t stream, long long max_blocks);

// Many row copies in one launch (Concat: one segment per input; Split: one per output): segment s copies `rows`
// rows of `row_bytes` bytes from src + r * src_stride to dst + r * dst_stride (strides in bytes, >= 0).
constexpr int kMaxSegments = 32;
struct Segment {
  const void* src = nullptr;
  void* dst = nullptr;
  long long rows = 0, row_bytes = 0, src_stride = 0, dst_stride = 0;
};
struct CopyBatchArgs {
  int n = 0;
  Segment seg[kMaxSegments];
};
cudaError_t copy_batch(const CopyBatchArgs& a, cudaStream_t stream, long long max_blocks);

// n elements of `esize` bytes, each the low esize bytes of `bits`.
cudaError_t fill(void* out, int esize, long long n, unsigned long long bits, cudaStream_t stream,
                 long long max_blocks);

// out = in transposed: out dim d is input dim perm[d]; the input is contiguous with in_dims. in_dtype == out_dtype
// moves raw esize-byte elements; otherwise each element is converted (ONNX float dtypes: float32 to or from float16
// or bfloat16, rounding to nearest even).
struct TransposeArgs {
  const void* in = nullptr;
  void* out = nullptr;
  int esize = 4;
  int in_dtype = 0, out_dtype = 0;
  int ndim = 0;
  long long in_dims[kMaxDims] = {};
  int perm[kMaxDims] = {};
};
cudaError_t transpose(const TransposeArgs& a, cudaStream_t stream, long long max_blocks);

// mode 0 = constant (value bits), 1 = reflect, 2 = edge. pads_begin may be negative (crop).
struct PadArgs {
  const void* in = nullptr;
  void* out = nullptr;
  int esize = 4;
  int mode = 0;
  int ndim = 0;
  long long in_dims[kMaxDims] = {};
  long long out_dims[kMaxDims] = {};
  long long pads_begin[kMaxDims] = {};
  unsigned long long bits = 0;
};
cudaError_t pad(const PadArgs& a, cudaStream_t stream, long long max_blocks);

// out[o, j, i] = data[o, idx[j], i] with data [outer, axis, inner], idx [n_idx] (int32 or int64; negative
// values count from the end); an index still outside [0, axis) writes zeros.
struct GatherArgs {
  const void* data = nullptr;
  const void* indices = nullptr;
  void* out = nullptr;
  int esize = 4;
  int idx64 = 1;
  long long outer = 0, axis = 0, inner = 0, n_idx = 0;
};
cudaError_t gather(const GatherArgs& a, cudaStream_t stream, long long max_blocks);

// GatherElements: out[c] = data[c with c[axis] replaced by idx[c]] for every coordinate c of the index tensor.
constexpr int kMaxGatherRank = 8;
struct GatherElementsArgs {
  const void* data = nullptr;
  const void* indices = nullptr;
  void* out = nullptr;
  int esize = 4;
  int idx64 = 1;
  int rank = 1, axis = 0;
  long long data_dims[kMaxGatherRank] = {};
  long long idx_dims[kMaxGatherRank] = {};
};
cudaError_t gather_elements(const GatherElementsArgs& a, cudaStream_t stream, long long max_blocks);

}  // namespace mv
}  // namespace tp
