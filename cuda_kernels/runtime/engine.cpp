// The engine executor (tp::Engine, engine.h): construction, assembly and the device memory it owns.
//
// Life cycle: add_tensor / add_layer / set_weights / set_arena_bytes, then finalize() once (engine_finalize.cpp:
// validation, each kernel's prepare, arena and workspace allocation), then any number of run() / profile_layers()
// calls (engine_run.cpp, with CUDA graph replay in engine_graph.cpp), from any thread (they are serialized by a
// mutex: the arena and the workspace are shared engine state). The C API over it is engine_capi.cpp.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "engine_internal.h"
#include "tp/engine.h"
#include "tp/library_support.h"

namespace tp {
using namespace ::tp::lib;  // NOLINT: the runtime's helpers
using namespace ::tp::eng;  // NOLINT

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
  weights_owner_.reset();  // frees our weights unless an engine sharing them still lives
  shared_.reset();
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
  weights_owner_.reset();
  weights_ = nullptr;
  weights_bytes_ = 0;
  if (bytes == 0) return;
  weights_ = tp_cuda_malloc(device_, bytes);
  const int device = device_;
  if (weights_ != nullptr) weights_owner_ = std::shared_ptr<void>(weights_, [device](void* p) { tp_cuda_free(device, p); });
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

void Engine::share_weights(const Engine& base, size_t shared_bytes) {
  if (finalized_) {
    deferred_error_ = "share_weights() called after finalize()";
    return;
  }
  if (&base == this || base.device_ != device_ || !base.finalized_ || base.shared_bytes_ != 0 ||
      shared_bytes < base.weights_bytes_) {
    deferred_error_ = "share_weights(): the base engine must be another finalized engine on device " +
                      std::to_string(device_) + " that shares nothing itself, and the shared range (" +
                      std::to_string(shared_bytes) + " bytes) must cover its " + std::to_string(base.weights_bytes_) +
                      " bytes of weights";
    return;
  }
  shared_ = base.weights_owner_;
  shared_bytes_ = shared_bytes;
  shared_size_ = base.weights_bytes_;
}

void* Engine::weight_pointer(int64_t offset) const {
  if (offset < 0) return nullptr;
  const size_t o = static_cast<size_t>(offset);
  if (o < shared_bytes_) return shared_ ? static_cast<char*>(shared_.get()) + o : nullptr;
  return weights_ ? static_cast<char*>(weights_) + (o - shared_bytes_) : nullptr;
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
      return weight_pointer(t.offset);
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

}  // namespace tp
