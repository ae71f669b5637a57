// Kernel "attention": scaled dot-product attention for ep_trtpy::Attention.
//
//   O = softmax(scale * Q K^T + M) V        per batch b and head h
//
// Parameter layout (mirrored by the Attention lowering in ep_trtpy/builder/lowering/):
//   inputs  [Q, K, V, M or -1]   Q, K, V: one float dtype (float32, float16, bfloat16); they may be views of one
//                                packed QKV tensor. M: float32, float16 or bfloat16.
//   outputs [O]                  contiguous [B, Sq, H*Dv], Q's dtype
//   ints    [B, H, Sq, Skv, D, Dv, q_row, k_row, v_row, m_sb, m_sh, m_sq, m_sk (, math (, varying))]
//             Q (b, i, h, e) is element b*Sq*q_row + i*q_row + h*D + e of Q; K (b, j, h, e) element
//             b*Skv*k_row + j*k_row + h*D + e of K; V (b, j, h, e) element b*Skv*v_row + j*v_row + h*Dv + e of V;
//             M (b, h, i, j) element b*m_sb + h*m_sh + i*m_sq + j*m_sk of M (0 strides broadcast);
//             math (optional, default 0): 1 lets float32 GEMMs use TF32
//             varying (optional, default 0): 1 in an engine specialized from a family's (one program, many
//             shapes): the cuDNN graph is built for dynamic shapes and binds the kernel a process-wide kernel
//             cache holds for its topology (FusedGraph::attention), and no plan bytes are serialized
//   floats  [scale]
//   tactics "cudnn:<plan>" (16-bit: one cuDNN flash-attention kernel; the mask is first cast to Q's dtype when
//           it has another), "unfused" (cuBLASLt strided-batched GEMMs, one launch per head or per batch row,
//           around one masked-softmax kernel, scores in float32 in the workspace; attention_gemm.cpp) or "packed"
//           (the heads copied into [B*H, S, D] buffers, one GEMM launch each side of the same softmax, the result
//           copied into O; attention_packed.cpp). The two GEMM tactics take any dtype and any shape.
#include <algorithm>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "../kernels/attention.h"
#include "attention_common.h"
#include "cudnn_conv_common.h"
#include "cudnn_graph.h"
#include "tactics.h"
#include "tp/engine.h"
#include "tp/library_support.h"

namespace tp {
namespace lib {
namespace {

using attention::AttnState;
using attention::Mode;
using attention::align256;

const std::string kCudnnPrefix = "cudnn:";

// A GEMM-based tactic's plan as prepare found it.
struct GemmTactic {
  GemmTactic(const char* n, Mode m) : name(n), mode(m) {}
  const char* name;
  Mode mode;
  bool ok = false;
  size_t ws = 0;
  std::string err;
};

int run_gemm_tactic(const Engine& engine, const AttnState& s, Mode mode, const void* q, const void* k,
                    const void* v, const void* m, void* o, void* ws, cudaStream_t stream, std::string* err) {
  if (mode == Mode::Packed) return attention::run_packed(engine, s, q, k, v, m, o, ws, stream, err);
  return attention::run_unfused(engine, s, q, k, v, m, o, ws, stream, err);
}

void attn_release(Layer& layer) {
  delete static_cast<AttnState*>(layer.state);
  layer.state = nullptr;
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
  g.dynamic = s.varying;
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
  TP_REQUIRE(layer.ints.size() >= 13 && layer.ints.size() <= 15,
             "expects ints [B, H, Sq, Skv, D, Dv, q_row, k_row, v_row, m_sb, m_sh, m_sq, m_sk (, math (, varying))]");
  TP_REQUIRE(layer.floats.size() == 1, "expects floats [scale]");
  auto* s = new AttnState();
  layer.state = s;
  const auto& I = layer.ints;
  s->B = I[0], s->H = I[1], s->Sq = I[2], s->Skv = I[3], s->D = I[4], s->Dv = I[5];
  s->q_row = I[6], s->k_row = I[7], s->v_row = I[8];
  s->m_sb = I[9], s->m_sh = I[10], s->m_sq = I[11], s->m_sk = I[12];
  s->tf32 = I.size() >= 14 && I[13] == 1;
  TP_REQUIRE(I.size() < 15 || I[14] == 0 || I[14] == 1, "varying must be 0 or 1");
  s->varying = I.size() == 15 && I[14] == 1;
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

  // ---- candidates: cuDNN flash attention plans (16-bit), then the GEMM-based tactics ---------------------------
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
  GemmTactic gemm[2] = {{"unfused", Mode::Unfused}, {"packed", Mode::Packed}};
  std::string gemm_errs;
  for (GemmTactic& g : gemm) {
    g.ok = (g.mode == Mode::Packed ? attention::plan_packed(engine, *s, &g.ws, &g.err)
                                   : attention::plan_unfused(engine, *s, &g.ws, &g.err)) == 0;
    gemm_errs += std::string("; ") + g.name + ": " + (g.ok ? "ok" : g.err);
  }
  auto gemm_of = [&](const std::string& name) -> const GemmTactic* {
    for (const GemmTactic& g : gemm)
      if (name == g.name) return &g;
    return nullptr;
  };
  std::vector<std::string> names;
  if (graph)
    for (int i = 0; i < graph->candidates(); ++i) names.push_back(kCudnnPrefix + graph->name(i));
  for (const GemmTactic& g : gemm)
    if (g.ok) names.push_back(g.name);  // at level 0 (no timing) "unfused" comes first
  TP_REQUIRE(!names.empty(), "no attention tactic: " + graph_err + gemm_errs);
  auto plan_of = [&](const std::string& name) {
    return name.compare(0, kCudnnPrefix.size(), kCudnnPrefix) == 0 && graph ? graph->find(name.substr(kCudnnPrefix.size()))
                                                                            : -1;
  };
  auto usable = [&](const std::string& name, std::string* why) {
    if (const GemmTactic* g = gemm_of(name)) return g->ok;
    const int i = plan_of(name);
    return i >= 0 && graph->build(i, why) == 0;
  };
  s->mask_off = 0;
  const size_t mask_bytes = s->cast_mask ? align256(static_cast<size_t>(s->m_numel) * s->es) : 0;
  s->graph_ws_off = mask_bytes;
  std::string chosen;
  const std::string sig = tactic_signature("attention", engine.tuning_level(), layer, engine);
  const std::string wanted = layer.tactic_name.empty() ? remembered_tactic(sig) : layer.tactic_name;
  if (!wanted.empty()) {
    std::string why;
    if (usable(wanted, &why)) chosen = wanted;
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
      // GEMM-based tactics
      std::vector<std::string> timed;
      for (const auto& n : names)
        if (!gemm_of(n) && static_cast<int>(timed.size()) < std::min(n_time, level < 4 ? 2 : n_time))
          timed.push_back(n);
      for (const GemmTactic& g : gemm)
        if (g.ok) timed.push_back(g.name);
      size_t ws_max = 0;
      std::vector<char> ok(timed.size(), 0);
      for (size_t i = 0; i < timed.size(); ++i) {
        std::string why;
        ok[i] = usable(timed[i], &why);
        const GemmTactic* g = gemm_of(timed[i]);
        if (!ok[i]) layer.timings.emplace_back(timed[i], std::numeric_limits<double>::infinity());
        else ws_max = std::max(ws_max, g ? g->ws : mask_bytes + graph->workspace(plan_of(timed[i])));
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
          if (const GemmTactic* g = gemm_of(n))
            return run_gemm_tactic(engine, *s, g->mode, qp, kp, vp, mbuf, obuf, wbuf, st, &e);
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
  TP_REQUIRE(!chosen.empty(), "no attention tactic could be built: " + graph_err + gemm_errs);
  if (layer.tactic_name.empty()) remember_tactic(sig, chosen);  // a search's (or memo's) choice, not a forced name
  layer.tactic_name = chosen;
  if (const GemmTactic* g = gemm_of(chosen)) {
    s->mode = g->mode;
    layer.tactic = static_cast<int>(g - gemm);  // 0 unfused, 1 packed
    layer.workspace = g->ws;
    return 0;
  }
  s->mode = Mode::Fused;
  s->plan = plan_of(chosen);
  s->graph = std::move(graph);
  layer.tactic = s->plan;
  layer.workspace = mask_bytes + s->graph->workspace(s->plan);
  // Without the bytes, a later prepare builds the plan from its name. A specialized engine is never written to a
  // file: its bytes would only cost the time to make them.
  std::string ignored;
  if (s->varying || s->graph->serialize(s->plan, &layer.tactic_state, &ignored) != 0) layer.tactic_state.clear();
  return 0;
}

int attn_launch(const Engine& engine, const Layer& layer, const void* const* in, void* const* out,
                const LaunchContext& ctx, std::string* err) {
  const auto* s = static_cast<const AttnState*>(layer.state);
  if (s->mode == Mode::Empty) return 0;
  TP_REQUIRE(layer.workspace <= ctx.workspace_bytes, "workspace smaller than the layer needs");
  const void* m = s->mask ? in[3] : nullptr;
  if (s->mode == Mode::Unfused || s->mode == Mode::Packed)
    return run_gemm_tactic(engine, *s, s->mode, in[0], in[1], in[2], m, out[0], ctx.workspace, ctx.stream, err);
  return run_fused(engine, *s, s->graph.get(), s->plan, in[0], in[1], in[2], m, out[0], ctx.workspace, ctx.stream,
                   err);
}

const KernelDef kAttention = {"attention", attn_prepare, attn_launch, attn_release};
TP_REGISTER_KERNEL(kAttention);

}  // namespace
}  // namespace lib
}  // namespace tp
