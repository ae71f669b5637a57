// The C API over tp::Engine (tp_engine_* in runtime_api.h).
#include <string>

#include "tp/engine.h"
#include "tp/library_support.h"

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
