// Kernel "qgemm": the quantized matrix product of ep_trtpy::QMatMul (INT8 through cuBLASLt's IMMA kernels, FP8 E4M3
// through its FP8 kernels, our SIMT kernel where cuBLASLt has no plan), then our epilogue kernel.
//
//   acc[m, n] = sum_k A[m, k] * B[n, k]                  int32 (int8), float32 (fp8)
//   Y[m, n]   = epilogue(acc[m, n])                      tp/qgemm_kernels.h: + bias_i32, * scale, * alpha,
//                                                        + bias_f, activation, float or requantized store
//
// Parameter layout (written by ep_trtpy/builder/lowering/quantize.py, lower_qmatmul):
//   inputs  [A, B, scale, bias_i32 or -1, bias_f or -1]
//             A         [M, K] row-major: int8, uint8 (read as int8 a - 128: the lowering has folded the shift into
//                       bias_i32) or float8e4m3fn
//             B         [N, K] row-major ("transB" order, as the tensor cores read it), int8 with int8/uint8 A,
//                       float8e4m3fn with float8e4m3fn A; the lowering stores B - b_zero_point
//             scale     float32 [N]: float32(a_scale * b_scale[n])
//             bias_i32  int32 [N]: the int32 bias and the zero-point terms, added to the accumulator
//             bias_f    float32 [N]: the float bias, added after scaling
//   outputs [Y]         [M, N] row-major: float32, float16, int8, uint8 or float8e4m3fn
//   ints    [M, N, K, act, y_zero_point]       act: 0 none, 1 relu, 2 gelu (erf), 3 gelu (tanh)
//   floats  [alpha, y_scale]                   y_scale is read only for int8/uint8/float8e4m3fn outputs
//   tactic  "lt:<i>" (the i-th cuBLASLt heuristic candidate) or "simt" (our kernel); none: lt:0 at tuning level 0,
//           else the fastest of candidates_to_time(level) candidates and simt. workspace: the accumulator
//           (M*N*4 bytes), A re-centred (uint8 A), cuBLASLt's workspace.
//
// Which cuBLASLt combination, and why (cuBLAS documentation, cublasLtMatmul(), "Datatypes Supported" table and the
// IMMA and FP8 requirement lists; the attribute comments of cublasLt.h in the nvidia-cublas wheel):
// * INT8: computeType CUBLAS_COMPUTE_32I, scaleType CUDA_R_32I, A/B CUDA_R_8I, C/D CUDA_R_32I, alpha 1, beta 0,
//   host pointer mode. The documented combination with an int32 D; the other int8 rows (scaleType CUDA_R_32F with
//   an int8 D, or CUBLASLT_POINTER_MODE_ALPHA_DEVICE_VECTOR_BETA_ZERO for a per-row alpha vector) fuse the scaling,
//   but cuBLASLt would round `acc * alpha` its own way and take its int32 bias as float (cublasLt.h,
//   CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: "IMMA kernels with computeType=CUDA_R_32I and Ctype=CUDA_R_8I: bias of the
//   scale type"), which cannot reproduce the reference's float32(acc + bias) * scale bit for bit. Our epilogue kernel
//   reads the int32 accumulator once instead (M*N*8 more bytes of traffic).
// * FP8: computeType CUBLAS_COMPUTE_32F, scaleType CUDA_R_32F, A/B CUDA_R_8F_E4M3, C/D CUDA_R_32F, no
//   A/B_SCALE_POINTER (scale 1: cublasLt.h says an unset scale pointer means 1), fast accumulation off (the
//   default of CUBLASLT_MATMUL_DESC_FAST_ACCUM). The scales are applied by our epilogue, as for INT8.
// * Layout: both IMMA (regular column ordering) and FP8 on sm_90 take only the "TN" form: cuBLASLt's A transposed,
//   its B not. Row-major Y = A B^T is the column-major Y^T (N x M, ld N) = B (op T of K x N, ld K) * A^T (K x M,
//   ld K), so B stored row-major [N, K] is cuBLASLt's transposed A and A row-major [M, K] its plain B.
// * Alignment: IMMA wants leading dimensions and cuBLASLt's m and k in multiples of 4, FP8 16-byte aligned
//   leading dimensions and pointers. cuBLASLt is asked only when K and N are multiples of 16 (covers both), with a
//   minimum alignment of 16 bytes; a launch whose A or B pointer is less aligned, and every other shape, runs
//   the SIMT kernel (always correct, slower).
#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "kernel_util.h"
#include "tactics.h"
#include "tp/engine.h"
#include "tp/library_support.h"
#include "tp/qgemm_kernels.h"

namespace tp {
namespace {
using namespace ::tp::lib;  // NOLINT: this file's helpers

constexpr size_t kMaxLtWorkspace = size_t(32) << 20;
constexpr int kRequestedAlgos = 8;
constexpr int kUint8 = 2, kInt8 = 3, kInt32 = 6, kFloat = 1, kHalf = 10, kFp8 = 17;
constexpr size_t kLtAlign = 16;

size_t round_up(size_t n) { return (n + 255) / 256 * 256; }
bool aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % kLtAlign == 0; }

struct QgemmState {
  int64_t M = 0, N = 0, K = 0;
  bool fp8 = false, flip = false;
  QEpilogueArgs epi;
  // The cuBLASLt plan and its candidates; chosen: the candidate launched, -1 for the SIMT kernel.
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
  std::vector<cublasLtMatmulHeuristicResult_t> cands;
  int chosen = -1;
  size_t acc_bytes = 0, flip_bytes = 0;
  ~QgemmState() {
    if (desc) cublasLtMatmulDescDestroy(desc);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (ld) cublasLtMatrixLayoutDestroy(ld);
  }
};

template <typename T>
cublasStatus_t set_desc(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const T& v) {
  return cublasLtMatmulDescSetAttribute(d, attr, &v, sizeof(v));
}

// Descriptors of the TN product and the heuristic's candidates (none: the shape has no cuBLASLt plan).
int lt_candidates(cublasLtHandle_t lt, QgemmState& s, std::string* err) {
  const cudaDataType_t in_t = s.fp8 ? CUDA_R_8F_E4M3 : CUDA_R_8I;
  const cudaDataType_t acc_t = s.fp8 ? CUDA_R_32F : CUDA_R_32I;
  TP_TRY_CUBLAS(cublasLtMatmulDescCreate(&s.desc, s.fp8 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32I, acc_t));
  const int32_t op_t = CUBLAS_OP_T, op_n = CUBLAS_OP_N;
  TP_TRY_CUBLAS(set_desc(s.desc, CUBLASLT_MATMUL_DESC_TRANSA, op_t));
  TP_TRY_CUBLAS(set_desc(s.desc, CUBLASLT_MATMUL_DESC_TRANSB, op_n));
  const uint64_t M = static_cast<uint64_t>(s.M), N = static_cast<uint64_t>(s.N), K = static_cast<uint64_t>(s.K);
  TP_TRY_CUBLAS(cublasLtMatrixLayoutCreate(&s.la, in_t, K, N, static_cast<int64_t>(K)));  // our B, transposed
  TP_TRY_CUBLAS(cublasLtMatrixLayoutCreate(&s.lb, in_t, K, M, static_cast<int64_t>(K)));  // our A
  TP_TRY_CUBLAS(cublasLtMatrixLayoutCreate(&s.ld, acc_t, N, M, static_cast<int64_t>(N)));  // acc^T
  cublasLtMatmulPreference_t pref = nullptr;
  TP_TRY_CUBLAS(cublasLtMatmulPreferenceCreate(&pref));
  struct PrefGuard {
    cublasLtMatmulPreference_t p;
    ~PrefGuard() { cublasLtMatmulPreferenceDestroy(p); }
  } guard{pref};
  const uint64_t max_ws = kMaxLtWorkspace;
  TP_TRY_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_ws,
                                                     sizeof(max_ws)));
  const uint32_t align = kLtAlign;
  for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    TP_TRY_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, attr, &align, sizeof(align)));
  s.cands.assign(kRequestedAlgos, cublasLtMatmulHeuristicResult_t{});
  int returned = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, s.desc, s.la, s.lb, s.ld, s.ld, pref,
                                                           kRequestedAlgos, s.cands.data(), &returned);
  if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED) {
    *err = cublas_message("cublasLtMatmulAlgoGetHeuristic", st);
    return 1;
  }
  s.cands.resize(st == CUBLAS_STATUS_SUCCESS ? static_cast<size_t>(std::max(returned, 0)) : 0);
  s.cands.erase(std::remove_if(s.cands.begin(), s.cands.end(),
                               [](const cublasLtMatmulHeuristicResult_t& r) {
                                 return r.state != CUBLAS_STATUS_SUCCESS || r.workspaceSize > kMaxLtWorkspace;
                               }),
                s.cands.end());
  return 0;
}

// Enqueue acc = A B^T with candidate `i` (-1: the SIMT kernel). Returns 0, or 1 with *err.
int run_product(cublasLtHandle_t lt, const QgemmState& s, int i, const void* a, const void* b, void* acc, void* ws,
                cudaStream_t stream, std::string* err) {
  if (i < 0) {
    TP_TRY_CUDA(launch_qgemm_simt(a, b, acc, s.M, s.N, s.K, s.fp8, stream));
    return 0;
  }
  const auto& c = s.cands[static_cast<size_t>(i)];
  const int32_t ione = 1, izero = 0;
  const float fone = 1.f, fzero = 0.f;
  const void* alpha = s.fp8 ? static_cast<const void*>(&fone) : static_cast<const void*>(&ione);
  const void* beta = s.fp8 ? static_cast<const void*>(&fzero) : static_cast<const void*>(&izero);
  TP_TRY_CUBLAS(cublasLtMatmul(lt, s.desc, alpha, b, s.la, a, s.lb, beta, acc, s.ld, acc, s.ld, &c.algo,
                               c.workspaceSize ? ws : nullptr, c.workspaceSize, stream));
  return 0;
}

// The index of the fastest of the first `n_lt` candidates and the SIMT kernel (-1), timed on scratch buffers.
int time_tactics(Engine& engine, cublasLtHandle_t lt, QgemmState& s, int n_lt, Layer& layer, int* best,
                 std::string* err) {
  const size_t a_bytes = static_cast<size_t>(s.M * s.K), b_bytes = static_cast<size_t>(s.N * s.K);
  size_t ws_max = 0;
  for (int i = 0; i < n_lt; ++i) ws_max = std::max(ws_max, s.cands[static_cast<size_t>(i)].workspaceSize);
  void* A = engine.scratch_buffer(0, a_bytes);
  void* B = engine.scratch_buffer(1, b_bytes);
  void* C = engine.scratch_buffer(2, s.acc_bytes);
  void* W = ws_max ? engine.scratch_buffer(3, ws_max) : nullptr;
  TP_REQUIRE(A && B && C && (W || !ws_max),
             "qgemm: cannot allocate scratch buffers for tactic timing: " + std::string(tp_last_error()));
  CandidateTimer timer;
  if (timer.init(err)) return 1;
  // 0x38 is 1.0 in float8e4m3fn and 56 in int8: finite, and int32 sums stay far from overflow.
  TP_TRY_CUDA(cudaMemsetAsync(A, 0x38, a_bytes, timer.stream()));
  TP_TRY_CUDA(cudaMemsetAsync(B, 0x38, b_bytes, timer.stream()));
  double best_ms = std::numeric_limits<double>::infinity();
  *best = -2;
  for (int i = -1; i < n_lt; ++i) {
    std::string ignored;
    const double ms = timer.time([&](cudaStream_t st) { return run_product(lt, s, i, A, B, C, W, st, &ignored); });
    layer.timings.emplace_back(i < 0 ? "simt" : "lt:" + std::to_string(i), ms);
    if (ms < best_ms) {
      best_ms = ms;
      *best = i;
    }
  }
  TP_REQUIRE(*best >= -1, "qgemm: no tactic ran (neither cuBLASLt's candidates nor the SIMT kernel)");
  return 0;
}

void qgemm_release(Layer& layer) {
  delete static_cast<QgemmState*>(layer.state);
  layer.state = nullptr;
}

int qgemm_prepare(Engine& engine, Layer& layer, std::string* err) {
  using kutil::dtype_name;
  if (!kutil::check_arity(layer, "qgemm", 3, 5, 1, err)) return 1;
  kutil::IntReader r(layer.ints, "qgemm");
  auto* s = new QgemmState();
  layer.state = s;
  s->M = r.next_in("M", 0, std::numeric_limits<int32_t>::max());
  s->N = r.next_in("N", 0, std::numeric_limits<int32_t>::max());
  s->K = r.next_in("K", 0, std::numeric_limits<int32_t>::max());
  const int act = static_cast<int>(r.next_in("act", 0, 3));
  const int y_zero = static_cast<int>(r.next_in("y_zero_point", -128, 255));
  if (!r.ok() || !r.done()) return kutil::fail(err, r.error());
  TP_REQUIRE(layer.floats.size() == 2, "qgemm expects floats [alpha, y_scale], got " +
                                           std::to_string(layer.floats.size()) + " values");
  const TensorDesc& A = kutil::in_tensor(engine, layer, 0);
  const TensorDesc& B = kutil::in_tensor(engine, layer, 1);
  const TensorDesc& S = kutil::in_tensor(engine, layer, 2);
  const TensorDesc& Y = kutil::out_tensor(engine, layer, 0);
  TP_REQUIRE(kutil::dtype_in(A.dtype, {kInt8, kUint8, kFp8}),
             "qgemm: A '" + A.name + "' is " + dtype_name(A.dtype) + "; int8, uint8 or float8e4m3fn expected");
  s->fp8 = A.dtype == kFp8;
  s->flip = A.dtype == kUint8;
  TP_REQUIRE(B.dtype == (s->fp8 ? kFp8 : kInt8), "qgemm: B '" + B.name + "' is " + dtype_name(B.dtype) + "; " +
                                                    (s->fp8 ? "float8e4m3fn" : "int8") + " expected with A " +
                                                    dtype_name(A.dtype));
  TP_REQUIRE(A.numel() == s->M * s->K, "qgemm: A '" + A.name + "' has " + std::to_string(A.numel()) +
                                           " elements, M*K = " + std::to_string(s->M * s->K) + " expected");
  TP_REQUIRE(B.numel() == s->N * s->K, "qgemm: B '" + B.name + "' has " + std::to_string(B.numel()) +
                                           " elements, N*K = " + std::to_string(s->N * s->K) + " expected");
  TP_REQUIRE(S.dtype == kFloat && S.numel() == s->N,
             "qgemm: scale '" + S.name + "' must be float32 [N] with N = " + std::to_string(s->N));
  for (size_t i = 3; i < layer.inputs.size(); ++i) {
    if (layer.inputs[i] < 0) continue;
    const TensorDesc& T = kutil::in_tensor(engine, layer, i);
    const int want = i == 3 ? kInt32 : kFloat;
    TP_REQUIRE(T.dtype == want && T.numel() == s->N, "qgemm: " + std::string(i == 3 ? "bias_i32" : "bias_f") +
                                                         " '" + T.name + "' must be " + dtype_name(want) +
                                                         " [N] with N = " + std::to_string(s->N));
  }
  TP_REQUIRE(kutil::dtype_in(Y.dtype, {kFloat, kHalf, kInt8, kUint8, kFp8}),
             "qgemm: Y '" + Y.name + "' is " + dtype_name(Y.dtype) +
                 "; float32, float16, int8, uint8 or float8e4m3fn expected");
  TP_REQUIRE(Y.numel() == s->M * s->N, "qgemm: Y '" + Y.name + "' has " + std::to_string(Y.numel()) +
                                           " elements, M*N = " + std::to_string(s->M * s->N) + " expected");
  const bool quantized = Y.dtype == kInt8 || Y.dtype == kUint8 || Y.dtype == kFp8;
  const float y_scale = static_cast<float>(layer.floats[1]);
  TP_REQUIRE(!quantized || (y_scale > 0.f && y_scale < std::numeric_limits<float>::infinity()),
             "qgemm: y_scale " + std::to_string(y_scale) + " must be finite and positive for a quantized Y");
  TP_REQUIRE(Y.dtype != kFp8 || y_zero == 0, "qgemm: a float8e4m3fn Y has zero point 0, got " +
                                                 std::to_string(y_zero));
  s->epi.acc_float = s->fp8;
  s->epi.y_dtype = Y.dtype;
  s->epi.rows = s->M;
  s->epi.cols = s->N;
  s->epi.alpha = static_cast<float>(layer.floats[0]);
  s->epi.act = act;
  s->epi.y_scale = quantized ? y_scale : 1.f;
  s->epi.y_zero = y_zero;
  s->acc_bytes = round_up(static_cast<size_t>(s->M * s->N) * 4);
  s->flip_bytes = s->flip ? round_up(static_cast<size_t>(s->M * s->K)) : 0;
  layer.workspace = s->acc_bytes + s->flip_bytes;
  if (s->M == 0 || s->N == 0 || s->K == 0) {
    layer.tactic = -1;
    layer.tactic_name = "simt";  // K = 0: the SIMT kernel writes the zero accumulator
    return 0;
  }

  cublasLtHandle_t lt = nullptr;
  if (engine.handles().cublaslt(&lt, err)) return 1;
  if (s->K % 16 == 0 && s->N % 16 == 0 && lt_candidates(lt, *s, err)) return 1;
  const int n = static_cast<int>(s->cands.size());
  int chosen = -2;  // -1: simt
  if (layer.tactic_name == "simt") chosen = -1;
  else if (layer.tactic_name.compare(0, 3, "lt:") == 0) {
    try {
      chosen = std::stoi(layer.tactic_name.substr(3));
    } catch (...) {
      chosen = -2;
    }
    if (chosen < 0 || chosen >= n) chosen = -2;  // a stale tactic: choose again
  }
  if (chosen == -2) {
    const int n_time = candidates_to_time(engine.tuning_level(), n);
    if (n == 0) chosen = -1;
    else if (engine.tuning_level() <= 0) chosen = 0;
    else if (time_tactics(engine, lt, *s, std::max(n_time, 1), layer, &chosen, err)) return 1;
  }
  s->chosen = chosen;
  layer.tactic = chosen;
  layer.tactic_name = chosen < 0 ? "simt" : "lt:" + std::to_string(chosen);
  if (chosen >= 0) layer.workspace += s->cands[static_cast<size_t>(chosen)].workspaceSize;
  return 0;
}

int qgemm_launch(const Engine& engine, const Layer& layer, const void* const* in, void* const* out,
                 const LaunchContext& ctx, std::string* err) {
  auto* s = static_cast<QgemmState*>(layer.state);
  if (s->M == 0 || s->N == 0) return 0;
  TP_REQUIRE(ctx.workspace_bytes >= layer.workspace, "qgemm: the workspace is smaller than the layer needs");
  char* ws = static_cast<char*>(ctx.workspace);
  void* acc = ws;
  const void* a = in[0];
  if (s->flip) {
    TP_TRY_CUDA(launch_flip_u8(in[0], ws + s->acc_bytes, s->M * s->K, ctx.stream));
    a = ws + s->acc_bytes;
  }
  // A view at an odd offset cannot take the plan's 16-byte alignment: the SIMT kernel serves that launch.
  const int tactic = s->chosen >= 0 && aligned(a) && aligned(in[1]) ? s->chosen : -1;
  cublasLtHandle_t lt = nullptr;
  if (tactic >= 0 && engine.handles().cublaslt(&lt, err)) return 1;
  if (run_product(lt, *s, tactic, a, in[1], acc, ws + s->acc_bytes + s->flip_bytes, ctx.stream, err)) return 1;
  QEpilogueArgs e = s->epi;
  e.acc = acc;
  e.y = out[0];
  e.scale = static_cast<const float*>(in[2]);
  e.bias_i32 = layer.inputs.size() > 3 ? static_cast<const int32_t*>(in[3]) : nullptr;
  e.bias_f = layer.inputs.size() > 4 ? static_cast<const float*>(in[4]) : nullptr;
  TP_TRY_CUDA(launch_qgemm_epilogue(e, ctx.stream));
  return 0;
}

const KernelDef kQgemm = {"qgemm", qgemm_prepare, qgemm_launch, qgemm_release};
TP_REGISTER_KERNEL(kQgemm);

}  // namespace
}  // namespace tp
