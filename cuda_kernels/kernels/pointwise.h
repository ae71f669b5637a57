// The pointwise program interpreter: host/device interface (see pointwise.cu and runtime/kernels_pointwise.cpp).
//
// A program (ep_trtpy/ops/pointwise_program.py, re-encoded by ep_trtpy/builder/lowering/elementwise.py) runs once
// per output element. The native form adds two pseudo-ops to the program's opcodes: LOAD (read input `a` at the
// element, converted to the compute type, into register `dst`) and STORE (write register `a` to output `b`,
// converted to that output's dtype). Registers are renumbered by the lowering so that few are live at once.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tp {
namespace pw {

constexpr int kMaxInputs = 16;
constexpr int kMaxOutputs = 8;
constexpr int kMaxDims = 8;
constexpr int kMaxCode = 96;  // 64 program instructions + 16 loads + 8 stores (+ slack)

// Opcodes: the numbering of ep_trtpy.ops.pointwise_program.OPCODES (the generated pointwise_ops.inc; kMov = 0),
// plus LOAD/STORE.
enum Op : uint8_t {
#define TP_PW_OP(name, nsrc, int_ok) name,
#include "pointwise_ops.inc"
#undef TP_PW_OP
  kNumOps,
  kLoad = 200,
  kStore = 201,
};

struct Instr {
  uint8_t op, dst, nsrc, a, b, c;
};

// Kernel parameters (passed by value as a __grid_constant__; about 3.5 KB for int64 compute).
template <typename T>
struct Params {
  const void* in[kMaxInputs];
  void* out[kMaxOutputs];
  long long n;                               // output elements
  long long dims[kMaxDims];                  // collapsed output dims, outermost first
  long long strides[kMaxInputs][kMaxDims];   // element strides per input (0 = broadcast)
  int32_t in_dtype[kMaxInputs];
  int32_t out_dtype[kMaxOutputs];
  Instr code[kMaxCode];
  T imm[kMaxCode][2];
  int32_t ndim, n_code, n_in, n_out;
};

// CUDA kernel parameters are limited to 4 KB on the toolchains/drivers we support.
static_assert(sizeof(Params<long long>) <= 4096, "pointwise kernel parameters exceed 4 KB");
static_assert(sizeof(Params<float>) <= 4096, "pointwise kernel parameters exceed 4 KB");

// Everything prepare() decides; launch() copies it, sets the pointers and picks the kernel variant.
struct Plan {
  int compute = 0;  // 0 = float32, 1 = int64
  int nreg = 8;     // 8, 16 or 32
  Params<float> f;
  Params<long long> i;
};

// Enqueue the program. Returns cudaSuccess or the launch error. Launches nothing when the output is empty.
cudaError_t launch(const Plan& plan, const void* const* in, void* const* out, cudaStream_t stream,
                   long long max_blocks);

}  // namespace pw
}  // namespace tp
