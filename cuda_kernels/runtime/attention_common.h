// The state of one "attention" layer (kernels_attention.cpp) shared by its GEMM-based tactics: "unfused"
// (attention_gemm.cpp: per-head or per-batch GEMM launches reading Q, K, V and writing O in place) and "packed"
// (attention_packed.cpp: heads copied to [B*H, S, D] buffers, one GEMM launch each side of the softmax), with the
// cuBLASLt planning both use.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "cudnn_graph.h"
#include "tp/engine.h"

namespace tp {
namespace lib {
namespace attention {

inline size_t align256(size_t n) { return (n + 255) / 256 * 256; }

inline bool aligned(const void* p, size_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; }

inline cudaDataType_t lt_type(int dtype) {
  return dtype == 1 ? CUDA_R_32F : (dtype == 16 ? CUDA_R_16BF : CUDA_R_16F);
}

// The largest power of two (<= 256) dividing every value.
inline size_t pow2_dividing(std::initializer_list<int64_t> bytes) {
  size_t a = 256;
  for (int64_t b : bytes)
    while (a > 1 && b % static_cast<int64_t>(a) != 0) a /= 2;
  return a;
}

struct LtGemm {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t ws = 0;
  size_t align_a = 1, align_b = 1, align_d = 1;
  LtGemm() = default;
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;
  ~LtGemm();
};

// One strided-batched column-major product D = op(A) B with the given operand geometry.
struct GemmGeom {
  cudaDataType_t ta, tb, td;
  bool trans_a;
  uint64_t a_rows, a_cols, b_rows, b_cols, d_rows, d_cols;
  int64_t lda, ldb, ldd;
  int32_t batch;
  int64_t sa, sb, sd;  // batch strides (elements)
};

// Fills out's descriptors and picks cuBLASLt's first heuristic algorithm for g (out's alignments set beforehand);
// float32 compute, TF32 tensor cores when tf32.
int plan_gemm(cublasLtHandle_t lt, const GemmGeom& g, bool tf32, LtGemm* out, std::string* err);

enum class Mode { Empty, Fused, Unfused, Packed };

// How the packed tactic reaches one of Q, K, V, O: in place when one batch stride over n = b*H + h reaches every
// head (B == 1, H == 1, or S*row == H*W), else through its packed copy at `off` in the workspace.
struct PackedOperand {
  bool direct = false;
  int64_t ld = 0, stride = 0;  // the GEMM's leading dimension and batch stride (elements)
  size_t off = 0;
};

struct PackedPlan {
  PackedOperand q, k, v, o;
  LtGemm g1, g2;
  size_t s_off = 0, p_off = 0, lt_off = 0;
};

struct AttnState {
  Mode mode = Mode::Unfused;
  int dtype = 10, m_dtype = 1;
  bool mask = false, tf32 = false;
  bool varying = false;  // a specialized engine's layer: its cuDNN graph is built for dynamic shapes
  int64_t B = 0, H = 0, Sq = 0, Skv = 0, D = 0, Dv = 0, q_row = 0, k_row = 0, v_row = 0;
  int64_t m_sb = 0, m_sh = 0, m_sq = 0, m_sk = 0, m_numel = 0;
  float scale = 1.f;
  size_t es = 2;
  // fused
  std::unique_ptr<FusedGraph> graph;
  int plan = -1;
  bool cast_mask = false;
  size_t mask_off = 0, graph_ws_off = 0;
  // unfused
  bool loop_heads = true;
  LtGemm g1, g2;
  size_t s_off = 0, p_off = 0, lt_off = 0;
  // packed
  PackedPlan packed;
};

// The masked softmax of the float32 scores S [B, H, Sq, Skv] into P (Q's dtype; P may be S for float32).
int run_softmax(const AttnState& s, const float* S, void* P, const void* m, cudaStream_t stream, std::string* err);

// Each tactic's plan (its GEMMs and workspace layout; the workspace bytes in *ws_total) and its launch.
int plan_unfused(Engine& engine, AttnState& s, size_t* ws_total, std::string* err);
int run_unfused(const Engine& engine, const AttnState& s, const void* q, const void* k, const void* v,
                const void* m, void* o, void* ws, cudaStream_t stream, std::string* err);
int plan_packed(Engine& engine, AttnState& s, size_t* ws_total, std::string* err);
int run_packed(const Engine& engine, const AttnState& s, const void* q, const void* k, const void* v,
               const void* m, void* o, void* ws, cudaStream_t stream, std::string* err);

}  // namespace attention
}  // namespace lib
}  // namespace tp
