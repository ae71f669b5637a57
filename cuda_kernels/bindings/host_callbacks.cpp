// Placeholder: the host callbacks are installed here (filled in by the shim work).
#include <pybind11/pybind11.h>
namespace py = pybind11;
void init_host_callbacks(py::module_&) {}
