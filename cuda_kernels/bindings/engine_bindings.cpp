// Placeholder: Engine bindings (filled in by the runtime work).
#include <pybind11/pybind11.h>
namespace py = pybind11;
void init_engine_bindings(py::module_&) {}
