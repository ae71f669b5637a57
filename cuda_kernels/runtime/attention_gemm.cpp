// The cuBLASLt planning shared by the GEMM-based attention tactics, the masked-softmax call, and the "unfused"
// tactic: one strided-batched GEMM launch per head (batch over b, when H <= B) or per batch row (batch over h) on
// each side of the softmax, reading Q, K, V and writing O in place (attention_common.h).
#include <algorithm>
#include <string>

#include "../kernels/attention.h"
#include "attention_common.h"
#include "tp/library_support.h"

namespace tp {
namespace lib {
namespace attention {

constexpr size_t kMaxLtWorkspace = size_t(32) << 20;

LtGemm::~LtGemm() {
  if (desc) cublasLtMatmulDescDestroy(desc);
  if (a) cublasLtMatrixLayoutDestroy(a);
  if (b) cublasLtMatrixLayoutDestroy(b);
  if (d) cublasLtMatrixLayoutDestroy(d);
}

namespace {

int make_layout(cublasLtMatrixLayout_t* l, cudaDataType_t t, uint64_t rows, uint64_t cols, int64_t ld,
                int32_t batch, int64_t stride, std::string* err) {
  TP_TRY_CUBLAS(cublasLtMatrixLayoutCreate(l, t, rows, cols, ld));
  TP_TRY_CUBLAS(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch));
  TP_TRY_CUBLAS(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                 sizeof stride));
  return 0;
}

}  // namespace

int plan_gemm(cublasLtHandle_t lt, const GemmGeom& g, bool tf32, LtGemm* out, std::string* err) {
  TP_TRY_CUBLAS(cublasLtMatmulDescCreate(&out->desc, tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F,
                                         CUDA_R_32F));
  const int32_t ta = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = CUBLAS_OP_N;
  TP_TRY_CUBLAS(cublasLtMatmulDescSetAttribute(out->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  TP_TRY_CUBLAS(cublasLtMatmulDescSetAttribute(out->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  if (make_layout(&out->a, g.ta, g.a_rows, g.a_cols, g.lda, g.batch, g.sa, err) ||
      make_layout(&out->b, g.tb, g.b_rows, g.b_cols, g.ldb, g.batch, g.sb, err) ||
      make_layout(&out->d, g.td, g.d_rows, g.d_cols, g.ldd, g.batch, g.sd, err))
    return 1;
  cublasLtMatmulPreference_t pref = nullptr;
  TP_TRY_CUBLAS(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t max_ws = kMaxLtWorkspace;
  const uint32_t aa = static_cast<uint32_t>(out->align_a), ab = static_cast<uint32_t>(out->align_b),
                 ad = static_cast<uint32_t>(out->align_d);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_ws, sizeof max_ws);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof aa);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab, sizeof ab);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ad, sizeof ad);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ad, sizeof ad);
  cublasLtMatmulHeuristicResult_t res{};
  int returned = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(lt, out->desc, out->a, out->b, out->d, out->d, pref, 1, &res, &returned);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || returned < 1 || res.state != CUBLAS_STATUS_SUCCESS) {
    *err = cublas_message("cublasLtMatmulAlgoGetHeuristic (attention GEMM)", st != CUBLAS_STATUS_SUCCESS ? st :
                          CUBLAS_STATUS_NOT_SUPPORTED);
    return 1;
  }
  out->algo = res.algo;
  out->ws = res.workspaceSize;
  return 0;
}

int run_softmax(const AttnState& s, const float* S, void* P, const void* m, cudaStream_t stream, std::string* err) {
  attn::MaskedSoftmaxArgs sm;
  sm.s = S;
  sm.p = P;
  sm.p_dtype = s.dtype;
  sm.m = s.mask ? m : nullptr;
  sm.m_dtype = s.m_dtype;
  sm.b = s.B;
  sm.h = s.H;
  sm.sq = s.Sq;
  sm.skv = s.Skv;
  sm.m_sb = s.m_sb;
  sm.m_sh = s.m_sh;
  sm.m_sq = s.m_sq;
  sm.m_sk = s.m_sk;
  TP_TRY_CUDA(attn::masked_softmax(sm, stream, 65535LL * 8));
  return 0;
}

// The unfused path's GEMMs and workspace layout (after s.mode is known to be Unfused or a candidate).
int plan_unfused(Engine& engine, AttnState& s, size_t* ws_total, std::string* err) {
  cublasLtHandle_t lt = nullptr;
  if (engine.handles().cublaslt(&lt, err)) return 1;
  s.loop_heads = s.H <= s.B;
  const cudaDataType_t t = lt_type(s.dtype);
  const int64_t es = static_cast<int64_t>(s.es);
  // scores S^T (col-major Skv x Sq) = K^T (K as col-major D x Skv) Q (col-major D x Sq), times scale
  GemmGeom g1{t, t, CUDA_R_32F, true, static_cast<uint64_t>(s.D), static_cast<uint64_t>(s.Skv),
              static_cast<uint64_t>(s.D), static_cast<uint64_t>(s.Sq), static_cast<uint64_t>(s.Skv),
              static_cast<uint64_t>(s.Sq), s.k_row, s.q_row, s.Skv, 0, 0, 0, 0};
  // O^T (col-major Dv x Sq, ld H*Dv) = V (col-major Dv x Skv) P^T (col-major Skv x Sq)
  GemmGeom g2{t, t, t, false, static_cast<uint64_t>(s.Dv), static_cast<uint64_t>(s.Skv),
              static_cast<uint64_t>(s.Skv), static_cast<uint64_t>(s.Sq), static_cast<uint64_t>(s.Dv),
              static_cast<uint64_t>(s.Sq), s.v_row, s.Skv, s.H * s.Dv, 0, 0, 0, 0};
  if (s.loop_heads) {  // batch over b
    g1.batch = static_cast<int32_t>(s.B);
    g1.sa = s.Skv * s.k_row;
    g1.sb = s.Sq * s.q_row;
    g1.sd = s.H * s.Sq * s.Skv;
    g2.batch = static_cast<int32_t>(s.B);
    g2.sa = s.Skv * s.v_row;
    g2.sb = s.H * s.Sq * s.Skv;
    g2.sd = s.Sq * s.H * s.Dv;
  } else {  // batch over h
    g1.batch = static_cast<int32_t>(s.H);
    g1.sa = s.D;
    g1.sb = s.D;
    g1.sd = s.Sq * s.Skv;
    g2.batch = static_cast<int32_t>(s.H);
    g2.sa = s.Dv;
    g2.sb = s.Sq * s.Skv;
    g2.sd = s.Dv;
  }
  s.g1.align_a = pow2_dividing({s.k_row * es, s.D * es, g1.sa * es});
  s.g1.align_b = pow2_dividing({s.q_row * es, s.D * es, g1.sb * es});
  s.g1.align_d = pow2_dividing({s.Skv * 4, g1.sd * 4});
  s.g2.align_a = pow2_dividing({s.v_row * es, s.Dv * es, g2.sa * es});
  s.g2.align_b = pow2_dividing({s.Skv * es, g2.sb * es});
  s.g2.align_d = pow2_dividing({s.H * s.Dv * es, s.Dv * es, g2.sd * es});
  if (plan_gemm(lt, g1, s.tf32, &s.g1, err) || plan_gemm(lt, g2, s.tf32, &s.g2, err)) return 1;
  const size_t n_scores = static_cast<size_t>(s.B * s.H * s.Sq * s.Skv);
  s.s_off = 0;
  s.p_off = s.dtype == 1 ? 0 : align256(n_scores * 4);
  s.lt_off = s.p_off + (s.dtype == 1 ? align256(n_scores * 4) : align256(n_scores * s.es));
  *ws_total = s.lt_off + std::max(s.g1.ws, s.g2.ws);
  return 0;
}

int run_unfused(const Engine& engine, const AttnState& s, const void* q, const void* k, const void* v,
                const void* m, void* o, void* ws, cudaStream_t stream, std::string* err) {
  cublasLtHandle_t lt = nullptr;
  if (engine.handles().cublaslt(&lt, err)) return 1;
  char* base = static_cast<char*>(ws);
  float* S = reinterpret_cast<float*>(base + s.s_off);
  char* P = base + s.p_off;
  void* lt_ws = base + s.lt_off;
  const int64_t es = static_cast<int64_t>(s.es);
  const float alpha1 = s.scale, one = 1.f, zero = 0.f;
  const int64_t loops = s.loop_heads ? s.H : s.B;
  auto off = [](const void* p, int64_t bytes) { return static_cast<const char*>(p) + bytes; };
  for (int64_t l = 0; l < loops; ++l) {
    const void* A = s.loop_heads ? off(k, l * s.D * es) : off(k, l * s.Skv * s.k_row * es);
    const void* Bm = s.loop_heads ? off(q, l * s.D * es) : off(q, l * s.Sq * s.q_row * es);
    float* Dm = S + (s.loop_heads ? l * s.Sq * s.Skv : l * s.H * s.Sq * s.Skv);
    TP_REQUIRE(aligned(A, s.g1.align_a) && aligned(Bm, s.g1.align_b),
               "attention: Q/K pointers are less aligned than the plan assumes");
    TP_TRY_CUBLAS(cublasLtMatmul(lt, s.g1.desc, &alpha1, A, s.g1.a, Bm, s.g1.b, &zero, Dm, s.g1.d, Dm, s.g1.d,
                                 &s.g1.algo, lt_ws, s.g1.ws, stream));
  }
  if (run_softmax(s, S, P, m, stream, err)) return 1;
  for (int64_t l = 0; l < loops; ++l) {
    const void* A = s.loop_heads ? off(v, l * s.Dv * es) : off(v, l * s.Skv * s.v_row * es);
    const void* Bm = P + (s.loop_heads ? l * s.Sq * s.Skv : l * s.H * s.Sq * s.Skv) * es;
    void* Dm = static_cast<char*>(o) + (s.loop_heads ? l * s.Dv : l * s.Sq * s.H * s.Dv) * es;
    TP_REQUIRE(aligned(A, s.g2.align_a) && aligned(Dm, s.g2.align_d),
               "attention: V/O pointers are less aligned than the plan assumes");
    TP_TRY_CUBLAS(cublasLtMatmul(lt, s.g2.desc, &one, A, s.g2.a, Bm, s.g2.b, &zero, Dm, s.g2.d, Dm, s.g2.d,
                                 &s.g2.algo, lt_ws, s.g2.ws, stream));
  }
  return 0;
}

}  // namespace attention
}  // namespace lib
}  // namespace tp
