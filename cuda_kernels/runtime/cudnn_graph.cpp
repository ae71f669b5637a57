// FusedGraph (cudnn_graph.h): operation graphs of cuDNN's graph API built with the cuDNN frontend headers
// (the nvidia-cudnn-frontend wheel). The only file that includes them: they are large and slow to compile.
//
// Facts this relies on (measured on an H200 with cuDNN 9.19 by cuda_kernels/tools/probe_fusion.cpp):
// conv + bias + ReLU in NHWC half has precompiled fused engines; conv + bias + residual + ReLU, and clip / swish
// epilogues, only runtime-compiled ones (NVRTC at plan build, ~0.3-0.7 s for a new kernel, ~30 ms for one cuDNN
// compiled before in the process); flash attention with an additive [B, 1, 1, S] bias and strided Q/K/V views of
// a packed QKV tensor is supported and matches a float64 reference to 3e-4.
#include "cudnn_graph.h"

#include <cudnn_frontend.h>

#include <algorithm>
#include <exception>
#include <map>
#include <mutex>
#include <unordered_map>

#include "tp/runtime_api.h"

namespace tp {
namespace lib {

namespace fe = cudnn_frontend;
using TensorPtr = std::shared_ptr<fe::graph::Tensor_attributes>;

struct FusedGraph::Impl {
  fe::graph::Graph graph;
  std::vector<int> index;  // our candidate -> the frontend's plan index
  std::vector<std::string> names;
  std::vector<bool> rtc;
  std::vector<char> built;
  std::vector<size_t> ws;
  std::string restored_from;  // the bytes restore() read (a restored graph cannot build its plan again)
};

FusedGraph::FusedGraph(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FusedGraph::~FusedGraph() = default;

namespace {

fe::DataType_t io_type(int onnx_dtype) {
  switch (onnx_dtype) {
    case 1: return fe::DataType_t::FLOAT;
    case 16: return fe::DataType_t::BFLOAT16;
    default: return fe::DataType_t::HALF;
  }
}

int fail(std::string* err, const std::string& what, fe::error_t st) {
  *err = what + ": " + st.get_message();
  return 1;
}

// validate -> operation graph -> heuristics (A, then FALLBACK) -> support check; candidates deduplicated by name.
// `exact_inputs`: leave out engines that read their inputs converted to a narrower type (cuDNN's numerical note
// DOWN_CONVERT_INPUTS: float32 data read as float16 or bfloat16, less precise than TF32).
int finish(cudnnHandle_t h, std::unique_ptr<FusedGraph::Impl>& impl, const char* what, std::string* err,
           bool exact_inputs = false) {
  auto& g = impl->graph;
  fe::error_t st = g.validate();
  if (st.is_bad()) return fail(err, std::string(what) + " graph is not valid", st);
  st = g.build_operation_graph(h);
  if (st.is_bad()) return fail(err, std::string("cuDNN refuses the ") + what + " graph", st);
  st = g.create_execution_plans({fe::HeurMode_t::A, fe::HeurMode_t::FALLBACK});
  if (st.is_bad()) return fail(err, std::string("cuDNN has no engine for the ") + what + " graph", st);
  if (exact_inputs) g.deselect_numeric_notes({fe::NumericalNote_t::DOWN_CONVERT_INPUTS});
  st = g.check_support();
  if (st.is_bad()) return fail(err, std::string("cuDNN supports no engine for the ") + what + " graph", st);
  const int64_t count = g.get_execution_plan_count();
  for (int64_t i = 0; i < count; ++i) {
    std::string name;
    if (g.get_plan_name_at_index(i, name).is_bad() || name.empty()) continue;
    if (std::find(impl->names.begin(), impl->names.end(), name) != impl->names.end()) continue;
    std::vector<fe::BehaviorNote_t> notes;
    bool rtc = false;
    if (g.get_behavior_notes_for_plan_at_index(i, notes).is_good())
      rtc = std::find(notes.begin(), notes.end(), fe::BehaviorNote_t::RUNTIME_COMPILATION) != notes.end();
    impl->index.push_back(static_cast<int>(i));
    impl->names.push_back(name);
    impl->rtc.push_back(rtc);
  }
  if (impl->index.empty()) {
    *err = std::string("cuDNN offers no engine configuration for the ") + what + " graph";
    return 1;
  }
  impl->built.assign(impl->index.size(), 0);
  impl->ws.assign(impl->index.size(), 0);
  return 0;
}

fe::graph::Pointwise_attributes pw(fe::PointwiseMode_t mode) {
  return fe::graph::Pointwise_attributes().set_mode(mode).set_compute_data_type(fe::DataType_t::FLOAT);
}

TensorPtr activation(fe::graph::Graph& g, TensorPtr x, const ConvGraphSpec& s, std::string* err) {
  switch (s.act) {
    case kGraphActNone:
      return x;
    case kGraphActRelu:
      return g.pointwise(x, pw(fe::PointwiseMode_t::RELU_FWD));
    case kGraphActClip:
      return g.pointwise(x, pw(fe::PointwiseMode_t::RELU_FWD).set_relu_lower_clip(s.alpha).set_relu_upper_clip(s.beta));
    case kGraphActSigmoid:
      return g.pointwise(x, pw(fe::PointwiseMode_t::SIGMOID_FWD));
    case kGraphActSilu:
      return g.pointwise(x, pw(fe::PointwiseMode_t::SWISH_FWD).set_swish_beta(1.f));
    case kGraphActLeakyRelu:
      return g.pointwise(x, pw(fe::PointwiseMode_t::RELU_FWD).set_relu_lower_clip(0.f).set_relu_lower_clip_slope(s.alpha));
    case kGraphActTanh:
      return g.pointwise(x, pw(fe::PointwiseMode_t::TANH_FWD));
    case kGraphActHardSwish: {  // x * clip(x + 3, 0, 6) / 6
      auto three = g.tensor(3.0f, fe::graph::ScalarType::RUNTIME_PARAM);
      auto sixth = g.tensor(1.0f / 6.0f, fe::graph::ScalarType::RUNTIME_PARAM);
      auto t = g.pointwise(x, three, pw(fe::PointwiseMode_t::ADD));
      t = g.pointwise(t, pw(fe::PointwiseMode_t::RELU_FWD).set_relu_lower_clip(0.f).set_relu_upper_clip(6.f));
      t = g.pointwise(t, sixth, pw(fe::PointwiseMode_t::MUL));
      return g.pointwise(x, t, pw(fe::PointwiseMode_t::MUL));
    }
    default:
      *err = "activation code " + std::to_string(s.act) + " has no cuDNN graph form";
      return nullptr;
  }
}

}  // namespace

int FusedGraph::conv(cudnnHandle_t h, const ConvGraphSpec& s, std::unique_ptr<FusedGraph>* out, std::string* err) {
  // float32 data: engines that keep TF32 precision, and all engines only where cuDNN offers none of those
  if (s.dtype == 1 && conv_graph(h, s, true, out, err) == 0) return 0;
  return conv_graph(h, s, false, out, err);
}

int FusedGraph::conv_graph(cudnnHandle_t h, const ConvGraphSpec& s, bool exact_inputs, std::unique_ptr<FusedGraph>* out,
                           std::string* err) {
  try {
    auto impl = std::make_unique<Impl>();
    auto& g = impl->graph;
    g.set_io_data_type(io_type(s.dtype))
        .set_intermediate_data_type(fe::DataType_t::FLOAT)
        .set_compute_data_type(fe::DataType_t::FLOAT);
    const int64_t cg = s.c / s.group;
    auto X = g.tensor(fe::graph::Tensor_attributes().set_name("X").set_uid(1).set_dim({s.n, s.c, s.h, s.w}).set_stride(
        {s.h * s.w * s.c, 1, s.w * s.c, s.c}));
    auto W = g.tensor(fe::graph::Tensor_attributes().set_name("W").set_uid(2).set_dim({s.k, cg, s.r, s.s}).set_stride(
        {s.r * s.s * cg, 1, s.s * cg, cg}));
    auto y = g.conv_fprop(X, W,
                          fe::graph::Conv_fprop_attributes()
                              .set_pre_padding({s.pad_begin[0], s.pad_begin[1]})
                              .set_post_padding({s.pad_end[0], s.pad_end[1]})
                              .set_stride({s.stride[0], s.stride[1]})
                              .set_dilation({s.dilation[0], s.dilation[1]})
                              .set_compute_data_type(fe::DataType_t::FLOAT));
    const std::vector<int64_t> ydim = {s.n, s.k, s.p, s.q}, ystride = {s.p * s.q * s.k, 1, s.q * s.k, s.k};
    if (s.bias) {
      auto B = g.tensor(fe::graph::Tensor_attributes().set_name("B").set_uid(3).set_dim({1, s.k, 1, 1}).set_stride(
          {s.k, 1, s.k, s.k}));
      y = g.pointwise(y, B, pw(fe::PointwiseMode_t::ADD));
    }
    TensorPtr Z;
    if (s.residual)
      Z = g.tensor(fe::graph::Tensor_attributes().set_name("Z").set_uid(4).set_dim(ydim).set_stride(ystride));
    if (Z && !s.residual_after_act) y = g.pointwise(y, Z, pw(fe::PointwiseMode_t::ADD));
    y = activation(g, y, s, err);
    if (!y) return 1;
    if (Z && s.residual_after_act) y = g.pointwise(y, Z, pw(fe::PointwiseMode_t::ADD));  // conv, +B, act, +Z
    y->set_output(true).set_uid(5).set_dim(ydim).set_stride(ystride).set_data_type(io_type(s.dtype));
    if (finish(h, impl, "convolution", err, exact_inputs)) return 1;
    out->reset(new FusedGraph(std::move(impl)));
    return 0;
  } catch (const std::exception& e) {
    *err = std::string("cuDNN frontend: ") + e.what();
    return 1;
  }
}

namespace {

// The kernel cache of dynamic-shape attention graphs of one topology on the current device: what stays fixed
// while batch and sequence lengths vary (dtype, heads, head sizes, row strides, mask broadcast, scale). A cache is
// finalized against the first operation graph built with it, hence one per topology.
std::shared_ptr<fe::KernelCache> attention_kernel_cache(const AttentionGraphSpec& s) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<fe::KernelCache>> caches;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  std::string key = std::to_string(device) + "|" + std::to_string(s.dtype) + "|" + std::to_string(s.h) + "|" +
                    std::to_string(s.d) + "|" + std::to_string(s.dv) + "|" + std::to_string(s.q_stride[2]) + "|" +
                    std::to_string(s.k_stride[2]) + "|" + std::to_string(s.v_stride[2]) + "|" +
                    std::to_string(s.scale) + "|" + (s.mask ? "m" : "-");
  if (s.mask)
    for (int i = 0; i < 4; ++i) key += s.m_dim[i] == 1 ? "1" : "n";
  std::lock_guard<std::mutex> lock(mu);
  std::shared_ptr<fe::KernelCache>& cache = caches[key];
  if (!cache) cache = std::make_shared<fe::KernelCache>();
  return cache;
}

}  // namespace

int FusedGraph::attention(cudnnHandle_t h, const AttentionGraphSpec& s, std::unique_ptr<FusedGraph>* out,
                          std::string* err) {
  // a dynamic-shape graph where asked for, and a static one where cuDNN refuses that (cuDNN < 9.4, no engine)
  if (s.dynamic && attention_graph(h, s, true, out, err) == 0) return 0;
  return attention_graph(h, s, false, out, err);
}

int FusedGraph::attention_graph(cudnnHandle_t h, const AttentionGraphSpec& s, bool dynamic,
                                std::unique_ptr<FusedGraph>* out, std::string* err) {
  try {
    auto impl = std::make_unique<Impl>();
    auto& g = impl->graph;
    g.set_io_data_type(io_type(s.dtype))
        .set_intermediate_data_type(fe::DataType_t::FLOAT)
        .set_compute_data_type(fe::DataType_t::FLOAT);
    if (dynamic) {
      std::shared_ptr<fe::KernelCache> cache = attention_kernel_cache(s);
      if (!cache) {
        *err = "no current CUDA device for the attention kernel cache";
        return 1;
      }
      g.set_dynamic_shape_enabled(true).set_kernel_cache(cache);
    }
    auto tensor = [&](const char* name, int64_t uid, int64_t dlast, const int64_t* st) {
      return g.tensor(fe::graph::Tensor_attributes().set_name(name).set_uid(uid).set_dim(
          {s.b, s.h, uid == 1 ? s.sq : s.skv, dlast}).set_stride({st[0], st[1], st[2], st[3]}));
    };
    auto Q = tensor("Q", 1, s.d, s.q_stride);
    auto K = tensor("K", 2, s.d, s.k_stride);
    auto V = tensor("V", 3, s.dv, s.v_stride);
    auto opts = fe::graph::SDPA_attributes().set_name("sdpa").set_generate_stats(false).set_attn_scale(s.scale);
    if (s.mask) {
      auto M = g.tensor(fe::graph::Tensor_attributes()
                            .set_name("M")
                            .set_uid(4)
                            .set_dim({s.m_dim[0], s.m_dim[1], s.m_dim[2], s.m_dim[3]})
                            .set_stride({s.m_stride[0], s.m_stride[1], s.m_stride[2], s.m_stride[3]})
                            .set_data_type(io_type(s.dtype)));
      opts.set_bias(M);
    }
    auto outs = g.sdpa(Q, K, V, opts);
    outs[0]->set_output(true).set_uid(5).set_dim({s.b, s.h, s.sq, s.dv}).set_stride(
        {s.o_stride[0], s.o_stride[1], s.o_stride[2], s.o_stride[3]});
    if (finish(h, impl, "attention", err)) return 1;
    out->reset(new FusedGraph(std::move(impl)));
    return 0;
  } catch (const std::exception& e) {
    *err = std::string("cuDNN frontend: ") + e.what();
    return 1;
  }
}

int FusedGraph::candidates() const { return static_cast<int>(impl_->index.size()); }
const std::string& FusedGraph::name(int i) const { return impl_->names.at(static_cast<size_t>(i)); }
bool FusedGraph::runtime_compiled(int i) const { return impl_->rtc.at(static_cast<size_t>(i)); }
bool FusedGraph::built(int i) const { return impl_->built.at(static_cast<size_t>(i)) != 0; }
size_t FusedGraph::workspace(int i) const { return impl_->ws.at(static_cast<size_t>(i)); }

int FusedGraph::find(const std::string& name) const {
  for (size_t i = 0; i < impl_->names.size(); ++i)
    if (impl_->names[i] == name) return static_cast<int>(i);
  return -1;
}

int FusedGraph::build(int i, std::string* err) {
  const size_t k = static_cast<size_t>(i);
  if (impl_->built.at(k)) return 0;
  try {
    fe::error_t st = impl_->graph.build_plan_at_index(impl_->index[k]);
    if (st.is_bad()) return fail(err, "building cuDNN plan " + impl_->names[k], st);
    int64_t ws = 0;
    st = impl_->graph.get_workspace_size_plan_at_index(impl_->index[k], ws);
    if (st.is_bad()) return fail(err, "workspace of cuDNN plan " + impl_->names[k], st);
    impl_->ws[k] = static_cast<size_t>(std::max<int64_t>(ws, 0));
    impl_->built[k] = 1;
    tp_counter_add(TP_COUNTER_PLANS_BUILT, 1);
    return 0;
  } catch (const std::exception& e) {
    *err = "building cuDNN plan " + impl_->names[k] + ": " + e.what();
    return 1;
  }
}

int FusedGraph::serialize(int i, std::string* out, std::string* err) {
  const size_t k = static_cast<size_t>(i);
  if (!impl_->built.at(k)) {
    *err = "cuDNN plan " + impl_->names[k] + " is not built";
    return 1;
  }
  if (!impl_->restored_from.empty()) {
    *out = impl_->restored_from;
    return 0;
  }
  try {
    // Building a built plan again only makes it the graph's current one, which serialize() writes.
    fe::error_t st = impl_->graph.build_plan_at_index(impl_->index[k]);
    if (st.is_bad()) return fail(err, "selecting cuDNN plan " + impl_->names[k], st);
    std::vector<uint8_t> data;
    st = impl_->graph.serialize(data, /*serialize_structure=*/false);
    if (st.is_bad()) return fail(err, "serializing cuDNN plan " + impl_->names[k], st);
    out->assign(data.begin(), data.end());
    return 0;
  } catch (const std::exception& e) {
    *err = "serializing cuDNN plan " + impl_->names[k] + ": " + e.what();
    return 1;
  }
}

int FusedGraph::restore(cudnnHandle_t h, const std::string& bytes, const std::string& name,
                        std::unique_ptr<FusedGraph>* out, std::string* err) {
  try {
    auto impl = std::make_unique<Impl>();
    const std::vector<uint8_t> data(bytes.begin(), bytes.end());
    fe::error_t st = impl->graph.deserialize(h, data, /*enforce_precompiled=*/true, /*run_warmup=*/false);
    if (st.is_bad()) return fail(err, "restoring cuDNN plan " + name, st);
    int64_t ws = 0;
    st = impl->graph.get_workspace_size_plan_at_index(0, ws);
    if (st.is_bad()) return fail(err, "workspace of restored cuDNN plan " + name, st);
    impl->index = {0};
    impl->names = {name};
    impl->rtc = {false};
    impl->built = {1};
    impl->ws = {static_cast<size_t>(std::max<int64_t>(ws, 0))};
    impl->restored_from = bytes;
    out->reset(new FusedGraph(std::move(impl)));
    tp_counter_add(TP_COUNTER_PLANS_RESTORED, 1);
    return 0;
  } catch (const std::exception& e) {
    *err = "restoring cuDNN plan " + name + ": " + e.what();
    return 1;
  }
}

int FusedGraph::execute(cudnnHandle_t h, int i, const int64_t* uids, void* const* ptrs, int n, void* workspace,
                        std::string* err) const {
  const size_t k = static_cast<size_t>(i);
  try {
    std::unordered_map<int64_t, void*> pack;
    pack.reserve(static_cast<size_t>(n));
    for (int j = 0; j < n; ++j) pack.emplace(uids[j], ptrs[j]);
    fe::error_t st = impl_->graph.execute_plan_at_index(h, pack, workspace, impl_->index[k]);
    if (st.is_bad()) return fail(err, "running cuDNN plan " + impl_->names[k], st);
    return 0;
  } catch (const std::exception& e) {
    *err = "running cuDNN plan " + impl_->names[k] + ": " + e.what();
    return 1;
  }
}

}  // namespace lib
}  // namespace tp
