// TEMPORARY (shim branch only; the lead deletes this file at merge): stand-ins for the engine C API that
// runtime/engine.cpp implements on the runtime branch, so that the plugin shim links here. Every call fails with
// "engine runtime not built".
#include "tp/runtime_api.h"

extern "C" {

int tp_engine_num_inputs(const tp_engine*) {
  tp_set_last_error("engine runtime not built");
  return -1;
}

int tp_engine_num_outputs(const tp_engine*) {
  tp_set_last_error("engine runtime not built");
  return -1;
}

int tp_engine_io_info(const tp_engine*, int, int, int32_t*, const int64_t**, size_t*) {
  tp_set_last_error("engine runtime not built");
  return 1;
}

int tp_engine_run(tp_engine*, const void* const*, void* const*, void*) {
  tp_set_last_error("engine runtime not built");
  return 1;
}

}  // extern "C"
