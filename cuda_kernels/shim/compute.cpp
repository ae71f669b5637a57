// OrtNodeComputeInfo: running one fused node.
//
// GPU backend (no Python on the hot path): read the runtime inputs (staging any that arrived in host memory),
// find the engine for these exact input shapes in the program's cache (on a miss ask the host once), allocate the
// outputs through ORT with the engine's output shapes, and enqueue the engine on ORT's CUDA stream.
// Reference backend (no GPU): hand host tensors to the host's numpy runner, which writes the outputs into memory
// ORT allocates through the alloc callback.
#include <cstdlib>
#include <cstring>

#include "ep.h"
#include "graph_export.h"
#include "ort_values.h"
#include "tp/onnx_dtype.h"

namespace tp::shim {

Program::~Program() {
  HostCallbacks cb = host_callbacks();
  if (cb.installed && cb.table.release_program != nullptr && program_id >= 0) cb.table.release_program(program_id);
}

namespace {

using namespace ort::api;

struct ComputeInfo {
  OrtNodeComputeInfo base{};  // first member
  Ep* ep = nullptr;
  std::shared_ptr<Program> program;
};

const char* dtype_name(int32_t t) {
  const tp::onnx::DtypeInfo* d = tp::onnx::dtype_info(t);
  return d ? d->name : "an unsupported element type";
}

struct Input {
  std::string name;
  TensorShape shape;
  const void* data = nullptr;
  size_t nbytes = 0;
  Placement where;
};

std::vector<Input> read_inputs(const Program& p, OrtKernelContext* ctx) {
  size_t available = 0;
  check(api<KernelContext_GetInputCount>()(ctx, &available), "KernelContext_GetInputCount");
  std::vector<Input> inputs;
  inputs.reserve(p.runtime_inputs.size());
  for (int64_t r : p.runtime_inputs) {
    Input in;
    in.name = static_cast<size_t>(r) < p.input_names.size() ? p.input_names[r] : std::to_string(r);
    if (static_cast<size_t>(r) >= available)
      fail("fused node '" + p.node_name + "' expects input '" + in.name + "' but ORT passed only " +
           std::to_string(available) + " inputs");
    const OrtValue* v = nullptr;
    check(api<KernelContext_GetInput>()(ctx, static_cast<size_t>(r), &v), "KernelContext_GetInput");
    if (v == nullptr) fail("input '" + in.name + "' of fused node '" + p.node_name + "' is missing");
    in.shape = tensor_shape(v);
    for (int64_t d : in.shape.dims)
      if (d < 0) fail("input '" + in.name + "' has a negative dimension " + shape_string(in.shape.dims));
    const size_t esize = element_size(in.shape.dtype);
    if (esize == 0)
      fail("input '" + in.name + "' of fused node '" + p.node_name + "' has element type " +
           dtype_name(in.shape.dtype) + ", which engines do not take");
    in.nbytes = static_cast<size_t>(in.shape.numel()) * esize;
    in.data = in.nbytes ? tensor_data(v) : nullptr;
    in.where = value_placement(v);
    inputs.push_back(std::move(in));
  }
  return inputs;
}

// ------------------------------------------------------------------------------------------- GPU backend ---

// Device copies of inputs that arrived in host memory; freed after the stream has consumed them.
class StagedInputs {
 public:
  StagedInputs(int device, void* stream) : device_(device), stream_(stream) {}
  ~StagedInputs() {
    if (buffers_.empty()) return;
    tp_cuda_stream_synchronize(stream_);  // the engine may still be reading them
    for (void* b : buffers_) tp_cuda_free(device_, b);
  }
  const void* stage(const Input& in) {
    void* buf = tp_cuda_malloc(device_, in.nbytes ? in.nbytes : 1);
    if (buf == nullptr) fail("staging input '" + in.name + "' on the device: " + runtime_error_message());
    buffers_.push_back(buf);
    if (in.nbytes && tp_cuda_memcpy(buf, in.data, in.nbytes, TP_COPY_HOST_TO_DEVICE, stream_) != 0)
      fail("staging input '" + in.name + "' on the device: " + runtime_error_message());
    tp_counter_add(TP_COUNTER_STAGED_HOST_INPUTS, 1);
    return buf;
  }

 private:
  int device_;
  void* stream_;
  std::vector<void*> buffers_;
};

tp_engine* engine_for(Program& p, const std::vector<Input>& inputs) {
  std::vector<std::vector<int64_t>> key;
  key.reserve(inputs.size());
  for (const Input& in : inputs) key.push_back(in.shape.dims);

  {
    std::lock_guard<std::mutex> lock(p.mu);
    for (auto& [shapes, engine] : p.engines)
      if (shapes == key) return engine;
  }
  // Not under p.mu: a build for new shapes must not hold up runs of shapes that have an engine. The host builds
  // once per shape key (other threads asking meanwhile wait there) and returns the same engine to all of them.
  HostCallbacks cb = host_callbacks();
  if (!cb.installed || cb.table.get_engine == nullptr)
    fail("fused node '" + p.node_name + "' needs an engine for new input shapes, but the ep_trtpy Python host "
         "that builds engines is not available in this process");
  std::vector<tp_host_tensor> shapes(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    shapes[i].name = inputs[i].name.c_str();
    shapes[i].dtype = inputs[i].shape.dtype;
    shapes[i].dims = inputs[i].shape.dims.data();
    shapes[i].ndims = inputs[i].shape.dims.size();
  }
  tp_counter_add(TP_COUNTER_HOST_GET_ENGINE, 1);
  tp_engine* engine = nullptr;
  char* error = nullptr;
  if (cb.table.get_engine(p.program_id, shapes.data(), shapes.size(), &engine, &error) != 0)
    fail("getting an engine for fused node '" + p.node_name + "': " + take_host_error(error));
  if (engine == nullptr) fail("the Python host returned no engine for fused node '" + p.node_name + "'");
  std::lock_guard<std::mutex> lock(p.mu);
  for (auto& [shapes, known] : p.engines)
    if (shapes == key) return known;  // another thread stored it first (the same engine)
  p.engines.emplace_back(std::move(key), engine);
  return engine;
}

void check_engine_inputs(const Program& p, const tp_engine* engine, const std::vector<Input>& inputs) {
  const int n_in = tp_engine_num_inputs(engine);
  if (n_in < 0) fail("engine of fused node '" + p.node_name + "': " + runtime_error_message());
  if (static_cast<size_t>(n_in) != inputs.size())
    fail("the engine of fused node '" + p.node_name + "' takes " + std::to_string(n_in) + " inputs but the node "
         "feeds it " + std::to_string(inputs.size()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    int32_t dtype = 0;
    const int64_t* dims = nullptr;
    size_t ndims = 0;
    if (tp_engine_io_info(engine, 0, static_cast<int>(i), &dtype, &dims, &ndims) != 0)
      fail("engine of fused node '" + p.node_name + "': " + runtime_error_message());
    if (dtype != inputs[i].shape.dtype)
      fail("input '" + inputs[i].name + "' of fused node '" + p.node_name + "' is " +
           dtype_name(inputs[i].shape.dtype) + " but its engine expects " + dtype_name(dtype));
    std::vector<int64_t> want(dims, dims + ndims);
    if (want != inputs[i].shape.dims)
      fail("input '" + inputs[i].name + "' of fused node '" + p.node_name + "' has shape " +
           shape_string(inputs[i].shape.dims) + " but its engine was built for " + shape_string(want));
  }
}

void run_gpu(Program& p, OrtKernelContext* ctx) {
  std::vector<Input> inputs = read_inputs(p, ctx);
  void* stream = nullptr;
  check(api<KernelContext_GetGPUComputeStream>()(ctx, &stream), "KernelContext_GetGPUComputeStream");

  StagedInputs staged(p.device_id, stream);
  std::vector<const void*> in_ptrs(inputs.size(), nullptr);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Input& in = inputs[i];
    if (!in.where.on_device) {
      in_ptrs[i] = staged.stage(in);  // defensive: the Memcpy kernels should have put it on the device
    } else if (!in.where.ours) {
      fail("input '" + in.name + "' of fused node '" + p.node_name + "' lives on a device that is not an "
           "NVIDIA GPU");
    } else if (in.where.device_id != p.device_id) {
      fail("input '" + in.name + "' of fused node '" + p.node_name + "' lives on CUDA device " +
           std::to_string(in.where.device_id) + " but the engine runs on CUDA device " +
           std::to_string(p.device_id));
    } else {
      in_ptrs[i] = in.data;
    }
  }

  tp_engine* engine = engine_for(p, inputs);
  check_engine_inputs(p, engine, inputs);

  const int n_out = tp_engine_num_outputs(engine);
  if (n_out < 0) fail("engine of fused node '" + p.node_name + "': " + runtime_error_message());
  if (static_cast<size_t>(n_out) != p.output_names.size())
    fail("the engine of fused node '" + p.node_name + "' has " + std::to_string(n_out) + " outputs but the node "
         "has " + std::to_string(p.output_names.size()));
  std::vector<void*> out_ptrs(static_cast<size_t>(n_out), nullptr);
  for (int j = 0; j < n_out; ++j) {
    int32_t dtype = 0;
    const int64_t* dims = nullptr;
    size_t ndims = 0;
    if (tp_engine_io_info(engine, 1, j, &dtype, &dims, &ndims) != 0)
      fail("engine of fused node '" + p.node_name + "': " + runtime_error_message());
    OrtValue* out = nullptr;
    check(api<KernelContext_GetOutput>()(ctx, static_cast<size_t>(j), dims, ndims, &out),
          ("allocating output '" + p.output_names[j] + "'").c_str());
    TensorShape got = tensor_shape(out);
    if (got.dtype != dtype)
      fail("output '" + p.output_names[j] + "' of fused node '" + p.node_name + "' is " + dtype_name(got.dtype) +
           " but its engine produces " + dtype_name(dtype));
    out_ptrs[j] = got.numel() ? tensor_mutable_data(out) : nullptr;
  }

  if (tp_engine_run(engine, in_ptrs.data(), out_ptrs.data(), stream) != 0)
    fail("running the engine of fused node '" + p.node_name + "': " + runtime_error_message());
}

// ------------------------------------------------------------------------------------- reference backend ---

struct AllocContext {
  OrtKernelContext* ctx = nullptr;
  const Program* program = nullptr;
  std::vector<bool> allocated;
  std::string error;
};

void* alloc_output(void* c, size_t index, const int64_t* dims, size_t ndims, int32_t* dtype) noexcept {
  auto* a = static_cast<AllocContext*>(c);
  try {
    if (index >= a->allocated.size())
      fail("output index " + std::to_string(index) + " is out of range (the node has " +
           std::to_string(a->allocated.size()) + " outputs)");
    OrtValue* out = nullptr;
    check(api<KernelContext_GetOutput>()(a->ctx, index, dims, ndims, &out),
          ("allocating output '" + a->program->output_names[index] + "'").c_str());
    TensorShape got = tensor_shape(out);
    if (dtype) *dtype = got.dtype;
    a->allocated[index] = true;
    void* data = got.numel() ? tensor_mutable_data(out) : nullptr;
    static unsigned char empty_output;  // a valid address for zero-element outputs (never written)
    return data ? data : &empty_output;
  } catch (const std::exception& e) {
    a->error = e.what();
  } catch (...) {
    a->error = "unknown C++ exception while allocating an output";
  }
  return nullptr;
}

void run_reference(Program& p, OrtKernelContext* ctx) {
  std::vector<Input> inputs = read_inputs(p, ctx);
  std::vector<tp_host_tensor> host(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].where.on_device)
      fail("input '" + inputs[i].name + "' of fused node '" + p.node_name + "' is in device memory, but this EP "
           "runs on the reference backend (host memory only)");
    host[i].name = inputs[i].name.c_str();
    host[i].dtype = inputs[i].shape.dtype;
    host[i].dims = inputs[i].shape.dims.data();
    host[i].ndims = inputs[i].shape.dims.size();
    host[i].data = inputs[i].data;
    host[i].nbytes = inputs[i].nbytes;
  }
  HostCallbacks cb = host_callbacks();
  if (!cb.installed || cb.table.run_reference == nullptr)
    fail("fused node '" + p.node_name + "' runs on the numpy reference backend, but the ep_trtpy Python host is "
         "not available in this process");
  AllocContext a;
  a.ctx = ctx;
  a.program = &p;
  a.allocated.assign(p.output_names.size(), false);
  char* error = nullptr;
  if (cb.table.run_reference(p.program_id, host.data(), host.size(), alloc_output, &a, &error) != 0) {
    std::string message = take_host_error(error);
    if (!a.error.empty()) message += " (" + a.error + ")";
    fail("reference run of fused node '" + p.node_name + "': " + message);
  }
  for (size_t j = 0; j < a.allocated.size(); ++j)
    if (!a.allocated[j])
      fail("reference run of fused node '" + p.node_name + "' produced no value for output '" + p.output_names[j] +
           "'");
  tp_counter_add(TP_COUNTER_REFERENCE_RUNS, 1);
}

// --------------------------------------------------------------------------------------- ORT entry points ---

OrtStatus* create_state(OrtNodeComputeInfo* self, OrtNodeComputeContext* ctx, void** state) noexcept {
  return guard("CreateState", [&]() -> OrtStatus* {
    auto* info = reinterpret_cast<ComputeInfo*>(self);
    *state = nullptr;
    const char* name = api<ort::ep_api::NodeComputeContext_NodeName>()(ctx);
    Program* program = info->program.get();
    if (name != nullptr && program->node_name != name) {  // not the node this info was made for: look it up
      std::lock_guard<std::mutex> lock(info->ep->mu);
      auto it = info->ep->programs.find(name);
      if (it == info->ep->programs.end()) fail(std::string("no compiled program for fused node '") + name + "'");
      program = it->second.get();
    }
    *state = program;
    return nullptr;
  });
}

OrtStatus* compute(OrtNodeComputeInfo*, void* state, OrtKernelContext* ctx) noexcept {
  return guard("Compute", [&]() -> OrtStatus* {
    auto* p = static_cast<Program*>(state);
    if (p == nullptr) fail("Compute called without state");
    tp_counter_add(TP_COUNTER_COMPUTE_CALLS, 1);
    if (p->device_id >= 0)
      run_gpu(*p, ctx);
    else
      run_reference(*p, ctx);
    return nullptr;
  });
}

void release_state(OrtNodeComputeInfo*, void*) noexcept {}  // the program belongs to the EP

}  // namespace

OrtNodeComputeInfo* new_compute_info(Ep* ep, std::shared_ptr<Program> program) {
  auto* info = new ComputeInfo();
  info->base.ort_version_supported = ort::kTargetApiVersion;
  info->base.CreateState = create_state;
  info->base.Compute = compute;
  info->base.ReleaseState = release_state;
  fill_reserve(info->base.reserved);
  info->ep = ep;
  info->program = std::move(program);
  return &info->base;
}

void delete_compute_info(OrtNodeComputeInfo* info) noexcept { delete reinterpret_cast<ComputeInfo*>(info); }

}  // namespace tp::shim
