// Our CUDA kernels around the quantized GEMM "qgemm" (cuda_kernels/kernels/qgemm.cu; the layer is
// runtime/kernels_qgemm.cpp): the uint8 -> int8 re-centring of A, the always-correct SIMT GEMM used where cuBLASLt
// has no plan, and the dequantize / activation / requantize epilogue over the accumulator. Launchers return the
// launch status and never synchronize.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tp {
namespace lib {

// out[i] = in[i] ^ 0x80 over n bytes: a uint8 value u read as the int8 value u - 128.
cudaError_t launch_flip_u8(const void* in, void* out, int64_t n, cudaStream_t stream);

// acc[m, n] = sum_k A[m, k] * B[n, k] for row-major A [M, K] and B [N, K] (both int8, or both float8e4m3fn when
// fp8), acc row-major [M, N]: int32 (exact, wrapping like the tensor cores) or float32 (fp8: products summed in
// float32, in order of k).
cudaError_t launch_qgemm_simt(const void* a, const void* b, void* acc, int64_t M, int64_t N, int64_t K, bool fp8,
                              cudaStream_t stream);

// The epilogue, for every (m, n) of the row-major [M, N] accumulator (the math of ep_trtpy::QMatMul):
//   v = float(acc[m, n] + bias_i32[n])      int32 acc: the sum wraps as int32; float acc: acc + float(bias_i32[n])
//   v = v * scale[n]                        one rounding (no fused multiply-add anywhere below)
//   v = v * alpha                           only when alpha != 1
//   v = v + bias_f[n]
//   v = act(v)                              codes of tp/library_epilogues.h (0 none, 1 relu, 2 gelu, 3 gelu_tanh)
//   Y = v                                   float32 / float16 (round to nearest even)
//   Y = clamp(rint(v / y_scale) + y_zero)   int8 / uint8 (ties to even; NaN gives y_zero)
//   Y = fp8_satfinite(v / y_scale)          float8e4m3fn (nearest even, saturated to +-448, NaN stays NaN)
// bias_i32 and bias_f may be nullptr (no term).
struct QEpilogueArgs {
  const void* acc = nullptr;
  bool acc_float = false;  // float32 accumulator (fp8) instead of int32
  void* y = nullptr;
  int y_dtype = 1;  // ONNX: 1 float32, 10 float16, 3 int8, 2 uint8, 17 float8e4m3fn
  int64_t rows = 0, cols = 0;
  const float* scale = nullptr;  // [cols], required
  const int32_t* bias_i32 = nullptr;
  const float* bias_f = nullptr;
  float alpha = 1.f;
  int act = 0;
  float y_scale = 1.f;
  int y_zero = 0;
};
cudaError_t launch_qgemm_epilogue(const QEpilogueArgs& a, cudaStream_t stream);

}  // namespace lib
}  // namespace tp
