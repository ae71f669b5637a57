// Device queries and counters for Python.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <string>

#include "tp/runtime_api.h"

namespace py = pybind11;

void init_runtime_bindings(py::module_& m) {
  m.def("cuda_device_count", &tp_cuda_device_count,
        "Number of usable CUDA devices (0 without a driver or device).");
  m.def(
      "counters",
      []() {
        std::map<std::string, uint64_t> out;
        for (int i = 0; i < TP_COUNTER_COUNT; ++i)
          out[tp_counter_name(static_cast<tp_counter>(i))] = tp_counter_get(static_cast<tp_counter>(i));
        return out;
      },
      "Process-wide counters of the native runtime and the plugin.");
  m.def("reset_counters", &tp_counters_reset);
  m.def(
      "abi_report", []() { return std::string(tp_get_abi_report()); },
      "Report of the ORT plugin's ABI self-check (empty until ORT has loaded the plugin).");
}
