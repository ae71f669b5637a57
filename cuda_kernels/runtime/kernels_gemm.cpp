// Kernel "gemm": batched matrix multiply through cuBLASLt, for ep_trtpy::FusedMatMul, MatMul and Gemm.
//
//   Y[b] = act(alpha * op(A[b]) @ op(B[b]) + beta * C[b])          b in [0, batch)
//
// Parameter layout (mirrored by ep_trtpy/builder/lowering/linalg.py):
//   inputs  [A, B, C]      C optional (-1). All float32, all float16 or all bfloat16 (ONNX dtypes 1, 10, 16).
//   outputs [Y]            contiguous [batch, M, N] (row-major), batch * M * N elements.
//   ints    [M, N, K, batch, transA, transB, strideA, strideB, act, c_sb, c_sr, c_sc (, math)]
//             A[b]: row-major [M, K] (transA = 0) or [K, M] (transA = 1), starting at element b * strideA of A;
//             B[b]: row-major [K, N] (transB = 0) or [N, K] (transB = 1), starting at element b * strideB of B;
//             stride 0 broadcasts one matrix over the batch.
//             act: 0 none, 1 relu, 2 gelu (erf), 3 gelu (tanh approximation).
//             C[b, m, n] is element b * c_sb + m * c_sr + n * c_sc of C (strides in elements, 0 = broadcast):
//             a bias vector over N is (0, 0, 1); a full [M, N] matrix per batch is (M * N, N, 1).
//             math (optional, default 0): 1 lets float32 use TF32 tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32).
//   floats  [alpha, beta]
//   tactic  index into the cuBLASLt heuristic's candidate list (up to 8) for the primary plan, also named "lt:<i>"
//           in tactic_name; none = the first candidate at tuning level 0, else the fastest of the first
//           candidates_to_time(level) (tactics.h). workspace: set by prepare (at most 32 MiB).
//
// Float32 uses CUBLAS_COMPUTE_32F (no TF32 unless the math flag allows it); float16 and bfloat16 use 16-bit
// operands with float32 accumulation and scaling.
//
// Row-major Y = op(A) op(B) is computed as the column-major product Y^T = op(B)^T op(A)^T, i.e. cuBLASLt's "A" is
// our B and its "B" is our A, and D is column-major N x M with leading dimension N.
//
// Epilogues: ReLU, GELU and a bias vector (C of strides (0, 0, 1) with beta = 1) are fused into cuBLASLt's
// epilogue; a full C matrix with no activation goes through cuBLASLt's C operand; everything else (other C
// broadcasts) runs as one extra pass of our epilogue kernel (tp/library_epilogues.h) over Y. cuBLASLt's GELU
// epilogue is the tanh approximation: it serves act 3 always, and act 2 (the erf form) in 16-bit GEMMs, where the
// two forms differ by at most 5e-4 (below float16's resolution for |x| >= 0.5); float32 keeps the erf form in
// our epilogue kernel. cuBLASLt's RELU epilogue is max(x, 0): some of its kernels turn NaN into 0, others keep it
// (README, "Numerics at the edges"); our epilogue kernel keeps NaN.
//
// Alignment: the primary plan assumes the operand base pointers are aligned as the batch strides allow (at most
// 256 bytes); a launch whose pointers are less aligned (views at odd offsets) runs a fallback plan that assumes
// only element alignment and does all epilogue work in our kernel.
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "tactics.h"
#include "tp/engine.h"
#include "tp/library_epilogues.h"
#include "tp/library_support.h"

namespace tp {
namespace {
using namespace ::tp::lib;  // NOLINT: this file's helpers

constexpr size_t kMaxWorkspace = size_t(32) << 20;
constexpr int kRequestedAlgos = 8;
constexpr int kTimingReps = 5;

struct LtPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr, d = nullptr;  // cuBLASLt's A (our B), B (our A)
  cublasLtMatmulAlgo_t algo{};
  size_t ws = 0;
  bool ready = false;
  bool use_c = false;     // beta * C through cuBLASLt's C operand
  bool use_bias = false;  // C as a bias vector through the BIAS epilogue
  bool own_add = false;   // our epilogue adds beta * C afterwards
  int own_act = kActNone; // our epilogue applies this activation afterwards
  size_t align_a = 256, align_b = 256, align_c = 256, align_d = 256, align_bias = 256;  // our A, B, C, Y, bias

  void destroy() {
    if (desc) cublasLtMatmulDescDestroy(desc);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (d) cublasLtMatrixLayoutDestroy(d);
    desc = nullptr;
    a = b = c = d = nullptr;
    ready = false;
  }
};

enum class Mode { Empty, ZeroK, Lt };

struct GemmState {
  Mode mode = Mode::Lt;
  int dtype = 1;
  size_t esize = 4;
  int64_t M = 0, N = 0, K = 0, batch = 0, strideA = 0, strideB = 0;
  bool transA = false, transB = false, tf32 = false;
  int act = kActNone;
  bool has_c = false;
  int64_t c_sb = 0, c_sr = 0, c_sc = 0;
  float alpha = 1.f, beta = 1.f;
  LtPlan primary, fallback;
  ~GemmState() {
    primary.destroy();
    fallback.destroy();
  }
};

size_t pow2_alignment(int64_t bytes) {
  if (bytes == 0) return 256;
  size_t a = 1;
  while (a < 256 && (bytes % static_cast<int64_t>(a * 2)) == 0) a *= 2;
  return a;
}

bool aligned(const void* p, size_t a) { return (reinterpret_cast<uintptr_t>(p) % a) == 0; }

template <typename T>
cublasStatus_t set_desc(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const T& v) {
  return cublasLtMatmulDescSetAttribute(d, attr, &v, sizeof(v));
}
template <typename T>
cublasStatus_t set_layout(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr, const T& v) {
  return cublasLtMatrixLayoutSetAttribute(l, attr, &v, sizeof(v));
}
template <typename T>
cublasStatus_t set_pref(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t attr, const T& v) {
  return cublasLtMatmulPreferenceSetAttribute(p, attr, &v, sizeof(v));
}

int make_layout(cublasLtMatrixLayout_t* out, cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld,
                int64_t batch, int64_t stride, std::string* err) {
  TP_TRY_CUBLAS(cublasLtMatrixLayoutCreate(out, type, rows, cols, ld));
  const int32_t count = static_cast<int32_t>(batch);
  TP_TRY_CUBLAS(set_layout(*out, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, count));
  TP_TRY_CUBLAS(set_layout(*out, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, stride));
  return 0;
}

// Build descriptors and layouts of a plan; `epilogue` and use_c/use_bias are already set in p.
int build_plan(const GemmState& s, LtPlan& p, cublasLtEpilogue_t epilogue, const void* bias_probe, std::string* err) {
  const cudaDataType_t type = s.dtype == 1 ? CUDA_R_32F : (s.dtype == 16 ? CUDA_R_16BF : CUDA_R_16F);
  TP_TRY_CUBLAS(cublasLtMatmulDescCreate(&p.desc, s.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F,
                                         CUDA_R_32F));
  const int32_t op_a = s.transB ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLASLt A = our B
  const int32_t op_b = s.transA ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLASLt B = our A
  TP_TRY_CUBLAS(set_desc(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, op_a));
  TP_TRY_CUBLAS(set_desc(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, op_b));
  const uint32_t epi = static_cast<uint32_t>(epilogue);
  TP_TRY_CUBLAS(set_desc(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, epi));
  if (p.use_bias) {
    // cuBLASLt reads the pointer value to decide the alignment it may assume; the real pointer is set at launch.
    TP_TRY_CUBLAS(set_desc(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias_probe));
    const int64_t bias_batch_stride = 0;
    TP_TRY_CUBLAS(set_desc(p.desc, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, bias_batch_stride));
  }
  const uint64_t M = static_cast<uint64_t>(s.M), N = static_cast<uint64_t>(s.N), K = static_cast<uint64_t>(s.K);
  // Our B as cuBLASLt's A (N x K after op): stored row-major [K, N] = column-major N x K (ld N), or
  // row-major [N, K] = column-major K x N (ld K) to be transposed.
  if (s.transB) {
    if (make_layout(&p.a, type, K, N, static_cast<int64_t>(K), s.batch, s.strideB, err)) return 1;
  } else {
    if (make_layout(&p.a, type, N, K, static_cast<int64_t>(N), s.batch, s.strideB, err)) return 1;
  }
  // Our A as cuBLASLt's B (K x M after op): row-major [M, K] = column-major K x M (ld K), or row-major [K, M]
  // = column-major M x K (ld M) to be transposed.
  if (s.transA) {
    if (make_layout(&p.b, type, M, K, static_cast<int64_t>(M), s.batch, s.strideA, err)) return 1;
  } else {
    if (make_layout(&p.b, type, K, M, static_cast<int64_t>(K), s.batch, s.strideA, err)) return 1;
  }
  const int64_t d_stride = s.M * s.N;
  if (make_layout(&p.d, type, N, M, static_cast<int64_t>(N), s.batch, d_stride, err)) return 1;
  const int64_t c_stride = p.use_c ? (s.batch > 1 ? s.c_sb : d_stride) : d_stride;
  if (make_layout(&p.c, type, N, M, static_cast<int64_t>(N), s.batch, c_stride, err)) return 1;
  return 0;
}

int heuristic(cublasLtHandle_t lt, const LtPlan& p, std::vector<cublasLtMatmulHeuristicResult_t>* out,
              std::string* err) {
  cublasLtMatmulPreference_t pref = nullptr;
  TP_TRY_CUBLAS(cublasLtMatmulPreferenceCreate(&pref));
  struct PrefGuard {
    cublasLtMatmulPreference_t p;
    ~PrefGuard() { cublasLtMatmulPreferenceDestroy(p); }
  } guard{pref};
  const uint64_t max_ws = kMaxWorkspace;
  TP_TRY_CUBLAS(set_pref(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, max_ws));
  // cuBLASLt's A is our B, its B is our A, its C is our C (or Y), its D is our Y.
  const uint32_t aa = static_cast<uint32_t>(p.align_b), ab = static_cast<uint32_t>(p.align_a);
  const uint32_t ac = static_cast<uint32_t>(p.use_c ? std::min(p.align_c, p.align_d) : p.align_d);
  const uint32_t ad = static_cast<uint32_t>(p.align_d);
  TP_TRY_CUBLAS(set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, aa));
  TP_TRY_CUBLAS(set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, ab));
  TP_TRY_CUBLAS(set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, ac));
  TP_TRY_CUBLAS(set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, ad));
  out->assign(kRequestedAlgos, cublasLtMatmulHeuristicResult_t{});
  int returned = 0;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, p.desc, p.a, p.b, p.c, p.d, pref, kRequestedAlgos,
                                                     out->data(), &returned);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED) returned = 0;  // no algorithm for this configuration: handled by caller
  else if (st != CUBLAS_STATUS_SUCCESS) {
    *err = cublas_message("cublasLtMatmulAlgoGetHeuristic", st);
    return 1;
  }
  out->resize(static_cast<size_t>(std::max(returned, 0)));
  out->erase(std::remove_if(out->begin(), out->end(),
                            [](const cublasLtMatmulHeuristicResult_t& r) {
                              return r.state != CUBLAS_STATUS_SUCCESS || r.workspaceSize > kMaxWorkspace;
                            }),
             out->end());
  return 0;
}

int64_t extent(int64_t batch, int64_t stride, int64_t matrix) { return (batch - 1) * stride + matrix; }

int64_t c_extent(const GemmState& s) {
  return (s.batch - 1) * s.c_sb + (s.M - 1) * s.c_sr + (s.N - 1) * s.c_sc + 1;
}

// Time each candidate of plan `p` on scratch buffers and return the index of the fastest (or -1 with *err).
int time_candidates(Engine& engine, cublasLtHandle_t lt, GemmState& s, LtPlan& p,
                    const std::vector<cublasLtMatmulHeuristicResult_t>& cands, size_t n_time, Layer& layer,
                    int* best, std::string* err) {
  const size_t es = s.esize;
  auto al = [](size_t n) { return (n + 255) / 256 * 256; };
  const size_t a_bytes = static_cast<size_t>(extent(s.batch, s.strideA, s.M * s.K)) * es;
  const size_t b_bytes = static_cast<size_t>(extent(s.batch, s.strideB, s.K * s.N)) * es;
  const size_t y_bytes = static_cast<size_t>(s.batch * s.M * s.N) * es;
  const size_t c_bytes = s.has_c ? static_cast<size_t>(c_extent(s)) * es : 0;
  size_t ws_max = 0;
  for (const auto& c : cands) ws_max = std::max(ws_max, c.workspaceSize);
  void* A = engine.scratch_buffer(0, a_bytes);
  void* B = engine.scratch_buffer(1, b_bytes);
  void* Y = engine.scratch_buffer(2, al(y_bytes) + al(c_bytes) + 256);
  void* W = ws_max ? engine.scratch_buffer(3, ws_max) : nullptr;
  TP_REQUIRE(A && B && Y && (W || !ws_max), std::string("cannot allocate scratch buffers for tactic timing: ") +
                                                tp_last_error());
  void* C = static_cast<char*>(Y) + al(y_bytes);
  if (p.use_bias) TP_TRY_CUBLAS(set_desc(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, static_cast<const void*>(C)));

  cudaStream_t stream = nullptr;
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  TP_TRY_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  struct Cleanup {
    cudaStream_t s;
    cudaEvent_t *a, *b;
    ~Cleanup() {
      if (*a) cudaEventDestroy(*a);
      if (*b) cudaEventDestroy(*b);
      cudaStreamDestroy(s);
    }
  } cleanup{stream, &e0, &e1};
  TP_TRY_CUDA(cudaEventCreate(&e0));
  TP_TRY_CUDA(cudaEventCreate(&e1));
  // Finite, non-zero operands (0x3C3C: 1.06 in float16, 0.0115 in bfloat16 and float32), on the timing stream,
  // which does not order with the legacy stream.
  TP_TRY_CUDA(cudaMemsetAsync(A, 0x3C, a_bytes, stream));
  TP_TRY_CUDA(cudaMemsetAsync(B, 0x3C, b_bytes, stream));
  TP_TRY_CUDA(cudaMemsetAsync(Y, 0x3C, al(y_bytes) + al(c_bytes), stream));

  const float alpha = s.alpha, beta = p.use_c ? s.beta : 0.f;
  const void* Cop = p.use_c ? C : Y;
  float best_ms = std::numeric_limits<float>::infinity();
  *best = -1;
  std::string failures;
  for (size_t i = 0; i < cands.size() && i < n_time; ++i) {
    const std::string name = "lt:" + std::to_string(i);
    auto run = [&]() {
      return cublasLtMatmul(lt, p.desc, &alpha, B, p.a, A, p.b, &beta, Cop, p.c, Y, p.d, &cands[i].algo, W,
                            cands[i].workspaceSize, stream);
    };
    tp_counter_add(TP_COUNTER_TACTICS_TIMED, 1);
    cublasStatus_t st = run();  // warm-up; also rejects candidates that cannot run
    cudaError_t ce = st == CUBLAS_STATUS_SUCCESS ? cudaStreamSynchronize(stream) : cudaSuccess;
    if (st != CUBLAS_STATUS_SUCCESS || ce != cudaSuccess) {
      cudaGetLastError();
      failures += " [" + std::to_string(i) + ": " +
                  (st != CUBLAS_STATUS_SUCCESS ? cublasLtGetStatusName(st) : cudaGetErrorName(ce)) + "]";
      layer.timings.emplace_back(name, std::numeric_limits<double>::infinity());
      continue;
    }
    TP_TRY_CUDA(cudaEventRecord(e0, stream));
    for (int r = 0; r < kTimingReps; ++r) st = run();
    TP_TRY_CUDA(cudaEventRecord(e1, stream));
    ce = cudaEventSynchronize(e1);
    float ms = 0.f;
    if (st != CUBLAS_STATUS_SUCCESS || ce != cudaSuccess || cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess) {
      cudaGetLastError();
      failures += " [" + std::to_string(i) + ": failed while timing]";
      layer.timings.emplace_back(name, std::numeric_limits<double>::infinity());
      continue;
    }
    layer.timings.emplace_back(name, ms / kTimingReps);
    if (ms < best_ms) {
      best_ms = ms;
      *best = static_cast<int>(i);
    }
  }
  TP_REQUIRE(*best >= 0, "no cuBLASLt candidate ran (skipped:" + failures + ")");
  return 0;
}

void gemm_release(Layer& layer) {
  delete static_cast<GemmState*>(layer.state);
  layer.state = nullptr;
}

int gemm_prepare(Engine& engine, Layer& layer, std::string* err) {
  TP_REQUIRE(layer.inputs.size() >= 2 && layer.inputs.size() <= 3 && layer.outputs.size() == 1,
             "expects inputs [A, B, C?] and outputs [Y]");
  TP_REQUIRE(layer.ints.size() == 12 || layer.ints.size() == 13,
             "expects ints [M, N, K, batch, transA, transB, strideA, strideB, act, c_sb, c_sr, c_sc (, math)], got " +
                 std::to_string(layer.ints.size()) + " values");
  TP_REQUIRE(layer.floats.size() == 2, "expects floats [alpha, beta]");
  TP_REQUIRE(layer.inputs[0] >= 0 && layer.inputs[1] >= 0, "A and B are required");
  auto* s = new GemmState();
  layer.state = s;
  const auto& I = layer.ints;
  s->M = I[0];
  s->N = I[1];
  s->K = I[2];
  s->batch = I[3];
  TP_REQUIRE((I[4] == 0 || I[4] == 1) && (I[5] == 0 || I[5] == 1), "transA and transB must be 0 or 1");
  s->transA = I[4] != 0;
  s->transB = I[5] != 0;
  s->strideA = I[6];
  s->strideB = I[7];
  s->act = static_cast<int>(I[8]);
  s->c_sb = I[9];
  s->c_sr = I[10];
  s->c_sc = I[11];
  TP_REQUIRE(I.size() == 12 || I[12] == 0 || I[12] == 1, "math must be 0 or 1");
  s->alpha = static_cast<float>(layer.floats[0]);
  s->beta = static_cast<float>(layer.floats[1]);
  s->has_c = layer.inputs.size() == 3 && layer.inputs[2] >= 0;
  TP_REQUIRE(s->M >= 0 && s->N >= 0 && s->K >= 0 && s->batch >= 0, "M, N, K and batch must be >= 0");
  TP_REQUIRE(s->strideA >= 0 && s->strideB >= 0 && s->c_sb >= 0 && s->c_sr >= 0 && s->c_sc >= 0,
             "strides must be >= 0");
  TP_REQUIRE(s->act >= kActNone && s->act <= kActGeluTanh, "act must be 0 (none), 1 (relu), 2 (gelu), 3 (gelu_tanh)");
  const TensorDesc& A = engine.tensor(layer.inputs[0]);
  const TensorDesc& B = engine.tensor(layer.inputs[1]);
  const TensorDesc& Y = engine.tensor(layer.outputs[0]);
  s->dtype = Y.dtype;
  TP_REQUIRE(s->dtype == 1 || s->dtype == 10 || s->dtype == 16,
             "Y must be float32, float16 or bfloat16, got ONNX type " + std::to_string(s->dtype));
  s->tf32 = s->dtype == 1 && I.size() == 13 && I[12] == 1;
  TP_REQUIRE(A.dtype == s->dtype && B.dtype == s->dtype, "A, B and Y must have the same dtype");
  s->esize = dtype_size(s->dtype);
  TP_REQUIRE(Y.numel() == s->batch * s->M * s->N,
             "Y '" + Y.name + "' has " + std::to_string(Y.numel()) + " elements, expected batch*M*N = " +
                 std::to_string(s->batch * s->M * s->N));
  layer.workspace = 0;
  if (s->batch == 0 || s->M == 0 || s->N == 0) {
    s->mode = Mode::Empty;
    layer.tactic = 0;
    return 0;
  }
  TP_REQUIRE(s->batch <= std::numeric_limits<int32_t>::max(), "batch exceeds the cuBLASLt limit");
  if (s->has_c) {
    const TensorDesc& C = engine.tensor(layer.inputs[2]);
    TP_REQUIRE(C.dtype == s->dtype, "C must have the dtype of Y");
    TP_REQUIRE(C.numel() >= c_extent(*s), "C '" + C.name + "' has " + std::to_string(C.numel()) +
                                              " elements, the strides address " + std::to_string(c_extent(*s)));
  }
  if (s->K == 0) {
    s->mode = Mode::ZeroK;  // alpha * A @ B is all zeros
    layer.tactic = 0;
    return 0;
  }
  TP_REQUIRE(A.numel() >= extent(s->batch, s->strideA, s->M * s->K),
             "A '" + A.name + "' has " + std::to_string(A.numel()) + " elements, the layout addresses " +
                 std::to_string(extent(s->batch, s->strideA, s->M * s->K)));
  TP_REQUIRE(B.numel() >= extent(s->batch, s->strideB, s->K * s->N),
             "B '" + B.name + "' has " + std::to_string(B.numel()) + " elements, the layout addresses " +
                 std::to_string(extent(s->batch, s->strideB, s->K * s->N)));
  s->mode = Mode::Lt;

  cublasLtHandle_t lt = nullptr;
  if (engine.handles().cublaslt(&lt, err)) return 1;
  const int64_t es = static_cast<int64_t>(s->esize);

  // ---- primary plan -------------------------------------------------------------------------------------
  LtPlan& p = s->primary;
  // cuBLASLt's GELU epilogue is the tanh form: exact for act 3, within float16/bfloat16 resolution for act 2.
  const bool lt_gelu = s->act == kActGeluTanh || (s->act == kActGelu && s->dtype != 1);
  const bool gelu = (s->act == kActGelu || s->act == kActGeluTanh) && !lt_gelu;
  const bool bias_like = s->has_c && s->c_sb == 0 && s->c_sr == 0 && s->c_sc == 1 && s->beta == 1.f;
  const bool matrix_like =
      s->has_c && s->c_sc == 1 && s->c_sr == s->N && (s->c_sb == s->M * s->N || s->batch == 1) && s->act == kActNone;
  cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
  if (!s->has_c) {
    epi = s->act == kActRelu ? CUBLASLT_EPILOGUE_RELU : (lt_gelu ? CUBLASLT_EPILOGUE_GELU : CUBLASLT_EPILOGUE_DEFAULT);
    p.own_act = gelu ? s->act : kActNone;
  } else if (bias_like) {
    p.use_bias = true;
    epi = s->act == kActRelu ? CUBLASLT_EPILOGUE_RELU_BIAS
                             : (lt_gelu ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_BIAS);
    p.own_act = gelu ? s->act : kActNone;
  } else if (matrix_like) {
    p.use_c = true;
  } else {
    p.own_add = true;
    p.own_act = s->act;
  }
  p.align_a = s->batch > 1 ? pow2_alignment(s->strideA * es) : 256;
  p.align_b = s->batch > 1 ? pow2_alignment(s->strideB * es) : 256;
  p.align_d = s->batch > 1 ? pow2_alignment(s->M * s->N * es) : 256;
  p.align_c = p.use_c && s->batch > 1 ? pow2_alignment(s->c_sb * es) : 256;
  p.align_bias = 256;
  // The heuristic reads the bias pointer's alignment: show it a 256-aligned address (a scratch buffer).
  void* probe = p.use_bias ? engine.scratch_buffer(2, 256) : nullptr;
  TP_REQUIRE(!p.use_bias || probe != nullptr, "cannot allocate a scratch buffer");
  if (build_plan(*s, p, epi, probe, err)) return 1;
  std::vector<cublasLtMatmulHeuristicResult_t> cands;
  if (heuristic(lt, p, &cands, err)) return 1;

  // ---- fallback plan: element alignment only, epilogue in our kernel ------------------------------------
  LtPlan& f = s->fallback;
  f.own_add = s->has_c;
  f.own_act = s->act;
  f.align_a = f.align_b = f.align_c = f.align_d = f.align_bias = s->esize;
  if (build_plan(*s, f, CUBLASLT_EPILOGUE_DEFAULT, nullptr, err)) return 1;
  std::vector<cublasLtMatmulHeuristicResult_t> fcands;
  if (heuristic(lt, f, &fcands, err)) return 1;
  if (!fcands.empty()) {
    f.algo = fcands[0].algo;
    f.ws = fcands[0].workspaceSize;
    f.ready = true;
  }

  if (cands.empty()) {
    // No candidate for the fused plan: run everything through the fallback plan.
    TP_REQUIRE(f.ready, "cuBLASLt has no algorithm for M=" + std::to_string(s->M) + " N=" + std::to_string(s->N) +
                            " K=" + std::to_string(s->K) + " batch=" + std::to_string(s->batch) +
                            " (ONNX dtype " + std::to_string(s->dtype) + ")");
    p.destroy();
    layer.tactic = 0;
    layer.tactic_name = "lt-fallback";
    layer.workspace = f.ws;
    return 0;
  }
  int chosen = static_cast<int>(layer.tactic);
  if (!layer.tactic_name.empty()) {
    chosen = -1;
    if (layer.tactic_name.compare(0, 3, "lt:") == 0) {
      try {
        chosen = std::stoi(layer.tactic_name.substr(3));
      } catch (...) {
        chosen = -1;
      }
    }
  }
  if (chosen < 0 || chosen >= static_cast<int>(cands.size())) {
    // No (or a stale) tactic: the heuristic's first, or the fastest of the first few.
    const int n_time = candidates_to_time(engine.tuning_level(), static_cast<int>(cands.size()));
    if (n_time <= 1) {
      chosen = 0;
    } else if (time_candidates(engine, lt, *s, p, cands, static_cast<size_t>(n_time), layer, &chosen, err)) {
      return 1;
    }
  }
  p.algo = cands[static_cast<size_t>(chosen)].algo;
  p.ws = cands[static_cast<size_t>(chosen)].workspaceSize;
  p.ready = true;
  layer.tactic = chosen;
  layer.tactic_name = "lt:" + std::to_string(chosen);
  layer.workspace = std::max(p.ws, f.ready ? f.ws : 0);
  return 0;
}

int gemm_launch(const Engine& engine, const Layer& layer, const void* const* in, void* const* out,
                const LaunchContext& ctx, std::string* err) {
  auto* s = static_cast<GemmState*>(layer.state);
  if (s->mode == Mode::Empty) return 0;
  const void* A = in[0];
  const void* B = in[1];
  const void* C = s->has_c ? in[2] : nullptr;
  void* Y = out[0];
  EpilogueArgs e;
  e.y = Y;
  e.dtype = s->dtype;
  e.batch = s->batch;
  e.rows = s->M;
  e.cols = s->N;
  if (s->mode == Mode::ZeroK) {
    TP_TRY_CUDA(cudaMemsetAsync(Y, 0, static_cast<size_t>(s->batch * s->M * s->N) * s->esize, ctx.stream));
    if (s->has_c || s->act != kActNone) {
      e.add = C;
      e.add_sb = s->c_sb;
      e.add_sr = s->c_sr;
      e.add_sc = s->c_sc;
      e.add_scale = s->beta;
      e.act = s->act;
      TP_TRY_CUDA(launch_epilogue(e, ctx.stream));
    }
    return 0;
  }
  LtPlan* p = &s->primary;
  bool ok = p->ready && aligned(A, p->align_a) && aligned(B, p->align_b) && aligned(Y, p->align_d) &&
            (!p->use_c || aligned(C, p->align_c)) && (!p->use_bias || aligned(C, p->align_bias));
  if (!ok) p = &s->fallback;
  TP_REQUIRE(p->ready, "operand pointers are less aligned than the cuBLASLt plan needs and no fallback plan exists");
  TP_REQUIRE(p->ws <= ctx.workspace_bytes, "workspace smaller than the plan needs");
  cublasLtHandle_t lt = nullptr;
  if (engine.handles().cublaslt(&lt, err)) return 1;
  if (p->use_bias) TP_TRY_CUBLAS(set_desc(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, C));
  const float alpha = s->alpha, beta = p->use_c ? s->beta : 0.f;
  TP_TRY_CUBLAS(cublasLtMatmul(lt, p->desc, &alpha, B, p->a, A, p->b, &beta, p->use_c ? C : Y, p->c, Y, p->d,
                               &p->algo, p->ws ? ctx.workspace : nullptr, p->ws, ctx.stream));
  if (p->own_add || p->own_act != kActNone) {
    if (p->own_add) {
      e.add = C;
      e.add_sb = s->c_sb;
      e.add_sr = s->c_sr;
      e.add_sc = s->c_sc;
      e.add_scale = s->beta;
    }
    e.act = p->own_act;
    TP_TRY_CUDA(launch_epilogue(e, ctx.stream));
  }
  return 0;
}

const KernelDef kGemm = {"gemm", gemm_prepare, gemm_launch, gemm_release};
TP_REGISTER_KERNEL(kGemm);

}  // namespace
}  // namespace tp
