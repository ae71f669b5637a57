// Device probe (not part of the library): what cuDNN's graph API and cuBLASLt offer on this GPU for the layers of
// ResNet-50, MobileNetV2 and BERT-base, and how fast each candidate runs. Built and run by hand on the GPU machine:
//
//   nvcc -std=c++17 -O2 -arch=sm_90 -I<frontend include> -I<cudnn include> -I<cublas include> probe_fusion.cpp \
//        -L<cudnn lib> -L<cublas lib> -lcudnn -lcublasLt -o probe && ./probe [conv|sdpa|gemm]...
//
// Prints one line per (case, candidate): plan name, behaviour notes, build ms, run us. Timing: 3 warm-up runs,
// then the mean of 20 runs between CUDA events, on random data (never zeros).
#include <cublasLt.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <cudnn_frontend.h>

namespace fe = cudnn_frontend;

#define CK(x)                                                                                    \
  do {                                                                                           \
    cudaError_t e_ = (x);                                                                        \
    if (e_ != cudaSuccess) {                                                                     \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__);      \
      std::exit(1);                                                                              \
    }                                                                                            \
  } while (0)

static double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

static void* dev_random_half(size_t n, unsigned seed, float scale = 1.f) {
  std::vector<__half> h(n);
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  for (auto& v : h) v = __float2half(d(rng));
  void* p = nullptr;
  CK(cudaMalloc(&p, n * 2 + 256));
  CK(cudaMemcpy(p, h.data(), n * 2, cudaMemcpyHostToDevice));
  return p;
}

template <typename F>
static double time_us(F run, cudaStream_t s, int iters = 20) {
  for (int i = 0; i < 3; ++i)
    if (!run()) return -1;
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  cudaEventRecord(a, s);
  for (int i = 0; i < iters; ++i) run();
  cudaEventRecord(b, s);
  cudaEventSynchronize(b);
  float ms = 0;
  cudaEventElapsedTime(&ms, a, b);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  if (cudaGetLastError() != cudaSuccess) return -1;
  return ms * 1000.0 / iters;
}

static std::string notes_str(const std::vector<fe::BehaviorNote_t>& notes) {
  std::string s;
  for (auto n : notes) {
    if (n == fe::BehaviorNote_t::RUNTIME_COMPILATION) s += "RTC ";
    if (n == fe::BehaviorNote_t::SUPPORTS_CUDA_GRAPH_NATIVE_API) s += "GRAPH ";
    if (n == fe::BehaviorNote_t::CUBLASLT_DEPENDENCY) s += "LT ";
  }
  return s;
}

// ------------------------------------------------------------------------------------------------ conv ----
struct ConvCase {
  const char* name;
  int64_t c, h, w, k, r, stride, pad, group;
};

// epi: 0 conv only, 1 +bias+relu, 2 +bias+residual+relu, 3 +bias+relu6, 4 +bias+swish,
//      5 +bias+swish+residual (the residual after the activation: a CSP bottleneck's shortcut)
static void probe_conv(cudnnHandle_t h, cudaStream_t s, int64_t n, const ConvCase& cc, int epi, int max_plans,
                       double* best_us) {
  const int64_t C = cc.c, H = cc.h, W = cc.w, K = cc.k, R = cc.r, Cg = cc.c / cc.group;
  const int64_t P = (H + 2 * cc.pad - R) / cc.stride + 1, Q = (W + 2 * cc.pad - R) / cc.stride + 1;
  fe::graph::Graph g;
  g.set_io_data_type(fe::DataType_t::HALF)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  auto X = g.tensor(fe::graph::Tensor_attributes().set_name("X").set_uid(1).set_dim({n, C, H, W}).set_stride(
      {C * H * W, 1, W * C, C}));
  auto Wt = g.tensor(fe::graph::Tensor_attributes().set_name("W").set_uid(2).set_dim({K, Cg, R, R}).set_stride(
      {Cg * R * R, 1, R * Cg, Cg}));
  auto Y = g.conv_fprop(X, Wt,
                        fe::graph::Conv_fprop_attributes()
                            .set_padding({cc.pad, cc.pad})
                            .set_stride({cc.stride, cc.stride})
                            .set_dilation({1, 1}));
  auto out = Y;
  std::shared_ptr<fe::graph::Tensor_attributes> B, Z;
  if (epi >= 1) {
    B = g.tensor(fe::graph::Tensor_attributes().set_name("B").set_uid(3).set_dim({1, K, 1, 1}).set_stride(
        {K, 1, K, K}));
    out = g.pointwise(out, B, fe::graph::Pointwise_attributes().set_mode(fe::PointwiseMode_t::ADD));
    if (epi == 2) {
      Z = g.tensor(fe::graph::Tensor_attributes().set_name("Z").set_uid(4).set_dim({n, K, P, Q}).set_stride(
          {K * P * Q, 1, Q * K, K}));
      out = g.pointwise(out, Z, fe::graph::Pointwise_attributes().set_mode(fe::PointwiseMode_t::ADD));
    }
    if (epi == 1 || epi == 2)
      out = g.pointwise(out, fe::graph::Pointwise_attributes().set_mode(fe::PointwiseMode_t::RELU_FWD));
    if (epi == 3)
      out = g.pointwise(out, fe::graph::Pointwise_attributes()
                                 .set_mode(fe::PointwiseMode_t::RELU_FWD)
                                 .set_relu_lower_clip(0.f)
                                 .set_relu_upper_clip(6.f));
    if (epi == 4 || epi == 5)
      out = g.pointwise(out, fe::graph::Pointwise_attributes().set_mode(fe::PointwiseMode_t::SWISH_FWD).set_swish_beta(1.f));
    if (epi == 5) {
      Z = g.tensor(fe::graph::Tensor_attributes().set_name("Z").set_uid(4).set_dim({n, K, P, Q}).set_stride(
          {K * P * Q, 1, Q * K, K}));
      out = g.pointwise(out, Z, fe::graph::Pointwise_attributes().set_mode(fe::PointwiseMode_t::ADD));
    }
  }
  out->set_output(true).set_uid(5).set_dim({n, K, P, Q}).set_stride({K * P * Q, 1, Q * K, K});
  char label[256];
  std::snprintf(label, sizeof label, "conv %-10s n=%-3lld epi=%d", cc.name, (long long)n, epi);
  auto st = g.validate();
  if (st.is_good()) st = g.build_operation_graph(h);
  if (st.is_good()) st = g.create_execution_plans({fe::HeurMode_t::A, fe::HeurMode_t::FALLBACK});
  if (!st.is_good()) {
    std::printf("%s: graph not supported: %s\n", label, st.get_message().c_str());
    return;
  }
  g.check_support();
  const int64_t count = g.get_execution_plan_count();
  void* x = dev_random_half(n * C * H * W, 1);
  void* w = dev_random_half(K * Cg * R * R, 2, 0.1f);
  void* b = dev_random_half(K, 3);
  void* z = dev_random_half(n * K * P * Q, 4);
  void* y = nullptr;
  CK(cudaMalloc(&y, n * K * P * Q * 2));
  std::printf("%s: %lld candidates\n", label, (long long)count);
  *best_us = 1e30;
  int built = 0;
  for (int64_t i = 0; i < count && built < max_plans; ++i) {
    std::string pname;
    g.get_plan_name_at_index(i, pname);
    std::vector<fe::BehaviorNote_t> notes;
    g.get_behavior_notes_for_plan_at_index(i, notes);
    const double t0 = now_ms();
    auto bs = g.build_plan_at_index(i);
    const double build_ms = now_ms() - t0;
    if (!bs.is_good()) {
      std::printf("   [%2lld] %-44s %-10s build FAILED (%s)\n", (long long)i, pname.c_str(), notes_str(notes).c_str(),
                  bs.get_message().substr(0, 80).c_str());
      continue;
    }
    ++built;
    int64_t ws = 0;
    g.get_workspace_size_plan_at_index(i, ws);
    void* wsp = nullptr;
    if (ws > 0) CK(cudaMalloc(&wsp, ws));
    std::unordered_map<int64_t, void*> pack = {{1, x}, {2, w}, {5, y}};
    if (B) pack[3] = b;
    if (Z) pack[4] = z;
    cudnnSetStream(h, s);
    const double us = time_us([&]() { return g.execute_plan_at_index(h, pack, wsp, i).is_good(); }, s);
    if (wsp) cudaFree(wsp);
    if (us > 0) *best_us = std::min(*best_us, us);
    const double flops = 2.0 * n * K * P * Q * Cg * R * R;
    std::printf("   [%2lld] %-44s %-10s build %8.1f ms  ws %9lld  run %9.2f us  %7.1f TFLOP/s\n", (long long)i,
                pname.c_str(), notes_str(notes).c_str(), build_ms, (long long)ws, us, us > 0 ? flops / us / 1e6 : 0.0);
  }
  cudaFree(x);
  cudaFree(w);
  cudaFree(b);
  cudaFree(z);
  cudaFree(y);
}

static void run_conv(cudnnHandle_t h, cudaStream_t s) {
  const ConvCase cases[] = {
      {"r50.stem", 3, 224, 224, 64, 7, 2, 3, 1},     {"r50.1x1a", 64, 56, 56, 64, 1, 1, 0, 1},
      {"r50.3x3a", 64, 56, 56, 64, 3, 1, 1, 1},      {"r50.1x1b", 256, 56, 56, 64, 1, 1, 0, 1},
      {"r50.3x3c", 256, 14, 14, 256, 3, 1, 1, 1},    {"r50.1x1d", 512, 7, 7, 2048, 1, 1, 0, 1},
      {"mb2.pw", 144, 56, 56, 24, 1, 1, 0, 1},       {"mb2.dw", 144, 56, 56, 144, 3, 1, 1, 144},
      {"mb2.dw_s2", 96, 112, 112, 96, 3, 2, 1, 96},  {"mb2.dw7", 960, 7, 7, 960, 3, 1, 1, 960},
      {"yolo.m0", 16, 80, 80, 16, 3, 1, 1, 1},       {"yolo.m6", 64, 20, 20, 64, 3, 1, 1, 1},
  };
  for (int64_t n : {1, 32})
    for (const auto& cc : cases) {
      double best[6] = {0, 0, 0, 0, 0, 0};
      const bool dw = cc.group > 1;
      for (int epi : {0, 1, 2, 3, 4, 5}) {
        if ((epi == 2 || epi == 5) && (dw || cc.stride != 1)) continue;
        probe_conv(h, s, n, cc, epi, dw ? 6 : 4, &best[epi]);
      }
      std::printf("SUMMARY conv %-10s n=%-3lld best us: conv %.2f  +bias+relu %.2f  +res %.2f  +relu6 %.2f  "
                  "+swish %.2f  +swish+res %.2f\n",
                  cc.name, (long long)n, best[0], best[1], best[2], best[3], best[4], best[5]);
      std::fflush(stdout);
    }
}

// ------------------------------------------------------------------------------------------------ sdpa ----
// Q, K, V: strided views of a packed [B, S, 3, H, D] buffer (one QKV projection GEMM); O: [B, S, H, D].
static void probe_sdpa(cudnnHandle_t h, cudaStream_t s, int64_t b, int64_t hh, int64_t sq, int64_t d, int bias_kind) {
  fe::graph::Graph g;
  g.set_io_data_type(fe::DataType_t::HALF)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  const int64_t row = 3 * hh * d;  // elements between consecutive tokens
  auto mk = [&](const char* name, int64_t uid) {
    return g.tensor(fe::graph::Tensor_attributes().set_name(name).set_uid(uid).set_dim({b, hh, sq, d}).set_stride(
        {sq * row, d, row, 1}));
  };
  auto Q = mk("Q", 1), K = mk("K", 2), V = mk("V", 3);
  auto opts = fe::graph::SDPA_attributes().set_name("sdpa").set_generate_stats(false).set_attn_scale(
      1.f / std::sqrt((float)d));
  std::shared_ptr<fe::graph::Tensor_attributes> Bias;
  if (bias_kind == 1)  // [B, 1, 1, S]: the additive padding mask of BERT exports
    Bias = g.tensor(fe::graph::Tensor_attributes().set_name("bias").set_uid(4).set_dim({b, 1, 1, sq}).set_stride(
        {sq, sq, sq, 1}));
  if (bias_kind == 2)  // [B, 1, S, S]: the mask expanded over queries
    Bias = g.tensor(fe::graph::Tensor_attributes().set_name("bias").set_uid(4).set_dim({b, 1, sq, sq}).set_stride(
        {sq * sq, sq * sq, sq, 1}));
  if (Bias) opts.set_bias(Bias);
  auto [O, stats] = g.sdpa(Q, K, V, opts);
  (void)stats;
  O->set_output(true).set_uid(5).set_dim({b, hh, sq, d}).set_stride({sq * hh * d, d, hh * d, 1});
  char label[160];
  std::snprintf(label, sizeof label, "sdpa b=%lld h=%lld s=%lld d=%lld bias=%d", (long long)b, (long long)hh,
                (long long)sq, (long long)d, bias_kind);
  auto st = g.validate();
  if (st.is_good()) st = g.build_operation_graph(h);
  if (st.is_good()) st = g.create_execution_plans({fe::HeurMode_t::A});
  if (st.is_good()) st = g.check_support();
  if (!st.is_good()) {
    std::printf("%s: NOT SUPPORTED: %s\n", label, st.get_message().c_str());
    return;
  }
  const int64_t count = g.get_execution_plan_count();
  const size_t nqkv = (size_t)b * sq * row;
  void* qkv = dev_random_half(nqkv, 11);
  void* bias = dev_random_half((size_t)b * sq * sq, 12);
  void* o = nullptr;
  CK(cudaMalloc(&o, (size_t)b * sq * hh * d * 2));
  for (int64_t i = 0; i < count && i < 4; ++i) {
    std::string pname;
    g.get_plan_name_at_index(i, pname);
    const double t0 = now_ms();
    auto bs = g.build_plan_at_index(i);
    const double build_ms = now_ms() - t0;
    if (!bs.is_good()) {
      std::printf("%s [%lld] %s build FAILED %s\n", label, (long long)i, pname.c_str(), bs.get_message().c_str());
      continue;
    }
    int64_t ws = 0;
    g.get_workspace_size_plan_at_index(i, ws);
    void* wsp = nullptr;
    if (ws > 0) CK(cudaMalloc(&wsp, ws));
    char* base = static_cast<char*>(qkv);
    std::unordered_map<int64_t, void*> pack = {
        {1, base}, {2, base + hh * d * 2}, {3, base + 2 * hh * d * 2}, {5, o}};
    if (Bias) pack[4] = bias;
    cudnnSetStream(h, s);
    const double us = time_us([&]() { return g.execute_plan_at_index(h, pack, wsp, i).is_good(); }, s);
    // Check against a host reference for batch 0, head 0 and 3 (bias_kind 0/1 only).
    double max_err = -1;
    if (bias_kind != 2 && us > 0) {
      std::vector<__half> hq(nqkv), ho((size_t)b * sq * hh * d), hb((size_t)b * sq * sq);
      CK(cudaMemcpy(hq.data(), qkv, nqkv * 2, cudaMemcpyDeviceToHost));
      CK(cudaMemcpy(ho.data(), o, ho.size() * 2, cudaMemcpyDeviceToHost));
      CK(cudaMemcpy(hb.data(), bias, hb.size() * 2, cudaMemcpyDeviceToHost));
      max_err = 0;
      const float scale = 1.f / std::sqrt((float)d);
      for (int64_t head : {0LL, 3LL}) {
        for (int64_t qi = 0; qi < sq; qi += 7) {
          std::vector<double> sc(sq);
          double mx = -1e300;
          for (int64_t kj = 0; kj < sq; ++kj) {
            double acc = 0;
            for (int64_t e = 0; e < d; ++e)
              acc += (double)__half2float(hq[qi * row + head * d + e]) *
                     (double)__half2float(hq[kj * row + hh * d + head * d + e]);
            acc *= scale;
            if (bias_kind == 1) acc += (double)__half2float(hb[kj]);
            sc[kj] = acc;
            mx = std::max(mx, acc);
          }
          double sum = 0;
          for (auto& v : sc) sum += (v = std::exp(v - mx));
          for (int64_t e = 0; e < d; ++e) {
            double acc = 0;
            for (int64_t kj = 0; kj < sq; ++kj) acc += sc[kj] / sum * (double)__half2float(hq[kj * row + 2 * hh * d + head * d + e]);
            max_err = std::max(max_err, std::fabs(acc - (double)__half2float(ho[qi * hh * d + head * d + e])));
          }
        }
      }
    }
    std::printf("%s [%lld] %-40s build %8.1f ms ws %lld run %8.2f us  max|err| %.2e\n", label, (long long)i,
                pname.c_str(), build_ms, (long long)ws, us, max_err);
    if (wsp) cudaFree(wsp);
  }
  cudaFree(qkv);
  cudaFree(bias);
  cudaFree(o);
}

static void run_sdpa(cudnnHandle_t h, cudaStream_t s) {
  for (int64_t b : {1, 32})
    for (int bias : {0, 1, 2}) probe_sdpa(h, s, b, 12, 128, 64, bias);
  probe_sdpa(h, s, 8, 12, 384, 64, 1);
  probe_sdpa(h, s, 4, 12, 77, 64, 1);
  std::fflush(stdout);
}

// ------------------------------------------------------------------------------------------------ gemm ----
// Row-major Y[M, N] = X[M, K] W[K, N] (+ bias) (GELU), as cuBLASLt column-major Y^T = W^T X^T.
static void probe_gemm(cublasLtHandle_t lt, cudaStream_t s, int64_t m, int64_t n, int64_t k, int epi, bool tf32) {
  const bool half = !tf32;
  const cudaDataType_t t = half ? CUDA_R_16F : CUDA_R_32F;
  const size_t es = half ? 2 : 4;
  cublasLtMatmulDesc_t desc;
  cublasLtMatmulDescCreate(&desc, tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F);
  cublasLtEpilogue_t e = epi == 0 ? CUBLASLT_EPILOGUE_DEFAULT : epi == 1 ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_GELU_BIAS;
  cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e);
  void *A, *B, *C, *bias;
  CK(cudaMalloc(&A, m * k * es));
  CK(cudaMalloc(&B, k * n * es));
  CK(cudaMalloc(&C, m * n * es));
  CK(cudaMalloc(&bias, n * es));
  CK(cudaMemset(A, 0x3c, m * k * es));
  CK(cudaMemset(B, 0x3c, k * n * es));
  CK(cudaMemset(bias, 0x3c, n * es));
  if (epi) cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
  cublasLtMatrixLayout_t la, lb, lc;
  cublasLtMatrixLayoutCreate(&la, t, n, k, n);  // W^T: col-major n x k
  cublasLtMatrixLayoutCreate(&lb, t, k, m, k);  // X^T: col-major k x m
  cublasLtMatrixLayoutCreate(&lc, t, n, m, n);
  cublasLtMatmulPreference_t pref;
  cublasLtMatmulPreferenceCreate(&pref);
  uint64_t wsb = 32 << 20;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb);
  void* ws;
  CK(cudaMalloc(&ws, wsb));
  cublasLtMatmulHeuristicResult_t res[8];
  int ret = 0;
  cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, lc, pref, 8, res, &ret);
  const float one = 1.f, zero = 0.f;
  double best = 1e30, first = -1;
  for (int i = 0; i < ret; ++i) {
    double us = time_us([&]() {
      return cublasLtMatmul(lt, desc, &one, B, la, A, lb, &zero, C, lc, C, lc, &res[i].algo, ws, wsb, s) ==
             CUBLAS_STATUS_SUCCESS;
    }, s);
    if (i == 0) first = us;
    if (us > 0) best = std::min(best, us);
  }
  const double flops = 2.0 * m * n * k;
  std::printf("gemm %s m=%-5lld n=%-5lld k=%-5lld epi=%d: %d algos, heuristic #0 %8.2f us, best %8.2f us = %6.1f TFLOP/s\n",
              tf32 ? "tf32" : "fp16", (long long)m, (long long)n, (long long)k, epi, ret, first, best,
              flops / best / 1e6);
  cudaFree(A);
  cudaFree(B);
  cudaFree(C);
  cudaFree(bias);
  cudaFree(ws);
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(lc);
  cublasLtMatmulDescDestroy(desc);
}

static void run_gemm(cudaStream_t s) {
  cublasLtHandle_t lt;
  cublasLtCreate(&lt);
  for (bool tf32 : {false, true})
    for (int64_t m : {128, 4096}) {
      probe_gemm(lt, s, m, 2304, 768, 1, tf32);
      probe_gemm(lt, s, m, 768, 768, 1, tf32);
      probe_gemm(lt, s, m, 3072, 768, 2, tf32);
      probe_gemm(lt, s, m, 768, 3072, 1, tf32);
    }
  probe_gemm(lt, s, 32, 1000, 2048, 1, false);
  cublasLtDestroy(lt);
  std::fflush(stdout);
}

int main(int argc, char** argv) {
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device %s, cc %d.%d, %d SMs; cuDNN %zu (frontend %d); cuBLASLt %zu\n", prop.name, prop.major,
              prop.minor, prop.multiProcessorCount, cudnnGetVersion(), CUDNN_FRONTEND_VERSION,
              cublasLtGetVersion());
  cudnnHandle_t h;
  if (cudnnCreate(&h) != CUDNN_STATUS_SUCCESS) {
    std::printf("cudnnCreate failed\n");
    return 1;
  }
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  std::vector<std::string> what;
  for (int i = 1; i < argc; ++i) what.push_back(argv[i]);
  if (what.empty()) what = {"gemm", "sdpa", "conv"};
  for (auto& w : what) {
    if (w == "conv") run_conv(h, s);
    if (w == "sdpa") run_sdpa(h, s);
    if (w == "gemm") run_gemm(s);
  }
  cudnnDestroy(h);
  return 0;
}
