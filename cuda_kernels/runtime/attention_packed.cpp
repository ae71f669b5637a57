// The "packed" attention tactic (attention_common.h). One batch stride cannot walk both b and h of a [B, S, H, D]
// tensor, so the unfused tactic launches a GEMM per head (or per batch row) on each side of the softmax. Here one
// kernel first copies the heads of Q, K and V into packed [B*H, S, D] buffers; each side of the softmax is then ONE
// strided-batched cuBLASLt GEMM over the B*H pairs (n = b*H + h), and a second copy puts the packed [B*H, Sq, Dv]
// result into O. The scores keep the unfused layout [B, H, Sq, Skv], so the same masked softmax serves both.
//
// An operand that one batch stride does reach is used in place, not copied: head (b, h) of a [B, S, row] tensor
// (head width W) starts at b*S*row + h*W, which is n*W when S*row == H*W (Q and O when Sq == 1 and the rows are
// dense), n*W when B == 1 and n*S*row when H == 1.
#include <algorithm>
#include <cstdint>
#include <string>

#include "../kernels/attention.h"
#include "attention_common.h"
#include "tp/library_support.h"

namespace tp {
namespace lib {
namespace attention {
namespace {

PackedOperand operand(const AttnState& s, int64_t rows, int64_t w, int64_t row) {
  PackedOperand x;
  x.direct = s.B == 1 || s.H == 1 || rows * row == s.H * w;
  x.ld = x.direct ? row : w;
  x.stride = !x.direct ? rows * w : (s.H == 1 ? rows * row : w);
  return x;
}

// Adds the operand's tensor to a heads copy unless the GEMMs use it in place.
void add_copy(attn::HeadsCopyArgs* a, const PackedOperand& x, const void* heads, void* packed, int64_t rows,
              int64_t w, int64_t row) {
  if (x.direct) return;
  attn::HeadsTensor& t = a->t[a->count++];
  t.heads = const_cast<void*>(heads);
  t.packed = packed;
  t.s = rows;
  t.w = w;
  t.row = row;
}

}  // namespace

int plan_packed(Engine& engine, AttnState& s, size_t* ws_total, std::string* err) {
  const int64_t pairs = s.B * s.H;
  TP_REQUIRE(pairs <= INT32_MAX, "B*H = " + std::to_string(pairs) + " exceeds cuBLASLt's batch count");
  TP_REQUIRE(std::max(s.Sq, s.Skv) * std::max(s.D, s.Dv) < (int64_t(1) << 31),
             "one head of " + std::to_string(std::max(s.Sq, s.Skv) * std::max(s.D, s.Dv)) +
                 " elements is too large for the heads copy (2^31)");
  cublasLtHandle_t lt = nullptr;
  if (engine.handles().cublaslt(&lt, err)) return 1;
  PackedPlan& p = s.packed;
  p.q = operand(s, s.Sq, s.D, s.q_row);
  p.k = operand(s, s.Skv, s.D, s.k_row);
  p.v = operand(s, s.Skv, s.Dv, s.v_row);
  p.o = operand(s, s.Sq, s.Dv, s.H * s.Dv);
  const cudaDataType_t t = lt_type(s.dtype);
  const int64_t es = static_cast<int64_t>(s.es), n_scores = pairs * s.Sq * s.Skv;
  const auto u = [](int64_t x) { return static_cast<uint64_t>(x); };
  const int32_t batch = static_cast<int32_t>(pairs);
  // per pair, as in the unfused tactic: S^T (col-major Skv x Sq) = K^T Q, then O^T (col-major Dv x Sq) = V P^T
  const GemmGeom g1{t, t, CUDA_R_32F, true, u(s.D), u(s.Skv), u(s.D), u(s.Sq), u(s.Skv), u(s.Sq),
                    p.k.ld, p.q.ld, s.Skv, batch, p.k.stride, p.q.stride, s.Sq * s.Skv};
  const GemmGeom g2{t, t, t, false, u(s.Dv), u(s.Skv), u(s.Skv), u(s.Sq), u(s.Dv), u(s.Sq),
                    p.v.ld, s.Skv, p.o.ld, batch, p.v.stride, s.Sq * s.Skv, p.o.stride};
  p.g1.align_a = pow2_dividing({p.k.ld * es, p.k.stride * es});
  p.g1.align_b = pow2_dividing({p.q.ld * es, p.q.stride * es});
  p.g1.align_d = pow2_dividing({s.Skv * 4, s.Sq * s.Skv * 4});
  p.g2.align_a = pow2_dividing({p.v.ld * es, p.v.stride * es});
  p.g2.align_b = pow2_dividing({s.Skv * es, s.Sq * s.Skv * es});
  p.g2.align_d = pow2_dividing({p.o.ld * es, p.o.stride * es});
  if (plan_gemm(lt, g1, s.tf32, &p.g1, err) || plan_gemm(lt, g2, s.tf32, &p.g2, err)) return 1;
  // workspace: scores (float32), P (Q's dtype; the scores themselves for float32), the packed copies, cuBLASLt's
  // bytes. Packed O reuses packed Q's bytes: the second GEMM writes it after the first has read Q.
  const size_t scores = align256(static_cast<size_t>(n_scores) * 4);
  p.s_off = 0;
  p.p_off = s.dtype == 1 ? 0 : scores;
  size_t at = p.p_off + (s.dtype == 1 ? scores : align256(static_cast<size_t>(n_scores) * s.es));
  auto take = [&](PackedOperand& x, int64_t rows, int64_t w) {
    x.off = at;
    at += align256(static_cast<size_t>(pairs * rows * w) * s.es);
  };
  const bool o_in_q = !p.q.direct && !p.o.direct;
  if (!p.q.direct) take(p.q, s.Sq, o_in_q ? std::max(s.D, s.Dv) : s.D);
  if (!p.k.direct) take(p.k, s.Skv, s.D);
  if (!p.v.direct) take(p.v, s.Skv, s.Dv);
  if (o_in_q) p.o.off = p.q.off;
  else if (!p.o.direct) take(p.o, s.Sq, s.Dv);
  p.lt_off = at;
  *ws_total = at + std::max(p.g1.ws, p.g2.ws);
  return 0;
}

int run_packed(const Engine& engine, const AttnState& s, const void* q, const void* k, const void* v,
               const void* m, void* o, void* ws, cudaStream_t stream, std::string* err) {
  cublasLtHandle_t lt = nullptr;
  if (engine.handles().cublaslt(&lt, err)) return 1;
  const PackedPlan& p = s.packed;
  char* base = static_cast<char*>(ws);
  auto place = [&](const PackedOperand& x, const void* tensor) {
    return x.direct ? const_cast<void*>(tensor) : static_cast<void*>(base + x.off);
  };
  void* qp = place(p.q, q);
  void* kp = place(p.k, k);
  void* vp = place(p.v, v);
  void* op = place(p.o, o);
  TP_REQUIRE(aligned(kp, p.g1.align_a) && aligned(qp, p.g1.align_b) && aligned(vp, p.g2.align_a) &&
                 aligned(op, p.g2.align_d),
             "attention (packed): Q/K/V/O pointers are less aligned than the plan assumes");
  attn::HeadsCopyArgs in;
  in.b = s.B;
  in.h = s.H;
  in.elem_bytes = static_cast<int>(s.es);
  add_copy(&in, p.q, q, qp, s.Sq, s.D, s.q_row);
  add_copy(&in, p.k, k, kp, s.Skv, s.D, s.k_row);
  add_copy(&in, p.v, v, vp, s.Skv, s.Dv, s.v_row);
  if (in.count > 0) TP_TRY_CUDA(attn::heads_copy(in, stream));
  float* S = reinterpret_cast<float*>(base + p.s_off);
  char* P = base + p.p_off;
  void* lt_ws = base + p.lt_off;
  const float alpha1 = s.scale, one = 1.f, zero = 0.f;
  TP_TRY_CUBLAS(cublasLtMatmul(lt, p.g1.desc, &alpha1, kp, p.g1.a, qp, p.g1.b, &zero, S, p.g1.d, S, p.g1.d,
                               &p.g1.algo, lt_ws, p.g1.ws, stream));
  if (run_softmax(s, S, P, m, stream, err)) return 1;
  TP_TRY_CUBLAS(cublasLtMatmul(lt, p.g2.desc, &one, vp, p.g2.a, P, p.g2.b, &zero, op, p.g2.d, op, p.g2.d,
                               &p.g2.algo, lt_ws, p.g2.ws, stream));
  attn::HeadsCopyArgs out;
  out.b = s.B;
  out.h = s.H;
  out.elem_bytes = static_cast<int>(s.es);
  out.to_packed = false;
  add_copy(&out, p.o, o, op, s.Sq, s.Dv, s.H * s.Dv);
  if (out.count > 0) TP_TRY_CUDA(attn::heads_copy(out, stream));
  return 0;
}

}  // namespace attention
}  // namespace lib
}  // namespace tp
