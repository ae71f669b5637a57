// "conv" in channels-last layout (layout 1; kernels_conv.cpp has the layout): the tactic search.
//
// Candidates, in this order (the tactic names the tuner stores):
//   "depthwise"         our kernel (kernels/conv_nhwc.cu), for group == C == K: bias, residual, activation fused
//   "depthwise:tiled"   the same through shared-memory tiles (kernels/depthwise_tiled.cu), where its tile fits
//   "fused:<plan>"      one cuDNN graph: conv + bias + residual + activation (runtime fusion engines), or with
//                       a residual after the activation (post) conv + bias + activation + residual
//   "bias:<plan>"       cuDNN conv + bias, then our epilogue adds the residual and the activation (in the
//                       layer's order)
//   "conv:<plan>"       cuDNN conv alone, then our epilogue does the rest
//   "small_c"           our direct kernel for C_in 1..4, group 1 (kernels/conv_small_c.cu), epilogue fused; first
//                       when a pixel costs few MACs (stems such as 3x3x3 -> 32), last otherwise (7x7x3 -> 64)
// where <plan> is a cuDNN engine configuration of that graph ("eng4_k24=26"). A family is offered only where it
// differs from the one before it. At tuning level 0 the first candidate that builds wins; at levels 1-5 the first
// candidates_to_time(level) of them, spread over the families, are timed on scratch buffers and the fastest wins
// (levels below 4 time at most two runtime-compiled plans per family: each costs an NVRTC compile of ~0.5 s).
// A layer that carries a tactic name builds only that candidate; identical layers of one process reuse the choice.
#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "conv_common.h"
#include "kernel_util.h"
#include "tactics.h"
#include "tp/library_support.h"

namespace tp {
namespace lib {
namespace {

enum Family : int { kDepthwise = 0, kFused = 1, kBias = 2, kConvOnly = 3, kSmallC = 4 };
const char* const kPrefix[] = {"depthwise", "fused:", "bias:", "conv:", "small_c"};
// The depthwise family's candidates, by plan: the one-pixel kernel and the tiled one.
const char* const kDepthwiseNames[] = {"depthwise", "depthwise:tiled"};
constexpr size_t kMaxWorkspace = size_t(256) << 20;

size_t align256(size_t n) { return (n + 255) / 256 * 256; }


bool depthwise_applies(const ConvParams& p) { return p.group == p.c && p.cout == p.c && p.cg == 1; }

nhwc::Window window(const ConvParams& p);

// "" when the small_c kernel runs this layer, else why not.
std::string small_c_refusal(const ConvParams& p) {
  if (p.group != 1) return "group is " + std::to_string(p.group) + ", small_c takes 1";
  return nhwc::small_c_plan(window(p), p.cout, p.dtype, nullptr);
}

// Families that are cuDNN graphs (the others are our kernels).
bool graph_family(int f) { return f == kFused || f == kBias || f == kConvOnly; }

// Families that differ from each other for this layer.
std::vector<int> families(const ConvParams& p) {
  std::vector<int> f;
  if (depthwise_applies(p)) f.push_back(kDepthwise);
  const bool small_c = small_c_refusal(p).empty();
  const bool small_c_first = p.k_sp[0] * p.k_sp[1] * p.c * p.cout <= 2048;  // MACs per output pixel
  if (small_c && small_c_first) f.push_back(kSmallC);
  f.push_back(kFused);
  const bool after_bias = p.has_z || p.act != kConvNone;
  if (p.has_bias && after_bias) f.push_back(kBias);
  if (p.has_bias || after_bias) f.push_back(kConvOnly);
  if (small_c && !small_c_first) f.push_back(kSmallC);
  return f;
}

ConvGraphSpec graph_spec(const ConvParams& p, int family) {
  ConvGraphSpec g;
  g.dtype = p.dtype;
  g.tf32 = p.tf32;
  g.n = p.n;
  g.c = p.c;
  g.h = p.in_sp[0];
  g.w = p.in_sp[1];
  g.k = p.cout;
  g.r = p.k_sp[0];
  g.s = p.k_sp[1];
  g.p = p.out_sp[0];
  g.q = p.out_sp[1];
  g.group = p.group;
  for (int i = 0; i < 2; ++i) {
    g.pad_begin[i] = p.pb[i];
    g.pad_end[i] = p.pe[i];
    g.stride[i] = p.st[i];
    g.dilation[i] = p.dil[i];
  }
  g.bias = p.has_bias && family != kConvOnly;
  g.residual = p.has_z && family == kFused;
  g.residual_after_act = p.z_after_act;
  g.act = family == kFused ? p.act : kGraphActNone;
  g.alpha = p.alpha;
  g.beta = p.beta;
  return g;
}

nhwc::Window window(const ConvParams& p) {
  nhwc::Window w;
  w.n = p.n;
  w.c = p.c;
  w.h = p.in_sp[0];
  w.w = p.in_sp[1];
  w.p = p.out_sp[0];
  w.q = p.out_sp[1];
  w.kh = static_cast<int>(p.k_sp[0]);
  w.kw = static_cast<int>(p.k_sp[1]);
  w.sh = static_cast<int>(p.st[0]);
  w.sw = static_cast<int>(p.st[1]);
  w.ph = static_cast<int>(p.pb[0]);
  w.pw = static_cast<int>(p.pb[1]);
  w.dh = static_cast<int>(p.dil[0]);
  w.dw = static_cast<int>(p.dil[1]);
  return w;
}

// How many depthwise candidates (plans 0, 1, ...) this layer has (s.tile set by conv_nhwc_prepare).
int depthwise_plans(const ConvState& s) {
  if (!depthwise_applies(s.p)) return 0;
  return s.tile.rows > 0 ? 2 : 1;
}

struct Candidate {
  int family = -1;  // -1: none
  int plan = -1;
  std::string name;
};

// Everything the search needs: the graphs of each family (built lazily) and scratch operands for timing.
struct Search {
  Engine& engine;
  ConvState& s;
  cudnnHandle_t h = nullptr;
  std::unique_ptr<FusedGraph> graphs[4];
  bool tried[4] = {false, false, false, false};
  std::string graph_errors;

  FusedGraph* graph(int family) {
    if (!tried[family]) {
      tried[family] = true;
      std::string err;
      if (FusedGraph::conv(h, graph_spec(s.p, family), &graphs[family], &err) != 0)
        graph_errors += std::string(" [") + kPrefix[family] + " " + err + "]";
    }
    return graphs[family].get();
  }
};

struct Scratch {
  void *x = nullptr, *w = nullptr, *b = nullptr, *w_rsc = nullptr, *z = nullptr, *y = nullptr, *ws = nullptr;
};

int make_scratch(Engine& engine, const ConvParams& p, size_t ws_bytes, Scratch* sc, std::string* err) {
  const size_t x_bytes = static_cast<size_t>(p.n * p.c * p.in_sp[0] * p.in_sp[1]) * p.esize;
  const size_t w_bytes = static_cast<size_t>(p.cout * p.cg * p.k_sp[0] * p.k_sp[1]) * p.esize;
  const size_t y_bytes = static_cast<size_t>(p.n * p.cout * p.out_plane) * p.esize;
  const size_t b_bytes = static_cast<size_t>(p.cout) * p.esize;
  sc->x = engine.scratch_buffer(0, x_bytes);
  char* wb = static_cast<char*>(engine.scratch_buffer(1, 2 * align256(w_bytes) + align256(b_bytes)));
  char* yz = static_cast<char*>(engine.scratch_buffer(2, 2 * align256(y_bytes)));
  sc->ws = ws_bytes ? engine.scratch_buffer(3, ws_bytes) : nullptr;
  TP_REQUIRE(sc->x && wb && yz && (sc->ws || !ws_bytes),
             std::string("cannot allocate scratch buffers for tactic timing: ") + tp_last_error());
  sc->w = wb;
  sc->b = wb + align256(w_bytes);
  sc->w_rsc = wb + align256(w_bytes) + align256(b_bytes);
  sc->y = yz;
  sc->z = yz + align256(y_bytes);
  // Finite, non-zero operands (0x3C3C: 1.06 in float16, 0.0115 in bfloat16 and float32).
  TP_TRY_CUDA(cudaMemset(sc->x, 0x3C, x_bytes));
  TP_TRY_CUDA(cudaMemset(wb, 0x3C, 2 * align256(w_bytes) + align256(b_bytes)));
  TP_TRY_CUDA(cudaMemset(sc->z, 0x3C, y_bytes));
  return 0;
}

// The fused epilogue of our direct kernels (small_c, depthwise) from the layer's parameters.
void set_epilogue(nhwc::ConvEpilogue* e, const ConvParams& p, const void* b, const void* z, void* y) {
  e->bias = p.has_bias ? b : nullptr;
  e->z = p.has_z ? z : nullptr;
  e->z_after_act = p.z_after_act;
  e->y = y;
  e->dtype = p.dtype;
  e->act = epilogue_act(p.act);
  e->alpha = p.alpha;
  e->beta = p.beta;
}

// Runs candidate `c` once on `stream` with the given operands (w: the KRSC weights; w_rsc for depthwise).
int run_candidate(ConvState& s, cudnnHandle_t h, FusedGraph* g, const Candidate& c, const void* x, const void* w,
                  const void* w_rsc, const void* b, const void* z, void* y, void* ws, cudaStream_t stream,
                  std::string* err) {
  const ConvParams& p = s.p;
  if (c.family == kSmallC) {
    nhwc::SmallCArgs a;
    set_epilogue(&a, p, b, z, y);
    a.g = window(p);
    a.cout = p.cout;
    a.x = x;
    a.w = w;
    TP_TRY_CUDA(nhwc::small_c(a, stream));
    return 0;
  }
  if (c.family == kDepthwise) {
    nhwc::DepthwiseArgs a;
    set_epilogue(&a, p, b, z, y);
    a.g = window(p);
    a.x = x;
    a.w_rsc = w_rsc;
    if (c.plan == 1)
      TP_TRY_CUDA(nhwc::depthwise_tiled(a, s.tile, stream));
    else
      TP_TRY_CUDA(nhwc::depthwise(a, stream, 65535LL * 8));
    return 0;
  }
  TP_TRY_CUDNN(cudnnSetStream(h, stream));
  int64_t uids[5] = {1, 2, 5, 0, 0};
  void* ptrs[5] = {const_cast<void*>(x), const_cast<void*>(w), y, nullptr, nullptr};
  int n = 3;
  if (p.has_bias && c.family != kConvOnly) {
    uids[n] = 3;
    ptrs[n++] = const_cast<void*>(b);
  }
  if (p.has_z && c.family == kFused) {
    uids[n] = 4;
    ptrs[n++] = const_cast<void*>(z);
  }
  if (g->execute(h, c.plan, uids, ptrs, n, ws, err) != 0) return 1;
  const bool bias_on = c.family == kConvOnly, residual_on = c.family != kFused, act_on = c.family != kFused;
  return conv_epilogue(s, y, b, z, bias_on, residual_on, act_on, stream, err);
}

// The candidates to try or time, in order.
std::vector<Candidate> candidate_list(Search& sr, int level) {
  std::vector<Candidate> all;
  const std::vector<int> fams = families(sr.s.p);
  int total = 0;
  for (int f : fams) {
    if (f == kDepthwise)
      total += depthwise_plans(sr.s);
    else
      total += f == kSmallC ? 1 : (sr.graph(f) ? sr.graph(f)->candidates() : 0);
  }
  const int budget = level == 0 ? total : candidates_to_time(level, total);
  // small_c is timed on top of the cuDNN candidates, not in their place
  const int shares = static_cast<int>(fams.size() - std::count(fams.begin(), fams.end(), kSmallC));
  const int quota = level >= 5 ? total : std::max(1, budget / std::max(1, shares));
  for (int f : fams) {
    if (f == kSmallC) {
      all.push_back({kSmallC, 0, kPrefix[kSmallC]});
      continue;
    }
    if (f == kDepthwise) {
      for (int i = 0; i < depthwise_plans(sr.s); ++i) all.push_back({kDepthwise, i, kDepthwiseNames[i]});
      continue;
    }
    FusedGraph* g = sr.graph(f);
    if (!g) continue;
    int taken = 0, rtc = 0;
    for (int i = 0; i < g->candidates() && (level == 0 || taken < quota); ++i) {
      if (g->runtime_compiled(i) && level > 0 && level < 4 && rtc >= 2) continue;
      rtc += g->runtime_compiled(i) ? 1 : 0;
      all.push_back({f, i, kPrefix[f] + g->name(i)});
      ++taken;
    }
  }
  return all;
}

// Builds candidate c (graph plan); 0 when usable.
int build_candidate(Search& sr, const Candidate& c, std::string* err) {
  if (!graph_family(c.family)) return 0;
  FusedGraph* g = sr.graph(c.family);
  if (!g) {
    *err = "no cuDNN graph" + sr.graph_errors;
    return 1;
  }
  if (g->build(c.plan, err) != 0) return 1;
  if (g->workspace(c.plan) > kMaxWorkspace) {
    *err = "plan needs " + std::to_string(g->workspace(c.plan)) + " bytes of workspace";
    return 1;
  }
  return 0;
}

// The candidate a tactic name names (building its graph), or family -1.
Candidate named(Search& sr, const std::string& name) {
  for (int i = 0; i < depthwise_plans(sr.s); ++i)
    if (name == kDepthwiseNames[i]) return {kDepthwise, i, name};
  if (name == kPrefix[kSmallC]) return small_c_refusal(sr.s.p).empty() ? Candidate{kSmallC, 0, name} : Candidate{};
  for (int f : {kFused, kBias, kConvOnly}) {
    const std::string pre = kPrefix[f];
    if (name.compare(0, pre.size(), pre) != 0) continue;
    FusedGraph* g = sr.graph(f);
    const int i = g ? g->find(name.substr(pre.size())) : -1;
    if (i >= 0) return {f, i, name};
  }
  return {};
}

// The candidate of a graph tactic name restored from its serialized plan (layer.tactic_state), or family -1.
Candidate restored(Search& sr, const std::string& name, const std::string& state, std::string* why) {
  for (int f : {kFused, kBias, kConvOnly}) {
    const std::string pre = kPrefix[f];
    if (name.compare(0, pre.size(), pre) != 0) continue;
    std::string e;
    if (FusedGraph::restore(sr.h, state, name.substr(pre.size()), &sr.graphs[f], &e) != 0 ||
        sr.graphs[f]->workspace(0) > kMaxWorkspace) {
      sr.graphs[f].reset();
      *why += " [" + name + ": " + (e.empty() ? "restored plan needs too much workspace" : e) + "]";
      return {};
    }
    sr.tried[f] = true;
    return {f, 0, name};
  }
  return {};
}

void reorder_now(ConvState& s, const void* w_krsc, void* w_rsc, cudaStream_t stream, std::string* err, int* rc) {
  const ConvParams& p = s.p;
  const cudaError_t e = nhwc::reorder_depthwise_weights(w_krsc, w_rsc, p.dtype, p.c, p.k_sp[0] * p.k_sp[1], stream);
  if (e != cudaSuccess) {
    *err = cuda_message("reordering depthwise weights", e);
    *rc = 1;
  }
}

}  // namespace

int conv_nhwc_prepare(Engine& engine, Layer& layer, ConvState& s, std::string* err) {
  const ConvParams& p = s.p;
  TP_REQUIRE(p.dtype != 1 || p.tf32, "a float32 NHWC convolution needs the TF32 math flag (strict float32 runs NCHW)");
  if (depthwise_applies(p)) s.tile = nhwc::depthwise_tiled_plan(window(p), kutil::sm_count(s.device));
  Search sr{engine, s, nullptr, {}, {false, false, false, false}, {}};
  if (engine.handles().cudnn(&sr.h, err)) return 1;
  const std::string sig = tactic_signature("conv", engine.tuning_level(), layer, engine);
  std::string wanted = layer.tactic_name;
  if (wanted.empty()) wanted = remembered_tactic(sig);
  Candidate chosen;
  std::string why;
  if (!wanted.empty() && wanted == layer.tactic_name && !layer.tactic_state.empty())
    chosen = restored(sr, wanted, layer.tactic_state, &why);
  if (chosen.family < 0 && !wanted.empty()) {
    chosen = named(sr, wanted);
    if (chosen.family >= 0 && build_candidate(sr, chosen, &why) != 0) chosen.family = -1;
  }
  if (chosen.family < 0) {
    const int level = engine.tuning_level();
    const std::vector<Candidate> cands = candidate_list(sr, level);
    if (level == 0) {
      for (const auto& c : cands) {
        std::string e;
        if (build_candidate(sr, c, &e) == 0) {
          chosen = c;
          break;
        }
        why += " [" + c.name + ": " + e + "]";
      }
    } else {
      size_t ws_max = 0;
      std::vector<char> ok(cands.size(), 0);
      for (size_t i = 0; i < cands.size(); ++i) {
        std::string e;
        if (build_candidate(sr, cands[i], &e) == 0) {
          ok[i] = 1;
          if (graph_family(cands[i].family))
            ws_max = std::max(ws_max, sr.graph(cands[i].family)->workspace(cands[i].plan));
        } else {
          why += " [" + cands[i].name + ": " + e + "]";
          layer.timings.emplace_back(cands[i].name, std::numeric_limits<double>::infinity());
        }
      }
      Scratch sc;
      if (make_scratch(engine, p, ws_max, &sc, err) != 0) return 1;
      CandidateTimer timer;
      if (timer.init(err) != 0) return 1;
      if (depthwise_applies(p)) {
        int rc = 0;
        reorder_now(s, sc.w, sc.w_rsc, timer.stream(), err, &rc);
        if (rc) return 1;
      }
      double best = std::numeric_limits<double>::infinity();
      for (size_t i = 0; i < cands.size(); ++i) {
        if (!ok[i]) continue;
        const Candidate& c = cands[i];
        FusedGraph* g = graph_family(c.family) ? sr.graph(c.family) : nullptr;
        const double ms = timer.time([&](cudaStream_t st) {
          std::string e;
          return run_candidate(s, sr.h, g, c, sc.x, sc.w, sc.w_rsc, sc.b, sc.z, sc.y, sc.ws, st, &e);
        });
        layer.timings.emplace_back(c.name, ms);
        if (ms < best) {
          best = ms;
          chosen = c;
        }
      }
      TP_TRY_CUDA(cudaStreamSynchronize(timer.stream()));
    }
  }
  TP_REQUIRE(chosen.family >= 0, "no convolution tactic works for this layer:" + why + sr.graph_errors);
  remember_tactic(sig, chosen.name);
  layer.tactic_name = chosen.name;
  layer.tactic = chosen.plan;
  layer.tactic_state.clear();
  s.win = window(p);
  if (chosen.family == kSmallC) {
    s.mode = ConvMode::SmallC;
    layer.workspace = 0;
    return 0;
  }
  if (chosen.family == kDepthwise) {
    s.mode = ConvMode::Depthwise;
    s.plan = chosen.plan;
    const size_t rsc_bytes = static_cast<size_t>(p.c * p.k_sp[0] * p.k_sp[1]) * p.esize;
    const TensorDesc& W = engine.tensor(layer.inputs[1]);
    void* w_const = W.kind == TensorKind::Weight ? engine.static_pointer(layer.inputs[1]) : nullptr;
    if (w_const != nullptr) {
      s.w_rsc = tp_cuda_malloc(engine.device(), rsc_bytes);
      TP_REQUIRE(s.w_rsc != nullptr, std::string("cannot allocate depthwise weights: ") + tp_last_error());
      int rc = 0;
      reorder_now(s, w_const, s.w_rsc, nullptr, err, &rc);
      if (rc) return 1;
      TP_TRY_CUDA(cudaDeviceSynchronize());
      layer.workspace = 0;
    } else {
      layer.workspace = align256(rsc_bytes);  // reordered per run
    }
    return 0;
  }
  s.mode = ConvMode::Graph;
  s.graph = std::move(sr.graphs[chosen.family]);
  s.plan = chosen.plan;
  s.epi_bias = chosen.family == kConvOnly;
  s.epi_residual = chosen.family != kFused;
  s.epi_act = chosen.family != kFused;
  layer.workspace = s.graph->workspace(s.plan);
  std::string ignored;  // without the bytes, a later prepare builds the plan from its name
  if (s.graph->serialize(s.plan, &layer.tactic_state, &ignored) != 0) layer.tactic_state.clear();
  return 0;
}

int conv_nhwc_launch(const Engine& engine, const Layer& layer, ConvState& s, const void* const* in, void* const* out,
                     const LaunchContext& ctx, std::string* err) {
  (void)layer;
  const ConvParams& p = s.p;
  const void* B = p.has_bias ? in[2] : nullptr;
  const void* Z = p.has_z ? in[3] : nullptr;
  if (s.mode == ConvMode::SmallC) {
    const Candidate c{kSmallC, 0, kPrefix[kSmallC]};
    return run_candidate(s, nullptr, nullptr, c, in[0], in[1], nullptr, B, Z, out[0], nullptr, ctx.stream, err);
  }
  if (s.mode == ConvMode::Depthwise) {
    const void* w_rsc = s.w_rsc;
    if (w_rsc == nullptr) {
      int rc = 0;
      reorder_now(s, in[1], ctx.workspace, ctx.stream, err, &rc);
      if (rc) return 1;
      w_rsc = ctx.workspace;
    }
    Candidate c{kDepthwise, s.plan, kDepthwiseNames[s.plan]};
    return run_candidate(s, nullptr, nullptr, c, in[0], in[1], w_rsc, B, Z, out[0], nullptr, ctx.stream, err);
  }
  cudnnHandle_t h = nullptr;
  if (engine.handles().cudnn(&h, err)) return 1;
  const int family = s.epi_bias ? kConvOnly : (s.epi_residual ? kBias : kFused);
  Candidate c{family, s.plan, ""};
  return run_candidate(s, h, s.graph.get(), c, in[0], in[1], nullptr, B, Z, out[0], ctx.workspace, ctx.stream, err);
}

}  // namespace lib
}  // namespace tp
