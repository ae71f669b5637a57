// The activation functions of fused epilogues (codes: tp::lib::EpilogueAct in tp/library_epilogues.h), in float32.
// Shared by the epilogue kernel (library_epilogues.cu) and our convolution/pooling kernels (conv_nhwc.cu).
#pragma once

#include <cuda_runtime.h>

#include "tp/library_epilogues.h"

namespace tp {
namespace lib {

__device__ __forceinline__ float activate(float v, int act, float alpha, float beta) {
  switch (act) {
    case kActRelu:
      return v > 0.f ? v : (v == v ? 0.f : v);  // NaN propagates, as max(NaN, 0) does in numpy
    case kActGelu:
      return 0.5f * v * (1.f + erff(v * 0.70710678118654752f));
    case kActGeluTanh: {
      const float kk = 0.7978845608028654f;  // sqrt(2 / pi)
      return 0.5f * v * (1.f + tanhf(kk * (v + 0.044715f * v * v * v)));
    }
    case kActClip:
      return v != v ? v : fminf(fmaxf(v, alpha), beta);
    case kActSigmoid:
      return 1.f / (1.f + __expf(-v));
    case kActSilu:
      return v / (1.f + __expf(-v));
    case kActLeakyRelu:
      return v >= 0.f ? v : alpha * v;
    case kActHardSwish:
      return v * fminf(fmaxf(v + 3.f, 0.f), 6.f) * (1.f / 6.f);
    case kActTanh:
      return tanhf(v);
    default:
      return v;
  }
}

}  // namespace lib
}  // namespace tp
