// EPContext nodes (session entry ep.context_enable=1): the node ORT writes into the context model in place of a
// fused node. The Python host decides the attributes (the engine file, embedded or beside the model, and what
// identifies it; ep_trtpy/epcontext/); this file turns them into an ORT node (fact sheet §5).
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ep.h"
#include "graph_export.h"

namespace tp::shim {
namespace {

using namespace ort::api;

constexpr const char* kEpContextOp = "EPContext";
constexpr const char* kEpContextDomain = "com.microsoft";

// The attributes the host emitted; released when the sink dies (CreateNode copies them).
struct AttrSink {
  std::vector<OrtOpAttr*> attrs;
  std::string error;

  AttrSink() = default;
  AttrSink(const AttrSink&) = delete;
  AttrSink& operator=(const AttrSink&) = delete;
  ~AttrSink() {
    for (OrtOpAttr* a : attrs) api<ReleaseOpAttr>()(a);
  }
};

int emit_attr(void* ctx, const char* name, int32_t type, int64_t int_value, const void* bytes,
              size_t nbytes) noexcept {
  auto* sink = static_cast<AttrSink*>(ctx);
  try {
    const std::string attr_name = name ? name : "";
    OrtOpAttr* attr = nullptr;
    OrtStatus* st = nullptr;
    if (type == ort::kAttrInt) {
      st = api<CreateOpAttr>()(attr_name.c_str(), &int_value, 1, ort::kAttrInt, &attr);
    } else if (type == ort::kAttrString) {
      // Some releases copy a STRING attribute only up to its first NUL (the ABI probe tells): a value holding one
      // would be cut short silently there.
      const char* data = static_cast<const char*>(bytes);
      if (nbytes > 0 && (data == nullptr || (!g_string_attr_binary && std::memchr(data, '\0', nbytes) != nullptr))) {
        sink->error = "attribute '" + attr_name + "' holds a NUL byte, which ORT cannot store in a string attribute";
        return 1;
      }
      if (nbytes > static_cast<size_t>(INT32_MAX)) {
        sink->error = "attribute '" + attr_name + "' is " + std::to_string(nbytes) + " bytes, more than ORT takes";
        return 1;
      }
      const std::string value(data ? data : "", nbytes);  // NUL-terminated copy
      st = api<CreateOpAttr>()(attr_name.c_str(), value.c_str(), static_cast<int>(nbytes), ort::kAttrString, &attr);
    } else {
      sink->error = "attribute '" + attr_name + "' has type " + std::to_string(type) + " (INT 1 or STRING 5 expected)";
      return 1;
    }
    if (st != nullptr) {
      sink->error = "CreateOpAttr('" + attr_name + "'): " + take_status_message(st);
      return 1;
    }
    sink->attrs.push_back(attr);
    return 0;
  } catch (const std::exception& e) {
    sink->error = e.what();
  } catch (...) {
    sink->error = "unknown C++ exception";
  }
  return 1;
}

}  // namespace

OrtNode* create_ep_context_node(const HostCallbacks& cb, const Program& program) {
  if (cb.table.context_node == nullptr) fail("the Python host cannot describe EPContext nodes");
  if (g_model_editor_api == nullptr) fail("ORT offers no model editor API, which EPContext generation needs");
  AttrSink sink;
  char* node_name = nullptr;
  char* error = nullptr;
  const int rc = cb.table.context_node(program.program_id, emit_attr, &sink, &node_name, &error);
  std::unique_ptr<char, decltype(&std::free)> owned_name(node_name, &std::free);
  if (rc != 0) {
    std::string why = take_host_error(error);
    if (!sink.error.empty()) why += " (" + sink.error + ")";
    fail("writing the EPContext node of fused node '" + program.node_name + "': " + why);
  }
  std::free(error);  // NULL on success

  std::vector<const char*> inputs, outputs;
  for (int64_t r : program.runtime_inputs) inputs.push_back(program.input_names[static_cast<size_t>(r)].c_str());
  for (const std::string& o : program.output_names) outputs.push_back(o.c_str());
  const std::string name = node_name ? node_name : program.node_name;
  OrtNode* node = nullptr;
  check(api<ort::model_editor_api::CreateNode>()(kEpContextOp, kEpContextDomain, name.c_str(), inputs.data(),
                                                 inputs.size(), outputs.data(), outputs.size(), sink.attrs.data(),
                                                 sink.attrs.size(), &node),
        "CreateNode(EPContext)");
  return node;
}

}  // namespace tp::shim
