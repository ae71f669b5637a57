// Engine::run and Engine::profile_layers (engine.h): resolve every tensor's device pointer and launch the layers.
//
// Streams: run() enqueues on the caller's stream and never synchronizes. When a run comes on a different stream
// than the previous one, it first waits (cudaStreamWaitEvent) for the previous run's completion event, because
// both use the same arena and workspace.
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
        p = weight_pointer(t.offset);
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
