// ep_trtpy native engine: a static-shape launch list executed on one CUDA stream without Python.
//
// An Engine is assembled by the Python builder through the pybind11 module (ep_trtpy._kernels.Engine):
// tensors and layers are added one by one (mirroring ep_trtpy/engine/plan.py), weights are uploaded, then
// finalize() asks every layer's kernel to prepare (descriptors, cuBLASLt/cuDNN plans, tactic choice, workspace).
// run() resolves each tensor's device pointer (input, output, weights + offset, arena + offset, or a view of
// another tensor) and launches the layers in order on the given stream.
//
// Kernels register themselves (TP_REGISTER_KERNEL) with a prepare/launch/release triple; the parameter layout of
// each kernel is documented beside its Python lowering in ep_trtpy/builder/lowering/.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tp/runtime_api.h"

namespace tp {

enum class TensorKind : int { Input = 0, Output = 1, Weight = 2, Activation = 3, Alias = 4 };

struct TensorDesc {
  int32_t dtype = 0;  // ONNX element type
  std::vector<int64_t> dims;
  TensorKind kind = TensorKind::Activation;
  int64_t index = -1;   // input/output position, or the viewed tensor id for Alias
  int64_t offset = 0;   // bytes into weights / arena / viewed tensor
  int64_t nbytes = 0;
  std::string name;

  int64_t numel() const {
    int64_t n = 1;
    for (auto d : dims) n *= d;
    return n;
  }
};

TP_API size_t dtype_size(int32_t onnx_dtype);  // 0 for unknown types

class Engine;

// Everything a launch needs besides the layer and its operand pointers.
struct LaunchContext {
  cudaStream_t stream = nullptr;
  void* workspace = nullptr;  // engine-wide scratch, at least layer.workspace bytes, 256-byte aligned
  size_t workspace_bytes = 0;
  int device = 0;
};

struct Layer {
  std::string kernel;
  std::vector<int> inputs;   // tensor ids; -1 = absent optional operand
  std::vector<int> outputs;  // tensor ids
  std::vector<int64_t> ints;
  std::vector<double> floats;
  int64_t tactic = -1;       // kernel-specific; prepare() may choose one when < 0 and write it back
  // Kernel-specific name of the tactic (a cuDNN engine configuration, a cuBLASLt algorithm, one of our kernels).
  // prepare() uses it when it is not empty (then `tactic` is ignored), and writes back the name it chose.
  std::string tactic_name;
  // Kernel-specific bytes that let a later prepare() set up `tactic_name` without searching or compiling (a
  // serialized cuDNN execution plan, with its runtime-compiled kernel). prepare() uses them when they are valid
  // for this cuDNN and GPU (else it falls back to the name), and writes back the bytes of its choice ("" if none).
  std::string tactic_state;
  // The candidates prepare() timed (name, ms; +inf for a failure), in order; empty when it timed nothing.
  std::vector<std::pair<std::string, double>> timings;
  size_t workspace = 0;      // scratch bytes; prepare() may raise it
  std::string name;
  // Kernel-owned state created by prepare() and destroyed by release().
  void* state = nullptr;
  const struct KernelDef* def = nullptr;
};

// Status convention inside the runtime: 0 = ok; on failure a kernel writes a sentence into *err.
struct KernelDef {
  const char* name;
  // Validate the layer's operands and parameters against the engine's tensor table; create descriptors/plans;
  // choose a tactic when layer.tactic < 0 (time candidates with Engine::scratch_* buffers if useful); set
  // layer.workspace. Runs once, at Engine::finalize(), on the engine's device.
  int (*prepare)(Engine& engine, Layer& layer, std::string* err);
  // Enqueue the layer on ctx.stream. `in`/`out` are device pointers aligned with layer.inputs/outputs
  // (nullptr for an absent operand). Must not synchronize the stream or allocate device memory.
  int (*launch)(const Engine& engine, const Layer& layer, const void* const* in, void* const* out,
                const LaunchContext& ctx, std::string* err);
  // Free layer.state (may be nullptr).
  void (*release)(Layer& layer);
};

TP_API const KernelDef* find_kernel(const std::string& name);
TP_API std::vector<std::string> kernel_names();
TP_API void register_kernel(const KernelDef* def);

struct KernelRegistrar {
  explicit KernelRegistrar(const KernelDef* def) { register_kernel(def); }
};
#define TP_REGISTER_KERNEL(def_var) static ::tp::KernelRegistrar tp_registrar_##def_var(&def_var)

// Library handles shared by the layers of one engine (created lazily on the engine's device).
struct Handles;

}  // namespace tp

// The C API in runtime_api.h names this type; it is the Engine itself. (TP_API: the pybind11 module uses the
// class across the library boundary, so its type info and members are exported from the runtime.)
struct TP_API tp_engine {
  virtual ~tp_engine() = default;
};

namespace tp {

class TP_API Engine final : public tp_engine {
 public:
  explicit Engine(int device);
  ~Engine() override;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // ---- assembly (before finalize) --------------------------------------------------------------------
  int add_tensor(TensorDesc desc);  // returns the tensor id (ids are dense, in order of addition)
  int add_layer(Layer layer);       // returns the layer index
  // Upload the weights blob (host bytes) to the device.
  void set_weights(const void* data, size_t bytes);
  // Read weight tensors whose offset is below `shared_bytes` from `base`'s device weights (kept alive while this
  // engine lives) instead of this engine's own blob; the own blob then starts at offset `shared_bytes`. This is
  // how the engines of one program serve new shapes without a second copy of the same weights. `base` must be a
  // finalized engine on the same device that shares nothing itself, and shared_bytes >= its weights_bytes().
  // Errors surface in finalize().
  void share_weights(const Engine& base, size_t shared_bytes);
  void set_arena_bytes(size_t bytes);
  // Validate, prepare every layer, allocate arena and workspace. Returns 0 or sets *err. `progress` (optional) is
  // called before each layer's prepare with (layer index, number of layers, layer label).
  using ProgressFn = std::function<void(int, int, const std::string&)>;
  int finalize(std::string* err, const ProgressFn& progress = nullptr);
  // How hard prepare() searches for tactics of layers without a tactic name: 0 = the libraries' heuristic choice,
  // no timing; 1..4 = time the best 2, 4, 8, 16 candidates; 5 = time every candidate. Default 3.
  void set_tuning_level(int level) { tuning_level_ = level < 0 ? 0 : (level > 5 ? 5 : level); }
  int tuning_level() const { return tuning_level_; }

  // ---- execution ---------------------------------------------------------------------------------------
  // inputs/outputs: device pointers in engine order. Enqueues on `stream`; never synchronizes.
  // With CUDA graphs enabled (the default), the launch list is captured once per set of input/output pointers
  // (after a first direct run) and replayed afterwards: one launch instead of one per layer. Pointer sets are
  // kept in a small LRU; an engine whose capture fails, or whose pointers keep changing, runs layer by layer.
  int run(const void* const* inputs, void* const* outputs, cudaStream_t stream, std::string* err);
  void set_cuda_graph_enabled(bool enabled);
  bool cuda_graph_enabled() const { return graph_enabled_; }
  // Why graphs are off for this engine ("" while they are on or were never tried).
  const std::string& cuda_graph_disabled_reason() const { return graph_off_reason_; }

  // ---- queries -------------------------------------------------------------------------------------------
  int device() const { return device_; }
  const std::vector<TensorDesc>& tensors() const { return tensors_; }
  const TensorDesc& tensor(int id) const { return tensors_.at(static_cast<size_t>(id)); }
  const std::vector<Layer>& layers() const { return layers_; }
  std::vector<Layer>& mutable_layers() { return layers_; }
  int num_inputs() const { return n_inputs_; }
  int num_outputs() const { return n_outputs_; }
  const TensorDesc& io_tensor(bool is_output, int index) const;
  size_t arena_bytes() const { return arena_bytes_; }
  size_t workspace_bytes() const { return workspace_bytes_; }
  size_t weights_bytes() const { return weights_bytes_; }  // this engine's own blob
  size_t shared_weights_bytes() const { return shared_bytes_; }  // offsets below this read the base's weights
  bool finalized() const { return finalized_; }

  // Library handles for kernels (valid after finalize begins; bound to ctx.stream by the kernel at launch).
  Handles& handles() const { return *handles_; }

  // Scratch device buffers a kernel may use while choosing a tactic in prepare(): distinct from the arena,
  // grown on demand, freed after finalize(). index in [0, 4). nullptr on allocation failure.
  void* scratch_buffer(int index, size_t bytes);

  // Device pointer of a weight / activation tensor (valid after finalize; nullptr for inputs and outputs).
  void* static_pointer(int tensor_id) const;

  // Per-layer device time in milliseconds, measured with CUDA events over `iterations` runs (for inspect and
  // the tuner). Synchronizes. inputs/outputs as for run().
  int profile_layers(const void* const* inputs, void* const* outputs, cudaStream_t stream, int iterations,
                     std::vector<double>* ms_per_layer, std::string* err);

 private:
  int resolve(const void* const* inputs, void* const* outputs, std::vector<void*>* ptrs, std::string* err) const;

  int device_;
  std::vector<TensorDesc> tensors_;
  std::vector<Layer> layers_;
  int n_inputs_ = 0;
  int n_outputs_ = 0;
  void* weights_ = nullptr;
  size_t weights_bytes_ = 0;
  std::shared_ptr<void> weights_owner_;  // frees weights_; shared with engines that share_weights() from this one
  std::shared_ptr<void> shared_;         // the base engine's weights (share_weights), or empty
  size_t shared_bytes_ = 0;              // offsets below this address shared_ (0: nothing shared)
  size_t shared_size_ = 0;               // the base's weights_bytes()
  // Device address of weight bytes at `offset` (own blob or the base's, see share_weights()).
  void* weight_pointer(int64_t offset) const;
  void* arena_ = nullptr;
  size_t arena_bytes_ = 0;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  void* scratch_[4] = {nullptr, nullptr, nullptr, nullptr};
  size_t scratch_bytes_[4] = {0, 0, 0, 0};
  bool finalized_ = false;
  int tuning_level_ = 3;
  std::unique_ptr<Handles> handles_;
  std::mutex run_mutex_;
  cudaStream_t last_stream_ = nullptr;
  cudaEvent_t last_done_ = nullptr;
  std::vector<void*> ptr_cache_;
  // Filled by finalize(): the first tensor bound to each input/output slot, per-layer launch bookkeeping
  // (operand pointer tables laid out flat so that run() allocates nothing), and a deferred set_weights() error.
  bool has_run_ = false;
  std::vector<int> input_tensor_, output_tensor_;
  std::vector<char> layer_skip_;
  std::vector<size_t> layer_in_base_, layer_out_base_;
  std::vector<const void*> in_ptrs_;
  std::vector<void*> out_ptrs_;
  std::string deferred_error_;
  // CUDA graph replay (see run()).
  struct GraphEntry {
    std::vector<const void*> key;  // input then output pointers
    cudaGraphExec_t exec = nullptr;
    uint64_t last_use = 0;
  };
  bool graph_enabled_ = true;
  std::string graph_off_reason_;
  std::vector<GraphEntry> graphs_;
  uint64_t graph_clock_ = 0;
  uint64_t graph_captures_ = 0, graph_replays_ = 0;
  int replay_or_capture(const void* const* inputs, void* const* outputs, cudaStream_t stream, bool* done,
                        std::string* err);
  void drop_graphs();
  int order_after_previous_run(cudaStream_t stream, std::string* err);
  int launch_layers(cudaStream_t stream, const std::vector<cudaEvent_t>* begin, const std::vector<cudaEvent_t>* end,
                    std::string* err);
  int launch_all(cudaStream_t stream, const std::vector<cudaEvent_t>* begin, const std::vector<cudaEvent_t>* end,
                 std::string* err);
};

}  // namespace tp
