// OrtEp: creation from session options, GetCapability and Compile through the Python host, kernel registry.
#include "ep.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <set>

#include "graph_export.h"
#include "json_writer.h"

namespace tp::shim {
namespace {

using namespace ort::api;

bool starts_with_ci(const std::string& s, const char* prefix) {
  const size_t n = std::char_traits<char>::length(prefix);
  if (s.size() < n) return false;
  for (size_t i = 0; i < n; ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != std::tolower(static_cast<unsigned char>(prefix[i])))
      return false;
  return true;
}

// {"key": "value"} of our provider options (prefix removed) and the ep.context_* session entries; sets
// *context_enable when ep.context_enable is "1" (ORT then expects an EPContext node per fused node from Compile).
std::string options_json(const OrtSessionOptions* options, bool* context_enable) {
  *context_enable = false;
  OrtKeyValuePairs* kv = nullptr;
  check(api<GetSessionOptionsConfigEntries>()(options, &kv), "GetSessionOptionsConfigEntries");
  JsonWriter w;
  w.begin_object();
  try {
    const char* const* keys = nullptr;
    const char* const* values = nullptr;
    size_t n = 0;
    if (kv != nullptr) api<GetKeyValuePairs>()(kv, &keys, &values, &n);
    for (size_t i = 0; i < n; ++i) {
      const std::string key = keys[i] ? keys[i] : "";
      const std::string value = values[i] ? values[i] : "";
      if (starts_with_ci(key, kOptionPrefix)) {
        w.key(key.substr(std::char_traits<char>::length(kOptionPrefix)));
        w.value(value);
      } else if (starts_with_ci(key, kContextPrefix)) {
        w.key(key);
        w.value(value);
        if (key == kContextEnable) *context_enable = value == "1";
      }
    }
  } catch (...) {
    if (kv) api<ReleaseKeyValuePairs>()(kv);
    throw;
  }
  if (kv) api<ReleaseKeyValuePairs>()(kv);
  w.end_object();
  return w.take();
}

// The CUDA ordinal of the i-th device ORT gave this EP (-1 for the reference backend).
int cuda_ordinal(const Factory& f, const OrtHardwareDevice* hw, const OrtKeyValuePairs* ep_metadata) {
  if (!f.gpu) return -1;
  if (ep_metadata != nullptr) {
    const char* s = api<GetKeyValue>()(ep_metadata, "cuda_device_id");
    if (s != nullptr && *s) return std::atoi(s);
  }
  if (hw != nullptr && api<HardwareDevice_Type>()(hw) == ort::kHwGpu) {
    const OrtKeyValuePairs* md = api<HardwareDevice_Metadata>()(hw);
    const char* bus = md ? api<GetKeyValue>()(md, "pci_bus_id") : nullptr;
    if (bus != nullptr) return tp_cuda_device_from_pci_bus_id(bus);
  }
  return 0;  // the CPU pairing of GetSupportedDevices uses CUDA device 0
}

std::string device_json(bool gpu, const std::vector<int>& ordinals) {
  JsonWriter w;
  w.begin_object();
  w.key("backend"), w.value(gpu ? "cuda" : "reference");
  w.key("devices"), w.begin_array();
  for (int ordinal : ordinals) {
    char name[256] = {0};
    int major = 0, minor = 0;
    size_t total = 0;
    if (tp_cuda_device_info(ordinal, name, sizeof name, &major, &minor, &total) != 0)
      fail("querying CUDA device " + std::to_string(ordinal) + ": " + runtime_error_message());
    w.begin_object();
    w.key("device_id"), w.value(ordinal);
    w.key("name"), w.value(name);
    w.key("cc"), w.begin_array(), w.value(major), w.value(minor), w.end_array();
    w.key("total_bytes"), w.value(static_cast<int64_t>(total));
    w.end_object();
  }
  w.end_array();
  w.end_object();
  return w.take();
}

constexpr const char* kNoHost =
    "the ep_trtpy Python package is not loaded in this process. TrtPyExecutionProvider partitions and builds "
    "engines in Python: run `import ep_trtpy` before creating the session (a non-Python host cannot use this EP "
    "yet).";

HostCallbacks require_host(const char* what) {
  HostCallbacks cb = host_callbacks();
  if (!cb.installed) fail(ort::kFail, std::string(what) + ": " + kNoHost);
  return cb;
}

// ------------------------------------------------------------------------------------------ OrtEp members ---

const char* get_name(const OrtEp*) noexcept { return kEpName; }

// An EP that could not be set up claims the graph's first node, so that ORT calls Compile, which reports the
// reason as a session-creation error. (A failing CreateEp would not do: ORT turns it into a RuntimeError and the
// Python InferenceSession silently retries on the CPU; a failing Compile status reaches the user.)
OrtStatus* claim_to_refuse(Ep* ep, const OrtGraph* graph, OrtEpGraphSupportInfo* support) {
  size_t n = 0;
  check(api<Graph_GetNumNodes>()(graph, &n), "Graph_GetNumNodes");
  if (n == 0) return nullptr;
  std::vector<const OrtNode*> nodes(n, nullptr);
  check(api<Graph_GetNodes>()(graph, nodes.data(), n), "Graph_GetNodes");
  OrtNodeFusionOptions options{};
  options.ort_version_supported = ort::kTargetApiVersion;
  check(api<ort::ep_api::EpGraphSupportInfo_AddNodesToFuse>()(support, nodes.data(), 1, &options),
        "EpGraphSupportInfo_AddNodesToFuse");
  TP_LOG(ep->logger, ort::kInfo, std::string(kEpName) + " cannot run: " + ep->refusal);
  return nullptr;
}

OrtStatus* get_capability(OrtEp* self, const OrtGraph* graph, OrtEpGraphSupportInfo* support) noexcept {
  Ep* ep = as_ep(self);
  OrtStatus* status = guard("GetCapability", [&]() -> OrtStatus* {
    if (!ep->refusal.empty()) return claim_to_refuse(ep, graph, support);
    HostCallbacks cb = require_host("GetCapability");
    GraphExport g;
    export_graph(graph, nullptr, &g);
    int64_t* clusters = nullptr;
    size_t len = 0;
    char* error = nullptr;
    if (cb.table.get_capability(ep->ep_id, g.json.c_str(), g.tensors.data(), g.tensors.size(), &clusters, &len,
                                &error) != 0)
      fail("partitioning: " + take_host_error(error));
    std::unique_ptr<int64_t, decltype(&std::free)> owned(clusters, &std::free);
    const auto bad = [&](const std::string& why) { fail("the partitioner returned a malformed cluster list: " + why); };
    if (len == 0) return nullptr;
    if (clusters == nullptr) bad("no data");
    size_t pos = 0;
    const int64_t n_clusters = clusters[pos++];
    if (n_clusters < 0) bad("negative cluster count");
    for (int64_t c = 0; c < n_clusters; ++c) {
      if (pos >= len) bad("truncated");
      const int64_t n = clusters[pos++];
      if (n < 0 || pos + static_cast<size_t>(n) > len) bad("truncated cluster " + std::to_string(c));
      std::vector<const OrtNode*> nodes;
      std::set<int64_t> seen;
      for (int64_t k = 0; k < n; ++k) {
        const int64_t index = clusters[pos++];
        if (index < 0 || static_cast<size_t>(index) >= g.nodes.size())
          bad("node index " + std::to_string(index) + " out of range");
        if (seen.insert(index).second) nodes.push_back(g.nodes[index]);
      }
      if (nodes.empty()) continue;
      OrtNodeFusionOptions options{};
      options.ort_version_supported = ort::kTargetApiVersion;
      options.drop_constant_initializers = true;  // engines carry their weights; ORT may free its copies
      check(api<ort::ep_api::EpGraphSupportInfo_AddNodesToFuse>()(support, nodes.data(), nodes.size(), &options),
            "EpGraphSupportInfo_AddNodesToFuse");
    }
    return nullptr;
  });
  if (status != nullptr) {
    // ORT only logs a failed GetCapability and runs the graph elsewhere: make sure the user sees why.
    const char* msg = api<GetErrorMessage>()(status);
    TP_LOG(ep->logger, ort::kError, std::string(msg ? msg : "GetCapability failed") +
                                        " (the graph runs without TrtPyExecutionProvider)");
  }
  return status;
}

// With ep.context_enable=1, ep_context_nodes[i] receives the EPContext node standing for fused node i in the
// context model ORT writes (ORT owns it, even when Compile fails).
OrtStatus* compile(OrtEp* self, const OrtGraph** graphs, const OrtNode** fused_nodes, size_t count,
                   OrtNodeComputeInfo** infos, OrtNode** ep_context_nodes) noexcept {
  Ep* ep = as_ep(self);
  for (size_t i = 0; i < count; ++i) infos[i] = nullptr;
  if (!ep->refusal.empty()) return make_status(ep->refusal_code, std::string(kEpName) + ": " + ep->refusal);
  OrtStatus* status = guard("Compile", [&]() -> OrtStatus* {
    HostCallbacks cb = require_host("Compile");
    for (size_t i = 0; i < count; ++i) {
      GraphExport g;
      export_graph(graphs[i], fused_nodes[i], &g);
      auto program = std::make_shared<Program>();
      program->node_name = node_name(fused_nodes[i]);
      program->input_names = node_input_names(fused_nodes[i]);
      program->output_names = node_output_names(fused_nodes[i]);
      program->device_id = ep->device_id;
      int64_t* runtime_inputs = nullptr;
      size_t n_runtime = 0;
      char* error = nullptr;
      int64_t program_id = -1;
      if (cb.table.compile(ep->ep_id, g.json.c_str(), g.tensors.data(), g.tensors.size(), &program_id,
                           &runtime_inputs, &n_runtime, &error) != 0)
        fail("compiling fused node '" + program->node_name + "': " + take_host_error(error));
      program->program_id = program_id;  // from here on ~Program releases it
      std::unique_ptr<int64_t, decltype(&std::free)> owned(runtime_inputs, &std::free);
      for (size_t k = 0; k < n_runtime; ++k) {
        const int64_t r = runtime_inputs[k];
        if (r < 0 || static_cast<size_t>(r) >= program->input_names.size())
          fail("compiling fused node '" + program->node_name + "': runtime input index " + std::to_string(r) +
               " is out of range (the node has " + std::to_string(program->input_names.size()) + " inputs)");
        program->runtime_inputs.push_back(r);
      }
      {
        std::lock_guard<std::mutex> lock(ep->mu);
        ep->programs[program->node_name] = program;
      }
      infos[i] = new_compute_info(ep, program);
      if (ep->context_enable) {
        if (ep_context_nodes == nullptr) fail("ORT passed no room for EPContext nodes although ep.context_enable=1");
        ep_context_nodes[i] = create_ep_context_node(cb, *program);
      }
    }
    return nullptr;
  });
  if (status != nullptr) {
    for (size_t i = 0; i < count; ++i) {
      if (infos[i]) delete_compute_info(infos[i]);
      infos[i] = nullptr;
    }
  }
  return status;
}

void release_node_compute_infos(OrtEp*, OrtNodeComputeInfo** infos, size_t count) noexcept {
  for (size_t i = 0; i < count; ++i)
    if (infos[i]) delete_compute_info(infos[i]);
}

OrtStatus* get_kernel_registry(OrtEp* self, const OrtKernelRegistry** out) noexcept {
  return guard("GetKernelRegistry", [&]() -> OrtStatus* {
    *out = nullptr;
    Ep* ep = as_ep(self);
    // Reference backend: the EP is CPU-based (no device memory), ORT inserts no Memcpy nodes for it.
    if (ep->device_id >= 0) *out = memcpy_kernel_registry(*ep->factory);
    return nullptr;
  });
}

}  // namespace

// ------------------------------------------------------------------------------------- factory functions ---

OrtStatus* create_ep(OrtEpFactory* self, const OrtHardwareDevice* const* devices,
                     const OrtKeyValuePairs* const* ep_metadata, size_t count, const OrtSessionOptions* options,
                     const OrtLogger* logger, OrtEp** out) noexcept {
  return guard("CreateEp", [&]() -> OrtStatus* {
    *out = nullptr;
    Factory* f = as_factory(self);
    auto* ep = new Ep();
    OrtEp& b = ep->base;
    b.ort_version_supported = ort::kTargetApiVersion;
    b.GetName = get_name;
    b.GetCapability = get_capability;
    b.Compile = compile;
    b.ReleaseNodeComputeInfos = release_node_compute_infos;
    b.GetKernelRegistry = get_kernel_registry;
    fill_reserve(b.reserved);
    ep->factory = f;
    ep->logger = logger;
    std::unique_ptr<Ep> owner(ep);

    // Problems the user must see are kept in ep->refusal and reported by Compile (see claim_to_refuse).
    const auto refuse = [&](ort::ErrorCode code, std::string why) -> OrtStatus* {
      ep->refusal = std::move(why);
      ep->refusal_code = code;
      *out = &owner.release()->base;
      return nullptr;
    };

    HostCallbacks cb = host_callbacks();
    if (!cb.installed) return refuse(ort::kFail, kNoHost);

    std::vector<int> ordinals;
    for (size_t i = 0; i < count; ++i) {
      int ordinal = cuda_ordinal(*f, devices ? devices[i] : nullptr, ep_metadata ? ep_metadata[i] : nullptr);
      if (f->gpu && ordinal >= 0 && std::find(ordinals.begin(), ordinals.end(), ordinal) == ordinals.end())
        ordinals.push_back(ordinal);
    }
    if (f->gpu && ordinals.empty()) return refuse(ort::kFail, "ORT gave this EP no CUDA device");

    bool context_enable = false;
    const std::string opts = options_json(options, &context_enable);
    const std::string devs = device_json(f->gpu, ordinals);
    int64_t ep_id = -1;
    int32_t device_id = -1;
    char* error = nullptr;
    if (cb.table.create_ep(opts.c_str(), devs.c_str(), &ep_id, &device_id, &error) != 0)
      return refuse(ort::kInvalidArgument, take_host_error(error));

    std::string problem;
    if (f->gpu && device_id < 0) {
      problem = "the Python host chose the numpy reference backend, but a CUDA device is usable and the EP's "
                "inputs and outputs live in its memory";
    } else if (f->gpu && std::find(ordinals.begin(), ordinals.end(), device_id) == ordinals.end()) {
      problem = "the EP options select CUDA device " + std::to_string(device_id) + " but ORT gave this session ";
      for (size_t i = 0; i < ordinals.size(); ++i) problem += (i ? ", " : "device ") + std::to_string(ordinals[i]);
      problem += " (pick the device with SessionOptions.add_provider_for_devices)";
    } else if (!f->gpu && device_id >= 0) {
      problem = "the EP options select CUDA device " + std::to_string(device_id) + " but no CUDA device is usable";
    }
    if (!problem.empty()) {
      if (cb.table.release_ep) cb.table.release_ep(ep_id);
      return refuse(ort::kInvalidArgument, problem);
    }

    ep->ep_id = ep_id;
    ep->device_id = f->gpu ? device_id : -1;
    ep->context_enable = context_enable;
    *out = &owner.release()->base;
    return nullptr;
  });
}

void release_ep(OrtEpFactory*, OrtEp* e) noexcept {
  guard_void("ReleaseEp", [&] {
    if (e == nullptr) return;
    Ep* ep = as_ep(e);
    {
      std::map<std::string, std::shared_ptr<Program>> programs;
      {
        std::lock_guard<std::mutex> lock(ep->mu);
        programs.swap(ep->programs);
      }
    }  // programs released here (release_program for the last owner)
    HostCallbacks cb = host_callbacks();
    if (cb.installed && cb.table.release_ep != nullptr && ep->ep_id >= 0) cb.table.release_ep(ep->ep_id);
    delete ep;
  });
}

}  // namespace tp::shim
