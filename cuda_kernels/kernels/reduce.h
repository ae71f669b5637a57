// Reductions over the middle axis of [outer, R, inner] (reduce.cu): Reduce*, GlobalAveragePool/GlobalMaxPool,
// ArgMax/ArgMin.
#pragma once

#include <cuda_runtime.h>

namespace tp {
namespace red {

enum Op : int {
  kSum = 0, kMean = 1, kMax = 2, kMin = 3, kProd = 4, kL1 = 5, kL2 = 6, kSumSquare = 7, kLogSumExp = 8,
  kNumOps = 9
};

struct Args {
  const void* in = nullptr;
  void* out = nullptr;   // [outer, inner], the input's dtype
  int dtype = 1;         // float32, float16 (float32 accumulation); int32, int64 (int64 accumulation)
  int op = kSum;
  long long outer = 0, r = 0, inner = 0;
};
cudaError_t reduce(const Args& a, cudaStream_t stream, long long max_blocks);

struct ArgArgs {
  const void* in = nullptr;
  void* out = nullptr;   // int64 [outer, inner]
  int dtype = 1;         // float32, float16, int32, int64
  int select_min = 0;    // 0 = ArgMax, 1 = ArgMin
  int select_last = 0;   // ties (and NaN, which wins) resolved to the last index instead of the first
  long long outer = 0, r = 0, inner = 0;
};
cudaError_t arg_reduce(const ArgArgs& a, cudaStream_t stream, long long max_blocks);

}  // namespace red
}  // namespace tp
