// The host callbacks (runtime_api.h, tp_host_callbacks): how the ORT plugin shim reaches ep_trtpy's Python code.
//
// Installed with tp_set_host_callbacks when ep_trtpy._kernels is imported, so the shim never links libpython.
// Each callback:
//   - is GIL-agnostic: takes the GIL itself (ORT 1.30 holds it during session creation, 1.31 does not, Compute
//     runs on ORT's own threads), and refuses politely while the interpreter is shutting down;
//   - imports ep_trtpy._host lazily and looks the function up on every call (tests monkeypatch that module);
//   - converts every Python exception into a malloc'ed "module.Type: message" string: nothing crosses the C ABI.
//
// Data conventions: initializers are COPIED into fresh numpy arrays (ORT's buffers die after the call); reference
// inputs are read-only numpy VIEWS of ORT's host memory and alloc(i, shape) returns a writable VIEW of the output
// ORT allocated; both views are valid only during the run_reference call. bfloat16 travels as uint16 bits (the
// document's dtype says 16); tensors of other types without a fixed-size element (strings...) arrive as None.
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tp/onnx_dtype.h"
#include "tp/runtime_api.h"

namespace py = pybind11;

namespace {

char* dup_message(const std::string& s) noexcept {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p != nullptr) std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

bool python_alive() noexcept {
  if (!Py_IsInitialized()) return false;
#if PY_VERSION_HEX >= 0x030D0000
  return !Py_IsFinalizing();
#else
  return !_Py_IsFinalizing();
#endif
}

// "module.Type: message" of the Python exception (builtins without the module). Needs the GIL.
std::string describe(const py::error_already_set& e) {
  std::string type_name = "Exception";
  try {
    py::object t = e.type();
    std::string module = py::str(t.attr("__module__"));
    std::string qualname = py::str(t.attr("__qualname__"));
    type_name = module == "builtins" ? qualname : module + "." + qualname;
  } catch (...) {
  }
  std::string message;
  try {
    message = py::str(e.value());
  } catch (...) {
    message = "(the exception cannot be printed)";
  }
  return message.empty() ? type_name : type_name + ": " + message;
}

// Runs f() with the GIL held; returns 0, or 1 with *error set to a malloc'ed message.
template <typename F>
int call_python(char** error, F&& f) noexcept {
  if (error != nullptr) *error = nullptr;
  std::string message;
  if (!python_alive()) {
    message = "the Python interpreter is shutting down";
  } else {
    try {
      py::gil_scoped_acquire gil;
      try {
        f();
        return 0;
      } catch (py::error_already_set& e) {
        message = describe(e);
      } catch (const std::exception& e) {
        message = std::string("C++ exception in the ep_trtpy host callback: ") + e.what();
      }
    } catch (const std::exception& e) {
      message = std::string("C++ exception in the ep_trtpy host callback: ") + e.what();
    } catch (...) {
      message = "unknown C++ exception in the ep_trtpy host callback";
    }
  }
  if (error != nullptr) *error = dup_message(message);
  return 1;
}

// For release functions (no error channel): a Python exception is reported as unraisable.
template <typename F>
void call_python_void(const char* where, F&& f) noexcept {
  if (!python_alive()) return;
  try {
    py::gil_scoped_acquire gil;
    try {
      f();
    } catch (py::error_already_set& e) {
      e.discard_as_unraisable(where);
    } catch (...) {
    }
  } catch (...) {
  }
}

py::module_ host() { return py::module_::import("ep_trtpy._host"); }

// numpy dtype of an ONNX element type; false for types numpy cannot view element by element.
bool numpy_dtype(int32_t t, py::dtype* out) {
  const tp::onnx::DtypeInfo* d = tp::onnx::dtype_info(t);
  if (d == nullptr || d->size == 0) return false;
  // bfloat16 and float8e4m3fn: their bits, as uint16 and uint8 (numpy has neither type)
  *out = py::dtype(t == 16 ? "uint16" : (t == 17 ? "uint8" : d->name));
  return true;
}

std::vector<py::ssize_t> shape_of(const int64_t* dims, size_t ndims) {
  std::vector<py::ssize_t> shape(ndims);
  for (size_t i = 0; i < ndims; ++i) shape[i] = static_cast<py::ssize_t>(dims[i]);
  return shape;
}

// A fresh numpy array holding a copy of the tensor, or None when it cannot be represented.
py::object copy_to_numpy(const tp_host_tensor& t) {
  py::dtype dt;
  if (!numpy_dtype(t.dtype, &dt)) return py::none();
  py::array a(dt, shape_of(t.dims, t.ndims));
  const size_t nbytes = static_cast<size_t>(a.nbytes());
  if (nbytes == 0) return std::move(a);
  if (t.data == nullptr) return py::none();
  if (t.nbytes != nbytes)
    throw std::runtime_error("tensor '" + std::string(t.name ? t.name : "") + "' has " + std::to_string(t.nbytes) +
                             " bytes of data but its shape needs " + std::to_string(nbytes));
  std::memcpy(a.mutable_data(), t.data, nbytes);
  return std::move(a);
}

py::list copy_all(const tp_host_tensor* tensors, size_t n) {
  py::list out;
  for (size_t i = 0; i < n; ++i) out.append(copy_to_numpy(tensors[i]));
  return out;
}

// A read-only view of host memory (no copy); valid while the memory is.
py::array view_of(const tp_host_tensor& t) {
  py::dtype dt;
  if (!numpy_dtype(t.dtype, &dt))
    throw std::runtime_error("input '" + std::string(t.name ? t.name : "") + "' has element type " +
                             std::to_string(t.dtype) + ", which numpy cannot view");
  static const unsigned char empty = 0;
  const void* data = t.data ? t.data : &empty;
  py::array a(dt, shape_of(t.dims, t.ndims), std::vector<py::ssize_t>{}, data, py::none());
  a.attr("setflags")(py::arg("write") = false);
  return a;
}

template <typename T>
T* malloc_copy(const std::vector<T>& v) {
  T* p = static_cast<T*>(std::malloc(v.empty() ? 1 : v.size() * sizeof(T)));
  if (p == nullptr) throw std::bad_alloc();
  if (!v.empty()) std::memcpy(p, v.data(), v.size() * sizeof(T));
  return p;
}

// ------------------------------------------------------------------------------------------- callbacks ---

int cb_create_ep(const char* options_json, const char* device_json, int64_t* ep_id, int32_t* device_id,
                 char** error) noexcept {
  return call_python(error, [&] {
    py::object r = host().attr("create_ep")(py::str(options_json), py::str(device_json));
    auto t = r.cast<py::tuple>();
    if (t.size() != 2) throw std::runtime_error("ep_trtpy._host.create_ep must return (ep_id, device_id)");
    *ep_id = t[0].cast<int64_t>();
    *device_id = t[1].cast<int32_t>();
  });
}

void cb_release_ep(int64_t ep_id) noexcept {
  call_python_void("ep_trtpy._host.release_ep", [&] { host().attr("release_ep")(ep_id); });
}

int cb_get_capability(int64_t ep_id, const char* graph_json, const tp_host_tensor* initializers, size_t n_init,
                      int64_t** clusters, size_t* clusters_len, char** error) noexcept {
  *clusters = nullptr;
  *clusters_len = 0;
  return call_python(error, [&] {
    py::object r = host().attr("get_capability")(ep_id, py::str(graph_json), copy_all(initializers, n_init));
    std::vector<int64_t> flat{0};
    for (py::handle cluster : r) {
      auto indices = cluster.cast<std::vector<int64_t>>();
      flat.push_back(static_cast<int64_t>(indices.size()));
      flat.insert(flat.end(), indices.begin(), indices.end());
      ++flat[0];
    }
    *clusters = malloc_copy(flat);
    *clusters_len = flat.size();
  });
}

int cb_compile(int64_t ep_id, const char* graph_json, const tp_host_tensor* initializers, size_t n_init,
               int64_t* program_id, int64_t** runtime_inputs, size_t* n_runtime_inputs, char** error) noexcept {
  *runtime_inputs = nullptr;
  *n_runtime_inputs = 0;
  return call_python(error, [&] {
    py::object r = host().attr("compile")(ep_id, py::str(graph_json), copy_all(initializers, n_init));
    auto t = r.cast<py::tuple>();
    if (t.size() != 2)
      throw std::runtime_error("ep_trtpy._host.compile must return (program_id, runtime_input_indices)");
    auto indices = t[1].cast<std::vector<int64_t>>();
    *program_id = t[0].cast<int64_t>();
    *runtime_inputs = malloc_copy(indices);
    *n_runtime_inputs = indices.size();
  });
}

int cb_get_engine(int64_t program_id, const tp_host_tensor* inputs, size_t n_inputs, tp_engine** engine,
                  char** error) noexcept {
  *engine = nullptr;
  return call_python(error, [&] {
    py::list shapes;
    for (size_t i = 0; i < n_inputs; ++i) {
      py::tuple shape(inputs[i].ndims);
      for (size_t k = 0; k < inputs[i].ndims; ++k) shape[k] = py::int_(inputs[i].dims[k]);
      shapes.append(shape);
    }
    py::object e = host().attr("get_engine")(program_id, shapes);
    if (e.is_none()) throw std::runtime_error("ep_trtpy._host.get_engine returned None");
    auto address = e.attr("_handle")().cast<uintptr_t>();
    if (address == 0) throw std::runtime_error("the engine returned by ep_trtpy._host.get_engine has no handle");
    *engine = reinterpret_cast<tp_engine*>(address);
  });
}

int cb_run_reference(int64_t program_id, const tp_host_tensor* inputs, size_t n_inputs, tp_alloc_output_fn alloc,
                     void* alloc_ctx, char** error) noexcept {
  return call_python(error, [&] {
    py::list views;
    for (size_t i = 0; i < n_inputs; ++i) views.append(view_of(inputs[i]));
    // The callable must not be used after this call returns (the memory it hands out belongs to this run).
    auto alive = std::make_shared<bool>(true);
    py::cpp_function alloc_fn(
        [alloc, alloc_ctx, alive](size_t index, py::iterable shape) -> py::array {
          if (!*alive) throw std::runtime_error("alloc() was called after run_reference returned");
          std::vector<int64_t> dims;
          for (py::handle d : shape) {
            auto v = d.cast<int64_t>();
            if (v < 0) throw py::value_error("alloc(): negative dimension " + std::to_string(v));
            dims.push_back(v);
          }
          int32_t dtype = 0;
          void* p = alloc(alloc_ctx, index, dims.data(), dims.size(), &dtype);
          if (p == nullptr)
            throw std::runtime_error("alloc(): ORT could not allocate output " + std::to_string(index));
          py::dtype dt;
          if (!numpy_dtype(dtype, &dt))
            throw py::type_error("alloc(): output " + std::to_string(index) + " has element type " +
                                 std::to_string(dtype) + ", which numpy cannot view");
          return py::array(dt, shape_of(dims.data(), dims.size()), std::vector<py::ssize_t>{}, p, py::none());
        },
        py::arg("index"), py::arg("shape"));
    try {
      host().attr("run_reference")(program_id, views, alloc_fn);
    } catch (...) {
      *alive = false;
      throw;
    }
    *alive = false;
  });
}

// _host.context_node(program_id) returns (node_name, [(attribute name, int | bytes | str), ...]).
int cb_context_node(int64_t program_id, tp_context_attr_fn emit, void* emit_ctx, char** node_name,
                    char** error) noexcept {
  *node_name = nullptr;
  return call_python(error, [&] {
    py::object r = host().attr("context_node")(program_id);
    auto t = r.cast<py::tuple>();
    if (t.size() != 2) throw std::runtime_error("ep_trtpy._host.context_node must return (node_name, attributes)");
    const std::string name = t[0].cast<std::string>();
    for (py::handle item : t[1]) {
      auto pair = item.cast<py::tuple>();
      if (pair.size() != 2) throw std::runtime_error("a context_node attribute must be a (name, value) pair");
      const std::string attr = pair[0].cast<std::string>();
      py::handle v = pair[1];
      int rc = 0;
      if (py::isinstance<py::bool_>(v) || !(py::isinstance<py::int_>(v) || py::isinstance<py::bytes>(v) ||
                                             py::isinstance<py::str>(v))) {
        throw std::runtime_error("context_node attribute '" + attr + "' must be an int, bytes or str");
      } else if (py::isinstance<py::int_>(v)) {
        rc = emit(emit_ctx, attr.c_str(), 1, v.cast<int64_t>(), nullptr, 0);
      } else {
        const std::string bytes = py::isinstance<py::bytes>(v) ? std::string(v.cast<py::bytes>())
                                                                : v.cast<std::string>();
        rc = emit(emit_ctx, attr.c_str(), 5, 0, bytes.data(), bytes.size());
      }
      if (rc != 0) throw std::runtime_error("the plugin refused EPContext attribute '" + attr + "'");
    }
    *node_name = dup_message(name);
  });
}

void cb_release_program(int64_t program_id) noexcept {
  call_python_void("ep_trtpy._host.release_program", [&] { host().attr("release_program")(program_id); });
}

const tp_host_callbacks kCallbacks = {
    TP_HOST_CALLBACKS_VERSION, cb_create_ep,     cb_release_ep,      cb_get_capability, cb_compile,
    cb_get_engine,             cb_run_reference, cb_release_program, cb_context_node,
};

}  // namespace

void init_host_callbacks(py::module_& m) {
  tp_set_host_callbacks(&kCallbacks);
  // Sessions that die during interpreter teardown must not call into a half-finalized Python.
  py::module_::import("atexit").attr("register")(py::cpp_function([] { tp_set_host_callbacks(nullptr); }));
  m.def("_install_host_callbacks", [] { tp_set_host_callbacks(&kCallbacks); },
        "(Re)install the Python host callbacks the ORT plugin calls (done on import).");
  m.def("_uninstall_host_callbacks", [] { tp_set_host_callbacks(nullptr); },
        "Remove the host callbacks, as in a non-Python host (tests only).");
  m.def("host_callbacks_installed", [] { return tp_get_host_callbacks() != nullptr; },
        "Whether the ORT plugin can reach ep_trtpy's Python host.");
}
