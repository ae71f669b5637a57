// Kernel "attention": scaled dot-product attention for ep_trtpy::Attention.
//
//   O = softmax(scale * Q K^T + M) V        per batch b and head h
//
// Parameter layout (mirrored by the Attention lowering in ep_trtpy/builder/lowering/):
//   inputs  [Q, K, V, M or -1]   Q, K, V: one float dtype (float32, float16, bfloat16); they may be views of one
//                                packed QKV tensor. M: float32, float16 or bfloat16.
//   outputs [O]                  contiguous [B, Sq, H*Dv], Q's dtype
//   ints    [B, H, Sq, Skv, D, Dv, q_row, k_row, v_row, m_sb, m_sh, m_sq, m_sk (, math)]
//             Q (b, i, h, e) is element b*Sq*q_row + i*q_row + h*D + e of Q; K (b, j, h, e) element
//             b*Skv*k_row + j*k_row + h*D + e of K; V (b, j, h, e) element b*Skv*v_row + j*v_row + h*Dv + e of V;
//             M (b, h, i, j) element b*m_sb + h*m_sh + i*m_sq + j*m_sk of M (0 strides broadcast);
//             math (optional, default 0): 1 lets float32 GEMMs use TF32
//   floats  [scale]
//   tactics "cudnn:<plan>" (16-bit: one cuDNN flash-attention kernel; the mask is first cast to Q's dtype when
//           it has another) or "unfused" (two cuBLASLt strided-batched GEMMs around one masked-softmax kernel,
//           scores in float32 in the workspace; any dtype, any shape).
#include <algorithm>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "../kernels/attention.h"
#include "cudnn_conv_common.h"
#include "cudnn_graph.h"
#include "tactics.h"
#include "tp/engine.h"
#include "tp/library_support.h"

namespace tp {
namespace lib {
namespace {

constexpr size_t kMaxLtWorkspace = size_t(32) << 20;
const char* const kUnfused = "unfused";
const std::string kCudnnPrefix = "cudnn:";

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

cudaDataType_t lt_type(int dtype) {
  return dtype == 1 ? CUDA_R_32F : (dtype == 16 ? CUDA_R_16BF : CUDA_R_16F);
}

// The largest power of two (<= 256) dividing every value.
size_t pow2_dividing(std::initializer_list<int64_t> bytes) {
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
  ~LtGemm() {
    if (desc) cublasLtMatmulDescDestroy(desc);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (d) cublasLtMatrixLayoutDestroy(d);
  }
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

int make_layout(cublasLtMatrixLayout_t* l, cudaDataType_t t, uint64_t rows, uint64_t cols, int64_t ld,
                int32_t batch, int64_t stride, std::string* err) {
  TP_TRY_CUBLAS(cublasLtMatrixLayoutCreate(l, t, rows, cols, ld));
  TP_TRY_CUBLAS(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch));
  TP_TRY_CUBLAS(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                 sizeof stride));
  return 0;
}

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

enum class Mode { Empty, Fused, Unfused };

struct AttnState {
  Mode mode = Mode::Unfused;
  int dtype = 10, m_dtype = 1;
  bool mask = false, tf32 = false;
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
};

void attn_release(Layer& layer) {
  delete static_cast<AttnState*>(layer.state);
  layer.state = nullptr;
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

bool aligned(const void* p, size_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; }

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

AttentionGraphSpec graph_spec(const AttnState& s) {
  AttentionGraphSpec g;
  g.dtype = s.dtype;
  g.b = s.B;
  g.h = s.H;
  g.sq = s.Sq;
  g.skv = s.Skv;
  g.d = s.D;
  g.dv = s.Dv;
  const int64_t qs[4] = {s.Sq * s.q_row, s.D, s.q_row, 1}, ks[4] = {s.Skv * s.k_row, s.D, s.k_row, 1},
                vs[4] = {s.Skv * s.v_row, s.Dv, s.v_row, 1}, os[4] = {s.Sq * s.H * s.Dv, s.Dv, s.H * s.Dv, 1};
  std::copy(qs, qs + 4, g.q_stride);
  std::copy(ks, ks + 4, g.k_stride);
  std::copy(vs, vs + 4, g.v_stride);
  std::copy(os, os + 4, g.o_stride);
  g.mask = s.mask;
  if (s.mask) {
    const int64_t full[4] = {s.B, s.H, s.Sq, s.Skv}, st[4] = {s.m_sb, s.m_sh, s.m_sq, s.m_sk};
    int64_t next = 1;  // strides of broadcast (size-1) dims: any value; give them the packed one
    for (int i = 3; i >= 0; --i) {
      g.m_dim[i] = st[i] == 0 ? 1 : full[i];
      g.m_stride[i] = st[i] == 0 ? next : st[i];
      next = std::max(next, g.m_stride[i] * g.m_dim[i]);
    }
  }
  g.scale = s.scale;
  return g;
}

int run_fused(const Engine& engine, const AttnState& s, FusedGraph* g, int plan, const void* q, const void* k,
              const void* v, const void* m, void* o, void* ws, cudaStream_t stream, std::string* err) {
  cudnnHandle_t h = nullptr;
  if (engine.handles().cudnn(&h, err)) return 1;
  char* base = static_cast<char*>(ws);
  const void* mask = m;
  if (s.mask && s.cast_mask) {
    TP_TRY_CUDA(attn::cast(m, s.m_dtype, base + s.mask_off, s.dtype, s.m_numel, stream));
    mask = base + s.mask_off;
  }
  TP_TRY_CUDNN(cudnnSetStream(h, stream));
  int64_t uids[5] = {1, 2, 3, 5, 4};
  void* ptrs[5] = {const_cast<void*>(q), const_cast<void*>(k), const_cast<void*>(v), o, const_cast<void*>(mask)};
  return g->execute(h, plan, uids, ptrs, s.mask ? 5 : 4, base + s.graph_ws_off, err);
}

int64_t extent(std::initializer_list<std::pair<int64_t, int64_t>> count_stride) {
  int64_t e = 1;
  for (auto [n, st] : count_stride) e += (n - 1) * st;
  return e;
}

int attn_prepare(Engine& engine, Layer& layer, std::string* err) {
  TP_REQUIRE(layer.inputs.size() >= 3 && layer.inputs.size() <= 4 && layer.outputs.size() == 1,
             "expects inputs [Q, K, V, M?] and outputs [O]");
  TP_REQUIRE(layer.ints.size() == 13 || layer.ints.size() == 14,
             "expects ints [B, H, Sq, Skv, D, Dv, q_row, k_row, v_row, m_sb, m_sh, m_sq, m_sk (, math)]");
  TP_REQUIRE(layer.floats.size() == 1, "expects floats [scale]");
  auto* s = new AttnState();
  layer.state = s;
  const auto& I = layer.ints;
  s->B = I[0], s->H = I[1], s->Sq = I[2], s->Skv = I[3], s->D = I[4], s->Dv = I[5];
  s->q_row = I[6], s->k_row = I[7], s->v_row = I[8];
  s->m_sb = I[9], s->m_sh = I[10], s->m_sq = I[11], s->m_sk = I[12];
  s->tf32 = I.size() == 14 && I[13] == 1;
  s->scale = static_cast<float>(layer.floats[0]);
  for (int i = 0; i < 9; ++i) TP_REQUIRE(I[i] >= 0, "B, H, Sq, Skv, D, Dv and the row strides must be >= 0");
  for (int i = 9; i < 13; ++i) TP_REQUIRE(I[i] >= 0, "mask strides must be >= 0");
  TP_REQUIRE(s->q_row >= s->H * s->D && s->k_row >= s->H * s->D && s->v_row >= s->H * s->Dv,
             "row strides must hold every head (q_row, k_row >= H*D; v_row >= H*Dv)");
  const TensorDesc& Q = engine.tensor(layer.inputs[0]);
  const TensorDesc& K = engine.tensor(layer.inputs[1]);
  const TensorDesc& V = engine.tensor(layer.inputs[2]);
  const TensorDesc& O = engine.tensor(layer.outputs[0]);
  s->dtype = Q.dtype;
  TP_REQUIRE(s->dtype == 1 || s->dtype == 10 || s->dtype == 16, "Q must be float32, float16 or bfloat16");
  TP_REQUIRE(K.dtype == s->dtype && V.dtype == s->dtype && O.dtype == s->dtype, "Q, K, V and O must share a dtype");
  s->es = dtype_size(s->dtype);
  TP_REQUIRE(O.numel() == s->B * s->Sq * s->H * s->Dv, "O must hold B*Sq*H*Dv elements, it is " + join(O.dims));
  layer.workspace = 0;
  if (O.numel() == 0) {
    s->mode = Mode::Empty;
    layer.tactic_name = "empty";
    return 0;
  }
  TP_REQUIRE(s->Skv > 0 && s->D > 0, "Skv and D must be positive when O is not empty");
  TP_REQUIRE(Q.numel() >= extent({{s->B, s->Sq * s->q_row}, {s->Sq, s->q_row}, {s->H, s->D}, {s->D, 1}}),
             "Q " + join(Q.dims) + " is smaller than its strides reach");
  TP_REQUIRE(K.numel() >= extent({{s->B, s->Skv * s->k_row}, {s->Skv, s->k_row}, {s->H, s->D}, {s->D, 1}}),
             "K " + join(K.dims) + " is smaller than its strides reach");
  TP_REQUIRE(V.numel() >= extent({{s->B, s->Skv * s->v_row}, {s->Skv, s->v_row}, {s->H, s->Dv}, {s->Dv, 1}}),
             "V " + join(V.dims) + " is smaller than its strides reach");
  s->mask = layer.inputs.size() > 3 && layer.inputs[3] >= 0;
  if (s->mask) {
    const TensorDesc& M = engine.tensor(layer.inputs[3]);
    s->m_dtype = M.dtype;
    TP_REQUIRE(M.dtype == 1 || M.dtype == 10 || M.dtype == 16, "M must be float32, float16 or bfloat16");
    s->m_numel = M.numel();
    TP_REQUIRE(M.numel() >= extent({{s->B, s->m_sb}, {s->H, s->m_sh}, {s->Sq, s->m_sq}, {s->Skv, s->m_sk}}),
               "M " + join(M.dims) + " is smaller than its strides reach");
  }

  // ---- candidates: cuDNN flash attention plans (16-bit), then the unfused path --------------------------------
  std::unique_ptr<FusedGraph> graph;
  std::string graph_err = "float32 attention runs unfused";
  if (s->dtype != 1 && (!s->mask || s->m_sk != 0)) {
    cudnnHandle_t h = nullptr;
    if (engine.handles().cudnn(&h, err)) return 1;
    const std::string& named = layer.tactic_name;
    // A plan serialized by an earlier prepare: no heuristics and no compilation (else build the graph).
    if (!layer.tactic_state.empty() && named.compare(0, kCudnnPrefix.size(), kCudnnPrefix) == 0 &&
        FusedGraph::restore(h, layer.tactic_state, named.substr(kCudnnPrefix.size()), &graph, &graph_err) != 0)
      graph.reset();
    if (!graph && FusedGraph::attention(h, graph_spec(*s), &graph, &graph_err) != 0) graph.reset();
  }
  layer.tactic_state.clear();
  s->cast_mask = s->mask && s->m_dtype != s->dtype;
  size_t unfused_ws = 0;
  std::string unfused_err;
  const bool unfused_ok = plan_unfused(engine, *s, &unfused_ws, &unfused_err) == 0;
  std::vector<std::string> names;
  if (graph)
    for (int i = 0; i < graph->candidates(); ++i) names.push_back(kCudnnPrefix + graph->name(i));
  if (unfused_ok) names.push_back(kUnfused);
  TP_REQUIRE(!names.empty(), "no attention tactic: " + graph_err + "; unfused: " + unfused_err);
  auto plan_of = [&](const std::string& name) {
    return name.compare(0, kCudnnPrefix.size(), kCudnnPrefix) == 0 && graph ? graph->find(name.substr(kCudnnPrefix.size()))
                                                                            : -1;
  };
  auto usable = [&](const std::string& name, std::string* why) {
    if (name == kUnfused) return unfused_ok;
    const int i = plan_of(name);
    return i >= 0 && graph->build(i, why) == 0;
  };
  s->mask_off = 0;
  const size_t mask_bytes = s->cast_mask ? align256(static_cast<size_t>(s->m_numel) * s->es) : 0;
  s->graph_ws_off = mask_bytes;
  std::string chosen;
  if (!layer.tactic_name.empty()) {
    std::string why;
    if (usable(layer.tactic_name, &why)) chosen = layer.tactic_name;
  }
  if (chosen.empty()) {
    const int level = engine.tuning_level();
    const int n_time = candidates_to_time(level, static_cast<int>(names.size()));
    if (n_time == 0) {
      for (const auto& n : names) {
        std::string why;
        if (usable(n, &why)) {
          chosen = n;
          break;
        }
      }
    } else {
      // time the first plans of cuDNN's list (at most two below level 4: each may be compiled at build) and the
      // unfused path
      std::vector<std::string> timed;
      for (const auto& n : names)
        if (n != kUnfused && static_cast<int>(timed.size()) < std::min(n_time, level < 4 ? 2 : n_time))
          timed.push_back(n);
      if (unfused_ok) timed.push_back(kUnfused);
      size_t ws_max = unfused_ws;
      std::vector<char> ok(timed.size(), 0);
      for (size_t i = 0; i < timed.size(); ++i) {
        std::string why;
        ok[i] = usable(timed[i], &why);
        if (!ok[i]) layer.timings.emplace_back(timed[i], std::numeric_limits<double>::infinity());
        else if (timed[i] != kUnfused) ws_max = std::max(ws_max, mask_bytes + graph->workspace(plan_of(timed[i])));
      }
      const size_t qb = static_cast<size_t>(Q.nbytes), kb = static_cast<size_t>(K.nbytes),
                   vb = static_cast<size_t>(V.nbytes);
      const size_t mb = s->mask ? static_cast<size_t>(engine.tensor(layer.inputs[3]).nbytes) : 0;
      char* in = static_cast<char*>(engine.scratch_buffer(0, align256(qb) + align256(kb) + align256(vb)));
      void* mbuf = engine.scratch_buffer(1, std::max<size_t>(mb, 1));
      void* obuf = engine.scratch_buffer(2, static_cast<size_t>(O.nbytes));
      void* wbuf = engine.scratch_buffer(3, std::max<size_t>(ws_max, 1));
      TP_REQUIRE(in && mbuf && obuf && wbuf, std::string("cannot allocate scratch buffers: ") + tp_last_error());
      TP_TRY_CUDA(cudaMemset(in, 0x3C, align256(qb) + align256(kb) + align256(vb)));
      TP_TRY_CUDA(cudaMemset(mbuf, 0x3C, std::max<size_t>(mb, 1)));
      const void* qp = in;
      const void* kp = in + align256(qb);
      const void* vp = in + align256(qb) + align256(kb);
      CandidateTimer timer;
      if (timer.init(err)) return 1;
      double best = std::numeric_limits<double>::infinity();
      for (size_t i = 0; i < timed.size(); ++i) {
        if (!ok[i]) continue;
        const std::string& n = timed[i];
        const double ms = timer.time([&](cudaStream_t st) {
          std::string e;
          if (n == kUnfused) return run_unfused(engine, *s, qp, kp, vp, mbuf, obuf, wbuf, st, &e);
          return run_fused(engine, *s, graph.get(), plan_of(n), qp, kp, vp, mbuf, obuf, wbuf, st, &e);
        });
        layer.timings.emplace_back(n, ms);
        if (ms < best) {
          best = ms;
          chosen = n;
        }
      }
    }
  }
  TP_REQUIRE(!chosen.empty(), "no attention tactic could be built: " + graph_err + "; unfused: " + unfused_err);
  layer.tactic_name = chosen;
  if (chosen == kUnfused) {
    s->mode = Mode::Unfused;
    layer.tactic = 0;
    layer.workspace = unfused_ws;
    return 0;
  }
  s->mode = Mode::Fused;
  s->plan = plan_of(chosen);
  s->graph = std::move(graph);
  layer.tactic = s->plan;
  layer.workspace = mask_bytes + s->graph->workspace(s->plan);
  std::string ignored;  // without the bytes, a later prepare builds the plan from its name
  if (s->graph->serialize(s->plan, &layer.tactic_state, &ignored) != 0) layer.tactic_state.clear();
  return 0;
}

int attn_launch(const Engine& engine, const Layer& layer, const void* const* in, void* const* out,
                const LaunchContext& ctx, std::string* err) {
  const auto* s = static_cast<const AttnState*>(layer.state);
  if (s->mode == Mode::Empty) return 0;
  TP_REQUIRE(layer.workspace <= ctx.workspace_bytes, "workspace smaller than the layer needs");
  const void* m = s->mask ? in[3] : nullptr;
  if (s->mode == Mode::Unfused) return run_unfused(engine, *s, in[0], in[1], in[2], m, out[0], ctx.workspace,
                                                   ctx.stream, err);
  return run_fused(engine, *s, s->graph.get(), s->plan, in[0], in[1], in[2], m, out[0], ctx.workspace, ctx.stream,
                   err);
}

const KernelDef kAttention = {"attention", attn_prepare, attn_launch, attn_release};
TP_REGISTER_KERNEL(kAttention);

}  // namespace
}  // namespace lib
}  // namespace tp
