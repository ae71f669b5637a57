// Engine::finalize (engine.h): validate the tensor table and the launch list, allocate the arena, prepare every
// layer (descriptors, plans, tactic choice: the tuning level and tactic names of engine.h), allocate the shared
// workspace.
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

int Engine::finalize(std::string* err, const ProgressFn& progress) {
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
      case TensorKind::Weight: {
        const size_t begin = static_cast<size_t>(t.offset), end = static_cast<size_t>(t.offset + t.nbytes);
        const bool shared = begin < shared_bytes_;
        if (shared ? end > shared_size_ : end - shared_bytes_ > weights_bytes_) {
          *err = tensor_label(t, id) + " spans bytes [" + std::to_string(t.offset) + ", " + std::to_string(end) +
                 ") of " + (shared ? "the shared weights of " + std::to_string(shared_size_) + " bytes"
                                   : "a weights blob of " + std::to_string(weights_bytes_) + " bytes" +
                                         (shared_bytes_ ? " starting at offset " + std::to_string(shared_bytes_)
                                                        : std::string()));
          return 1;
        }
        break;
      }
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
  // prepare synchronizes the device and frees its scratch buffers: no other thread may be capturing meanwhile
  std::lock_guard<std::mutex> no_capture_meanwhile(capture_exclusion());
  size_t ws = 0;
  for (size_t li = 0; li < layers_.size(); ++li) {
    Layer& l = layers_[li];
    if (progress) progress(static_cast<int>(li), static_cast<int>(layers_.size()), layer_label(l));
    l.timings.clear();
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

}  // namespace tp
