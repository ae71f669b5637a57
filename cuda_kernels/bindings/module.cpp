// The pybind11 module ep_trtpy._kernels. Each concern registers its functions from its own file.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void init_runtime_bindings(py::module_& m);   // runtime_bindings.cpp: device queries, counters
void init_host_callbacks(py::module_& m);     // host_callbacks.cpp: installs tp_host_callbacks
void init_engine_bindings(py::module_& m);    // engine_bindings.cpp: Engine assembly, run, profiling

PYBIND11_MODULE(_kernels, m) {
  m.doc() = "ep_trtpy native runtime: CUDA kernels, cuBLASLt/cuDNN wrappers and the engine executor";
  init_runtime_bindings(m);
  init_engine_bindings(m);
  init_host_callbacks(m);
}
