// The engine executor (tp::Engine, engine.h) and the C API over it (tp_engine_* in runtime_api.h).
//
// Life cycle: add_tensor / add_layer / set_weights / set_arena_bytes, then finalize() once (validation, each
// kernel's prepare, arena and workspace allocation), then any number of run() / profile_layers() calls, from any
// thread (they are serialized by a mutex: the arena and the workspace are shared engine state).
//
// Streams: run() enqueues on the caller's stream and never synchronizes. When a run comes on a different stream
// than the previous one, it first waits (cudaStreamWaitEvent) for the previous run's completion event, because
// both use the same arena and workspace.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "tp/engine.h"
#include "tp/library_support.h"

namespace tp {
namespace {
using namespace ::tp::lib;  // NOLINT: this file's helpers

constexpr size_t kAlign = 256;

size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

const char* kind_name(TensorKind k) {
  switch (k) {
    case TensorKind::Input: return "input";
    case TensorKind::Output: return "output";
    case TensorKind::Weight: return "weight";
    case TensorKind::Activation: return "activation";
    case TensorKind::Alias: return "alias";
  }
  return "?";
}

std::string tensor_label(const TensorDesc& t, size_t id) {
  return "tensor " + std::to_string(id) + " '" + t.name + "' (" + kind_name(t.kind) + ")";
}

std::string layer_label(const Layer& l) { return "layer '" + l.name + "' (" + l.kernel + ")"; }

}  // namespace

Engine::Engine(int device) : device_(device), handles_(new Handles(device)) {}

Engine::~Engine() {
  DeviceGuard guard(device_);
  // Work of an earlier run may still be in flight on the caller's stream: wait for it before freeing memory
  // that the caching allocator could hand to someone else.
  if (last_done_ != nullptr) {
    if (has_run_) cudaEventSynchronize(last_done_);
    cudaEventDestroy(last_done_);
  }
  drop_graphs();
  for (auto& l : layers_)
    if (l.def != nullptr && l.def->release != nullptr && l.state != nullptr) {
      l.def->release(l);
      l.state = nullptr;
    }
  for (int i = 0; i < 4; ++i) tp_cuda_free(device_, scratch_[i]);
  tp_cuda_free(device_, workspace_);
  tp_cuda_free(device_, arena_);
  tp_cuda_free(device_, weights_);
  handles_.reset();
  cudaGetLastError();
}

int Engine::add_tensor(TensorDesc desc) {
  if (finalized_) return -1;
  if (desc.kind == TensorKind::Input) n_inputs_ = std::max<int>(n_inputs_, static_cast<int>(desc.index) + 1);
  if (desc.kind == TensorKind::Output) n_outputs_ = std::max<int>(n_outputs_, static_cast<int>(desc.index) + 1);
  tensors_.push_back(std::move(desc));
  return static_cast<int>(tensors_.size() - 1);
}

int Engine::add_layer(Layer layer) {
  if (finalized_) return -1;
  layer.state = nullptr;
  layer.def = nullptr;
  layers_.push_back(std::move(layer));
  return static_cast<int>(layers_.size() - 1);
}

void Engine::set_weights(const void* data, size_t bytes) {
  if (finalized_) {
    deferred_error_ = "set_weights() called after finalize()";
    return;
  }
  tp_cuda_free(device_, weights_);
  weights_ = nullptr;
  weights_bytes_ = 0;
  if (bytes == 0) return;
  weights_ = tp_cuda_malloc(device_, bytes);
  if (weights_ == nullptr) {
    deferred_error_ = std::string("cannot allocate ") + std::to_string(bytes) + " bytes of weights on device " +
                      std::to_string(device_) + ": " + tp_last_error();
    return;
  }
  DeviceGuard guard(device_);
  cudaError_t e = cudaMemcpy(weights_, data, bytes, cudaMemcpyHostToDevice);
  if (e != cudaSuccess) {
    cudaGetLastError();
    deferred_error_ = cuda_message("uploading the weights (cudaMemcpy)", e);
    return;
  }
  weights_bytes_ = bytes;
}

void Engine::set_arena_bytes(size_t bytes) {
  if (!finalized_) arena_bytes_ = bytes;
}

void* Engine::scratch_buffer(int index, size_t bytes) {
  if (index < 0 || index >= 4) return nullptr;
  if (bytes == 0) bytes = 1;
  if (scratch_[index] != nullptr && scratch_bytes_[index] >= bytes) return scratch_[index];
  tp_cuda_free(device_, scratch_[index]);
  scratch_[index] = tp_cuda_malloc(device_, align_up(bytes));
  scratch_bytes_[index] = scratch_[index] ? align_up(bytes) : 0;
  return scratch_[index];
}

void* Engine::static_pointer(int tensor_id) const {
  if (tensor_id < 0 || static_cast<size_t>(tensor_id) >= tensors_.size()) return nullptr;
  const TensorDesc& t = tensors_[static_cast<size_t>(tensor_id)];
  switch (t.kind) {
    case TensorKind::Weight:
      return weights_ ? static_cast<char*>(weights_) + t.offset : nullptr;
    case TensorKind::Activation:
      return arena_ ? static_cast<char*>(arena_) + t.offset : nullptr;
    case TensorKind::Alias: {
      void* base = static_pointer(static_cast<int>(t.index));
      return base ? static_cast<char*>(base) + t.offset : nullptr;
    }
    default:
      return nullptr;
  }
}

const TensorDesc& Engine::io_tensor(bool is_output, int index) const {
  static const TensorDesc kNone;
  const std::vector<int>& slots = is_output ? output_tensor_ : input_tensor_;
  if (index < 0 || static_cast<size_t>(index) >= slots.size() || slots[static_cast<size_t>(index)] < 0) {
    // Before finalize the slot table is not built yet: search the tensors.
    for (const auto& t : tensors_)
      if (t.kind == (is_output ? TensorKind::Output : TensorKind::Input) && t.index == index) return t;
    return kNone;
  }
  return tensors_[static_cast<size_t>(slots[static_cast<size_t>(index)])];
}

int Engine::finalize(std::string* err) {
  if (finalized_) {
    *err = "finalize() called twice";
    return 1;
  }
  if (!deferred_error_.empty()) {
    *err = deferred_error_;
    return 1;
  }
  // ---- tensor table --------------------------------------------------------------------------------
  const size_t n = tensors_.size();
  input_tensor_.assign(static_cast<size_t>(n_inputs_), -1);
  output_tensor_.assign(static_cast<size_t>(n_outputs_), -1);
  for (size_t id = 0; id < n; ++id) {
    const TensorDesc& t = tensors_[id];
    const size_t es = dtype_size(t.dtype);
    if (es == 0) {
      *err = tensor_label(t, id) + " has unsupported ONNX element type " + std::to_string(t.dtype);
      return 1;
    }
    for (int64_t d : t.dims)
      if (d < 0) {
        *err = tensor_label(t, id) + " has a negative dimension";
        return 1;
      }
    if (t.nbytes != t.numel() * static_cast<int64_t>(es)) {
      *err = tensor_label(t, id) + ": nbytes " + std::to_string(t.nbytes) + " != " + std::to_string(t.numel()) +
             " elements x " + std::to_string(es) + " bytes";
      return 1;
    }
    if (t.offset < 0) {
      *err = tensor_label(t, id) + " has a negative offset";
      return 1;
    }
    switch (t.kind) {
      case TensorKind::Input:
      case TensorKind::Output: {
        if (t.index < 0) {
          *err = tensor_label(t, id) + " has no slot index";
          return 1;
        }
        std::vector<int>& slots = t.kind == TensorKind::Input ? input_tensor_ : output_tensor_;
        int& first = slots[static_cast<size_t>(t.index)];
        if (first < 0) {
          first = static_cast<int>(id);
        } else {
          const TensorDesc& f = tensors_[static_cast<size_t>(first)];
          if (f.dtype != t.dtype || f.dims != t.dims) {
            *err = tensor_label(t, id) + " binds " + kind_name(t.kind) + " slot " + std::to_string(t.index) +
                   " with another dtype or shape than " + tensor_label(f, static_cast<size_t>(first));
            return 1;
          }
        }
        break;
      }
      case TensorKind::Weight:
        if (static_cast<size_t>(t.offset + t.nbytes) > weights_bytes_) {
          *err = tensor_label(t, id) + " spans bytes [" + std::to_string(t.offset) + ", " +
                 std::to_string(t.offset + t.nbytes) + ") of a weights blob of " + std::to_string(weights_bytes_) +
                 " bytes";
          return 1;
        }
        break;
      case TensorKind::Activation:
        if (static_cast<size_t>(t.offset + t.nbytes) > arena_bytes_) {
          *err = tensor_label(t, id) + " spans bytes [" + std::to_string(t.offset) + ", " +
                 std::to_string(t.offset + t.nbytes) + ") of an arena of " + std::to_string(arena_bytes_) + " bytes";
          return 1;
        }
        break;
      case TensorKind::Alias: {
        // Views refer to an earlier tensor (so resolution in id order works and there are no cycles).
        if (t.index < 0 || static_cast<size_t>(t.index) >= id) {
          *err = tensor_label(t, id) + " views tensor " + std::to_string(t.index) +
                 ", which is not an earlier tensor of the table";
          return 1;
        }
        const TensorDesc& base = tensors_[static_cast<size_t>(t.index)];
        if (t.offset + t.nbytes > base.nbytes) {
          *err = tensor_label(t, id) + " views bytes [" + std::to_string(t.offset) + ", " +
                 std::to_string(t.offset + t.nbytes) + ") of " + tensor_label(base, static_cast<size_t>(t.index)) +
                 ", which has " + std::to_string(base.nbytes) + " bytes";
          return 1;
        }
        break;
      }
      default:
        *err = tensor_label(t, id) + " has an unknown kind";
        return 1;
    }
  }
  for (size_t k = 0; k < input_tensor_.size(); ++k)
    if (input_tensor_[k] < 0) {
      *err = "engine input slot " + std::to_string(k) + " has no tensor (slots must be dense)";
      return 1;
    }
  for (size_t k = 0; k < output_tensor_.size(); ++k)
    if (output_tensor_[k] < 0) {
      *err = "engine output slot " + std::to_string(k) + " has no tensor (slots must be dense)";
      return 1;
    }

  // ---- layers --------------------------------------------------------------------------------------------
  auto base_kind = [&](int id) {
    const TensorDesc* t = &tensors_[static_cast<size_t>(id)];
    while (t->kind == TensorKind::Alias) t = &tensors_[static_cast<size_t>(t->index)];
    return t->kind;
  };
  layer_skip_.assign(layers_.size(), 0);
  layer_in_base_.assign(layers_.size(), 0);
  layer_out_base_.assign(layers_.size(), 0);
  size_t n_in = 0, n_out = 0;
  for (size_t li = 0; li < layers_.size(); ++li) {
    Layer& l = layers_[li];
    for (int id : l.inputs)
      if (id < -1 || id >= static_cast<int>(n)) {
        *err = layer_label(l) + ": input tensor id " + std::to_string(id) + " is out of range";
        return 1;
      }
    bool all_empty = !l.outputs.empty();
    for (int id : l.outputs) {
      if (id < 0 || id >= static_cast<int>(n)) {
        *err = layer_label(l) + ": output tensor id " + std::to_string(id) + " is out of range";
        return 1;
      }
      TensorKind k = base_kind(id);
      if (k == TensorKind::Input || k == TensorKind::Weight) {
        *err = layer_label(l) + " writes " + tensor_label(tensors_[static_cast<size_t>(id)], static_cast<size_t>(id)) +
               ", which lives in an engine input or the weights";
        return 1;
      }
      if (tensors_[static_cast<size_t>(id)].numel() != 0) all_empty = false;
    }
    layer_skip_[li] = all_empty ? 1 : 0;
    l.def = find_kernel(l.kernel);
    if (l.def == nullptr) {
      std::string names;
      for (const auto& k : kernel_names()) names += (names.empty() ? "" : ", ") + k;
      *err = layer_label(l) + ": no native kernel named '" + l.kernel + "' is registered (registered: " + names + ")";
      return 1;
    }
    layer_in_base_[li] = n_in;
    layer_out_base_[li] = n_out;
    n_in += l.inputs.size();
    n_out += l.outputs.size();
  }
  in_ptrs_.assign(n_in, nullptr);
  out_ptrs_.assign(n_out, nullptr);
  ptr_cache_.assign(n, nullptr);

  // Validation above needs no device; everything below does.
  DeviceGuard guard(device_);
  if (!guard.ok()) {
    *err = "cannot use CUDA device " + std::to_string(device_) + ": " + guard.error();
    return 1;
  }

  // Arena before prepare, so that static_pointer() of activations works inside prepare.
  auto fail = [&](const std::string& msg) {
    for (auto& l : layers_)
      if (l.def != nullptr && l.def->release != nullptr && l.state != nullptr) {
        l.def->release(l);
        l.state = nullptr;
      }
    tp_cuda_free(device_, arena_);
    arena_ = nullptr;
    tp_cuda_free(device_, workspace_);
    workspace_ = nullptr;
    workspace_bytes_ = 0;
    for (int i = 0; i < 4; ++i) {
      tp_cuda_free(device_, scratch_[i]);
      scratch_[i] = nullptr;
      scratch_bytes_[i] = 0;
    }
    *err = msg;
    return 1;
  };
  if (arena_bytes_ > 0) {
    arena_ = tp_cuda_malloc(device_, arena_bytes_);
    if (arena_ == nullptr)
      return fail("cannot allocate the activation arena of " + std::to_string(arena_bytes_) + " bytes: " +
                  tp_last_error());
  }

  // ---- prepare ---------------------------------------------------------------------------------------------
  size_t ws = 0;
  for (auto& l : layers_) {
    std::string msg;
    if (l.def->prepare != nullptr && l.def->prepare(*this, l, &msg) != 0)
      return fail(layer_label(l) + ": " + (msg.empty() ? std::string("prepare failed") : msg));
    ws = std::max(ws, l.workspace);
  }
  // A failed library call inside prepare may have left a sticky launch error behind: surface it now.
  cudaError_t pending = cudaDeviceSynchronize();
  if (pending != cudaSuccess) {
    cudaGetLastError();
    return fail(cuda_message("synchronizing after the layers' prepare", pending));
  }
  for (int i = 0; i < 4; ++i) {
    tp_cuda_free(device_, scratch_[i]);
    scratch_[i] = nullptr;
    scratch_bytes_[i] = 0;
  }
  if (ws > 0) {
    workspace_bytes_ = align_up(ws);
    workspace_ = tp_cuda_malloc(device_, workspace_bytes_);
    if (workspace_ == nullptr)
      return fail("cannot allocate the shared workspace of " + std::to_string(workspace_bytes_) + " bytes: " +
                  tp_last_error());
  }
  if (last_done_ == nullptr) {
    cudaError_t e = cudaEventCreateWithFlags(&last_done_, cudaEventDisableTiming);
    if (e != cudaSuccess) {
      cudaGetLastError();
      last_done_ = nullptr;
      return fail(cuda_message("cudaEventCreateWithFlags", e));
    }
  }
  finalized_ = true;
  return 0;
}

int Engine::resolve(const void* const* inputs, void* const* outputs, std::vector<void*>* ptrs,
                    std::string* err) const {
  ptrs->resize(tensors_.size());
  for (size_t id = 0; id < tensors_.size(); ++id) {
    const TensorDesc& t = tensors_[id];
    void* p = nullptr;
    switch (t.kind) {
      case TensorKind::Input:
        p = const_cast<void*>(inputs[t.index]);
        break;
      case TensorKind::Output:
        p = outputs[t.index];
        break;
      case TensorKind::Weight:
        p = weights_ == nullptr ? nullptr : static_cast<char*>(weights_) + t.offset;
        break;
      case TensorKind::Activation:
        p = arena_ == nullptr ? nullptr : static_cast<char*>(arena_) + t.offset;
        break;
      case TensorKind::Alias: {
        void* b = (*ptrs)[static_cast<size_t>(t.index)];
        p = b == nullptr ? nullptr : static_cast<char*>(b) + t.offset;
        break;
      }
    }
    if (p == nullptr && t.nbytes > 0) {
      *err = tensor_label(t, id) + " has no device memory (null " +
             (t.kind == TensorKind::Input ? "input" : "output") + " pointer for slot " + std::to_string(t.index) + ")";
      return 1;
    }
    (*ptrs)[id] = p;
  }
  return 0;
}

int Engine::order_after_previous_run(cudaStream_t stream, std::string* err) {
  if (has_run_ && stream != last_stream_) {
    cudaError_t e = cudaStreamWaitEvent(stream, last_done_, 0);
    if (e != cudaSuccess) {
      cudaGetLastError();
      *err = cuda_message("ordering after the previous run (cudaStreamWaitEvent)", e);
      return 1;
    }
  }
  return 0;
}

int Engine::launch_all(cudaStream_t stream, const std::vector<cudaEvent_t>* begin, const std::vector<cudaEvent_t>* end,
                       std::string* err) {
  if (order_after_previous_run(stream, err) != 0) return 1;
  if (launch_layers(stream, begin, end, err) != 0) return 1;
  cudaError_t e = cudaEventRecord(last_done_, stream);
  if (e != cudaSuccess) {
    cudaGetLastError();
    *err = cuda_message("cudaEventRecord after the run", e);
    return 1;
  }
  last_stream_ = stream;
  has_run_ = true;
  return 0;
}

int Engine::launch_layers(cudaStream_t stream, const std::vector<cudaEvent_t>* begin,
                          const std::vector<cudaEvent_t>* end, std::string* err) {
  // Clear an error left by unrelated work of this thread, so it is not blamed on our first layer.
  cudaGetLastError();
  LaunchContext ctx;
  ctx.stream = stream;
  ctx.workspace = workspace_;
  ctx.workspace_bytes = workspace_bytes_;
  ctx.device = device_;
  for (size_t li = 0; li < layers_.size(); ++li) {
    const Layer& l = layers_[li];
    if (begin != nullptr) cudaEventRecord((*begin)[li], stream);
    if (!layer_skip_[li]) {
      const void** in = in_ptrs_.data() + layer_in_base_[li];
      void** out = out_ptrs_.data() + layer_out_base_[li];
      for (size_t k = 0; k < l.inputs.size(); ++k)
        in[k] = l.inputs[k] < 0 ? nullptr : ptr_cache_[static_cast<size_t>(l.inputs[k])];
      for (size_t k = 0; k < l.outputs.size(); ++k) out[k] = ptr_cache_[static_cast<size_t>(l.outputs[k])];
      std::string msg;
      if (l.def->launch(*this, l, in, out, ctx, &msg) != 0) {
        *err = layer_label(l) + ": " + (msg.empty() ? std::string("launch failed") : msg);
        return 1;
      }
      cudaError_t e = cudaGetLastError();  // launch-configuration errors; does not synchronize
      if (e != cudaSuccess) {
        *err = layer_label(l) + ": " + cuda_message("kernel launch", e);
        return 1;
      }
    }
    if (end != nullptr) cudaEventRecord((*end)[li], stream);
  }
  return 0;
}

namespace {
constexpr size_t kMaxGraphs = 4;        // pointer sets kept per engine
constexpr uint64_t kMinHitsPerCapture = 2;  // after 16 captures, at least this many replays per capture
}  // namespace

void Engine::set_cuda_graph_enabled(bool enabled) {
  std::lock_guard<std::mutex> lock(run_mutex_);
  graph_enabled_ = enabled;
  if (!enabled) drop_graphs();
}

void Engine::drop_graphs() {
  for (auto& g : graphs_)
    if (g.exec != nullptr) cudaGraphExecDestroy(g.exec);
  graphs_.clear();
}

// Replays the graph captured for these pointers, or captures one. *done is false when the caller must launch
// layer by layer (first run, graphs off, or a capture that failed: then graphs stay off for this engine).
int Engine::replay_or_capture(const void* const* inputs, void* const* outputs, cudaStream_t stream, bool* done,
                              std::string* err) {
  *done = false;
  if (!graph_enabled_ || !has_run_) return 0;  // the first run is direct: libraries finish lazy setup there
  std::vector<const void*> key;
  key.reserve(static_cast<size_t>(n_inputs_ + n_outputs_));
  for (int i = 0; i < n_inputs_; ++i) key.push_back(inputs[i]);
  for (int i = 0; i < n_outputs_; ++i) key.push_back(outputs[i]);
  ++graph_clock_;
  GraphEntry* hit = nullptr;
  for (auto& g : graphs_)
    if (g.key == key) hit = &g;
  if (hit == nullptr) {
    if (graph_captures_ >= 16 && graph_replays_ < kMinHitsPerCapture * graph_captures_) {
      graph_enabled_ = false;
      graph_off_reason_ = "input/output pointers change between runs (capturing would cost more than it saves)";
      drop_graphs();
      return 0;
    }
    if (order_after_previous_run(stream, err) != 0) return 1;
    cudaGetLastError();
    cudaError_t e = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
      cudaGetLastError();
      graph_enabled_ = false;
      graph_off_reason_ = cuda_message("cudaStreamBeginCapture", e);
      return 0;
    }
    std::string launch_err;
    int rc = launch_layers(stream, nullptr, nullptr, &launch_err);
    cudaGraph_t graph = nullptr;
    e = cudaStreamEndCapture(stream, &graph);
    cudaGraphExec_t exec = nullptr;
    if (rc == 0 && e == cudaSuccess && graph != nullptr) e = cudaGraphInstantiate(&exec, graph, 0);
    if (graph != nullptr) cudaGraphDestroy(graph);
    if (rc != 0 || e != cudaSuccess || exec == nullptr) {
      cudaGetLastError();
      graph_enabled_ = false;
      graph_off_reason_ = rc != 0 ? "a layer could not be captured: " + launch_err
                                  : cuda_message("capturing the launch list", e);
      if (exec != nullptr) cudaGraphExecDestroy(exec);
      drop_graphs();
      return 0;  // nothing ran: the caller launches layer by layer
    }
    if (graphs_.size() >= kMaxGraphs) {
      auto oldest = graphs_.begin();
      for (auto it = graphs_.begin(); it != graphs_.end(); ++it)
        if (it->last_use < oldest->last_use) oldest = it;
      cudaGraphExecDestroy(oldest->exec);
      graphs_.erase(oldest);
    }
    graphs_.push_back(GraphEntry{std::move(key), exec, graph_clock_});
    hit = &graphs_.back();
    ++graph_captures_;
    tp_counter_add(TP_COUNTER_GRAPH_CAPTURES, 1);
  } else {
    if (order_after_previous_run(stream, err) != 0) return 1;
    ++graph_replays_;
    tp_counter_add(TP_COUNTER_GRAPH_REPLAYS, 1);
  }
  hit->last_use = graph_clock_;
  cudaError_t e = cudaGraphLaunch(hit->exec, stream);
  if (e == cudaSuccess) e = cudaEventRecord(last_done_, stream);
  if (e != cudaSuccess) {
    cudaGetLastError();
    *err = cuda_message("cudaGraphLaunch", e);
    return 1;
  }
  last_stream_ = stream;
  *done = true;
  return 0;
}

int Engine::run(const void* const* inputs, void* const* outputs, cudaStream_t stream, std::string* err) {
  if (!finalized_) {
    *err = "run() before a successful finalize()";
    return 1;
  }
  if ((inputs == nullptr && n_inputs_ > 0) || (outputs == nullptr && n_outputs_ > 0)) {
    *err = "run(): null input or output pointer array";
    return 1;
  }
  std::lock_guard<std::mutex> lock(run_mutex_);
  DeviceGuard guard(device_);
  if (!guard.ok()) {
    *err = "cannot use CUDA device " + std::to_string(device_) + ": " + guard.error();
    return 1;
  }
  if (resolve(inputs, outputs, &ptr_cache_, err) != 0) return 1;
  bool done = false;
  if (replay_or_capture(inputs, outputs, stream, &done, err) != 0) return 1;
  if (done) return 0;
  return launch_all(stream, nullptr, nullptr, err);
}

int Engine::profile_layers(const void* const* inputs, void* const* outputs, cudaStream_t stream, int iterations,
                           std::vector<double>* ms_per_layer, std::string* err) {
  if (!finalized_) {
    *err = "profile_layers() before a successful finalize()";
    return 1;
  }
  if (iterations < 1) iterations = 1;
  std::lock_guard<std::mutex> lock(run_mutex_);
  DeviceGuard guard(device_);
  if (!guard.ok()) {
    *err = "cannot use CUDA device " + std::to_string(device_) + ": " + guard.error();
    return 1;
  }
  if (resolve(inputs, outputs, &ptr_cache_, err) != 0) return 1;
  const size_t L = layers_.size();
  std::vector<cudaEvent_t> begin(L, nullptr), end(L, nullptr);
  auto destroy = [&]() {
    for (auto ev : begin)
      if (ev) cudaEventDestroy(ev);
    for (auto ev : end)
      if (ev) cudaEventDestroy(ev);
  };
  for (size_t i = 0; i < L; ++i) {
    cudaError_t e1 = cudaEventCreate(&begin[i]);
    cudaError_t e2 = cudaEventCreate(&end[i]);
    if (e1 != cudaSuccess || e2 != cudaSuccess) {
      cudaGetLastError();
      destroy();
      *err = cuda_message("cudaEventCreate", e1 != cudaSuccess ? e1 : e2);
      return 1;
    }
  }
  ms_per_layer->assign(L, 0.0);
  // One warm-up run, then `iterations` timed runs.
  if (launch_all(stream, nullptr, nullptr, err) != 0) {
    destroy();
    return 1;
  }
  for (int it = 0; it < iterations; ++it) {
    if (launch_all(stream, &begin, &end, err) != 0) {
      destroy();
      return 1;
    }
    cudaError_t e = cudaStreamSynchronize(stream);
    if (e != cudaSuccess) {
      cudaGetLastError();
      destroy();
      *err = cuda_message("cudaStreamSynchronize while profiling", e);
      return 1;
    }
    for (size_t i = 0; i < L; ++i) {
      float ms = 0.f;
      e = cudaEventElapsedTime(&ms, begin[i], end[i]);
      if (e != cudaSuccess) {
        cudaGetLastError();
        destroy();
        *err = cuda_message("cudaEventElapsedTime", e);
        return 1;
      }
      (*ms_per_layer)[i] += ms;
    }
  }
  for (auto& v : *ms_per_layer) v /= iterations;
  destroy();
  return 0;
}

}  // namespace tp

// ------------------------------------------------------------------------------------------------- C API --

namespace {
const tp::Engine* as_engine(const tp_engine* e) { return static_cast<const tp::Engine*>(e); }
}  // namespace

extern "C" {

int tp_engine_num_inputs(const tp_engine* engine) { return engine ? as_engine(engine)->num_inputs() : 0; }

int tp_engine_num_outputs(const tp_engine* engine) { return engine ? as_engine(engine)->num_outputs() : 0; }

int tp_engine_io_info(const tp_engine* engine, int is_output, int index, int32_t* dtype, const int64_t** dims,
                      size_t* ndims) {
  if (engine == nullptr) {
    tp_set_last_error("tp_engine_io_info: null engine");
    return 1;
  }
  const tp::Engine* e = as_engine(engine);
  const int count = is_output ? e->num_outputs() : e->num_inputs();
  if (index < 0 || index >= count) {
    std::string msg = std::string("tp_engine_io_info: ") + (is_output ? "output" : "input") + " index " +
                      std::to_string(index) + " out of range (engine has " + std::to_string(count) + ")";
    tp_set_last_error(msg.c_str());
    return 1;
  }
  const tp::TensorDesc& t = e->io_tensor(is_output != 0, index);
  if (dtype) *dtype = t.dtype;
  if (dims) *dims = t.dims.data();
  if (ndims) *ndims = t.dims.size();
  return 0;
}

int tp_engine_run(tp_engine* engine, const void* const* inputs, void* const* outputs, void* stream) {
  if (engine == nullptr) {
    tp_set_last_error("tp_engine_run: null engine");
    return 1;
  }
  std::string err;
  if (static_cast<tp::Engine*>(engine)->run(inputs, outputs, static_cast<cudaStream_t>(stream), &err) != 0) {
    tp_set_last_error(err.c_str());
    return 1;
  }
  tp_counter_add(TP_COUNTER_GPU_ENGINE_RUNS, 1);
  return 0;
}

}  // extern "C"
