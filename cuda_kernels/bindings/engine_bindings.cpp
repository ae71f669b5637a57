// Python face of the native engine: ep_trtpy._kernels.Engine and a few runtime queries.
//
// Used by ep_trtpy/runtime.py and the tuner (ep_trtpy/tuner/). Every failure raises RuntimeError with the runtime's
// message. finalize, run and profile_layers release the GIL (finalize takes it back to call `progress`).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "tp/engine.h"
#include "tp/library_support.h"
#include "tp/runtime_api.h"

namespace py = pybind11;

namespace {

tp::TensorKind parse_kind(const std::string& kind) {
  if (kind == "input") return tp::TensorKind::Input;
  if (kind == "output") return tp::TensorKind::Output;
  if (kind == "weight") return tp::TensorKind::Weight;
  if (kind == "activation") return tp::TensorKind::Activation;
  if (kind == "alias") return tp::TensorKind::Alias;
  throw std::runtime_error("unknown tensor kind '" + kind +
                           "' (expected one of input, output, weight, activation, alias)");
}

// Device pointers passed as Python ints, checked against the engine's slot counts.
void check_io(const tp::Engine& e, const std::vector<uintptr_t>& inputs, const std::vector<uintptr_t>& outputs) {
  if (inputs.size() != static_cast<size_t>(e.num_inputs()))
    throw std::runtime_error("engine expects " + std::to_string(e.num_inputs()) + " input pointers, got " +
                             std::to_string(inputs.size()));
  if (outputs.size() != static_cast<size_t>(e.num_outputs()))
    throw std::runtime_error("engine expects " + std::to_string(e.num_outputs()) + " output pointers, got " +
                             std::to_string(outputs.size()));
}

}  // namespace

void init_engine_bindings(py::module_& m) {
  py::class_<tp::Engine>(m, "Engine",
                         "A static-shape launch list on one CUDA device (see ep_trtpy/runtime.py for the builder).")
      .def(py::init<int>(), py::arg("device"))
      .def(
          "add_tensor",
          [](tp::Engine& e, const std::string& name, int32_t dtype, const std::vector<int64_t>& shape,
             const std::string& kind, int64_t index, int64_t offset, int64_t nbytes) {
            tp::TensorDesc d;
            d.name = name;
            d.dtype = dtype;
            d.dims = shape;
            d.kind = parse_kind(kind);
            d.index = index;
            d.offset = offset;
            d.nbytes = nbytes;
            int id = e.add_tensor(std::move(d));
            if (id < 0) throw std::runtime_error("add_tensor('" + name + "') after finalize()");
            return id;
          },
          py::arg("name"), py::arg("dtype"), py::arg("shape"), py::arg("kind"), py::arg("index"), py::arg("offset"),
          py::arg("nbytes"), "Add a tensor (ids are dense, in order of addition); returns its id.")
      .def(
          "add_layer",
          [](tp::Engine& e, const std::string& kernel, const std::vector<int>& inputs, const std::vector<int>& outputs,
             const std::vector<int64_t>& ints, const std::vector<double>& floats, int64_t tactic, int64_t workspace,
             const std::string& name, const std::string& tactic_name, const py::bytes& tactic_state) {
            tp::Layer l;
            l.kernel = kernel;
            l.inputs = inputs;
            l.outputs = outputs;
            l.ints = ints;
            l.floats = floats;
            l.tactic = tactic;
            l.tactic_name = tactic_name;
            l.tactic_state = static_cast<std::string>(tactic_state);
            l.workspace = workspace > 0 ? static_cast<size_t>(workspace) : 0;
            l.name = name;
            int id = e.add_layer(std::move(l));
            if (id < 0) throw std::runtime_error("add_layer('" + name + "') after finalize()");
            return id;
          },
          py::arg("kernel"), py::arg("inputs"), py::arg("outputs"), py::arg("ints"), py::arg("floats"),
          py::arg("tactic"), py::arg("workspace"), py::arg("name"), py::arg("tactic_name") = "",
          py::arg("tactic_state") = py::bytes(),
          "Append a layer to the launch list (tactic_name: a tactic to use instead of searching; tactic_state: "
          "the bytes an earlier finalize wrote for it, which spare the search or compilation when still valid).")
      .def(
          "set_weights",
          [](tp::Engine& e, py::buffer data) {
            py::buffer_info info = data.request();
            if (info.ndim > 1 && info.strides.back() != info.itemsize)
              throw std::runtime_error("set_weights: the buffer must be contiguous");
            const size_t bytes = static_cast<size_t>(info.size) * static_cast<size_t>(info.itemsize);
            {
              py::gil_scoped_release release;
              e.set_weights(info.ptr, bytes);
            }
          },
          py::arg("data"), "Upload the weights blob (host bytes) to the device; errors surface in finalize().")
      .def(
          "share_weights",
          [](tp::Engine& e, const tp::Engine& base, int64_t shared_bytes) {
            e.share_weights(base, shared_bytes > 0 ? static_cast<size_t>(shared_bytes) : 0);
          },
          py::arg("base"), py::arg("shared_bytes"),
          "Read weight tensors at offsets below shared_bytes from base's device weights (a finalized engine on "
          "the same device that shares nothing itself); this engine's own blob starts at shared_bytes. Errors "
          "surface in finalize().")
      .def(
          "set_arena_bytes", [](tp::Engine& e, int64_t n) { e.set_arena_bytes(n > 0 ? static_cast<size_t>(n) : 0); },
          py::arg("n"))
      .def(
          "finalize",
          [](tp::Engine& e, py::object progress) {
            std::string err;
            int rc;
            tp::Engine::ProgressFn fn;
            std::string callback_error;
            if (!progress.is_none())
              fn = [&progress, &callback_error](int layer, int n, const std::string& label) {
                py::gil_scoped_acquire acquire;
                if (!callback_error.empty()) return;
                try {
                  progress(layer, n, label);
                } catch (py::error_already_set& ex) {
                  callback_error = ex.what();  // reported after finalize; never crosses the runtime
                }
              };
            {
              py::gil_scoped_release release;
              rc = e.finalize(&err, fn);
            }
            if (rc != 0) throw std::runtime_error(err);
            if (!callback_error.empty()) throw std::runtime_error("finalize progress callback: " + callback_error);
          },
          py::arg("progress") = py::none(),
          "Validate, prepare every layer (tactic choice), allocate the arena and the workspace. progress(layer, "
          "n_layers, label) is called before each layer's prepare.")
      .def(
          "set_tuning_level", [](tp::Engine& e, int level) { e.set_tuning_level(level); }, py::arg("level"),
          "0 = heuristics only; 1-4 = time the first 2, 4, 8, 16 candidates; 5 = every candidate (default 3).")
      .def_property_readonly("tuning_level", &tp::Engine::tuning_level)
      .def("tactic_names",
           [](const tp::Engine& e) {
             std::vector<std::string> t;
             for (const auto& l : e.layers()) t.push_back(l.tactic_name);
             return t;
           })
      .def(
          "tactic_states",
          [](const tp::Engine& e) {
            py::list t;
            for (const auto& l : e.layers()) t.append(py::bytes(l.tactic_state));
            return t;
          },
          "Per layer, the bytes that let a later finalize set up its tactic without searching (b'' for none).")
      .def(
          "layer_timings",
          [](const tp::Engine& e) {
            std::vector<std::vector<std::pair<std::string, double>>> t;
            for (const auto& l : e.layers()) t.push_back(l.timings);
            return t;
          },
          "Per layer, the tactic candidates timed during finalize: [(name, ms)] (inf for a failure).")
      .def("tactics",
           [](const tp::Engine& e) {
             std::vector<int64_t> t;
             for (const auto& l : e.layers()) t.push_back(l.tactic);
             return t;
           })
      .def("workspaces",
           [](const tp::Engine& e) {
             std::vector<int64_t> w;
             for (const auto& l : e.layers()) w.push_back(static_cast<int64_t>(l.workspace));
             return w;
           })
      .def(
          "run",
          [](tp::Engine& e, const std::vector<uintptr_t>& inputs, const std::vector<uintptr_t>& outputs,
             uintptr_t stream) {
            check_io(e, inputs, outputs);
            std::vector<const void*> in;
            std::vector<void*> out;
            for (auto p : inputs) in.push_back(reinterpret_cast<const void*>(p));
            for (auto p : outputs) out.push_back(reinterpret_cast<void*>(p));
            int rc;
            std::string err;
            {
              py::gil_scoped_release release;
              // Through the C API, so Python runs count in the process counters like the plugin's runs.
              rc = tp_engine_run(&e, in.data(), out.data(), reinterpret_cast<void*>(stream));
              if (rc != 0) err = tp_last_error();
            }
            if (rc != 0) throw std::runtime_error(err);
          },
          py::arg("inputs"), py::arg("outputs"), py::arg("stream"),
          "Enqueue the launch list on `stream` (a cudaStream_t as int); device pointers in engine order.")
      .def(
          "profile_layers",
          [](tp::Engine& e, const std::vector<uintptr_t>& inputs, const std::vector<uintptr_t>& outputs,
             uintptr_t stream, int iterations) {
            check_io(e, inputs, outputs);
            std::vector<const void*> in;
            std::vector<void*> out;
            for (auto p : inputs) in.push_back(reinterpret_cast<const void*>(p));
            for (auto p : outputs) out.push_back(reinterpret_cast<void*>(p));
            std::vector<double> ms;
            std::string err;
            int rc;
            {
              py::gil_scoped_release release;
              rc = e.profile_layers(in.data(), out.data(), reinterpret_cast<cudaStream_t>(stream), iterations, &ms,
                                    &err);
            }
            if (rc != 0) throw std::runtime_error(err);
            return ms;
          },
          py::arg("inputs"), py::arg("outputs"), py::arg("stream"), py::arg("iterations"),
          "Milliseconds per layer (CUDA events, mean over `iterations` runs after one warm-up). Synchronizes.")
      .def_property(
          "cuda_graph", &tp::Engine::cuda_graph_enabled,
          [](tp::Engine& e, bool on) { e.set_cuda_graph_enabled(on); },
          "Replay the launch list as a CUDA graph captured per set of input/output pointers (default on).")
      .def_property_readonly(
          "cuda_graph_disabled_reason", [](const tp::Engine& e) { return e.cuda_graph_disabled_reason(); },
          "Why CUDA graphs are off for this engine ('' while on).")
      .def_property_readonly("num_inputs", &tp::Engine::num_inputs)
      .def_property_readonly("num_outputs", &tp::Engine::num_outputs)
      .def_property_readonly("num_layers", [](const tp::Engine& e) { return e.layers().size(); })
      .def_property_readonly("arena_bytes", &tp::Engine::arena_bytes)
      .def_property_readonly("workspace_bytes", &tp::Engine::workspace_bytes)
      .def_property_readonly("weights_bytes", &tp::Engine::weights_bytes)
      .def_property_readonly("shared_weights_bytes", &tp::Engine::shared_weights_bytes)
      .def_property_readonly("device", &tp::Engine::device)
      .def(
          "io_info",
          [](const tp::Engine& e, bool is_output, int index) {
            int32_t dtype = 0;
            const int64_t* dims = nullptr;
            size_t nd = 0;
            if (tp_engine_io_info(&e, is_output ? 1 : 0, index, &dtype, &dims, &nd) != 0)
              throw std::runtime_error(tp_last_error());
            return py::make_tuple(dtype, std::vector<int64_t>(dims, dims + nd));
          },
          py::arg("is_output"), py::arg("index"), "(ONNX dtype, shape) of engine input or output `index`.")
      .def(
          "_handle", [](tp::Engine& e) { return reinterpret_cast<uintptr_t>(static_cast<tp_engine*>(&e)); },
          "Address of the tp_engine (for the plugin's host callback); valid while this object lives.");

  m.def("kernel_names", &tp::kernel_names, "Names of the registered native kernels.");
  m.def(
      "device_memory_stats",
      [](int device) {
        size_t in_use = 0, peak = 0, reserved = 0;
        tp_cuda_memory_stats(device, &in_use, &peak, &reserved);
        return py::make_tuple(in_use, peak, reserved);
      },
      py::arg("device"), "(in_use, peak, reserved) bytes of the runtime's caching allocator on `device`.");
  m.def(
      "reset_device_memory_stats", [](int device) { tp_cuda_memory_reset_peak(device); }, py::arg("device") = 0,
      "Start a new peak measurement of the caching allocator on `device` (peak = bytes in use now).");
  m.def(
      "device_info",
      [](int device) {
        char name[256] = {0};
        int major = 0, minor = 0;
        size_t total = 0;
        if (tp_cuda_device_info(device, name, sizeof name, &major, &minor, &total) != 0)
          throw std::runtime_error(std::string("device_info(") + std::to_string(device) + "): " + tp_last_error());
        py::dict d;
        d["name"] = std::string(name);
        d["cc"] = py::make_tuple(major, minor);
        d["total_bytes"] = total;
        return d;
      },
      py::arg("device"), "Name, compute capability and memory of a CUDA device.");
  m.def(
      "library_versions",
      []() {
        tp::lib::LibraryVersions v = tp::lib::library_versions();
        py::dict d;
        d["cudnn"] = v.cudnn;
        d["cudnn_cudart"] = v.cudnn_cudart;
        d["cublaslt"] = v.cublaslt;
        d["cublaslt_cudart"] = v.cublaslt_cudart;
        d["cudart"] = v.cudart;
        d["driver"] = v.driver;
        return d;
      },
      "Versions of cuDNN, cuBLASLt, the CUDA runtime and the driver (0 without one). Needs no GPU.");
}
